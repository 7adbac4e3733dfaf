//! Stress inside the target against the real kernel and engine: burners in a container's v1
//! cgroups (read from cgroup.procs) gone at rollback and after `kill -9` + restart, a disk fill
//! under its ceiling removed by the restart, v1's EBUSY as a typed refusal, and the OOM drill.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use super::cgroups::TestCgroup;
use super::chaos_section;
use super::rollback::kill_9;
use crate::docker::{docker_probe, wait_up_and_following, RESTART_HEAL};
use crate::harness::{
    docker, require_docker, require_root, text, wait_for, Daemon, Sandbox, TestContainer,
    SENTINELCTL,
};

fn profile(name: &str, target: &str, faults: &str) -> String {
    format!("[[chaos.profile]]\nname = \"{name}\"\nduration = \"10m\"\ntarget = {{ {target} }}\nfaults = [{faults}]\n")
}

/// Pids listed in a cgroup.procs file.
fn procs(file: &PathBuf) -> Vec<i32> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// The burners (argv[0] `sentinel-burner`) among `pids`.
fn burners(pids: &[i32]) -> Vec<i32> {
    pids.iter()
        .copied()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.starts_with(b"sentinel-burner\0chaos-burner\0"))
        })
        .collect()
}

/// Whether `pid` is a live process (a zombie is not).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let state = stat[stat.rfind(')').unwrap() + 2..].chars().next();
        !matches!(state, Some('Z') | Some('X'))
    })
}

fn v1(controller: &str, path: &str) -> PathBuf {
    PathBuf::from("/sys/fs/cgroup")
        .join(controller)
        .join(path.trim_start_matches('/'))
}

fn read(path: PathBuf) -> String {
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_string()
}

#[test]
fn stress_burners_land_in_a_containers_cgroups_and_go_at_rollback() {
    if !require_docker("stress_burners_land_in_a_containers_cgroups_and_go_at_rollback") {
        return;
    }
    let container = TestContainer::run("stress", &["sleep", "3600"]);
    let id = docker(&["inspect", "-f", "{{.Id}}", &container.name]);
    let cgroup = format!("/docker/{id}");
    let sandbox = Sandbox::new();
    let target = format!("container = \"{}\"", container.name);
    let faults = "{ kind = \"cpu_stress\", workers = 2, load = 50 }, { kind = \"memory_stress\", bytes = \"48MiB\" }";
    sandbox.write_config(&sandbox.config(
        "",
        &chaos_section("5e31", &profile("stress", &target, faults)),
    ));
    let daemon = Daemon::start(&sandbox, |_| {});
    let usage_before: u64 = read(v1("memory", &cgroup).join("memory.usage_in_bytes"))
        .parse()
        .unwrap();
    let started = daemon.ctl_json(&["chaos", "start", "stress"]);
    assert_eq!(started["state"], "active", "{started}");

    // both burners in the container's cpu and memory cgroups, beside its own process
    let in_cpu = burners(&procs(&v1("cpu", &cgroup).join("cgroup.procs")));
    let in_memory = burners(&procs(&v1("memory", &cgroup).join("cgroup.procs")));
    assert_eq!(in_cpu.len(), 2, "burners in the cpu cgroup: {in_cpu:?}");
    let mut sorted = (in_cpu.clone(), in_memory.clone());
    sorted.0.sort();
    sorted.1.sort();
    assert_eq!(sorted.0, sorted.1, "the same burners in both hierarchies");
    // the memory burner's 48 MiB are charged to the container
    let usage = wait_for(Duration::from_secs(10), "48 MiB charged", || {
        let usage: u64 = read(v1("memory", &cgroup).join("memory.usage_in_bytes"))
            .parse()
            .unwrap();
        (usage >= usage_before + (48 << 20)).then_some(usage)
    });
    // and the CPU burner burns (utime + stime of the burners, in clock ticks)
    let cpu = || -> u64 {
        in_cpu
            .iter()
            .map(|pid| {
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
                let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
                fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
            })
            .sum()
    };
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .unwrap()
        .unwrap() as f64;
    let before = cpu();
    std::thread::sleep(Duration::from_secs(2));
    let burned = (cpu() - before) as f64 / hz / 2.0;
    println!(
        "burners {in_cpu:?}; memory usage {} MiB; CPU {burned:.2} s per s (2 workers at 50%)",
        usage >> 20
    );
    // the machine is shared (load ~20 on 2 cores): any steady burn proves the burners run
    assert!(burned > 0.05, "CPU used per second: {burned:.2}");

    let stopped = daemon.ctl_json(&["chaos", "stop", started["id"].as_str().unwrap()]);
    assert_eq!(stopped["state"], "rolled_back", "{stopped}");
    for pid in &in_cpu {
        assert!(!alive(*pid), "burner {pid} survived the rollback");
    }
    assert!(burners(&procs(&v1("cpu", &cgroup).join("cgroup.procs"))).is_empty());
    assert_eq!(
        docker(&["inspect", "-f", "{{.State.Running}}", &container.name]),
        "true"
    );
    assert!(daemon.stop().success());
}

