//! The original end-to-end drill of log-first recovery, all parts real: PostgreSQL in a Docker
//! container is stopped, three SQL probes fail, its logs and the container's state land in S3
//! (moto_server), a signed webhook says so, the container restarts and recovery is announced.

use std::time::Duration;

use serde_json::Value;

use crate::archive::{aws_env, s3_section, unpack, verified_manifest, wait_uploaded, Moto};
use crate::harness::{free_port, require_docker, require_root, text, wait_for, Daemon, Sandbox};
use crate::notify::{Receiver, SECRET};
use crate::pg_container::{PgContainer, DATA_INSIDE};

#[test]
fn stopped_postgres_is_archived_to_s3_alerted_restarted_and_announced_recovered() {
    let test = "stopped_postgres_is_archived_to_s3_alerted_restarted_and_announced_recovered";
    if !require_root(test) || !require_docker(test) {
        return;
    }
    let sandbox = Sandbox::new();
    let pg = PgContainer::start(&sandbox, "drill");
    let moto = Moto::start(free_port());
    moto.create_bucket("evidence");
    let hook_port = free_port();
    let receiver = Receiver::start(hook_port);
    let config = format!(
        r#"[[probe]]
name = "postgres"
kind = "postgres"
address = "127.0.0.1:{port}"
user = "sentinel"
database = "postgres"
interval = "1s"
timeout = "1s"
fail_after = 3
heal = {{ stable_for = "0s", action = "docker_restart", container = "{name}", stop_timeout = "5s", verify_within = "60s", backoff = "0s", archive = ["postgres-logs", "container-logs"] }}

[[archive.source]]
name = "postgres-logs"
kind = "files"
container = "{name}"
path = "{DATA_INSIDE}"
include = ["log/*.log", "postgresql.conf", "pg_hba.conf"]

[[archive.source]]
name = "container-logs"
kind = "container"
tail = 200

{s3}
[notify]
max_retry_delay = "1s"

[[notify.channel]]
name = "oncall"
kind = "webhook"
url = "http://127.0.0.1:{hook_port}/hook"
secret = "{SECRET}"
"#,
        port = pg.port,
        name = pg.name,
        s3 = s3_section(moto.port),
    );
    sandbox.write_config(&sandbox.config("", &config));
    let daemon = Daemon::start(&sandbox, aws_env);
    daemon.wait_state_within("postgres", "up", Duration::from_secs(30));
    let started_before = pg.started_at();

    pg.stop_postgres();
    let uploaded = wait_uploaded(&daemon, None, Duration::from_secs(60));

    // the bundle in S3: every file matches the manifest, and the evidence is all there
    let location = uploaded["location"].as_str().unwrap();
    let bundle = uploaded["name"].as_str().unwrap();
    let key = format!("incidents/{bundle}/bundle.tar.gz");
    assert_eq!(location, format!("s3://evidence/{key}"));
    let object = moto.object("evidence", &key);
    let manifest = verified_manifest(&object);
    assert_eq!(manifest["probe"], "postgres");
    assert_eq!(manifest["target"], pg.name.as_str());
    assert_eq!(manifest["failure_reason"], "refused");
    assert_eq!(manifest["problems"], serde_json::json!([]), "{manifest:#}");
    let files = manifest["files"].as_array().unwrap();
    let origin_of = |path: &str| -> Option<String> {
        files
            .iter()
            .find(|f| f["path"] == path)
            .map(|f| f["origin"].as_str().unwrap().to_string())
    };
    for (path, host_file) in [
        ("postgres-logs/postgresql.conf", "postgresql.conf"),
        ("postgres-logs/pg_hba.conf", "pg_hba.conf"),
    ] {
        // read through the bind mount: the host path came from the container's mounts
        let want = pg.data.join(host_file).display().to_string();
        assert_eq!(
            origin_of(path).as_deref(),
            Some(want.as_str()),
            "{manifest:#}"
        );
    }
    assert!(
        origin_of("container-logs/inspect.json").is_some(),
        "{manifest:#}"
    );
    assert!(
        origin_of("container-logs/container.log").is_some(),
        "{manifest:#}"
    );
    let entries = unpack(&object);
    let entry = |suffix: &str| -> Vec<u8> {
        entries
            .iter()
            .find(|(p, _)| p.ends_with(suffix))
            .unwrap_or_else(|| panic!("no {suffix} in the bundle"))
            .1
            .clone()
    };
    let server_log: String = entries
        .iter()
        .filter(|(p, _)| p.contains("/postgres-logs/log/postgresql-") && p.ends_with(".log"))
        .map(|(_, bytes)| text(bytes))
        .collect();
    assert!(
        server_log.contains("received fast shutdown request"),
        "the server's own log file tells why it went away: {server_log}"
    );
    assert!(text(&entry("/postgres-logs/postgresql.conf")).contains("logging_collector = on"));
    assert!(
        text(&entry("/container-logs/container.log")).contains("redirecting log output"),
        "{}",
        text(&entry("/container-logs/container.log"))
    );
    let inspect: Value = serde_json::from_slice(&entry("/container-logs/inspect.json")).unwrap();
    assert_eq!(inspect["State"]["Running"], false, "{inspect:#}");
    assert_eq!(inspect["State"]["OOMKilled"], false, "{inspect:#}");
    assert!(inspect["RestartCount"].is_u64(), "{inspect:#}");
    let side: Value = serde_json::from_slice(
        &moto.object("evidence", &format!("incidents/{bundle}/manifest.json")),
    )
    .unwrap();
    assert_eq!(side, manifest);

    // restarted, and back up
    let started_after = wait_for(Duration::from_secs(60), "the container restarted", || {
        let now = pg.started_at();
        (now != started_before && pg.inspect("{{.State.Running}}") == "true").then_some(now)
    });
    assert_ne!(started_after, started_before);
    pg.wait_ready(Duration::from_secs(30));

    // told people: the alert names the S3 location, then recovery after the SQL probe passes
    let hooks = wait_for(Duration::from_secs(60), "firing and resolved", || {
        let hooks = receiver.at("/hook");
        (hooks.len() >= 2).then_some(hooks)
    });
    assert!(hooks.iter().all(|h| h.signed), "{hooks:?}");
    let firing = hooks[0].body["text"].as_str().unwrap();
    let prefix = "🚨 postgres: 3/3 SQL probes failed (connection refused) — logs archived to ";
    let rest = firing
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("{firing}"));
    assert_eq!(
        rest,
        format!(
            "s3://evidence/incidents/{bundle}/; restarting container {}",
            pg.name
        )
    );
    assert_eq!(hooks[0].body["status"], "firing");
    let resolved = hooks[1].body["text"].as_str().unwrap();
    assert_eq!(hooks[1].body["status"], "resolved");
    let seconds: f64 = resolved
        .strip_prefix("✅ postgres recovered in ")
        .and_then(|r| r.strip_suffix(" s"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{resolved}"));
    assert!(seconds > 0.0 && seconds < 60.0, "{resolved}");
    eprintln!("drill messages:\n  {firing}\n  {resolved}");
    assert_eq!(daemon.probe("postgres")["state"], "up");
    // the outbox view agrees: both delivered on the first try
    let outbox = daemon.ctl_json(&["outbox"])["messages"].clone();
    let delivered: Vec<(&str, u64)> = outbox
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["state"] == "delivered")
        .map(|m| {
            (
                m["status"].as_str().unwrap(),
                m["attempts"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(delivered, [("resolved", 1), ("firing", 1)], "{outbox:#}");
    assert!(daemon.stop().success());
}
