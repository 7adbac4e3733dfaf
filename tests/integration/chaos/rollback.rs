//! Rollback after `kill -9` does not depend on the config: a restart on an invalid config still
//! undoes tbf and cgroup v1 limits before it refuses the config, and `sentineld rollback` does
//! it alone (and refuses while a daemon owns the state directory). Every check reads the kernel.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::cgroups::TestCgroup;
use super::{chaos_section, NetnsPair};
use crate::harness::{require_root, text, Daemon, Sandbox, SENTINELD};

const TBF: &str = "{ kind = \"tbf\", rate = \"1mbit/s\", burst = \"16KiB\", limit = \"64KiB\" }";
const CPU: &str = "{ kind = \"cpu_quota\", cpus = 0.1 }";
const MEMORY: &str = "{ kind = \"memory_limit\", max = \"64MiB\" }";

fn profile(name: &str, target: &str, faults: &str) -> String {
    format!("[[chaos.profile]]\nname = \"{name}\"\nduration = \"10m\"\ntarget = {{ {target} }}\nfaults = [{faults}]\n")
}

/// Start sentineld on `config` and profile `name` on it: the daemon and the experiment's id.
fn start_experiment(sandbox: &Sandbox, config: &str, name: &str) -> (Daemon, String) {
    sandbox.write_config(config);
    let daemon = Daemon::start(sandbox, |_| {});
    let started = daemon.ctl_json(&["chaos", "start", name]);
    assert_eq!(started["state"], "active", "{started}");
    (daemon, started["id"].as_str().unwrap().to_string())
}

pub(super) fn kill_9(daemon: Daemon) {
    daemon.signal(nix::sys::signal::Signal::SIGKILL);
    drop(daemon);
}

