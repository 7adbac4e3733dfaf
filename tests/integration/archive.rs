//! Evidence archiving against real parts: a heal's bundle lands in the local spool before the
//! restart, is uploaded to a local directory or to S3 (moto_server), survives S3 being down and
//! a daemon restart, a container's files are found through its bind mount, and a live
//! PostgreSQL's `pg_stat_activity` is snapshotted.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::docker::wait_up_and_following;
use crate::harness::{
    docker, free_port, require_docker, require_root, text, wait_for, Daemon, PostgresServer,
    Sandbox, TestContainer,
};
use crate::notify::{Receiver, SECRET};

/// A real S3 API on loopback: `moto_server` (pip `moto[server]`), found on PATH or at $MOTO_SERVER.
pub struct Moto {
    child: Child,
    pub port: u16,
}

impl Moto {
    pub fn start(port: u16) -> Self {
        let program = std::env::var("MOTO_SERVER").unwrap_or_else(|_| "moto_server".into());
        let child = Command::new(&program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| {
                panic!("cannot run {program} ({err}): pip install \"moto[server]\" (tests/setup-and-run.sh does)")
            });
        let moto = Self { child, port };
        wait_for(Duration::from_secs(30), "moto_server to listen", || {
            http(port, "GET", "/", b"").ok().map(|_| ())
        });
        moto
    }

    pub fn create_bucket(&self, bucket: &str) {
        let (status, body) = http(self.port, "PUT", &format!("/{bucket}"), b"").unwrap();
        assert_eq!(status, 200, "create bucket: {}", text(&body));
    }

    pub fn object(&self, bucket: &str, key: &str) -> Vec<u8> {
        let (status, body) = http(self.port, "GET", &format!("/{bucket}/{key}"), b"").unwrap();
        assert_eq!(status, 200, "GET {key}: {}", text(&body));
        body
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// moto checks no signature, but it serves private objects only to a request that has one.
const MOTO_AUTH: &str = "Authorization: AWS4-HMAC-SHA256 Credential=testing/20240101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0\r\n";

/// One HTTP/1.0 request to 127.0.0.1:port; (status, body).
pub fn http(port: u16, method: &str, path: &str, body: &[u8]) -> std::io::Result<(u16, Vec<u8>)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n{MOTO_AUTH}Content-Length: {}\r\n\r\n",
        body.len()
    )?;
    stream.write_all(body)?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no header end"))?;
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((status, response[split + 4..].to_vec()))
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// (path in the bundle, bytes) of every tar.gz entry.
pub fn unpack(bundle: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bundle));
    archive
        .entries()
        .unwrap()
        .map(|entry| {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).unwrap();
            (path, bytes)
        })
        .collect()
}

/// The bundle's manifest, after checking every listed file's size and sha256 against the tar.
pub fn verified_manifest(bundle: &[u8]) -> Value {
    let entries = unpack(bundle);
    let (first, manifest) = &entries[0];
    assert!(first.ends_with("/manifest.json"), "{first}");
    let manifest: Value = serde_json::from_slice(manifest).unwrap();
    let name = manifest["bundle"].as_str().unwrap();
    for file in manifest["files"].as_array().unwrap() {
        let path = format!("{name}/{}", file["path"].as_str().unwrap());
        let (_, bytes) = entries
            .iter()
            .find(|(p, _)| *p == path)
            .unwrap_or_else(|| panic!("{path} listed in the manifest but not in the tar"));
        assert_eq!(file["sha256"], sha256_hex(bytes), "{path}");
        assert_eq!(file["size"], bytes.len() as u64, "{path}");
    }
    manifest
}

/// The paths (in the bundle) of the files a manifest lists.
pub fn file_paths(manifest: &Value) -> Vec<&str> {
    manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect()
}

