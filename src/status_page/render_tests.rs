//! Rendering and escaping of the status page, from hand-made page data.

use super::*;
use crate::event::Timestamp;
use crate::probe::RecentChecks;
use crate::tenants::{RankBy, TenantEvidence, TopTenants};

const NOW: i64 = 1_767_571_200_000;

fn probe(name: &str, state: ProbeState) -> ProbeSnapshot {
    let mut recent = RecentChecks::default();
    for ms in [3.0, 5.0, 4.0] {
        recent.push(ms, state != ProbeState::Down);
    }
    ProbeSnapshot {
        name: name.into(),
        kind: "http".into(),
        target: "http://127.0.0.1/healthz?a=1&b=<2>".into(),
        interval_ms: 1000,
        thresholds: String::new(),
        state,
        since: Timestamp(NOW - 125_000),
        last_check: Some(Timestamp(NOW)),
        last_latency_ms: Some(4.0),
        last_status_code: None,
        last_failure: (state == ProbeState::Down).then(|| "timeout: <no answer>".into()),
        recoveries_total: 1,
        silenced_until: None,
        maintenance: None,
        checks_total: 3,
        failures_total: 0,
        discovered: None,
        latency: Default::default(),
        recent,
    }
}

fn data(probes: Vec<ProbeSnapshot>) -> PageData {
    PageData {
        now: Timestamp(NOW),
        probes,
        incidents: vec![],
        tenants: None,
        experiments: vec![],
        journal_error: None,
        uptime: Default::default(),
        drills: vec![],
    }
}

fn outage(probe: &str, down: i64, up: Option<i64>) -> Outage {
    Outage {
        probe: probe.into(),
        down_event_id: 1,
        down_at: Timestamp(down),
        up_event_id: up.map(|_| 2),
        up_at: up.map(Timestamp),
        reason: "exit_status".into(),
    }
}

#[test]
fn escape_table() {
    let cases = [
        ("plain", "plain"),
        (
            "<script>alert(1)</script>",
            "&lt;script&gt;alert(1)&lt;/script&gt;",
        ),
        ("a&b", "a&amp;b"),
        ("\"quoted\" 'single'", "&quot;quoted&quot; &#39;single&#39;"),
        ("ünïcode ✓", "ünïcode ✓"),
    ];
    for (input, want) in cases {
        assert_eq!(escape(input), want);
    }
}

#[test]
fn banner_table() {
    let cases = [
        (vec![], "No probes are configured."),
        (
            vec![probe("a", ProbeState::Up), probe("b", ProbeState::Up)],
            "All 2 probes are up.",
        ),
        (
            vec![probe("a", ProbeState::Up), probe("b", ProbeState::Failing)],
            "1 of 2 probes are not settled yet.",
        ),
        (
            vec![
                probe("a", ProbeState::Down),
                probe("b", ProbeState::Failing),
            ],
            "1 of 2 probes are down.",
        ),
    ];
    for (probes, want) in cases {
        let html = page(&data(probes));
        assert!(html.contains(want), "{want}");
    }
}

#[test]
fn names_targets_and_failures_from_config_are_escaped() {
    let html = page(&data(vec![probe(
        "<img src=x onerror=alert(1)>",
        ProbeState::Down,
    )]));
    assert!(!html.contains("<img"), "raw markup from config leaked");
    assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"));
    assert!(html.contains("healthz?a=1&amp;b=&lt;2&gt;"));
    assert!(html.contains("timeout: &lt;no answer&gt;"));
    assert!(html.contains("<title>(1 down) Sentinel status</title>"));
    assert!(!html.contains("<script"), "the page has no script at all");
}

