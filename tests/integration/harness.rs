//! Starts the real `sentineld` binary in a temp dir and drives it with the real `sentinelctl`.

use std::fs::File;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const SENTINELD: &str = env!("CARGO_BIN_EXE_sentineld");
pub const SENTINELCTL: &str = env!("CARGO_BIN_EXE_sentinelctl");
pub const SENTINEL_AGENT: &str = env!("CARGO_BIN_EXE_sentinel-agent");

/// True when running as root. Without root, a test that needs it fails under CI and skips loudly
/// on a developer machine.
pub fn require_root(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{test} needs root, and CI must run it: run the suite as root");
    }
    eprintln!("\n!!! SKIPPING {test}: it needs root (this is allowed only outside CI) !!!\n");
    false
}

/// Poll `check` until it returns Some or `limit` passes.
pub fn wait_for<T>(limit: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        if started.elapsed() > limit {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A temp dir every user can traverse (so a client running as `nobody` reaches the socket).
pub struct Sandbox {
    pub dir: tempfile::TempDir,
    pub port: u16,
}

impl Sandbox {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        Self {
            dir,
            port: free_port(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn socket(&self) -> PathBuf {
        self.path().join("run/sentinel.sock")
    }

    pub fn config_path(&self) -> PathBuf {
        self.path().join("etc/sentineld.toml")
    }

    /// A config whose paths live in the sandbox, plus `extra` (probes, overrides).
    pub fn config(&self, daemon_extra: &str, extra: &str) -> String {
        format!(
            r#"[daemon]
state_dir = "{state}"
socket = "{socket}"
{daemon_extra}

[http]
listen = "127.0.0.1:{port}"

{extra}"#,
            state = self.path().join("state").display(),
            socket = self.socket().display(),
            port = self.port,
        )
    }

    /// The self-probe of the example config, fast.
    pub fn healthz_probe(&self, name: &str) -> String {
        format!(
            "[[probe]]\nname = \"{name}\"\nkind = \"http\"\nurl = \"http://127.0.0.1:{}/healthz\"\ninterval = \"200ms\"\ntimeout = \"200ms\"\n",
            self.port
        )
    }

    /// Write the config the way editors do: a temp file renamed over the old one.
    pub fn write_config(&self, text: &str) {
        let path = self.config_path();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let temp = path.with_extension("toml.tmp");
        std::fs::write(&temp, text).unwrap();
        std::fs::rename(&temp, &path).unwrap();
    }
}

pub struct Daemon {
    pub child: Child,
    pub stderr_path: PathBuf,
    pub socket: PathBuf,
}

impl Daemon {
    /// Start sentineld on the sandbox config and wait until its socket answers.
    pub fn start(sandbox: &Sandbox, configure: impl FnOnce(&mut Command)) -> Self {
        Self::start_with(sandbox, &[], "text", configure)
    }

    /// Start sentineld behind `wrapper` (a command that ends by exec'ing its arguments) with
    /// the given `--log-format`.
    pub fn start_with(
        sandbox: &Sandbox,
        wrapper: &[String],
        log_format: &str,
        configure: impl FnOnce(&mut Command),
    ) -> Self {
        let stderr_path = sandbox.path().join("sentineld.stderr");
        let stderr = File::create(&stderr_path).unwrap();
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(SENTINELD);
                command
            }
            None => Command::new(SENTINELD),
        };
        command
            .arg("--config")
            .arg(sandbox.config_path())
            .arg("--log-format")
            .arg(log_format)
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("JOURNAL_STREAM")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        configure(&mut command);
        let child = command.spawn().expect("spawn sentineld");
        let mut daemon = Daemon {
            child,
            stderr_path,
            socket: sandbox.socket(),
        };
        daemon.wait_ready();
        daemon
    }

    /// Ready means the control API answers a request, not just that its socket accepts: the
    /// socket is bound before the components (and the public listener) start.
    fn wait_ready(&mut self) {
        let socket = self.socket.clone();
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("sentineld exited early ({status}):\n{}", self.stderr());
            }
            if control_answers(&socket) {
                return;
            }
            if started.elapsed() > Duration::from_secs(15) {
                panic!(
                    "sentineld did not open {}:\n{}",
                    socket.display(),
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(self.child.id() as i32)
    }

    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(self.pid(), signal).unwrap();
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Run sentinelctl against this daemon.
    pub fn ctl(&self, args: &[&str]) -> Output {
        ctl_as(&self.socket, args, |_| {})
    }

    /// `sentinelctl --json ARGS`, parsed; panics with stderr when it fails.
    pub fn ctl_json(&self, args: &[&str]) -> serde_json::Value {
        let mut full = vec!["--json"];
        full.extend_from_slice(args);
        let output = self.ctl(&full);
        assert!(
            output.status.success(),
            "sentinelctl {args:?}: {}",
            text(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).expect("sentinelctl --json prints JSON")
    }

    /// One probe's entry in `sentinelctl --json status` (null when absent).
    pub fn probe(&self, name: &str) -> serde_json::Value {
        let status = self.ctl_json(&["status"]);
        status["probes"]
            .as_array()
            .and_then(|probes| probes.iter().find(|p| p["name"] == name))
            .cloned()
            .unwrap_or_default()
    }

    /// Wait until probe `name` is in state `want` (up, down, ...); returns the probe.
    pub fn wait_state(&self, name: &str, want: &str) -> serde_json::Value {
        self.wait_state_within(name, want, Duration::from_secs(10))
    }

    /// `wait_state` with its own time limit.
    pub fn wait_state_within(&self, name: &str, want: &str, limit: Duration) -> serde_json::Value {
        wait_for(limit, &format!("{name} {want}"), || {
            let probe = self.probe(name);
            (probe["state"] == want).then_some(probe)
        })
    }

    /// Journaled events of the given kinds (comma-separated), oldest first.
    pub fn events(&self, kinds: &str) -> Vec<serde_json::Value> {
        let out = self.ctl(&["--json", "events", "--kind", kinds, "--limit", "100000"]);
        assert!(
            out.status.success(),
            "sentinelctl events: {}",
            text(&out.stderr)
        );
        json_lines(&out)
    }

    /// SIGTERM and wait; returns the exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        let status = wait_for(Duration::from_secs(15), "sentineld to exit", || {
            self.child.try_wait().unwrap()
        });
        std::mem::forget(self);
        status
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A child process (a test server, a sleeper as a fault's target) killed and reaped when
/// dropped, even when the test fails.
pub struct KilledOnDrop(pub std::process::Child);

impl Drop for KilledOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn ctl_as(socket: &Path, args: &[&str], configure: impl FnOnce(&mut Command)) -> Output {
    let mut command = Command::new(SENTINELCTL);
    command.arg("--socket").arg(socket).args(args);
    configure(&mut command);
    command.output().expect("run sentinelctl")
}

/// Runs `sentinelctl` as `nobody` (uid and gid 65534). The clone may live in a directory only
/// root can enter (a private home, mode 0700), so `nobody` runs a copy of the binary placed in a
/// directory every user can traverse. One directory per checkout (named by a hash of the binary's
/// path), refreshed once per test process by an atomic rename, so runs do not pile up copies.
pub fn ctl_as_nobody(socket: &Path, args: &[&str]) -> Output {
    static REACHABLE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let binary = REACHABLE.get_or_init(|| {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        SENTINELCTL.hash(&mut hasher);
        let dir = std::env::temp_dir().join(format!("sentinel-test-ctl-{:016x}", hasher.finish()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let fresh = dir.join(format!("sentinelctl.{}", std::process::id()));
        std::fs::copy(SENTINELCTL, &fresh).unwrap();
        std::fs::set_permissions(&fresh, std::fs::Permissions::from_mode(0o755)).unwrap();
        let copy = dir.join("sentinelctl");
        std::fs::rename(&fresh, &copy).unwrap();
        copy
    });
    let mut command = Command::new(binary);
    command.arg("--socket").arg(socket).args(args);
    command.uid(65534).gid(65534);
    command.output().expect("run sentinelctl as nobody")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Each line of a command's stdout as JSON (`--json` listings print one object a line).
pub fn json_lines(output: &Output) -> Vec<serde_json::Value> {
    let lines = text(&output.stdout);
    let parse = |l: &str| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
    lines.lines().map(parse).collect()
}

/// A command that must have failed, saying `needle` on stderr (a refusal, not a crash).
pub fn assert_failed(output: &Output, needle: &str) {
    let stderr = text(&output.stderr);
    assert!(
        !output.status.success(),
        "succeeded: {}",
        text(&output.stdout)
    );
    assert!(stderr.contains(needle), "{stderr}");
}

/// True when a Docker engine answers. Without one, a test that needs it fails under CI and
/// skips loudly on a developer machine.
pub fn require_docker(test: &str) -> bool {
    let answers = Command::new("docker")
        .args(["version", "--format", "{{.Server.APIVersion}}"])
        .output()
        .is_ok_and(|o| o.status.success());
    if answers {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{test} needs a Docker engine, and CI must run it: start it with tests/setup-and-run.sh");
    }
    eprintln!("\n!!! SKIPPING {test}: no Docker engine answers (allowed only outside CI) !!!\n");
    false
}

/// Run `docker ARGS`, panicking with its stderr on failure; returns stdout.
pub fn docker(args: &[&str]) -> String {
    let output = Command::new("docker")
        .args(args)
        .output()
        .expect("run docker");
    assert!(
        output.status.success(),
        "docker {args:?}: {}",
        text(&output.stderr)
    );
    text(&output.stdout).trim().to_string()
}

/// A container removed when dropped, even if the test fails.
pub struct TestContainer {
    pub name: String,
}

impl TestContainer {
    /// `docker run -d` the test image (built locally, no registry) with `args` after the image.
    pub fn run(label: &str, args: &[&str]) -> Self {
        Self::run_with(label, &[], args)
    }

    /// `run` with more `docker run` options before the image (`-v`, `--user`).
    pub fn run_with(label: &str, options: &[&str], args: &[&str]) -> Self {
        let status = Command::new("bash")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/images/build-busybox.sh"
            ))
            .status()
            .expect("build test image");
        assert!(status.success(), "building the test image failed");
        let name = format!("sentinel-test-{label}-{}", std::process::id());
        let _ = Command::new("docker").args(["rm", "-f", &name]).output();
        let mut full = vec!["run", "-d", "--name", &name, "--network", "none"];
        full.extend_from_slice(options);
        full.push("sentinel-test/busybox:latest");
        full.extend_from_slice(args);
        docker(&full);
        Self { name }
    }
}

impl Drop for TestContainer {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", &self.name])
            .output();
    }
}

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// A real PostgreSQL in the sandbox, password-protected with SCRAM-SHA-256, on 127.0.0.1.
/// Runs as the `postgres` OS user (initdb refuses root). Stopped when dropped.
pub struct PostgresServer {
    pub data: PathBuf,
    pub port: u16,
    pub user: String,
    pub password_file: PathBuf,
}

impl PostgresServer {
    pub fn start(sandbox: &Sandbox) -> Self {
        let root = sandbox.path().join("pg");
        let data = root.join("data");
        std::fs::create_dir_all(&root).unwrap();
        let password_file = sandbox.path().join("pg-password");
        std::fs::write(&password_file, "correct horse battery\n").unwrap();
        std::fs::set_permissions(&password_file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let status = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&root)
            .status()
            .unwrap();
        assert!(status.success());
        let initdb = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(format!("{PG_BIN}/initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-U", "sentinel", "--auth=scram-sha-256", "-E", "UTF8"])
            .arg(format!("--pwfile={}", password_file.display()))
            .output()
            .unwrap();
        assert!(initdb.status.success(), "initdb: {}", text(&initdb.stderr));
        let server = Self {
            data,
            port: free_port(),
            user: "sentinel".into(),
            password_file,
        };
        server.pg_ctl_start();
        server
    }

    pub fn pg_ctl_start(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c logging_collector=on",
            self.port,
            self.data.parent().unwrap().display()
        );
        let output = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(format!("{PG_BIN}/pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .args(["-o", &options, "-w", "-l"])
            .arg(self.data.parent().unwrap().join("server.log"))
            .arg("start")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "pg_ctl start: {}",
            text(&output.stderr)
        );
    }

    pub fn pg_ctl_stop(&self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(format!("{PG_BIN}/pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "fast", "-w", "stop"])
            .output();
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        self.pg_ctl_stop();
    }
}

/// Whether `GET /v1/status` on the control socket gets an HTTP answer.
fn control_answers(socket: &Path) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::os::unix::net::UnixStream::connect(socket) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = b"GET /v1/status HTTP/1.1\r\nHost: sentineld\r\nConnection: close\r\n\r\n";
    if stream.write_all(request).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 ")
}
