//! Turns one access-log line into one event in sentineld's ingest shape. Deliberately light:
//! fields are found and renamed, numbers coerced; sentineld does the real validation.

mod json;
pub mod nginx;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Which source name (JSON key or nginx variable, without `$`) holds each event field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldMap {
    pub tenant_id: String,
    pub endpoint: String,
    pub status_code: String,
    pub latency_ms: String,
    pub timestamp: String,
    /// (dimension name, source name) for every configured dimension, in name order.
    pub dims: Vec<(String, String)>,
}

impl FieldMap {
    /// (event field, source name, required) for every field.
    pub fn entries(&self) -> [(&'static str, &str, bool); 5] {
        [
            ("tenant_id", &self.tenant_id, true),
            ("endpoint", &self.endpoint, true),
            ("status_code", &self.status_code, true),
            ("latency_ms", &self.latency_ms, true),
            ("timestamp", &self.timestamp, false),
        ]
    }
}

/// Unit of the source's latency field; events always carry milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum LatencyUnit {
    #[serde(rename = "s")]
    S,
    #[serde(rename = "ms")]
    Ms,
    #[serde(rename = "us")]
    Us,
}

impl LatencyUnit {
    fn to_ms(self, value: f64) -> f64 {
        match self {
            LatencyUnit::S => value * 1000.0,
            LatencyUnit::Ms => value,
            LatencyUnit::Us => value / 1000.0,
        }
    }
}

/// One event as sentineld's `POST /v1/events` takes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutEvent {
    pub tenant_id: String,
    pub endpoint: String,
    pub status_code: i64,
    pub latency_ms: f64,
    /// RFC 3339 text or epoch milliseconds, as the source had it; the read time when it had none
    /// (so events that waited in the disk buffer keep their real time).
    pub timestamp: Value,
    /// The configured dimensions this line has a value for that sentineld takes.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub dims: BTreeMap<String, String>,
}

impl FieldMap {
    /// The event's dimensions: each mapped source value that sentineld would take as it is
    /// (`value_of` gives None when the line has none). Dimensions are optional, so a value
    /// sentineld would refuse (too long, control characters) is left out, never the event.
    fn dims_of(&self, value_of: impl Fn(&str) -> Option<String>) -> BTreeMap<String, String> {
        self.dims
            .iter()
            .filter_map(|(name, source)| {
                let value = value_of(source)?;
                crate::ingest::is_dim_value(&value).then(|| (name.clone(), value))
            })
            .collect()
    }
}

/// What became of one line.
#[derive(Debug, PartialEq)]
pub enum Parsed {
    Event(OutEvent),
    /// A well-formed line without a tenant (health checks, requests without the header):
    /// normal traffic, skipped quietly.
    NoTenant,
    /// The line does not have the configured shape; dropped with a counter and a warning.
    Malformed(LineError),
}

/// Why a line (or a datagram's event) is dropped; the text is the reason in the agent's warning.
#[derive(Debug, thiserror::Error)]
pub enum LineError {
    #[error("not a JSON object")]
    NotAnObject,
    #[error("not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    /// A datagram line: `line` is its excerpt.
    #[error("not a JSON object ({source}): {line}")]
    NotAnObjectDatagram {
        line: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("`{field}` is not a string: {value}")]
    NotAString { field: String, value: Value },
    #[error("no `{0}` field")]
    NoField(String),
    #[error("status `{number}` is not an integer")]
    StatusNotInteger { number: serde_json::Number },
    /// `text` is an excerpt; the integer parser's error when it was text.
    #[error("status `{text}` is not a number")]
    StatusNotNumber {
        text: String,
        #[source]
        source: Option<std::num::ParseIntError>,
    },
    #[error("latency `{text}` is not a number")]
    LatencyNotNumber { text: String },
    #[error("does not match the log format")]
    NoFormatMatch,
    #[error("no status")]
    NoStatus,
    #[error("no latency")]
    NoLatency,
    #[error("time `{text}` is not like 10/Oct/2000:13:55:36 -0700")]
    TimeLocal { text: String },
    #[error("msec `{text}` is not a number")]
    Msec {
        text: String,
        #[source]
        source: Option<std::num::ParseFloatError>,
    },
}

/// Two reasons are equal when they read the same (a JSON error compares by its text).
impl PartialEq for LineError {
    fn eq(&self, other: &Self) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
            && self.to_string() == other.to_string()
    }
}

#[derive(Debug, Clone)]
pub enum LineParser {
    Json {
        fields: FieldMap,
        unit: LatencyUnit,
    },
    Nginx {
        format: nginx::LogFormat,
        fields: FieldMap,
        unit: LatencyUnit,
    },
}

impl LineParser {
    pub fn json(fields: FieldMap, unit: LatencyUnit) -> Self {
        Self::Json { fields, unit }
    }

    pub fn nginx(format: nginx::LogFormat, fields: FieldMap, unit: LatencyUnit) -> Self {
        Self::Nginx {
            format,
            fields,
            unit,
        }
    }

    /// Parse one line (without its newline); `now_ms` stamps events that carry no time.
    pub fn parse(&self, line: &str, now_ms: u64) -> Parsed {
        let line = line.strip_suffix('\r').unwrap_or(line);
        match self {
            LineParser::Json { fields, unit } => json::parse(line, fields, *unit, now_ms),
            LineParser::Nginx {
                format,
                fields,
                unit,
            } => nginx::parse(line, format, fields, *unit, now_ms),
        }
    }
}

/// A status code from a number or numeric text.
fn status_from_text(text: &str) -> Result<i64, LineError> {
    text.trim()
        .parse::<i64>()
        .map_err(|source| LineError::StatusNotNumber {
            text: excerpt(text),
            source: Some(source),
        })
}

