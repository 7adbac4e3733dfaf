//! PostgreSQL inside a Docker container, no registry: `tests/images/build-postgres.sh` imports
//! the host's PostgreSQL 15 binaries as an image, and the data directory (made by the host's
//! initdb) is bind-mounted from the host, so its log files are plain files there.
//! Reusable by any drill: `PgContainer::start(&sandbox, "label")`, then stop/inspect/drop.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::harness::{docker, free_port, text, wait_for, Sandbox};

const IMAGE: &str = "sentinel-test/postgres:15";
const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
/// Where the data directory is mounted inside the container.
pub const DATA_INSIDE: &str = "/var/lib/postgresql/data";

/// A running PostgreSQL container on 127.0.0.1:`port` (host network), superuser `sentinel`
/// with trust auth on loopback. Removed when dropped.
pub struct PgContainer {
    pub name: String,
    pub port: u16,
    /// The data directory on the host (the bind mount's source).
    pub data: PathBuf,
}

impl PgContainer {
    pub fn start(sandbox: &Sandbox, label: &str) -> Self {
        let status = Command::new("bash")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/images/build-postgres.sh"
            ))
            .status()
            .expect("build the postgres test image");
        assert!(status.success(), "building the postgres test image failed");
        let root = sandbox.path().join(format!("pg-{label}"));
        std::fs::create_dir_all(&root).unwrap();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
        let chown = Command::new("chown")
            .args(["postgres:postgres"])
            .arg(&root)
            .status()
            .unwrap();
        assert!(chown.success());
        let data = root.join("data");
        let initdb = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(format!("{PG_BIN}/initdb"))
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "sentinel",
                "--auth=trust",
                "--no-locale",
                "-E",
                "UTF8",
            ])
            .output()
            .unwrap();
        assert!(initdb.status.success(), "initdb: {}", text(&initdb.stderr));
        let port = free_port();
        // In the file, not on the command line: the archived postgresql.conf shows them.
        let settings = format!(
            "\n# sentinel test container\nlisten_addresses = '127.0.0.1'\nport = {port}\n\
             unix_socket_directories = '/tmp'\nlogging_collector = on\njit = off\n"
        );
        let conf = data.join("postgresql.conf");
        let mut text_conf = std::fs::read_to_string(&conf).unwrap();
        text_conf.push_str(&settings);
        std::fs::write(&conf, text_conf).unwrap();

        let name = format!("sentinel-test-pg-{label}-{}", std::process::id());
        let _ = Command::new("docker").args(["rm", "-f", &name]).output();
        let mount = format!("{}:{DATA_INSIDE}", data.display());
        docker(&[
            "run",
            "-d",
            "--name",
            &name,
            "--network",
            "host",
            "-v",
            &mount,
            IMAGE,
            &format!("{PG_BIN}/postgres"),
            "-D",
            DATA_INSIDE,
        ]);
        let server = Self { name, port, data };
        server.wait_ready(Duration::from_secs(30));
        server
    }

    /// Wait until `SELECT 1` answers.
    pub fn wait_ready(&self, limit: Duration) {
        wait_for(limit, &format!("postgres in {}", self.name), || {
            self.psql("SELECT 1").filter(|out| out == "1").map(|_| ())
        });
    }

    /// One query through psql on the host; None when it fails.
    pub fn psql(&self, sql: &str) -> Option<String> {
        let output = Command::new("psql")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", "sentinel", "-d", "postgres", "-Atc", sql])
            .output()
            .ok()?;
        output
            .status
            .success()
            .then(|| text(&output.stdout).trim().to_string())
    }

    /// `pg_ctl stop -m fast` inside the container. PostgreSQL is the container's main process,
    /// so the container exits with it and `docker exec` itself is killed (137): not checked.
    pub fn stop_postgres(&self) {
        let _ = Command::new("docker")
            .args(["exec", &self.name, &format!("{PG_BIN}/pg_ctl")])
            .args(["-D", DATA_INSIDE, "-m", "fast", "stop"])
            .output();
    }

    /// `docker inspect -f FORMAT` of the container.
    pub fn inspect(&self, format: &str) -> String {
        docker(&["inspect", "-f", format, &self.name])
    }

    /// When the container's current run started (changes on every restart).
    pub fn started_at(&self) -> String {
        self.inspect("{{.State.StartedAt}}")
    }
}

impl Drop for PgContainer {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", &self.name])
            .output();
    }
}
