//! Splits a body into events (JSON array, NDJSON, or concatenated objects) and validates each one
//! alone, so one bad event costs only itself. Borrowing: ids and endpoints point into the body.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::timestamp::parse_rfc3339_ms;
use crate::tenants::TenantEventRef;

pub const MAX_TENANT_ID_BYTES: usize = 128;
pub const MAX_ENDPOINT_BYTES: usize = 256;
/// Most keys one event's `dims` object may hold.
pub const MAX_DIMS_PER_EVENT: usize = 32;
/// The explainer owns what a dimension name and value may be; ingest and the agent check with it.
pub use crate::tenants::explain::{is_dim_name, is_dim_value};
use crate::tenants::explain::{MAX_DIMENSION_NAME_BYTES, MAX_VALUE_BYTES};

/// What the server accepts about an event's own clock.
#[derive(Debug, Clone, Copy)]
pub struct TimeLimits {
    pub now_ms: i64,
    pub max_age: Duration,
    pub max_skew: Duration,
}

/// Why one event was refused, with its position in the body.
#[derive(Debug, PartialEq, serde::Serialize)]
pub struct Rejection {
    pub index: usize,
    pub error: EventError,
}

/// Why one event is refused. Its text is the rejection's `error` in the ingest answer, byte
/// for byte, so clients that match on it keep working.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// serde's message without the position inside the one-event document; serde's error is
    /// the cause (an RFC 3339 refusal reaches it as serde's custom message).
    #[error("{message}")]
    Json {
        message: String,
        #[source]
        source: serde_json::Error,
    },
    /// A required field: `tenant_id`, `endpoint`, `status_code` or `latency_ms`.
    #[error("missing {0}")]
    Missing(&'static str),
    #[error("tenant_id must be 1-{MAX_TENANT_ID_BYTES} bytes (got {0})")]
    TenantIdLength(usize),
    #[error("tenant_id contains a control character")]
    TenantIdControl,
    #[error("endpoint must be 1-{MAX_ENDPOINT_BYTES} bytes (got {0})")]
    EndpointLength(usize),
    #[error("endpoint contains a control character")]
    EndpointControl,
    #[error("status_code {0} is outside 100-599")]
    StatusCode(i64),
    #[error("latency_ms {0} must be a finite number >= 0")]
    Latency(f64),
    /// `dims` with more keys than [`MAX_DIMS_PER_EVENT`].
    #[error("dims has {0} keys; at most {MAX_DIMS_PER_EVENT}")]
    TooManyDims(usize),
    #[error(
        "dims key {0:?} must be 1-{MAX_DIMENSION_NAME_BYTES} bytes without control characters"
    )]
    DimName(String),
    #[error("dims value of \"{0}\" must be 1-{MAX_VALUE_BYTES} bytes without control characters")]
    DimValue(String),
    #[error("timestamp {0} looks like epoch seconds: send epoch milliseconds or RFC 3339")]
    EpochSeconds(i64),
    #[error("timestamp is {} old; events older than {} are not accepted", human(.age_ms), humantime::format_duration(*.max_age))]
    TooOld { age_ms: i64, max_age: Duration },
    #[error("timestamp is {} in the future (allowed clock skew {})", human(.ahead_ms), humantime::format_duration(*.max_skew))]
    InFuture { ahead_ms: i64, max_skew: Duration },
}

/// Two refusals are equal when they read the same (serde's error compares by its text).
impl PartialEq for EventError {
    fn eq(&self, other: &Self) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
            && self.to_string() == other.to_string()
    }
}

/// As its text: the ingest answer's `error` string.
impl serde::Serialize for EventError {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// The body as a whole could not be split into events.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BodyError {
    #[error("body is empty: send a JSON object, a JSON array of objects, or NDJSON")]
    Empty,
    #[error("the JSON array is not closed: expected `]` at the end of the body")]
    UnterminatedArray,
    #[error("the JSON array is malformed near byte {0}: brackets or quotes do not balance")]
    MalformedArray(usize),
}

