//! `/v1/drills/...` on the control socket: configured drills and recent runs to read; run and
//! stop as mutating routes (authorized and audited by the server like every other change).

use hyper::{Response, StatusCode};
use serde::{Deserialize, Serialize};

use super::query::percent_decode;
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

pub(super) fn read(state: &ApiState, path: &str) -> Response<Body> {
    match path.trim_end_matches('/') {
        "/v1/drills" => json(
            StatusCode::OK,
            &DrillsResponse {
                drills: state.drills.drills(),
                runs: state.drills.runs(),
            },
        ),
        other => {
            let id = percent_decode(other.trim_start_matches("/v1/drills/"));
            match state.drills.run_view(&id) {
                Ok(run) => json(StatusCode::OK, &DrillRunResponse { run }),
                Err(err) => failure(err),
            }
        }
    }
}

pub(super) async fn mutate(state: &ApiState, path: &str) -> Response<Body> {
    let rest = path.trim_end_matches('/').trim_start_matches("/v1/drills/");
    let answer = match rest.rsplit_once('/') {
        Some((name, "run")) => state
            .drills
            .start(&percent_decode(name))
            .map(|run| (StatusCode::ACCEPTED, run)),
        Some((id, "stop")) => state
            .drills
            .stop(&percent_decode(id))
            .await
            .map(|run| (StatusCode::OK, run)),
        _ => {
            return error(
                StatusCode::NOT_FOUND,
                format!("no such route: {path} (use /v1/drills/NAME/run or /v1/drills/ID/stop)"),
            )
        }
    };
    match answer {
        Ok((status, run)) => json(status, &DrillRunResponse { run }),
        Err(err) => failure(err),
    }
}

fn failure(err: DrillError) -> Response<Body> {
    let status = match &err {
        DrillError::NoSuchDrill(_) | DrillError::NoSuchRun(_) => StatusCode::NOT_FOUND,
        DrillError::Busy(_) | DrillError::Finished(_) => StatusCode::CONFLICT,
    };
    error(status, err.to_string())
}