/// Wait for bundle `name` (or any, when None) to be uploaded; on timeout show why not.
pub fn wait_uploaded(daemon: &Daemon, name: Option<&str>, limit: Duration) -> Value {
    let started = std::time::Instant::now();
    loop {
        let all = archives(daemon);
        let found = all
            .iter()
            .find(|a| a["state"] == "uploaded" && name.is_none_or(|n| a["name"] == n));
        if let Some(found) = found {
            return found.clone();
        }
        if started.elapsed() > limit {
            panic!("no upload within {limit:?}: {all:#?}\n{}", daemon.stderr());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn archives(daemon: &Daemon) -> Vec<Value> {
    daemon.ctl_json(&["archives"])["archives"]
        .as_array()
        .unwrap()
        .clone()
}

/// An exec probe that is Up while `flag` exists, healed by recreating it, archiving `logs`.
fn flag_probe(flag: &Path, logs: &Path, extra_archive: &str) -> String {
    format!(
        r#"[[probe]]
name = "app"
kind = "exec"
command = ["/bin/sh", "-c", "test -e {flag}"]
interval = "200ms"
timeout = "200ms"
fail_after = 2
heal = {{ stable_for = "0s", action = "exec", command = ["/bin/touch", "{flag}"], backoff = "0s", verify_within = "10s", archive = ["app-logs"] }}

[[archive.source]]
name = "app-logs"
kind = "files"
path = "{logs}"
include = ["*.log", "app.conf"]

{extra_archive}
"#,
        flag = flag.display(),
        logs = logs.display()
    )
}

fn app_files(sandbox: &Sandbox) -> (PathBuf, PathBuf) {
    let logs = sandbox.path().join("app");
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::write(logs.join("app.log"), "boot\nERROR: out of connections\n").unwrap();
    std::fs::write(logs.join("app.conf"), "pool = 10\n").unwrap();
    std::fs::write(logs.join("ignored.txt"), "not evidence\n").unwrap();
    let flag = sandbox.path().join("app.up");
    std::fs::write(&flag, "").unwrap();
    (flag, logs)
}

/// `len` bytes that gzip cannot shrink (xorshift), so a bundle's size is known in advance.
fn noise(len: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(len + 8);
    let mut state = 0x9e3779b97f4a7c15u64;
    while bytes.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        bytes.extend_from_slice(&state.to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}

/// Write `config`, start sentineld (with `configure`) and wait until probe `app` is up.
fn start_with_app_up(
    sandbox: &Sandbox,
    config: &str,
    configure: impl FnOnce(&mut Command),
) -> Daemon {
    sandbox.write_config(&sandbox.config("", config));
    let daemon = Daemon::start(sandbox, configure);
    daemon.wait_state_within("app", "up", Duration::from_secs(15));
    daemon
}

#[test]
fn bundle_is_spooled_before_the_restart_and_copied_to_the_local_sink() {
    let sandbox = Sandbox::new();
    let (flag, logs) = app_files(&sandbox);
    let sink = sandbox.path().join("evidence");
    let config = flag_probe(
        &flag,
        &logs,
        &format!("[archive.local]\ndir = \"{}\"\n", sink.display()),
    );
    let daemon = start_with_app_up(&sandbox, &config, |_| {});

    std::fs::remove_file(&flag).unwrap();
    let bundle = wait_uploaded(&daemon, None, Duration::from_secs(20));
    wait_for(Duration::from_secs(20), "incident closed", || {
        (!daemon.events("incident_closed").is_empty()).then_some(())
    });

    // evidence first: spooled before the heal started
    let kinds: Vec<String> = daemon
        .events("archive_started,archive_spooled,heal_started,archive_uploaded")
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect();
    let spooled = kinds.iter().position(|k| k == "archive_spooled").unwrap();
    let healed = kinds.iter().position(|k| k == "heal_started").unwrap();
    assert!(
        kinds[0] == "archive_started" && spooled < healed,
        "{kinds:?}"
    );

    let name = bundle["name"].as_str().unwrap();
    assert!(name.ends_with("Z-app"), "{name}");
    let location = bundle["location"].as_str().unwrap();
    assert_eq!(
        location,
        sink.join(name).join("bundle.tar.gz").display().to_string()
    );
    let bytes = std::fs::read(location).unwrap();
    assert_eq!(bundle["sha256"], sha256_hex(&bytes));
    let manifest = verified_manifest(&bytes);
    assert_eq!(
        file_paths(&manifest),
        ["app-logs/app.conf", "app-logs/app.log"]
    );
    assert_eq!(manifest["probe"], "app");
    assert_eq!(manifest["failure_reason"], "exit_status");
    // the sink's manifest.json is the one inside the bundle
    let side: Value =
        serde_json::from_slice(&std::fs::read(sink.join(name).join("manifest.json")).unwrap())
            .unwrap();
    assert_eq!(side, manifest);

    let table = text(&daemon.ctl(&["archives"]).stdout);
    assert!(
        table.contains(name) && table.contains("uploaded"),
        "{table}"
    );
    assert!(daemon.stop().success());
}

pub fn s3_section(port: u16) -> String {
    format!(
        "[archive.s3]\nbucket = \"evidence\"\nprefix = \"incidents\"\nendpoint = \"http://127.0.0.1:{port}\"\npath_style = true\n\n[archive]\ntimeout = \"10s\"\nmax_retry_delay = \"1s\"\n"
    )
}

/// Credentials for moto from the environment (the standard chain's first link); no metadata
/// service is ever asked.
pub fn aws_env(command: &mut Command) {
    command
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE");
}

#[test]
fn s3_down_during_the_archive_heals_anyway_and_uploads_after_a_daemon_restart() {
    let sandbox = Sandbox::new();
    let (flag, logs) = app_files(&sandbox);
    let port = free_port();
    let config = flag_probe(&flag, &logs, &s3_section(port));
    let daemon = start_with_app_up(&sandbox, &config, aws_env);

    // S3 is down: the heal must not wait for it
    std::fs::remove_file(&flag).unwrap();
    wait_for(Duration::from_secs(20), "incident closed", || {
        (!daemon.events("incident_closed").is_empty()).then_some(())
    });
    let pending = wait_for(Duration::from_secs(20), "a failed upload", || {
        archives(&daemon)
            .into_iter()
            .find(|a| a["state"] == "pending" && a["attempts"].as_u64() >= Some(1))
    });
    assert!(
        pending["last_error"].as_str().unwrap().contains("S3"),
        "{pending}"
    );
    let destination = pending["destination"].as_str().unwrap().to_string();
    let name = pending["name"].as_str().unwrap().to_string();
    assert_eq!(destination, format!("s3://evidence/incidents/{name}/"));
    let spooled = std::fs::read(pending["path"].as_str().unwrap()).unwrap();
    let failed = daemon.events("archive_failed");
    assert!(failed.iter().any(|e| e["stage"] == "upload"), "{failed:?}");
    assert!(daemon.stop().success());

    // S3 comes back while the daemon is down; the restarted daemon finishes the upload
    let moto = Moto::start(port);
    moto.create_bucket("evidence");
    let daemon = Daemon::start(&sandbox, aws_env);
    let uploaded = wait_uploaded(&daemon, Some(&name), Duration::from_secs(30));
    let key = format!("incidents/{name}/bundle.tar.gz");
    assert_eq!(uploaded["location"], format!("s3://evidence/{key}"));
    let object = moto.object("evidence", &key);
    assert_eq!(
        object, spooled,
        "the object is the spooled bundle, byte for byte"
    );
    assert_eq!(uploaded["sha256"], sha256_hex(&object));
    let manifest = verified_manifest(&object);
    let side: Value = serde_json::from_slice(
        &moto.object("evidence", &format!("incidents/{name}/manifest.json")),
    )
    .unwrap();
    assert_eq!(side, manifest);
    assert!(daemon.stop().success());
}

#[test]
fn large_bundles_go_up_in_verified_parts() {
    let sandbox = Sandbox::new();
    let (flag, logs) = app_files(&sandbox);
    // 12 MiB of incompressible log: above the 5 MiB threshold, three 5 MiB parts
    let noise = noise(12 << 20);
    std::fs::write(logs.join("big.log"), &noise).unwrap();
    let port = free_port();
    let moto = Moto::start(port);
    moto.create_bucket("evidence");
    let s3 = s3_section(port).replace(
        "path_style = true\n",
        "path_style = true\nmultipart_threshold = \"5MiB\"\npart_size = \"5MiB\"\n",
    );
    let daemon = start_with_app_up(&sandbox, &flag_probe(&flag, &logs, &s3), aws_env);
    std::fs::remove_file(&flag).unwrap();
    let uploaded = wait_uploaded(&daemon, None, Duration::from_secs(60));
    assert!(uploaded["bytes"].as_u64().unwrap() > 10 << 20, "{uploaded}");
    let key = uploaded["location"]
        .as_str()
        .unwrap()
        .trim_start_matches("s3://evidence/")
        .to_string();
    let object = moto.object("evidence", &key);
    assert_eq!(uploaded["sha256"], sha256_hex(&object));
    let entries = unpack(&object);
    let big = entries
        .iter()
        .find(|(p, _)| p.ends_with("/app-logs/big.log"))
        .unwrap();
    assert!(big.1 == noise, "the big log survived the round trip");
    assert!(daemon.stop().success());
}

#[test]
fn container_files_are_found_through_its_mounts_with_its_logs_and_state() {
    if !require_docker("container_files_are_found_through_its_mounts_with_its_logs_and_state") {
        return;
    }
    let sandbox = Sandbox::new();
    let data = sandbox.path().join("pgdata");
    std::fs::create_dir_all(data.join("log")).unwrap();
    std::fs::write(
        data.join("log/postgresql-0.log"),
        "FATAL: the database system is shutting down\n",
    )
    .unwrap();
    std::fs::write(data.join("postgresql.conf"), "port = 5432\n").unwrap();
    let mount = format!("{}:/var/lib/postgresql/data", data.display());
    let container = TestContainer::run_with(
        "archive",
        &["-v", &mount],
        &["sh", "-c", "echo ready to accept connections; sleep 3600"],
    );
    let config = format!(
        r#"[[probe]]
name = "db"
kind = "docker"
container = "{name}"
interval = "30s"
fail_after = 1
heal = {{ stable_for = "0s", action = "docker_restart", stop_timeout = "1s", verify_within = "15s", backoff = "0s", archive = ["postgres-logs", "container"] }}

[[archive.source]]
name = "postgres-logs"
kind = "files"
container = "{name}"
path = "/var/lib/postgresql/data"
include = ["log/*.log", "postgresql.conf", "pg_hba.conf"]

[[archive.source]]
name = "container"
kind = "container"
tail = 100
"#,
        name = container.name
    );
    sandbox.write_config(&sandbox.config("", &config));
    let daemon = Daemon::start(&sandbox, |_| {});
    wait_up_and_following(&daemon, "db");
    docker(&["kill", &container.name]);
    let bundle = wait_uploaded(&daemon, None, Duration::from_secs(30));
    wait_for(Duration::from_secs(30), "incident closed", || {
        (!daemon.events("incident_closed").is_empty()).then_some(())
    });
    let bytes = std::fs::read(bundle["location"].as_str().unwrap()).unwrap();
    let manifest = verified_manifest(&bytes);
    let files: Vec<(String, String)> = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().into(),
                f["origin"].as_str().unwrap().into(),
            )
        })
        .collect();
    let paths: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        [
            "postgres-logs/log/postgresql-0.log",
            "postgres-logs/postgresql.conf",
            "container/inspect.json",
            "container/container.log"
        ]
    );
    // read from the host side of the bind mount
    assert_eq!(
        files[0].1,
        data.join("log/postgresql-0.log").display().to_string()
    );
    let problems = manifest["problems"].to_string();
    assert!(problems.contains("pg_hba.conf"), "{problems}");
    let entries = unpack(&bytes);
    let inspect = entries
        .iter()
        .find(|(p, _)| p.ends_with("container/inspect.json"))
        .unwrap();
    let inspect: Value = serde_json::from_slice(&inspect.1).unwrap();
    assert_eq!(inspect["State"]["ExitCode"], 137, "{inspect}");
    assert_eq!(inspect["State"]["OOMKilled"], false, "{inspect}");
    let log = entries
        .iter()
        .find(|(p, _)| p.ends_with("container/container.log"))
        .unwrap();
    assert!(
        text(&log.1).contains("ready to accept connections"),
        "{}",
        text(&log.1)
    );
    assert_eq!(manifest["target"], container.name.as_str());
    assert!(daemon.stop().success());
}