/// A latency from numeric text; `a, b : c` (nginx, several upstreams) is summed.
fn latency_from_text(text: &str, unit: LatencyUnit) -> Result<f64, LineError> {
    let mut total = None;
    for part in text.split([',', ':']) {
        if let Ok(value) = part.trim().parse::<f64>() {
            total = Some(total.unwrap_or(0.0) + value);
        }
    }
    total
        .map(|value| unit.to_ms(value))
        .ok_or_else(|| LineError::LatencyNotNumber {
            text: excerpt(text),
        })
}

/// At most 64 characters of a value, for messages.
pub(crate) fn excerpt(text: &str) -> String {
    match text.char_indices().nth(64) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The field names in [`FieldMap::entries`] order (tenant, endpoint, status, latency, time), no
/// dimensions: the parsers' test tables.
#[cfg(test)]
fn field_map(names: [&str; 5]) -> FieldMap {
    FieldMap {
        tenant_id: names[0].into(),
        endpoint: names[1].into(),
        status_code: names[2].into(),
        latency_ms: names[3].into(),
        timestamp: names[4].into(),
        dims: Vec::new(),
    }
}

/// `pairs` as an event's `dims`, for the parsers' tables.
#[cfg(test)]
fn dims_map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error;

    /// The reason a line is dropped keeps the number parser's error, and reads as before.
    #[test]
    fn a_dropped_line_keeps_its_cause() {
        let err = status_from_text(" 2x0").unwrap_err();
        assert_eq!(err.to_string(), "status ` 2x0` is not a number");
        let cause = err.source().expect("the integer parser's error is kept");
        assert!(cause.downcast_ref::<std::num::ParseIntError>().is_some());

        let parser = LineParser::json(field_map(["t", "e", "s", "l", "ts"]), LatencyUnit::Ms);
        let Parsed::Malformed(reason) = parser.parse("{\"t\":", 0) else {
            panic!("not refused")
        };
        assert!(reason.to_string().starts_with("not JSON: EOF"), "{reason}");
        assert!(reason
            .source()
            .and_then(|s| s.downcast_ref::<serde_json::Error>())
            .is_some_and(serde_json::Error::is_eof));
        let Parsed::Event(event) = parser.parse(r#"{"t":"a","e":"/","s":200,"l":1}"#, 0) else {
            panic!("not an event")
        };
        assert!(event.dims.is_empty());
    }

    /// `dims` goes out as sentineld's JSON object, and not at all when the line had none.
    #[test]
    fn dims_are_an_object_and_omitted_when_empty() {
        let mut event = OutEvent {
            tenant_id: "a".into(),
            endpoint: "/".into(),
            status_code: 200,
            latency_ms: 1.0,
            timestamp: Value::from(5),
            dims: BTreeMap::new(),
        };
        assert_eq!(
            serde_json::to_string(&event).unwrap(),
            r#"{"tenant_id":"a","endpoint":"/","status_code":200,"latency_ms":1.0,"timestamp":5}"#
        );
        event.dims.insert("region".into(), "eu-west".into());
        event.dims.insert("plan".into(), "pro".into());
        assert_eq!(
            serde_json::to_string(&event).unwrap(),
            r#"{"tenant_id":"a","endpoint":"/","status_code":200,"latency_ms":1.0,"timestamp":5,"dims":{"plan":"pro","region":"eu-west"}}"#
        );
    }

    /// Whatever a line's dimensions hold, sentineld takes the event the agent sends, with
    /// exactly the dimensions the agent kept (the edge lengths and characters included).
    #[test]
    fn sentineld_accepts_every_event_with_its_dims() {
        let fields = FieldMap {
            dims: (0..crate::ingest::MAX_DIMS_PER_EVENT)
                .map(|i| (format!("d{i}"), format!("v{i}")))
                .collect(),
            ..field_map(["t", "e", "s", "l", "ts"])
        };
        let parser = LineParser::json(fields, LatencyUnit::Ms);
        let values = [
            "\"x\"".to_string(),
            format!("\"{}\"", "é".repeat(64)),
            format!("\"{}\"", "é".repeat(65)),
            format!("\"{}\"", "x".repeat(128)),
            format!("\"{}\"", "x".repeat(129)),
            "\"a\\u0000b\"".into(),
            "\"tab\\there\"".into(),
            "\"\\u2028 line separator\"".into(),
            "\"\u{85}next line\"".into(),
            "\"\"".into(),
            "1e400".into(),
            "-0.0".into(),
            "false".into(),
            "null".into(),
            "[]".into(),
        ];
        for value in &values {
            let pairs: Vec<String> = (0..crate::ingest::MAX_DIMS_PER_EVENT)
                .map(|i| format!(r#""v{i}":{value}"#))
                .collect();
            let line = format!(
                r#"{{"t":"a","e":"/","s":200,"l":1,"ts":1000,{}}}"#,
                pairs.join(",")
            );
            let Parsed::Event(event) = parser.parse(&line, 0) else {
                continue; // a number serde_json refuses (1e400): not an event at all
            };
            let body = serde_json::to_vec(&event).unwrap();
            let limits = crate::ingest::TimeLimits {
                now_ms: 1000,
                max_age: std::time::Duration::from_secs(60),
                max_skew: std::time::Duration::from_secs(60),
            };
            let valid = crate::ingest::parse_event(&body, limits)
                .unwrap_or_else(|err| panic!("{value}: sentineld refused it: {err}"));
            assert_eq!(valid.dims.len(), event.dims.len(), "{value}");
        }
    }
}
