//! Experiment reports from real runs: a real tbf limit on a veth pair makes an exec probe go
//! Down and recover, and a real container killed by the chaos `container` fault is restarted by
//! a heal; the report's times are checked against the journal and its verdicts against what
//! happened, with tenant traffic posted over real HTTP before and during the fault.

use std::time::Duration;

use crate::chaos::{chaos_section, NetnsPair};
use crate::docker::{docker_probe, wait_up_and_following, RESTART_HEAL};
use crate::harness::{
    assert_failed, require_docker, require_root, text, wait_for, Daemon, Sandbox, TestContainer,
};
use crate::tenants::post_events;

/// A ping of 1400 bytes through 1 kbit/s: the first fits the burst, the next waits ~11 s for
/// tokens, far beyond the 1 s ping timeout.
fn profile(name: &str, netns: &str, hypothesis: &str) -> String {
    format!(
        "[[chaos.profile]]\nname = \"{name}\"\nduration = \"10m\"\ntarget = {{ netns = \"{netns}\", interface = \"veth-a\" }}\nfaults = [{{ kind = \"tbf\", rate = \"1kbit/s\", burst = \"2KiB\", limit = \"2KiB\" }}]\nhypothesis = {hypothesis}\n\n"
    )
}

fn net_probe(netns: &str) -> String {
    format!(
        "[[probe]]\nname = \"net\"\nkind = \"exec\"\ncommand = [\"/usr/bin/nsenter\", \"--net=/run/netns/{netns}\", \"/usr/bin/ping\", \"-c\", \"1\", \"-W\", \"1\", \"-s\", \"1400\", \"10.254.0.2\"]\ninterval = \"1200ms\"\ntimeout = \"1100ms\"\nfail_after = 2\nrecover_after = 1\n\n"
    )
}

const TENANTS: &str = "[tenants]\nenabled = true\nbucket = \"1s\"\nlatency_bucket = \"5s\"\nwindow = \"60s\"\nbaseline_bucket = \"10s\"\nbaseline = \"5m\"\n\n";

/// `errors` of 20 requests of `tenant` fail with 503, at `latency_ms`.
fn traffic(port: u16, tenant: &str, errors: usize, latency_ms: u32) {
    let lines: Vec<String> = (0..20)
        .map(|i| {
            let status = if i < errors { 503 } else { 200 };
            format!(r#"{{"tenant_id":"{tenant}","endpoint":"/v1/pay","status_code":{status},"latency_ms":{latency_ms}}}"#)
        })
        .collect();
    let (status, answer) = post_events(
        port,
        "\r\nContent-Type: application/x-ndjson",
        lines.join("\n").as_bytes(),
    );
    assert_eq!(status, 200, "{answer}");
}

/// Start `profile`, wait for the probe to go Down (posting tenant traffic meanwhile), stop,
/// wait for Up; the experiment id.
fn run_outage(daemon: &Daemon, port: u16, profile: &str) -> String {
    let started = daemon.ctl_json(&["chaos", "start", profile]);
    assert_eq!(started["state"], "active", "{started}");
    daemon.wait_state("net", "down");
    traffic(port, "acme", 15, 900);
    traffic(port, "globex", 1, 20);
    std::thread::sleep(Duration::from_millis(1200));
    let id = started["id"].as_str().unwrap().to_string();
    let stopped = daemon.ctl_json(&["chaos", "stop", &id]);
    assert_eq!(stopped["state"], "rolled_back", "{stopped}");
    daemon.wait_state("net", "up");
    id
}

/// The journal's own times for the experiment in `report`: (its start, as journaled before any
/// change; `chaos_started`; the first Down after the start; the Up after that).
fn journal_times(daemon: &Daemon, report: &serde_json::Value) -> (i64, i64, i64, i64) {
    let id = report["experiment"].as_str().unwrap();
    let start = report["created"].as_i64().unwrap();
    let events = daemon.events("chaos_started,probe_transition");
    let applied = events
        .iter()
        .find(|e| e["kind"] == "chaos_started" && e["experiment"] == id)
        .and_then(|e| e["at"].as_i64())
        .unwrap();
    let after = |from: i64, to: &str| {
        events
            .iter()
            .filter(|e| e["kind"] == "probe_transition" && e["probe"] == "net" && e["to"] == to)
            .filter_map(|e| e["at"].as_i64())
            .find(|at| *at >= from)
            .unwrap()
    };
    let down = after(start, "down");
    (start, applied, down, after(down, "up"))
}

fn report(daemon: &Daemon, id: &str) -> serde_json::Value {
    daemon.ctl_json(&["report", id])
}

fn net_times(report: &serde_json::Value) -> &serde_json::Value {
    probe_times(report, "net")
}

fn probe_times<'a>(report: &'a serde_json::Value, probe: &str) -> &'a serde_json::Value {
    report["probes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["probe"] == probe)
        .unwrap_or_else(|| panic!("no {probe} probe in {report}"))
}

