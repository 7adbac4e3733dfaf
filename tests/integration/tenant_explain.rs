//! `sentinelctl tenants explain` against the real daemon: events with dimensions over HTTP
//! (NDJSON `dims`, and OTLP span and resource attributes), and the control socket naming the
//! planted causes (region=eu-west for errors, version=2.3.1 for latency) and nothing else.

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, Span};
use prost::Message as _;

use crate::harness::{text, Daemon, Sandbox};
use crate::otlp::{attr, export, now_ns, post_traces, PROTOBUF};
use crate::tenants::post_events;

const TENANTS: &str = "[tenants]\nenabled = true\nbucket = \"1s\"\nlatency_bucket = \"5s\"\nwindow = \"60s\"\nbaseline_bucket = \"60s\"\nbaseline = \"5m\"\ndimensions = [\"plan\", \"region\", \"version\"]\n\n[tenants.explain]\nbucket = \"5s\"\nmin_support = 10\nslow = \"1s\"\n";

const REGIONS: [&str; 4] = ["eu-west", "us-east", "us-west", "ap-south"];
const PLANS: [&str; 3] = ["free", "pro", "enterprise"];

/// 2,400 NDJSON events: eu-west fails 2 in 5 requests, other regions 1 in 100; plan is noise.
fn post_failing_region(port: u16) {
    let mut lines = Vec::new();
    for i in 0..2400usize {
        let region = REGIONS[i % 4];
        let plan = PLANS[(i / 4) % 3];
        let fails = match region {
            "eu-west" => (i / 4) % 5 < 2,
            _ => (i / 4) % 100 == 7,
        };
        let status = if fails { 503 } else { 200 };
        lines.push(format!(
            r#"{{"tenant_id":"t-{}","endpoint":"/pay","status_code":{status},"latency_ms":20,"dims":{{"region":"{region}","plan":"{plan}","unconfigured":"x"}}}}"#,
            i % 7
        ));
    }
    let (status, verdict) = post_events(
        port,
        "\r\nContent-Type: application/x-ndjson",
        lines.join("\n").as_bytes(),
    );
    assert_eq!(
        (status, verdict["accepted"].as_u64()),
        (200, Some(2400)),
        "{verdict}"
    );
}

/// 600 OTLP server spans: version (a resource attribute) 2.3.1 takes 2 s on 3 of 5 spans, the
/// others 1 in 50; region is a span attribute spread evenly.
fn post_slow_version(port: u16) {
    let end = now_ns();
    let mut batches = Vec::new();
    for (v, version) in ["2.3.0", "2.3.1", "2.2.9"].into_iter().enumerate() {
        let spans: Vec<Span> = (0..200usize)
            .map(|i| {
                let slow = match version {
                    "2.3.1" => i % 5 < 3,
                    _ => i % 50 == 3,
                };
                let latency_ns: u64 = if slow { 2_000_000_000 } else { 30_000_000 };
                Span {
                    trace_id: vec![9; 16],
                    span_id: ((v * 1000 + i) as u64 + 1).to_be_bytes().to_vec(),
                    name: "GET /pay".into(),
                    kind: SpanKind::Server as i32,
                    start_time_unix_nano: end - latency_ns,
                    end_time_unix_nano: end,
                    attributes: vec![
                        attr("http.route", Value::StringValue("/pay".into())),
                        attr("http.response.status_code", Value::IntValue(200)),
                        attr("tenant.id", Value::StringValue(format!("t-{}", i % 7))),
                        attr("region", Value::StringValue(REGIONS[i % 4].into())),
                    ],
                    ..Default::default()
                }
            })
            .collect();
        let mut request = export(spans);
        request.resource_spans[0].resource = Some(Resource {
            attributes: vec![attr("version", Value::StringValue(version.into()))],
            ..Default::default()
        });
        batches.push(request);
    }
    for request in batches {
        let (status, head, body) = post_traces(port, PROTOBUF, &request.encode_to_vec());
        assert_eq!(status, 200, "{head} {body:?}");
    }
}

/// (dimension, value, requests) of every finding, in the answer's order.
pub fn findings(explanation: &serde_json::Value) -> Vec<(String, String, u64)> {
    explanation["findings"]
        .as_array()
        .unwrap_or_else(|| panic!("{explanation}"))
        .iter()
        .map(|f| {
            let field = |k: &str| f[k].as_str().unwrap_or_default().to_string();
            (
                field("dimension"),
                field("value"),
                f["requests"].as_u64().unwrap_or_default(),
            )
        })
        .collect()
}

/// (dimension, value) of every finding, in the answer's order.
fn named(explanation: &serde_json::Value) -> Vec<(String, String)> {
    findings(explanation)
        .into_iter()
        .map(|(dimension, value, _)| (dimension, value))
        .collect()
}

#[test]
fn explain_names_the_planted_causes_over_http_and_the_control_socket() {
    let sandbox = Sandbox::new();
    sandbox.write_config(&sandbox.config("", TENANTS));
    let daemon = Daemon::start(&sandbox, |_| {});
    post_failing_region(sandbox.port);
    post_slow_version(sandbox.port);

    let errors = daemon.ctl_json(&["tenants", "explain"]);
    assert_eq!(
        named(&errors),
        [("region".to_string(), "eu-west".to_string())],
        "{errors}"
    );
    assert_eq!(errors["requests"], 3000, "{errors}");
    assert_eq!(errors["signal"], "errors", "{errors}");
    let latency = daemon.ctl_json(&["tenants", "explain", "--latency", "--window", "30s"]);
    assert_eq!(
        named(&latency),
        [("version".to_string(), "2.3.1".to_string())],
        "{latency}"
    );
    assert_eq!(latency["window_ms"], 30_000, "{latency}");

    let table = text(&daemon.ctl(&["tenants", "explain"]).stdout);
    let mut lines = table.lines();
    assert!(
        lines
            .next()
            .unwrap_or_default()
            .starts_with("What errors have in common (all tenants, "),
        "{table}"
    );
    assert!(
        lines.next().unwrap_or_default().contains("dimension"),
        "{table}"
    );
    let row: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(row.get(..2), Some(&["region", "eu-west"][..]), "{table}");

    // A tenant scope: t-0 is among the tenants with most bad requests (7 tenants, 64 scopes).
    let tenant = daemon.ctl_json(&["tenants", "explain", "--tenant", "t-0"]);
    assert_eq!(tenant["tenant_id"], "t-0", "{tenant}");
    let out = daemon.ctl(&["tenants", "explain", "--tenant", "nobody"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("tenant \"nobody\" has no explain scope"),
        "{}",
        text(&out.stderr)
    );
    assert!(daemon.stop().success());
}
