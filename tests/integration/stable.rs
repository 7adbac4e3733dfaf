//! Recoveries that hold, against the real Docker engine: a container that exits 2 s after each
//! start is a crash loop, never recovered; a container killed once recovers once its Up held.

use std::time::Duration;

use serde_json::Value;

use crate::harness::{
    docker, free_port, require_docker, text, wait_for, Daemon, Sandbox, TestContainer,
};
use crate::notify::{Receiver, SECRET};

/// A docker probe of `container` (woken by the engine's events), healed by restarting it with
/// `heal_extra` added to the heal table, alerting a signed webhook on 127.0.0.1:`port`.
fn config(container: &str, heal_extra: &str, port: u16) -> String {
    format!(
        r#"[[probe]]
name = "app"
kind = "docker"
container = "{container}"
interval = "500ms"
timeout = "400ms"
fail_after = 1
recover_after = 1
heal = {{ action = "docker_restart", stop_timeout = "1s", window = "10m", backoff = "200ms", verify_within = "5s", {heal_extra} }}

# The gave-up shares its subject and state (firing) with the first heal's alert; today's
# outbox would drop it as a duplicate within the default 5 min window (issue 14 point 4).
[notify]
max_retry_delay = "1s"
dedup_window = "0s"

[[notify.channel]]
name = "hook"
kind = "webhook"
url = "http://127.0.0.1:{port}/hook"
secret = "{SECRET}"
"#
    )
}

fn heal_of(daemon: &Daemon) -> Value {
    daemon.ctl_json(&["status"])["heals"][0].clone()
}

/// `sh -c 'sleep 2; exit 1'`: up for 2 s after each start, with `stable_for` 5 s and a budget
/// of 3. Each restart brings it Up and each Up falls within 2 s: relapses, a crash loop from
/// the second on, and a gave-up that says so in the event, in `sentinelctl status` and at the
/// webhook. Never recovered: no `incident_closed`, no resolved alert, no recovery counted.
#[test]
fn a_container_exiting_every_2s_is_a_crash_loop_never_recovered() {
    if !require_docker("a_container_exiting_every_2s_is_a_crash_loop_never_recovered") {
        return;
    }
    let port = free_port();
    let receiver = Receiver::start(port);
    let container = TestContainer::run("crashloop2s", &["sh", "-c", "sleep 2; exit 1"]);
    let sandbox = Sandbox::new();
    let heal = r#"max_attempts = 3, stable_for = "5s""#;
    sandbox.write_config(&sandbox.config("", &config(&container.name, heal, port)));
    let daemon = Daemon::start(&sandbox, |_| {});

    let gave_up = wait_for(Duration::from_secs(60), "heal_gave_up", || {
        daemon.events("heal_gave_up").into_iter().next()
    });
    assert_eq!(gave_up["attempts"], 3, "{gave_up}");
    assert_eq!(gave_up["reason"], "crash_loop", "{gave_up}");
    let relapses = daemon.events("incident_relapsed");
    assert!(relapses.len() >= 2, "{relapses:?}");
    for relapse in &relapses {
        let held = relapse["held_ms"].as_u64().unwrap();
        assert!(held < 5_000, "{relapse}");
        assert_eq!(relapse["stable_for_ms"], 5_000);
    }
    assert_eq!(relapses.last().unwrap()["reason"], "crash_loop");
    assert_eq!(daemon.events("heal_started").len(), 3);
    // The probe did come Up after each restart: the heals were not simply failing.
    let ups = daemon
        .events("probe_transition")
        .into_iter()
        .filter(|t| t["to"] == "up")
        .count();
    assert!(ups >= 3, "{ups} Up transitions");
    assert!(
        daemon.events("incident_closed").is_empty(),
        "a crash loop was reported recovered"
    );

    let heal = heal_of(&daemon);
    assert_eq!(heal["gave_up"], true, "{heal}");
    assert_eq!(heal["crash_loop"], true, "{heal}");
    assert_eq!(heal["recovered_total"], 0, "{heal}");
    let status = text(&daemon.ctl(&["status"]).stdout);
    let line = status
        .lines()
        .find(|l| l.starts_with("app "))
        .unwrap_or_else(|| panic!("{status}"));
    assert!(line.contains("crash loop: gave up"), "{status}");
    assert_eq!(heal["heals_total"], 3, "{heal}");

    let hooks = wait_for(
        Duration::from_secs(20),
        "the gave-up at the webhook",
        || {
            let hooks = receiver.at("/hook");
            hooks
                .iter()
                .any(|h| h.body["kind"] == "heal_gave_up")
                .then_some(hooks)
        },
    );
    let message = hooks
        .iter()
        .find(|h| h.body["kind"] == "heal_gave_up")
        .unwrap();
    let words = message.body["text"].as_str().unwrap();
    assert!(
        words.starts_with(
            "🛑 app: crash loop: down again right after each of 3 heals; giving up until "
        ),
        "{words}"
    );
    assert!(
        hooks.iter().all(|h| h.body["status"] != "resolved"),
        "a resolve was sent: {hooks:?}"
    );
    assert!(daemon.stop().success());
}

/// Killed once, restarted by the heal, and Up for good: the incident closes only once the Up
/// held for `stable_for` (1 s), and its time to recover runs to the start of that Up.
#[test]
fn a_container_killed_once_recovers_after_its_up_held() {
    if !require_docker("a_container_killed_once_recovers_after_its_up_held") {
        return;
    }
    let port = free_port();
    let _receiver = Receiver::start(port);
    let container = TestContainer::run("holds", &["sleep", "3600"]);
    let sandbox = Sandbox::new();
    let heal = r#"stable_for = "1s""#;
    sandbox.write_config(&sandbox.config("", &config(&container.name, heal, port)));
    let daemon = Daemon::start(&sandbox, |_| {});
    wait_for(
        Duration::from_secs(15),
        "probe up and events followed",
        || {
            let connected = !daemon.events("docker_engine").is_empty();
            (connected && daemon.probe("app")["state"] == "up").then_some(())
        },
    );

    docker(&["kill", &container.name]);
    let closed = wait_for(Duration::from_secs(30), "incident_closed", || {
        daemon.events("incident_closed").into_iter().next()
    });
    assert_eq!(closed["healed"], true, "{closed}");
    let transitions = daemon.events("probe_transition");
    let at = |to: &str| {
        transitions
            .iter()
            .filter(|t| t["to"] == to)
            .map(|t| t["at"].as_i64().unwrap())
            .next_back()
            .unwrap_or_else(|| panic!("no transition to {to}: {transitions:?}"))
    };
    let (down, up) = (at("down"), at("up"));
    let closed_at = closed["at"].as_i64().unwrap();
    assert!(
        closed_at - up >= 1_000,
        "closed {} ms after the Up, before it held 1 s",
        closed_at - up
    );
    let recover = closed["time_to_recover_ms"].as_i64().unwrap();
    // From the fault (the container's death, just before the Down) to the Up: not to the close.
    assert!(
        recover <= up - down + 500,
        "time to recover {recover} ms: Down at {down}, Up at {up}, closed at {closed_at}"
    );
    assert!(daemon.events("incident_relapsed").is_empty());
    assert!(daemon.events("heal_gave_up").is_empty());
    let heal = heal_of(&daemon);
    assert_eq!(heal["recovered_total"], 1, "{heal}");
    assert_eq!(heal["crash_loop"], false, "{heal}");
    assert_eq!(heal["heals_total"], 1, "{heal}");
    assert_eq!(
        docker(&["inspect", "-f", "{{.State.Running}}", &container.name]),
        "true"
    );
    assert!(daemon.stop().success());
}