#[test]
fn tbf_outage_report_times_verdicts_and_tenants() {
    if !require_root("tbf_outage_report_times_verdicts_and_tenants") {
        return;
    }
    let pair = NetnsPair::new("report");
    let sandbox = Sandbox::new();
    let profiles = profile(
        "recovers",
        &pair.a,
        "{ steady_state = [\"net\"], recover_within = \"10s\", recover_from = \"rollback\" }",
    ) + &profile("strict", &pair.a, "{ steady_state = [\"net\"] }");
    let extra = format!(
        "{}{TENANTS}{}",
        net_probe(&pair.a),
        chaos_section("5e24", &profiles)
    );
    sandbox.write_config(&sandbox.config("", &extra));
    let daemon = Daemon::start(&sandbox, |_| {});
    daemon.wait_state("net", "up");
    traffic(sandbox.port, "acme", 1, 20);
    traffic(sandbox.port, "globex", 2, 20);
    // Windows are whole 1 s buckets: the "during" snapshot counts the bucket the experiment
    // started in, so the traffic "before" must lie at least one full bucket before the start.
    std::thread::sleep(Duration::from_millis(2100));

    // 1. Down under the limit, Up within 10 s of the rollback: the hypothesis held.
    let id = run_outage(&daemon, sandbox.port, "recovers");
    let held = report(&daemon, &id);
    assert_eq!(held["verdict"]["outcome"], "held", "{held:#}");
    let (start, applied, down, up) = journal_times(&daemon, &held);
    assert!(
        applied >= start && applied - start < 2_000,
        "{start} {applied}"
    );
    let net = net_times(&held);
    assert_eq!(net["time_to_detect_ms"], down - start, "{net}");
    assert_eq!(net["time_to_recover_ms"], up - down, "{net}");
    assert!(net["time_to_act_ms"].is_null(), "no heal configured: {net}");
    let ttd = down - start;
    assert!(ttd > 0 && ttd < 10_000, "time to detect {ttd} ms");
    let timeline = held["timeline"].as_array().unwrap();
    assert_eq!(timeline[0]["kind"], "chaos_started");
    assert_eq!(timeline[0]["offset_ms"], applied - start);
    assert!(timeline.iter().any(|e| e["kind"] == "chaos_rolled_back"));
    assert!(timeline
        .iter()
        .any(|e| e["kind"] == "probe_transition" && e["offset_ms"] == ttd));

    // tenants: acme's 503s and 900 ms latency happened during the fault
    let rows = held["tenants"]["rows"].as_array().unwrap();
    let acme = rows
        .iter()
        .find(|r| r["tenant_id"] == "acme")
        .unwrap_or_else(|| panic!("acme not in {rows:?}"));
    assert_eq!(acme["during"]["errors"], 15, "{acme}");
    assert!(acme["during"]["p95_ms"].as_f64().unwrap() > 500.0, "{acme}");
    assert_eq!(acme["before"]["errors"], 1, "{acme}");
    assert!(acme["before"]["p95_ms"].as_f64().unwrap() < 100.0, "{acme}");

    // the same report for people: plain text and a Markdown post-mortem section
    let out = daemon.ctl(&["report", &id]);
    let plain = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for fragment in [
        "Verdict: held",
        "Timeline",
        "chaos_started",
        "net  ",
        "acme",
    ] {
        assert!(plain.contains(fragment), "{fragment:?} not in\n{plain}");
    }
    let out = daemon.ctl(&["report", &id, "--format", "markdown"]);
    let markdown = text(&out.stdout);
    for fragment in [
        "## Chaos experiment",
        "**Verdict: held",
        "| OFFSET |",
        "| net |",
        "| acme |",
    ] {
        assert!(
            markdown.contains(fragment),
            "{fragment:?} not in\n{markdown}"
        );
    }

    // 2. The same outage against "net stays Up": violated, at the moment it went down.
    let id = run_outage(&daemon, sandbox.port, "strict");
    let violated = report(&daemon, &id);
    assert_eq!(violated["verdict"]["outcome"], "violated", "{violated:#}");
    let (start, _, down, _) = journal_times(&daemon, &violated);
    let violation = &violated["verdict"]["violations"][0];
    assert_eq!(violation["probe"], "net");
    assert_eq!(violation["offset_ms"], down - start, "{violation}");

    // an unknown experiment is a clear 404
    assert_failed(&daemon.ctl(&["report", "x-nope"]), "no experiment x-nope");
    assert!(daemon.stop().success());
}

