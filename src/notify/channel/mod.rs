//! How each channel kind reaches its receiver: the payloads of the kinds added after the first
//! four (email, PagerDuty, Telegram, Teams, ntfy) and the one `send` every delivery goes through.
//! Addressing and secrets (routing key, bot token, SMTP password) join a message only here, at
//! send time: the outbox stores bodies without them, and errors never quote them.

pub mod email;
pub mod ntfy;
pub mod pagerduty;
pub mod teams;
pub mod telegram;

use std::time::Duration;

use serde_json::Value;
use thiserror::Error;

use super::config::{ChannelKind, ChannelSection};
use super::render::{endpoint, signature, SIGNATURE_HEADER};
use crate::http::client::PostError;

/// A receiver that has not answered by then counts as down for this attempt.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Error bodies are kept (shortened) in the outbox's last_error; no more is read.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Where and how one configured channel sends, resolved from its section at load and reload.
#[derive(Debug, Clone)]
pub enum Target {
    /// Slack, Discord, webhook, Alertmanager, Teams: the stored body, POSTed as it is.
    Post {
        url: String,
        secret: Option<String>,
    },
    /// The stored event gets `routing_key` and goes to the Events API.
    PagerDuty {
        url: String,
        routing_key: String,
    },
    /// The stored message gets `chat_id` and goes to `/bot<TOKEN>/sendMessage`.
    Telegram {
        url: String,
        token: String,
        chat_id: String,
    },
    /// The stored message gets `topic` and goes to the server's root (JSON publishing).
    Ntfy {
        url: String,
        topic: String,
        token: Option<String>,
    },
    Email(email::Smtp),
}

impl Target {
    /// `None` when the section lacks what validation requires (a config never loaded from disk).
    pub fn from_section(section: &ChannelSection) -> Option<Self> {
        let url = || section.resolved_url().map(str::to_string);
        Some(match section.kind {
            ChannelKind::Slack
            | ChannelKind::Discord
            | ChannelKind::Webhook
            | ChannelKind::Alertmanager
            | ChannelKind::Teams => Self::Post {
                url: url()?,
                secret: section.resolved_secret().map(str::to_string),
            },
            ChannelKind::PagerDuty => Self::PagerDuty {
                url: url()?,
                routing_key: section.resolved_routing_key()?.to_string(),
            },
            ChannelKind::Telegram => Self::Telegram {
                url: url()?,
                token: section.resolved_token()?.to_string(),
                chat_id: section.chat_id.as_ref()?.get_ref().trim().to_string(),
            },
            ChannelKind::Ntfy => Self::Ntfy {
                url: url()?,
                topic: section.topic.as_ref()?.get_ref().trim().to_string(),
                token: section.resolved_token().map(str::to_string),
            },
            ChannelKind::Email => Self::Email(email::Smtp::from_section(section)?),
        })
    }
}

/// What the receiver answered to a delivered message: an HTTP status and the start of its
/// body, or an SMTP reply code and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub text: String,
}

impl Reply {
    /// At most 200 characters of `text`.
    fn new(status: u16, text: &str) -> Self {
        Self {
            status,
            text: text.chars().take(200).collect(),
        }
    }
}

