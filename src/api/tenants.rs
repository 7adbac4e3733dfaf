//! `GET /v1/tenants/top?by=&window=&limit=` and `GET /v1/tenants/{id}?window=`: the detector's
//! rankings and one tenant's evidence, read straight from the running detector; tenant mutes.

use std::time::Duration;

use hyper::{Response, StatusCode};

use super::peer::Peer;
use super::query::parse_silence_for;
use super::query::QueryError;
use super::routes::query_pairs;
use super::server::ApiState;
use super::server::{error, json, Body};
use super::types::{TenantMuteResponse, TenantMutesResponse, TenantResponse, TenantsTopResponse};
use crate::event::{EventKind, Timestamp};
use crate::tenants::{RankBy, TenantMute, TenantService, OTHER_TENANT};

/// Longest mute reason kept, in bytes.
const MAX_REASON_BYTES: usize = 500;

/// Most tenants one ranking returns.
const MAX_LIMIT: usize = 1000;

#[derive(Debug, PartialEq)]
struct TopParams {
    by: RankBy,
    window: Duration,
    limit: usize,
}

/// 404 with the setting to change while the detector is off.
fn disabled() -> Response<Body> {
    error(
        StatusCode::NOT_FOUND,
        "the tenant detector is disabled: set [tenants] enabled = true in sentineld.toml".into(),
    )
}

/// Why a ranking was not given; its [`TopRefused::status`] and text are the route's answer on
/// the control socket and on the public listener alike.
#[derive(Debug, thiserror::Error)]
pub enum TopRefused {
    #[error("the tenant detector is disabled: set [tenants] enabled = true in sentineld.toml")]
    Disabled,
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error("the tenant detector was just disabled")]
    JustDisabled,
}

impl TopRefused {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Query(_) => StatusCode::BAD_REQUEST,
            Self::Disabled | Self::JustDisabled => StatusCode::NOT_FOUND,
        }
    }
}

/// The ranking `?by=&window=&limit=` asks for, read from the running detector.
pub fn top_answer(
    query: Option<&str>,
    tenants: &TenantService,
) -> Result<TenantsTopResponse, TopRefused> {
    if !tenants.is_enabled() {
        return Err(TopRefused::Disabled);
    }
    let now = Timestamp::now().as_millis();
    let params = parse_top(query)?;
    let (Some(top), Some(stats)) = (
        tenants.top(params.by, params.window, params.limit, now),
        tenants.stats(),
    ) else {
        return Err(TopRefused::JustDisabled);
    };
    Ok(TenantsTopResponse {
        error_label: tenants.error_label(),
        stats,
        top,
    })
}

/// `GET /v1/tenants/top`.
pub(super) fn top(query: Option<&str>, tenants: &TenantService) -> Response<Body> {
    match top_answer(query, tenants) {
        Ok(response) => json(StatusCode::OK, &response),
        Err(refused) => error(refused.status(), refused.to_string()),
    }
}

/// `GET /v1/tenants/{id}`; `id` is decoded (it may hold any character, `/` included).
pub(super) fn tenant(id: &str, query: Option<&str>, tenants: &TenantService) -> Response<Body> {
    if !tenants.is_enabled() {
        return disabled();
    }
    let now = Timestamp::now().as_millis();
    let window = match parse_window_only(query) {
        Ok(window) => window,
        Err(err) => return error(StatusCode::BAD_REQUEST, err.to_string()),
    };
    match tenants.tenant(id, window, now) {
        Some(Some(tenant)) => {
            let response = TenantResponse {
                error_label: tenants.error_label(),
                window_ms: tenants.window_ms(window).unwrap_or_default(),
                tenant,
            };
            json(StatusCode::OK, &response)
        }
        Some(None) => error(
            StatusCode::NOT_FOUND,
            format!(
                "tenant \"{id}\" is not tracked: it sent nothing recently, or too little to keep a window of its own (its traffic then counts under {OTHER_TENANT})"
            ),
        ),
        None => error(StatusCode::NOT_FOUND, "the tenant detector was just disabled".into()),
    }
}

