//! Maintenance windows against the real daemon: a failing exec probe with an exec heal and a
//! loopback webhook receiver gets neither heal nor message during a window and both after it
//! ends; the journal names who opened and ended it; a scheduled window is in force at start;
//! a run-time window survives a restart; unknown ids and probes are refused.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::harness::{
    assert_failed, ctl_as_nobody, free_port, require_root, text, wait_for, Daemon, Sandbox,
};
use crate::notify::Receiver;

/// An exec probe `app` (up while `flag` exists; labelled team=payments) healed by touching the
/// flag, a webhook channel to `port`, and `extra` (more probes, windows).
fn config(sandbox: &Sandbox, flag: &Path, port: u16, extra: &str) -> String {
    sandbox.config(
        "",
        &format!(
            r#"[[probe]]
name = "app"
kind = "exec"
command = ["/bin/sh", "-c", "test -e {flag}"]
interval = "200ms"
timeout = "200ms"
fail_after = 2
labels = {{ team = "payments" }}
heal = {{ action = "exec", command = ["/bin/touch", "{flag}"], backoff = "0s", verify_within = "30s" }}

[notify]
max_retry_delay = "1s"

[[notify.channel]]
name = "hook"
kind = "webhook"
url = "http://127.0.0.1:{port}/hook"

{extra}
"#,
            flag = flag.display(),
        ),
    )
}

fn stdout(daemon: &Daemon, args: &[&str]) -> String {
    let output = daemon.ctl(args);
    assert!(
        output.status.success(),
        "sentinelctl {args:?}: {}",
        text(&output.stderr)
    );
    text(&output.stdout).trim().to_string()
}

/// The maintenance events of window `id`.
fn window_events(daemon: &Daemon, id: &str) -> Vec<Value> {
    daemon
        .events("maintenance_started,maintenance_ended")
        .into_iter()
        .filter(|e| e["window"] == id)
        .collect()
}

