//! `GET /v1/tenants/explain?signal=&tenant=&window=&limit=`: the dimension values over-represented
//! among a scope's errors or slow requests, read from the running explainer.

use std::time::Duration;

use hyper::{Response, StatusCode};

use super::query::QueryError;
use super::routes::query_pairs;
use super::server::{error, json, Body};
use super::tenants::{parse_limit, parse_window};
use crate::event::Timestamp;
use crate::tenants::explain::{ExplainError, Signal};
use crate::tenants::{TenantService, TenantsError};

/// Most findings one answer lists.
const MAX_LIMIT: usize = 100;

#[derive(Debug, PartialEq)]
struct ExplainParams {
    signal: Signal,
    tenant: Option<String>,
    window: Duration,
    limit: usize,
}

/// `GET /v1/tenants/explain`.
pub(super) fn explain(query: Option<&str>, tenants: &TenantService) -> Response<Body> {
    let params = match parse(query) {
        Ok(params) => params,
        Err(err) => return error(StatusCode::BAD_REQUEST, err.to_string()),
    };
    let now = Timestamp::now().as_millis();
    let answer = tenants.explain().explain(
        params.tenant.as_deref(),
        params.signal,
        params.window,
        params.limit,
        now,
    );
    match answer {
        Some(Ok(explanation)) => json(StatusCode::OK, &explanation),
        Some(Err(err @ (ExplainError::NoScope(_) | ExplainError::NoDimensions))) => {
            error(StatusCode::NOT_FOUND, err.to_string())
        }
        Some(Err(err)) => error(StatusCode::BAD_REQUEST, err.to_string()),
        None => error(
            StatusCode::NOT_FOUND,
            "the tenant detector is disabled: set [tenants] enabled = true in sentineld.toml"
                .into(),
        ),
    }
}

fn parse(query: Option<&str>) -> Result<ExplainParams, QueryError> {
    let mut params = ExplainParams {
        signal: Signal::Errors,
        tenant: None,
        window: Duration::ZERO,
        limit: 10,
    };
    for (key, value) in query_pairs(query) {
        match key.as_str() {
            "signal" => params.signal = value.parse().map_err(TenantsError::from)?,
            "tenant" => params.tenant = Some(value),
            "window" => params.window = parse_window(value)?,
            "limit" => params.limit = parse_limit(value, MAX_LIMIT)?,
            _ => {
                return Err(QueryError::UnknownParameter {
                    name: key,
                    expected: Some("signal, tenant, window, limit"),
                })
            }
        }
    }
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explain_params_table() {
        let cases: [(Option<&str>, Result<ExplainParams, &str>); 5] = [
            (
                None,
                Ok(ExplainParams {
                    signal: Signal::Errors,
                    tenant: None,
                    window: Duration::ZERO,
                    limit: 10,
                }),
            ),
            (
                Some("signal=latency&tenant=acme%2Feu&window=5m&limit=3"),
                Ok(ExplainParams {
                    signal: Signal::Latency,
                    tenant: Some("acme/eu".into()),
                    window: Duration::from_secs(300),
                    limit: 3,
                }),
            ),
            (Some("signal=vibes"), Err("unknown signal `vibes`")),
            (Some("limit=101"), Err("limit must be 1-100")),
            (Some("by=errors"), Err("unknown parameter \"by\"")),
        ];
        for (query, want) in cases {
            match (parse(query), want) {
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
