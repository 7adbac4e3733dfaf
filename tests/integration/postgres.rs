//! The postgres probe against a real PostgreSQL 15 with SCRAM-SHA-256: right and wrong
//! passwords, query expectations, role and connection headroom, and a stop/start cycle.

use std::time::Duration;

use crate::harness::{require_root, wait_for, Daemon, PostgresServer, Sandbox};

#[test]
fn scram_login_queries_and_a_restart_cycle() {
    if !require_root("scram_login_queries_and_a_restart_cycle") {
        return;
    }
    let sandbox = Sandbox::new();
    let server = PostgresServer::start(&sandbox);
    let wrong_password = sandbox.path().join("wrong-password");
    std::fs::write(&wrong_password, "nope\n").unwrap();
    // 1 s: SCRAM's key derivation alone takes a few hundred ms in an unoptimized test build.
    let common = format!(
        "kind = \"postgres\"\naddress = \"127.0.0.1:{}\"\nuser = \"{}\"\ndatabase = \"postgres\"\ninterval = \"1s\"\ntimeout = \"1s\"\nfail_after = 1\n",
        server.port, server.user
    );
    let probes = format!(
        r#"[[probe]]
name = "db"
{common}password_file = "{password}"
expect_result = {{ rows = 1, equals = "1" }}
expect_role = "primary"
max_connections_used = 90

[[probe]]
name = "db-activity"
{common}password_file = "{password}"
query = "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
expect_result = {{ min = 1, max = 50 }}

[[probe]]
name = "db-wrong-password"
{common}password_file = "{wrong}"

[[probe]]
name = "db-wrong-role"
{common}password_file = "{password}"
expect_role = "replica"
"#,
        password = server.password_file.display(),
        wrong = wrong_password.display(),
    );
    sandbox.write_config(&sandbox.config("", &probes));
    let daemon = Daemon::start(&sandbox, |_| {});

    wait_for(Duration::from_secs(15), "db and db-activity up", || {
        (daemon.probe("db")["state"] == "up" && daemon.probe("db-activity")["state"] == "up")
            .then_some(())
    });
    let wrong = daemon.wait_state_within("db-wrong-password", "down", Duration::from_secs(15));
    let failure = wrong["last_failure"].as_str().unwrap();
    assert!(
        failure.starts_with("auth: password authentication failed for user \"sentinel\" (28P01)"),
        "{failure}"
    );
    let role = daemon.wait_state_within("db-wrong-role", "down", Duration::from_secs(15));
    assert_eq!(
        role["last_failure"],
        "assertion: server is a primary, expected a replica"
    );

    server.pg_ctl_stop();
    let down = daemon.wait_state_within("db", "down", Duration::from_secs(15));
    assert!(
        down["last_failure"]
            .as_str()
            .unwrap()
            .starts_with("refused:"),
        "{down}"
    );

    server.pg_ctl_start();
    let up = daemon.wait_state_within("db", "up", Duration::from_secs(15));
    assert_eq!(up["recoveries_total"], 1);
    let log = daemon.stderr();
    assert!(
        log.contains("service=db status=down status_code=na event=unreachable reason=refused"),
        "{log}"
    );
    assert!(daemon.stop().success());
}
