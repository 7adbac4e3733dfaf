//! Drift: someone else changes a running experiment's kernel state (`tc qdisc replace`, a cgroup
//! limit rewritten); sentineld sees it within seconds, says so (`chaos_drifted`), and its rollback
//! leaves their change in place. And the orphan sweep after `kill -9` reaches a container's
//! network namespace that the journaled pin no longer leads to. Every check reads the kernel.

use std::process::Command;
use std::time::{Duration, Instant};

use super::cgroups::TestCgroup;
use super::rollback::kill_9;
use super::{chaos_section, run, NetnsPair};
use crate::harness::{
    docker, require_docker, require_root, wait_for, Daemon, Sandbox, TestContainer,
};

const TBF: &str = "{ kind = \"tbf\", rate = \"1mbit/s\", burst = \"16KiB\", limit = \"64KiB\" }";

fn profile(name: &str, target: &str, faults: &str) -> String {
    format!("[[chaos.profile]]\nname = \"{name}\"\nduration = \"10m\"\ntarget = {{ {target} }}\nfaults = [{faults}]\n")
}

/// A daemon checking for drift every second, with one profile; the experiment started.
fn start(sandbox: &Sandbox, handle: &str, profiles: &str, name: &str) -> (Daemon, String) {
    let chaos = chaos_section(handle, &format!("drift_check = \"1s\"\n\n{profiles}"));
    sandbox.write_config(&sandbox.config("", &chaos));
    let daemon = Daemon::start(sandbox, |_| {});
    let started = daemon.ctl_json(&["chaos", "start", name]);
    assert_eq!(started["state"], "active", "{started}");
    (daemon, started["id"].as_str().unwrap().to_string())
}

/// Wait for the experiment to end on its own (drift, rolled back), and return how long that took, its
/// `chaos_drifted` events and its final view.
fn wait_drifted(
    daemon: &Daemon,
    id: &str,
    since: Instant,
) -> (Duration, Vec<serde_json::Value>, serde_json::Value) {
    let shown = wait_for(Duration::from_secs(15), "the experiment to end", || {
        let shown = daemon.ctl_json(&["chaos", "show", id]);
        let running = ["active", "rolling_back"].contains(&shown["state"].as_str().unwrap_or(""));
        (!running).then_some(shown)
    });
    let took = since.elapsed();
    let drifted = daemon.events("chaos_drifted");
    (took, drifted, shown)
}

#[test]
fn a_replaced_tbf_is_seen_as_drift_and_the_foreign_qdisc_survives_the_rollback() {
    if !require_root("a_replaced_tbf_is_seen_as_drift_and_the_foreign_qdisc_survives_the_rollback")
    {
        return;
    }
    let pair = NetnsPair::new("drtbf");
    let sandbox = Sandbox::new();
    let target = format!("netns = \"{}\", interface = \"veth-a\"", pair.a);
    let (daemon, id) = start(&sandbox, "5ed1", &profile("slow", &target, TBF), "slow");
    assert!(NetnsPair::qdiscs(&pair.a, "veth-a").contains("tbf 5ed1: root"));

    // Someone else puts their own root qdisc in place of ours.
    run(
        "tc",
        &[
            "-n", &pair.a, "qdisc", "replace", "dev", "veth-a", "root", "handle", "77:", "htb",
        ],
    );
    let (took, drifted, shown) = wait_drifted(&daemon, &id, Instant::now());
    eprintln!(
        "drift seen and rolled back {} ms after tc replaced our tbf",
        took.as_millis()
    );
    assert!(took < Duration::from_secs(4), "took {took:?}");
    assert_eq!(shown["state"], "drifted", "{shown}");
    assert_eq!(drifted.len(), 1, "{drifted:?}");
    assert_eq!(drifted[0]["experiment"], id.as_str());
    assert_eq!(drifted[0]["cause"], "qdisc_replaced");
    assert!(
        drifted[0]["detail"].as_str().unwrap().contains("htb 77:"),
        "{drifted:?}"
    );
    let log = shown["log"].to_string();
    assert!(log.contains("left htb 77: in place"), "{log}");

    // Their qdisc is still the root; ours is not anywhere.
    let qdiscs = NetnsPair::qdiscs(&pair.a, "veth-a");
    assert!(
        qdiscs.contains("htb 77: root") && !qdiscs.contains("5ed1:"),
        "{qdiscs}"
    );
    let rolled = daemon.events("chaos_rolled_back");
    assert_eq!(rolled.len(), 1, "{rolled:?}");
    assert_eq!(rolled[0]["trigger"], "drift");
    assert_eq!(rolled[0]["ok"], true);
    assert!(daemon.stop().success());
    // A restart finds nothing to undo and leaves their qdisc alone too.
    let daemon = Daemon::start(&sandbox, |_| {});
    assert!(NetnsPair::qdiscs(&pair.a, "veth-a").contains("htb 77: root"));
    assert!(daemon.stop().success());
}