/// An event as written, before validation; strings borrow from the body unless escaped.
#[derive(Deserialize)]
struct RawEvent<'a> {
    #[serde(borrow, default)]
    tenant_id: Option<Text<'a>>,
    #[serde(borrow, default)]
    endpoint: Option<Text<'a>>,
    #[serde(default)]
    status_code: Option<i64>,
    #[serde(default)]
    latency_ms: Option<f64>,
    #[serde(default, deserialize_with = "epoch_ms")]
    timestamp: Option<i64>,
    /// `{"region": "eu-west", ...}`: string values only.
    #[serde(borrow, default)]
    dims: Option<Dims<'a>>,
}

/// A JSON object of strings, in order; keys past [`MAX_DIMS_PER_EVENT`] are counted, not kept.
#[derive(Default)]
struct Dims<'a> {
    pairs: Vec<(Text<'a>, Text<'a>)>,
    keys: usize,
}

impl<'de: 'a, 'a> Deserialize<'de> for Dims<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DimsVisitor;
        impl<'de> serde::de::Visitor<'de> for DimsVisitor {
            type Value = Dims<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of string values, e.g. {\"region\": \"eu-west\"}")
            }

            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut map: M,
            ) -> Result<Self::Value, M::Error> {
                let mut dims = Dims::default();
                while let Some((name, value)) = map.next_entry::<Text<'de>, Text<'de>>()? {
                    dims.keys += 1;
                    if dims.pairs.len() < MAX_DIMS_PER_EVENT {
                        dims.pairs.push((name, value));
                    }
                }
                Ok(dims)
            }
        }
        deserializer.deserialize_map(DimsVisitor)
    }
}

/// A string that borrows from the body unless it had escapes. (serde borrows a bare `Cow` field
/// but not one inside an `Option`, and an allocation per string would halve ingest throughput.)
struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> serde::de::Visitor<'de> for TextVisitor {
            type Value = Text<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E: serde::de::Error>(
                self,
                text: &'de str,
            ) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(text)))
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(text.to_string())))
            }
        }
        deserializer.deserialize_str(TextVisitor)
    }
}

/// A validated event that still borrows from the body.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidEvent<'a> {
    pub tenant_id: Cow<'a, str>,
    pub endpoint: Cow<'a, str>,
    pub status_code: u16,
    pub latency_ms: f64,
    pub timestamp_ms: i64,
    /// `(name, value)` as sent (names not configured are ignored by the explainer).
    pub dims: Vec<(Cow<'a, str>, Cow<'a, str>)>,
}

impl ValidEvent<'_> {
    pub fn as_ref(&self) -> TenantEventRef<'_> {
        TenantEventRef {
            tenant_id: &self.tenant_id,
            endpoint: &self.endpoint,
            status_code: self.status_code,
            latency_ms: self.latency_ms,
            timestamp_ms: self.timestamp_ms,
        }
    }
}

/// Every event of `body` judged alone: the valid ones and the refusals, by index.
pub fn parse_body<'a>(
    body: &'a [u8],
    hard_newlines: bool,
    limits: TimeLimits,
) -> Result<(Vec<ValidEvent<'a>>, Vec<Rejection>), BodyError> {
    let pieces = split_body(body, hard_newlines)?;
    let mut events = Vec::with_capacity(pieces.len());
    let mut rejections = Vec::new();
    for (index, piece) in pieces.into_iter().enumerate() {
        match parse_event(piece, limits) {
            Ok(event) => events.push(event),
            Err(error) => rejections.push(Rejection { index, error }),
        }
    }
    Ok((events, rejections))
}

