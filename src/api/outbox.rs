//! `GET /v1/outbox?limit=N`: the notification outbox, newest first: each message's channel,
//! delivery state (pending, delivered, expired, suppressed), attempts, next try and last error.

use hyper::{Response, StatusCode};
use serde::{Deserialize, Serialize};

use super::archives::parse_limit;
use super::server::{error, json, Body};
use crate::notify::{Notifier, OutboxEntry};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxResponse {
    pub messages: Vec<OutboxEntry>,
}

pub(super) async fn get(query: Option<&str>, notifier: &Notifier) -> Response<Body> {
    let limit = match parse_limit(query) {
        Ok(limit) => limit,
        Err(err) => return error(StatusCode::BAD_REQUEST, err.to_string()),
    };
    match notifier.list(limit).await {
        Ok(messages) => json(StatusCode::OK, &OutboxResponse { messages }),
        Err(err) => error(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()),
    }
}