#[test]
fn pg_stat_activity_snapshot_shows_what_a_live_server_was_doing() {
    if !require_root("pg_stat_activity_snapshot_shows_what_a_live_server_was_doing") {
        return;
    }
    let sandbox = Sandbox::new();
    let server = PostgresServer::start(&sandbox);
    // a client busy in a query when the incident happens: the snapshot must show it
    let password = std::fs::read_to_string(&server.password_file).unwrap();
    let mut busy = Command::new("psql")
        .args(["-h", "127.0.0.1", "-p", &server.port.to_string()])
        .args([
            "-U",
            &server.user,
            "-d",
            "postgres",
            "-c",
            "SELECT pg_sleep(60)",
        ])
        .env("PGPASSWORD", password.trim())
        .env("PGAPPNAME", "busy-client")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (flag, logs) = app_files(&sandbox);
    let activity = format!(
        r#"[[archive.source]]
name = "activity"
kind = "pg_stat_activity"
probe = "db"

[[probe]]
name = "db"
kind = "postgres"
address = "127.0.0.1:{port}"
user = "{user}"
password_file = "{password}"
database = "postgres"
interval = "1s"
timeout = "1s"
"#,
        port = server.port,
        user = server.user,
        password = server.password_file.display(),
    );
    let config = flag_probe(&flag, &logs, &activity).replace(
        "archive = [\"app-logs\"]",
        "archive = [\"app-logs\", \"activity\"]",
    );
    sandbox.write_config(&sandbox.config("", &config));
    let daemon = Daemon::start(&sandbox, |_| {});
    wait_for(Duration::from_secs(15), "app and db up", || {
        (daemon.probe("app")["state"] == "up" && daemon.probe("db")["state"] == "up").then_some(())
    });
    std::fs::remove_file(&flag).unwrap();
    let bundle = wait_uploaded(&daemon, None, Duration::from_secs(30));
    let _ = busy.kill();
    let _ = busy.wait();
    let bytes = std::fs::read(bundle["location"].as_str().unwrap()).unwrap();
    let manifest = verified_manifest(&bytes);
    assert_eq!(manifest["problems"], serde_json::json!([]), "{manifest:#}");
    let snapshot = unpack(&bytes)
        .into_iter()
        .find(|(p, _)| p.ends_with("/activity/pg_stat_activity.json"))
        .unwrap_or_else(|| panic!("no snapshot: {manifest:#}"))
        .1;
    let rows: Vec<Value> = serde_json::from_slice(&snapshot).unwrap();
    let busy_row = rows
        .iter()
        .find(|r| r["application_name"] == "busy-client")
        .unwrap_or_else(|| panic!("the busy client is missing: {rows:#?}"));
    assert_eq!(busy_row["state"], "active", "{busy_row}");
    assert_eq!(busy_row["query"], "SELECT pg_sleep(60)", "{busy_row}");
    assert_eq!(busy_row["usename"], server.user.as_str(), "{busy_row}");
    assert_eq!(busy_row["wait_event"], "PgSleep", "{busy_row}");
    assert!(
        rows.iter()
            .any(|r| r["application_name"] == "sentineld-archive"),
        "the snapshot's own connection is listed: {rows:#?}"
    );
    assert!(daemon.stop().success());
}