#[test]
fn probe_card_shows_state_sparkline_and_time_in_state() {
    let html = page(&data(vec![probe("api", ProbeState::Up)]));
    assert!(html.contains(r#"data-probe="api" data-state="up""#));
    assert!(html.contains(r#"<span class="pill up">up</span>"#));
    assert!(html.contains("<svg class=\"spark\""));
    assert!(html.contains("up for 2m 5s"));
}

#[test]
fn experiments_say_none_running_or_list_time_left() {
    let mut page_data = data(vec![]);
    assert!(page(&page_data).contains("No chaos experiments are running."));
    page_data.experiments.push(ActiveExperiment {
        id: "exp-1".into(),
        name: "delay <api>".into(),
        target: "eth0".into(),
        ends_at: Timestamp(NOW + 90_000),
    });
    let html = page(&page_data);
    assert!(html.contains("delay &lt;api&gt;"));
    assert!(html.contains("1m 30s"));
}

#[test]
fn incidents_show_time_to_recover_or_ongoing() {
    let mut page_data = data(vec![]);
    assert!(page(&page_data).contains("No probe went down in the last 7 days."));
    page_data.incidents = vec![
        outage("db", NOW - 60_000, None),
        outage("api", NOW - 600_000, Some(NOW - 600_000 + 42_000)),
    ];
    let html = page(&page_data);
    let db = html.find("<td>db</td>").unwrap();
    let api = html.find("<td>api</td>").unwrap();
    assert!(db < api, "newest first, as given");
    assert!(html[db..api].contains("ongoing"));
    assert!(html[api..].contains("42s"));

    page_data.journal_error = Some("journal query failed: <disk>".into());
    assert!(page(&page_data).contains("could not be read: journal query failed: &lt;disk&gt;"));
}

#[test]
fn tenants_section_off_empty_or_ranked() {
    let mut page_data = data(vec![]);
    assert!(page(&page_data).contains("The tenant detector is off"));
    let evidence = |id: &str| TenantEvidence {
        tenant_id: id.into(),
        requests: 200,
        errors: 50,
        error_share: 0.64,
        error_rate: 0.25,
        error_rate_lower_bound: 0.2,
        lift: None,
        rest_requests: 0,
        rest_errors: 0,
        p50_ms: None,
        p95_ms: Some(180.4),
        p99_ms: None,
        baseline_p95_ms: None,
        deviation: None,
        top_endpoint: None,
        tracked_since_ms: None,
        muted: None,
    };
    let mut top = TopTenants {
        by: RankBy::Errors,
        window_ms: 600_000,
        now_ms: NOW,
        total_requests: 1000,
        total_errors: 80,
        tenants: vec![],
        other: evidence("__other__"),
        min_requests: 20,
    };
    page_data.tenants = Some(TenantsView {
        error_label: "5xx".into(),
        top: top.clone(),
    });
    assert!(page(&page_data).contains("No tenant traffic"));
    top.tenants.push(evidence("acme<&>"));
    page_data.tenants = Some(TenantsView {
        error_label: "5xx".into(),
        top,
    });
    let html = page(&page_data);
    for fragment in [
        "acme&lt;&amp;&gt;",
        "64%",
        "180 ms",
        "last 10m: 1000 requests, 80 5xx",
    ] {
        assert!(html.contains(fragment), "{fragment}");
    }
}

/// Each probe card holds a 90-cell bar, oldest day first, ending today; a day with no data is
/// grey ("none"), not red, and every cell's title says its date and figure. No script.
#[test]
fn ninety_day_bar_per_probe() {
    let mut page_data = data(vec![
        probe("web", ProbeState::Up),
        probe("new", ProbeState::Unknown),
    ]);
    let day = crate::uptime::DAY_MS;
    let date = |ago: i64| Timestamp(NOW - ago * day).to_rfc3339()[..10].to_string();
    let cells: Vec<crate::uptime::DayCell> = (0..90)
        .rev()
        .map(|ago| crate::uptime::DayCell {
            date: date(ago),
            availability: match ago {
                0 => Some(0.5),
                1 => None,
                2 => Some(0.995),
                _ => Some(1.0),
            },
            down_ms: if ago == 0 { 43_200_000 } else { 0 },
        })
        .collect();
    page_data.uptime.insert("web".into(), cells);
    let html = page(&page_data);
    assert_eq!(
        html.matches("<span class=\"day ").count(),
        180,
        "90 per probe"
    );
    let web = html.split("data-probe=\"web\"").nth(1).unwrap();
    let web = &web[..web.find("</article>").unwrap()];
    assert_eq!(web.matches("class=\"day ok\"").count(), 87);
    let today = date(0);
    let yesterday = date(1);
    assert!(
        web.contains(&format!(
            "<span class=\"day bad\" title=\"{today}: 50.00% up, down 12h\"></span></div>"
        )),
        "{web}"
    );
    assert!(web.contains(&format!(
        "<span class=\"day none\" title=\"{yesterday}: no data\">"
    )));
    assert!(web.contains(&format!("title=\"{}: 99.50% up\"", date(2))));
    assert!(web.find(&date(89)).unwrap() < web.find(&today).unwrap());
    let new = html.split("data-probe=\"new\"").nth(1).unwrap();
    let new = &new[..new.find("</article>").unwrap()];
    assert_eq!(new.matches("class=\"day none\"").count(), 90);
    assert!(!html.contains("<script"));
}

/// The drills section: one row per drill with its last run, result pill, recovery time, and
/// the recovery times of its recent runs with their direction; absent with no runs; names
/// escaped.
#[test]
fn drills_show_last_run_result_and_recovery_trend() {
    use crate::drill::trend::Direction;
    use crate::event::DrillOutcome;
    use crate::status_page::RunView;
    let run = |n: i64, outcome, recover_ms| RunView {
        id: format!("d{n}"),
        ended: Timestamp(NOW - 1000 * (10 - n)),
        outcome,
        recover_ms,
    };
    let mut page_data = data(vec![]);
    assert!(!page(&page_data).contains("id=\"drills\""));
    page_data.drills = vec![
        DrillView {
            name: "kill-<api>".into(),
            runs: vec![
                run(1, DrillOutcome::Passed, Some(9_000)),
                run(2, DrillOutcome::Passed, Some(8_500)),
                run(3, DrillOutcome::Passed, Some(4_000)),
                run(4, DrillOutcome::Failed, Some(3_200)),
            ],
            direction: Direction::Faster,
        },
        DrillView {
            name: "db".into(),
            runs: vec![run(5, DrillOutcome::Aborted, None)],
            direction: Direction::TooFewRuns,
        },
    ];
    let html = page(&page_data);
    assert!(
        html.contains("<section id=\"drills\"><h2>Drills</h2>"),
        "{html}"
    );
    assert!(
        html.contains("<tr data-drill=\"kill-&lt;api&gt;\"><td>kill-&lt;api&gt;</td>"),
        "{html}"
    );
    assert!(
        html.contains("<td><span class=\"pill down\">failed</span></td><td class=\"num\">3.2s</td><td class=\"small\">9.0s → 8.5s → 4.0s → 3.2s <span class=\"muted\">(faster)</span>"),
        "{html}"
    );
    assert!(
        html.contains("<span class=\"pill failing\">aborted</span></td><td class=\"num\">-</td><td class=\"small\">- <span class=\"muted\">(too few runs)</span>"),
        "{html}"
    );
    assert!(!html.contains("<api>"));
}
