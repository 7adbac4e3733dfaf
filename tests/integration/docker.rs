//! The docker probe against a real engine: a killed container is detected from the engine's
//! event stream (long before the probe's interval), and its restart is seen as a recovery.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::{docker, require_docker, text, wait_for, Daemon, Sandbox, TestContainer};

/// A docker probe that only the event stream can make fast: 30 s interval, Down on one failure.
pub(crate) fn docker_probe(name: &str, container: &str, extra: &str) -> String {
    format!(
        "[[probe]]\nname = \"{name}\"\nkind = \"docker\"\ncontainer = \"{container}\"\ninterval = \"30s\"\nfail_after = 1\n{extra}\n"
    )
}

/// Wait until `probe` is up and the daemon follows the engine's events (so a kill is seen).
pub(crate) fn wait_up_and_following(daemon: &Daemon, probe: &str) {
    wait_for(
        Duration::from_secs(15),
        "probe up and events followed",
        || {
            let connected = !daemon.events("docker_engine").is_empty();
            (connected && daemon.probe(probe)["state"] == "up").then_some(())
        },
    );
}

pub(crate) const RESTART_HEAL: &str =
    "heal = { action = \"docker_restart\", stop_timeout = \"1s\", verify_within = \"10s\", stable_for = \"0s\" }";

/// A sleeping container (`label`) watched by the docker probe `probe` with `RESTART_HEAL`,
/// returned once the probe is up and the daemon follows the engine's events.
fn watched_container(
    label: &str,
    probe: &str,
    configure: impl FnOnce(&mut Command),
) -> (TestContainer, Sandbox, Daemon) {
    let container = TestContainer::run(label, &["sleep", "3600"]);
    let sandbox = Sandbox::new();
    let probes = docker_probe(probe, &container.name, RESTART_HEAL);
    sandbox.write_config(&sandbox.config("", &probes));
    let daemon = Daemon::start(&sandbox, configure);
    wait_up_and_following(&daemon, probe);
    (container, sandbox, daemon)
}

