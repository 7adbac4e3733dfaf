//! The status page from the real daemon, loaded in headless Chromium: the DOM names every probe
//! with its state, the incident and the top tenant, and screenshots (laptop and phone width) are
//! written under target/ for a person to look at.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::chaos::chaos_section;
use crate::harness::{require_root, text, wait_for, Daemon, KilledOnDrop, Sandbox};

/// The Chromium binary, or None (skip) outside CI when it is not installed.
fn require_chromium(test: &str) -> Option<PathBuf> {
    for name in ["chromium", "chromium-browser"] {
        if let Ok(output) = Command::new("sh")
            .args(["-c", &format!("command -v {name}")])
            .output()
        {
            if output.status.success() {
                return Some(PathBuf::from(text(&output.stdout).trim()));
            }
        }
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "{test} needs chromium (Debian package chromium); tests/setup-and-run.sh installs it"
        );
    }
    eprintln!("\n!!! SKIPPING {test}: chromium is not installed (allowed only outside CI) !!!\n");
    None
}

/// One GET on a fresh connection: (head, body).
fn get(port: u16, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    (head.to_string(), body.to_string())
}

fn post_tenant_events(port: u16, body: &str) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let request = format!(
        "POST /v1/events HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 20"), "{answer}");
}

/// Headless Chromium with a throwaway profile; `--no-sandbox` because the suite runs as root.
fn chromium(binary: &Path, profile: &Path, args: &[&str]) -> std::process::Output {
    let output = Command::new("timeout")
        .arg("120")
        .arg(binary)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "chromium {args:?} failed: {}",
        text(&output.stderr)
    );
    output
}

#[test]
fn status_page_in_headless_chromium() {
    let sandbox = Sandbox::new();
    let marker = sandbox.path().join("worker-alive");
    std::fs::write(&marker, "").unwrap();
    let exec = |name: &str, command: &str| {
        format!(
            "[[probe]]\nname = \"{name}\"\nkind = \"exec\"\ncommand = [\"/bin/sh\", \"-c\", \"{command}\"]\ninterval = \"200ms\"\ntimeout = \"200ms\"\nfail_after = 1\nrecover_after = 1\n\n"
        )
    };
    let config = format!(
        "[tenants]\nenabled = true\n\n{}{}{}",
        exec("api", "true"),
        exec("worker", &format!("test -f {}", marker.display())),
        exec("db-primary", "exit 3"),
    );
    sandbox.write_config(&sandbox.config("", &config));
    let daemon = Daemon::start(&sandbox, |_| {});
    let settle = |name: &str, want: &str| daemon.wait_state(name, want);
    settle("api", "up");
    settle("db-primary", "down");
    settle("worker", "up");
    std::fs::remove_file(&marker).unwrap();
    settle("worker", "down");
    std::fs::write(&marker, "").unwrap();
    settle("worker", "up");
    let mut events = String::new();
    for i in 0..40 {
        let (tenant, status) = if i % 2 == 0 {
            ("acme", 503)
        } else {
            ("globex", 200)
        };
        events.push_str(&format!(
            "{{\"tenant_id\":\"{tenant}\",\"endpoint\":\"/orders\",\"status_code\":{status},\"latency_ms\":20}}\n"
        ));
    }
    post_tenant_events(sandbox.port, &events);
    // the page reads incidents from the journal, which writes in batches
    wait_for(
        Duration::from_secs(10),
        "worker's recovery on the page",
        || {
            let (head, body) = get(sandbox.port, "/");
            assert!(head.starts_with("HTTP/1.1 200"), "{head}");
            assert!(head.contains("text/html; charset=utf-8"), "{head}");
            (body.contains("<td>worker</td>") && body.contains("acme")).then_some(())
        },
    );

    let Some(chromium_bin) = require_chromium("status_page_in_headless_chromium") else {
        return;
    };
    let url = format!("http://127.0.0.1:{}/", sandbox.port);
    let profile = sandbox.path().join("chromium-profile");
    let dom = text(&chromium(&chromium_bin, &profile, &["--dump-dom", &url]).stdout);
    for fragment in [
        r#"data-probe="api" data-state="up""#,
        r#"data-probe="worker" data-state="up""#,
        r#"data-probe="db-primary" data-state="down""#,
        "1 of 3 probes are down.",
        "No chaos experiments are running.",
        "<td>worker</td><td>exit_status</td>",
        "<td>acme</td>",
        "<svg class=\"spark\"",
    ] {
        assert!(dom.contains(fragment), "{fragment} not in the DOM:\n{dom}");
    }
    assert!(!dom.contains("<script"), "the page must need no script");

    let shots = Path::new(env!("CARGO_TARGET_TMPDIR"));
    for (label, size) in [("laptop", "1280,900"), ("phone", "390,844")] {
        let path = shots.join(format!("status-page-{label}.png"));
        let _ = std::fs::remove_file(&path);
        chromium(
            &chromium_bin,
            &profile,
            &[
                &format!("--window-size={size}"),
                &format!("--screenshot={}", path.display()),
                &url,
            ],
        );
        let png = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            png.starts_with(b"\x89PNG\r\n\x1a\n"),
            "{} is not a PNG",
            path.display()
        );
        assert!(
            png.len() > 10_000,
            "{} is suspiciously small",
            path.display()
        );
        eprintln!("status page screenshot ({label}): {}", path.display());
    }
    daemon.stop();
}

#[test]
fn status_page_lists_a_running_experiment_with_time_left() {
    if !require_root("status_page_lists_a_running_experiment_with_time_left") {
        return;
    }
    let sleeper = KilledOnDrop(Command::new("sleep").arg("3600").spawn().unwrap());
    let profile = format!(
        "[[chaos.profile]]\nname = \"freeze-sleeper\"\nduration = \"10m\"\ntarget = {{ pid = {} }}\nfaults = [{{ kind = \"pause\" }}]\n",
        sleeper.0.id()
    );
    let sandbox = Sandbox::new();
    sandbox.write_config(&sandbox.config("", &chaos_section("5e9a", &profile)));
    let daemon = Daemon::start(&sandbox, |_| {});
    let page = || get(sandbox.port, "/").1;
    assert!(page().contains("No chaos experiments are running."));

    let started = daemon.ctl_json(&["chaos", "start", "freeze-sleeper"]);
    let id = started["id"].as_str().unwrap().to_string();
    let body = wait_for(
        Duration::from_secs(10),
        "the experiment on the page",
        || {
            let body = page();
            body.contains(&id).then_some(body)
        },
    );
    let section = &body[body.find("id=\"experiments\"").unwrap()..];
    let section = &section[..section.find("</section>").unwrap()];
    assert!(section.contains("freeze-sleeper"), "{section}");
    // ten minutes from the start, read a moment later
    assert!(
        section.contains(">9m ") || section.contains(">10m<"),
        "no time left in {section}"
    );

    daemon.ctl_json(&["chaos", "stop", &id]);
    wait_for(Duration::from_secs(10), "the rollback on the page", || {
        page()
            .contains("No chaos experiments are running.")
            .then_some(())
    });
    assert!(daemon.stop().success());
}