/// Why a message did not reach its receiver; the message is what the outbox keeps as
/// `last_error` and `sentinelctl notify test` shows, so it never holds a secret.
#[derive(Debug, Error)]
pub enum SendError {
    /// The HTTP receiver was not reached, or answered other than 2xx.
    #[error(transparent)]
    Post(#[from] PostError),
    /// A Telegram URL was refused; it holds the bot token, so neither it nor the refusal
    /// (which quotes it) is shown.
    #[error("the telegram URL (`url` + /bot<TOKEN>/sendMessage) is not a valid URL")]
    TelegramUrl,
    /// The stored body is not the JSON object this kind stores (written by another version).
    #[error("the stored message is not a {kind} message")]
    StoredBody {
        kind: &'static str,
        #[source]
        source: Option<serde_json::Error>,
    },
    #[error(transparent)]
    Email(#[from] email::EmailError),
}

impl SendError {
    /// The receiver's own answer when it gave one (an HTTP status other than 2xx, an SMTP
    /// refusal), for `sentinelctl notify test`.
    pub fn reply(&self) -> Option<Reply> {
        match self {
            Self::Post(PostError::Status { status, excerpt }) => Some(Reply::new(*status, excerpt)),
            Self::Email(err) => err.reply(),
            _ => None,
        }
    }
}

/// The stored JSON object of a message, for kinds that add fields at send time.
fn stored_object(
    kind: &'static str,
    body: &str,
) -> Result<serde_json::Map<String, Value>, SendError> {
    match serde_json::from_str::<Value>(body) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(SendError::StoredBody { kind, source: None }),
        Err(source) => Err(SendError::StoredBody {
            kind,
            source: Some(source),
        }),
    }
}

async fn post(url: &str, headers: &[(String, String)], body: Vec<u8>) -> Result<Reply, PostError> {
    let answer =
        crate::http::client::post_json(url, headers, body, SEND_TIMEOUT, MAX_ANSWER_BYTES).await?;
    let status = answer.status;
    let body = answer.success()?;
    Ok(Reply::new(status, &String::from_utf8_lossy(&body)))
}

/// Send one stored `body` to the channel: the one path of the outbox and of `notify test`.
pub async fn send(kind: ChannelKind, target: &Target, body: &str) -> Result<Reply, SendError> {
    match target {
        Target::Post { url, secret } => {
            let mut headers = Vec::new();
            if let Some(secret) = secret {
                headers.push((
                    SIGNATURE_HEADER.to_string(),
                    signature(secret, body.as_bytes()),
                ));
            }
            Ok(post(&endpoint(kind, url), &headers, body.as_bytes().to_vec()).await?)
        }
        Target::PagerDuty { url, routing_key } => {
            let mut event = stored_object("pagerduty", body)?;
            event.insert("routing_key".into(), Value::String(routing_key.clone()));
            let body = Value::Object(event).to_string().into_bytes();
            Ok(post(url, &[], body).await?)
        }
        Target::Telegram {
            url,
            token,
            chat_id,
        } => {
            let mut message = stored_object("telegram", body)?;
            message.insert("chat_id".into(), telegram::chat_id(chat_id));
            let body = Value::Object(message).to_string().into_bytes();
            let endpoint = telegram::endpoint(url, token);
            match post(&endpoint, &[], body).await {
                Err(PostError::Target(_)) => Err(SendError::TelegramUrl),
                other => Ok(other?),
            }
        }
        Target::Ntfy { url, topic, token } => {
            let mut message = stored_object("ntfy", body)?;
            message.insert("topic".into(), Value::String(topic.clone()));
            let body = Value::Object(message).to_string().into_bytes();
            let headers: Vec<(String, String)> = token
                .iter()
                .map(|token| ("Authorization".to_string(), format!("Bearer {token}")))
                .collect();
            Ok(post(&ntfy::endpoint(url), &headers, body).await?)
        }
        Target::Email(smtp) => {
            let message = stored_object("email", body)?;
            Ok(smtp.send(&message).await?)
        }
    }
}

/// This host's name, for PagerDuty's `source` and dedup key and the email footer.
pub fn host_name() -> &'static str {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|name| name.trim().to_string())
            .ok()
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| "localhost".to_string())
    })
}

/// `text` cut to at most `max` characters, with an ellipsis when cut.
pub fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// A short title for kinds that have one (email subject, Teams card, ntfy title):
/// `sentineld: pg firing (critical)`, `sentineld: pg resolved`, `sentineld: pg still firing`.
pub fn headline(n: &super::Notification) -> String {
    let about = if n.probe.is_empty() {
        n.subject.as_str()
    } else {
        n.probe.as_str()
    };
    match n.status {
        super::Status::Firing => {
            format!("sentineld: {about} firing ({})", severity_word(n.severity))
        }
        super::Status::Resolved => format!("sentineld: {about} resolved"),
        super::Status::Reminder => format!(
            "sentineld: {about} still firing ({})",
            severity_word(n.severity)
        ),
    }
}