/// One event from its JSON bytes.
pub fn parse_event(bytes: &[u8], limits: TimeLimits) -> Result<ValidEvent<'_>, EventError> {
    let raw: RawEvent<'_> = serde_json::from_slice(bytes).map_err(|err| EventError::Json {
        message: describe_json_error(&err),
        source: err,
    })?;
    let tenant_id = raw.tenant_id.ok_or(EventError::Missing("tenant_id"))?.0;
    if tenant_id.is_empty() || tenant_id.len() > MAX_TENANT_ID_BYTES {
        return Err(EventError::TenantIdLength(tenant_id.len()));
    }
    if tenant_id.chars().any(char::is_control) {
        return Err(EventError::TenantIdControl);
    }
    let endpoint = raw.endpoint.ok_or(EventError::Missing("endpoint"))?.0;
    if endpoint.is_empty() || endpoint.len() > MAX_ENDPOINT_BYTES {
        return Err(EventError::EndpointLength(endpoint.len()));
    }
    if endpoint.chars().any(char::is_control) {
        return Err(EventError::EndpointControl);
    }
    let status_code = match raw.status_code {
        None => return Err(EventError::Missing("status_code")),
        Some(code @ 100..=599) => code as u16,
        Some(code) => return Err(EventError::StatusCode(code)),
    };
    let latency_ms = match raw.latency_ms {
        None => return Err(EventError::Missing("latency_ms")),
        Some(ms) if ms.is_finite() && ms >= 0.0 => ms,
        Some(ms) => return Err(EventError::Latency(ms)),
    };
    let timestamp_ms = match raw.timestamp {
        None => limits.now_ms,
        Some(ms) => check_clock(ms, limits)?,
    };
    let dims = raw.dims.unwrap_or_default();
    if dims.keys > MAX_DIMS_PER_EVENT {
        return Err(EventError::TooManyDims(dims.keys));
    }
    let dims = dims.pairs;
    let mut checked = Vec::with_capacity(dims.len());
    for (name, value) in dims {
        if !is_dim_name(&name.0) {
            return Err(EventError::DimName(name.0.chars().take(80).collect()));
        }
        if !is_dim_value(&value.0) {
            return Err(EventError::DimValue(name.0.into_owned()));
        }
        checked.push((name.0, value.0));
    }
    Ok(ValidEvent {
        tenant_id,
        endpoint,
        status_code,
        latency_ms,
        timestamp_ms,
        dims: checked,
    })
}

pub(super) fn check_clock(ms: i64, limits: TimeLimits) -> Result<i64, EventError> {
    let age_ms = limits.now_ms.saturating_sub(ms);
    if age_ms > limits.max_age.as_millis() as i64 {
        if (0..100_000_000_000).contains(&ms) {
            return Err(EventError::EpochSeconds(ms));
        }
        return Err(EventError::TooOld {
            age_ms,
            max_age: limits.max_age,
        });
    }
    if -age_ms > limits.max_skew.as_millis() as i64 {
        return Err(EventError::InFuture {
            ahead_ms: -age_ms,
            max_skew: limits.max_skew,
        });
    }
    Ok(ms)
}

fn human(ms: &i64) -> humantime::FormattedDuration {
    humantime::format_duration(Duration::from_secs((*ms / 1000).max(0) as u64))
}

/// serde's message without the position inside a one-event document (the index says where).
fn describe_json_error(err: &serde_json::Error) -> String {
    let text = err.to_string();
    let message = match text.rfind(" at line ") {
        Some(at) => &text[..at],
        None => &text,
    };
    match err.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
            format!("invalid JSON: {message} (column {})", err.column())
        }
        _ => message.to_string(),
    }
}

/// Accepts RFC 3339 text or epoch milliseconds (integer, or a float with no fraction to lose).
fn epoch_ms<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    struct TimestampVisitor;
    impl serde::de::Visitor<'_> for TimestampVisitor {
        type Value = Option<i64>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an RFC 3339 timestamp or epoch milliseconds")
        }

        fn visit_i64<E: serde::de::Error>(self, ms: i64) -> Result<Self::Value, E> {
            Ok(Some(ms))
        }

        fn visit_u64<E: serde::de::Error>(self, ms: u64) -> Result<Self::Value, E> {
            i64::try_from(ms)
                .map(Some)
                .map_err(|_| E::custom(format!("timestamp {ms} is out of range")))
        }

        fn visit_f64<E: serde::de::Error>(self, ms: f64) -> Result<Self::Value, E> {
            match ms.is_finite() && ms.abs() < 1e15 {
                true => Ok(Some(ms.round() as i64)),
                false => Err(E::custom(format!("timestamp {ms} is out of range"))),
            }
        }

        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Self::Value, E> {
            parse_rfc3339_ms(text).map(Some).map_err(E::custom)
        }

        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    deserializer.deserialize_any(TimestampVisitor)
}

