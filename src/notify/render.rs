//! A notification shaped for each channel — Slack blocks, Discord embeds, a signed generic
//! JSON webhook, Alertmanager API v2 alerts, and through `channel` email, PagerDuty, Telegram,
//! Teams and ntfy — and the routing rules that pick the channels.

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use super::compose::{Notification, Status};
use super::config::{ChannelKind, RouteSection, Severity};
use crate::event::Timestamp;

/// The header a webhook receiver checks: `sha256=` and the hex HMAC-SHA256 of the body.
pub const SIGNATURE_HEADER: &str = "X-Sentinel-Signature";

pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// Channels that get `notification`: those of every matching route, or all without routes.
pub fn route(
    notification: &Notification,
    routes: &[RouteSection],
    all_channels: &[String],
) -> Vec<String> {
    if routes.is_empty() {
        return all_channels.to_vec();
    }
    let mut channels: Vec<String> = Vec::new();
    for rule in routes {
        let kind_ok = rule.kinds.is_empty() || rule.kinds.contains(&notification.kind);
        let probe_ok = rule.probes.is_empty() || rule.probes.contains(&notification.probe);
        if kind_ok && probe_ok && notification.severity >= rule.min_severity {
            for channel in rule.channels.get_ref() {
                if !channels.contains(channel) {
                    channels.push(channel.clone());
                }
            }
        }
    }
    channels
}

/// The JSON body for a channel of `kind`.
pub fn body(kind: ChannelKind, n: &Notification, now: Timestamp) -> Value {
    let text = match n.status {
        Status::Reminder => format!(
            "⏰ still failing after {}: {}",
            humantime::format_duration(std::time::Duration::from_secs(
                ((now.as_millis() - n.started_at.as_millis()).max(0) / 1000) as u64
            )),
            n.text
        ),
        _ => n.text.clone(),
    };
    let footer = format!("sentineld · {} · {}", n.kind, n.at.to_rfc3339());
    match kind {
        ChannelKind::Slack => json!({
            "text": text,
            "blocks": [
                {"type": "section", "text": {"type": "mrkdwn", "text": text}},
                {"type": "context", "elements": [{"type": "mrkdwn", "text": footer}]},
            ],
        }),
        ChannelKind::Discord => json!({
            "embeds": [{
                "description": text,
                "color": color(n),
                "timestamp": n.at.to_rfc3339(),
                "footer": {"text": footer},
            }],
        }),
        ChannelKind::Webhook => json!({
            "kind": n.kind,
            "status": n.status,
            "severity": n.severity,
            "subject": n.subject,
            "probe": n.probe,
            "text": text,
            "at": n.at.to_rfc3339(),
            "started_at": n.started_at.to_rfc3339(),
            "labels": n.labels,
            "drill": n.labels.get("drill"),
        }),
        ChannelKind::Alertmanager => {
            let mut labels = n.labels.clone();
            labels.insert("severity".into(), severity_name(n.severity).into());
            labels.insert("source".into(), "sentineld".into());
            let mut alert = json!({
                "labels": labels,
                "annotations": {"summary": n.text, "description": text},
                "startsAt": n.started_at.to_rfc3339(),
            });
            if n.status == Status::Resolved {
                alert["endsAt"] = json!(n.at.to_rfc3339());
            }
            json!([alert])
        }
        ChannelKind::Email => super::channel::email::body(n, &text, &footer),
        ChannelKind::PagerDuty => super::channel::pagerduty::body(n, &text),
        ChannelKind::Telegram => super::channel::telegram::body(&text, &footer),
        ChannelKind::Teams => super::channel::teams::body(n, &text, &footer),
        ChannelKind::Ntfy => super::channel::ntfy::body(n, &text),
    }
}

/// Where a channel of `kind` with base `url` is posted to.
pub fn endpoint(kind: ChannelKind, url: &str) -> String {
    match kind {
        ChannelKind::Alertmanager => format!("{}/api/v2/alerts", url.trim_end_matches('/')),
        _ => url.to_string(),
    }
}

fn severity_name(severity: Severity) -> &'static str {
    match severity {
        Severity::Info => "info",
        Severity::Warning => "warning",
        Severity::Critical => "critical",
    }
}

