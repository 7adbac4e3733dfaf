//! The wire side of `POST /v1/traces`: which OTLP encoding a request uses, decoding its body, and
//! answers in that same encoding (`ExportTraceServiceResponse`, or a `google.rpc.Status` on error).

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderMap, HeaderValue};
use hyper::{Response, StatusCode};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message as _;

use super::otlp::{Mapped, SpanRejection};
use super::{Refusal, Reply};
use crate::metrics::{Kind, MetricsText};

/// The two encodings OTLP/HTTP defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpEncoding {
    Protobuf,
    Json,
}

impl OtlpEncoding {
    /// From `Content-Type` (parameters such as `; charset=utf-8` ignored); `None` for any other.
    pub fn of(headers: &HeaderMap) -> Option<Self> {
        let value = headers.get(hyper::header::CONTENT_TYPE)?.to_str().ok()?;
        let media = value.split(';').next()?.trim().to_ascii_lowercase();
        match media.as_str() {
            "application/x-protobuf" | "application/protobuf" => Some(Self::Protobuf),
            "application/json" => Some(Self::Json),
            _ => None,
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Self::Protobuf => "application/x-protobuf",
            Self::Json => "application/json",
        }
    }

    pub(super) fn decode(self, body: &[u8]) -> Result<ExportTraceServiceRequest, Refusal> {
        match self {
            Self::Protobuf => ExportTraceServiceRequest::decode(body).map_err(|err| {
                Refusal::BadBody(format!(
                    "invalid OTLP protobuf ExportTraceServiceRequest: {err}"
                ))
            }),
            Self::Json => serde_json::from_slice(body).map_err(|err| {
                Refusal::BadBody(format!(
                    "invalid OTLP JSON ExportTraceServiceRequest: {err}"
                ))
            }),
        }
    }

    /// 200 with an `ExportTraceServiceResponse`: a partial success when spans were refused.
    pub(super) fn answer(self, rejected: u64, message: Option<String>) -> Reply {
        let body = match self {
            Self::Protobuf => ExportTraceServiceResponse {
                partial_success: message.map(|error_message| ExportTracePartialSuccess {
                    rejected_spans: rejected as i64,
                    error_message,
                }),
            }
            .encode_to_vec(),
            // Written by hand for OTLP's JSON mapping: int64 as a decimal string.
            Self::Json => {
                let value = match message {
                    Some(message) => serde_json::json!({
                        "partialSuccess": {
                            "rejectedSpans": rejected.to_string(),
                            "errorMessage": message,
                        }
                    }),
                    None => serde_json::json!({}),
                };
                serde_json::to_vec(&value).unwrap_or_else(|_| b"{}".to_vec())
            }
        };
        self.reply(StatusCode::OK, body)
    }

    /// An error answer: `google.rpc.Status` with the message, in this encoding.
    pub(super) fn error(self, status: StatusCode, message: &str) -> Reply {
        let code = grpc_code(status);
        let body = match self {
            Self::Protobuf => RpcStatus {
                code,
                message: message.to_string(),
            }
            .encode_to_vec(),
            Self::Json => serde_json::to_vec(&serde_json::json!({
                "code": code,
                "message": message,
            }))
            .unwrap_or_else(|_| b"{}".to_vec()),
        };
        self.reply(status, body)
    }

    fn reply(self, status: StatusCode, body: Vec<u8>) -> Reply {
        Response::builder()
            .status(status)
            .header(
                hyper::header::CONTENT_TYPE,
                HeaderValue::from_static(self.content_type()),
            )
            .body(Full::new(Bytes::from(body)))
            .expect("static response parts are valid")
    }
}