/// Milliseconds since the epoch at which a journaled event happened.
fn at_ms(event: &Value) -> i64 {
    event["at"]
        .as_i64()
        .unwrap_or_else(|| panic!("no `at`: {event}"))
}

/// A database that hangs: a listener that never accepts (the kernel completes the handshake and
/// nothing ever answers, as with a SIGSTOPped server). Each `pg_stat_activity` source on it
/// waits out its 5 s connect bound, so evidence collection is slow for real.
struct HungDatabase {
    _listener: std::net::TcpListener,
    port: u16,
}

impl HungDatabase {
    fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        Self {
            _listener: listener,
            port,
        }
    }

    /// The flag probe archiving `app-logs` plus `sources` activity snapshots of this database,
    /// with `[archive] timeout = "2s"`.
    fn flag_probe_config(
        &self,
        sandbox: &Sandbox,
        flag: &Path,
        logs: &Path,
        sources: usize,
    ) -> String {
        let password = sandbox.path().join("pg-password");
        std::fs::write(&password, "secret\n").unwrap();
        let mut slow = format!(
            "[archive]\ntimeout = \"2s\"\n\n[[probe]]\nname = \"hung-db\"\nkind = \"postgres\"\naddress = \"127.0.0.1:{port}\"\nuser = \"sentinel\"\npassword_file = \"{password}\"\ninterval = \"1h\"\n",
            port = self.port,
            password = password.display(),
        );
        let mut names = vec!["\"app-logs\"".to_string()];
        for n in 1..=sources {
            slow.push_str(&format!("\n[[archive.source]]\nname = \"activity-{n}\"\nkind = \"pg_stat_activity\"\nprobe = \"hung-db\"\n"));
            names.push(format!("\"activity-{n}\""));
        }
        flag_probe(flag, logs, &slow).replace(
            "archive = [\"app-logs\"]",
            &format!("archive = [{}]", names.join(", ")),
        )
    }
}

