//! ntfy's JSON publishing (`POST /` with `topic`, `title`, `message`, `priority`, `tags`); the
//! topic joins at send time, an access token as `Authorization: Bearer`.

use serde_json::{json, Value};

use super::super::compose::{Notification, Status};
use super::super::config::Severity;
use super::headline;

/// The message without `topic`. Priorities: 5 (max) for a critical alert, 4 for a warning,
/// 3 (default) for the rest and every resolve.
pub fn body(n: &Notification, text: &str) -> Value {
    let (priority, tag) = match (n.status, n.severity) {
        (Status::Resolved, _) => (3, "white_check_mark"),
        (_, Severity::Critical) => (5, "rotating_light"),
        (_, Severity::Warning) => (4, "warning"),
        (_, Severity::Info) => (3, "information_source"),
    };
    json!({
        "title": headline(n),
        "message": text,
        "priority": priority,
        "tags": [tag, "sentineld"],
    })
}

/// JSON messages are published to the server's root.
pub fn endpoint(base: &str) -> String {
    format!("{}/", base.trim_end_matches('/'))
}
