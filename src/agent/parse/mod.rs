//! Turns one access-log line into one event in sentineld's ingest shape. Deliberately light:
//! fields are found and renamed, numbers coerced; sentineld does the real validation.

mod json;
pub mod nginx;

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

        let parser = LineParser::json(
            FieldMap {
                tenant_id: "t".into(),
                endpoint: "e".into(),
                status_code: "s".into(),
                latency_ms: "l".into(),
                timestamp: "ts".into(),
            },
            LatencyUnit::Ms,
        );
        let Parsed::Malformed(reason) = parser.parse("{\"t\":", 0) else {
            panic!("not refused")
        };
        assert!(reason.to_string().starts_with("not JSON: EOF"), "{reason}");
        assert!(reason
            .source()
            .and_then(|s| s.downcast_ref::<serde_json::Error>())
            .is_some_and(serde_json::Error::is_eof));
    }
}