/// `[archive] timeout`: the restart goes ahead while the evidence is still being collected, the
/// timeout is journaled, and the late bundle still reaches the spool and the sink.
///
/// Collection is made slow by a `HungDatabase` with two activity sources: at least 10 s. A
/// FIFO cannot do it: a `files` source reads only regular files, so the writer-less FIFO
/// `stuck.log` below is skipped (had it been opened, collection would hang for good and this
/// test would time out waiting for the bundle).
#[test]
fn slow_evidence_times_out_and_the_restart_goes_ahead_while_collection_finishes() {
    let sandbox = Sandbox::new();
    let (flag, logs) = app_files(&sandbox);
    nix::unistd::mkfifo(
        &logs.join("stuck.log"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    let hung = HungDatabase::start();
    let hung_port = hung.port;
    let config = hung.flag_probe_config(&sandbox, &flag, &logs, 2);
    let daemon = start_with_app_up(&sandbox, &config, |_| {});

    std::fs::remove_file(&flag).unwrap();
    // the late bundle still arrives, with what the live sources gave
    let bundle = wait_uploaded(&daemon, None, Duration::from_secs(40));
    let name = bundle["name"].as_str().unwrap();

    let events = daemon.events(
        "archive_started,archive_failed,heal_started,heal_finished,incident_closed,archive_spooled",
    );
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "archive_started",
            "archive_failed",
            "heal_started",
            "heal_finished",
            "incident_closed",
            "archive_spooled"
        ],
        "{events:#?}"
    );
    let (started, timed_out, healed, spooled) = (&events[0], &events[1], &events[3], &events[5]);
    assert_eq!(timed_out["stage"], "timeout", "{timed_out}");
    assert_eq!(timed_out["will_retry"], true, "{timed_out}");
    assert_eq!(timed_out["bundle"], name, "{timed_out}");
    assert_eq!(started["bundle"], name);
    assert_eq!(spooled["bundle"], name);
    assert_eq!(healed["ok"], true, "{healed}");
    let since_start = |event: &Value| at_ms(event) - at_ms(started);
    // the wait lasted the timeout, the restart came right after it, the bundle long after
    assert!(
        (2_000..5_000).contains(&since_start(timed_out)),
        "{timed_out}"
    );
    assert!(since_start(healed) < 6_000, "{healed}");
    assert!(since_start(spooled) >= 9_500, "{spooled}");

    let bytes = std::fs::read(bundle["location"].as_str().unwrap()).unwrap();
    let manifest = verified_manifest(&bytes);
    assert_eq!(
        file_paths(&manifest),
        ["app-logs/app.conf", "app-logs/app.log"]
    );
    let problems = manifest["problems"].as_array().unwrap();
    for source in ["activity-1", "activity-2"] {
        assert!(
            problems.iter().any(|p| p["source"] == source
                && p["error"]
                    .as_str()
                    .unwrap()
                    .contains(&format!("127.0.0.1:{hung_port}"))),
            "{source}: {problems:#?}"
        );
    }
    assert!(daemon.stop().success());
}

