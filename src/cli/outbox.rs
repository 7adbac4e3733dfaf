//! `sentinelctl outbox`: one line per notification message — when, channel, what, delivery
//! state with attempts, next try and last error.

use super::render::table_or;
use crate::api::OutboxResponse;
use crate::notify::DeliveryState;

pub fn outbox(response: &OutboxResponse) -> String {
    table_or(
        "no notifications yet\n",
        &[
            "CREATED", "CHANNEL", "SUBJECT", "STATUS", "ATTEMPTS", "STATE", "NEXT TRY",
        ],
        &response.messages,
        |m| {
            let state = match (m.state, &m.last_error) {
                (DeliveryState::Delivered, _) => "delivered".to_string(),
                (DeliveryState::Expired, _) => "expired (gave up)".to_string(),
                (DeliveryState::Suppressed, _) => "suppressed (silence or maintenance)".to_string(),
                (DeliveryState::Pending, Some(error)) => format!(
                    "pending ({} failed: {})",
                    m.attempts,
                    super::archives::short(error)
                ),
                (DeliveryState::Pending, None) => "pending".to_string(),
                (DeliveryState::Held, _) => "held (its parent probe is down)".to_string(),
                (DeliveryState::Folded, _) => "folded (told by its parent's message)".to_string(),
                (DeliveryState::Superseded, _) => "superseded (a critical came first)".to_string(),
            };
            let next = match m.next_attempt_at {
                Some(at) => at.to_rfc3339(),
                None => "-".into(),
            };
            vec![
                m.created_at.to_rfc3339(),
                m.channel.clone(),
                m.subject.clone(),
                m.status.clone(),
                m.attempts.to_string(),
                state,
                next,
            ]
        },
    )
}

/// `sentinelctl notify test`: what the receiver answered.
pub fn test_outcome(outcome: &crate::notify::TestOutcome) -> String {
    let mut text = format!(
        "{} ({}): {}\n",
        outcome.channel,
        outcome.kind,
        if outcome.delivered {
            "test message delivered"
        } else {
            "test message NOT delivered"
        }
    );
    if let Some(status) = outcome.status {
        let answer = outcome.answer.as_deref().unwrap_or("").trim();
        text.push_str(&format!("  receiver answered: {status} {answer}\n"));
    }
    if let Some(error) = &outcome.error {
        text.push_str(&format!("  error: {error}\n"));
    }
    text
}
