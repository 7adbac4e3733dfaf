//! A seeded simulation: a week of journal with planted patterns (a nightly outage, a flapping
//! cache, a healed database, a tenant spike during it, one quiet tenant alert) and random
//! noise around them. The analysis must find exactly what was planted, for every seed.

use super::*;
use crate::event::{Event, EventKind, FailureReason, ProbeState};
use crate::tenants::test_rng::TestRng;

/// Uniform in `low..high`, from the crate's seeded test generator.
fn between(rng: &mut TestRng, low: i64, high: i64) -> i64 {
    low + rng.below((high - low) as u64) as i64
}

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;
/// 2026-01-05T00:00:00Z, a Monday.
const START: i64 = 1_767_571_200_000;
const DAYS: i64 = 7;

/// What the generator planted, to compare the findings with.
struct Planted {
    events: Vec<JournaledEvent>,
    api_down_ms: Vec<i64>,
    cache_down_ms: Vec<i64>,
    db_down_ms: i64,
}

fn transition(
    at: i64,
    probe: &str,
    from: ProbeState,
    to: ProbeState,
    reason: Option<FailureReason>,
) -> Event {
    Event {
        at: Timestamp(at),
        kind: EventKind::ProbeTransition {
            probe: probe.into(),
            from,
            to,
            reason,
            status_code: (reason == Some(FailureReason::HttpStatus)).then_some(503),
            latency_ms: Some(12.0),
            recoveries_total: 0,
        },
    }
}

/// failing -> down at `at`, recovering -> up `duration` later.
fn outage(events: &mut Vec<Event>, at: i64, duration: i64, probe: &str, reason: FailureReason) {
    events.push(transition(
        at - 1000,
        probe,
        ProbeState::Up,
        ProbeState::Failing,
        Some(reason),
    ));
    events.push(transition(
        at,
        probe,
        ProbeState::Failing,
        ProbeState::Down,
        Some(reason),
    ));
    events.push(transition(
        at + duration - 1000,
        probe,
        ProbeState::Down,
        ProbeState::Recovering,
        None,
    ));
    events.push(transition(
        at + duration,
        probe,
        ProbeState::Recovering,
        ProbeState::Up,
        None,
    ));
}

fn generate(seed: u64) -> Planted {
    let mut rng = TestRng::new(seed);
    let mut events = Vec::new();
    // api: down once a night between 03:00 and 03:50 UTC, for 1-5 minutes
    let mut api_down_ms = Vec::new();
    for day in 0..DAYS {
        let at = START + day * DAY + 3 * HOUR + between(&mut rng, 0, 50) * MINUTE;
        let duration = between(&mut rng, MINUTE, 5 * MINUTE);
        outage(&mut events, at, duration, "api", FailureReason::Timeout);
        api_down_ms.push(duration);
    }
    // cache: four short outages two minutes apart on day 2 at noon
    let mut cache_down_ms = Vec::new();
    for i in 0..4 {
        let duration = between(&mut rng, 10_000, 60_000);
        let at = START + 2 * DAY + 12 * HOUR + i * 2 * MINUTE;
        outage(&mut events, at, duration, "cache", FailureReason::Refused);
        cache_down_ms.push(duration);
    }
    // db: one outage on day 4 at 15:xx, healed on the second try; a tenant spikes meanwhile
    let db_at = START + 4 * DAY + 15 * HOUR + between(&mut rng, 0, 30) * MINUTE;
    let db_down_ms = between(&mut rng, 2 * MINUTE, 10 * MINUTE);
    outage(
        &mut events,
        db_at,
        db_down_ms,
        "db",
        FailureReason::HttpStatus,
    );
    for (offset, ok) in [(10_000, false), (40_000, true)] {
        events.push(Event {
            at: Timestamp(db_at + offset),
            kind: EventKind::HealFinished {
                probe: "db".into(),
                action: "docker restart db".into(),
                ok,
                detail: "d".into(),
            },
        });
    }
    events.push(Event {
        at: Timestamp(db_at + db_down_ms + 1),
        kind: EventKind::IncidentClosed {
            probe: "db".into(),
            healed: true,
            time_to_detect_ms: Some(1000),
            time_to_act_ms: Some(10_000),
            time_to_recover_ms: Some(db_down_ms as u64),
        },
    });
    events.push(Event {
        at: Timestamp(START + 5 * DAY + between(&mut rng, 0, 20) * HOUR),
        kind: EventKind::HealGaveUp {
            probe: "db".into(),
            attempts: 3,
            retry_at: Timestamp(START + 6 * DAY),
            reason: None,
        },
    });
    events.push(tenant_alert(db_at + between(&mut rng, 0, 60_000), "acme"));
    events.push(tenant_alert(START + 6 * DAY + 20 * HOUR, "globex"));
    // noise: blips that never reach Down, and probes that only ever come up
    for _ in 0..between(&mut rng, 5, 40) {
        let at = START + between(&mut rng, 0, DAYS * DAY);
        events.push(transition(
            at,
            "web",
            ProbeState::Up,
            ProbeState::Failing,
            Some(FailureReason::Timeout),
        ));
        events.push(transition(
            at + 500,
            "web",
            ProbeState::Failing,
            ProbeState::Up,
            None,
        ));
    }
    events.push(transition(
        START,
        "web",
        ProbeState::Unknown,
        ProbeState::Up,
        None,
    ));
    events.sort_by_key(|e| e.at);
    let events = JournaledEvent::numbered(events);
    Planted {
        events,
        api_down_ms,
        cache_down_ms,
        db_down_ms,
    }
}

