//! Heartbeat probes through the real daemon and real HTTP beats (curl): a beat is Up, silence is
//! Down after `every` + `grace`, a fail beat is Down at once with its message, an unknown name is
//! 404 with the count only, a wrong token 401, and a reload keeps the latest beat.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::{text, wait_for, Daemon, Sandbox};

/// `curl -X POST` a beat; the status and the JSON answer.
pub(crate) fn beat(
    port: u16,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, serde_json::Value) {
    let mut command = Command::new("curl");
    command
        .args([
            "-sS",
            "-X",
            "POST",
            "--max-time",
            "5",
            "-w",
            "\n%{http_code}",
        ])
        .args(["--data-binary", body])
        .arg(format!("http://127.0.0.1:{port}{path}"));
    if let Some(token) = token {
        command.args(["-H", &format!("Authorization: Bearer {token}")]);
    }
    let output = command.output().expect("curl (Debian package curl)");
    assert!(output.status.success(), "curl: {}", text(&output.stderr));
    let out = text(&output.stdout);
    let (json, status) = out.rsplit_once('\n').unwrap();
    let json = serde_json::from_str(json).unwrap_or_else(|e| panic!("{out:?}: {e}"));
    (status.parse().unwrap(), json)
}

fn heartbeats(locked_grace: &str) -> String {
    format!(
        r#"[[probe]]
name = "backup"
kind = "heartbeat"
every = "1s"
grace = "1s"

[[probe]]
name = "locked"
kind = "heartbeat"
every = "1h"
grace = "{locked_grace}"
token = "s3cret"
"#
    )
}

#[test]
fn heartbeat_probe_beats_misses_fails_and_refuses() {
    let sandbox = Sandbox::new();
    sandbox.write_config(&sandbox.config("", &heartbeats("1m")));
    let daemon = Daemon::start(&sandbox, |_| {});
    let port = sandbox.port;
    assert_eq!(daemon.probe("backup")["state"], "unknown");
    assert_eq!(daemon.probe("backup")["target"], "push every 1s + grace 1s");

    // A beat: Up.
    let (status, answer) = beat(port, "/v1/heartbeat/backup", None, "");
    assert_eq!(
        (status, &answer["beat"]),
        (200, &serde_json::json!("success"))
    );
    daemon.wait_state_within("backup", "up", Duration::from_secs(2));
    let beaten = Instant::now();

    // No beat: Down after every + grace (2 s), not before.
    let down = daemon.wait_state_within("backup", "down", Duration::from_secs(5));
    let after = beaten.elapsed();
    assert!(
        after >= Duration::from_millis(1900) && after < Duration::from_millis(3500),
        "down {after:?} after the beat"
    );
    let failure = down["last_failure"].as_str().unwrap();
    assert!(
        failure.starts_with("heartbeat_missed: no beat within every 1s + grace 1s (last beat at "),
        "{failure}"
    );

    // A beat brings it back; a fail beat takes it Down at once, with the job's message.
    beat(port, "/v1/heartbeat/backup", None, "");
    daemon.wait_state_within("backup", "up", Duration::from_secs(1));
    let sent = Instant::now();
    let (status, _) = beat(
        port,
        "/v1/heartbeat/backup/fail",
        None,
        "exit 3: disk full\n",
    );
    assert_eq!(status, 200);
    let down = daemon.wait_state_within("backup", "down", Duration::from_secs(1));
    assert!(
        sent.elapsed() < Duration::from_millis(900),
        "{:?}",
        sent.elapsed()
    );
    assert_eq!(
        down["last_failure"],
        "heartbeat_failed: the job sent a fail beat: exit 3: disk full"
    );

    // An unknown name: 404 with the count of heartbeat probes, never their names; none created.
    let (status, answer) = beat(port, "/v1/heartbeat/nightly", None, "");
    assert_eq!(status, 404, "{answer}");
    assert_eq!(answer["heartbeat_probes"], 2);
    assert!(!answer.to_string().contains("backup"), "{answer}");
    assert!(daemon.probe("nightly").is_null());

    // A token-protected probe: no token or a wrong one is 401 and changes nothing.
    assert_eq!(beat(port, "/v1/heartbeat/locked", None, "").0, 401);
    assert_eq!(beat(port, "/v1/heartbeat/locked", Some("s3cre"), "").0, 401);
    assert_eq!(
        beat(port, "/v1/heartbeat/locked/fail", Some("wrong"), "x").0,
        401
    );
    assert_eq!(daemon.probe("locked")["state"], "unknown");
    assert_eq!(
        beat(port, "/v1/heartbeat/locked", Some("s3cret"), "").0,
        200
    );
    daemon.wait_state_within("locked", "up", Duration::from_secs(1));

    // A reload that changes the probe restarts it with its latest beat: Up again at once, not
    // Unknown for the hour of `every`. (Unchanged probes keep running untouched.)
    let since = daemon.probe("locked")["since"].clone();
    sandbox.write_config(&sandbox.config("", &heartbeats("2m")));
    let output = daemon.ctl(&["reload"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    wait_for(Duration::from_secs(2), "locked up after the reload", || {
        let probe = daemon.probe("locked");
        (probe["state"] == "up" && probe["since"] != since).then_some(())
    });
    assert_eq!(daemon.probe("locked")["target"], "push every 1h + grace 2m");

    // The journal has the typed reasons.
    let reasons: Vec<String> = daemon
        .events("probe_transition")
        .iter()
        .filter(|e| e["probe"] == "backup" && e["to"] == "down")
        .map(|e| e["reason"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(reasons, ["heartbeat_missed", "heartbeat_failed"]);
    let log = daemon.stderr();
    assert!(
        log.contains("service=backup status=down status_code=na event=heartbeat_missed reason=heartbeat_missed"),
        "{log}"
    );
    assert!(daemon.stop().success());
}
