//! Issue 18 against a real PostgreSQL 15 (local binaries, SCRAM): a lock pile-up, a runaway
//! query and an idle transaction are remedied by their step with no restart, each step with its
//! snapshot spooled first; a stopped server is restarted, evidence first, with no remedy step.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{free_port, require_root, text, wait_for, Daemon, PostgresServer, Sandbox};
use crate::notify::{Receiver, SECRET};

/// psql sessions of one test, killed when it ends (whatever it asserted).
struct Sessions(Vec<Child>);

impl Drop for Sessions {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn psql_command(server: &PostgresServer) -> Command {
    let mut command = Command::new("psql");
    command
        .args(["-h", "127.0.0.1", "-p", &server.port.to_string()])
        .args(["-U", "sentinel", "-d", "postgres", "-XAtq"])
        .env(
            "PGPASSWORD",
            std::fs::read_to_string(&server.password_file)
                .unwrap()
                .trim(),
        );
    command
}

/// One statement, waited for; its output.
fn psql(server: &PostgresServer, sql: &str) -> String {
    let output = psql_command(server).args(["-c", sql]).output().unwrap();
    assert!(
        output.status.success(),
        "psql {sql}: {}",
        text(&output.stderr)
    );
    text(&output.stdout).trim().to_string()
}

/// An interactive psql session named `application`: it prints its backend pid, then runs
/// `sql` and keeps its connection (stdin stays open).
fn session(
    server: &PostgresServer,
    application: &str,
    sql: &str,
) -> (Child, ChildStdin, i32, BufReader<std::process::ChildStdout>) {
    let mut child = psql_command(server)
        .env("PGAPPNAME", application)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    writeln!(stdin, "SELECT pg_backend_pid();").unwrap();
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let pid = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("pid: {line:?}"));
    writeln!(stdin, "{sql}").unwrap();
    stdin.flush().unwrap();
    (child, stdin, pid, stdout)
}

/// Until `sql` (a count) says `want`.
fn wait_count(server: &PostgresServer, sql: &str, want: &str) {
    wait_for(Duration::from_secs(20), sql, || {
        (psql(server, sql) == want).then_some(())
    });
}

/// The probe and daemon of every test here: a SQL probe reading `remedy_t` every 2 s (a login
/// with SCRAM in a debug build under load can near 1 s, which would read as a dead server), the
/// given remedy, a heal that only leaves a mark (a restart here would be a bug), evidence in a
/// local directory, a signed webhook.
struct Rig {
    server: PostgresServer,
    receiver: Receiver,
    marker: PathBuf,
    bundles: PathBuf,
    daemon: Daemon,
    // last: its directory holds the server's data, stopped by `server`'s drop first
    _sandbox: Sandbox,
}

impl Rig {
    fn start(remedy: &str) -> Self {
        Self::start_healing(remedy, |marker, _| {
            format!(
                r#"action = "exec", command = ["/bin/sh", "-c", "echo restart >> {}"]"#,
                marker.display()
            )
        })
    }

    /// With the heal `heal(marker, server)` (the table's inside, before its common settings).
    fn start_healing(remedy: &str, heal: impl Fn(&Path, &PostgresServer) -> String) -> Self {
        Self::build(remedy, "", heal)
    }

    /// `extra`: more settings of the probe.
    fn build(remedy: &str, extra: &str, heal: impl Fn(&Path, &PostgresServer) -> String) -> Self {
        let sandbox = Sandbox::new();
        let server = PostgresServer::start(&sandbox);
        psql(
            &server,
            "CREATE TABLE remedy_t (n int); INSERT INTO remedy_t VALUES (1)",
        );
        let hook_port = free_port();
        let receiver = Receiver::start(hook_port);
        let marker = sandbox.path().join("restarted");
        let bundles = sandbox.path().join("bundles");
        let config = format!(
            r#"[archive.local]
dir = "{bundles}"

[[probe]]
name = "db"
kind = "postgres"
address = "127.0.0.1:{port}"
user = "sentinel"
password_file = "{password}"
database = "postgres"
query = "SELECT count(*) FROM remedy_t"
interval = "2s"
timeout = "2s"
fail_after = 2
remedy = [
{remedy}
]
{extra}
heal = {{ stable_for = "0s", {heal}, verify_within = "20s", backoff = "0s", archive = ["server-log"] }}

[[archive.source]]
name = "server-log"
kind = "files"
path = "{data}"
include = ["log/*.log"]

[notify]
max_retry_delay = "1s"

[[notify.channel]]
name = "oncall"
kind = "webhook"
url = "http://127.0.0.1:{hook_port}/hook"
secret = "{SECRET}"
"#,
            bundles = bundles.display(),
            port = server.port,
            password = server.password_file.display(),
            heal = heal(&marker, &server),
            data = server.data.display(),
        );
        sandbox.write_config(&sandbox.config("", &config));
        let daemon = Daemon::start(&sandbox, |_| {});
        daemon.wait_state_within("db", "up", Duration::from_secs(20));
        Self {
            server,
            receiver,
            marker,
            bundles,
            daemon,
            _sandbox: sandbox,
        }
    }