/// The spool quota never deletes evidence that is not uploaded yet: with S3 down, two bundles
/// over the quota both stay (alerted once, journaled and at a webhook); once S3 is back both
/// are uploaded and the older one is pruned from the spool, oldest first, until it fits.
#[test]
fn spool_quota_keeps_pending_bundles_and_prunes_uploaded_ones_oldest_first() {
    let sandbox = Sandbox::new();
    let (flag, logs) = app_files(&sandbox);
    // incompressible: each bundle is a little over 3 KiB, so one fits 5 KiB and two do not
    std::fs::write(logs.join("noise.log"), noise(3 << 10)).unwrap();
    let quota = 5 << 10;
    let (s3_port, hook_port) = (free_port(), free_port());
    let receiver = Receiver::start(hook_port);
    let extra = format!(
        "{s3}spool_quota = \"5KiB\"\n\n[notify]\nmax_retry_delay = \"1s\"\n\n[[notify.channel]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{hook_port}/hook\"\nsecret = \"{SECRET}\"\n",
        s3 = s3_section(s3_port),
    );
    let daemon = start_with_app_up(&sandbox, &flag_probe(&flag, &logs, &extra), aws_env);

    // two incidents while S3 is down: two pending bundles
    for incident in 1..=2 {
        std::fs::remove_file(&flag).unwrap();
        wait_for(
            Duration::from_secs(20),
            &format!("incident {incident} closed"),
            || (daemon.events("incident_closed").len() == incident).then_some(()),
        );
    }
    let quota_events = || {
        daemon
            .events("archive_failed")
            .into_iter()
            .filter(|e| e["stage"] == "quota")
            .collect::<Vec<_>>()
    };
    // a few more upload rounds after the alert, each of which checks the quota again
    let pending = wait_for(
        Duration::from_secs(30),
        "both bundles pending, retried",
        || {
            let all = archives(&daemon);
            let retried = all.len() == 2
                && all
                    .iter()
                    .all(|a| a["state"] == "pending" && a["attempts"].as_u64() >= Some(3));
            (retried && !quota_events().is_empty()).then_some(all)
        },
    );
    let (newest, oldest) = (&pending[0], &pending[1]);
    for bundle in [newest, oldest] {
        let bytes = bundle["bytes"].as_u64().unwrap();
        assert!(bytes < quota && bytes > quota / 2, "{bundle}");
        assert!(
            Path::new(bundle["path"].as_str().unwrap()).is_file(),
            "{bundle}"
        );
        assert!(
            Path::new(bundle["manifest_path"].as_str().unwrap()).is_file(),
            "{bundle}"
        );
    }
    let alerts = quota_events();
    assert_eq!(alerts.len(), 1, "alerted once: {alerts:#?}");
    assert_eq!(alerts[0]["bundle"], oldest["name"], "{alerts:#?}");
    let quota_hooks = || {
        receiver
            .at("/hook")
            .into_iter()
            .filter(|h| {
                h.body["subject"]
                    .as_str()
                    .is_some_and(|s| s.ends_with(":quota"))
            })
            .collect::<Vec<_>>()
    };
    let notified = wait_for(
        Duration::from_secs(20),
        "the quota alert at the webhook",
        || Some(quota_hooks()).filter(|hooks| !hooks.is_empty()),
    );
    assert!(notified[0].signed, "{notified:?}");
    let text = notified[0].body["text"].as_str().unwrap();
    assert!(text.contains("quota") && text.contains("kept"), "{text}");

    // S3 back: both go up, then the oldest is pruned to fit; the newest fits and stays
    let moto = Moto::start(s3_port);
    moto.create_bucket("evidence");
    let settled = wait_for(
        Duration::from_secs(30),
        "oldest pruned, newest uploaded",
        || {
            let all = archives(&daemon);
            (all.len() == 2 && all[0]["state"] == "uploaded" && all[1]["state"] == "pruned")
                .then_some(all)
        },
    );
    for (bundle, before) in settled.iter().zip([newest, oldest]) {
        assert_eq!(bundle["name"], before["name"]);
        let key = format!(
            "incidents/{}/bundle.tar.gz",
            bundle["name"].as_str().unwrap()
        );
        assert_eq!(bundle["location"], format!("s3://evidence/{key}"));
        assert_eq!(sha256_hex(&moto.object("evidence", &key)), before["sha256"]);
    }
    assert!(Path::new(newest["path"].as_str().unwrap()).is_file());
    assert!(!Path::new(oldest["path"].as_str().unwrap()).exists());
    assert!(!Path::new(oldest["manifest_path"].as_str().unwrap()).exists());
    assert_eq!(quota_events().len(), 1, "{:#?}", quota_events());
    assert_eq!(quota_hooks().len(), 1, "{:?}", quota_hooks());
    assert!(daemon.stop().success());
}

/// The flag probe goes down with `hung_sources` activity snapshots of a `HungDatabase` in its
/// evidence (about 5 s each), and the heal stops waiting at the 2 s archive timeout: returns
/// the running daemon while that bundle is still being collected, and the `archive_failed`
/// event of the timeout. Keep the `HungDatabase` alive as long as the daemon.
fn collecting_past_the_archive_timeout(
    hung_sources: usize,
) -> (Sandbox, HungDatabase, Daemon, Value) {
    let sandbox = Sandbox::new();
    let (flag, logs) = app_files(&sandbox);
    let hung = HungDatabase::start();
    let config = hung.flag_probe_config(&sandbox, &flag, &logs, hung_sources);
    let daemon = start_with_app_up(&sandbox, &config, |_| {});
    std::fs::remove_file(&flag).unwrap();
    let timed_out = wait_for(Duration::from_secs(20), "the archive timeout", || {
        daemon.events("archive_failed").into_iter().next()
    });
    assert_eq!(timed_out["stage"], "timeout", "{timed_out}");
    (sandbox, hung, daemon, timed_out)
}

/// A bundle still being collected when sentineld is stopped (its heal stopped waiting at the
/// archive timeout) is spooled before the daemon exits, and the next run ships it.
#[test]
fn a_late_bundle_still_collecting_at_shutdown_is_spooled_before_exit() {
    // one hung source: about 5 s of collection, within the daemon's 5 s shutdown grace
    let (sandbox, _hung, daemon, timed_out) = collecting_past_the_archive_timeout(1);
    assert!(
        archives(&daemon).is_empty(),
        "spooled already: the collection was not slow enough to be stopped midway"
    );
    assert!(daemon.stop().success());

    let daemon = Daemon::start(&sandbox, |_| {});
    let bundle = wait_uploaded(&daemon, None, Duration::from_secs(20));
    assert_eq!(bundle["name"], timed_out["bundle"]);
    let manifest = verified_manifest(&std::fs::read(bundle["location"].as_str().unwrap()).unwrap());
    assert_eq!(
        file_paths(&manifest),
        ["app-logs/app.conf", "app-logs/app.log"]
    );
    assert_eq!(
        manifest["problems"][0]["source"], "activity-1",
        "{manifest:#}"
    );
    assert!(daemon.stop().success());
}

