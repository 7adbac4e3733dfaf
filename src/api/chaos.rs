//! `/v1/chaos/...` on the control socket: profiles and experiments to read, and start/stop as
//! mutating routes (authorized and audited by the server like every other change).

use bytes::Bytes;
use hyper::{Response, StatusCode};
use serde::{Deserialize, Serialize};

use super::query::percent_decode;
use super::server::{error, json, ApiState, Body};
use crate::chaos::{ChaosError, ExperimentView, Profile, StartRequest};

/// `GET /v1/chaos/profiles`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfilesResponse {
    pub profiles: Vec<Profile>,
}

/// `GET /v1/chaos`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentsResponse {
    pub experiments: Vec<ExperimentView>,
}

/// `POST /v1/chaos/stop-all`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StopAllResponse {
    pub stopped: Vec<String>,
}

/// The read routes; `None` when `path` is not one of them.
pub(super) async fn read(state: &ApiState, path: &str) -> Option<Response<Body>> {
    let response = match path.trim_end_matches('/') {
        "/v1/chaos/profiles" => json(
            StatusCode::OK,
            &ProfilesResponse {
                profiles: state.chaos.profiles(),
            },
        ),
        "/v1/chaos" => match state.chaos.list().await {
            Ok(experiments) => json(StatusCode::OK, &ExperimentsResponse { experiments }),
            Err(err) => failure(err),
        },
        other if other.ends_with("/report") => {
            let id = other.strip_prefix("/v1/chaos/")?.strip_suffix("/report")?;
            super::report::get(state, &percent_decode(id)).await
        }
        other if other.ends_with("/summary") => {
            let id = other.strip_prefix("/v1/chaos/")?.strip_suffix("/summary")?;
            super::report::summary(state, &percent_decode(id)).await
        }
        other => {
            let id = percent_decode(other.strip_prefix("/v1/chaos/")?);
            match state.chaos.show(&id).await {
                Ok(view) => json(StatusCode::OK, &view),
                Err(err) => failure(err),
            }
        }
    };
    Some(response)
}

/// POST `/v1/chaos/start` (JSON `StartRequest`), `/v1/chaos/stop-all`, `/v1/chaos/{id}/stop`.
pub(super) async fn mutate(state: &ApiState, path: &str, body: &Bytes) -> Response<Body> {
    match path.trim_end_matches('/') {
        "/v1/chaos/start" => {
            let request: StartRequest = match serde_json::from_slice(body) {
                Ok(request) => request,
                Err(err) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        format!("invalid start request: {err} (send {{\"profile\": NAME, \"duration\": \"5m\"}} or {{\"spec\": ...}})"),
                    )
                }
            };
            match state.chaos.start(request).await {
                Ok(view) => json(StatusCode::CREATED, &view),
                Err(err) => failure(err),
            }
        }
        "/v1/chaos/stop-all" => json(
            StatusCode::OK,
            &StopAllResponse {
                stopped: state.chaos.stop_all().await,
            },
        ),
        other => match other
            .strip_prefix("/v1/chaos/")
            .and_then(|rest| rest.strip_suffix("/stop"))
        {
            Some(id) => match state.chaos.stop(&percent_decode(id)).await {
                Ok(view) => json(StatusCode::OK, &view),
                Err(err) => failure(err),
            },
            None => error(StatusCode::NOT_FOUND, format!("no such route: {path}")),
        },
    }
}

pub(super) fn failure(err: ChaosError) -> Response<Body> {
    let status = match &err {
        ChaosError::Invalid(_) => StatusCode::BAD_REQUEST,
        ChaosError::NoSuchProfile(_) | ChaosError::NoSuchExperiment(_) => StatusCode::NOT_FOUND,
        ChaosError::Refused(_) => StatusCode::CONFLICT,
        ChaosError::TargetGone(_) => StatusCode::GONE,
        ChaosError::Target(_)
        | ChaosError::Kernel { .. }
        | ChaosError::Unavailable(..)
        | ChaosError::Cgroup(_) => StatusCode::UNPROCESSABLE_ENTITY,
        ChaosError::Docker(_) => StatusCode::BAD_GATEWAY,
        ChaosError::Journal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error(status, err.to_string())
}
