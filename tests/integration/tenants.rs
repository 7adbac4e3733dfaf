//! The tenant detector end to end: events over real HTTP into the real daemon, precise answers to
//! bad bodies, the bounds (413, 429, 401), rankings and alerts read back through `sentinelctl`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::harness::{assert_failed, text, wait_for, Daemon, Sandbox};

/// One HTTP/1.1 request on a fresh connection: (status, body).
fn request(port: u16, head: &str, body: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let head = format!(
        "{head}\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    // The server may answer (413) and close before reading a large body: that is fine.
    let _ = stream.write_all(body);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer).to_string();
    let (status_line, rest) = answer.split_once("\r\n").unwrap_or((&answer, ""));
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer: {answer:?}"));
    let body = rest
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

pub(crate) fn post_events(port: u16, extra_headers: &str, body: &[u8]) -> (u16, serde_json::Value) {
    let head = format!("POST /v1/events HTTP/1.1{extra_headers}");
    let (status, body) = request(port, &head, body);
    let json = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{status} {body:?}: {e}"));
    (status, json)
}

fn event(tenant: &str, status: u16) -> String {
    format!(
        r#"{{"tenant_id":"{tenant}","endpoint":"/v1/orders/{}","status_code":{status},"latency_ms":12.5}}"#,
        status
    )
}

fn start(sandbox: &Sandbox, tenants: &str) -> Daemon {
    sandbox.write_config(&sandbox.config("", tenants));
    Daemon::start(sandbox, |_| {})
}

#[test]
fn bad_events_are_answered_precisely_and_good_ones_kept() {
    let sandbox = Sandbox::new();
    let daemon = start(&sandbox, "[tenants]\nenabled = true\n");
    let long_id = "x".repeat(129);
    let mut body = Vec::new();
    body.extend_from_slice(b"[");
    let elements: Vec<Vec<u8>> = vec![
        event("acme", 503).into_bytes(),
        br#"{"tenant_id":"acme","endpoint":"/","status_code":200,"latency_ms":NaN}"#.to_vec(),
        event(&long_id, 200).into_bytes(),
        b"{\"tenant_id\":\"\xff\",\"endpoint\":\"/\",\"status_code\":200,\"latency_ms\":1}".to_vec(),
        event("acme", 700).into_bytes(),
        br#"{"tenant_id":"acme","endpoint":"/","status_code":200,"latency_ms":1,"timestamp":"2001-01-01T00:00:00Z"}"#.to_vec(),
        event("beta", 200).into_bytes(),
    ];
    body.extend_from_slice(&elements.join(&b", "[..]));
    body.extend_from_slice(b"]");
    let (status, verdict) = post_events(sandbox.port, "\r\nContent-Type: application/json", &body);
    assert_eq!(status, 200, "{verdict}");
    assert_eq!(verdict["accepted"], 2, "{verdict}");
    let rejected: Vec<(u64, String)> = verdict["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["index"].as_u64().unwrap(),
                r["error"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected = [
        (1, "invalid JSON"),
        (2, "tenant_id must be 1-128 bytes (got 129)"),
        (3, "invalid unicode"),
        (4, "status_code 700 is outside 100-599"),
        (5, "old; events older than 10m are not accepted"),
    ];
    assert_eq!(rejected.len(), expected.len(), "{verdict}");
    for ((index, error), (want_index, fragment)) in rejected.iter().zip(expected) {
        assert_eq!(*index, want_index, "{verdict}");
        assert!(
            error.contains(fragment),
            "index {index}: {error:?} lacks {fragment:?}"
        );
    }

    // NDJSON: a broken line costs only itself.
    let ndjson = format!(
        "{}\n{{\"tenant_id\": \"acme\"\n{}\n",
        event("acme", 503),
        event("acme", 200)
    );
    let (status, verdict) = post_events(
        sandbox.port,
        "\r\nContent-Type: application/x-ndjson",
        ndjson.as_bytes(),
    );
    assert_eq!(
        (status, verdict["accepted"].as_u64()),
        (200, Some(2)),
        "{verdict}"
    );
    assert_eq!(verdict["rejected"][0]["index"], 1, "{verdict}");

    // Not JSON at all, an unclosed array: 400 with the reason, nothing recorded.
    let (status, verdict) = post_events(sandbox.port, "", b"[{\"tenant_id\":\"a\"}");
    assert_eq!(status, 400, "{verdict}");
    assert!(
        verdict["error"].as_str().unwrap().contains("not closed"),
        "{verdict}"
    );

    // Everything accepted is counted exactly: acme 2 ok-ish requests + 2 NDJSON, beta 1.
    let show = daemon.ctl_json(&["tenants", "show", "acme"]);
    assert_eq!(show["tenant"]["requests"], 3, "{show}");
    assert_eq!(show["tenant"]["errors"], 2, "{show}");
    assert_eq!(
        show["tenant"]["top_endpoint"]["endpoint"], "/v1/orders/:id",
        "{show}"
    );
    assert_failed(
        &daemon.ctl(&["tenants", "show", "nobody"]),
        "tenant \"nobody\" is not tracked",
    );
    assert!(daemon.stop().success());
}

#[test]
fn bodies_are_bounded_authenticated_and_gzip_is_understood() {
    let sandbox = Sandbox::new();
    let tenants = "[tenants]\nenabled = true\n[tenants.ingest]\ntokens = [\"s3cret\"]\nmax_body = \"64KiB\"\nmax_concurrent_requests = 1\n";
    let daemon = start(&sandbox, tenants);
    let auth = "\r\nAuthorization: Bearer s3cret";
    let one = event("acme", 200);

    let (status, verdict) = post_events(sandbox.port, "", one.as_bytes());
    assert_eq!(status, 401, "{verdict}");
    let (status, _) = post_events(
        sandbox.port,
        "\r\nAuthorization: Bearer wrong",
        one.as_bytes(),
    );
    assert_eq!(status, 401);
    let (status, verdict) = post_events(sandbox.port, auth, one.as_bytes());
    assert_eq!(
        (status, verdict["accepted"].as_u64()),
        (200, Some(1)),
        "{verdict}"
    );

    // Too large, declared or not.
    let huge = vec![b' '; 65 * 1024];
    let (status, verdict) = post_events(sandbox.port, auth, &huge);
    assert_eq!(status, 413, "{verdict}");

    // gzip: a real body decodes; a bomb that inflates past the limit is refused after decoding.
    let gzip = |bytes: &[u8]| {
        use flate2::{write::GzEncoder, Compression};
        let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    };
    let batch: Vec<String> = (0..100).map(|_| event("zipped", 200)).collect();
    let gz_headers =
        format!("{auth}\r\nContent-Encoding: gzip\r\nContent-Type: application/x-ndjson");
    let (status, verdict) = post_events(
        sandbox.port,
        &gz_headers,
        &gzip(batch.join("\n").as_bytes()),
    );
    assert_eq!(
        (status, verdict["accepted"].as_u64()),
        (200, Some(100)),
        "{verdict}"
    );
    let bomb = gzip(&vec![b' '; 10 << 20]);
    assert!(bomb.len() < 64 * 1024);
    let (status, verdict) = post_events(sandbox.port, &gz_headers, &bomb);
    assert_eq!(status, 413, "{verdict}");
    let (status, _) = post_events(
        sandbox.port,
        &format!("{auth}\r\nContent-Encoding: br"),
        one.as_bytes(),
    );
    assert_eq!(status, 415);

    // One request holds the only slot (its body never finishes): the next one gets 429.
    let mut slow = TcpStream::connect(("127.0.0.1", sandbox.port)).unwrap();
    slow.write_all(b"POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret\r\nContent-Length: 1000\r\n\r\n{")
        .unwrap();
    wait_for(
        Duration::from_secs(10),
        "the slow request to hold the slot",
        || {
            let metrics = request(sandbox.port, "GET /metrics HTTP/1.1", b"").1;
            metrics
                .contains("sentinel_ingest_requests_in_flight 1")
                .then_some(())
        },
    );
    let (status, verdict) = post_events(sandbox.port, auth, one.as_bytes());
    assert_eq!(status, 429, "{verdict}");
    drop(slow);
    wait_for(Duration::from_secs(10), "the slot is free again", || {
        (post_events(sandbox.port, auth, one.as_bytes()).0 == 200).then_some(())
    });

    // The daemon kept serving through all of it, and counted it.
    let (status, metrics) = request(sandbox.port, "GET /metrics HTTP/1.1", b"");
    assert_eq!(status, 200);
    for series in [
        "sentinel_ingest_requests_total{outcome=\"unauthorized\"} 2",
        "sentinel_ingest_requests_total{outcome=\"too_large\"} 2",
        "sentinel_ingest_events_total{verdict=\"accepted\"} 10",
    ] {
        let name = series.rsplit_once(' ').unwrap().0;
        assert!(metrics.contains(name), "{name} missing:\n{metrics}");
        if !series.contains("accepted") {
            assert!(metrics.contains(series), "want {series}:\n{metrics}");
        }
    }
    assert!(
        metrics.contains("sentinel_ingest_requests_total{outcome=\"busy\"} "),
        "{metrics}"
    );
    assert!(daemon.stop().success());
}

#[test]
fn disabled_detector_answers_404_with_the_setting_to_change() {
    let sandbox = Sandbox::new();
    let daemon = start(&sandbox, "");
    let (status, verdict) = post_events(sandbox.port, "", event("a", 200).as_bytes());
    assert_eq!(status, 404);
    assert!(
        verdict["error"]
            .as_str()
            .unwrap()
            .contains("[tenants] enabled = true"),
        "{verdict}"
    );
    assert_failed(&daemon.ctl(&["tenants", "top"]), "disabled");
    assert!(daemon.stop().success());
}

/// The on-call scenario: 500 tenants with a little noise, then one jumps to 60% 5xx. It must be
/// first in `tenants top` right away and alerted exactly once while the incident goes on.
#[test]
fn one_tenant_of_500_failing_is_ranked_first_and_alerted_once() {
    let sandbox = Sandbox::new();
    let tenants = "[tenants]\nenabled = true\nbucket = \"1s\"\nlatency_bucket = \"5s\"\nwindow = \"10s\"\nbaseline_bucket = \"10s\"\nbaseline = \"5m\"\n\n[[tenants.alert]]\nname = \"tenant-5xx-share\"\nwhen = \"error_share\"\nthreshold = 50\nmin_errors = 10\ncooldown = \"10m\"\n";
    let daemon = start(&sandbox, tenants);
    // Every tenant sends 10 requests per round; 2 of the 5,000 fail anyway (noise). In the
    // incident, tenant_137 fails 6 of its 10: a 60% error rate.
    let round = |incident: bool| {
        let mut lines = Vec::new();
        for t in 0..500 {
            let tenant = format!("tenant_{t:03}");
            for i in 0..10 {
                let fails = if incident && t == 137 {
                    i < 6
                } else {
                    (t * 10 + i) % 2500 == 0
                };
                let status = if fails { 503 } else { 200 };
                lines.push(format!(
                    r#"{{"tenant_id":"{tenant}","endpoint":"/v1/process","status_code":{status},"latency_ms":{}}}"#,
                    10 + i
                ));
            }
        }
        let (status, verdict) = post_events(
            sandbox.port,
            "\r\nContent-Type: application/x-ndjson",
            lines.join("\n").as_bytes(),
        );
        assert_eq!(
            (status, verdict["accepted"].as_u64()),
            (200, Some(5000)),
            "{verdict}"
        );
    };
    round(false);
    let calm = daemon.ctl_json(&["tenants", "top"]);
    assert_ne!(calm["tenants"][0]["tenant_id"], "tenant_137", "{calm}");
    assert_eq!(daemon.events("tenant_alert_fired").len(), 0);

    // Incident: the ranking shows it at once (queries read the live window, no bucket wait).
    for _ in 0..3 {
        round(true);
    }
    let view = daemon.ctl(&["tenants", "top", "--limit", "3"]);
    let view = text(&view.stdout);
    let first = view.lines().nth(1).unwrap_or_default();
    assert!(first.starts_with("1. tenant_137   "), "{view}");
    assert!(
        first.contains("% of all 5xx  (endpoint: /v1/process)"),
        "{view}"
    );
    // Alerted within a bucket or two, then kept firing without a second alert.
    let fired = wait_for(Duration::from_secs(10), "the alert", || {
        let fired = daemon.events("tenant_alert_fired");
        (!fired.is_empty()).then_some(fired)
    });
    assert_eq!(fired[0]["tenant_id"], "tenant_137");
    let message = fired[0]["message"].as_str().unwrap();
    assert!(
        message.starts_with("🚨 Sentinel: tenant tenant_137 responsible for ")
            && message.ends_with("% of 5xx in the last 10 seconds (endpoint /v1/process)"),
        "{message}"
    );
    for _ in 0..3 {
        round(true);
        std::thread::sleep(Duration::from_millis(700));
    }
    let fired = daemon.events("tenant_alert_fired");
    assert_eq!(fired.len(), 1, "fired more than once: {fired:?}");

    // The incident ends: the share falls as healthy traffic fills the window, and it resolves.
    let resolved = wait_for(Duration::from_secs(60), "the alert to resolve", || {
        round(false);
        std::thread::sleep(Duration::from_millis(500));
        let resolved = daemon.events("tenant_alert_resolved");
        (!resolved.is_empty()).then_some(resolved)
    });
    assert_eq!(resolved[0]["tenant_id"], "tenant_137");
    assert_eq!(daemon.events("tenant_alert_fired").len(), 1);
    assert!(daemon.stop().success());
}

/// Writes `tenants` into the config and returns what the reload it triggers reports.
fn reload_with(sandbox: &Sandbox, daemon: &Daemon, tenants: &str, kind: &str) -> serde_json::Value {
    let before = daemon.events(kind).len();
    sandbox.write_config(&sandbox.config("", tenants));
    wait_for(Duration::from_secs(10), kind, || {
        daemon.events(kind).get(before).cloned()
    })
}

#[test]
fn reload_changes_rules_live_and_says_when_windows_reset() {
    let sandbox = Sandbox::new();
    let base = "[tenants]\nenabled = true\n";
    let daemon = start(&sandbox, base);
    let (status, _) = post_events(sandbox.port, "", event("kept", 503).as_bytes());
    assert_eq!(status, 200);

    let with_rule =
        format!("{base}[[tenants.alert]]\nname = \"p95\"\nwhen = \"p95\"\nthreshold = 500\n");
    let applied = reload_with(&sandbox, &daemon, &with_rule, "config_applied");
    assert_eq!(
        applied["changes"],
        serde_json::json!(["tenants changed"]),
        "{applied}"
    );
    let show = daemon.ctl_json(&["tenants", "show", "kept"]);
    assert_eq!(
        show["tenant"]["requests"], 1,
        "rules changed, windows kept: {show}"
    );

    let new_window = with_rule.replace("enabled = true\n", "enabled = true\nwindow = \"5m\"\n");
    let applied = reload_with(&sandbox, &daemon, &new_window, "config_applied");
    assert_eq!(
        applied["changes"],
        serde_json::json!([
            "tenants changed",
            "tenant windows reset (new window settings)"
        ]),
        "{applied}"
    );
    assert!(!daemon.ctl(&["tenants", "show", "kept"]).status.success());

    // A bad [tenants] edit is refused with file:line:col and the detector keeps running.
    let bad = "[tenants]\nenabled = true\nbucket = \"7s\"\n";
    let rejected = reload_with(&sandbox, &daemon, bad, "config_rejected");
    let error = rejected["error"].as_str().unwrap();
    assert!(error.contains("sentineld.toml:"), "{error}");
    assert!(
        error.contains("must be a whole multiple of bucket (7s)"),
        "{error}"
    );
    let (status, _) = post_events(sandbox.port, "", event("after", 200).as_bytes());
    assert_eq!(status, 200);
    assert_eq!(
        daemon.ctl_json(&["tenants", "show", "after"])["window_ms"],
        300_000
    );
    assert!(daemon.stop().success());
}

/// Tenant ids are free text: each one, however awkward in a URL, is found again by
/// `sentinelctl tenants show` (the route table percent-encodes it as one path segment).
#[test]
fn awkward_tenant_ids_round_trip_through_sentinelctl() {
    let sandbox = Sandbox::new();
    let daemon = start(&sandbox, "[tenants]\nenabled = true\n");
    let ids = ["acme/eu", "top", "a b+c", "50%?#&=x", "..", "%2F", "東京"];
    let body: Vec<serde_json::Value> = ids
        .iter()
        .map(|id| {
            serde_json::json!({
                "tenant_id": id,
                "endpoint": "/v1/orders",
                "status_code": 503,
                "latency_ms": 3.0,
            })
        })
        .collect();
    let body = serde_json::to_vec(&body).unwrap();
    let (status, verdict) = post_events(sandbox.port, "", &body);
    assert_eq!(status, 200, "{verdict}");
    assert_eq!(verdict["accepted"], ids.len(), "{verdict}");
    for id in ids {
        let show = daemon.ctl_json(&["tenants", "show", id, "--window", "5m"]);
        assert_eq!(show["tenant"]["tenant_id"], id, "{show}");
        assert_eq!(show["tenant"]["requests"], 1, "{id}: {show}");
    }
    // And the ranking is still the ranking.
    let top = daemon.ctl_json(&["tenants", "top"]);
    assert!(top["tenants"].is_array(), "{top}");
    assert!(daemon.stop().success());
}
