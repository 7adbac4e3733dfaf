//! A fleet of two sentinelds owning disjoint tenants: `sentinelctl tenants top --peer` merges
//! their answers into exactly what one daemon fed every event answers.

use crate::harness::{text, Daemon, Sandbox};
use crate::tenants::post_events;

/// 40 tenants, 30 events each: tenant `t{n}` fails `n % 9` times and is `n % 11` ms slower.
fn events(keep: impl Fn(usize) -> bool) -> Vec<u8> {
    let mut lines = Vec::new();
    for n in (0..40).filter(|&n| keep(n)) {
        for k in 0..30 {
            let status = if k < n % 9 { 503 } else { 200 };
            let latency = 10.0 + (n % 11) as f64 * 7.0 + k as f64;
            lines.push(format!(
                r#"{{"tenant_id":"t{n}","endpoint":"/v1/orders/{k}","status_code":{status},"latency_ms":{latency}}}"#
            ));
        }
    }
    lines.join("\n").into_bytes()
}

fn start(sandbox: &Sandbox) -> Daemon {
    sandbox.write_config(&sandbox.config("", "[tenants]\nenabled = true\n"));
    Daemon::start(sandbox, |_| {})
}

fn feed(sandbox: &Sandbox, keep: impl Fn(usize) -> bool) {
    let body = events(keep);
    let (status, verdict) = post_events(
        sandbox.port,
        "\r\nContent-Type: application/x-ndjson",
        &body,
    );
    assert_eq!(status, 200, "{verdict}");
    assert_eq!(verdict["rejected_count"], 0, "{verdict}");
}

/// The ranking without what differs between daemons by nature: the time of the answer and
/// since when each daemon tracks a tenant.
fn comparable(mut top: serde_json::Value) -> serde_json::Value {
    let object = top.as_object_mut().unwrap();
    object.remove("now_ms");
    object.remove("stats");
    for tenant in object["tenants"].as_array_mut().unwrap() {
        tenant.as_object_mut().unwrap().remove("tracked_since_ms");
    }
    top
}

#[test]
fn two_daemons_merged_equal_one_fed_everything() {
    let (a, b, all) = (Sandbox::new(), Sandbox::new(), Sandbox::new());
    let (daemon_a, daemon_b, daemon_all) = (start(&a), start(&b), start(&all));
    feed(&a, |n| n % 2 == 0);
    feed(&b, |n| n % 2 == 1);
    feed(&all, |_| true);
    let peer = b.socket().display().to_string();
    for (by, limit) in [
        ("errors", "5"),
        ("error_rate", "3"),
        ("latency", "10"),
        ("errors", "100"),
    ] {
        let args = ["tenants", "top", "--by", by, "--limit", limit];
        let expected = comparable(daemon_all.ctl_json(&args));
        let mut with_peer = args.to_vec();
        with_peer.extend(["--peer", &peer]);
        let merged = comparable(daemon_a.ctl_json(&with_peer));
        assert_eq!(merged, expected, "by {by}, limit {limit}");
        assert!(!expected["tenants"].as_array().unwrap().is_empty());
        // Peers only: the same daemons named the other way round.
        let a_peer = a.socket().display().to_string();
        let mut peers_only = args.to_vec();
        peers_only.extend(["--peer", &peer, "--peer", &a_peer, "--no-local"]);
        let merged = comparable(daemon_all.ctl_json(&peers_only));
        assert_eq!(merged, expected, "by {by}, limit {limit}, peers only");
    }
    // A daemon asked twice owns its tenants twice: refused, not double-counted.
    let a_peer = a.socket().display().to_string();
    let output = daemon_a.ctl(&["tenants", "top", "--peer", &a_peer]);
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains("is owned by two peers"),
        "{}",
        text(&output.stderr)
    );
    // A peer that does not answer is named.
    let gone = a.path().join("run/nobody.sock").display().to_string();
    let output = daemon_a.ctl(&["tenants", "top", "--peer", &gone]);
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains(&gone),
        "{}",
        text(&output.stderr)
    );
    drop(daemon_b);
}