/// The byte ranges of the body's events. An array is split at its top-level commas; anything
/// else is a sequence of values, split at newlines when the client promised NDJSON and by
/// bracket matching otherwise (so a pretty-printed single object works too).
fn split_body(body: &[u8], hard_newlines: bool) -> Result<Vec<&[u8]>, BodyError> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let start = body
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .ok_or(BodyError::Empty)?;
    if body[start] == b'[' {
        return split_array(body, start);
    }
    if hard_newlines {
        return Ok(body
            .split(|&b| b == b'\n')
            .filter(|line| line.iter().any(|b| !b.is_ascii_whitespace()))
            .collect());
    }
    Ok(split_values(&body[start..]))
}

/// Top-level values by bracket depth; a value that never closes runs to the end of the body.
fn split_values(body: &[u8]) -> Vec<&[u8]> {
    let mut pieces = Vec::new();
    let mut scanner = Scanner::default();
    let mut start = None;
    for (at, &byte) in body.iter().enumerate() {
        if start.is_none() {
            if byte.is_ascii_whitespace() {
                continue;
            }
            start = Some(at);
        }
        scanner.step(byte);
        let bare_value_ends =
            scanner.depth == 0 && !scanner.in_string && byte.is_ascii_whitespace();
        // A stray closing bracket ends its piece too (it will be refused as invalid JSON).
        let stray_close = scanner.depth < 0;
        if scanner.closed_top_level() || bare_value_ends || stray_close {
            pieces.push(&body[start.take().expect("inside a value")..=at]);
            scanner = Scanner::default();
        }
    }
    if let Some(start) = start {
        pieces.push(&body[start..]);
    }
    pieces
}

fn split_array(body: &[u8], open: usize) -> Result<Vec<&[u8]>, BodyError> {
    let end = body
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .filter(|&end| end > open && body[end] == b']')
        .ok_or(BodyError::UnterminatedArray)?;
    let inner = &body[open + 1..end];
    let mut pieces = Vec::new();
    let mut scanner = Scanner::default();
    let mut start = 0;
    for (at, &byte) in inner.iter().enumerate() {
        if byte == b',' && scanner.depth == 0 && !scanner.in_string {
            pieces.push(&inner[start..at]);
            start = at + 1;
            continue;
        }
        scanner.step(byte);
        if scanner.depth < 0 {
            return Err(BodyError::MalformedArray(open + 1 + at));
        }
    }
    if scanner.depth != 0 || scanner.in_string {
        return Err(BodyError::MalformedArray(end));
    }
    let last = &inner[start..];
    let last_is_blank = last.iter().all(u8::is_ascii_whitespace);
    if !(last_is_blank && pieces.is_empty()) {
        pieces.push(last);
    }
    Ok(pieces)
}

/// Tracks strings and bracket depth byte by byte; enough to find where a JSON value ends.
#[derive(Default)]
struct Scanner {
    depth: i64,
    in_string: bool,
    escaped: bool,
    just_closed: bool,
}

impl Scanner {
    fn step(&mut self, byte: u8) {
        self.just_closed = false;
        if self.in_string {
            match (self.escaped, byte) {
                (true, _) => self.escaped = false,
                (false, b'\\') => self.escaped = true,
                (false, b'"') => self.in_string = false,
                _ => {}
            }
            return;
        }
        match byte {
            b'"' => self.in_string = true,
            b'{' | b'[' => self.depth += 1,
            b'}' | b']' => {
                self.depth -= 1;
                self.just_closed = self.depth == 0;
            }
            _ => {}
        }
    }

    fn closed_top_level(&self) -> bool {
        self.just_closed
    }
}

#[cfg(test)]
mod tests;