    /// Down (the query, not the login, failed), then Up again; the remedy steps journaled.
    fn down_and_recovered(&self) -> Vec<Value> {
        let down = self
            .daemon
            .wait_state_within("db", "down", Duration::from_secs(20));
        assert!(
            down["last_failure"].as_str().unwrap().starts_with("query:"),
            "{down}"
        );
        self.daemon
            .wait_state_within("db", "up", Duration::from_secs(30));
        let closed = wait_for(Duration::from_secs(10), "incident_closed", || {
            self.daemon.events("incident_closed").pop()
        });
        assert_eq!(closed["healed"], true, "the step healed it: {closed}");
        self.daemon.events("remedy_step")
    }

    /// No restart: no heal_started, the heal's mark absent.
    fn assert_no_restart(&self) {
        assert_eq!(self.daemon.events("heal_started"), Vec::<Value>::new());
        assert!(!self.marker.exists(), "the heal ran");
    }

    /// The bundle a step named, unpacked: path -> bytes.
    fn bundle(&self, step: &Value) -> Vec<(String, Vec<u8>)> {
        let name = step["bundle"].as_str().unwrap_or_else(|| panic!("{step}"));
        let path = self.bundles.join(name).join("bundle.tar.gz");
        let bytes = wait_for(Duration::from_secs(20), "the bundle in the sink", || {
            std::fs::read(&path).ok()
        });
        crate::archive::unpack(&bytes)
    }

    /// The webhook texts, once `count` arrived.
    fn hooks(&self, count: usize) -> Vec<String> {
        wait_for(Duration::from_secs(20), "webhooks", || {
            let hooks = self.receiver.at("/hook");
            (hooks.len() >= count).then_some(hooks)
        })
        .into_iter()
        .map(|h| {
            assert!(h.signed);
            h.body["text"].as_str().unwrap().to_string()
        })
        .collect()
    }
}

fn entry<'a>(entries: &'a [(String, Vec<u8>)], suffix: &str) -> &'a [u8] {
    &entries
        .iter()
        .find(|(p, _)| p.ends_with(suffix))
        .unwrap_or_else(|| {
            let paths: Vec<&String> = entries.iter().map(|(p, _)| p).collect();
            panic!("no {suffix} in {paths:?}")
        })
        .1
}