#[test]
fn a_window_holds_back_heal_and_alert_until_it_ends() {
    if !require_root("a_window_holds_back_heal_and_alert_until_it_ends") {
        return;
    }
    let sandbox = Sandbox::new();
    let flag = sandbox.path().join("app.up");
    std::fs::write(&flag, "").unwrap();
    let port = free_port();
    let receiver = Receiver::start(port);
    // `lone` has no heal: it alerts on Down, so it is what the notifier's gate holds back
    let lone_flag = sandbox.path().join("lone.up");
    std::fs::write(&lone_flag, "").unwrap();
    let lone = format!(
        r#"[[probe]]
name = "lone"
kind = "exec"
command = ["/bin/sh", "-c", "test -e {}"]
interval = "200ms"
timeout = "200ms"
fail_after = 2
labels = {{ team = "payments", tier = "batch" }}
"#,
        lone_flag.display()
    );
    sandbox.write_config(&config(&sandbox, &flag, port, &lone));
    let daemon = Daemon::start(&sandbox, |_| {});
    daemon.wait_state("app", "up");
    daemon.wait_state("lone", "up");

    let id = stdout(
        &daemon,
        &[
            "maintenance",
            "start",
            "--for",
            "10m",
            "--label",
            "team=payments",
            "--reason",
            "db migration",
        ],
    );
    assert!(id.starts_with('m'), "{id}");
    let probe = daemon.probe("app");
    assert_eq!(probe["maintenance"]["window"], id.as_str(), "{probe}");
    let status = stdout(&daemon, &["status"]);
    assert!(
        status.contains(&format!("(maintenance {id} until ")),
        "{status}"
    );

    assert_eq!(daemon.probe("lone")["maintenance"]["window"], id.as_str());

    // the probes fail: checked and journaled, but neither healed nor alerted
    std::fs::remove_file(&flag).unwrap();
    std::fs::remove_file(&lone_flag).unwrap();
    daemon.wait_state("app", "down");
    daemon.wait_state("lone", "down");
    std::thread::sleep(Duration::from_secs(3));
    assert!(daemon.events("heal_started").is_empty());
    assert!(!flag.exists(), "healed during the window");
    assert!(
        receiver.at("/hook").is_empty(),
        "{:?}",
        receiver.at("/hook")
    );
    let downs: Vec<Value> = daemon
        .events("probe_transition")
        .into_iter()
        .filter(|e| e["to"] == "down")
        .collect();
    assert_eq!(downs.len(), 2, "{downs:?}");
    let outbox = stdout(&daemon, &["outbox"]);
    assert!(outbox.contains("suppressed"), "{outbox}");

    // the window ends: healed and alerted then
    let ended = stdout(&daemon, &["maintenance", "end", &id]);
    assert_eq!(ended, format!("{id}: ended"));
    wait_for(Duration::from_secs(15), "heal after the window", || {
        (!daemon.events("heal_started").is_empty()).then_some(())
    });
    daemon.wait_state("app", "up");
    let hooks = wait_for(
        Duration::from_secs(15),
        "both alerts after the window",
        || {
            let hooks = receiver.at("/hook");
            let firing = |probe: &str| {
                hooks
                    .iter()
                    .any(|h| h.body["probe"] == probe && h.body["status"] == "firing")
            };
            (firing("app") && firing("lone")).then_some(hooks)
        },
    );
    let app = hooks.iter().find(|h| h.body["probe"] == "app").unwrap();
    assert_eq!(app.body["kind"], "heal_started", "{hooks:?}");
    let lone = hooks.iter().find(|h| h.body["probe"] == "lone").unwrap();
    assert_eq!(lone.body["kind"], "probe_transition", "{hooks:?}");
    assert!(
        lone.body["text"].as_str().unwrap().starts_with("🚨 lone: "),
        "{hooks:?}"
    );

    // journaled with who opened and ended it
    let events = window_events(&daemon, &id);
    assert_eq!(events.len(), 2, "{events:#?}");
    let started = &events[0];
    assert_eq!(started["kind"], "maintenance_started");
    assert_eq!(started["opened_by"]["by"], "operator");
    assert_eq!(started["opened_by"]["uid"], 0);
    assert_eq!(started["opened_by"]["user"], "root");
    assert_eq!(started["scope"]["labels"]["team"], "payments");
    assert_eq!(started["reason"], "db migration");
    assert!(started["schedule"].is_null());
    let end = &events[1];
    assert_eq!(end["kind"], "maintenance_ended");
    assert_eq!(end["early"], true);
    assert_eq!(end["ended_by"]["uid"], 0);
    assert!(end["until"].as_i64() < started["until"].as_i64(), "{end}");

    // uptime leaves the window out: the Down that began in it is no incident, its time no
    // downtime (lone is matched by the window's label, app too)
    let window_ms = end["until"].as_i64().unwrap() - started["from"].as_i64().unwrap();
    let uptime = daemon.ctl_json(&["uptime", "--probe", "lone"]);
    let day = &uptime["probes"][0]["windows"][0];
    assert_eq!(day["window"], "24h", "{uptime}");
    assert!(
        day["excluded_ms"].as_i64().unwrap() >= window_ms - 1000,
        "the window ({window_ms} ms) is not left out: {uptime}"
    );
    assert_eq!(day["incidents"], 0, "{uptime}");
    assert!(daemon.stop().success());
}

