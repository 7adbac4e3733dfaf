//! The panic policy against the built binary: a panic anywhere ends sentineld with SIGABRT (no
//! half-alive daemon), and the daemon that systemd starts next rolls back what was running.
//! The panics come from the debug-only `SENTINEL_DEBUG_PANIC` trigger (src/daemon/debug_panic.rs).

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use crate::chaos::{chaos_section, NetnsPair};
use crate::harness::{require_root, wait_for, Daemon, Sandbox};

const TRIGGER: &str = "SENTINEL_DEBUG_PANIC";
const SIGABRT: i32 = nix::libc::SIGABRT;

/// Wait for the daemon to exit on its own; its status, and how long it took.
fn exit_of(daemon: &mut Daemon, limit: Duration) -> (ExitStatus, Duration) {
    let started = Instant::now();
    let status = wait_for(limit, "sentineld to end itself after the panic", || {
        daemon.child.try_wait().unwrap()
    });
    (status, started.elapsed())
}

/// Start sentineld with the trigger armed; cores, if the host writes any, stay in the sandbox.
fn start_armed(sandbox: &Sandbox, trigger: &str) -> Daemon {
    Daemon::start(sandbox, |command| {
        command.env(TRIGGER, trigger).current_dir(sandbox.path());
    })
}

#[test]
fn a_panic_in_a_task_or_on_the_blocking_pool_aborts_the_whole_daemon() {
    for trigger in ["config_applied", "blocking:config_applied"] {
        let sandbox = Sandbox::new();
        let config = sandbox.config("", &sandbox.healthz_probe("self"));
        sandbox.write_config(&config);
        let mut daemon = start_armed(&sandbox, trigger);
        daemon.wait_state("self", "up");

        // a reload that changes the config publishes config_applied: the trigger panics
        sandbox.write_config(&format!("{config}\n# changed\n"));
        let _ = daemon.ctl(&["reload"]);
        let (status, took) = exit_of(&mut daemon, Duration::from_secs(10));
        assert_eq!(
            status.signal(),
            Some(SIGABRT),
            "{trigger}: {status} instead of SIGABRT:\n{}",
            daemon.stderr()
        );
        let log = daemon.stderr();
        assert!(
            log.contains("panicked at")
                && log.contains("deliberate panic at config_applied")
                && log.contains("sentineld: aborting on panic"),
            "{trigger}: {log}"
        );
        // nothing is left answering: the control socket is dead, not served by a survivor
        let answer = daemon.ctl(&["status"]);
        assert!(!answer.status.success(), "{trigger}: a survivor answered");
        eprintln!("{trigger}: SIGABRT {took:?} after the reload");
    }
}

/// A v1 memory cgroup of the test's own, removed when dropped.
struct MemoryCgroup(PathBuf);

impl MemoryCgroup {
    fn new() -> Self {
        let path = PathBuf::from(format!(
            "/sys/fs/cgroup/memory/sentinel-test-crash-abort-{}",
            std::process::id()
        ));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    fn limit(&self) -> String {
        std::fs::read_to_string(self.0.join("memory.limit_in_bytes"))
            .unwrap()
            .trim()
            .to_string()
    }
}

impl Drop for MemoryCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[test]
fn a_daemon_aborted_by_a_panic_mid_experiment_is_rolled_back_by_the_next_one() {
    if !require_root("a_daemon_aborted_by_a_panic_mid_experiment_is_rolled_back_by_the_next_one") {
        return;
    }
    let pair = NetnsPair::new("abort");
    let cgroup = MemoryCgroup::new();
    let unlimited = cgroup.limit();
    let cgroup_name = cgroup.0.file_name().unwrap().to_str().unwrap().to_string();
    let sandbox = Sandbox::new();
    let profile = format!(
        "[[chaos.profile]]\nname = \"both\"\nduration = \"10m\"\ntarget = {{ netns = \"{}\", interface = \"veth-a\", cgroup = \"/{cgroup_name}\" }}\nfaults = [{{ kind = \"tbf\", rate = \"1mbit/s\", burst = \"16KiB\", limit = \"64KiB\" }}, {{ kind = \"memory_limit\", max = \"64MiB\" }}]\n",
        pair.a
    );
    sandbox.write_config(&sandbox.config("", &chaos_section("5e43", &profile)));

    // the panic fires when the experiment is journaled as started, wherever the reply is
    let mut daemon = start_armed(&sandbox, "chaos_started");
    let _ = daemon.ctl(&["chaos", "start", "both"]);
    let (status, _) = exit_of(&mut daemon, Duration::from_secs(10));
    assert_eq!(
        status.signal(),
        Some(SIGABRT),
        "{status}:\n{}",
        daemon.stderr()
    );
    drop(daemon);

    // the abort ran no rollback: both faults are still on the kernel
    assert!(NetnsPair::qdiscs(&pair.a, "veth-a").contains("tbf 5e43: root"));
    assert_eq!(cgroup.limit(), (64u64 << 20).to_string());

    // what systemd does next (Restart=on-failure): start the daemon again, unarmed
    let started = Instant::now();
    let daemon = Daemon::start(&sandbox, |_| {});
    let took = started.elapsed();
    assert!(!NetnsPair::qdiscs(&pair.a, "veth-a").contains("5e43:"));
    assert_eq!(cgroup.limit(), unlimited);
    let rolled_back = daemon.events("chaos_rolled_back");
    assert_eq!(rolled_back.len(), 1, "{rolled_back:?}");
    assert_eq!(rolled_back[0]["trigger"], "recovery");
    assert_eq!(rolled_back[0]["ok"], true);
    eprintln!("restarted and rolled back in {took:?}");
    assert!(daemon.stop().success());
}
