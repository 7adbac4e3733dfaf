//! `POST /v1/events` and `POST /v1/traces` (OTLP) on the public listener: bodies in, validated
//! tenant events out to the detector. Bounded in body size, requests in flight and read time.

pub mod otlp;
mod parse;
mod timestamp;
mod traces;

use std::io::Read as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{HeaderMap, HeaderValue};
use hyper::{Request, Response, StatusCode};
use serde::Serialize;

pub use parse::{
    is_dim_name, is_dim_value, parse_body, parse_event, BodyError, EventError, Rejection,
    TimeLimits, ValidEvent, MAX_DIMS_PER_EVENT, MAX_ENDPOINT_BYTES, MAX_TENANT_ID_BYTES,
};
pub use timestamp::{parse_rfc3339_ms, TimestampError};
pub use traces::OtlpEncoding;

use crate::event::Timestamp;
use crate::metrics::{Kind, MetricsSource, MetricsText};
use crate::tenants::{TenantEvent, TenantService};
use traces::OtlpCounters;

/// A slow client gets this long to send its whole body, then 408.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// At most this many rejections are listed one by one; the count covers all of them.
const MAX_LISTED_REJECTIONS: usize = 1000;

/// Ingest limits and tokens; replaced whole on reload.
#[derive(Debug, Clone, PartialEq)]
pub struct IngestSettings {
    pub tokens: Vec<String>,
    pub max_body: usize,
    pub max_concurrent_requests: usize,
    pub max_event_age: Duration,
    pub max_clock_skew: Duration,
    /// OTLP span (then resource) attributes that name the tenant, in order.
    pub otlp_tenant_attributes: Vec<String>,
    /// `[tenants] dimensions`: read from OTLP span (then resource) attributes of these names.
    pub dimensions: Vec<String>,
}

impl Default for IngestSettings {
    fn default() -> Self {
        Self {
            tokens: Vec::new(),
            max_body: 8 << 20,
            max_concurrent_requests: 16,
            max_event_age: Duration::from_secs(600),
            max_clock_skew: Duration::from_secs(300),
            otlp_tenant_attributes: otlp::DEFAULT_TENANT_ATTRIBUTES.map(String::from).to_vec(),
            dimensions: Vec::new(),
        }
    }
}

/// Cloneable handle shared by every connection of the public listener.
#[derive(Debug, Clone, Default)]
pub struct Ingest {
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    settings: RwLock<IngestSettings>,
    in_flight: AtomicUsize,
    counters: Counters,
    otlp: OtlpCounters,
}

/// Requests by how they ended, and events by verdict: what `/metrics` shows.
#[derive(Debug, Default)]
struct Counters {
    accepted_requests: AtomicU64,
    busy: AtomicU64,
    too_large: AtomicU64,
    unauthorized: AtomicU64,
    bad_request: AtomicU64,
    disabled: AtomicU64,
    timed_out: AtomicU64,
    events_accepted: AtomicU64,
    events_rejected: AtomicU64,
}

#[derive(Serialize)]
struct Verdict<'a> {
    accepted: usize,
    rejected: &'a [Rejection],
    /// All rejections, also those beyond the listed ones.
    rejected_count: usize,
}

type Reply = Response<Full<Bytes>>;

/// A body both routes admitted, still holding its slot.
struct Received<'a> {
    body: Bytes,
    gzip: bool,
    headers: HeaderMap,
    settings: IngestSettings,
    _slot: InFlight<'a>,
}

/// A request refused before its events were recorded: the status and why.
struct Refused {
    status: StatusCode,
    message: String,
}

impl Refused {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// The `/v1/events` answer: `{"error": ...}`.
    fn json(self) -> Reply {
        let mut reply = error(self.status, &self.message);
        advise(&mut reply);
        reply
    }

    /// The `/v1/traces` answer: a `google.rpc.Status` in the request's encoding.
    fn otlp(self, encoding: OtlpEncoding) -> Reply {
        let mut reply = encoding.error(self.status, &self.message);
        advise(&mut reply);
        reply
    }
}

/// What a client needs next: the scheme to authenticate with, or when to retry.
fn advise(reply: &mut Reply) {
    let (name, value) = match reply.status() {
        StatusCode::UNAUTHORIZED => (hyper::header::WWW_AUTHENTICATE, "Bearer"),
        StatusCode::TOO_MANY_REQUESTS => (hyper::header::RETRY_AFTER, "1"),
        _ => return,
    };
    reply
        .headers_mut()
        .insert(name, HeaderValue::from_static(value));
}

