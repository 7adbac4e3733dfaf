//! Process and container faults: SIGSTOP/SIGCONT on a pinned pid, and a Docker pause that
//! rollback undoes. Asserted on /proc and on the engine's own view of the container.

use std::process::Command;
use std::time::Duration;

use super::chaos_section;
use crate::harness::{
    ctl_as_nobody, docker, require_docker, require_root, wait_for, Daemon, KilledOnDrop, Sandbox,
    TestContainer,
};

fn process_state(pid: u32) -> char {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    stat[stat.rfind(')').unwrap() + 2..].chars().next().unwrap()
}

fn start(sandbox: &Sandbox, handle: &str, target: &str, faults: &str) -> Daemon {
    let profile = format!(
        "[[chaos.profile]]\nname = \"p\"\nduration = \"10m\"\ntarget = {{ {target} }}\nfaults = [{faults}]\n"
    );
    // world-connectable so `nobody` gets in; group root so `nobody` is not a member
    let daemon = "socket_group = \"root\"\nsocket_mode = \"0666\"";
    sandbox.write_config(&sandbox.config(daemon, &chaos_section(handle, &profile)));
    Daemon::start(sandbox, |_| {})
}

#[test]
fn pause_stops_a_process_until_rollback() {
    if !require_root("pause_stops_a_process_until_rollback") {
        return;
    }
    let sleeper = KilledOnDrop(Command::new("sleep").arg("3600").spawn().unwrap());
    let pid = sleeper.0.id();
    let sandbox = Sandbox::new();
    let daemon = start(
        &sandbox,
        "5e30",
        &format!("pid = {pid}"),
        "{ kind = \"pause\" }",
    );
    // an unprivileged peer may read the profiles but not start one, and is audited
    let nobody = |args: &[&str]| ctl_as_nobody(&daemon.socket, args);
    assert!(nobody(&["chaos", "profiles"]).status.success());
    assert!(!nobody(&["chaos", "start", "p"]).status.success());
    assert_eq!(process_state(pid), 'S');
    // The refusal is journaled by the writer task, a moment after the answer went out.
    wait_for(Duration::from_secs(10), "the 403 journaled", || {
        daemon
            .events("control_request")
            .iter()
            .any(|e| e["route"] == "/v1/chaos/start" && e["status"] == 403)
            .then_some(())
    });
    let started = daemon.ctl_json(&["chaos", "start", "p"]);
    assert_eq!(process_state(pid), 'T', "SIGSTOP not delivered");
    daemon.ctl_json(&["chaos", "stop", started["id"].as_str().unwrap()]);
    assert_eq!(process_state(pid), 'S', "SIGCONT not delivered");
    assert!(daemon.stop().success());
}

#[test]
fn container_pause_is_undone_by_rollback() {
    if !require_root("container_pause_is_undone_by_rollback")
        || !require_docker("container_pause_is_undone_by_rollback")
    {
        return;
    }
    let container = TestContainer::run("chaos-pause", &["sleep", "3600"]);
    let sandbox = Sandbox::new();
    let target = format!("container = \"{}\"", container.name);
    let daemon = start(
        &sandbox,
        "5e31",
        &target,
        "{ kind = \"container\", action = \"pause\" }",
    );
    let paused = || docker(&["inspect", "-f", "{{.State.Paused}}", &container.name]);
    let started = daemon.ctl_json(&["chaos", "start", "p"]);
    assert_eq!(paused(), "true");
    daemon.ctl_json(&["chaos", "stop", started["id"].as_str().unwrap()]);
    assert_eq!(paused(), "false");
    assert!(daemon.stop().success());
}
