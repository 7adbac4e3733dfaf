//! `sentineld check-config` exits 0/1 and points at file:line:col.

use std::process::Command;

use crate::harness::{text, Sandbox, SENTINELD};

#[test]
fn check_config_accepts_the_example_and_rejects_with_position() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/sentineld.toml.example");
    let output = Command::new(SENTINELD)
        .args(["check-config", example])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        text(&output.stdout).contains(": ok (1 probe)"),
        "{}",
        text(&output.stdout)
    );

    let sandbox = Sandbox::new();
    sandbox.write_config("[[probe]]\nname = \"api\"\nkind = \"htp\"\n");
    let output = Command::new(SENTINELD)
        .arg("check-config")
        .arg(sandbox.config_path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let expected = format!(
        "{}:3:8: unknown probe kind \"htp\" (expected one of http, tcp, postgres, docker, exec, tls_cert, dns, icmp, heartbeat, disk, memory, load, systemd_unit)",
        sandbox.config_path().display()
    );
    assert_eq!(text(&output.stderr).trim(), expected);

    // --config is the default file to check
    let output = Command::new(SENTINELD)
        .args(["--config", "/nonexistent/sentineld.toml", "check-config"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stderr).contains("cannot read config /nonexistent/sentineld.toml"));
}

#[test]
fn print_default_config_is_the_example() {
    let output = Command::new(SENTINELD)
        .arg("print-default-config")
        .output()
        .unwrap();
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/sentineld.toml.example"
    ))
    .unwrap();
    assert_eq!(text(&output.stdout), example);
}
