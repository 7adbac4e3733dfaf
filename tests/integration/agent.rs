//! The real `sentinel-agent` binary tailing real files and sockets, shipping over real HTTP on
//! loopback to a recording receiver: rotation, SIGKILL, sentineld down, datagrams.

mod receiver;
mod sentineld;

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::Signal;
use receiver::{Mode, Receiver, Shared, State};

use crate::harness::{free_port, text, wait_for, Sandbox, SENTINEL_AGENT};

const LIMIT: Duration = Duration::from_secs(30);

/// One event line whose endpoint carries its sequence number.
fn line(seq: u64) -> String {
    format!("{{\"tenant_id\":\"acme\",\"endpoint\":\"/n/{seq}\",\"status_code\":200,\"latency_ms\":1.5}}\n")
}

fn append(path: &Path, seqs: std::ops::Range<u64>) {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for seq in seqs {
        file.write_all(line(seq).as_bytes()).unwrap();
    }
}

struct Setup {
    sandbox: Sandbox,
    port: u16,
    state: Shared,
}

impl Setup {
    fn new() -> Self {
        Self {
            sandbox: Sandbox::new(),
            port: free_port(),
            state: Arc::new(Mutex::new(State::default())),
        }
    }

    fn log(&self) -> PathBuf {
        self.sandbox.path().join("access.log")
    }

    fn state_dir(&self) -> PathBuf {
        self.sandbox.path().join("agent-state")
    }

    fn receiver(&self) -> Receiver {
        Receiver::start(self.port, Arc::clone(&self.state))
    }

    /// A fast-moving config: small batches, short waits; `extra` is appended.
    fn config(&self, buffer_bytes: u64, extra: &str) -> PathBuf {
        let text = format!(
            r#"state_dir = "{state}"

[output]
endpoint = "http://127.0.0.1:{port}/v1/events"
token = "s3cret"
batch_max_events = 10
flush_interval = "50ms"
request_timeout = "5s"
retry_initial = "50ms"
retry_max = "200ms"

[buffer]
max_bytes = {buffer_bytes}

{extra}"#,
            state = self.state_dir().display(),
            port = self.port,
        );
        let path = self.sandbox.path().join("agent.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    fn file_config(&self, buffer_bytes: u64) -> PathBuf {
        let file = format!(
            "[[file]]\npath = \"{}\"\nformat = \"json\"\nstart_at = \"beginning\"\nrotate_wait = \"300ms\"\npoll_interval = \"100ms\"\n",
            self.log().display()
        );
        self.config(buffer_bytes, &file)
    }

    fn wait_seqs(&self, what: &str, done: impl Fn(&[u64]) -> bool) -> Vec<u64> {
        wait_for(LIMIT, what, || {
            let seqs = self.state.lock().unwrap().seqs();
            done(&seqs).then_some(seqs)
        })
    }

    /// Wait until the saved offset of the log is its current size: every line is safe.
    fn wait_all_lines_safe(&self) {
        let size = std::fs::metadata(self.log()).unwrap().len();
        wait_for(
            LIMIT,
            "the saved offset to reach the end of the log",
            || (saved_offset(&self.state_dir(), &self.log()) == Some(size)).then_some(()),
        );
    }
}

fn saved_offset(state_dir: &Path, log: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(state_dir.join("offsets.json")).ok()?;
    let saved: serde_json::Value = serde_json::from_str(&text).ok()?;
    saved["files"][log.display().to_string()]["offset"].as_u64()
}

/// Events waiting in the disk buffer (segment names are SEQ-EVENTS.ndjson) and their bytes.
fn buffered(state_dir: &Path) -> (u64, u64) {
    let Ok(entries) = std::fs::read_dir(state_dir.join("buffer")) else {
        return (0, 0);
    };
    entries.flatten().fold((0, 0), |(events, bytes), entry| {
        let name = entry.file_name().to_string_lossy().into_owned();
        let count = name
            .strip_suffix(".ndjson")
            .and_then(|n| n.split_once('-'))
            .and_then(|(_, n)| n.parse::<u64>().ok())
            .unwrap_or(0);
        (events + count, bytes + entry.metadata().unwrap().len())
    })
}

struct Agent {
    child: Child,
    stderr_path: PathBuf,
}

impl Agent {
    fn start(setup: &Setup, config: &Path) -> Self {
        let stderr_path = setup.sandbox.path().join("agent.stderr");
        let stderr = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&stderr_path)
            .unwrap();
        let child = Command::new(SENTINEL_AGENT)
            .arg("--config")
            .arg(config)
            .args(["--log-output", "text", "--log-level", "info"])
            .env_remove("JOURNAL_STREAM")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn sentinel-agent");
        Self { child, stderr_path }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    fn wait_log(&self, needle: &str, count: usize) {
        wait_for(LIMIT, &format!("agent log line `{needle}`"), || {
            (self.stderr().matches(needle).count() >= count).then_some(())
        });
    }

    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM; the agent must flush and exit 0.
    fn stop(mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, Signal::SIGTERM).unwrap();
        let status = wait_for(LIMIT, "the agent to exit", || {
            self.child.try_wait().unwrap()
        });
        assert!(status.success(), "agent exit {status}:\n{}", self.stderr());
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn assert_exactly(seqs: &[u64], expected: std::ops::Range<u64>, stderr: &str) {
    let expected: Vec<u64> = expected.collect();
    assert_eq!(
        seqs, expected,
        "every line once, in order\nagent log:\n{stderr}"
    );
}

#[test]
fn rotation_by_rename_and_by_copytruncate_loses_and_repeats_nothing() {
    let setup = Setup::new();
    let receiver = setup.receiver();
    let agent = Agent::start(&setup, &setup.file_config(1 << 20));
    let log = setup.log();

    // the agent follows the file (it was not there when the agent started)...
    append(&log, 0..10);
    setup.wait_seqs("lines 0..10", |s| s.len() >= 10);
    // ...then a rename rotation while the writer still holds the old file, as nginx does
    // until it reopens its logs
    append(&log, 10..100);
    let mut old = OpenOptions::new().append(true).open(&log).unwrap();
    std::fs::rename(&log, setup.sandbox.path().join("access.log.1")).unwrap();
    for seq in 100..110 {
        old.write_all(line(seq).as_bytes()).unwrap();
    }
    drop(old);
    append(&log, 110..200);
    setup.wait_seqs("lines 0..200", |s| s.len() >= 200);

    // copytruncate: copy, then truncate in place; fewer bytes follow than were there
    std::fs::copy(&log, setup.sandbox.path().join("access.log.2")).unwrap();
    File::options()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&log, 200..250);
    setup.wait_seqs("lines 200..250", |s| s.len() >= 250);
    setup.wait_all_lines_safe();
    agent.stop();

