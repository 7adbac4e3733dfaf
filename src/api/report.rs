//! `GET /v1/chaos/{id}/report`: one experiment's report, built on request from its journaled
//! row and the journal events of its window; `/summary` sends it to the optional AI endpoint.

use hyper::{Response, StatusCode};

use super::server::{error, json, ApiState, Body};
use crate::ai::AiError;
use crate::event::Timestamp;
use crate::journal::EventQuery;
use crate::report::ExperimentReport;

pub(super) async fn get(state: &ApiState, id: &str) -> Response<Body> {
    match build(state, id).await {
        Ok(report) => json(StatusCode::OK, &report),
        Err(response) => response,
    }
}

/// `GET /v1/chaos/{id}/summary`: the report, summarized by the configured AI endpoint.
pub(super) async fn summary(state: &ApiState, id: &str) -> Response<Body> {
    match build(state, id).await {
        Ok(report) => summarize(state, "chaos experiment report", &report).await,
        Err(response) => response,
    }
}

/// The AI summary of `document`, or the reason there is none (with a status saying whose
/// fault it is).
pub(super) async fn summarize(
    state: &ApiState,
    what: &str,
    document: &impl serde::Serialize,
) -> Response<Body> {
    let document = match serde_json::to_value(document) {
        Ok(document) => document,
        Err(err) => return error(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()),
    };
    match state.ai.summarize(what, &document).await {
        Ok(summary) => json(StatusCode::OK, &summary),
        Err(err) => {
            let status = match &err {
                AiError::NotConfigured => StatusCode::NOT_FOUND,
                AiError::MissingKey(_) => StatusCode::SERVICE_UNAVAILABLE,
                AiError::Request { .. } | AiError::BadAnswer(_) => StatusCode::BAD_GATEWAY,
            };
            error(status, err.to_string())
        }
    }
}

async fn build(state: &ApiState, id: &str) -> Result<ExperimentReport, Response<Body>> {
    let experiment = match state.chaos.experiment(id).await {
        Ok(experiment) => experiment,
        Err(err) => return Err(super::chaos::failure(err)),
    };
    let now = Timestamp::now();
    let (since, until) = crate::report::window(&experiment, now);
    let query = EventQuery {
        since: Some(since),
        after_id: None,
        until: Some(until),
        kinds: Vec::new(),
        limit: EventQuery::MAX_LIMIT,
    };
    match state.journal.query(query).await {
        Ok(events) => {
            let mut report = crate::report::build(&experiment, &events, now);
            if events.len() >= EventQuery::MAX_LIMIT {
                report.notes.push(
                    "the window held more events than one report reads; only the newest were used"
                        .into(),
                );
            }
            Ok(report)
        }
        Err(err) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, err.to_string())),
    }
}
