//! The docker probe against a real engine: a killed container is detected from the engine's
//! event stream (long before the probe's interval), and its restart is seen as a recovery.

use std::time::{Duration, Instant};

use crate::harness::{docker, require_docker, text, wait_for, Daemon, Sandbox, TestContainer};

fn probe_state(daemon: &Daemon, name: &str) -> serde_json::Value {
    let status = daemon.ctl_json(&["status"]);
    status["probes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .cloned()
        .unwrap_or_default()
}

#[test]
fn killed_container_is_detected_from_events_and_recovery_counted() {
    if !require_docker("killed_container_is_detected_from_events_and_recovery_counted") {
        return;
    }
    let container = TestContainer::run("demo", &["sleep", "3600"]);
    let sandbox = Sandbox::new();
    let probes = format!(
        r#"[[probe]]
name = "demo"
kind = "docker"
container = "{}"
interval = "30s"
timeout = "5s"
fail_after = 1

[[probe]]
name = "ghost"
kind = "docker"
container = "sentinel-test-no-such-container"
interval = "30s"
fail_after = 1
"#,
        container.name
    );
    sandbox.write_config(&sandbox.config("", &probes));
    let daemon = Daemon::start(&sandbox, |_| {});
    wait_for(Duration::from_secs(15), "demo up", || {
        (probe_state(&daemon, "demo")["state"] == "up").then_some(())
    });
    let ghost = wait_for(Duration::from_secs(15), "ghost down", || {
        let p = probe_state(&daemon, "ghost");
        (p["state"] == "down").then_some(p)
    });
    assert!(
        ghost["last_failure"]
            .as_str()
            .unwrap()
            .starts_with("container_missing:"),
        "{ghost}"
    );
    // the event stream is connected before we kill (its first event is journaled)
    wait_for(Duration::from_secs(15), "docker_engine connected", || {
        let out = daemon.ctl(&["--json", "events", "--kind", "docker_engine"]);
        text(&out.stdout)
            .contains("\"connected\":true")
            .then_some(())
    });

    let killed = Instant::now();
    docker(&["kill", &container.name]);
    let down = wait_for(Duration::from_secs(10), "demo down", || {
        let p = probe_state(&daemon, "demo");
        (p["state"] == "down").then_some(p)
    });
    // far below the 30 s interval: the die event woke the probe
    assert!(killed.elapsed() < Duration::from_secs(10));
    assert!(
        down["last_failure"]
            .as_str()
            .unwrap()
            .starts_with("container_exited: exited, exit code 137"),
        "{down}"
    );

    docker(&["start", &container.name]);
    let up = wait_for(Duration::from_secs(10), "demo up again", || {
        let p = probe_state(&daemon, "demo");
        (p["state"] == "up").then_some(p)
    });
    assert_eq!(up["recoveries_total"], 1);

    let events = text(&daemon.ctl(&["events", "--kind", "container_event"]).stdout);
    assert!(
        events.contains(&format!(
            "container {}: die (exit code 137)",
            container.name
        )),
        "{events}"
    );
    let log = daemon.stderr();
    assert!(
        log.contains(
            "service=demo status=down status_code=na event=container_down reason=container_exited"
        ),
        "{log}"
    );
    assert!(daemon.stop().success());
}
