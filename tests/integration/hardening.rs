//! The systemd unit's confinement against the real daemon, on a host where systemd is not PID 1:
//! sentineld runs with exactly the unit's CapabilityBoundingSet= (setpriv) and SystemCallFilter=
//! (the same syscall set as a seccomp filter, EPERM otherwise), and every feature that needs
//! root still works. Each kept capability is used by one of the steps.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::archive::{unpack, verified_manifest, wait_uploaded};
use crate::chaos::{chaos_section, run, NetnsPair};
use crate::harness::{
    docker, require_docker, require_root, text, wait_for, Daemon, KilledOnDrop, Sandbox,
    TestContainer,
};

const UNIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/sentineld.service");
const NOBODY: u32 = 65534;

/// Every value of `key=` in the unit's [Service] section, space-separated values split.
fn unit_values(key: &str) -> Vec<String> {
    let unit = std::fs::read_to_string(UNIT).unwrap();
    unit.lines()
        .filter_map(|line| line.strip_prefix(key)?.strip_prefix('='))
        .flat_map(|value| {
            value
                .split_whitespace()
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// `setpriv` arguments that leave sentineld the unit's bounding set and nothing else.
fn setpriv_wrapper() -> Vec<String> {
    let caps = unit_values("CapabilityBoundingSet");
    assert!(!caps.is_empty(), "no CapabilityBoundingSet= in {UNIT}");
    let keep: Vec<String> = caps
        .iter()
        .map(|cap| format!("+{}", cap.to_lowercase().trim_start_matches("cap_")))
        .collect();
    assert_eq!(unit_values("NoNewPrivileges"), ["true"]);
    vec![
        "setpriv".into(),
        format!("--bounding-set=-all,{}", keep.join(",")),
        "--inh-caps=-all".into(),
        "--no-new-privs".into(),
        "--".into(),
    ]
}

/// The groups `systemd-analyze syscall-filter` knows: name -> members (syscalls and @groups).
fn syscall_groups() -> BTreeMap<String, Vec<String>> {
    let out = Command::new("systemd-analyze")
        .arg("syscall-filter")
        .output()
        .expect("systemd-analyze (apt-get install systemd)");
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current = None;
    for line in text(&out.stdout).lines() {
        let word = line.trim();
        if word.is_empty() || word.starts_with('#') {
            continue;
        }
        if !line.starts_with(' ') {
            current = Some(word.to_string());
            groups.entry(word.to_string()).or_default();
        } else if let Some(group) = &current {
            groups.get_mut(group).unwrap().push(word.to_string());
        }
    }
    groups
}

fn expand(groups: &BTreeMap<String, Vec<String>>, item: &str, into: &mut BTreeSet<String>) {
    match item.strip_prefix('@') {
        Some(_) => {
            let members = groups
                .get(item)
                .unwrap_or_else(|| panic!("unknown group {item}"));
            for member in members {
                expand(groups, member, into);
            }
        }
        None => {
            into.insert(item.to_string());
        }
    }
}

/// The unit's SystemCallFilter= as a seccomp program: the listed syscalls allowed, every other
/// one failing with the unit's SystemCallErrorNumber= (EPERM), as systemd installs it.
fn unit_syscall_filter() -> (seccompiler::BpfProgram, usize) {
    let filter = unit_values("SystemCallFilter");
    assert!(
        !filter.is_empty() && filter.iter().all(|f| !f.starts_with('~')),
        "{UNIT}: expected an allow-list SystemCallFilter=, got {filter:?}"
    );
    assert_eq!(unit_values("SystemCallErrorNumber"), ["EPERM"]);
    let groups = syscall_groups();
    let mut names = BTreeSet::new();
    for item in &filter {
        expand(&groups, item, &mut names);
    }
    let compile = |names: &[&String]| {
        let rules: Vec<String> = names
            .iter()
            .map(|name| format!("{{\"syscall\": \"{name}\"}}"))
            .collect();
        let json = format!(
            "{{\"main\": {{\"mismatch_action\": {{\"errno\": {}}}, \"match_action\": \"allow\", \"filter\": [{}]}}}}",
            nix::libc::EPERM,
            rules.join(",")
        );
        seccompiler::compile_from_json(json.as_bytes(), seccompiler::TargetArch::x86_64)
    };
    // systemd's lists name every architecture's calls; keep those x86_64 has
    let native: Vec<&String> = names
        .iter()
        .filter(|name| compile(&[name]).is_ok())
        .collect();
    let mut programs = compile(&native).unwrap();
    (programs.remove("main").unwrap(), native.len())
}

/// A v1 memory cgroup of the test's own, removed when dropped.
struct MemoryCgroup(PathBuf);

impl MemoryCgroup {
    fn limit(&self) -> String {
        let text = std::fs::read_to_string(self.0.join("memory.limit_in_bytes")).unwrap();
        text.trim().to_string()
    }
}

impl Drop for MemoryCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

fn process_state(pid: u32) -> char {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    stat[stat.rfind(')').unwrap() + 2..].chars().next().unwrap()
}

fn chown_nobody(path: &Path, mode: u32) {
    std::os::unix::fs::chown(path, Some(NOBODY), Some(NOBODY)).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn every_root_feature_works_within_the_units_capabilities_and_syscall_filter() {
    let test = "every_root_feature_works_within_the_units_capabilities_and_syscall_filter";
    if !require_root(test) || !require_docker(test) {
        return;
    }
    let (filter, allowed) = unit_syscall_filter();
    let pair = NetnsPair::new("hard");
    // running as nobody: its network namespace can only be opened with CAP_SYS_PTRACE
    let user = format!("{NOBODY}:{NOBODY}");
    let container = TestContainer::run_with("hardening", &["--user", &user], &["sleep", "3600"]);
    let container_pid = docker(&["inspect", "-f", "{{.State.Pid}}", &container.name]);
    let cgroup = MemoryCgroup(PathBuf::from(format!(
        "/sys/fs/cgroup/memory/sentinel-test-hardening-{}",
        std::process::id()
    )));
    std::fs::create_dir_all(&cgroup.0).unwrap();
    let unlimited = cgroup.limit();
    let sleeper = KilledOnDrop(
        Command::new("sleep")
            .arg("3600")
            .uid(NOBODY)
            .gid(NOBODY)
            .spawn()
            .unwrap(),
    );

    // another service's logs: a 0700 directory of nobody's, holding a 0600 file
    let sandbox = Sandbox::new();
    let logs = sandbox.path().join("other-service");
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::write(
        logs.join("app.log"),
        "ERROR: only its owner may read this\n",
    )
    .unwrap();
    chown_nobody(&logs.join("app.log"), 0o600);
    chown_nobody(&logs, 0o700);
    let flag = sandbox.path().join("app.up");
    std::fs::write(&flag, "").unwrap();
    let sink = sandbox.path().join("evidence");

    let profile = |name: &str, target: String, fault: &str| {
        format!("[[chaos.profile]]\nname = \"{name}\"\nduration = \"10m\"\ntarget = {{ {target} }}\nfaults = [{fault}]\n")
    };
    let tbf = "{ kind = \"tbf\", rate = \"1mbit/s\", burst = \"16KiB\", limit = \"64KiB\" }";
    let cgroup_name = cgroup.0.file_name().unwrap().to_str().unwrap().to_string();
    let profiles = [
        profile(
            "netns",
            format!("netns = \"{}\", interface = \"veth-a\"", pair.a),
            tbf,
        ),
        profile(
            "box",
            format!("container = \"{}\", interface = \"lo\"", container.name),
            tbf,
        ),
        profile(
            "memory",
            format!("cgroup = \"/{cgroup_name}\""),
            "{ kind = \"memory_limit\", max = \"64MiB\" }",
        ),
        profile(
            "pause",
            format!("pid = {}", sleeper.0.id()),
            "{ kind = \"pause\" }",
        ),
    ]
    .concat();
    let app = format!(
        "[[probe]]\nname = \"app\"\nkind = \"exec\"\ncommand = [\"/bin/sh\", \"-c\", \"test -e {flag}\"]\ninterval = \"200ms\"\ntimeout = \"200ms\"\nfail_after = 2\nheal = {{ stable_for = \"0s\", action = \"exec\", command = [\"/bin/touch\", \"{flag}\"], backoff = \"0s\", verify_within = \"10s\", archive = [\"logs\"] }}\n\n[[archive.source]]\nname = \"logs\"\nkind = \"files\"\npath = \"{logs}\"\ninclude = [\"*.log\"]\n\n[archive.local]\ndir = \"{sink}\"\n",
        flag = flag.display(),
        logs = logs.display(),
        sink = sink.display(),
    );
    // the socket goes to a group root is not a member of: CAP_CHOWN
    let daemon_section = "socket_group = \"nogroup\"\nsocket_mode = \"0660\"";
    sandbox.write_config(&sandbox.config(
        daemon_section,
        &format!("{}\n{app}", chaos_section("5e44", &profiles)),
    ));
    let daemon = Daemon::start_with(&sandbox, &setpriv_wrapper(), "text", |command| {
        let filter = filter.clone();
        // SAFETY: between fork and exec, only prctl/seccomp on a program built beforehand.
        unsafe {
            command.pre_exec(move || {
                seccompiler::apply_filter(&filter).map_err(std::io::Error::other)
            });
        }
    });
    let caps = std::fs::read_to_string(format!("/proc/{}/status", daemon.child.id())).unwrap();
    let bounding = caps.lines().find(|l| l.starts_with("CapBnd:")).unwrap();
    let seccomp = caps.lines().find(|l| l.starts_with("Seccomp:")).unwrap();
    assert!(seccomp.ends_with('2'), "{seccomp}");
    eprintln!("sentineld runs with {bounding}, {seccomp} ({allowed} syscalls allowed)");

    let socket_gid = std::fs::metadata(sandbox.socket()).unwrap().gid();
    assert_eq!(socket_gid, NOBODY, "the socket's group (CAP_CHOWN)");

    // network faults in a named namespace and in a nobody container's (SYS_ADMIN, NET_ADMIN,
    // SYS_PTRACE), a cgroup limit, a pause of nobody's process (KILL)
    for name in ["netns", "box", "memory", "pause"] {
        let out = daemon.ctl(&["chaos", "start", name]);
        assert!(
            out.status.success(),
            "{name}: {}\n{}",
            text(&out.stderr),
            daemon.stderr()
        );
    }
    assert!(NetnsPair::qdiscs(&pair.a, "veth-a").contains("tbf 5e44: root"));
    let in_box = || {
        run(
            "nsenter",
            &[
                "-t",
                &container_pid,
                "-n",
                "tc",
                "qdisc",
                "show",
                "dev",
                "lo",
            ],
        )
    };
    assert!(in_box().contains("tbf 5e44: root"), "{}", in_box());
    assert_eq!(cgroup.limit(), (64u64 << 20).to_string());
    assert_eq!(process_state(sleeper.0.id()), 'T');

    // an incident: the evidence (nobody's 0600 log, DAC_READ_SEARCH) is archived, then the exec
    // heal runs
    std::fs::remove_file(&flag).unwrap();
    let bundle = wait_uploaded(&daemon, None, Duration::from_secs(20));
    let bytes = std::fs::read(bundle["location"].as_str().unwrap()).unwrap();
    let manifest = verified_manifest(&bytes);
    assert_eq!(manifest["problems"], serde_json::json!([]), "{manifest}");
    let files = unpack(&bytes);
    let log = files
        .iter()
        .find(|(path, _)| path.ends_with("logs/app.log"));
    let paths: Vec<&String> = files.iter().map(|(path, _)| path).collect();
    assert_eq!(
        log.map(|(_, body)| text(body)).as_deref(),
        Some("ERROR: only its owner may read this\n"),
        "{paths:?}"
    );
    wait_for(
        Duration::from_secs(10),
        "the heal to recreate the flag",
        || flag.exists().then_some(()),
    );

    // SIGTERM rolls everything back
    assert!(daemon.stop().success());
    assert!(!NetnsPair::qdiscs(&pair.a, "veth-a").contains("5e44:"));
    assert!(!in_box().contains("5e44:"), "{}", in_box());
    assert_eq!(cgroup.limit(), unlimited);
    assert_eq!(process_state(sleeper.0.id()), 'S');
}
