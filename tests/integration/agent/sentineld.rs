//! The whole path with the real daemon: agent -> sentineld's POST /v1/events -> sentinelctl.

use super::{Agent, Setup, LIMIT};
use crate::harness::{wait_for, Daemon};
use crate::tenant_explain::findings;

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

const EXPLAIN: &str = "[tenants]\nenabled = true\nbucket = \"1s\"\nlatency_bucket = \"5s\"\nwindow = \"60s\"\nbaseline_bucket = \"60s\"\nbaseline = \"5m\"\ndimensions = [\"plan\", \"region\"]\n\n[tenants.explain]\nbucket = \"5s\"\nmin_support = 10\nslow = \"1s\"\n";

/// Dimensions through the agent: a JSON log (tenant `shop`, region from the `geo` key, plan
/// from `tier`) and an nginx log (tenant `api`, both from request headers) are tailed and
/// shipped to the real sentineld, and `sentinelctl tenants explain` names what each source
/// planted: in `shop` region=eu-west fails 2 in 5 requests, in `api` plan=free does; every
/// other value fails 1 in 100. Lines whose dimension is unusable (an object, 200 bytes, `-`)
/// still arrive, without that dimension.
#[test]
fn agent_dims_reach_the_real_sentinelds_explain() {
    let setup = Setup::new();
    let sandbox = &setup.sandbox;
    sandbox.write_config(&sandbox.config("", EXPLAIN));
    let daemon = Daemon::start(sandbox, |_| {});
    let json_log = sandbox.path().join("app.log");
    let nginx_log = setup.log();
    let config = sandbox.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            r#"state_dir = "{state}"

[output]
endpoint = "http://127.0.0.1:{port}/v1/events"
flush_interval = "50ms"
batch_max_events = 200

[[file]]
path = "{json}"
format = "json"
start_at = "beginning"
poll_interval = "100ms"
[file.dims]
region = "geo"
plan = "tier"

[[file]]
path = "{nginx}"
format = "nginx"
log_format = "combined"
append = '$request_time "$http_x_tenant_id" $msec "$http_x_region" "$http_x_plan"'
start_at = "beginning"
poll_interval = "100ms"
[file.fields]
timestamp = "$msec"
[file.dims]
region = "$http_x_region"
plan = "$http_x_plan"
"#,
            state = setup.state_dir().display(),
            port = sandbox.port,
            json = json_log.display(),
            nginx = nginx_log.display(),
        ),
    )
    .unwrap();

    const REGIONS: [&str; 4] = ["eu-west", "us-east", "us-west", "ap-south"];
    const PLANS: [&str; 3] = ["free", "pro", "enterprise"];
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let (mut json, mut nginx) = (String::new(), String::new());
    for i in 0..1200usize {
        let (region, plan) = (REGIONS[i % 4], PLANS[(i / 4) % 3]);
        let status = |planted: bool| {
            let fails = if planted {
                (i / 4) % 5 < 2
            } else {
                (i / 4) % 100 == 7
            };
            if fails {
                503
            } else {
                200
            }
        };
        json.push_str(&format!(
            "{{\"tenant_id\":\"shop\",\"endpoint\":\"/pay\",\"status_code\":{},\"latency_ms\":20,\"geo\":\"{region}\",\"tier\":\"{plan}\"}}\n",
            status(region == "eu-west")
        ));
        nginx.push_str(&format!(
            "127.0.0.1 - - [01/Jan/2026:00:00:00 +0000] \"GET /v1/items HTTP/1.1\" {} 12 \"-\" \"curl/8\" 0.042 \"api\" {now:.3} \"{region}\" \"{plan}\"\n",
            status(plan == "free")
        ));
    }
    // unusable dimensions cost the dimension, not the event
    let long = "x".repeat(200);
    for i in 0..12 {
        json.push_str(&format!(
            "{{\"tenant_id\":\"shop\",\"endpoint\":\"/pay\",\"status_code\":200,\"latency_ms\":20,\"geo\":{{\"r\":{i}}},\"tier\":\"{long}\"}}\n"
        ));
        nginx.push_str(&format!(
            "127.0.0.1 - - [01/Jan/2026:00:00:00 +0000] \"GET /v1/items HTTP/1.1\" 200 12 \"-\" \"curl/8\" 0.042 \"api\" {now:.3} \"-\" \"\"\n"
        ));
    }
    std::fs::write(&json_log, json).unwrap();
    std::fs::write(&nginx_log, nginx).unwrap();
    let agent = Agent::start(&setup, &config);

    let top = wait_for(LIMIT, "all 2,424 requests in `tenants top`", || {
        let top = daemon.ctl_json(&["tenants", "top"]);
        (top["total_requests"] == 2424).then_some(top)
    });
    let all = daemon.ctl_json(&["tenants", "explain"]);
    let shop = daemon.ctl_json(&["tenants", "explain", "--tenant", "shop"]);
    let api = daemon.ctl_json(&["tenants", "explain", "--tenant", "api"]);
    agent.stop();

    // 300 eu-west lines in each log; 400 free lines in each log
    let mut named = findings(&all);
    named.sort();
    assert_eq!(
        named,
        [
            ("plan".to_string(), "free".to_string(), 800),
            ("region".to_string(), "eu-west".to_string(), 600),
        ],
        "{all}\n{top}"
    );
    assert_eq!(all["requests"], 2424, "{all}");
    assert_eq!(
        findings(&shop),
        [("region".to_string(), "eu-west".to_string(), 300)],
        "{shop}"
    );
    assert_eq!(
        findings(&api),
        [("plan".to_string(), "free".to_string(), 400)],
        "{api}"
    );
    let stderr = std::fs::read_to_string(sandbox.path().join("agent.stderr")).unwrap();
    assert!(
        stderr.contains("accepted 2424, rejected by sentineld 0"),
        "{stderr}"
    );
}
