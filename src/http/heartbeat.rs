//! `POST /v1/heartbeat/NAME` and `POST /v1/heartbeat/NAME/fail` on the public listener: a job's
//! beat for its heartbeat probe. Name and token are checked before the (bounded) body is read.
//!
//! Tokens are per probe (`token`, `token_file`), sent as `Authorization: Bearer TOKEN`: an
//! ingest or read token does not open a heartbeat, and a heartbeat token opens nothing else.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, Response, StatusCode};
use percent_encoding::percent_decode_str;

use crate::probe::heartbeat::{fail_message, BeatOutcome, BeatRefusal, Heartbeats};

/// The path prefix of every beat.
pub const PREFIX: &str = "/v1/heartbeat/";

/// A beat's body is at most this long: a fail beat's message, or whatever a job sends along.
pub const MAX_BEAT_BODY: usize = 4096;

/// A slow client gets this long to send its body.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// Answers one request whose path starts with [`PREFIX`].
pub async fn handle<B>(heartbeats: &Heartbeats, request: Request<B>) -> Response<Full<Bytes>>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let path = request.uri().path();
    let rest = path[PREFIX.len()..].trim_end_matches('/');
    let (name, fail) = match rest.strip_suffix("/fail") {
        Some(name) => (name, true),
        None => (rest, false),
    };
    let name = percent_decode_str(name).decode_utf8_lossy().into_owned();
    if name.is_empty() || name.contains('/') {
        return json(
            StatusCode::NOT_FOUND,
            serde_json::json!({"error": "use POST /v1/heartbeat/NAME or POST /v1/heartbeat/NAME/fail"}),
        );
    }
    if request.method() != Method::POST {
        let mut reply = json(
            StatusCode::METHOD_NOT_ALLOWED,
            serde_json::json!({"error": "use POST for a beat"}),
        );
        reply.headers_mut().insert(
            hyper::header::ALLOW,
            hyper::header::HeaderValue::from_static("POST"),
        );
        return reply;
    }
    if let Err(refusal) = heartbeats.admit(&name, request.headers()) {
        return refused(refusal);
    }
    let declared = request
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|length| length > MAX_BEAT_BODY) {
        return too_large();
    }
    let limited = Limited::new(request.into_body(), MAX_BEAT_BODY);
    let body = match tokio::time::timeout(BODY_TIMEOUT, limited.collect()).await {
        Err(_) => {
            return json(
                StatusCode::REQUEST_TIMEOUT,
                serde_json::json!({"error": "the body did not arrive within 10 s"}),
            )
        }
        Ok(Err(err)) if err.is::<http_body_util::LengthLimitError>() => return too_large(),
        Ok(Err(err)) => {
            return json(
                StatusCode::BAD_REQUEST,
                serde_json::json!({"error": format!("cannot read the body: {err}")}),
            )
        }
        Ok(Ok(collected)) => collected.to_bytes(),
    };
    let outcome = match fail {
        true => BeatOutcome::Fail(fail_message(&body)),
        false => BeatOutcome::Success,
    };
    match heartbeats.beat(&name, outcome) {
        Ok(()) => json(
            StatusCode::OK,
            serde_json::json!({"probe": name, "beat": if fail { "fail" } else { "success" }}),
        ),
        // Removed by a reload while the body was read.
        Err(refusal) => refused(refusal),
    }
}

fn refused(refusal: BeatRefusal) -> Response<Full<Bytes>> {
    match refusal {
        // The count, never the names: the listener may be reachable by more than the jobs.
        BeatRefusal::UnknownProbe { known } => json(
            StatusCode::NOT_FOUND,
            serde_json::json!({
                "error": "no heartbeat probe by that name",
                "heartbeat_probes": known,
            }),
        ),
        BeatRefusal::Unauthorized => {
            let mut reply = json(
                StatusCode::UNAUTHORIZED,
                serde_json::json!({"error": "this heartbeat needs its token: send Authorization: Bearer TOKEN"}),
            );
            reply.headers_mut().insert(
                hyper::header::WWW_AUTHENTICATE,
                hyper::header::HeaderValue::from_static("Bearer"),
            );
            reply
        }
    }
}

fn too_large() -> Response<Full<Bytes>> {
    json(
        StatusCode::PAYLOAD_TOO_LARGE,
        serde_json::json!({"error": format!("a beat's body is at most {MAX_BEAT_BODY} bytes")}),
    )
}

fn json(status: StatusCode, body: serde_json::Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("static response parts are valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn call(
        beats: &Heartbeats,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: &'static [u8],
    ) -> (u16, serde_json::Value) {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let reply = handle(
            beats,
            request.body(Full::new(Bytes::from_static(body))).unwrap(),
        )
        .await;
        let status = reply.status().as_u16();
        let bytes = reply.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn beat_table() {
        let beats = Heartbeats::default();
        let _backup = beats.register("backup", vec![]);
        let _locked = beats.register("locked", vec!["s3cret".into()]);
        let big: &'static [u8] = Box::leak(vec![b'x'; MAX_BEAT_BODY + 1].into_boxed_slice());
        /// Method, path, bearer token, body, the status it gets.
        type Case<'a> = (Method, &'a str, Option<&'a str>, &'static [u8], u16);
        let cases: &[Case] = &[
            (Method::POST, "/v1/heartbeat/backup", None, b"", 200),
            (Method::POST, "/v1/heartbeat/backup/", None, b"", 200),
            (
                Method::POST,
                "/v1/heartbeat/backup/fail",
                None,
                b"exit 2",
                200,
            ),
            (Method::GET, "/v1/heartbeat/backup", None, b"", 405),
            (Method::POST, "/v1/heartbeat/nope", None, b"", 404),
            (Method::POST, "/v1/heartbeat/", None, b"", 404),
            (Method::POST, "/v1/heartbeat/a/b", None, b"", 404),
            (Method::POST, "/v1/heartbeat/locked", None, b"", 401),
            (
                Method::POST,
                "/v1/heartbeat/locked",
                Some("wrong"),
                b"",
                401,
            ),
            (
                Method::POST,
                "/v1/heartbeat/locked",
                Some("s3cret"),
                b"",
                200,
            ),
            (Method::POST, "/v1/heartbeat/backup", None, big, 413),
        ];
        for (method, path, token, body, want) in cases {
            let (status, json) = call(&beats, method.clone(), path, *token, body).await;
            assert_eq!(status, *want, "{method} {path}: {json}");
        }
        let (_, json) = call(&beats, Method::POST, "/v1/heartbeat/nope", None, b"").await;
        assert_eq!(json["heartbeat_probes"], 2);
        assert!(!json.to_string().contains("backup"), "names are not listed");
        assert_eq!(beats.len(), 2);
    }
}