/// `google.rpc.Status` (details left empty): the body OTLP/HTTP answers errors with.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// The gRPC code closest to an HTTP refusal (informative only: OTLP/HTTP clients act on the
/// HTTP status).
fn grpc_code(status: StatusCode) -> i32 {
    match status {
        StatusCode::BAD_REQUEST | StatusCode::UNSUPPORTED_MEDIA_TYPE => 3, // INVALID_ARGUMENT
        StatusCode::REQUEST_TIMEOUT => 4,                                  // DEADLINE_EXCEEDED
        StatusCode::NOT_FOUND => 12,                                       // UNIMPLEMENTED
        StatusCode::PAYLOAD_TOO_LARGE | StatusCode::TOO_MANY_REQUESTS => 8, // RESOURCE_EXHAUSTED
        StatusCode::UNAUTHORIZED => 16,                                    // UNAUTHENTICATED
        _ => 2,                                                            // UNKNOWN
    }
}

/// Spans by what they became: what `/metrics` shows as `sentinel_otlp_spans_total`.
#[derive(Debug, Default)]
pub(super) struct OtlpCounters {
    accepted: AtomicU64,
    ignored: AtomicU64,
    rejected: [AtomicU64; SpanRejection::ALL.len()],
}

impl OtlpCounters {
    pub(super) fn count(&self, mapped: &Mapped) {
        self.accepted
            .fetch_add(mapped.events.len() as u64, Ordering::Relaxed);
        self.ignored.fetch_add(mapped.ignored, Ordering::Relaxed);
        for (i, reason) in SpanRejection::ALL.into_iter().enumerate() {
            let n = mapped.rejected.get(reason);
            if n > 0 {
                self.rejected[i].fetch_add(n, Ordering::Relaxed);
            }
        }
    }

    pub(super) fn render(&self, out: &mut MetricsText) {
        let name = "sentinel_otlp_spans_total";
        out.family(
            name,
            Kind::Counter,
            "OTLP spans received on /v1/traces by outcome: accepted (a tenant event), ignored \
             (not a server span) or the reason a server span was refused.",
        );
        let fixed = [("accepted", &self.accepted), ("ignored", &self.ignored)];
        for (outcome, value) in fixed {
            out.sample(name, &[("outcome", outcome)], value.load(Ordering::Relaxed));
        }
        for (i, reason) in SpanRejection::ALL.into_iter().enumerate() {
            let value = self.rejected[i].load(Ordering::Relaxed);
            out.sample(name, &[("outcome", reason.as_str())], value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(
                hyper::header::CONTENT_TYPE,
                HeaderValue::from_str(value).unwrap(),
            );
            headers
        };
        let cases = [
            ("application/x-protobuf", Some(OtlpEncoding::Protobuf)),
            ("application/json", Some(OtlpEncoding::Json)),
            ("Application/JSON; charset=utf-8", Some(OtlpEncoding::Json)),
            ("text/plain", None),
            ("application/x-ndjson", None),
        ];
        for (value, want) in cases {
            assert_eq!(OtlpEncoding::of(&with(value)), want, "{value}");
        }
        assert_eq!(OtlpEncoding::of(&HeaderMap::new()), None);
    }

    /// A partial success decodes with the published response type; a full success is empty.
    #[test]
    fn answers_decode_as_otlp_responses() {
        use http_body_util::BodyExt;
        let body = |reply: Reply| {
            futures_util::FutureExt::now_or_never(reply.into_body().collect())
                .unwrap()
                .unwrap()
                .to_bytes()
        };
        let reply = OtlpEncoding::Protobuf.answer(3, Some("3 of 5".into()));
        let decoded = ExportTraceServiceResponse::decode(body(reply)).unwrap();
        let partial = decoded.partial_success.unwrap();
        assert_eq!(
            (partial.rejected_spans, partial.error_message.as_str()),
            (3, "3 of 5")
        );
        let ok = body(OtlpEncoding::Protobuf.answer(0, None));
        assert!(ok.is_empty());
        let json = body(OtlpEncoding::Json.answer(3, Some("3 of 5".into())));
        assert_eq!(
            std::str::from_utf8(&json).unwrap(),
            r#"{"partialSuccess":{"errorMessage":"3 of 5","rejectedSpans":"3"}}"#
        );
        let error = body(OtlpEncoding::Protobuf.error(StatusCode::BAD_REQUEST, "bad"));
        assert_eq!(
            RpcStatus::decode(error).unwrap(),
            RpcStatus {
                code: 3,
                message: "bad".into()
            }
        );
    }
}
