//! `GET /v1/outbox?limit=N`: the notification outbox, newest first: each message's channel,
//! delivery state (pending, delivered, expired, suppressed), attempts, next try and last error;
//! and `POST /v1/notify/{channel}/test`, a test message's outcome.

use hyper::Response;
use serde::{Deserialize, Serialize};

use super::archives::listing;
use super::server::{error, json, Body};
use crate::notify::{Notifier, OutboxEntry, TestError};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxResponse {
    pub messages: Vec<OutboxEntry>,
}

pub(super) async fn get(query: Option<&str>, notifier: &Notifier) -> Response<Body> {
    listing(
        query,
        |limit| notifier.list(limit),
        |messages| OutboxResponse { messages },
    )
    .await
}

/// 200 with the outcome whether or not the receiver took it (the answer says); 404 for a
/// channel the running config does not have.
pub(super) async fn test(notifier: &Notifier, channel: &str) -> Response<Body> {
    match notifier.send_test(channel).await {
        Ok(outcome) => json(hyper::StatusCode::OK, &outcome),
        Err(err @ TestError::UnknownChannel(_)) => {
            error(hyper::StatusCode::NOT_FOUND, err.to_string())
        }
    }
}
