//! The whole path with the real daemon: agent -> sentineld's POST /v1/events -> sentinelctl.

use super::{Agent, Setup, LIMIT};
use crate::harness::{wait_for, Daemon};

/// The whole path: nginx writes, the agent tails and ships, the real sentineld ranks, and
/// `sentinelctl tenants top` names the tenant.
#[test]
fn nginx_log_through_the_agent_into_the_real_sentineld() {
    let setup = Setup::new();
    let sandbox = &setup.sandbox;
    sandbox.write_config(&sandbox.config(
        "",
        "[tenants]\nenabled = true\n\n[tenants.ingest]\ntokens = [\"s3cret\"]\n",
    ));
    let daemon = Daemon::start(sandbox, |_| {});
    let file = format!(
        r#"[[file]]
path = "{log}"
format = "nginx"
log_format = "combined"
append = '$request_time "$http_x_tenant_id" $msec'
start_at = "beginning"
poll_interval = "100ms"
[file.fields]
timestamp = "$msec"

[output]
endpoint = "http://127.0.0.1:{port}/v1/events"
token = "s3cret"
flush_interval = "50ms"
"#,
        log = setup.log().display(),
        port = sandbox.port,
    );
    let config = sandbox.path().join("agent.toml");
    std::fs::write(
        &config,
        format!("state_dir = \"{}\"\n{file}", setup.state_dir().display()),
    )
    .unwrap();
    let agent = Agent::start(&setup, &config);

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let mut lines = String::new();
    for i in 0..40 {
        let (tenant, status) = if i % 2 == 0 {
            ("acme", 503)
        } else {
            ("beta", 200)
        };
        lines.push_str(&format!(
            "127.0.0.1 - - [01/Jan/2026:00:00:00 +0000] \"POST /v1/process/{i} HTTP/1.1\" {status} 12 \"-\" \"curl/8\" 0.042 \"{tenant}\" {now:.3}\n"
        ));
    }
    lines.push_str("127.0.0.1 - - [01/Jan/2026:00:00:00 +0000] \"GET /healthz HTTP/1.1\" 200 2 \"-\" \"probe\" 0.000 \"-\" 1.0\n");
    lines.push_str("not an nginx line\n");
    std::fs::write(setup.log(), lines).unwrap();
    setup.wait_all_lines_safe();

    let top = wait_for(LIMIT, "all 40 requests in `tenants top`", || {
        let top = daemon.ctl_json(&["tenants", "top"]);
        (top["total_requests"] == 40).then_some(top)
    });
    let show = daemon.ctl_json(&["tenants", "show", "acme"]);
    agent.stop();
    let acme = &top["tenants"][0];
    assert_eq!(acme["tenant_id"], "acme", "{top}");
    assert_eq!(
        (acme["requests"].as_u64(), acme["errors"].as_u64()),
        (Some(20), Some(20)),
        "{top}"
    );
    // nginx's $request path, normalized by sentineld
    assert_eq!(acme["top_endpoint"]["endpoint"], "/v1/process/:id", "{top}");
    // $request_time 0.042 s arrives as 42 ms (the sketch is within ~1%)
    let p95 = show["tenant"]["p95_ms"].as_f64().unwrap();
    assert!((41.0..43.0).contains(&p95), "{show}");
    let stderr = std::fs::read_to_string(sandbox.path().join("agent.stderr")).unwrap();
    assert!(
        stderr.contains("accepted 40, rejected by sentineld 0"),
        "{stderr}"
    );
    assert!(
        stderr.contains("unparsable lines 1, lines without tenant 1"),
        "{stderr}"
    );
}