    assert_exactly(&receiver.seqs(), 0..250, "");
    let state = setup.state.lock().unwrap();
    assert_eq!(state.authorization.as_deref(), Some("Bearer s3cret"));
}

#[test]
fn sigkill_after_acceptance_resends_nothing() {
    let setup = Setup::new();
    let _receiver = setup.receiver();
    let config = setup.file_config(1 << 20);
    let agent = Agent::start(&setup, &config);
    append(&setup.log(), 0..100);
    setup.wait_seqs("lines 0..100", |s| s.len() >= 100);
    // accepted and its offset saved: a kill now must not cause a single duplicate
    setup.wait_all_lines_safe();
    agent.kill();
    append(&setup.log(), 100..150);
    let agent = Agent::start(&setup, &config);
    let seqs = setup.wait_seqs("lines 100..150", |s| s.len() >= 150);
    setup.wait_all_lines_safe();
    agent.stop();
    assert_exactly(&seqs, 0..150, "");
}

#[test]
fn sigkill_with_a_batch_in_flight_resends_only_that_batch() {
    let setup = Setup::new();
    let receiver = setup.receiver();
    let config = setup.file_config(1 << 20);
    let agent = Agent::start(&setup, &config);
    append(&setup.log(), 0..30);
    setup.wait_seqs("lines 0..30", |s| s.len() >= 30);
    setup.wait_all_lines_safe();
    // the next batch reaches the server, which never answers; the agent dies waiting
    receiver.set_mode(Mode::Hold);
    append(&setup.log(), 30..35);
    let seqs = setup.wait_seqs("the held batch", |s| s.len() > 30);
    let held: Vec<u64> = seqs[30..].to_vec();
    agent.kill();
    receiver.set_mode(Mode::Accept);
    append(&setup.log(), 35..60);
    let agent = Agent::start(&setup, &config);
    setup.wait_seqs("lines 35..60", |s| s.contains(&59));
    setup.wait_all_lines_safe();
    agent.stop();

    let seqs = receiver.seqs();
    let mut counts = BTreeMap::new();
    for seq in &seqs {
        *counts.entry(*seq).or_insert(0) += 1;
    }
    assert_eq!(
        counts.keys().copied().collect::<Vec<_>>(),
        (0..60).collect::<Vec<_>>(),
        "nothing lost"
    );
    let twice: Vec<u64> = counts
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(s, _)| *s)
        .collect();
    assert!(counts.values().all(|n| *n <= 2), "{counts:?}");
    assert_eq!(twice, held, "only the unanswered batch comes again");
}

