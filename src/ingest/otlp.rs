//! The OTLP trace mapping: a decoded `ExportTraceServiceRequest` in, tenant events and counted
//! refusals out. Pure (no I/O, time passed in); `POST /v1/traces` decodes and records around it.
//!
//! Server spans (kind SERVER, or any span with an `http.route`) become events: the tenant from
//! the first configured attribute found on the span, then on its resource (never guessed); the
//! endpoint from `http.route`, else the normalized `url.path` / `http.target`; the status from
//! `http.response.status_code` (or the older `http.status_code`); latency from end minus start;
//! time from the end. Other spans (internal, client) are ignored, not refused.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value::Value, KeyValue};
use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, Span};

use super::parse::{check_clock, EventError, TimeLimits, MAX_ENDPOINT_BYTES, MAX_TENANT_ID_BYTES};
use crate::tenants::explain::MAX_VALUE_BYTES;
use crate::tenants::{normalize_endpoint, TenantEvent};

/// The tenant attributes looked for when `[tenants.otlp] tenant_attributes` is not set.
pub const DEFAULT_TENANT_ATTRIBUTES: [&str; 2] = ["tenant.id", "enduser.id"];

/// Endpoint attributes, most specific first: the route template, then the raw path.
const ROUTE_KEY: &str = "http.route";
const PATH_KEYS: [&str; 2] = ["url.path", "http.target"];
/// Status attributes: the stable semantic convention, then the older one.
const STATUS_KEYS: [&str; 2] = ["http.response.status_code", "http.status_code"];

/// Why a server span did not become an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanRejection {
    /// None of the configured tenant attributes on the span or its resource.
    NoTenant,
    /// A tenant attribute that is empty, too long, has control characters or is not a string
    /// or an integer.
    BadTenant,
    /// No `http.route`, `url.path` or `http.target`.
    NoEndpoint,
    /// An endpoint with control characters.
    BadEndpoint,
    /// No `http.response.status_code` / `http.status_code`.
    NoStatus,
    /// A status outside 100-599 or not a number.
    BadStatus,
    /// No end time, or an end before the start.
    BadTiming,
    /// Ended longer ago than events are accepted (`tenants.max_event_age`).
    TooOld,
    /// Ends further ahead of the daemon's clock than `tenants.max_clock_skew`.
    InFuture,
}

impl SpanRejection {
    pub const ALL: [SpanRejection; 9] = [
        Self::NoTenant,
        Self::BadTenant,
        Self::NoEndpoint,
        Self::BadEndpoint,
        Self::NoStatus,
        Self::BadStatus,
        Self::BadTiming,
        Self::TooOld,
        Self::InFuture,
    ];

    /// The stable word of metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoTenant => "no_tenant",
            Self::BadTenant => "bad_tenant",
            Self::NoEndpoint => "no_endpoint",
            Self::BadEndpoint => "bad_endpoint",
            Self::NoStatus => "no_status",
            Self::BadStatus => "bad_status",
            Self::BadTiming => "bad_timing",
            Self::TooOld => "too_old",
            Self::InFuture => "in_future",
        }
    }

    fn describe(self, tenant_keys: &[String]) -> String {
        match self {
            Self::NoTenant => format!(
                "had no tenant attribute (looked for {} on the span, then on its resource)",
                tenant_keys.join(", ")
            ),
            Self::BadTenant => format!(
                "had a tenant attribute that is not a 1-{MAX_TENANT_ID_BYTES} byte string or integer without control characters"
            ),
            Self::NoEndpoint => "had no http.route, url.path or http.target".into(),
            Self::BadEndpoint => "had an endpoint with control characters".into(),
            Self::NoStatus => {
                "had no http.response.status_code or http.status_code".into()
            }
            Self::BadStatus => "had a status code outside 100-599".into(),
            Self::BadTiming => "had no end time or ended before they started".into(),
            Self::TooOld => "ended before tenants.max_event_age".into(),
            Self::InFuture => "ended ahead of the daemon's clock by more than tenants.max_clock_skew".into(),
        }
    }

    fn index(self) -> usize {
        Self::ALL
            .iter()
            .position(|r| *r == self)
            .expect("every rejection is listed in ALL")
    }
}