#[test]
fn kill_9_leaves_burners_and_a_fill_that_the_restart_removes() {
    if !require_root("kill_9_leaves_burners_and_a_fill_that_the_restart_removes") {
        return;
    }
    let mut cgroup = TestCgroup::new("stress9", &["cpu", "memory"]);
    cgroup.spawn_sleeper();
    let fill_dir = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::new();
    let target = format!("cgroup = \"/{}\"", cgroup.name);
    let faults = format!(
        "{{ kind = \"cpu_stress\", load = 20 }}, {{ kind = \"memory_stress\", bytes = \"16MiB\" }}, {{ kind = \"disk_fill\", path = \"{}\", bytes = \"8MiB\", max_used_percent = 99 }}",
        fill_dir.path().display()
    );
    sandbox.write_config(&sandbox.config(
        "",
        &chaos_section("5e32", &profile("stress", &target, &faults)),
    ));
    let daemon = Daemon::start(&sandbox, |_| {});
    let started = daemon.ctl_json(&["chaos", "start", "stress"]);
    assert_eq!(started["state"], "active", "{started}");
    let procs_file = v1("memory", &cgroup.name).join("cgroup.procs");
    let found = burners(&procs(&procs_file));
    assert_eq!(found.len(), 2, "{found:?}");
    let fills: Vec<PathBuf> = std::fs::read_dir(fill_dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(fills.len(), 1, "{fills:?}");
    assert_eq!(std::fs::metadata(&fills[0]).unwrap().len(), 8 << 20);

    kill_9(daemon);
    std::thread::sleep(Duration::from_millis(300));
    for pid in &found {
        assert!(
            alive(*pid),
            "burner {pid} died with the daemon: nothing to test"
        );
    }
    assert!(fills[0].exists());

    let daemon = Daemon::start(&sandbox, |_| {});
    for pid in &found {
        assert!(!alive(*pid), "burner {pid} survived the restart's recovery");
    }
    assert!(burners(&procs(&procs_file)).is_empty());
    assert!(!fills[0].exists(), "the fill file survived the restart");
    assert!(
        std::fs::read_dir(sandbox.path().join("state/chaos-stress"))
            .map(|d| d.count())
            .unwrap_or(0)
            == 0,
        "burner records left behind"
    );
    assert!(daemon.stop().success());
}

#[test]
fn a_v1_memory_limit_below_unreclaimable_usage_is_refused_with_ebusy_and_left_as_it_was() {
    if !require_root(
        "a_v1_memory_limit_below_unreclaimable_usage_is_refused_with_ebusy_and_left_as_it_was",
    ) {
        return;
    }
    let mut cgroup = TestCgroup::new("ebusy", &["memory"]);
    // 64 MiB of anonymous memory, touched: no swap, so nothing to reclaim
    let holder = cgroup.spawn_command(
        "/usr/bin/python3 -c 'import time; b = b\"x\" * (64 << 20); time.sleep(600)'",
    );
    let original = cgroup.read("memory", "memory.limit_in_bytes");
    wait_for(Duration::from_secs(10), "64 MiB in use", || {
        let usage: u64 = cgroup
            .read("memory", "memory.usage_in_bytes")
            .parse()
            .unwrap();
        (usage > 64 << 20).then_some(())
    });
    let sandbox = Sandbox::new();
    let target = format!("cgroup = \"/{}\"", cgroup.name);
    let faults = "{ kind = \"memory_limit\", max = \"16MiB\" }";
    sandbox.write_config(&sandbox.config(
        "",
        &chaos_section("5e33", &profile("squeeze", &target, faults)),
    ));
    let daemon = Daemon::start(&sandbox, |_| {});
    let output = daemon.ctl(&["chaos", "start", "squeeze"]);
    let said = format!("{}{}", text(&output.stdout), text(&output.stderr));
    assert!(!output.status.success(), "{said}");
    for needle in [
        "could not reclaim after 5 attempts",
        "cgroup v1 answers EBUSY and kills nothing",
        "Device or resource busy",
    ] {
        assert!(said.contains(needle), "missing {needle:?} in {said}");
    }
    assert_eq!(cgroup.read("memory", "memory.limit_in_bytes"), original);
    assert!(alive(holder as i32), "nothing may be killed");
    assert!(daemon.stop().success());
}

/// The container's own process allocates once the test says go (a leak, a load spike): `dd`
/// with a 64 MiB buffer as PID 1, after the limit is in place.
const ALLOCATE_ON_GO: &str = "while [ ! -e /tmp/go ]; do sleep 0.2; done; rm /tmp/go; exec busybox dd if=/dev/zero of=/dev/null bs=64M count=1000000";

#[test]
fn the_oom_drill_kills_a_real_container_in_its_limit_detects_oom_heals_and_restores() {
    if !require_docker(
        "the_oom_drill_kills_a_real_container_in_its_limit_detects_oom_heals_and_restores",
    ) {
        return;
    }
    let container = TestContainer::run("oom", &["sh", "-c", ALLOCATE_ON_GO]);
    let id = docker(&["inspect", "-f", "{{.Id}}", &container.name]);
    let limit_file = v1("memory", &format!("/docker/{id}")).join("memory.limit_in_bytes");
    let original = read(limit_file.clone());
    let sandbox = Sandbox::new();
    let config = format!(
        "{probe}\n[chaos]\nqdisc_handle = \"5e34\"\n\n[[drill]]\nname = \"oom\"\n\n[[drill.step]]\ntarget = {{ container = \"{name}\" }}\nfaults = [{{ kind = \"memory_limit\", max = \"32MiB\" }}]\nduration = \"2m\"\nexpect = [{{ probe = \"web\", down_reason = \"oom\", within = \"30s\" }}, {{ probe = \"web\", up_within = \"60s\" }}]\n",
        probe = docker_probe("web", &container.name, RESTART_HEAL),
        name = container.name,
    );
    sandbox.write_config(&sandbox.config("", &config));
    let daemon = Daemon::start(&sandbox, |_| {});
    wait_up_and_following(&daemon, "web");
    let started = std::time::Instant::now();
    let run = Command::new(SENTINELCTL)
        .arg("--socket")
        .arg(&daemon.socket)
        .args(["drill", "run", "oom"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(Duration::from_secs(10), "the 32 MiB limit in place", || {
        (read(limit_file.clone()) == (32u64 << 20).to_string()).then_some(())
    });
    docker(&["exec", &container.name, "touch", "/tmp/go"]);
    let output = run.wait_with_output().unwrap();
    let stdout = text(&output.stdout);
    println!(
        "--- drill run (exit {:?}, {:.1} s) ---\n{stdout}{}",
        output.status.code(),
        started.elapsed().as_secs_f64(),
        text(&output.stderr)
    );
    assert!(output.status.success(), "{stdout}");
    for line in [
        "probe web down (oom) within 30s: met",
        "passed — 2 of 2 expectations met",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in\n{stdout}");
    }
    let transitions = daemon.events("probe_transition");
    assert!(
        transitions
            .iter()
            .any(|t| t["probe"] == "web" && t["to"] == "down" && t["reason"] == "oom"),
        "{transitions:?}"
    );
    assert_eq!(
        docker(&["inspect", "-f", "{{.State.Running}}", &container.name]),
        "true",
        "healed"
    );
    // the limit is the container's own again (the same cgroup, or a new one docker made)
    assert_eq!(read(limit_file), original);
    assert!(daemon.stop().success());
}
