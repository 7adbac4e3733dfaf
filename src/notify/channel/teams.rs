//! Microsoft Teams through a workflow ("When a Teams webhook request is received") webhook: a
//! message whose one attachment is an Adaptive Card with the alert, its facts and a footer.

use serde_json::{json, Value};

use super::super::compose::{Notification, Status};
use super::super::config::Severity;
use super::{headline, severity_word};

pub const CARD_CONTENT_TYPE: &str = "application/vnd.microsoft.card.adaptive";

pub fn body(n: &Notification, text: &str, footer: &str) -> Value {
    let color = match (n.status, n.severity) {
        (Status::Resolved, _) => "Good",
        (_, Severity::Critical) => "Attention",
        _ => "Warning",
    };
    let status = match n.status {
        Status::Firing => "firing",
        Status::Resolved => "resolved",
        Status::Reminder => "still firing",
    };
    json!({
        "type": "message",
        "attachments": [{
            "contentType": CARD_CONTENT_TYPE,
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "msteams": {"width": "Full"},
                "body": [
                    {"type": "TextBlock", "text": headline(n), "weight": "Bolder", "size": "Medium", "color": color, "wrap": true},
                    {"type": "TextBlock", "text": text, "wrap": true},
                    {"type": "FactSet", "facts": [
                        {"title": "Probe", "value": n.probe},
                        {"title": "Status", "value": status},
                        {"title": "Severity", "value": severity_word(n.severity)},
                        {"title": "Since", "value": n.started_at.to_rfc3339()},
                    ]},
                    {"type": "TextBlock", "text": footer, "isSubtle": true, "size": "Small", "wrap": true},
                ],
            },
        }],
    })
}