/// Gives its slot back when the request ends, however it ends.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Ingest {
    pub fn configure(&self, settings: IngestSettings) {
        *self
            .shared
            .settings
            .write()
            .unwrap_or_else(|p| p.into_inner()) = settings;
    }

    fn settings(&self) -> IngestSettings {
        self.shared
            .settings
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Answers one `POST /v1/events`.
    pub async fn handle<B>(&self, request: Request<B>, tenants: &TenantService) -> Reply
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let received = match self.receive(request, tenants).await {
            Ok(received) => received,
            Err(refused) => return refused.json(),
        };
        let counters = &self.shared.counters;
        let Received {
            body,
            gzip,
            headers,
            settings,
            _slot,
        } = received;
        let hard_newlines = headers
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("ndjson"));
        let tenants = tenants.clone();
        let limits = TimeLimits {
            now_ms: Timestamp::now().as_millis(),
            max_age: settings.max_event_age,
            max_skew: settings.max_clock_skew,
        };
        let max_body = settings.max_body;
        // Decoding and parsing are CPU work: off the runtime's worker threads.
        let outcome = crate::panic_policy::run_blocking(move || {
            let body = match gzip {
                true => gunzip(&body, max_body)?,
                false => body,
            };
            let (events, rejections) = parse_body(&body, hard_newlines, limits)
                .map_err(|e| Refusal::BadBody(e.to_string()))?;
            let accepted = events.len();
            tenants
                .record_batch(events.iter().map(ValidEvent::as_ref), limits.now_ms)
                .ok_or(Refusal::Disabled)?;
            let explained = events.iter().map(|e| (e.as_ref(), &e.dims[..]));
            tenants.explain().record_batch(explained, limits.now_ms);
            Ok::<_, Refusal>((accepted, rejections))
        })
        .await;
        match outcome {
            Ok((accepted, rejections)) => {
                counters.accepted_requests.fetch_add(1, Ordering::Relaxed);
                counters
                    .events_accepted
                    .fetch_add(accepted as u64, Ordering::Relaxed);
                counters
                    .events_rejected
                    .fetch_add(rejections.len() as u64, Ordering::Relaxed);
                let listed = &rejections[..rejections.len().min(MAX_LISTED_REJECTIONS)];
                let verdict = Verdict {
                    accepted,
                    rejected: listed,
                    rejected_count: rejections.len(),
                };
                json(StatusCode::OK, &verdict)
            }
            Err(refusal) => self.refused(refusal, max_body).json(),
        }
    }

    /// Answers one `POST /v1/traces` (OTLP/HTTP, protobuf or JSON): server spans become tenant
    /// events ([`otlp`]); the answer is an `ExportTraceServiceResponse` in the request's encoding,
    /// with a partial success naming the spans not used.
    pub async fn handle_otlp<B>(&self, request: Request<B>, tenants: &TenantService) -> Reply
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let Some(encoding) = OtlpEncoding::of(request.headers()) else {
            self.shared
                .counters
                .bad_request
                .fetch_add(1, Ordering::Relaxed);
            return Refused::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported Content-Type: send application/x-protobuf or application/json (OTLP/HTTP)",
            )
            .json();
        };
        let received = match self.receive(request, tenants).await {
            Ok(received) => received,
            Err(refused) => return refused.otlp(encoding),
        };
        let Received {
            body,
            gzip,
            settings,
            _slot,
            ..
        } = received;
        let tenants = tenants.clone();
        let limits = TimeLimits {
            now_ms: Timestamp::now().as_millis(),
            max_age: settings.max_event_age,
            max_skew: settings.max_clock_skew,
        };
        let max_body = settings.max_body;
        let keys = settings.otlp_tenant_attributes;
        let dimensions = settings.dimensions;
        let outcome = crate::panic_policy::run_blocking(move || {
            let body = match gzip {
                true => gunzip(&body, max_body)?,
                false => body,
            };
            let request = encoding.decode(&body)?;
            let mapped = otlp::map_request_with_dimensions(&request, &keys, &dimensions, limits);
            tenants
                .record_batch(mapped.events.iter().map(TenantEvent::as_ref), limits.now_ms)
                .ok_or(Refusal::Disabled)?;
            let explained = mapped.events.iter().zip(&mapped.dims);
            let explained = explained.map(|(e, dims)| (e.as_ref(), &dims[..]));
            tenants.explain().record_batch(explained, limits.now_ms);
            let message = mapped.message(&keys);
            Ok::<_, Refusal>((mapped, message))
        })
        .await;
        match outcome {
            Ok((mapped, message)) => {
                let counters = &self.shared.counters;
                counters.accepted_requests.fetch_add(1, Ordering::Relaxed);
                counters
                    .events_accepted
                    .fetch_add(mapped.events.len() as u64, Ordering::Relaxed);
                counters
                    .events_rejected
                    .fetch_add(mapped.rejected.total(), Ordering::Relaxed);
                self.shared.otlp.count(&mapped);
                encoding.answer(mapped.rejected.total(), message)
            }
            Err(refusal) => self.refused(refusal, max_body).otlp(encoding),
        }
    }

    /// What both routes check before the body is theirs: enabled, token, a free slot, an
    /// encoding we decode, and the body itself within its size and time bounds.
    async fn receive<B>(
        &self,
        request: Request<B>,
        tenants: &TenantService,
    ) -> Result<Received<'_>, Refused>
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let counters = &self.shared.counters;
        let settings = self.settings();
        if !tenants.is_enabled() {
            counters.disabled.fetch_add(1, Ordering::Relaxed);
            return Err(Refused::new(
                StatusCode::NOT_FOUND,
                "tenant ingest is disabled: set [tenants] enabled = true in sentineld.toml",
            ));
        }
        if !authorized(request.headers(), &settings.tokens) {
            counters.unauthorized.fetch_add(1, Ordering::Relaxed);
            return Err(Refused::new(
                StatusCode::UNAUTHORIZED,
                "missing or unknown bearer token: send Authorization: Bearer TOKEN",
            ));
        }
        let Some(slot) = self.admit(settings.max_concurrent_requests) else {
            counters.busy.fetch_add(1, Ordering::Relaxed);
            return Err(Refused::new(
                StatusCode::TOO_MANY_REQUESTS,
                "ingest is at its limit of concurrent requests; retry with backoff",
            ));
        };
        let headers = request.headers().clone();
        let Some(gzip) = content_encoding(&headers) else {
            counters.bad_request.fetch_add(1, Ordering::Relaxed);
            return Err(Refused::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported Content-Encoding: send gzip or no encoding",
            ));
        };
        let declared = headers
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
        if declared.is_some_and(|length| length > settings.max_body) {
            return Err(self.refused(Refusal::TooLarge, settings.max_body));
        }
        let limited = Limited::new(request.into_body(), settings.max_body);
        let body = match tokio::time::timeout(BODY_TIMEOUT, limited.collect()).await {
            Err(_) => {
                counters.timed_out.fetch_add(1, Ordering::Relaxed);
                return Err(Refused::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "the body did not arrive within 30 s",
                ));
            }
            Ok(Err(err)) if err.is::<http_body_util::LengthLimitError>() => {
                return Err(self.refused(Refusal::TooLarge, settings.max_body))
            }
            Ok(Err(err)) => {
                counters.bad_request.fetch_add(1, Ordering::Relaxed);
                return Err(Refused::new(
                    StatusCode::BAD_REQUEST,
                    format!("cannot read the body: {err}"),
                ));
            }
            Ok(Ok(collected)) => collected.to_bytes(),
        };
        Ok(Received {
            body,
            gzip,
            headers,
            settings,
            _slot: slot,
        })
    }

    /// Counts a refusal found while decoding and says it.
    fn refused(&self, refusal: Refusal, max_body: usize) -> Refused {
        let counters = &self.shared.counters;
        match refusal {
            Refusal::TooLarge => {
                counters.too_large.fetch_add(1, Ordering::Relaxed);
                Refused::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!(
                        "body larger than {max_body} bytes (tenants.ingest.max_body); send smaller batches"
                    ),
                )
            }
            Refusal::BadBody(message) => {
                counters.bad_request.fetch_add(1, Ordering::Relaxed);
                Refused::new(StatusCode::BAD_REQUEST, message)
            }
            Refusal::Disabled => Refused::new(
                StatusCode::NOT_FOUND,
                "tenant ingest was disabled while this request was read",
            ),
        }
    }

    fn admit(&self, limit: usize) -> Option<InFlight<'_>> {
        let in_flight = &self.shared.in_flight;
        let before = in_flight.fetch_add(1, Ordering::AcqRel);
        let slot = InFlight(in_flight);
        (before < limit).then_some(slot)
    }
}