/// `POST /v1/tenants/{id}/mute?for=1h&reason=...`: holds the tenant's alerts until then
/// (`for=0` lifts the mute), journaled with who asked. Works whether or not the tenant is tracked
/// yet (a load test can be muted before it starts).
pub(super) fn mute(
    tenant: String,
    query: Option<&str>,
    peer: &Peer,
    state: &ApiState,
) -> Response<Body> {
    let duration = match parse_silence_for(query) {
        Ok(duration) => duration,
        Err(err) => return error(StatusCode::BAD_REQUEST, err.to_string()),
    };
    let reason = query_pairs(query)
        .find_map(|(key, value)| (key == "reason").then_some(value))
        .unwrap_or_default();
    if reason.len() > MAX_REASON_BYTES || reason.chars().any(char::is_control) {
        return error(
            StatusCode::BAD_REQUEST,
            format!("reason must be at most {MAX_REASON_BYTES} bytes without control characters"),
        );
    }
    if tenant.is_empty() || tenant.len() > crate::ingest::MAX_TENANT_ID_BYTES {
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "tenant must be 1-{} bytes (got {})",
                crate::ingest::MAX_TENANT_ID_BYTES,
                tenant.len()
            ),
        );
    }
    let now = Timestamp::now();
    let until = now
        .as_millis()
        .saturating_add(duration.as_millis().min(i64::MAX as u128) as i64);
    let mute = TenantMute {
        tenant_id: tenant.clone(),
        until_ms: until,
        reason,
        uid: peer.uid,
        user: state.accounts.user_name(peer.uid),
    };
    state.tenants.mute(mute.clone(), now.as_millis());
    state.bus.publish(EventKind::TenantMuted {
        tenant: mute.tenant_id.clone(),
        until: Timestamp(mute.until_ms),
        reason: mute.reason.clone(),
        uid: mute.uid,
        user: mute.user.clone(),
    });
    let response = TenantMuteResponse {
        tenant_id: tenant,
        mute: (until > now.as_millis()).then_some(mute),
    };
    json(StatusCode::OK, &response)
}

/// `GET /v1/tenants/mutes`.
pub(super) fn mutes(tenants: &TenantService) -> Response<Body> {
    let response = TenantMutesResponse {
        mutes: tenants.mutes(Timestamp::now().as_millis()),
    };
    json(StatusCode::OK, &response)
}

fn parse_top(query: Option<&str>) -> Result<TopParams, QueryError> {
    let mut params = TopParams {
        by: RankBy::Errors,
        window: Duration::ZERO,
        limit: 10,
    };
    for (key, value) in query_pairs(query) {
        match key.as_str() {
            "by" => params.by = value.parse()?,
            "window" => params.window = parse_window(value)?,
            "limit" => params.limit = parse_limit(value, MAX_LIMIT)?,
            _ => {
                return Err(QueryError::UnknownParameter {
                    name: key,
                    expected: Some("by, window, limit"),
                })
            }
        }
    }
    Ok(params)
}

fn parse_window_only(query: Option<&str>) -> Result<Duration, QueryError> {
    let mut window = Duration::ZERO;
    for (key, value) in query_pairs(query) {
        match key.as_str() {
            "window" => window = parse_window(value)?,
            _ => {
                return Err(QueryError::UnknownParameter {
                    name: key,
                    expected: Some("window"),
                })
            }
        }
    }
    Ok(window)
}

/// `window=10m` of a tenants route.
pub(super) fn parse_window(value: String) -> Result<Duration, QueryError> {
    humantime::parse_duration(&value).map_err(|source| QueryError::Window { value, source })
}

/// `limit=N` of a tenants route: 1 to `max`.
pub(super) fn parse_limit(value: String, max: usize) -> Result<usize, QueryError> {
    value
        .parse()
        .ok()
        .filter(|limit| (1..=max).contains(limit))
        .ok_or(QueryError::TenantsLimit { value, max })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_params_table() {
        let cases: [(Option<&str>, Result<TopParams, &str>); 7] = [
            (
                None,
                Ok(TopParams {
                    by: RankBy::Errors,
                    window: Duration::ZERO,
                    limit: 10,
                }),
            ),
            (
                Some("by=error_rate&window=5m&limit=3"),
                Ok(TopParams {
                    by: RankBy::ErrorRate,
                    window: Duration::from_secs(300),
                    limit: 3,
                }),
            ),
            (
                Some("by=latency"),
                Ok(TopParams {
                    by: RankBy::Latency,
                    window: Duration::ZERO,
                    limit: 10,
                }),
            ),
            (Some("by=vibes"), Err("unknown ranking `vibes`")),
            (Some("limit=0"), Err("limit must be 1-1000")),
            (Some("window=soon"), Err("invalid window \"soon\"")),
            (Some("order=asc"), Err("unknown parameter \"order\"")),
        ];
        for (query, want) in cases {
            match (parse_top(query), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{query:?}"),
                (Err(got), Err(fragment)) => {
                    let got = got.to_string();
                    assert!(got.contains(fragment), "{query:?}: {got}")
                }
                (got, want) => panic!("{query:?}: got {got:?}, want {want:?}"),
            }
        }
    }
}
