//! Query strings of the control API: `since`, `kind`, `limit`, `after_id`, `follow`, `window`,
//! `for`, decoded by [`query_pairs`], and the precise errors a bad one gets (400).

use std::num::ParseIntError;

use thiserror::Error;

use super::routes::query_pairs;
use crate::event::Timestamp;
use crate::journal::EventQuery;
use crate::tenants::TenantsError;

/// A query string the route cannot use; answered with 400 and this message.
#[derive(Debug, Error, PartialEq)]
pub enum QueryError {
    #[error("unknown parameter \"{name}\"{}", expected_hint(.expected))]
    UnknownParameter {
        name: String,
        /// The parameters the route knows, when it says so.
        expected: Option<&'static str>,
    },
    #[error("after_id must be an integer, got \"{value}\"")]
    AfterId {
        value: String,
        #[source]
        source: ParseIntError,
    },
    #[error("limit must be a positive integer, got \"{value}\"")]
    EventsLimit {
        value: String,
        #[source]
        source: ParseIntError,
    },
    #[error("invalid since \"{0}\": expected a duration (10m), an RFC 3339 time or epoch ms")]
    Since(String),
    #[error("invalid limit=\"{value}\": expected 1 to {max}")]
    Limit { value: String, max: usize },
    #[error("limit must be 1-{max}, got \"{value}\"")]
    TenantsLimit { value: String, max: usize },
    #[error("invalid window \"{value}\": write e.g. 5m or 1h (at most the configured window)")]
    Window {
        value: String,
        #[source]
        source: humantime::DurationError,
    },
    #[error(transparent)]
    Ranking(#[from] TenantsError),
    #[error("invalid for=\"{value}\": {source} (write e.g. 30m, 2h, or 0 to lift)")]
    SilenceFor {
        value: String,
        #[source]
        source: humantime::DurationError,
    },
    #[error("missing for=DURATION (e.g. for=30m)")]
    MissingFor,
}

fn expected_hint(expected: &Option<&'static str>) -> String {
    expected.map_or_else(String::new, |names| format!(" (expected {names})"))
}

/// Query-string options of `GET /v1/events`.
#[derive(Debug, Default, PartialEq)]
pub struct EventsParams {
    pub query: EventQuery,
    pub follow: bool,
}

/// Parse `since=10m|RFC3339|epoch-ms`, `after_id=N`, `kind=a,b`, `limit=N`, `follow=1`.
pub fn parse_events_params(
    query: Option<&str>,
    now: Timestamp,
) -> Result<EventsParams, QueryError> {
    let mut params = EventsParams::default();
    for (key, value) in query_pairs(query) {
        match key.as_str() {
            "since" => params.query.since = Some(parse_since(&value, now)?),
            "after_id" => {
                params.query.after_id =
                    Some(value.parse().map_err(|source| QueryError::AfterId {
                        value: value.clone(),
                        source,
                    })?)
            }
            "kind" => {
                params.query.kinds = value
                    .split(',')
                    .filter(|k| !k.is_empty())
                    .map(String::from)
                    .collect()
            }
            "limit" => {
                params.query.limit = value.parse().map_err(|source| QueryError::EventsLimit {
                    value: value.clone(),
                    source,
                })?
            }
            "follow" => params.follow = matches!(value.as_str(), "1" | "true" | ""),
            _ => {
                return Err(QueryError::UnknownParameter {
                    name: key,
                    expected: None,
                })
            }
        }
    }
    Ok(params)
}

/// `10m` (that long ago), an RFC 3339 time, or epoch milliseconds.
pub fn parse_since(value: &str, now: Timestamp) -> Result<Timestamp, QueryError> {
    if let Ok(ago) = humantime::parse_duration(value) {
        return Ok(now.saturating_sub(ago));
    }
    if let Ok(time) = humantime::parse_rfc3339_weak(value) {
        return Ok(Timestamp::from(time));
    }
    value
        .parse::<i64>()
        .map(Timestamp)
        .map_err(|_| QueryError::Since(value.to_string()))
}

/// `for=30m` of `POST /v1/probes/{probe}/silence`; `for=0` lifts the silence.
pub fn parse_silence_for(query: Option<&str>) -> Result<std::time::Duration, QueryError> {
    let value = query_pairs(query)
        .find_map(|(key, value)| (key == "for").then_some(value))
        .ok_or(QueryError::MissingFor)?;
    if value == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    humantime::parse_duration(&value).map_err(|source| QueryError::SilenceFor { value, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_params_table() {
        let now = Timestamp(1_000_000);
        let ok = parse_events_params(Some("since=10s&kind=a,b&limit=5&follow=1&after_id=7"), now)
            .unwrap();
        assert_eq!(ok.query.since, Some(Timestamp(990_000)));
        assert_eq!(ok.query.kinds, ["a", "b"]);
        assert_eq!(ok.query.limit, 5);
        assert_eq!(ok.query.after_id, Some(7));
        assert!(ok.follow);
        assert_eq!(
            parse_events_params(None, now).unwrap(),
            EventsParams::default()
        );
        assert_eq!(
            parse_events_params(Some("since=2023-11-14T22%3A13%3A20Z"), now)
                .unwrap()
                .query
                .since,
            Some(Timestamp(1_700_000_000_000))
        );
        assert_eq!(parse_since("1234", now), Ok(Timestamp(1234)));
        for bad in ["since=yesterday", "limit=-1", "after_id=x", "bogus=1"] {
            assert!(parse_events_params(Some(bad), now).is_err(), "{bad}");
        }
    }

    #[test]
    fn messages_say_what_to_write() {
        let now = Timestamp(1_000_000);
        let cases = [
            ("bogus=1", "unknown parameter \"bogus\""),
            ("limit=-1", "limit must be a positive integer, got \"-1\""),
            ("after_id=x", "after_id must be an integer, got \"x\""),
            (
                "since=yesterday",
                "invalid since \"yesterday\": expected a duration (10m), an RFC 3339 time or epoch ms",
            ),
        ];
        for (query, message) in cases {
            let err = parse_events_params(Some(query), now).unwrap_err();
            assert_eq!(err.to_string(), message, "{query}");
        }
        // The cause is kept.
        let err = parse_events_params(Some("after_id=x"), now).unwrap_err();
        assert!(std::error::Error::source(&err).is_some());
    }

    #[test]
    fn silence_for_table() {
        use std::time::Duration;
        assert_eq!(
            parse_silence_for(Some("for=30m")),
            Ok(Duration::from_secs(1800))
        );
        assert_eq!(parse_silence_for(Some("x=1&for=0")), Ok(Duration::ZERO));
        assert_eq!(
            parse_silence_for(Some("for=1h+30m")),
            Ok(Duration::from_secs(5400))
        );
        assert_eq!(parse_silence_for(None), Err(QueryError::MissingFor));
        let err = parse_silence_for(Some("for=soon")).unwrap_err().to_string();
        assert!(err.starts_with("invalid for=\"soon\": "), "{err}");
        assert!(err.ends_with("(write e.g. 30m, 2h, or 0 to lift)"), "{err}");
    }
}
