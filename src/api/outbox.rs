//! `GET /v1/outbox?limit=N`: the notification outbox, newest first: each message's channel,
//! delivery state (pending, delivered, expired, suppressed), attempts, next try and last error.

use hyper::Response;
use serde::{Deserialize, Serialize};

use super::archives::listing;
use super::server::Body;
use crate::notify::{Notifier, OutboxEntry};

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