/// One session holds an ACCESS EXCLUSIVE lock in an open transaction and goes idle; 20
/// sessions and the probe queue behind it. `terminate_lock_blockers` ends the holder alone,
/// the 20 finish, the probe recovers, nothing restarts.
#[test]
fn a_lock_holder_with_20_waiters_is_terminated_and_nothing_restarts() {
    let test = "a_lock_holder_with_20_waiters_is_terminated_and_nothing_restarts";
    if !require_root(test) {
        return;
    }
    let rig = Rig::start(
        r#"  { action = "cancel_queries", older_than = "10m" },
  { action = "terminate_idle_in_transaction", older_than = "10m" },
  { action = "terminate_lock_blockers", waiting_longer_than = "1s", verify_within = "10s" },"#,
    );
    let server = &rig.server;
    let mut sessions = Sessions(Vec::new());
    let (holder, _holder_in, holder_pid, _out) = session(
        server,
        "batch-job",
        "BEGIN; LOCK TABLE remedy_t IN ACCESS EXCLUSIVE MODE;",
    );
    sessions.0.push(holder);
    wait_count(
        server,
        &format!("SELECT count(*) FROM pg_stat_activity WHERE pid = {holder_pid} AND state = 'idle in transaction'"),
        "1",
    );
    let mut waiters = Vec::new();
    for n in 0..20 {
        let child = psql_command(server)
            .env("PGAPPNAME", format!("waiter-{n}"))
            .args(["-c", "SELECT count(*) FROM remedy_t"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        waiters.push(child);
    }
    wait_count(
        server,
        "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'waiter-%' AND wait_event_type = 'Lock'",
        "20",
    );
    let started = Instant::now();
    let steps = rig.down_and_recovered();
    eprintln!("down and recovered in {:?}", started.elapsed());

    // the first two steps found nothing to do; the third ended the holder, and only it
    assert_eq!(steps.len(), 3, "{steps:#?}");
    for (step, action) in steps[..2]
        .iter()
        .zip(["cancel_queries", "terminate_idle_in_transaction"])
    {
        assert_eq!(step["action"], action);
        assert_eq!(step["sessions"], serde_json::json!([]), "{step}");
        assert_eq!(step["bundle"], Value::Null);
    }
    let step = &steps[2];
    eprintln!("step: {step}");
    assert_eq!(step["action"], "terminate_lock_blockers");
    assert_eq!(step["step"], 3);
    assert_eq!(step["error"], Value::Null);
    let acted = step["sessions"].as_array().unwrap();
    assert_eq!(acted.len(), 1, "{step:#}");
    assert_eq!(acted[0]["pid"], holder_pid);
    assert_eq!(acted[0]["application"], "batch-job");
    assert_eq!(acted[0]["role"], "sentinel");
    assert_eq!(acted[0]["state"], "idle in transaction");
    assert_eq!(acted[0]["signalled"], true);
    assert!(acted[0]["for_ms"].as_u64().unwrap() >= 1000, "{step}");
    assert!(acted[0]["query"]
        .as_str()
        .unwrap()
        .contains("LOCK TABLE remedy_t"));

    // the 20 waiters got their answer
    for mut waiter in waiters {
        let status = wait_for(Duration::from_secs(10), "a waiter to finish", || {
            waiter.try_wait().unwrap()
        });
        assert!(status.success(), "a waiter failed: {status}");
    }
    rig.assert_no_restart();

    // the snapshot taken before the step: the holder's lock, granted, and its 20 waiters
    let entries = rig.bundle(step);
    let locks: Vec<Value> =
        serde_json::from_slice(entry(&entries, "/remedy-step-3/pg_locks.json")).unwrap();
    assert!(
        locks.iter().any(|l| l["pid"] == holder_pid
            && l["mode"] == "AccessExclusiveLock"
            && l["granted"] == true),
        "{locks:#?}"
    );
    let activity: Vec<Value> =
        serde_json::from_slice(entry(&entries, "/remedy-step-3/pg_stat_activity.json")).unwrap();
    let blocked = activity
        .iter()
        .filter(|a| {
            a["application_name"]
                .as_str()
                .is_some_and(|n| n.starts_with("waiter-"))
                && a["blocking_pids"]
                    .as_array()
                    .is_some_and(|b| b.contains(&serde_json::json!(holder_pid)))
        })
        .count();
    assert_eq!(blocked, 20, "{activity:#?}");
    let plan: Value = serde_json::from_slice(entry(&entries, "/remedy-step-3/step.json")).unwrap();
    assert_eq!(plan["targets"][0]["pid"], holder_pid);

    // told people: what was done, then how it ended
    let hooks = rig.hooks(2);
    eprintln!("remedy messages:\n  {}\n  {}", hooks[0], hooks[1]);
    let firing = &hooks[0];
    assert!(
        firing.starts_with("🚨 db: 2/2 SQL probes failed (query failed) — snapshot archived to "),
        "{firing}"
    );
    let did = format!("terminated 1 lock blocker (pid {holder_pid}, idle in transaction ");
    assert!(firing.contains(&did), "{firing}");
    let resolved = &hooks[1];
    assert!(resolved.starts_with(&format!("✅ db: {did}")), "{resolved}");
    assert!(resolved.ends_with("; no restart"), "{resolved}");
    assert!(resolved.contains("; recovered in "), "{resolved}");
    let journal = rig.daemon.ctl(&[
        "events",
        "--kind",
        "probe_transition,archive_spooled,remedy_step,incident_closed",
    ]);
    eprintln!("journal:\n{}", text(&journal.stdout));
    assert!(rig.daemon.stop().success());
}

/// A runaway statement holding a lock in its transaction: `cancel_queries` cancels it (the
/// session lives on), the probe recovers, nothing restarts.
#[test]
fn a_runaway_pg_sleep_is_cancelled() {
    if !require_root("a_runaway_pg_sleep_is_cancelled") {
        return;
    }
    let rig = Rig::start(
        r#"  { action = "cancel_queries", older_than = "2s", exclude_applications = ["pg_dump"], verify_within = "10s" },"#,
    );
    let server = &rig.server;
    let mut sessions = Sessions(Vec::new());
    // an excluded application running just as long is left alone
    let (backup, _backup_in, backup_pid, _backup_out) =
        session(server, "pg_dump", "SELECT pg_sleep(600);");
    sessions.0.push(backup);
    let (runaway, _runaway_in, runaway_pid, _out) = session(
        server,
        "report",
        "BEGIN; LOCK TABLE remedy_t IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(600);",
    );
    sessions.0.push(runaway);
    let steps = rig.down_and_recovered();
    assert_eq!(steps.len(), 1, "{steps:#?}");
    let acted = steps[0]["sessions"].as_array().unwrap();
    assert_eq!(acted.len(), 1, "{steps:#?}");
    assert_eq!(acted[0]["pid"], runaway_pid);
    assert_eq!(acted[0]["state"], "active");
    assert_eq!(acted[0]["signalled"], true);
    assert!(acted[0]["query"]
        .as_str()
        .unwrap()
        .starts_with("SELECT pg_sleep(600)"));
    assert!(acted[0]["for_ms"].as_u64().unwrap() >= 2000);
    // cancelled, not terminated: the session is still there, its transaction aborted
    assert_eq!(
        psql(
            server,
            &format!("SELECT state FROM pg_stat_activity WHERE pid = {runaway_pid}")
        ),
        "idle in transaction (aborted)"
    );
    assert_eq!(
        psql(
            server,
            &format!("SELECT state FROM pg_stat_activity WHERE pid = {backup_pid}")
        ),
        "active",
        "the excluded application was cancelled"
    );
    rig.assert_no_restart();
    let entries = rig.bundle(&steps[0]);
    let plan: Value = serde_json::from_slice(entry(&entries, "/remedy-step-1/step.json")).unwrap();
    assert_eq!(plan["action"], "cancel_queries");
    let hooks = rig.hooks(2);
    assert!(
        hooks[1].starts_with(&format!(
            "✅ db: cancelled 1 query (pid {runaway_pid}, active "
        )),
        "{hooks:?}"
    );
    assert!(rig.daemon.stop().success());
}

/// A session that took a lock and went idle in its transaction: `terminate_idle_in_transaction`
/// ends it, the probe recovers, nothing restarts.
#[test]
fn an_idle_in_transaction_session_is_terminated() {
    if !require_root("an_idle_in_transaction_session_is_terminated") {
        return;
    }
    let rig = Rig::start(
        r#"  { action = "terminate_idle_in_transaction", older_than = "2s", verify_within = "10s" },"#,
    );
    let server = &rig.server;
    let mut sessions = Sessions(Vec::new());
    let (idle, _idle_in, idle_pid, _out) = session(
        server,
        "forgetful-app",
        "BEGIN; LOCK TABLE remedy_t IN ACCESS EXCLUSIVE MODE;",
    );
    sessions.0.push(idle);
    let steps = rig.down_and_recovered();
    assert_eq!(steps.len(), 1, "{steps:#?}");
    let acted = steps[0]["sessions"].as_array().unwrap();
    assert_eq!(acted.len(), 1, "{steps:#?}");
    assert_eq!(acted[0]["pid"], idle_pid);
    assert_eq!(acted[0]["state"], "idle in transaction");
    assert_eq!(acted[0]["application"], "forgetful-app");
    assert_eq!(acted[0]["signalled"], true);
    assert!(acted[0]["for_ms"].as_u64().unwrap() >= 2000);
    assert_eq!(
        psql(
            server,
            &format!("SELECT count(*) FROM pg_stat_activity WHERE pid = {idle_pid}")
        ),
        "0",
        "terminated"
    );
    rig.assert_no_restart();
    let hooks = rig.hooks(2);
    assert!(
        hooks[1].starts_with(&format!(
            "✅ db: terminated 1 idle-in-transaction session (pid {idle_pid}, idle in transaction "
        )),
        "{hooks:?}"
    );
    assert!(rig.daemon.stop().success());
}

/// The postmaster of `server`, from its pid file.
fn postmaster_pid(server: &PostgresServer) -> i32 {
    let pid_file = std::fs::read_to_string(server.data.join("postmaster.pid")).unwrap();
    pid_file.lines().next().unwrap().trim().parse().unwrap()
}

/// A hung postmaster (SIGSTOP: the kernel still accepts TCP, nobody logs in) is dead, not
/// stuck: the probe's fresh connection per check times out at login, no remedy step runs, and
/// the heal (here: SIGCONT) runs after the evidence is spooled.
#[test]
fn a_hung_postmaster_is_dead_and_restarted_without_remedy_steps() {
    if !require_root("a_hung_postmaster_is_dead_and_restarted_without_remedy_steps") {
        return;
    }
    let rig = Rig::start_healing(
        r#"  { action = "terminate_lock_blockers", waiting_longer_than = "1s" },"#,
        |_, server| {
            format!(
                r#"action = "exec", command = ["/bin/kill", "-CONT", "{}"]"#,
                postmaster_pid(server)
            )
        },
    );
    let postmaster = nix::unistd::Pid::from_raw(postmaster_pid(&rig.server));
    // resumed whatever happens below, or the server's drop would hang on a stopped postmaster
    struct Resume(nix::unistd::Pid);
    impl Drop for Resume {
        fn drop(&mut self) {
            let _ = nix::sys::signal::kill(self.0, nix::sys::signal::Signal::SIGCONT);
        }
    }
    let _resume = Resume(postmaster);
    nix::sys::signal::kill(postmaster, nix::sys::signal::Signal::SIGSTOP).unwrap();
    let down = rig
        .daemon
        .wait_state_within("db", "down", Duration::from_secs(20));
    assert_eq!(
        down["last_failure"], "timeout: no connection or login within 2s",
        "{down}"
    );
    rig.daemon
        .wait_state_within("db", "up", Duration::from_secs(30));
    assert_eq!(rig.daemon.events("remedy_step"), Vec::<Value>::new());
    assert_evidence_before_restart(&rig.daemon);
    assert!(rig.daemon.stop().success());
}

/// A stopped server: refused, dead, restarted (`pg_ctl start`) with its log spooled first, as
/// before issue 18; no remedy step.
#[test]
fn a_stopped_server_is_restarted_with_evidence_first_and_no_remedy_step() {
    if !require_root("a_stopped_server_is_restarted_with_evidence_first_and_no_remedy_step") {
        return;
    }
    let rig = Rig::start_healing(
        r#"  { action = "cancel_queries", older_than = "1s" },"#,
        |_, server| {
            let options = format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1 -c logging_collector=on",
                server.port,
                server.data.parent().unwrap().display()
            );
            format!(
                r#"action = "exec", command = ["runuser", "-u", "postgres", "--", "/usr/lib/postgresql/15/bin/pg_ctl", "-D", "{}", "-o", "{options}", "-w", "-l", "{}", "start"]"#,
                server.data.display(),
                server.data.parent().unwrap().join("server.log").display()
            )
        },
    );
    rig.server.pg_ctl_stop();
    let down = rig
        .daemon
        .wait_state_within("db", "down", Duration::from_secs(20));
    assert!(
        down["last_failure"]
            .as_str()
            .unwrap()
            .starts_with("refused:"),
        "{down}"
    );
    rig.daemon
        .wait_state_within("db", "up", Duration::from_secs(30));
    assert_eq!(rig.daemon.events("remedy_step"), Vec::<Value>::new());
    let spooled = assert_evidence_before_restart(&rig.daemon);
    let name = spooled["bundle"].as_str().unwrap();
    let bytes = wait_for(Duration::from_secs(20), "the bundle in the sink", || {
        std::fs::read(rig.bundles.join(name).join("bundle.tar.gz")).ok()
    });
    let log: String = crate::archive::unpack(&bytes)
        .iter()
        .filter(|(p, _)| p.contains("/server-log/log/"))
        .map(|(_, b)| text(b))
        .collect();
    assert!(log.contains("received fast shutdown request"), "{log}");
    assert!(rig.daemon.stop().success());
}

/// The heal started after its bundle was spooled; returns the `archive_spooled` event.
fn assert_evidence_before_restart(daemon: &Daemon) -> Value {
    let events = wait_for(Duration::from_secs(20), "archive and heal", || {
        let events = daemon.events("archive_spooled,heal_started");
        (events.len() >= 2).then_some(events)
    });
    assert_eq!(events[0]["kind"], "archive_spooled", "{events:#?}");
    assert_eq!(events[1]["kind"], "heal_started", "{events:#?}");
    assert!(events[0]["id"].as_i64() < events[1]["id"].as_i64());
    events[0].clone()
}

fn marker_heal(marker: &Path, _: &PostgresServer) -> String {
    format!(
        r#"action = "exec", command = ["/bin/sh", "-c", "echo restart >> {}"]"#,
        marker.display()
    )
}

/// A lock holder no step matches: the server answers but stays stuck after every step.
fn hold_a_lock(server: &PostgresServer, sessions: &mut Sessions) -> i32 {
    let (holder, stdin, pid, _out) = session(
        server,
        "batch-job",
        "BEGIN; LOCK TABLE remedy_t IN ACCESS EXCLUSIVE MODE;",
    );
    sessions.0.push(holder);
    std::mem::forget(stdin); // the session lives until killed
    pid
}

/// Still stuck after every step, `restart_when_overloaded` off (the default): no restart, and
/// people are told why; the incident closes when the server gets going again.
#[test]
fn a_stuck_server_is_not_restarted_after_the_steps_by_default() {
    if !require_root("a_stuck_server_is_not_restarted_after_the_steps_by_default") {
        return;
    }
    let rig = Rig::build(
        r#"  { action = "cancel_queries", older_than = "10m" },"#,
        "",
        marker_heal,
    );
    let mut sessions = Sessions(Vec::new());
    let holder = hold_a_lock(&rig.server, &mut sessions);
    let exhausted = wait_for(Duration::from_secs(30), "remedy_exhausted", || {
        rig.daemon.events("remedy_exhausted").pop()
    });
    assert_eq!(exhausted["restart"], false, "{exhausted}");
    assert_eq!(exhausted["steps"], 1);
    let hooks = rig.hooks(1);
    assert_eq!(
        hooks[0],
        "🛑 db: still down after 1 remedy step; it answers: not restarting (restart_when_overloaded is off)"
    );
    // a few more failed checks change nothing
    std::thread::sleep(Duration::from_secs(3));
    rig.assert_no_restart();
    assert_eq!(rig.daemon.probe("db")["state"], "down");
    psql(
        &rig.server,
        &format!("SELECT pg_terminate_backend({holder})"),
    );
    rig.daemon
        .wait_state_within("db", "up", Duration::from_secs(20));
    let closed = wait_for(Duration::from_secs(10), "incident_closed", || {
        rig.daemon.events("incident_closed").pop()
    });
    assert_eq!(closed["healed"], false, "{closed}");
    rig.assert_no_restart();
    assert!(rig.daemon.stop().success());
}

/// Still stuck after every step with `restart_when_overloaded = true`: the heal runs.
#[test]
fn a_stuck_server_is_restarted_after_the_steps_when_allowed() {
    if !require_root("a_stuck_server_is_restarted_after_the_steps_when_allowed") {
        return;
    }
    let rig = Rig::build(
        r#"  { action = "cancel_queries", older_than = "10m" },"#,
        "restart_when_overloaded = true",
        marker_heal,
    );
    let mut sessions = Sessions(Vec::new());
    hold_a_lock(&rig.server, &mut sessions);
    let exhausted = wait_for(Duration::from_secs(30), "remedy_exhausted", || {
        rig.daemon.events("remedy_exhausted").pop()
    });
    assert_eq!(exhausted["restart"], true, "{exhausted}");
    wait_for(Duration::from_secs(20), "the heal's mark", || {
        rig.marker.exists().then_some(())
    });
    // the mark does not unstick it: a slow run may see the second attempt too
    let started = rig.daemon.events("heal_started");
    assert!(!started.is_empty(), "{started:#?}");
    assert_eq!(started[0]["cause"], "down");
    assert!(
        started[0]["id"].as_i64() > exhausted["id"].as_i64(),
        "the restart comes after the steps"
    );
    assert!(rig.daemon.stop().success());
}
