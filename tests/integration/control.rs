//! sentinelctl against a running sentineld: status, events, version, errors, and who may reload.

use std::time::Duration;

use crate::harness::{
    ctl_as, ctl_as_nobody, json_lines, require_root, text, wait_for, Daemon, Sandbox,
};

#[test]
fn status_events_and_version_against_a_running_daemon() {
    let sandbox = Sandbox::new();
    sandbox.write_config(&sandbox.config("", &sandbox.healthz_probe("self")));
    let daemon = Daemon::start(&sandbox, |_| {});

    // the self-probe reaches Up through the daemon's own public listener
    let status = wait_for(Duration::from_secs(10), "probe self up", || {
        let status = daemon.ctl_json(&["status"]);
        (status["probes"][0]["state"] == "up").then_some(status)
    });
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
    let file = std::fs::read(sandbox.config_path()).unwrap();
    assert_eq!(status["config_hash"], sentinel::config::content_hash(&file));
    assert_eq!(
        status["config_path"],
        sandbox.config_path().display().to_string()
    );
    assert!(status["last_reload"].is_null());
    assert_eq!(status["probes"][0]["last_status_code"], 200);

    let human = daemon.ctl(&["status"]);
    assert!(human.status.success());
    let human = text(&human.stdout);
    assert!(
        human.starts_with(&format!("sentineld {} (pid ", env!("CARGO_PKG_VERSION"))),
        "{human}"
    );
    let header = human
        .lines()
        .find(|l| l.starts_with("PROBE"))
        .expect(&human);
    let row = human
        .lines()
        .find(|l| l.starts_with("self "))
        .expect(&human);
    // aligned: the STATE column starts at the same offset in header and row
    assert_eq!(header.find("STATE"), row.find("up"), "{human}");

    let probes = text(&daemon.ctl(&["probes"]).stdout);
    let line = probes
        .lines()
        .find(|l| l.starts_with("self "))
        .expect(&probes);
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(words[..3], ["self", "http", "200ms"], "{probes}");
    assert!(line.contains("fail 3 / recover 1"), "{probes}");
    assert!(
        line.ends_with(&format!("GET http://127.0.0.1:{}/healthz", sandbox.port)),
        "{probes}"
    );

    let events = text(&daemon.ctl(&["events"]).stdout);
    assert!(events.lines().next().unwrap().starts_with("ID"), "{events}");
    assert!(events.contains("daemon_started"), "{events}");
    assert!(events.contains("self: unknown -> up"), "{events}");

    let filtered = daemon.ctl(&[
        "--json",
        "events",
        "--kind",
        "probe_transition",
        "--since",
        "10m",
    ]);
    let lines = json_lines(&filtered);
    assert!(!lines.is_empty());
    assert!(lines.iter().all(|e| e["kind"] == "probe_transition"));

    let version = text(&daemon.ctl(&["version"]).stdout);
    assert!(version.contains(&format!("sentinelctl {}", env!("CARGO_PKG_VERSION"))));
    assert!(version.contains(&format!("sentineld   {}", env!("CARGO_PKG_VERSION"))));

    assert!(daemon.stop().success());
}

