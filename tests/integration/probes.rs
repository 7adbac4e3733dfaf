//! Probes through the real daemon: an exec probe toggled by a file goes Down and recovers, with
//! transitions journaled and logged in the original Sentinel shape; HTTP JSON assertions.

use std::time::Duration;

use crate::harness::{text, wait_for, Daemon, Sandbox};

fn probe<'a>(status: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    status["probes"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == name)
}

#[test]
fn exec_probe_down_and_recovery_with_json_http_probe() {
    let sandbox = Sandbox::new();
    let marker = sandbox.path().join("service-alive");
    std::fs::write(&marker, "").unwrap();
    let probes = format!(
        r#"[[probe]]
name = "marker"
kind = "exec"
command = ["/bin/sh", "-c", "test -f '{marker}' && echo alive"]
output_regex = "^alive"
interval = "100ms"
timeout = "100ms"
fail_after = 2
recover_after = 2

[[probe]]
name = "healthz-json"
kind = "http"
url = "http://127.0.0.1:{port}/healthz"
expect_json = {{ pointer = "/status", equals = "ok" }}
max_latency = "500ms"
interval = "100ms"
timeout = "100ms"
"#,
        marker = marker.display(),
        port = sandbox.port
    );
    sandbox.write_config(&sandbox.config("", &probes));
    let daemon = Daemon::start(&sandbox, |_| {});
    let state = |name: &str| {
        let status = daemon.ctl_json(&["status"]);
        probe(&status, name).map(|p| p["state"].as_str().unwrap().to_string())
    };
    wait_for(Duration::from_secs(10), "both probes up", || {
        (state("marker").as_deref() == Some("up") && state("healthz-json").as_deref() == Some("up"))
            .then_some(())
    });

    std::fs::remove_file(&marker).unwrap();
    let down = wait_for(Duration::from_secs(10), "marker down", || {
        let status = daemon.ctl_json(&["status"]);
        let p = probe(&status, "marker")?.clone();
        (p["state"] == "down").then_some(p)
    });
    assert!(
        down["last_failure"]
            .as_str()
            .unwrap()
            .starts_with("exit_status: exit code 1"),
        "{down}"
    );

    std::fs::write(&marker, "").unwrap();
    let up = wait_for(Duration::from_secs(10), "marker up again", || {
        let status = daemon.ctl_json(&["status"]);
        let p = probe(&status, "marker")?.clone();
        (p["state"] == "up").then_some(p)
    });
    assert_eq!(up["recoveries_total"], 1);

    // unknown -> up, up -> failing, failing -> down, down -> recovering, recovering -> up
    let out = daemon.ctl(&["--json", "events", "--kind", "probe_transition"]);
    let path: Vec<String> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["probe"] == "marker")
        .map(|e| {
            format!(
                "{}>{}",
                e["from"].as_str().unwrap(),
                e["to"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        path,
        [
            "unknown>up",
            "up>failing",
            "failing>down",
            "down>recovering",
            "recovering>up"
        ]
    );

    let log = daemon.stderr();
    assert!(
        log.contains(
            "service=marker status=down status_code=na event=check_failed reason=exit_status"
        ),
        "{log}"
    );
    assert!(
        log.contains("service=marker status=up status_code=na recoveries_total=1 event=healthy"),
        "{log}"
    );
    assert!(log.contains(
        "service=healthz-json status=up status_code=200 recoveries_total=0 event=healthy"
    ));
    assert!(daemon.stop().success());

    // The recovery count survives a restart of the daemon (read back from the journal).
    let daemon = Daemon::start(&sandbox, |_| {});
    let again = wait_for(Duration::from_secs(10), "marker up after restart", || {
        let p = daemon.probe("marker");
        (p["state"] == "up").then_some(p)
    });
    assert_eq!(again["recoveries_total"], 1);
    assert!(daemon.stop().success());
}

#[test]
fn dependants_restart_in_order_after_their_dependency_recovers() {
    let sandbox = Sandbox::new();
    let marker = sandbox.path().join("db-alive");
    let restarts = sandbox.path().join("restarts.log");
    std::fs::write(&marker, "").unwrap();
    let exec_probe = |name: &str, check: &str, extra: &str| {
        format!(
            "[[probe]]\nname = \"{name}\"\nkind = \"exec\"\ncommand = [\"/bin/sh\", \"-c\", \"{check}\"]\ninterval = \"100ms\"\ntimeout = \"100ms\"\nfail_after = 1\n{extra}\n"
        )
    };
    let heal = |name: &str| {
        format!(
            "heal = {{ stable_for = \"0s\", action = \"exec\", command = [\"/bin/sh\", \"-c\", \"echo {name} >> {}\"] }}",
            restarts.display()
        )
    };
    let probes = [
        // listed before its parent on purpose: order comes from the dependencies, not the file
        exec_probe(
            "web",
            "true",
            &format!("{}\ndepends_on = [\"app\"]", heal("web")),
        ),
        exec_probe(
            "app",
            "true",
            &format!("{}\ndepends_on = [\"db\"]", heal("app")),
        ),
        exec_probe("db", &format!("test -f {}", marker.display()), ""),
    ]
    .concat();
    sandbox.write_config(&sandbox.config("", &probes));
    let daemon = Daemon::start(&sandbox, |_| {});
    let state = |name: &str| {
        let status = daemon.ctl_json(&["status"]);
        probe(&status, name).map(|p| p["state"].as_str().unwrap().to_string())
    };
    wait_for(Duration::from_secs(10), "db up", || {
        (state("db").as_deref() == Some("up")).then_some(())
    });

    std::fs::remove_file(&marker).unwrap();
    wait_for(Duration::from_secs(10), "db down", || {
        (state("db").as_deref() == Some("down")).then_some(())
    });
    assert!(
        !restarts.exists(),
        "nothing restarts while the dependency is down"
    );
    std::fs::write(&marker, "").unwrap();

    let log = wait_for(Duration::from_secs(10), "both dependants restarted", || {
        let log = std::fs::read_to_string(&restarts).unwrap_or_default();
        (log.lines().count() == 2).then_some(log)
    });
    assert_eq!(log, "app\nweb\n");
    let out = daemon.ctl(&[
        "--json",
        "events",
        "--kind",
        "dependency_recovered,heal_started",
    ]);
    let events: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events[0]["kind"], "dependency_recovered");
    assert_eq!(events[0]["parent"], "db");
    assert_eq!(events[0]["dependants"], serde_json::json!(["app", "web"]));
    assert!(
        events[1..].iter().all(|e| e["cause"] == "dependency"),
        "{events:?}"
    );
    assert!(daemon.stop().success());
}

/// `(state, process group)` of a live process from /proc/PID/stat; None once it is gone.
fn state_and_group(pid: u32) -> Option<(char, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = stat[stat.rfind(')')? + 2..].split(' ');
    let state = fields.next()?.chars().next()?;
    let group = fields.nth(1)?.parse().ok()?;
    Some((state, group))
}

/// Live (not zombie) processes in process group `group`.
fn members_of_group(group: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(
            |pid| matches!(state_and_group(*pid), Some((state, g)) if g == group && state != 'Z'),
        )
        .collect()
}

/// Peak resident memory of a process in KiB (VmHWM).
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn a_hanging_flooding_heal_command_is_capped_and_its_whole_process_group_killed() {
    let sandbox = Sandbox::new();
    let alive = sandbox.path().join("alive");
    let pids = sandbox.path().join("heal-pids");
    std::fs::write(&alive, "").unwrap();
    // the heal notes its group, starts a grandchild meant to outlive it, floods 100 MB on each
    // stream, then hangs past its timeout
    let flood = 100_000_000;
    let heal = format!(
        "echo $$ > {pids}; sleep 600 & echo $! >> {pids}; head -c {flood} /dev/zero; head -c {flood} /dev/zero >&2; sleep 600",
        pids = pids.display()
    );
    let probe = format!(
        "[[probe]]\nname = \"svc\"\nkind = \"exec\"\ncommand = [\"test\", \"-f\", \"{}\"]\ninterval = \"100ms\"\ntimeout = \"100ms\"\nfail_after = 1\nheal = {{ stable_for = \"0s\", action = \"exec\", command = [\"/bin/sh\", \"-c\", \"{heal}\"], timeout = \"3s\", max_attempts = 1 }}\n",
        alive.display()
    );
    sandbox.write_config(&sandbox.config("", &probe));
    let daemon = Daemon::start(&sandbox, |_| {});
    daemon.wait_state("svc", "up");
    let pid = daemon.child.id();
    let before = peak_rss_kib(pid);

    std::fs::remove_file(&alive).unwrap();
    let finished = wait_for(Duration::from_secs(20), "the heal to end", || {
        daemon.events("heal_finished").into_iter().next()
    });
    assert_eq!(finished["ok"], false, "{finished}");
    assert!(
        finished["detail"]
            .as_str()
            .unwrap()
            .ends_with("did not finish within 3s; its process group was killed"),
        "{finished}"
    );
    let noted = std::fs::read_to_string(&pids).unwrap();
    let noted: Vec<u32> = noted.lines().map(|l| l.parse().unwrap()).collect();
    let (leader, grandchild) = (noted[0], noted[1]);
    // nothing of the group is left: not the shell, not its `sleep`, not the grandchild
    wait_for(
        Duration::from_secs(5),
        "the heal's process group to die",
        || members_of_group(leader).is_empty().then_some(()),
    );
    assert!(
        state_and_group(grandchild).is_none_or(|(state, _)| state == 'Z'),
        "the grandchild {grandchild} survived"
    );
    // 200 MB went through the pipes; the daemon's peak memory barely moved
    let grown_kib = peak_rss_kib(pid).saturating_sub(before);
    assert!(
        grown_kib < 32 * 1024,
        "peak RSS grew by {grown_kib} KiB while the heal flooded 200 MB"
    );
    eprintln!("peak RSS before {before} KiB, grew by {grown_kib} KiB");
    assert!(daemon.stop().success());
}