/// A collection that outlasts even the shutdown grace is not lost silently: the bundle is
/// journaled as `archive_failed` stage `shutdown`, which the next run still shows.
#[test]
fn a_collection_outlasting_the_shutdown_grace_is_journaled_as_lost() {
    // three hung sources: about 15 s of collection, past the daemon's 5 s shutdown grace
    let (sandbox, _hung, daemon, timed_out) = collecting_past_the_archive_timeout(3);
    assert!(daemon.stop().success());

    let daemon = Daemon::start(&sandbox, |_| {});
    let lost: Vec<Value> = daemon
        .events("archive_failed")
        .into_iter()
        .filter(|e| e["stage"] == "shutdown")
        .collect();
    assert_eq!(lost.len(), 1, "{lost:?}");
    assert_eq!(lost[0]["bundle"], timed_out["bundle"]);
    assert_eq!(lost[0]["will_retry"], false);
    let error = lost[0]["error"].as_str().unwrap();
    assert!(error.contains("still being collected"), "{error}");
    assert!(archives(&daemon).is_empty(), "nothing was spooled");
    assert!(daemon.stop().success());
}

/// Whether any bundle entry (the manifest included) holds `needle`.
fn bundle_holds(entries: &[(String, Vec<u8>)], needle: &[u8]) -> Option<String> {
    entries
        .iter()
        .find(|(_, bytes)| bytes.windows(needle.len()).any(|w| w == needle))
        .map(|(path, _)| path.clone())
}