#[test]
fn a_scheduled_window_is_in_force_at_start() {
    if !require_root("a_scheduled_window_is_in_force_at_start") {
        return;
    }
    let sandbox = Sandbox::new();
    let flag = sandbox.path().join("app.up");
    let port = free_port();
    let receiver = Receiver::start(port);
    // Opens at the start of this minute (UTC) for 10 minutes: in force at once, and its next
    // occurrence is tomorrow (`* * * * *` would open a new window every minute; its being in
    // force at once is a unit test of `maintenance::windows`).
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (minute, hour) = ((secs / 60) % 60, (secs / 3600) % 24);
    let schedule = format!(
        r#"[[maintenance]]
name = "always"
schedule = "{minute} {hour} * * *"
duration = "10m"
probes = ["app"]
reason = "rolling deploys"
"#
    );
    sandbox.write_config(&config(&sandbox, &flag, port, &schedule));
    // the flag is missing from the start: the probe goes down inside the window
    let daemon = Daemon::start(&sandbox, |_| {});
    let probe = daemon.wait_state("app", "down");
    let window = probe["maintenance"]["window"].as_str().unwrap().to_string();
    assert!(window.starts_with("always@"), "{probe}");
    let list = daemon.ctl_json(&["maintenance", "list"]);
    assert_eq!(list["active"][0]["id"], window.as_str(), "{list}");
    assert_eq!(list["schedules"][0]["name"], "always");
    assert!(list["schedules"][0]["next_start"].is_i64(), "{list}");
    let listed = stdout(&daemon, &["maintenance", "list"]);
    assert!(
        listed.contains(&format!("{minute} {hour} * * * (UTC)")),
        "{listed}"
    );
    let started = wait_for(Duration::from_secs(5), "maintenance_started", || {
        window_events(&daemon, &window).into_iter().next()
    });
    assert_eq!(started["opened_by"]["by"], "schedule");
    assert_eq!(started["opened_by"]["name"], "always");
    assert_eq!(started["schedule"], "always");
    std::thread::sleep(Duration::from_secs(2));
    assert!(!flag.exists(), "healed during the window");
    assert!(daemon.events("heal_started").is_empty());
    assert!(receiver.at("/hook").is_empty());

    // an operator ends this occurrence early: healed then
    stdout(&daemon, &["maintenance", "end", &window]);
    daemon.wait_state("app", "up");
    assert!(flag.exists());
    let events = window_events(&daemon, &window);
    assert_eq!(
        events.last().unwrap()["kind"],
        "maintenance_ended",
        "{events:#?}"
    );
    assert_eq!(events.last().unwrap()["ended_by"]["by"], "operator");
    assert!(daemon.stop().success());
}

#[test]
fn a_run_time_window_survives_a_restart() {
    if !require_root("a_run_time_window_survives_a_restart") {
        return;
    }
    let sandbox = Sandbox::new();
    let flag = sandbox.path().join("app.up");
    std::fs::write(&flag, "").unwrap();
    let port = free_port();
    sandbox.write_config(&config(&sandbox, &flag, port, ""));
    let daemon = Daemon::start(&sandbox, |_| {});
    let id = stdout(
        &daemon,
        &[
            "maintenance",
            "start",
            "--for",
            "30m",
            "--probe",
            "app",
            "--reason",
            "kernel upgrade",
        ],
    );
    // refusals: an unknown probe, an unknown id, a caller outside the socket's group
    assert_failed(
        &daemon.ctl(&[
            "maintenance",
            "start",
            "--for",
            "5m",
            "--probe",
            "nope",
            "--reason",
            "x",
        ]),
        "no such probe: nope",
    );
    assert_failed(
        &daemon.ctl(&["maintenance", "end", "m0"]),
        "no such maintenance window: m0",
    );
    assert_failed(
        &ctl_as_nobody(&daemon.socket, &["maintenance", "end", &id]),
        "permission denied",
    );
    assert!(daemon.stop().success());

    let daemon = Daemon::start(&sandbox, |_| {});
    let probe = daemon.probe("app");
    assert_eq!(probe["maintenance"]["window"], id.as_str(), "{probe}");
    let list = daemon.ctl_json(&["maintenance", "list"]);
    assert_eq!(list["active"][0]["id"], id.as_str(), "{list}");
    assert_eq!(list["active"][0]["opened_by"]["uid"], 0);
    // journaled once: the restart did not open it again
    assert_eq!(window_events(&daemon, &id).len(), 1);
    stdout(&daemon, &["maintenance", "end", &id]);
    assert!(daemon.probe("app")["maintenance"].is_null());
    assert_failed(
        &daemon.ctl(&["maintenance", "end", &id]),
        "no such maintenance window",
    );
    assert!(daemon.stop().success());
}
