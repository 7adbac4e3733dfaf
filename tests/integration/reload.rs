//! Hot reload: a broken config is rejected with file:line:col and the old one keeps running;
//! a valid one is applied as a diff on `sentinelctl reload`, SIGHUP, and a file change.

use std::time::Duration;

use nix::sys::signal::Signal;

use crate::harness::{text, wait_for, Daemon, Sandbox};

fn probe_since(status: &serde_json::Value, name: &str) -> Option<i64> {
    status["probes"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == name)?["since"]
        .as_i64()
}

fn probe_names(status: &serde_json::Value) -> Vec<String> {
    status["probes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect()
}

/// A daemon running `sandbox`'s config with the fast `api` probe, and its status once `api` is up.
fn running_api(sandbox: &Sandbox) -> (String, Daemon, serde_json::Value) {
    let good = sandbox.config("", &sandbox.healthz_probe("api"));
    sandbox.write_config(&good);
    let daemon = Daemon::start(sandbox, |_| {});
    let before = wait_for(Duration::from_secs(10), "api up", || {
        let s = daemon.ctl_json(&["status"]);
        (s["probes"][0]["state"] == "up").then_some(s)
    });
    (good, daemon, before)
}

/// Writes `broken` and reloads: rejected with `expected` (on stderr and in the journal), and
/// the config in force when `before` was taken keeps running, its probe untouched.
fn assert_reload_rejected(
    sandbox: &Sandbox,
    daemon: &Daemon,
    before: &serde_json::Value,
    broken: &str,
    expected: &str,
) {
    // The watcher sees the write too; either way it must be rejected.
    sandbox.write_config(broken);
    let output = daemon.ctl(&["reload"]);
    assert_eq!(
        output.status.code(),
        Some(1),
        "stdout: {}",
        text(&output.stdout)
    );
    let said = text(&output.stderr);
    assert!(said.contains(expected), "want {expected}\n got {said}");
    assert!(said.contains("the running config is unchanged"), "{said}");

    let after = daemon.ctl_json(&["status"]);
    assert_eq!(
        after["config_hash"], before["config_hash"],
        "old config stays in force"
    );
    assert_eq!(after["last_reload"]["outcome"], "rejected");
    assert_eq!(probe_names(&after), ["api"]);
    assert_eq!(
        probe_since(&after, "api"),
        probe_since(before, "api"),
        "probe kept running"
    );
    assert_eq!(after["probes"][0]["state"], "up");
    let events = text(&daemon.ctl(&["events", "--kind", "config_rejected"]).stdout);
    assert!(events.contains(expected), "{events}");
    assert!(daemon
        .stderr()
        .contains("config rejected, keeping the running one"));
}

#[test]
fn broken_config_is_rejected_and_the_old_one_keeps_running() {
    let sandbox = Sandbox::new();
    let (good, daemon, before) = running_api(&sandbox);

    // A typo on a known line.
    let broken = good.replace("kind = \"http\"", "kind = \"htp\"");
    let line = broken.lines().position(|l| l.contains("htp")).unwrap() + 1;
    let expected = format!(
        "{}:{line}:8: unknown probe kind \"htp\" (expected one of http, tcp, postgres, docker, exec, tls_cert, dns, icmp, heartbeat, disk, memory, load, systemd_unit)",
        sandbox.config_path().display()
    );
    assert_reload_rejected(&sandbox, &daemon, &before, &broken, &expected);

    // Fixing the file applies it as a diff: `api` is untouched, `db` is added.
    let grown = format!(
        "{good}\n[[probe]]\nname = \"db\"\nkind = \"tcp\"\naddress = \"127.0.0.1:{}\"\ninterval = \"200ms\"\ntimeout = \"200ms\"\n",
        sandbox.port
    );
    sandbox.write_config(&grown);
    let output = daemon.ctl(&["reload"]);
    // The file watcher may have applied it already; then the API reload finds it unchanged.
    let said = text(&output.stdout);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        said.contains("probe db added") || said.contains("config unchanged"),
        "{said}"
    );
    let status = wait_for(Duration::from_secs(10), "db up", || {
        let s = daemon.ctl_json(&["status"]);
        (probe_names(&s) == ["api", "db"] && s["probes"][1]["state"] == "up").then_some(s)
    });
    assert_eq!(
        probe_since(&status, "api"),
        probe_since(&before, "api"),
        "unchanged probe kept its state"
    );
    assert_ne!(status["config_hash"], before["config_hash"]);
    assert!(daemon.stop().success());
}

/// A config that parses but fails a section's own check (here a probe whose `interval` is
/// below its default 5s `timeout`) is rejected at the file:line:col of the key that is written,
/// not at 1:1, and the running config stays in force.
#[test]
fn semantic_error_is_rejected_at_its_key_and_the_old_one_keeps_running() {
    let sandbox = Sandbox::new();
    let (good, daemon, before) = running_api(&sandbox);

    let broken = format!(
        "{good}\n[[probe]]\nname = \"db\"\nkind = \"tcp\"\naddress = \"127.0.0.1:{}\"\ninterval = \"2s\"\n",
        sandbox.port
    );
    let line = broken
        .lines()
        .position(|l| l == "interval = \"2s\"")
        .unwrap()
        + 1;
    let expected = format!(
        "{}:{line}:12: probe \"db\": timeout 5s must be above zero and at most the interval (2s)",
        sandbox.config_path().display()
    );
    assert_reload_rejected(&sandbox, &daemon, &before, &broken, &expected);
    assert!(daemon.stop().success());
}

#[test]
fn sighup_and_file_changes_reload() {
    let sandbox = Sandbox::new();
    let base = sandbox.config("", &sandbox.healthz_probe("api"));
    sandbox.write_config(&base);
    let daemon = Daemon::start(&sandbox, |_| {});

    // SIGHUP with an unchanged file: a reload that finds nothing to do.
    daemon.signal(Signal::SIGHUP);
    wait_for(Duration::from_secs(5), "sighup reload", || {
        let s = daemon.ctl_json(&["status"]);
        (s["last_reload"]["trigger"] == "sighup").then_some(())
    });
    assert_eq!(
        daemon.ctl_json(&["status"])["last_reload"]["outcome"],
        "unchanged"
    );

    // An editor-style save (write temp, rename) is noticed without any signal.
    sandbox.write_config(&format!("{base}\n{}", sandbox.healthz_probe("web")));
    let status = wait_for(Duration::from_secs(10), "file-change reload", || {
        let s = daemon.ctl_json(&["status"]);
        (s["last_reload"]["trigger"] == "file-change" && s["last_reload"]["outcome"] == "applied")
            .then_some(s)
    });
    assert_eq!(status["last_reload"]["changes"][0], "probe web added");

    // A [daemon] change is reported as needing a restart, not half-applied.
    let moved = base.replace("[daemon]\n", "[daemon]\nsocket_mode = \"0600\"\n");
    sandbox.write_config(&moved);
    let status = wait_for(Duration::from_secs(10), "restart-required reload", || {
        let s = daemon.ctl_json(&["status"]);
        (s["last_reload"]["restart_required"][0] == "daemon.socket_mode").then_some(s)
    });
    assert_eq!(status["last_reload"]["changes"][0], "probe web removed");
    assert!(daemon.stop().success());
}
