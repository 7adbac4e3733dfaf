//! A fleet of two sentinelds owning disjoint tenants: `sentinelctl tenants top --peer` merges
//! their answers (over a control socket or a peer's public listener) into exactly what one
//! daemon fed every event answers.

use crate::harness::{ctl_as, text, Daemon, Sandbox};
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

/// The read token of the daemon whose ranking is open to its peers.
const PEER_TOKEN: &str = "fleet-read-token";

/// A daemon with the detector on; `http` goes into its `[http]` section.
fn start(sandbox: &Sandbox, http: &str) -> Daemon {
    let extra = format!("{http}\n[tenants]\nenabled = true\n");
    sandbox.write_config(&sandbox.config("", &extra));
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
    // b also opens its ranking on its public listener, behind a read token.
    let open = format!("tenants = \"token\"\nread_tokens = [\"{PEER_TOKEN}\"]");
    let (daemon_a, daemon_b, daemon_all) = (start(&a, ""), start(&b, &open), start(&all, ""));
    feed(&a, |n| n % 2 == 0);
    feed(&b, |n| n % 2 == 1);
    feed(&all, |_| true);
    let peer = b.socket().display().to_string();
    let b_url = format!("http://127.0.0.1:{}", b.port);
    let token_file = a.path().join("peer-token");
    std::fs::write(&token_file, format!("{PEER_TOKEN}\n")).unwrap();
    let token_file = token_file.display().to_string();
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
        // The same peer over the network: its public listener, with the read token.
        let mut with_url = args.to_vec();
        with_url.extend(["--peer", &b_url, "--peer-token-file", &token_file]);
        let merged = comparable(daemon_a.ctl_json(&with_url));
        assert_eq!(merged, expected, "by {by}, limit {limit}, over http");
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
    // Over http: the token may come from the environment; without it, the peer's 401 is named;
    // a daemon that keeps its ranking off (the default) answers 404.
    let args = ["--json", "tenants", "top", "--peer", &b_url];
    let output = ctl_as(&a.socket(), &args, |c| {
        c.env("SENTINEL_PEER_TOKEN", PEER_TOKEN);
    });
    assert!(output.status.success(), "{}", text(&output.stderr));
    let output = ctl_as(&a.socket(), &args, |c| {
        c.env_remove("SENTINEL_PEER_TOKEN");
    });
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(&format!("asking {b_url}"))
            && stderr.contains("HTTP 401")
            && stderr.contains("read token"),
        "{stderr}"
    );
    let a_url = format!("http://127.0.0.1:{}/", a.port);
    let output = daemon_b.ctl(&[
        "tenants",
        "top",
        "--peer",
        &a_url,
        "--peer-token-file",
        &token_file,
    ]);
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("HTTP 404") && stderr.contains("no such route"),
        "{stderr}"
    );
    let output = daemon_a.ctl(&["tenants", "top", "--peer", "http://[::1"]);
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains("--peer"),
        "{}",
        text(&output.stderr)
    );
    drop(daemon_b);
}