#[test]
fn events_follow_streams_new_events() {
    let sandbox = Sandbox::new();
    sandbox.write_config(&sandbox.config("", ""));
    let daemon = Daemon::start(&sandbox, |_| {});
    let mut follower = std::process::Command::new(crate::harness::SENTINELCTL)
        .arg("--socket")
        .arg(&daemon.socket)
        .args(["--json", "events", "--follow", "--kind", "config_applied"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    sandbox.write_config(&sandbox.config("", &sandbox.healthz_probe("late")));
    let mut stdout = std::io::BufReader::new(follower.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    let event: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(event["kind"], "config_applied");
    assert_eq!(event["changes"][0], "probe late added");
    // the stream ends when the daemon stops
    assert!(daemon.stop().success());
    let status = wait_for(Duration::from_secs(10), "follower to end", || {
        follower.try_wait().unwrap()
    });
    assert!(status.success());
}

#[test]
fn errors_a_person_can_act_on() {
    let sandbox = Sandbox::new();
    let missing = sandbox.path().join("nope.sock");
    let output = ctl_as(&missing, &["status"], |_| {});
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        text(&output.stderr).trim(),
        format!(
            "sentinelctl: cannot connect to {}: no such file — is sentineld running? (pick another socket with --socket)",
            missing.display()
        )
    );

    // a stale socket file: nobody listens
    let stale = sandbox.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    let output = ctl_as(&stale, &["status"], |_| {});
    assert!(
        text(&output.stderr).contains("connection refused — sentineld is not running"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn a_missing_config_is_said_once_and_creates_no_state() {
    let sandbox = Sandbox::new();
    let missing = sandbox.path().join("nope.toml");
    // Without a config the daemon falls back to the default state directory to look for
    // experiments to roll back; where there is none, it must not make one.
    let default_state = std::path::Path::new("/var/lib/sentinel");
    let existed = default_state.exists();
    let output = std::process::Command::new(crate::harness::SENTINELD)
        .arg("--config")
        .arg(&missing)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    let said = format!(
        "sentineld: cannot read config {}: No such file or directory (os error 2)",
        missing.display()
    );
    assert_eq!(stderr.lines().last(), Some(said.as_str()), "{stderr}");
    if !existed {
        assert!(!default_state.exists(), "{stderr}");
    }
}

#[test]
fn nobody_reads_status_but_gets_403_on_reload_and_calls_are_journaled() {
    if !require_root("nobody_reads_status_but_gets_403_on_reload") {
        return;
    }
    let sandbox = Sandbox::new();
    // world-connectable so `nobody` gets in; group root so `nobody` is not a member
    sandbox.write_config(&sandbox.config("socket_group = \"root\"\nsocket_mode = \"0666\"", ""));
    let daemon = Daemon::start(&sandbox, |_| {});

    let status = ctl_as_nobody(&daemon.socket, &["status"]);
    assert!(status.status.success(), "{}", text(&status.stderr));
    assert!(text(&status.stdout).contains("sentineld"));

    let reload = ctl_as_nobody(&daemon.socket, &["reload"]);
    assert_eq!(reload.status.code(), Some(1));
    assert_eq!(
        text(&reload.stderr).trim(),
        "sentinelctl: permission denied: nobody (uid 65534) is neither root nor a member of group root — add your user to group root"
    );

    let reload = daemon.ctl(&["reload"]);
    assert!(reload.status.success(), "{}", text(&reload.stderr));
    assert_eq!(
        text(&reload.stdout).trim(),
        "config unchanged; nothing to do"
    );

    let audit = wait_for(Duration::from_secs(5), "two control_request events", || {
        let events = daemon.events("control_request");
        (events.len() == 2).then_some(events)
    });
    assert_eq!(audit[0]["uid"], 65534);
    assert_eq!(audit[0]["status"], 403);
    assert!(audit[0]["pid"].as_i64().unwrap() > 0);
    assert_eq!(audit[1]["uid"], 0);
    assert_eq!(audit[1]["status"], 200);
    assert!(daemon.stop().success());
}

#[test]
fn socket_is_created_with_the_configured_mode() {
    use std::os::unix::fs::PermissionsExt;
    let sandbox = Sandbox::new();
    sandbox.write_config(&sandbox.config("socket_mode = \"0640\"", ""));
    let daemon = Daemon::start(&sandbox, |_| {});
    let mode = std::fs::metadata(&daemon.socket)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o640);
    // a second daemon on the same state dir and socket refuses to start instead of stealing them
    let second = std::process::Command::new(crate::harness::SENTINELD)
        .arg("--config")
        .arg(sandbox.config_path())
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(1));
    assert!(
        text(&second.stderr).contains(&format!(
            "sentineld (pid {}) is running on state directory",
            daemon.child.id()
        )),
        "{}",
        text(&second.stderr)
    );
    assert!(daemon.stop().success());
}