/// How many server spans each reason refused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RejectionCounts([u64; SpanRejection::ALL.len()]);

impl RejectionCounts {
    pub fn add(&mut self, reason: SpanRejection) {
        self.0[reason.index()] += 1;
    }

    pub fn get(&self, reason: SpanRejection) -> u64 {
        self.0[reason.index()]
    }

    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// Each non-zero reason with its count.
    pub fn iter(&self) -> impl Iterator<Item = (SpanRejection, u64)> + '_ {
        SpanRejection::ALL
            .into_iter()
            .map(|r| (r, self.get(r)))
            .filter(|(_, n)| *n > 0)
    }
}

/// What one request's spans became.
#[derive(Debug, Default, PartialEq)]
pub struct Mapped {
    pub events: Vec<TenantEvent>,
    /// Spans that are not server spans: not for the detector, not refused either.
    pub ignored: u64,
    pub rejected: RejectionCounts,
    /// The configured dimensions each event carried (`(name, value)`), index for index.
    pub dims: Vec<Vec<(String, String)>>,
}

impl Mapped {
    /// The partial-success message: what was not used and why; `None` when nothing was refused.
    pub fn message(&self, tenant_keys: &[String]) -> Option<String> {
        let rejected = self.rejected.total();
        if rejected == 0 {
            return None;
        }
        let server = rejected + self.events.len() as u64;
        let reasons: Vec<String> = self
            .rejected
            .iter()
            .map(|(reason, n)| format!("{n} {}", reason.describe(tenant_keys)))
            .collect();
        Some(format!(
            "{rejected} of {server} server spans were not used: {}",
            reasons.join("; ")
        ))
    }
}

/// Every span of `request` judged alone. `tenant_keys` are looked for in order on the span, then
/// on its resource.
pub fn map_request(
    request: &ExportTraceServiceRequest,
    tenant_keys: &[String],
    limits: TimeLimits,
) -> Mapped {
    map_request_with_dimensions(request, tenant_keys, &[], limits)
}

/// [`map_request`], also reading each of `dimensions` from the span's attribute of that name,
/// else its resource's (a string, integer, boolean or double; other kinds, empty or overlong
/// values, or ones with control characters are left out, never refusing the span).
pub fn map_request_with_dimensions(
    request: &ExportTraceServiceRequest,
    tenant_keys: &[String],
    dimensions: &[String],
    limits: TimeLimits,
) -> Mapped {
    let mut mapped = Mapped::default();
    for resource_spans in &request.resource_spans {
        let resource: &[KeyValue] = resource_spans
            .resource
            .as_ref()
            .map_or(&[], |r| &r.attributes);
        for scope_spans in &resource_spans.scope_spans {
            for span in &scope_spans.spans {
                if !is_server_span(span) {
                    mapped.ignored += 1;
                    continue;
                }
                match map_span(span, resource, tenant_keys, limits) {
                    Ok(event) => {
                        mapped.events.push(event);
                        mapped
                            .dims
                            .push(dimension_values(span, resource, dimensions));
                    }
                    Err(reason) => mapped.rejected.add(reason),
                }
            }
        }
    }
    mapped
}

fn is_server_span(span: &Span) -> bool {
    span.kind == SpanKind::Server as i32 || attribute(&span.attributes, ROUTE_KEY).is_some()
}

