//! `/v1/drills/...` on the control socket: configured drills and recent runs to read; run and
//! stop as mutating routes (authorized and audited by the server like every other change).

use hyper::{Response, StatusCode};
use serde::{Deserialize, Serialize};

use super::query::QueryError;
use super::routes::query_pairs;
use super::server::{error, json, ApiState, Body};
use crate::drill::trend::{trend, DEFAULT_RUNS, MAX_RUNS};
use crate::drill::{Drill, DrillError, DrillRun};
use crate::journal::EventQuery;

/// `GET /v1/drills`: what is configured, and the recent runs (newest first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrillsResponse {
    pub drills: Vec<Drill>,
    pub runs: Vec<DrillRun>,
}

/// `POST /v1/drills/{name}/run`, `POST /v1/drills/{id}/stop`, `GET /v1/drills/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrillRunResponse {
    pub run: DrillRun,
}

/// `GET /v1/drills`.
pub(super) fn list(state: &ApiState) -> Response<Body> {
    json(
        StatusCode::OK,
        &DrillsResponse {
            drills: state.drills.drills(),
            runs: state.drills.runs(),
        },
    )
}

/// `GET /v1/drills/{id}`.
pub(super) fn show(state: &ApiState, id: &str) -> Response<Body> {
    match state.drills.run_view(id) {
        Ok(run) => json(StatusCode::OK, &DrillRunResponse { run }),
        Err(err) => failure(err),
    }
}

/// `POST /v1/drills/{name}/run`.
pub(super) fn run(state: &ApiState, name: &str) -> Response<Body> {
    answer(
        state
            .drills
            .start(name)
            .map(|run| (StatusCode::ACCEPTED, run)),
    )
}

/// `POST /v1/drills/{id}/stop`.
pub(super) async fn stop(state: &ApiState, id: &str) -> Response<Body> {
    answer(state.drills.stop(id).await.map(|run| (StatusCode::OK, run)))
}

/// `GET /v1/drills/{name}/trend?last=N`: the last N finished runs from the journal (so runs of
/// earlier daemons count), their detect / act / recover times, p50 and direction.
pub(super) async fn trend_of(state: &ApiState, name: &str, query: Option<&str>) -> Response<Body> {
    let last = match parse_last(query) {
        Ok(last) => last,
        Err(err) => return error(StatusCode::BAD_REQUEST, err.to_string()),
    };
    let configured = state.drills.drill(name).ok();
    // Only starts and ends: a run's times travel on its `drill_finished`.
    let query = EventQuery {
        kinds: vec!["drill_started".into(), "drill_finished".into()],
        limit: EventQuery::MAX_LIMIT,
        ..Default::default()
    };
    let events = match state.journal.query(query).await {
        Ok(events) => events,
        Err(err) => return failure(DrillError::Journal(err)),
    };
    let runs = crate::drill::history::runs_from_journal(&events);
    let answer = trend(
        name,
        &runs,
        last,
        configured.as_ref().and_then(|d| d.objective),
    );
    match (configured, answer.runs.is_empty()) {
        (None, true) => failure(DrillError::NoSuchDrill(name.to_string())),
        _ => json(StatusCode::OK, &answer),
    }
}

fn parse_last(query: Option<&str>) -> Result<usize, QueryError> {
    let mut last = DEFAULT_RUNS;
    for (key, value) in query_pairs(query) {
        match key.as_str() {
            "last" => {
                last = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_RUNS).contains(n))
                    .ok_or(QueryError::Limit {
                        value,
                        max: MAX_RUNS,
                    })?
            }
            _ => {
                return Err(QueryError::UnknownParameter {
                    name: key,
                    expected: Some("last"),
                })
            }
        }
    }
    Ok(last)
}

fn answer(answer: Result<(StatusCode, DrillRun), DrillError>) -> Response<Body> {
    match answer {
        Ok((status, run)) => json(status, &DrillRunResponse { run }),
        Err(err) => failure(err),
    }
}

fn failure(err: DrillError) -> Response<Body> {
    let status = match &err {
        DrillError::NoSuchDrill(_) | DrillError::NoSuchRun(_) => StatusCode::NOT_FOUND,
        DrillError::Busy(_) | DrillError::Finished(_) => StatusCode::CONFLICT,
        DrillError::ExpectationShape => StatusCode::BAD_REQUEST,
        DrillError::Target { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        DrillError::Journal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error(status, err.to_string())
}
