//! `GET /v1/archives?limit=N`: evidence bundles, newest first, with upload state and location.
//! Its `limit=` parsing and answer are shared with `GET /v1/outbox`.

use std::fmt::Display;
use std::future::Future;

use hyper::{Response, StatusCode};
use serde::{Deserialize, Serialize};

use super::query::QueryError;
use super::routes::query_pairs;
use super::server::{error, json, Body};
use crate::archive::{ArchiveRecord, Archiver};

/// Most bundles one answer lists.
const MAX_LIMIT: usize = 10_000;
const DEFAULT_LIMIT: usize = 100;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArchivesResponse {
    pub archives: Vec<ArchiveRecord>,
}

pub(super) async fn get(query: Option<&str>, archiver: &Archiver) -> Response<Body> {
    listing(
        query,
        |limit| archiver.list(limit),
        |archives| ArchivesResponse { archives },
    )
    .await
}

/// The answer to a `?limit=N` listing (this one and `GET /v1/outbox`): 400 on a bad limit,
/// else the newest `limit` rows from `list` as `wrap` presents them, or 500 if the store failed.
pub(super) async fn listing<T, E, R, F>(
    query: Option<&str>,
    list: impl FnOnce(usize) -> F,
    wrap: impl FnOnce(Vec<T>) -> R,
) -> Response<Body>
where
    F: Future<Output = Result<Vec<T>, E>>,
    E: Display,
    R: Serialize,
{
    let limit = match parse_limit(query) {
        Ok(limit) => limit,
        Err(err) => return error(StatusCode::BAD_REQUEST, err.to_string()),
    };
    match list(limit).await {
        Ok(rows) => json(StatusCode::OK, &wrap(rows)),
        Err(err) => error(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()),
    }
}

fn parse_limit(query: Option<&str>) -> Result<usize, QueryError> {
    let value = query_pairs(query).find_map(|(key, value)| (key == "limit").then_some(value));
    match value.as_deref() {
        None | Some("") => Ok(DEFAULT_LIMIT),
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(QueryError::Limit {
                value: text.to_string(),
                max: MAX_LIMIT,
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_table() {
        assert_eq!(parse_limit(None), Ok(DEFAULT_LIMIT));
        assert_eq!(parse_limit(Some("limit=5")), Ok(5));
        assert_eq!(parse_limit(Some("x=1&limit=7")), Ok(7));
        assert!(parse_limit(Some("limit=0")).is_err());
        assert_eq!(
            parse_limit(Some("limit=abc")).unwrap_err().to_string(),
            "invalid limit=\"abc\": expected 1 to 10000"
        );
    }
}
