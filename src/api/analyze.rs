//! `GET /v1/analyze?since=7d`: failure patterns over the journal, computed on request from the
//! events of the kinds the analysis reads; `/v1/analyze/summary` adds the optional AI summary.

use std::time::Duration;

use hyper::{Response, StatusCode};

use super::query::{parse_since, QueryError};
use super::routes::query_pairs;
use super::server::{error, json, ApiState, Body};
use crate::analyze::{analyze, Analysis, Range, ANALYZED_KINDS};
use crate::event::Timestamp;
use crate::journal::{EventQuery, Journal};

/// What `since` defaults to: the last day.
pub const DEFAULT_SINCE: Duration = Duration::from_secs(24 * 3600);

pub(super) async fn get(query: Option<&str>, journal: &Journal) -> Response<Body> {
    match compute(query, journal).await {
        Ok(analysis) => json(StatusCode::OK, &analysis),
        Err(response) => response,
    }
}

/// `GET /v1/analyze/summary?since=7d`: the analysis, summarized by the optional AI endpoint.
pub(super) async fn summary(query: Option<&str>, state: &ApiState) -> Response<Body> {
    match compute(query, &state.journal).await {
        Ok(analysis) => {
            super::report::summarize(state, "failure-pattern analysis", &analysis).await
        }
        Err(response) => response,
    }
}

async fn compute(query: Option<&str>, journal: &Journal) -> Result<Analysis, Response<Body>> {
    let now = Timestamp::now();
    let since = match parse_params(query, now) {
        Ok(since) => since,
        Err(err) => return Err(error(StatusCode::BAD_REQUEST, err.to_string())),
    };
    let query = EventQuery {
        since: Some(since),
        after_id: None,
        until: None,
        kinds: ANALYZED_KINDS.iter().map(|k| k.to_string()).collect(),
        limit: EventQuery::MAX_LIMIT,
    };
    match journal.query(query).await {
        Ok(events) => {
            let mut analysis = analyze(&events, Range { since, until: now });
            analysis.truncated = events.len() >= EventQuery::MAX_LIMIT;
            Ok(analysis)
        }
        Err(err) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, err.to_string())),
    }
}

fn parse_params(query: Option<&str>, now: Timestamp) -> Result<Timestamp, QueryError> {
    let mut since = now.saturating_sub(DEFAULT_SINCE);
    for (key, value) in query_pairs(query) {
        match key.as_str() {
            "since" => since = parse_since(&value, now)?,
            _ => {
                return Err(QueryError::UnknownParameter {
                    name: key,
                    expected: Some("since"),
                })
            }
        }
    }
    Ok(since)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_table() {
        let now = Timestamp(10 * 86_400_000);
        let day = 86_400_000;
        let cases = [
            (None, Ok(now.0 - day)),
            (Some("since=7d"), Ok(now.0 - 7 * day)),
            (Some("since=1h"), Ok(now.0 - 3_600_000)),
            (Some("since=soon"), Err("invalid since \"soon\"")),
            (Some("until=1h"), Err("unknown parameter \"until\"")),
        ];
        for (query, want) in cases {
            match (parse_params(query, now), want) {
                (Ok(got), Ok(want)) => assert_eq!(got.0, want, "{query:?}"),
                (Err(got), Err(fragment)) => {
                    assert!(got.to_string().contains(fragment), "{query:?}: {got}")
                }
                (got, want) => panic!("{query:?}: got {got:?}, want {want:?}"),
            }
        }
    }
}
