//! `sentinelctl tenants mute`: a muted failing tenant still ranks first, marked muted, but fires
//! no alert, across a daemon restart; after `unmute` it alerts.

use std::time::Duration;

use crate::harness::{text, wait_for, Daemon, Sandbox};
use crate::tenants::post_events;

const TENANTS: &str = "[tenants]\nenabled = true\nbucket = \"1s\"\nlatency_bucket = \"5s\"\nwindow = \"10s\"\nbaseline_bucket = \"10s\"\nbaseline = \"5m\"\n\n[[tenants.alert]]\nname = \"tenant-5xx-share\"\nwhen = \"error_share\"\nthreshold = 50\nmin_errors = 5\ncooldown = \"10m\"\n";

/// One round of traffic: acme fails 8 of its 10 requests, three others are healthy.
fn round(port: u16) {
    let mut lines = Vec::new();
    for tenant in ["acme", "globex", "initech", "umbrella"] {
        for i in 0..10 {
            let status = if tenant == "acme" && i < 8 { 503 } else { 200 };
            lines.push(format!(
                r#"{{"tenant_id":"{tenant}","endpoint":"/v1/pay","status_code":{status},"latency_ms":12}}"#
            ));
        }
    }
    let (status, verdict) = post_events(
        port,
        "\r\nContent-Type: application/x-ndjson",
        lines.join("\n").as_bytes(),
    );
    assert_eq!(
        (status, verdict["accepted"].as_u64()),
        (200, Some(40)),
        "{verdict}"
    );
}

/// Several buckets of failing traffic, each of which would have fired the rule.
fn fail_for_a_while(port: u16) {
    for _ in 0..4 {
        round(port);
        std::thread::sleep(Duration::from_millis(800));
    }
}

fn start(sandbox: &Sandbox) -> Daemon {
    Daemon::start(sandbox, |_| {})
}

#[test]
fn a_muted_failing_tenant_ranks_but_alerts_only_after_unmute() {
    let sandbox = Sandbox::new();
    sandbox.write_config(&sandbox.config("", TENANTS));
    let daemon = start(&sandbox);

    let out = daemon.ctl(&[
        "tenants",
        "mute",
        "acme",
        "--for",
        "1h",
        "--reason",
        "load test",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("acme: muted until "),
        "{}",
        text(&out.stdout)
    );
    let muted = wait_for(Duration::from_secs(5), "the mute journaled", || {
        let events = daemon.events("tenant_muted");
        (!events.is_empty()).then_some(events)
    });
    assert_eq!(muted[0]["tenant"], "acme", "{muted:?}");
    assert_eq!(muted[0]["reason"], "load test", "{muted:?}");
    assert_eq!(muted[0]["uid"], 0, "{muted:?}");
    assert_eq!(muted[0]["user"], "root", "{muted:?}");

    fail_for_a_while(sandbox.port);
    let top = daemon.ctl_json(&["tenants", "top"]);
    assert_eq!(top["tenants"][0]["tenant_id"], "acme", "{top}");
    assert_eq!(top["tenants"][0]["muted"]["reason"], "load test", "{top}");
    assert!(top["tenants"][1].get("muted").is_none(), "{top}");
    let view = text(&daemon.ctl(&["tenants", "top", "--limit", "2"]).stdout);
    let first = view.lines().nth(1).unwrap_or_default();
    assert!(
        first.starts_with("1. acme ") && first.contains("[muted until "),
        "{view}"
    );
    let show = text(&daemon.ctl(&["tenants", "show", "acme"]).stdout);
    assert!(show.contains("alerts held until"), "{show}");
    assert!(show.contains("(load test)"), "{show}");
    assert_eq!(daemon.events("tenant_alert_fired").len(), 0);

    // The mute outlives a restart (the journal keeps it).
    assert!(daemon.stop().success());
    let daemon = start(&sandbox);
    let mutes = daemon.ctl_json(&["tenants", "mutes"]);
    assert_eq!(mutes["mutes"][0]["tenant_id"], "acme", "{mutes}");
    assert_eq!(mutes["mutes"][0]["user"], "root", "{mutes}");
    fail_for_a_while(sandbox.port);
    assert_eq!(daemon.events("tenant_alert_fired").len(), 0);

    let out = daemon.ctl(&["tenants", "unmute", "acme"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "acme: unmuted (its alerts fire again)\n");
    let fired = wait_for(Duration::from_secs(15), "the alert after unmute", || {
        round(sandbox.port);
        std::thread::sleep(Duration::from_millis(500));
        let fired = daemon.events("tenant_alert_fired");
        (!fired.is_empty()).then_some(fired)
    });
    assert_eq!(fired[0]["tenant_id"], "acme", "{fired:?}");
    let mutes = daemon.ctl_json(&["tenants", "mutes"]);
    assert_eq!(mutes["mutes"], serde_json::json!([]), "{mutes}");
    assert!(daemon.stop().success());
}