#[test]
fn a_rewritten_cgroup_limit_is_seen_as_drift_and_kept_while_the_rest_is_restored() {
    if !require_root(
        "a_rewritten_cgroup_limit_is_seen_as_drift_and_kept_while_the_rest_is_restored",
    ) {
        return;
    }
    let cgroup = TestCgroup::new("drcg", &["cpu", "memory"]);
    let (quota, _) = cgroup.limits();
    let sandbox = Sandbox::new();
    let target = format!("cgroup = \"/{}\"", cgroup.name);
    let faults =
        "{ kind = \"cpu_quota\", cpus = 0.1 }, { kind = \"memory_limit\", max = \"64MiB\" }";
    let (daemon, id) = start(
        &sandbox,
        "5ed2",
        &profile("squeeze", &target, faults),
        "squeeze",
    );
    assert_eq!(cgroup.read("cpu", "cpu.cfs_quota_us"), "10000");

    // Someone else (an orchestrator, an operator) sets the memory limit their way.
    let theirs = (128u64 << 20).to_string();
    let file = format!(
        "/sys/fs/cgroup/memory/{}/memory.limit_in_bytes",
        cgroup.name
    );
    std::fs::write(&file, &theirs).unwrap();
    let (took, drifted, shown) = wait_drifted(&daemon, &id, Instant::now());
    eprintln!(
        "drift seen and rolled back {} ms after the limit was rewritten",
        took.as_millis()
    );
    assert!(took < Duration::from_secs(4), "took {took:?}");
    assert_eq!(shown["state"], "drifted", "{shown}");
    assert_eq!(drifted.len(), 1, "{drifted:?}");
    assert_eq!(drifted[0]["cause"], "cgroup_rewritten");
    assert!(
        drifted[0]["detail"].as_str().unwrap().contains(&format!(
            "memory.limit_in_bytes is {theirs} (ours was 67108864)"
        )),
        "{drifted:?}"
    );
    // Their limit stays; our CPU quota, which nobody touched, is undone.
    assert_eq!(cgroup.read("memory", "memory.limit_in_bytes"), theirs);
    assert_eq!(cgroup.read("cpu", "cpu.cfs_quota_us"), quota);
    let log = shown["log"].to_string();
    assert!(
        log.contains(&format!(
            "left memory.limit_in_bytes={theirs} (written by someone else"
        )),
        "{log}"
    );
    assert!(daemon.stop().success());
}

/// The container's main process that the journal pinned is gone (the container was restarted)
/// but the namespace it ran in lives on in another container: the journaled rollback finds its
/// target gone, and only the sweep through the containers' namespaces removes the tbf.
#[test]
fn kill_9_then_the_sweep_reaches_a_container_namespace_the_journal_lost_track_of() {
    if !require_root(
        "kill_9_then_the_sweep_reaches_a_container_namespace_the_journal_lost_track_of",
    ) || !require_docker(
        "kill_9_then_the_sweep_reaches_a_container_namespace_the_journal_lost_track_of",
    ) {
        return;
    }
    let holder = TestContainer::run("drnet", &["sleep", "3600"]);
    let joined = TestContainer {
        name: format!("sentinel-test-drjoin-{}", std::process::id()),
    };
    let _ = Command::new("docker")
        .args(["rm", "-f", &joined.name])
        .output();
    docker(&[
        "run",
        "-d",
        "--name",
        &joined.name,
        "--network",
        &format!("container:{}", holder.name),
        "sentinel-test/busybox:latest",
        "sleep",
        "3600",
    ]);
    let holder_pid = docker(&["inspect", "-f", "{{.State.Pid}}", &holder.name]);
    let in_netns = || {
        run(
            "nsenter",
            &[
                "-t",
                holder_pid.trim(),
                "-n",
                "tc",
                "qdisc",
                "show",
                "dev",
                "lo",
            ],
        )
    };
    let sandbox = Sandbox::new();
    let target = format!("container = \"{}\", interface = \"lo\"", joined.name);
    let (daemon, id) = start(&sandbox, "5ed3", &profile("box", &target, TBF), "box");
    assert!(in_netns().contains("tbf 5ed3: root"), "{}", in_netns());

    kill_9(daemon);
    // The pinned pid exits; the restarted container joins the same namespace again.
    docker(&["restart", "-t", "0", &joined.name]);
    assert!(in_netns().contains("tbf 5ed3: root"), "{}", in_netns());

    let daemon = Daemon::start(&sandbox, |_| {});
    let left = in_netns();
    assert!(
        !left.contains("5ed3:"),
        "the tbf is still in the container's namespace after the restart:\n{left}"
    );
    let shown = daemon.ctl_json(&["chaos", "show", &id]);
    assert_eq!(shown["state"], "rolled_back", "{shown}");
    assert!(shown["log"].to_string().contains("target gone"), "{shown}");
    let swept: Vec<_> = daemon
        .events("chaos_rolled_back")
        .into_iter()
        .filter(|e| e["trigger"] == "sweep")
        .collect();
    assert_eq!(swept.len(), 1, "{swept:?}");
    assert_eq!(swept[0]["ok"], true, "{swept:?}");
    assert!(
        swept[0]["detail"]
            .as_str()
            .unwrap()
            .contains("netns of pid"),
        "{swept:?}"
    );
    assert!(daemon.stop().success());
}