fn tenant_alert(at: i64, tenant: &str) -> Event {
    Event {
        at: Timestamp(at),
        kind: EventKind::TenantAlertFired {
            rule: "noisy".into(),
            tenant_id: tenant.into(),
            condition: crate::event::AlertCondition::ErrorShare,
            value: 80.0,
            threshold: 50.0,
            window_ms: 600_000,
            endpoint: None,
            message: "m".into(),
        },
    }
}

fn names<T>(items: &[T], name: impl Fn(&T) -> &str) -> Vec<&str> {
    items.iter().map(name).collect()
}

#[test]
fn seeded_week_yields_exactly_the_planted_findings() {
    for seed in 0..50 {
        let planted = generate(seed);
        let range = Range {
            since: Timestamp(START),
            until: Timestamp(START + DAYS * DAY),
        };
        let found = analyze(&planted.events, range);
        let context = format!("seed {seed}");

        assert_eq!(
            names(&found.failing_probes, |f| &f.probe),
            ["api", "cache", "db"],
            "{context}"
        );
        let downs: Vec<(usize, i64)> = found
            .failing_probes
            .iter()
            .map(|f| (f.downs, f.down_ms))
            .collect();
        assert_eq!(
            downs,
            [
                (7, planted.api_down_ms.iter().sum()),
                (4, planted.cache_down_ms.iter().sum()),
                (1, planted.db_down_ms),
            ],
            "{context}"
        );
        assert!(found.failing_probes.iter().all(|f| !f.still_down));

        assert_eq!(found.recurring.len(), 1, "{context}: {:?}", found.recurring);
        let nightly = &found.recurring[0];
        assert_eq!((nightly.probe.as_str(), nightly.hour_utc), ("api", 3));
        assert_eq!(nightly.days.first().unwrap(), "2026-01-05");
        assert_eq!(nightly.days.len(), 7);

        assert_eq!(names(&found.flapping, |f| &f.probe), ["cache"], "{context}");
        assert_eq!(found.flapping[0].downs_in_window, 4);
        assert_eq!(found.flapping[0].transitions, 16);

        let clusters: Vec<(&str, usize)> = found
            .reason_clusters
            .iter()
            .map(|c| (c.reason.as_str(), c.evidence.count))
            .collect();
        assert_eq!(
            clusters,
            [("timeout", 7), ("refused", 4), ("http_status 503", 1)],
            "{context}"
        );

        assert_eq!(found.heals.len(), 1);
        let db = &found.heals[0];
        assert_eq!((db.heals, db.heals_ok, db.success_rate), (2, 1, Some(0.5)));
        assert_eq!(
            db.median_time_to_recover_ms,
            Some(planted.db_down_ms as u64)
        );

        assert_eq!(found.budgets_exhausted.len(), 1);
        assert_eq!(found.budgets_exhausted[0].max_attempts, 3);

        let spikes: Vec<(&str, Vec<String>)> = found
            .tenant_spikes
            .iter()
            .map(|s| (s.tenant_id.as_str(), s.coinciding_probes.clone()))
            .collect();
        assert_eq!(
            spikes,
            [("acme", vec!["db".to_string()]), ("globex", vec![])],
            "{context}"
        );
        // the same journal in another order gives the same answer
        let mut shuffled = planted.events.clone();
        shuffled.reverse();
        assert_eq!(analyze(&shuffled, range), found, "{context}");
    }
}