impl MetricsSource for Ingest {
    fn render_metrics(&self, out: &mut MetricsText) {
        let c = &self.shared.counters;
        let name = "sentinel_ingest_requests_total";
        out.family(name, Kind::Counter, "Ingest requests by outcome.");
        let outcomes = [
            ("accepted", &c.accepted_requests),
            ("busy", &c.busy),
            ("too_large", &c.too_large),
            ("unauthorized", &c.unauthorized),
            ("bad_request", &c.bad_request),
            ("disabled", &c.disabled),
            ("timed_out", &c.timed_out),
        ];
        for (outcome, value) in outcomes {
            let value = value.load(Ordering::Relaxed);
            out.sample(name, &[("outcome", outcome)], value);
        }
        out.single(
            "sentinel_ingest_requests_in_flight",
            Kind::Gauge,
            "Ingest requests being read or recorded now.",
            self.shared.in_flight.load(Ordering::Relaxed),
        );
        let name = "sentinel_ingest_events_total";
        out.family(name, Kind::Counter, "Ingested events by verdict.");
        for (verdict, value) in [
            ("accepted", &c.events_accepted),
            ("rejected", &c.events_rejected),
        ] {
            let value = value.load(Ordering::Relaxed);
            out.sample(name, &[("verdict", verdict)], value);
        }
        self.shared.otlp.render(out);
    }
}

