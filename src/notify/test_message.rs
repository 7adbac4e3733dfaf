//! `sentinelctl notify test CHANNEL`: a labelled test message sent at once through the same
//! `channel::send` the outbox uses (not queued: the operator waits for the receiver's answer).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::channel::{self, SendError};
use super::compose::{Notification, Status};
use super::config::{ChannelKind, Severity};
use super::Notifier;
use crate::event::Timestamp;

/// The subject of test messages (what PagerDuty's dedup key is made of).
pub const TEST_SUBJECT: &str = "sentinel:notify-test";

/// What the receiver said to a test message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestOutcome {
    pub channel: String,
    /// The channel's kind, as written in the config (`email`, `pagerduty`, ...).
    pub kind: String,
    /// Whether the receiver accepted the message (HTTP 2xx, SMTP 2xx).
    pub delivered: bool,
    /// The receiver's HTTP status or SMTP reply code, when it answered.
    pub status: Option<u16>,
    /// The start of its answer (at most 200 characters).
    pub answer: Option<String>,
    /// Why it was not delivered (never a secret).
    pub error: Option<String>,
}

#[derive(Debug, Error)]
pub enum TestError {
    #[error("no notify channel \"{0}\" in the running config")]
    UnknownChannel(String),
}

/// The test notification: info severity, firing, clearly labelled.
pub fn test_notification(channel: &str, now: Timestamp) -> Notification {
    Notification {
        kind: "notify_test".into(),
        subject: TEST_SUBJECT.into(),
        probe: "notify-test".into(),
        status: Status::Firing,
        severity: Severity::Info,
        text: format!(
            "🧪 Test message from sentineld on {} to channel \"{channel}\" (sentinelctl notify test): if you read this, the channel works.",
            channel::host_name()
        ),
        at: now,
        started_at: now,
        labels: BTreeMap::from([
            ("alertname".to_string(), "SentinelNotifyTest".to_string()),
            ("channel".to_string(), channel.to_string()),
        ]),
    }
}

impl Notifier {
    /// Send a test message to `channel` now and report the receiver's answer. A PagerDuty test
    /// trigger is resolved again right away, so it leaves no incident open.
    pub async fn send_test(&self, channel: &str) -> Result<TestOutcome, TestError> {
        let settings = self.settings();
        let configured = settings
            .channel(channel)
            .ok_or_else(|| TestError::UnknownChannel(channel.to_string()))?;
        let now = Timestamp::now();
        let mut notification = test_notification(channel, now);
        let body = super::body(configured.kind, &notification, now).to_string();
        let sent = channel::send(configured.kind, &configured.target, &body).await;
        tracing::info!(channel, delivered = sent.is_ok(), "test notification sent");
        if sent.is_ok() && configured.kind == ChannelKind::PagerDuty {
            notification.status = Status::Resolved;
            let resolve = super::body(configured.kind, &notification, now).to_string();
            if let Err(err) = channel::send(configured.kind, &configured.target, &resolve).await {
                tracing::warn!(channel, "cannot resolve the PagerDuty test event: {err}");
            }
        }
        Ok(outcome(channel, configured.kind, sent))
    }
}

fn outcome(
    channel: &str,
    kind: ChannelKind,
    sent: Result<channel::Reply, SendError>,
) -> TestOutcome {
    let (delivered, reply, error) = match sent {
        Ok(reply) => (true, Some(reply), None),
        // What the outbox keeps as last_error: each error's text already names its cause.
        Err(err) => (false, err.reply(), Some(err.to_string())),
    };
    TestOutcome {
        channel: channel.to_string(),
        kind: kind.name().to_string(),
        delivered,
        status: reply.as_ref().map(|r| r.status),
        answer: reply.map(|r| r.text),
        error,
    }
}
