//! `/v1/drills/...` on the control socket: configured drills and recent runs to read; run and
//! stop as mutating routes (authorized and audited by the server like every other change).

use hyper::{Response, StatusCode};
use serde::{Deserialize, Serialize};

use super::server::{error, json, ApiState, Body};
use crate::drill::{Drill, DrillError, DrillRun};

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
    };
    error(status, err.to_string())
}
