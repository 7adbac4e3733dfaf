//! Under systemd (JOURNAL_STREAM matching stderr) logs go to journald's native socket. The test
//! receives them for real: in a private mount namespace, /run/systemd/journal is our directory,
//! and the datagram socket the journald layer writes to is one the test bound.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use crate::harness::{require_root, wait_for, Daemon, Sandbox};

/// Decode one datagram of journald's native protocol: `KEY=value\n`, or for values with
/// newlines `KEY\n<u64 little-endian length><bytes>\n`.
fn parse_native(mut data: &[u8]) -> HashMap<String, String> {
    let mut fields = HashMap::new();
    while !data.is_empty() {
        let Some(end) = data.iter().position(|b| *b == b'\n' || *b == b'=') else {
            break;
        };
        let key = String::from_utf8_lossy(&data[..end]).into_owned();
        if data[end] == b'=' {
            let rest = &data[end + 1..];
            let line_end = rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len());
            fields.insert(key, String::from_utf8_lossy(&rest[..line_end]).into_owned());
            data = rest.get(line_end + 1..).unwrap_or(&[]);
        } else {
            let rest = &data[end + 1..];
            let length = u64::from_le_bytes(rest[..8].try_into().unwrap()) as usize;
            fields.insert(
                key,
                String::from_utf8_lossy(&rest[8..8 + length]).into_owned(),
            );
            data = rest.get(8 + length + 1..).unwrap_or(&[]);
        }
    }
    fields
}

#[test]
fn logs_reach_journald_with_structured_fields() {
    if !require_root("logs_reach_journald_with_structured_fields") {
        return;
    }
    let sandbox = Sandbox::new();
    sandbox.write_config(&sandbox.config("", ""));
    let journal_dir = sandbox.path().join("journal");
    std::fs::create_dir_all(&journal_dir).unwrap();
    let receiver = UnixDatagram::bind(journal_dir.join("socket")).unwrap();
    receiver.set_nonblocking(true).unwrap();

    // stderr is a file we know, and JOURNAL_STREAM names it: "started by systemd" for auto.
    let stderr_path = sandbox.path().join("sentineld.stderr");
    let wrapper: Vec<String> = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "--",
        "sh",
        "-c",
        "mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/journal \
         && mount --bind \"$0\" /run/systemd/journal && exec \"$@\"",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([journal_dir.display().to_string()])
    .collect();
    // Daemon::start_with creates the stderr file before spawning; JOURNAL_STREAM must match
    // it, so create it first and let the harness truncate the same inode.
    std::fs::write(&stderr_path, "").unwrap();
    let meta = std::fs::metadata(&stderr_path).unwrap();
    let journal_stream = format!("{}:{}", meta.dev(), meta.ino());
    let daemon = Daemon::start_with(&sandbox, &wrapper, "auto", |command| {
        command.env("JOURNAL_STREAM", &journal_stream);
    });

    let mut buffer = vec![0u8; 65536];
    let running = wait_for(
        Duration::from_secs(10),
        "the 'running' log entry",
        || loop {
            match receiver.recv(&mut buffer) {
                Ok(n) => {
                    let fields = parse_native(&buffer[..n]);
                    if fields.get("MESSAGE").is_some_and(|m| m.contains("running")) {
                        return Some(fields);
                    }
                }
                Err(_) => return None,
            }
        },
    );
    assert_eq!(running["SYSLOG_IDENTIFIER"], "sentineld");
    assert_eq!(running["PRIORITY"], "5", "info maps to notice");
    assert_eq!(running["TARGET"], "sentinel::daemon");
    assert_eq!(
        running["SENTINEL_SOCKET"],
        daemon.socket.display().to_string()
    );
    assert!(running.contains_key("CODE_FILE"));
    // text logs did not also go to stderr
    assert!(!daemon.stderr().contains("running"), "{}", daemon.stderr());
    assert!(daemon.stop().success());
}

#[test]
fn native_protocol_parser_handles_both_encodings() {
    let mut data = b"MESSAGE=hi\nPRIORITY=5\n".to_vec();
    data.extend_from_slice(b"MULTI\n");
    data.extend_from_slice(&5u64.to_le_bytes());
    data.extend_from_slice(b"a\nb c\n");
    let fields = parse_native(&data);
    assert_eq!(fields["MESSAGE"], "hi");
    assert_eq!(fields["PRIORITY"], "5");
    assert_eq!(fields["MULTI"], "a\nb c");
}

#[test]
fn json_log_format_writes_one_object_per_line() {
    let sandbox = Sandbox::new();
    sandbox.write_config(&sandbox.config("", &sandbox.healthz_probe("api")));
    let daemon = Daemon::start_with(&sandbox, &[], "json", |_| {});
    let lines = wait_for(Duration::from_secs(10), "probe log line", || {
        let stderr = daemon.stderr();
        stderr.contains("event=healthy").then_some(stderr)
    });
    let stderr = daemon.stderr();
    assert!(daemon.stop().success());
    let mut messages = Vec::new();
    for line in lines
        .lines()
        .chain(stderr.lines())
        .filter(|l| !l.is_empty())
    {
        let object: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(object["timestamp"].is_string(), "{line}");
        assert!(object["level"].is_string(), "{line}");
        messages.push(
            object["fields"]["message"]
                .as_str()
                .unwrap_or("")
                .to_string(),
        );
    }
    assert!(messages.iter().any(
        |m| m.starts_with("service=api status=up status_code=200 recoveries_total=0 event=healthy")
    ));
}