pub fn severity_word(severity: super::config::Severity) -> &'static str {
    match severity {
        super::config::Severity::Info => "info",
        super::config::Severity::Warning => "warning",
        super::config::Severity::Critical => "critical",
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::compose::{Notification, Status};
    use super::super::config::{ChannelKind, Severity};
    use super::super::render::body;
    use super::*;
    use crate::event::Timestamp;

    fn notification(status: Status, severity: Severity) -> Notification {
        Notification {
            kind: "probe_transition".into(),
            subject: "probe:pg".into(),
            probe: "pg".into(),
            status,
            severity,
            text: "🚨 pg: down".into(),
            at: Timestamp(2_000),
            started_at: Timestamp(1_000),
            labels: BTreeMap::from([("probe".into(), "pg".into())]),
        }
    }

    #[test]
    fn pagerduty_triggers_and_resolves_with_one_dedup_key() {
        let firing = notification(Status::Firing, Severity::Critical);
        let trigger = body(ChannelKind::PagerDuty, &firing, Timestamp(2_000));
        assert_eq!(trigger["event_action"], "trigger");
        assert_eq!(trigger["payload"]["summary"], "🚨 pg: down");
        assert_eq!(trigger["payload"]["severity"], "critical");
        assert_eq!(trigger["payload"]["source"], host_name());
        assert_eq!(trigger["payload"]["timestamp"], "1970-01-01T00:00:02.000Z");
        assert!(trigger.get("routing_key").is_none(), "joins at send time");
        let resolved = notification(Status::Resolved, Severity::Critical);
        let resolve = body(ChannelKind::PagerDuty, &resolved, Timestamp(2_000));
        assert_eq!(resolve["event_action"], "resolve");
        assert_eq!(resolve["dedup_key"], trigger["dedup_key"]);
        let reminder = notification(Status::Reminder, Severity::Warning);
        let again = body(ChannelKind::PagerDuty, &reminder, Timestamp(2_000));
        assert_eq!(again["event_action"], "trigger", "a reminder re-triggers");
        assert_eq!(again["payload"]["severity"], "warning");
    }

    #[test]
    fn chat_bodies_carry_the_text_and_no_addressing() {
        let firing = notification(Status::Firing, Severity::Critical);
        let telegram = body(ChannelKind::Telegram, &firing, Timestamp(2_000));
        assert!(telegram["text"]
            .as_str()
            .unwrap()
            .starts_with("🚨 pg: down\n\nsentineld · probe_transition · "));
        assert!(telegram.get("chat_id").is_none());
        assert_eq!(telegram::chat_id("-100123"), serde_json::json!(-100123));
        assert_eq!(telegram::chat_id("@ops"), serde_json::json!("@ops"));
        assert_eq!(
            telegram::endpoint("https://api.telegram.org/", "1:a"),
            "https://api.telegram.org/bot1:a/sendMessage"
        );

        let ntfy = body(ChannelKind::Ntfy, &firing, Timestamp(2_000));
        assert_eq!(ntfy["title"], "sentineld: pg firing (critical)");
        assert_eq!(ntfy["priority"], 5);
        assert!(ntfy.get("topic").is_none());
        assert_eq!(ntfy::endpoint("https://ntfy.sh"), "https://ntfy.sh/");

        let teams = body(ChannelKind::Teams, &firing, Timestamp(2_000));
        assert_eq!(teams["type"], "message");
        let card = &teams["attachments"][0];
        assert_eq!(card["contentType"], teams::CARD_CONTENT_TYPE);
        assert_eq!(card["content"]["type"], "AdaptiveCard");
        assert_eq!(card["content"]["body"][0]["color"], "Attention");

        let email = body(ChannelKind::Email, &firing, Timestamp(2_000));
        assert_eq!(email["subject"], "sentineld: pg firing (critical)");
        assert!(email["text"]
            .as_str()
            .unwrap()
            .starts_with("🚨 pg: down\n\n-- \n"));
    }

    #[test]
    fn shorten_cuts_at_characters() {
        assert_eq!(shorten("abc", 3), "abc");
        assert_eq!(shorten("ééééé", 3), "éé…");
    }
}
