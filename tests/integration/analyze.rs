//! `sentinelctl analyze` against the real daemon: an exec probe flipped through a file goes down
//! three times, and the report names it as the probe that fails most, flapping, by reason.

use std::time::Duration;

use crate::harness::{assert_failed, text, wait_for, Daemon, Sandbox};

#[test]
fn analyze_names_a_probe_that_really_failed() {
    let sandbox = Sandbox::new();
    let marker = sandbox.path().join("flaky-alive");
    std::fs::write(&marker, "").unwrap();
    let probes = format!(
        r#"[[probe]]
name = "flaky"
kind = "exec"
command = ["/bin/sh", "-c", "test -f '{marker}'"]
interval = "200ms"
timeout = "200ms"
fail_after = 1
recover_after = 1

[[probe]]
name = "steady"
kind = "exec"
command = ["/bin/true"]
interval = "200ms"
timeout = "200ms"
"#,
        marker = marker.display()
    );
    sandbox.write_config(&sandbox.config("", &probes));
    let daemon = Daemon::start(&sandbox, |_| {});
    let settle = |name: &str, want: &str| daemon.wait_state(name, want);
    settle("flaky", "up");
    settle("steady", "up");
    for _ in 0..3 {
        std::fs::remove_file(&marker).unwrap();
        settle("flaky", "down");
        std::fs::write(&marker, "").unwrap();
        settle("flaky", "up");
    }
    // the journal writes in batches: wait until the last recovery is stored
    wait_for(
        Duration::from_secs(10),
        "three recoveries journaled",
        || {
            let ups = daemon
                .events("probe_transition")
                .iter()
                .filter(|e| e["probe"] == "flaky" && e["to"] == "up")
                .count();
            (ups == 4).then_some(())
        },
    );

    let analysis = daemon.ctl_json(&["analyze", "--since", "1h"]);
    let failing = analysis["failing_probes"].as_array().unwrap();
    assert_eq!(failing.len(), 1, "only flaky failed: {analysis:#}");
    assert_eq!(failing[0]["probe"], "flaky");
    assert_eq!(failing[0]["downs"], 3);
    assert_eq!(failing[0]["still_down"], false);
    assert_eq!(analysis["flapping"][0]["probe"], "flaky");
    assert_eq!(analysis["reason_clusters"][0]["reason"], "exit_status");

    // the evidence ids are the journal's own transitions to down
    let downs: Vec<i64> = daemon
        .events("probe_transition")
        .iter()
        .filter(|e| e["probe"] == "flaky" && e["to"] == "down")
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    let evidence: Vec<i64> = failing[0]["evidence"]["event_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_i64().unwrap())
        .collect();
    assert_eq!(evidence, downs);

    let report = daemon.ctl(&["analyze", "--since", "7d"]);
    assert!(report.status.success(), "{}", text(&report.stderr));
    let report = text(&report.stdout);
    let row = report.lines().find(|l| l.starts_with("flaky")).unwrap();
    assert!(row.contains(" 3 "), "{report}");
    assert!(report.contains("Flapping"), "{report}");
    assert!(
        report.contains("exit_status: 3 outages (flaky ×3)"),
        "{report}"
    );
    assert!(!report.contains("steady"), "{report}");

    assert_failed(
        &daemon.ctl(&["analyze", "--since", "whenever"]),
        "invalid since",
    );
    daemon.stop();
}