/// Issue 12: a container writes symlinks, a FIFO and a device node into its bind mount; the
/// root daemon reads none of what they lead to, collects the links that stay inside, names
/// every skipped entry in the manifest, and a FIFO does not stall collection.
#[test]
fn links_planted_in_a_bind_mount_never_take_host_files_into_the_bundle() {
    let test = "links_planted_in_a_bind_mount_never_take_host_files_into_the_bundle";
    if !require_docker(test) {
        return;
    }
    let sandbox = Sandbox::new();
    // The host secret lives outside the mount; the marker is unique to this run.
    let marker = format!(
        "HOST-SECRET-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let secret_dir = tempfile::tempdir().unwrap();
    let secret = secret_dir.path().join("secret.log");
    std::fs::write(&secret, format!("{marker} file\n")).unwrap();
    std::fs::write(
        secret_dir.path().join("nested.log"),
        format!("{marker} nested\n"),
    )
    .unwrap();
    let data = sandbox.path().join("data");
    std::fs::create_dir_all(data.join("log/old")).unwrap();
    std::fs::write(data.join("log/current.log"), "ERROR: real evidence\n").unwrap();
    std::fs::write(data.join("log/old/rotated.log"), "older evidence\n").unwrap();

    let container = TestContainer::run_with(
        "archive-links",
        &["-v", &format!("{}:/data", data.display())],
        &["sleep", "3600"],
    );
    // Planted from inside the container, where none of these targets even exist.
    let (secret, secret_dir_path) = (secret.display(), secret_dir.path().display());
    let plant = format!(
        "cd /data/log && \
         busybox ln -s {secret} secret.log && \
         busybox ln -s /etc/shadow shadow.log && \
         busybox ln -s {secret_dir_path} linked && \
         busybox ln -s ../../../../../../../../../..{secret} dotdot.log && \
         busybox ln -s ../.. up && \
         busybox ln -s /proc/self/root{secret} magic.log && \
         busybox ln -s /proc/1/root/etc/shadow proc1.log && \
         busybox mkfifo pipe.log && \
         busybox mknod null.log c 1 3 && \
         busybox ln -s current.log latest.log && \
         busybox ln -s old archive && \
         busybox ln -s {secret_dir_path} /data/moved"
    );
    docker(&["exec", &container.name, "sh", "-c", &plant]);

    let config = format!(
        r#"[[probe]]
name = "app"
kind = "docker"
container = "{name}"
interval = "30s"
fail_after = 1
heal = {{ stable_for = "0s", action = "docker_restart", stop_timeout = "1s", verify_within = "15s", backoff = "0s", archive = ["app-files", "moved"] }}

[archive]
timeout = "10s"

[[archive.source]]
name = "app-files"
kind = "files"
container = "{name}"
path = "/data"
include = ["log/**/*.log"]

[[archive.source]]
name = "moved"
kind = "files"
container = "{name}"
path = "/data/moved"
"#,
        name = container.name
    );
    sandbox.write_config(&sandbox.config("", &config));
    let daemon = Daemon::start(&sandbox, |_| {});
    wait_up_and_following(&daemon, "app");
    let started = std::time::Instant::now();
    docker(&["kill", &container.name]);
    let bundle = wait_uploaded(&daemon, None, Duration::from_secs(30));
    let took = started.elapsed();
    let failed = daemon.events("archive_failed");
    assert!(failed.is_empty(), "{failed:#?}");

    let bytes = std::fs::read(bundle["location"].as_str().unwrap()).unwrap();
    let manifest = verified_manifest(&bytes);
    let entries = unpack(&bytes);
    assert_eq!(
        bundle_holds(&entries, marker.as_bytes()),
        None,
        "a host file outside the mount reached the bundle"
    );
    if let Ok(shadow) = std::fs::read_to_string("/etc/shadow") {
        if let Some(line) = shadow.lines().next().filter(|l| l.len() > 8) {
            assert_eq!(bundle_holds(&entries, line.as_bytes()), None, "/etc/shadow");
        }
    }
    // what stays inside is collected, through links too
    assert_eq!(
        file_paths(&manifest),
        [
            "app-files/log/archive/rotated.log",
            "app-files/log/current.log",
            "app-files/log/latest.log",
            "app-files/log/old/rotated.log",
        ],
        "{manifest:#}"
    );
    let latest = entries
        .iter()
        .find(|(p, _)| p.ends_with("app-files/log/latest.log"))
        .unwrap();
    assert_eq!(text(&latest.1), "ERROR: real evidence\n");
    // every skipped entry is named, with why
    let mut skipped: Vec<(String, String)> = manifest["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["source"] == "app-files")
        .map(|p| {
            (
                p["path"].as_str().unwrap_or("-").to_string(),
                p["skipped"].as_str().unwrap_or("-").to_string(),
            )
        })
        .collect();
    skipped.sort();
    let expected = [
        ("log/dotdot.log", "escapes_root"),
        ("log/linked", "escapes_root"),
        ("log/magic.log", "escapes_root"),
        ("log/null.log", "not_regular_file"),
        ("log/pipe.log", "not_regular_file"),
        ("log/proc1.log", "escapes_root"),
        ("log/secret.log", "escapes_root"),
        ("log/shadow.log", "escapes_root"),
        ("log/up", "escapes_root"),
    ]
    .map(|(p, r)| (p.to_string(), r.to_string()));
    assert_eq!(skipped, expected, "{manifest:#}");
    // the source whose directory itself was swapped for a link out of the mount
    let moved: Vec<&Value> = manifest["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["source"] == "moved")
        .collect();
    assert_eq!(moved.len(), 1, "{manifest:#}");
    let error = moved[0]["error"].as_str().unwrap();
    assert!(
        error.contains("/data/moved: leads out of the directory sentineld may read"),
        "{error}"
    );
    eprintln!("{test}: bundle uploaded {took:?} after the kill");
    assert!(daemon.stop().success());
}

/// Issue 12: the spool, the bundles in it and the local sink's copies get their modes from
/// sentineld (files 0640, new directories 0750, group: the control socket's), not the umask.
#[test]
fn evidence_files_are_0640_in_the_socket_group_whatever_the_umask() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let test = "evidence_files_are_0640_in_the_socket_group_whatever_the_umask";
    if !require_root(test) {
        return;
    }
    // A group other than root's, so the chown shows; any existing one will do.
    let group = ["nogroup", "daemon", "users"]
        .iter()
        .find_map(|name| nix::unistd::Group::from_name(name).ok().flatten())
        .expect("a nogroup, daemon or users group");
    for umask in ["000", "077"] {
        let sandbox = Sandbox::new();
        let (flag, logs) = app_files(&sandbox);
        let sink = sandbox.path().join("evidence");
        let config = flag_probe(
            &flag,
            &logs,
            &format!("[archive.local]\ndir = \"{}\"\n", sink.display()),
        );
        let daemon_section = format!("socket_group = \"{}\"", group.name);
        sandbox.write_config(&sandbox.config(&daemon_section, &config));
        let wrapper: Vec<String> = ["sh", "-c", &format!("umask {umask} && exec \"$@\""), "sh"]
            .map(String::from)
            .to_vec();
        let daemon = Daemon::start_with(&sandbox, &wrapper, "text", |_| {});
        daemon.wait_state_within("app", "up", Duration::from_secs(15));
        std::fs::remove_file(&flag).unwrap();
        let bundle = wait_uploaded(&daemon, None, Duration::from_secs(20));
        let name = bundle["name"].as_str().unwrap();
        let spool = sandbox.path().join("state/archive/spool");
        let dirs = [
            sandbox.path().join("state/archive"),
            spool.clone(),
            sink.clone(),
            sink.join(name),
        ];
        let files = [
            spool.join(format!("{name}.tar.gz")),
            spool.join(format!("{name}.manifest.json")),
            sink.join(name).join("bundle.tar.gz"),
            sink.join(name).join("manifest.json"),
        ];
        let want = |paths: &[PathBuf], mode: u32| {
            for path in paths {
                let meta = std::fs::metadata(path).unwrap();
                assert_eq!(
                    (meta.permissions().mode() & 0o7777, meta.gid()),
                    (mode, group.gid.as_raw()),
                    "umask {umask}: {}",
                    path.display()
                );
            }
        };
        want(&dirs, 0o750);
        want(&files, 0o640);
        assert!(daemon.stop().success());
    }
}