/// Run sentineld to completion (killed after `limit`, which fails the test).
fn sentineld(args: &[&std::ffi::OsStr], limit: Duration) -> Output {
    let mut child = Command::new(SENTINELD)
        .args(args)
        .args(["--log-format", "text"])
        .env_remove("NOTIFY_SOCKET")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sentineld");
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!(
                "sentineld {args:?} still running after {limit:?}:\n{}",
                text(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// Start sentineld on the sandbox's (invalid) config: it must exit 1 with the same
/// file:line:col error `check-config` gives for that file.
fn restart_on_invalid_config(sandbox: &Sandbox) -> Output {
    let config = sandbox.config_path();
    let checked = sentineld(
        &["check-config".as_ref(), config.as_os_str()],
        Duration::from_secs(10),
    );
    assert_eq!(checked.status.code(), Some(1), "the config must be invalid");
    let error = text(&checked.stderr).trim().to_string();
    assert!(
        error.starts_with(&format!("{}:", config.display())),
        "{error}"
    );
    let output = sentineld(
        &["--config".as_ref(), config.as_os_str()],
        Duration::from_secs(20),
    );
    assert_eq!(
        output.status.code(),
        Some(1),
        "a restart on an invalid config must fail:\n{}",
        text(&output.stderr)
    );
    assert!(
        text(&output.stderr).contains(&error),
        "want the config error {error:?}, got:\n{}",
        text(&output.stderr)
    );
    output
}

pub(super) fn rollback(state_dir: &Path) -> Output {
    sentineld(
        &[
            "rollback".as_ref(),
            "--state-dir".as_ref(),
            state_dir.as_os_str(),
        ],
        Duration::from_secs(20),
    )
}

#[test]
fn kill_9_then_an_invalid_config_still_removes_the_tbf_qdisc() {
    if !require_root("kill_9_then_an_invalid_config_still_removes_the_tbf_qdisc") {
        return;
    }
    let pair = NetnsPair::new("rbtbf");
    let sandbox = Sandbox::new();
    let target = format!("netns = \"{}\", interface = \"veth-a\"", pair.a);
    let valid = sandbox.config("", &chaos_section("5e7a", &profile("slow", &target, TBF)));
    let (daemon, id) = start_experiment(&sandbox, &valid, "slow");
    // Saved while the daemon runs (its reload rejects it), and it is what the restart reads:
    // a TOML syntax error in a probe, so the file does not even parse.
    sandbox.write_config(&format!(
        "{valid}\n[[probe]]\nname = \"api\nkind = \"tcp\"\n"
    ));
    kill_9(daemon);
    assert!(
        NetnsPair::qdiscs(&pair.a, "veth-a").contains("tbf 5e7a: root"),
        "the fault must outlive the daemon"
    );

    restart_on_invalid_config(&sandbox);
    let qdiscs = NetnsPair::qdiscs(&pair.a, "veth-a");
    assert!(
        !qdiscs.contains("5e7a:") && qdiscs.contains("noqueue"),
        "the tbf qdisc is still there after the restart:\n{qdiscs}"
    );

    // Once the config is fixed, the journal tells the same story: one recovery, nothing more.
    sandbox.write_config(&valid);
    let daemon = Daemon::start(&sandbox, |_| {});
    let shown = daemon.ctl_json(&["chaos", "show", &id]);
    assert_eq!(shown["state"], "rolled_back", "{shown}");
    let events = daemon.events("chaos_rolled_back");
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["experiment"], id.as_str());
    assert_eq!(events[0]["trigger"], "recovery");
    assert_eq!(events[0]["ok"], true);
    assert!(daemon.stop().success());
}

#[test]
fn kill_9_then_an_invalid_config_still_restores_the_cgroup_limits() {
    if !require_root("kill_9_then_an_invalid_config_still_restores_the_cgroup_limits") {
        return;
    }
    let cgroup = TestCgroup::new("rbcg", &["cpu", "memory"]);
    let (quota, limit) = cgroup.limits();
    let sandbox = Sandbox::new();
    let target = format!("cgroup = \"/{}\"", cgroup.name);
    let faults = format!("{CPU}, {MEMORY}");
    let valid = sandbox.config(
        "",
        &chaos_section("5e7b", &profile("squeeze", &target, &faults)),
    );
    let (daemon, _) = start_experiment(&sandbox, &valid, "squeeze");
    // Valid TOML, invalid config: an unknown probe kind.
    sandbox.write_config(&format!(
        "{valid}\n[[probe]]\nname = \"api\"\nkind = \"htp\"\n"
    ));
    kill_9(daemon);
    assert_eq!(cgroup.read("cpu", "cpu.cfs_quota_us"), "10000");
    assert_eq!(
        cgroup.read("memory", "memory.limit_in_bytes"),
        (64u64 << 20).to_string()
    );

    restart_on_invalid_config(&sandbox);
    assert_eq!(
        cgroup.read("cpu", "cpu.cfs_quota_us"),
        quota,
        "the CPU quota is still there after the restart"
    );
    assert_eq!(
        cgroup.read("memory", "memory.limit_in_bytes"),
        limit,
        "the memory limit is still there after the restart"
    );
}

#[test]
fn rollback_command_alone_undoes_tbf_and_cgroup_limits_then_has_nothing_to_do() {
    if !require_root("rollback_command_alone_undoes_tbf_and_cgroup_limits_then_has_nothing_to_do") {
        return;
    }
    let pair = NetnsPair::new("rbcmd");
    let cgroup = TestCgroup::new("rbcmd", &["cpu", "memory"]);
    let (quota, limit) = cgroup.limits();
    let sandbox = Sandbox::new();
    let state_dir = sandbox.path().join("state");
    let target = format!(
        "netns = \"{}\", interface = \"veth-a\", cgroup = \"/{}\"",
        pair.a, cgroup.name
    );
    let faults = format!("{TBF}, {CPU}, {MEMORY}");
    let config = sandbox.config(
        "",
        &chaos_section("5e7c", &profile("all", &target, &faults)),
    );
    let (daemon, id) = start_experiment(&sandbox, &config, "all");

    // While the daemon owns the state directory, rollback refuses and changes nothing.
    let refused = rollback(&state_dir);
    assert_eq!(
        refused.status.code(),
        Some(1),
        "rollback must refuse while sentineld runs:\n{}{}",
        text(&refused.stdout),
        text(&refused.stderr)
    );
    let why = text(&refused.stderr);
    assert!(
        why.contains("is running") && why.contains(&daemon.child.id().to_string()),
        "{why}"
    );
    assert!(NetnsPair::qdiscs(&pair.a, "veth-a").contains("tbf 5e7c: root"));
    assert_eq!(cgroup.read("cpu", "cpu.cfs_quota_us"), "10000");

    kill_9(daemon);
    assert!(NetnsPair::qdiscs(&pair.a, "veth-a").contains("tbf 5e7c: root"));
    let first = rollback(&state_dir);
    assert!(
        first.status.success(),
        "rollback failed:\n{}{}",
        text(&first.stdout),
        text(&first.stderr)
    );
    let said = text(&first.stdout);
    assert!(said.contains(&format!("rolled back {id}")), "{said}");
    let qdiscs = NetnsPair::qdiscs(&pair.a, "veth-a");
    assert!(
        !qdiscs.contains("5e7c:") && qdiscs.contains("noqueue"),
        "{qdiscs}"
    );
    assert_eq!(cgroup.read("cpu", "cpu.cfs_quota_us"), quota);
    assert_eq!(cgroup.read("memory", "memory.limit_in_bytes"), limit);

    // Idempotent: nothing is left, whether the state dir is given or read from the config.
    let second = rollback(&state_dir);
    assert!(second.status.success(), "{}", text(&second.stderr));
    assert!(
        text(&second.stdout).contains("nothing to roll back"),
        "{}",
        text(&second.stdout)
    );
    let by_config = sentineld(
        &[
            "--config".as_ref(),
            sandbox.config_path().as_os_str(),
            "rollback".as_ref(),
        ],
        Duration::from_secs(20),
    );
    assert!(by_config.status.success(), "{}", text(&by_config.stderr));
    assert!(
        text(&by_config.stdout).contains("nothing to roll back"),
        "{}",
        text(&by_config.stdout)
    );
}

#[test]
fn a_second_daemon_on_the_same_state_dir_leaves_the_first_ones_experiment_alone() {
    if !require_root("a_second_daemon_on_the_same_state_dir_leaves_the_first_ones_experiment_alone")
    {
        return;
    }
    let pair = NetnsPair::new("rbtwo");
    let sandbox = Sandbox::new();
    let target = format!("netns = \"{}\", interface = \"veth-a\"", pair.a);
    let config = sandbox.config("", &chaos_section("5e7e", &profile("slow", &target, TBF)));
    let (daemon, id) = start_experiment(&sandbox, &config, "slow");

    let second = sentineld(
        &["--config".as_ref(), sandbox.config_path().as_os_str()],
        Duration::from_secs(20),
    );
    assert_eq!(second.status.code(), Some(1), "{}", text(&second.stderr));
    assert!(
        NetnsPair::qdiscs(&pair.a, "veth-a").contains("tbf 5e7e: root"),
        "the second daemon rolled back the first one's experiment:\n{}",
        text(&second.stderr)
    );
    let shown = daemon.ctl_json(&["chaos", "show", &id]);
    assert_eq!(shown["state"], "active", "{shown}");
    assert!(daemon.stop().success());
    assert!(!NetnsPair::qdiscs(&pair.a, "veth-a").contains("5e7e:"));
}
