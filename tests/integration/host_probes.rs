//! disk, memory and load probes through the real daemon on the real host: a 1 MiB tmpfs the
//! test fills (space, then inodes) goes Down and recovers; memory and load read the real /proc.

use std::process::Command;

use crate::harness::{require_root, text, Daemon, Sandbox};

/// A small tmpfs mounted in the sandbox, unmounted when dropped (even when the test fails).
struct Tmpfs {
    path: std::path::PathBuf,
}

impl Tmpfs {
    fn mount(path: std::path::PathBuf, options: &str) -> Self {
        std::fs::create_dir_all(&path).unwrap();
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "sentinel-test-tmpfs"])
            .arg(&path)
            .output()
            .expect("mount");
        assert!(output.status.success(), "mount: {}", text(&output.stderr));
        Self { path }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).output();
    }
}

#[test]
fn host_probes_against_the_real_host() {
    if !require_root("host_probes_against_the_real_host") {
        return;
    }
    let sandbox = Sandbox::new();
    // 1 MiB and 32 inodes (the root directory takes one).
    let disk = Tmpfs::mount(sandbox.path().join("disk"), "size=1m,nr_inodes=32");
    let probes = format!(
        r#"[[probe]]
name = "space"
kind = "disk"
path = "{disk}"
max_used_percent = 50
interval = "200ms"
timeout = "200ms"
fail_after = 1

[[probe]]
name = "inodes"
kind = "disk"
path = "{disk}"
max_inodes_percent = 50
interval = "200ms"
timeout = "200ms"
fail_after = 1

[[probe]]
name = "memory-any"
kind = "memory"
min_available = "1B"
interval = "200ms"
timeout = "200ms"

[[probe]]
name = "memory-all"
kind = "memory"
min_available = "100%"
interval = "200ms"
timeout = "200ms"
fail_after = 1

[[probe]]
name = "load"
kind = "load"
max_load_per_core = 1000
load_average = "1m"
interval = "200ms"
timeout = "200ms"
"#,
        disk = disk.path.display()
    );
    sandbox.write_config(&sandbox.config("", &probes));
    let daemon = Daemon::start(&sandbox, |_| {});
    for name in ["space", "inodes", "memory-any", "load"] {
        daemon.wait_state(name, "up");
    }
    // MemAvailable is always below MemTotal.
    let memory = daemon.wait_state("memory-all", "down");
    let failure = memory["last_failure"].as_str().unwrap();
    assert!(
        failure.starts_with("memory_low: MemAvailable ")
            && failure.ends_with("is below min_available 100%"),
        "{failure}"
    );
    assert_eq!(daemon.probe("load")["target"], "1m load per core <= 1000");

    // Fill the space: 700 KiB of 1 MiB.
    let filler = disk.path.join("filler");
    std::fs::write(&filler, vec![7u8; 700 << 10]).unwrap();
    let space = daemon.wait_state("space", "down");
    let failure = space["last_failure"].as_str().unwrap();
    assert!(
        failure.starts_with(&format!("disk_space: {} is ", disk.path.display()))
            && failure.ends_with("% full, above max_used_percent 50"),
        "{failure}"
    );
    assert_eq!(daemon.probe("inodes")["state"], "up");
    std::fs::remove_file(&filler).unwrap();
    daemon.wait_state("space", "up");

    // Fill the inodes: 20 empty files of 32 inodes.
    for i in 0..20 {
        std::fs::write(disk.path.join(format!("f{i}")), "").unwrap();
    }
    let inodes = daemon.wait_state("inodes", "down");
    assert!(
        inodes["last_failure"]
            .as_str()
            .unwrap()
            .starts_with("disk_inodes: "),
        "{inodes}"
    );
    assert_eq!(daemon.probe("space")["state"], "up");

    let reasons: Vec<String> = daemon
        .events("probe_transition")
        .iter()
        .filter(|e| e["to"] == "down")
        .map(|e| {
            format!(
                "{} {}",
                e["probe"].as_str().unwrap(),
                e["reason"].as_str().unwrap()
            )
        })
        .collect();
    for want in [
        "memory-all memory_low",
        "space disk_space",
        "inodes disk_inodes",
    ] {
        assert!(reasons.iter().any(|r| r == want), "{reasons:?}");
    }
    assert!(daemon.stop().success());
}
