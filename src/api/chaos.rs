//! `/v1/chaos/...` on the control socket: profiles and experiments to read, and start/stop as
//! mutating routes (authorized and audited by the server like every other change).

use bytes::Bytes;
use hyper::{Response, StatusCode};
use serde::{Deserialize, Serialize};

use super::server::{error, json, ApiState, Body};
use crate::chaos::{ChaosError, ExperimentView, Profile, StartRequest};
use crate::systemd::SystemdError;

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

/// `GET /v1/chaos/profiles`.
pub(super) fn profiles(state: &ApiState) -> Response<Body> {
    json(
        StatusCode::OK,
        &ProfilesResponse {
            profiles: state.chaos.profiles(),
        },
    )
}

/// `GET /v1/chaos`.
pub(super) async fn list(state: &ApiState) -> Response<Body> {
    match state.chaos.list().await {
        Ok(experiments) => json(StatusCode::OK, &ExperimentsResponse { experiments }),
        Err(err) => failure(err),
    }
}

/// `GET /v1/chaos/{id}`.
pub(super) async fn show(state: &ApiState, id: &str) -> Response<Body> {
    match state.chaos.show(id).await {
        Ok(view) => json(StatusCode::OK, &view),
        Err(err) => failure(err),
    }
}

/// `POST /v1/chaos/start` with a JSON `StartRequest`.
pub(super) async fn start(state: &ApiState, body: &Bytes) -> Response<Body> {
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

/// `POST /v1/chaos/stop-all`.
pub(super) async fn stop_all(state: &ApiState) -> Response<Body> {
    json(
        StatusCode::OK,
        &StopAllResponse {
            stopped: state.chaos.stop_all().await,
        },
    )
}

/// `POST /v1/chaos/{id}/stop`.
pub(super) async fn stop(state: &ApiState, id: &str) -> Response<Body> {
    match state.chaos.stop(id).await {
        Ok(view) => json(StatusCode::OK, &view),
        Err(err) => failure(err),
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
        | ChaosError::Cgroup(_)
        | ChaosError::Stress(_)
        | ChaosError::Fill(_)
        | ChaosError::MemoryBelowUsage { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        ChaosError::Docker(_) => StatusCode::BAD_GATEWAY,
        ChaosError::Journal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        ChaosError::Systemd(err) => match err.as_ref() {
            SystemdError::Property(_) | SystemdError::NoSuchUnit { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            _ => StatusCode::BAD_GATEWAY,
        },
    };
    error(status, err.to_string())
}