#[test]
fn sentineld_down_events_wait_on_disk_and_arrive_in_order_across_a_restart() {
    let setup = Setup::new();
    let config = setup.file_config(1 << 20);
    let receiver = setup.receiver();
    let agent = Agent::start(&setup, &config);
    append(&setup.log(), 0..20);
    setup.wait_seqs("lines 0..20", |s| s.len() >= 20);
    // sentineld goes away: its port refuses connections
    receiver.stop();
    append(&setup.log(), 20..100);
    setup.wait_all_lines_safe();
    assert_eq!(
        buffered(&setup.state_dir()).0,
        80,
        "80 events in the disk buffer"
    );
    agent.stop();
    append(&setup.log(), 100..120);

    // sentineld answers 503 for a while, then takes everything
    let receiver = setup.receiver();
    receiver.set_mode(Mode::Status(503));
    let agent = Agent::start(&setup, &config);
    wait_for(LIMIT, "a retried 503", || {
        (setup.state.lock().unwrap().refused >= 2).then_some(())
    });
    receiver.set_mode(Mode::Status(429));
    wait_for(LIMIT, "a retried 429", || {
        (setup.state.lock().unwrap().refused >= 3).then_some(())
    });
    receiver.set_mode(Mode::Accept);
    let seqs = setup.wait_seqs("all 120 lines", |s| s.len() >= 120);
    setup.wait_all_lines_safe();
    wait_for(LIMIT, "an empty disk buffer", || {
        (buffered(&setup.state_dir()) == (0, 0)).then_some(())
    });
    agent.stop();
    assert_exactly(&seqs, 0..120, "");
}

#[test]
fn a_full_disk_buffer_drops_the_oldest_loudly_and_keeps_the_newest_in_order() {
    let setup = Setup::new();
    // each event is ~100 bytes, a batch of 10 ~1 KB: the cap keeps two batches
    let cap = 2500;
    let config = setup.file_config(cap);
    let agent = Agent::start(&setup, &config);
    append(&setup.log(), 0..200);
    setup.wait_all_lines_safe();
    let (_, bytes) = buffered(&setup.state_dir());
    assert!(bytes <= cap, "buffer {bytes} bytes over the {cap} cap");
    agent.wait_log("DISK BUFFER FULL", 1);

    let receiver = setup.receiver();
    wait_for(LIMIT, "an empty disk buffer", || {
        (buffered(&setup.state_dir()) == (0, 0)).then_some(())
    });
    let stderr = agent.stderr();
    agent.stop();
    let seqs = receiver.seqs();
    let lost: u64 = stderr
        .lines()
        .filter_map(|l| {
            l.split_once(" events lost so far")?
                .0
                .rsplit(' ')
                .next()?
                .parse()
                .ok()
        })
        .max()
        .expect("a lost count in the log");
    assert!(
        !seqs.is_empty() && seqs.len() < 200,
        "{} delivered",
        seqs.len()
    );
    assert_eq!(seqs.len() as u64 + lost, 200, "delivered + lost = written");
    assert_exactly(&seqs, 200 - seqs.len() as u64..200, &stderr);
}

#[test]
fn udp_and_unix_datagrams_are_delivered() {
    let setup = Setup::new();
    let receiver = setup.receiver();
    let udp_port = free_port();
    let unix_path = setup.sandbox.path().join("run/events.sock");
    let datagrams = format!(
        "[[datagram]]\nlisten = \"udp://127.0.0.1:{udp_port}\"\n\n[[datagram]]\nlisten = \"unix://{}\"\nmode = \"0666\"\n",
        unix_path.display()
    );
    let agent = Agent::start(&setup, &setup.config(1 << 20, &datagrams));
    agent.wait_log("accepting events by datagram", 2);

    let event = |seq: u64| line(seq).trim().to_string();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.send_to(event(0).as_bytes(), ("127.0.0.1", udp_port))
        .unwrap();
    let ndjson = format!("{}\n{}\n", event(1), event(2));
    udp.send_to(ndjson.as_bytes(), ("127.0.0.1", udp_port))
        .unwrap();
    let unix = std::os::unix::net::UnixDatagram::unbound().unwrap();
    let mixed = format!("{}\nnot json\n", event(3));
    unix.send_to(mixed.as_bytes(), &unix_path).unwrap();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&unix_path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o666);

    let mut seqs = setup.wait_seqs("four datagram events", |s| s.len() >= 4);
    seqs.sort_unstable();
    assert_eq!(seqs, [0, 1, 2, 3]);
    agent.wait_log("dropped a datagram event", 1);
    agent.stop();
    assert!(!unix_path.exists(), "the socket file is removed at exit");
    drop(receiver);
}

#[test]
fn config_errors_name_file_line_and_column_and_the_example_is_valid() {
    let setup = Setup::new();
    let bad = setup.sandbox.path().join("bad.toml");
    std::fs::write(&bad, "[output]\nendpont = \"http://x\"\n").unwrap();
    let output = Command::new(SENTINEL_AGENT)
        .args(["--check-config", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(&format!("{}:2:1: unknown field `endpont`", bad.display())),
        "{stderr}"
    );
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/sentinel-agent.toml.example");
    let output = Command::new(SENTINEL_AGENT)
        .args(["--check-config", "--config", example])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
}