#[test]
fn killed_container_is_detected_from_events_and_recovery_counted() {
    if !require_docker("killed_container_is_detected_from_events_and_recovery_counted") {
        return;
    }
    let container = TestContainer::run("demo", &["sleep", "3600"]);
    let sandbox = Sandbox::new();
    let probes = [
        docker_probe("demo", &container.name, "timeout = \"5s\""),
        docker_probe("ghost", "sentinel-test-no-such-container", ""),
    ]
    .concat();
    sandbox.write_config(&sandbox.config("", &probes));
    let daemon = Daemon::start(&sandbox, |_| {});
    daemon.wait_state_within("demo", "up", Duration::from_secs(15));
    let ghost = daemon.wait_state_within("ghost", "down", Duration::from_secs(15));
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
    let down = daemon.wait_state("demo", "down");
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
    let up = daemon.wait_state("demo", "up");
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

/// Events the debug build's flood publishes at the container's death: over a hundred times the
/// bus's capacity, from a thread of its own, so every slow subscriber falls behind.
const FLOOD: u32 = 500_000;

#[test]
fn a_container_killed_during_a_bus_flood_is_healed() {
    if !require_docker("a_container_killed_during_a_bus_flood_is_healed") {
        return;
    }
    let (container, _sandbox, daemon) = watched_container("flood", "demo", |command| {
        command.env("SENTINEL_DEBUG_FLOOD", format!("container_event:{FLOOD}"));
    });

    let killed = Instant::now();
    docker(&["kill", &container.name]);
    // Healed: the engine says the container runs again and the probe counted a recovery.
    let healed = || {
        daemon.ctl_json(&["status"])["heals"][0]["heals_total"] == 1
            && daemon.probe("demo")["state"] == "up"
            && daemon.probe("demo")["recoveries_total"] == 1
    };
    while !healed() {
        if killed.elapsed() > Duration::from_secs(60) {
            let log = daemon.stderr();
            let healer: Vec<&str> = log.lines().filter(|l| l.contains("heal")).collect();
            panic!("not healed within 60 s; what the log says of healing: {healer:#?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        docker(&["inspect", "-f", "{{.State.Running}}", &container.name]),
        "true"
    );
    wait_for(Duration::from_secs(60), "the flood's end", || {
        daemon.stderr().contains("flood over").then_some(())
    });
    // The flood did overflow the bus: the journal fell behind and recorded what it missed.
    let dropped = daemon.events("events_dropped");
    let missed: u64 = dropped.iter().filter_map(|e| e["missed"].as_u64()).sum();
    assert!(missed > 4096, "{dropped:?}");
    eprintln!(
        "healed {:?} after the kill; the journal missed {missed} of {FLOOD} flood events",
        killed.elapsed()
    );
    assert!(daemon.stop().success());
}

#[test]
fn killed_container_is_healed_and_the_incident_timed() {
    if !require_docker("killed_container_is_healed_and_the_incident_timed") {
        return;
    }
    let (container, _sandbox, daemon) = watched_container("heal", "demo", |_| {});

    docker(&["kill", &container.name]);
    let closed = wait_for(Duration::from_secs(20), "incident closed", || {
        daemon.events("incident_closed").into_iter().next()
    });
    assert_eq!(closed["healed"], true, "{closed}");
    let detect = closed["time_to_detect_ms"].as_u64().unwrap();
    let act = closed["time_to_act_ms"].as_u64().unwrap();
    let recover = closed["time_to_recover_ms"].as_u64().unwrap();
    assert!(detect < 5_000 && act < 5_000 && recover >= act, "{closed}");
    let finished = daemon.events("heal_finished");
    assert_eq!(finished[0]["ok"], true, "{finished:?}");
    assert!(
        finished[0]["detail"]
            .as_str()
            .unwrap()
            .starts_with("started exited container"),
        "{finished:?}"
    );
    assert_eq!(
        docker(&["inspect", "-f", "{{.State.Running}}", &container.name]),
        "true"
    );

    let status = daemon.ctl_json(&["status"]);
    assert_eq!(status["heals"][0]["budget_remaining"], 2);
    assert_eq!(status["heals"][0]["heals_total"], 1);
    assert_eq!(daemon.probe("demo")["recoveries_total"], 1);
    assert!(text(&daemon.ctl(&["status"]).stdout).contains("2/3"));
    assert!(daemon.stop().success());
}

#[test]
fn crash_loop_exhausts_the_budget_which_survives_a_restart_until_reset() {
    if !require_docker("crash_loop_exhausts_the_budget_which_survives_a_restart_until_reset") {
        return;
    }
    let container = TestContainer::run("crashloop", &["sh", "-c", "sleep 0.3; exit 1"]);
    let sandbox = Sandbox::new();
    let probes = docker_probe(
        "flaky",
        &container.name,
        r#"heal = { action = "docker_restart", max_attempts = 2, window = "10m", backoff = "100ms", verify_within = "2s" }"#,
    );
    sandbox.write_config(&sandbox.config("", &probes));
    let daemon = Daemon::start(&sandbox, |_| {});
    let gave_up = wait_for(Duration::from_secs(30), "heal_gave_up", || {
        daemon.events("heal_gave_up").into_iter().next()
    });
    assert_eq!(gave_up["attempts"], 2);
    assert_eq!(daemon.events("heal_started").len(), 2);
    let status = daemon.ctl_json(&["status"]);
    assert_eq!(status["heals"][0]["gave_up"], true, "{status}");
    assert!(text(&daemon.ctl(&["status"]).stdout).contains("gave up"));
    assert!(daemon.stop().success());

    // After a restart the budget is still spent: the journal remembers the attempts.
    let daemon = Daemon::start(&sandbox, |_| {});
    wait_for(Duration::from_secs(20), "second heal_gave_up", || {
        (daemon.events("heal_gave_up").len() >= 2).then_some(())
    });
    assert_eq!(
        daemon.events("heal_started").len(),
        2,
        "no heal after the restart"
    );

    // An operator reset refills the budget and healing resumes.
    let reset = daemon.ctl(&["heal", "reset", "flaky"]);
    assert!(reset.status.success(), "{}", text(&reset.stderr));
    assert_eq!(text(&reset.stdout).trim(), "flaky: heal reset accepted");
    wait_for(Duration::from_secs(20), "a heal after the reset", || {
        (daemon.events("heal_started").len() > 2).then_some(())
    });
    let unknown = daemon.ctl(&["heal", "now", "nope"]);
    assert_eq!(
        text(&unknown.stderr).trim(),
        "sentinelctl: no such probe: nope"
    );
    assert!(daemon.stop().success());
}

#[test]
fn a_silenced_probe_is_checked_but_not_healed_until_the_silence_is_lifted() {
    if !require_docker("a_silenced_probe_is_checked_but_not_healed_until_the_silence_is_lifted") {
        return;
    }
    let (container, _sandbox, daemon) = watched_container("silence", "quiet", |_| {});
    let silenced = daemon.ctl(&["silence", "quiet", "--for", "30m"]);
    assert!(silenced.status.success(), "{}", text(&silenced.stderr));
    assert!(text(&silenced.stdout).starts_with("quiet: silenced until "));

    docker(&["kill", &container.name]);
    daemon.wait_state("quiet", "down");
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        daemon.events("heal_started").is_empty(),
        "a silenced probe must not be healed"
    );
    assert!(text(&daemon.ctl(&["status"]).stdout).contains("down (silenced)"));

    let lifted = daemon.ctl(&["silence", "quiet", "--for", "0"]);
    assert_eq!(text(&lifted.stdout).trim(), "quiet: silence lifted");
    daemon.wait_state_within("quiet", "up", Duration::from_secs(20));
    assert_eq!(daemon.events("heal_started").len(), 1);
    assert_eq!(daemon.events("probe_silenced").len(), 2);
    let bad = daemon.ctl(&["silence", "quiet", "--for", "soon"]);
    assert!(
        text(&bad.stderr).contains("invalid for=\"soon\""),
        "{}",
        text(&bad.stderr)
    );
    assert!(daemon.stop().success());
}
