//! PagerDuty Events API v2: a firing (or reminder) triggers, a resolve resolves, both with the
//! dedup key `<host>/<subject>`, so one incident per alert; the routing key joins at send time.

use serde_json::{json, Value};

use super::super::compose::{Notification, Status};
use super::super::config::Severity;
use super::{host_name, shorten};

/// PagerDuty refuses a summary longer than this.
const MAX_SUMMARY: usize = 1024;

/// The same alert on two hosts is two incidents; firing and resolve of one alert share it.
pub fn dedup_key(n: &Notification) -> String {
    format!("sentineld/{}/{}", host_name(), n.subject)
}

/// The event without `routing_key` (the outbox never stores it).
pub fn body(n: &Notification, text: &str) -> Value {
    let dedup_key = dedup_key(n);
    if n.status == Status::Resolved {
        return json!({
            "event_action": "resolve",
            "dedup_key": dedup_key,
            "client": "sentineld",
        });
    }
    json!({
        "event_action": "trigger",
        "dedup_key": dedup_key,
        "client": "sentineld",
        "payload": {
            "summary": shorten(text, MAX_SUMMARY),
            "source": host_name(),
            "severity": match n.severity {
                Severity::Critical => "critical",
                Severity::Warning => "warning",
                Severity::Info => "info",
            },
            "timestamp": n.at.to_rfc3339(),
            "component": n.probe,
            "class": n.kind,
            "custom_details": {
                "subject": n.subject,
                "started_at": n.started_at.to_rfc3339(),
                "labels": n.labels,
            },
        },
    })
}
