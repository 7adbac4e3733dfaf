//! `/v1/maintenance`: list the windows in force and the schedules, open a run-time window
//! (journaled with the caller's uid and name), end one by its id.

use bytes::Bytes;
use hyper::{Response, StatusCode};

use super::peer::Peer;
use super::server::{error, json, ApiState, Body};
use crate::event::{MaintenanceActor, Timestamp};
use crate::maintenance::{MaintenanceError, StartRequest};

/// The caller as the journal names it: SO_PEERCRED's uid and the host's name for it.
fn operator(state: &ApiState, peer: &Peer) -> MaintenanceActor {
    MaintenanceActor::Operator {
        uid: peer.uid,
        user: state.accounts.user_name(peer.uid),
    }
}

fn refused(err: MaintenanceError) -> Response<Body> {
    let status = match err {
        MaintenanceError::UnknownProbe(_) | MaintenanceError::NoSuchWindow(_) => {
            StatusCode::NOT_FOUND
        }
        _ => StatusCode::BAD_REQUEST,
    };
    error(status, err.to_string())
}

pub(super) fn list(state: &ApiState) -> Response<Body> {
    json(StatusCode::OK, &state.maintenance.list(Timestamp::now()))
}

pub(super) fn start(state: &ApiState, body: &Bytes, peer: &Peer) -> Response<Body> {
    let request: StartRequest = match serde_json::from_slice(body) {
        Ok(request) => request,
        Err(err) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("invalid maintenance request: {err}"),
            )
        }
    };
    match state
        .maintenance
        .start(request, operator(state, peer), Timestamp::now())
    {
        Ok(window) => json(StatusCode::CREATED, &window),
        Err(err) => refused(err),
    }
}

pub(super) fn end(state: &ApiState, window: &str, peer: &Peer) -> Response<Body> {
    match state
        .maintenance
        .end(window, operator(state, peer), Timestamp::now())
    {
        Ok(window) => json(StatusCode::OK, &window),
        Err(err) => refused(err),
    }
}