pub(crate) enum Refusal {
    TooLarge,
    BadBody(String),
    Disabled,
}

/// The decoded body, refused past `max_body` decoded bytes (a gzip bomb stops there).
pub(crate) fn gunzip(body: &[u8], max_body: usize) -> Result<Bytes, Refusal> {
    let mut decoded = Vec::with_capacity(body.len().saturating_mul(4).min(max_body));
    flate2::read::MultiGzDecoder::new(body)
        .take(max_body as u64 + 1)
        .read_to_end(&mut decoded)
        .map_err(|err| Refusal::BadBody(format!("invalid gzip body: {err}")))?;
    match decoded.len() > max_body {
        true => Err(Refusal::TooLarge),
        false => Ok(Bytes::from(decoded)),
    }
}

/// `Some(true)` for gzip, `Some(false)` for none, `None` for an encoding we do not decode.
fn content_encoding(headers: &HeaderMap) -> Option<bool> {
    let Some(value) = headers.get(hyper::header::CONTENT_ENCODING) else {
        return Some(false);
    };
    match value.to_str().map(|v| v.trim().to_ascii_lowercase()) {
        Ok(v) if v == "gzip" || v == "x-gzip" => Some(true),
        Ok(v) if v == "identity" => Some(false),
        _ => None,
    }
}

/// True when no ingest tokens are configured or the request carries one of them (read tokens
/// of `[http]` never count here).
fn authorized(headers: &HeaderMap, tokens: &[String]) -> bool {
    tokens.is_empty() || crate::http::access::bearer_matches(headers, tokens)
}

fn json(status: StatusCode, value: &impl Serialize) -> Reply {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    Response::builder()
        .status(status)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("static response parts are valid")
}

fn error(status: StatusCode, message: &str) -> Reply {
    json(status, &serde_json::json!({ "error": message }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens() {
        let tokens = vec!["alpha".to_string(), "beta".to_string()];
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(
                hyper::header::AUTHORIZATION,
                HeaderValue::from_str(value).unwrap(),
            );
            headers
        };
        assert!(authorized(&HeaderMap::new(), &[]));
        assert!(!authorized(&HeaderMap::new(), &tokens));
        assert!(authorized(&with("Bearer beta"), &tokens));
        assert!(!authorized(&with("Bearer gamma"), &tokens));
        assert!(!authorized(&with("Bearer bet"), &tokens));
        assert!(!authorized(&with("Basic YWxwaGE="), &tokens));
    }

    #[test]
    fn gzip_is_bounded_after_decoding() {
        use flate2::{write::GzEncoder, Compression};
        use std::io::Write;
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(&vec![b' '; 10_000]).unwrap();
        let compressed = encoder.finish().unwrap();
        assert!(compressed.len() < 1000);
        assert_eq!(
            gunzip(&compressed, 10_000).ok().map(|b| b.len()),
            Some(10_000)
        );
        assert!(matches!(gunzip(&compressed, 9_999), Err(Refusal::TooLarge)));
        assert!(matches!(gunzip(b"not gzip", 100), Err(Refusal::BadBody(_))));
    }
}
