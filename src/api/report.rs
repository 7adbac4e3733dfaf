//! `GET /v1/chaos/{id}/report`: one experiment's report, built on request from its journaled
//! row and the journal events of its window.

use hyper::{Response, StatusCode};

use super::server::{error, json, ApiState, Body};
use crate::event::Timestamp;
use crate::journal::EventQuery;

pub(super) async fn get(state: &ApiState, id: &str) -> Response<Body> {
    let experiment = match state.chaos.experiment(id).await {
        Ok(experiment) => experiment,
        Err(err) => return super::chaos::failure(err),
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
            json(StatusCode::OK, &report)
        }
        Err(err) => error(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()),
    }
}
