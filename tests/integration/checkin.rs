//! `[heartbeat]`: sentineld checks in with a real loopback HTTP receiver every interval, with a
//! summary (probes down, last incident), and stops while its journal cannot write (its state
//! directory is a small tmpfs the test fills), resuming once it can.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::harness::{require_root, text, wait_for, Daemon, Sandbox};

/// One request the receiver got.
#[derive(Debug, Clone)]
struct CheckIn {
    at: Instant,
    method: String,
    path: String,
    body: String,
}

/// A plain HTTP/1.1 server on loopback that records every request and answers 200.
fn receiver() -> (u16, Arc<Mutex<Vec<CheckIn>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let mut parts = line.split_whitespace();
            let (method, path) = (
                parts.next().unwrap_or("").to_string(),
                parts.next().unwrap_or("").to_string(),
            );
            let mut length = 0;
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                    break;
                }
                if let Some((name, value)) = header.split_once(':') {
                    if name.eq_ignore_ascii_case("content-length") {
                        length = value.trim().parse().unwrap_or(0);
                    }
                }
            }
            let mut body = vec![0u8; length];
            let _ = reader.read_exact(&mut body);
            record.lock().unwrap().push(CheckIn {
                at: Instant::now(),
                method,
                path,
                body: String::from_utf8_lossy(&body).into_owned(),
            });
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nOK");
        }
    });
    (port, seen)
}

/// A tmpfs unmounted when dropped.
struct Tmpfs(std::path::PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).output();
    }
}

#[test]
fn check_ins_arrive_with_a_summary_and_stop_while_the_journal_cannot_write() {
    if !require_root("check_ins_arrive_with_a_summary_and_stop_while_the_journal_cannot_write") {
        return;
    }
    let sandbox = Sandbox::new();
    let state = sandbox.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let output = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=8m", "sentinel-test-state"])
        .arg(&state)
        .output()
        .unwrap();
    assert!(output.status.success(), "mount: {}", text(&output.stderr));
    let _mounted = Tmpfs(state.clone());

    let (port, seen) = receiver();
    let extra = format!(
        r#"[heartbeat]
url = "http://127.0.0.1:{port}/ping/4f1c"
interval = "1s"
timeout = "1s"

[[probe]]
name = "broken"
kind = "exec"
command = ["/bin/false"]
interval = "1s"
timeout = "1s"
fail_after = 1
"#
    );
    sandbox.write_config(&sandbox.config("", &extra));
    let daemon = Daemon::start(&sandbox, |_| {});
    daemon.wait_state("broken", "down");

    // Check-ins at the interval, POSTing the summary.
    let count = || seen.lock().unwrap().len();
    let first = count();
    wait_for(Duration::from_secs(10), "four check-ins", || {
        (count() >= first + 4).then_some(())
    });
    let got = seen.lock().unwrap().clone();
    let recent = &got[got.len() - 4..];
    for pair in recent.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(
            gap >= Duration::from_millis(700) && gap <= Duration::from_millis(1500),
            "check-ins {gap:?} apart"
        );
    }
    let last = recent.last().unwrap();
    assert_eq!(
        (last.method.as_str(), last.path.as_str()),
        ("POST", "/ping/4f1c")
    );
    let summary: serde_json::Value = serde_json::from_str(&last.body).unwrap();
    assert_eq!(summary["probes"], 1, "{summary}");
    assert_eq!(summary["down"], serde_json::json!(["broken"]), "{summary}");
    assert_eq!(summary["last_incident"]["probe"], "broken", "{summary}");
    assert_eq!(
        summary["last_incident"]["reason"], "exit_status",
        "{summary}"
    );

    // Fill the state directory's file system, then make sentineld write an event: the journal
    // cannot, and the check-ins stop.
    let filler = state.join("filler");
    {
        let mut file = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 4096];
        while file.write_all(&chunk).is_ok() {}
    }
    let silenced = daemon.ctl(&["silence", "broken", "--for", "1m"]);
    assert!(silenced.status.success(), "{}", text(&silenced.stderr));
    // The silence is written within a second or two; then no check-in for 3.5 s.
    std::thread::sleep(Duration::from_secs(2));
    let stopped_at = count();
    std::thread::sleep(Duration::from_millis(3500));
    assert!(
        count() <= stopped_at + 1,
        "{} check-ins while the journal could not write",
        count() - stopped_at
    );
    let log = daemon.stderr();
    assert!(
        log.contains("[heartbeat] check-in withheld: the journal cannot write events since"),
        "{log}"
    );
    let withheld = count();

    // Space again: the next write succeeds and check-ins resume.
    std::fs::remove_file(&filler).unwrap();
    let lifted = daemon.ctl(&["silence", "broken", "--for", "0"]);
    assert!(lifted.status.success(), "{}", text(&lifted.stderr));
    wait_for(Duration::from_secs(10), "check-ins again", || {
        (count() >= withheld + 2).then_some(())
    });
    assert!(daemon
        .stderr()
        .contains("[heartbeat] healthy again: checking in"));
    assert!(daemon.stop().success());
}