fn map_span(
    span: &Span,
    resource: &[KeyValue],
    tenant_keys: &[String],
    limits: TimeLimits,
) -> Result<TenantEvent, SpanRejection> {
    let tenant_id = tenant(span, resource, tenant_keys)?;
    let endpoint = endpoint(&span.attributes)?;
    let status_code = status(&span.attributes)?;
    let (start, end) = (span.start_time_unix_nano, span.end_time_unix_nano);
    if end == 0 || end < start {
        return Err(SpanRejection::BadTiming);
    }
    let latency_ms = (end - start) as f64 / 1e6;
    let end_ms = i64::try_from(end / 1_000_000).map_err(|_| SpanRejection::InFuture)?;
    let timestamp_ms = check_clock(end_ms, limits).map_err(|err| match err {
        EventError::InFuture { .. } => SpanRejection::InFuture,
        _ => SpanRejection::TooOld,
    })?;
    Ok(TenantEvent {
        tenant_id,
        endpoint,
        status_code,
        latency_ms,
        timestamp_ms,
    })
}

fn dimension_values(span: &Span, resource: &[KeyValue], names: &[String]) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for name in names {
        let value = attribute(&span.attributes, name).or_else(|| attribute(resource, name));
        let text = match value {
            Some(Value::StringValue(text)) => text.clone(),
            Some(Value::IntValue(n)) => n.to_string(),
            Some(Value::BoolValue(b)) => b.to_string(),
            Some(Value::DoubleValue(x)) if x.is_finite() => x.to_string(),
            _ => continue,
        };
        let usable = !text.is_empty()
            && text.len() <= MAX_VALUE_BYTES
            && !text.chars().any(char::is_control);
        if usable {
            found.push((name.clone(), text));
        }
    }
    found
}

fn attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
}

/// The first configured key present on the span, else on the resource. A key present with an
/// unusable value refuses the span rather than falling through to a later key (no guessing).
fn tenant(
    span: &Span,
    resource: &[KeyValue],
    tenant_keys: &[String],
) -> Result<String, SpanRejection> {
    let found = [&span.attributes[..], resource]
        .into_iter()
        .find_map(|attrs| tenant_keys.iter().find_map(|key| attribute(attrs, key)))
        .ok_or(SpanRejection::NoTenant)?;
    let text = match found {
        Value::StringValue(text) => text.clone(),
        Value::IntValue(n) => n.to_string(),
        _ => return Err(SpanRejection::BadTenant),
    };
    let usable = !text.is_empty()
        && text.len() <= MAX_TENANT_ID_BYTES
        && !text.chars().any(char::is_control);
    usable.then_some(text).ok_or(SpanRejection::BadTenant)
}

fn endpoint(attributes: &[KeyValue]) -> Result<String, SpanRejection> {
    let raw = std::iter::once(ROUTE_KEY)
        .chain(PATH_KEYS)
        .find_map(|key| match attribute(attributes, key) {
            Some(Value::StringValue(text)) if !text.is_empty() => Some(text.as_str()),
            _ => None,
        })
        .ok_or(SpanRejection::NoEndpoint)?;
    let mut scratch = String::new();
    let endpoint = normalize_endpoint(raw, &mut scratch);
    if endpoint.is_empty() {
        return Err(SpanRejection::NoEndpoint);
    }
    if endpoint.chars().any(char::is_control) {
        return Err(SpanRejection::BadEndpoint);
    }
    debug_assert!(endpoint.len() <= MAX_ENDPOINT_BYTES);
    Ok(endpoint.to_string())
}

fn status(attributes: &[KeyValue]) -> Result<u16, SpanRejection> {
    let value = STATUS_KEYS
        .iter()
        .find_map(|key| attribute(attributes, key))
        .ok_or(SpanRejection::NoStatus)?;
    let code = match value {
        Value::IntValue(n) => *n,
        Value::StringValue(text) => text.trim().parse().map_err(|_| SpanRejection::BadStatus)?,
        _ => return Err(SpanRejection::BadStatus),
    };
    match code {
        100..=599 => Ok(code as u16),
        _ => Err(SpanRejection::BadStatus),
    }
}

#[cfg(test)]
mod tests;