#[test]
fn container_killed_by_chaos_and_restarted_by_a_heal_is_timed_end_to_end() {
    if !require_root("container_killed_by_chaos_and_restarted_by_a_heal_is_timed_end_to_end")
        || !require_docker("container_killed_by_chaos_and_restarted_by_a_heal_is_timed_end_to_end")
    {
        return;
    }
    let container = TestContainer::run("report", &["sleep", "3600"]);
    let sandbox = Sandbox::new();
    let profile = format!(
        "[[chaos.profile]]\nname = \"kill\"\nduration = \"5m\"\ntarget = {{ container = \"{}\" }}\nfaults = [{{ kind = \"container\", action = \"kill\" }}]\nhypothesis = {{ steady_state = [\"demo\"], recover_within = \"20s\" }}\n",
        container.name
    );
    let extra = format!(
        "{}{}",
        docker_probe("demo", &container.name, RESTART_HEAL),
        chaos_section("5e25", &profile)
    );
    sandbox.write_config(&sandbox.config("", &extra));
    let daemon = Daemon::start(&sandbox, |_| {});
    wait_up_and_following(&daemon, "demo");

    let started = daemon.ctl_json(&["chaos", "start", "kill"]);
    let id = started["id"].as_str().unwrap().to_string();
    wait_for(Duration::from_secs(30), "incident closed", || {
        daemon.events("incident_closed").into_iter().next()
    });
    daemon.ctl_json(&["chaos", "stop", &id]);

    let report = report(&daemon, &id);
    assert_eq!(report["verdict"]["outcome"], "held", "{report:#}");
    let events = daemon.events("chaos_started,probe_transition,heal_started");
    let at = |kind: &str, to: Option<&str>| {
        events
            .iter()
            .find(|e| e["kind"] == kind && to.is_none_or(|to| e["to"] == to))
            .and_then(|e| e["at"].as_i64())
            .unwrap_or_else(|| panic!("no {kind} {to:?} in {events:?}"))
    };
    // the kill takes effect while the fault is applied, before chaos_started: time zero is
    // the experiment's start (journaled before any change)
    let start = report["created"].as_i64().unwrap();
    let (applied, down, heal) = (
        at("chaos_started", None),
        at("probe_transition", Some("down")),
        at("heal_started", None),
    );
    assert!(
        start <= down && down <= applied + 5_000,
        "{start} {down} {applied}"
    );
    let up = events
        .iter()
        .filter(|e| e["kind"] == "probe_transition" && e["to"] == "up")
        .filter_map(|e| e["at"].as_i64())
        .find(|t| *t > down)
        .unwrap();
    let demo = probe_times(&report, "demo");
    assert_eq!(demo["time_to_detect_ms"], down - start, "{demo}");
    assert_eq!(demo["time_to_act_ms"], heal - down, "{demo}");
    assert_eq!(demo["time_to_recover_ms"], up - down, "{demo}");
    assert_eq!(demo["heals"], 1, "{demo}");
    let kinds: Vec<&str> = report["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    for kind in [
        "chaos_started",
        "container_event",
        "heal_started",
        "heal_finished",
        "incident_closed",
        "chaos_rolled_back",
    ] {
        assert!(kinds.contains(&kind), "{kind} not in {kinds:?}");
    }
    assert!(daemon.stop().success());
}