/// Red while firing, green when resolved, amber for warnings.
fn color(n: &Notification) -> u32 {
    match (n.status, n.severity) {
        (Status::Resolved, _) => 0x2e_b8_86,
        (_, Severity::Critical) => 0xd9_30_25,
        _ => 0xf2_c7_44,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use toml::Spanned;

    use super::*;

    fn notification(status: Status, severity: Severity) -> Notification {
        Notification {
            kind: "heal_started".into(),
            subject: "probe:pg".into(),
            probe: "pg".into(),
            status,
            severity,
            text: "🚨 pg: down".into(),
            at: Timestamp(2_000),
            started_at: Timestamp(1_000),
            labels: BTreeMap::from([
                ("alertname".into(), "SentinelProbeDown".into()),
                ("probe".into(), "pg".into()),
            ]),
        }
    }

    #[test]
    fn signature_is_hmac_sha256_hex() {
        // RFC 4231 test case 2
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn routes_by_kind_probe_and_severity() {
        let all = vec!["slack".to_string(), "pager".to_string(), "hook".to_string()];
        let rule =
            |channels: &[&str], kinds: &[&str], probes: &[&str], min: Severity| RouteSection {
                channels: Spanned::new(0..0, channels.iter().map(|c| c.to_string()).collect()),
                kinds: kinds.iter().map(|c| c.to_string()).collect(),
                probes: probes.iter().map(|c| c.to_string()).collect(),
                min_severity: min,
            };
        let routes = vec![
            rule(&["slack"], &[], &[], Severity::Info),
            rule(&["pager"], &[], &["pg"], Severity::Critical),
            rule(
                &["hook", "slack"],
                &["tenant_alert_fired"],
                &[],
                Severity::Info,
            ),
        ];
        let critical = notification(Status::Firing, Severity::Critical);
        assert_eq!(route(&critical, &routes, &all), ["slack", "pager"]);
        let warning = notification(Status::Firing, Severity::Warning);
        assert_eq!(route(&warning, &routes, &all), ["slack"]);
        let mut tenant = warning.clone();
        tenant.kind = "tenant_alert_fired".into();
        assert_eq!(route(&tenant, &routes, &all), ["slack", "hook"]);
        assert_eq!(route(&warning, &[], &all), all);
    }

    #[test]
    fn bodies_per_channel() {
        let firing = notification(Status::Firing, Severity::Critical);
        let slack = body(ChannelKind::Slack, &firing, Timestamp(2_000));
        assert_eq!(slack["text"], "🚨 pg: down");
        assert_eq!(slack["blocks"][0]["text"]["text"], "🚨 pg: down");
        let discord = body(ChannelKind::Discord, &firing, Timestamp(2_000));
        assert_eq!(discord["embeds"][0]["color"], 0xd93025);
        let hook = body(ChannelKind::Webhook, &firing, Timestamp(2_000));
        assert_eq!(
            (hook["status"].as_str(), hook["severity"].as_str()),
            (Some("firing"), Some("critical"))
        );

        let am = body(ChannelKind::Alertmanager, &firing, Timestamp(2_000));
        assert_eq!(am[0]["labels"]["alertname"], "SentinelProbeDown");
        assert_eq!(am[0]["labels"]["severity"], "critical");
        assert_eq!(am[0]["startsAt"], "1970-01-01T00:00:01.000Z");
        assert!(am[0].get("endsAt").is_none());
        let resolved = body(
            ChannelKind::Alertmanager,
            &notification(Status::Resolved, Severity::Critical),
            Timestamp(2_000),
        );
        assert_eq!(resolved[0]["endsAt"], "1970-01-01T00:00:02.000Z");
        assert_eq!(resolved[0]["labels"], am[0]["labels"]);

        let reminder = body(
            ChannelKind::Slack,
            &notification(Status::Reminder, Severity::Critical),
            Timestamp(601_000),
        );
        assert_eq!(reminder["text"], "⏰ still failing after 10m: 🚨 pg: down");
        assert_eq!(
            endpoint(ChannelKind::Alertmanager, "http://am:9093/"),
            "http://am:9093/api/v2/alerts"
        );
    }
}
