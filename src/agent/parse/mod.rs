//! Turns one access-log line into one event in sentineld's ingest shape. Deliberately light:
//! fields are found and renamed, numbers coerced; sentineld does the real validation.

mod json;
pub mod nginx;

use serde::{Deserialize, Serialize};

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
    pub timestamp: serde_json::Value,
}

/// What became of one line.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    Event(OutEvent),
    /// A well-formed line without a tenant (health checks, requests without the header):
    /// normal traffic, skipped quietly.
    NoTenant,
    /// The line does not have the configured shape; dropped with a counter and a warning.
    Malformed(String),
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
fn status_from_text(text: &str) -> Result<i64, String> {
    text.trim()
        .parse::<i64>()
        .map_err(|_| format!("status `{}` is not a number", excerpt(text)))
}

/// A latency from numeric text; `a, b : c` (nginx, several upstreams) is summed.
fn latency_from_text(text: &str, unit: LatencyUnit) -> Result<f64, String> {
    let mut total = None;
    for part in text.split([',', ':']) {
        if let Ok(value) = part.trim().parse::<f64>() {
            total = Some(total.unwrap_or(0.0) + value);
        }
    }
    total
        .map(|value| unit.to_ms(value))
        .ok_or_else(|| format!("latency `{}` is not a number", excerpt(text)))
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
