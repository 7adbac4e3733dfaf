//! The control-socket server: HTTP/1.1 + JSON over a Unix socket, one task per connection,
//! bounded in connections, header time and body size, and stopped by the injected token.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Serialize;
use tokio::net::UnixListener;
use tokio::sync::{broadcast, mpsc, oneshot, watch, Semaphore};
use tokio_util::sync::CancellationToken;

use super::peer::{authorize, Accounts, Peer};
use super::types::{
    DaemonInfo, ErrorResponse, EventsResponse, HealResponse, ReloadOutcome, ReloadReport,
    SilenceResponse, StatusResponse,
};
use crate::event::{Bus, EventKind, Timestamp};
use crate::heal::{HealBoard, HealCommand};
use crate::journal::{EventQuery, Journal};
use crate::probe::ProbeBoard;

/// Most connections served at once; more wait in the kernel's accept queue. Follow streams hold
/// a connection each, so this also bounds concurrent `sentinelctl events --follow`.
const MAX_CONNECTIONS: usize = 64;
/// A client that has not sent its request headers by then is disconnected.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// No route takes a large body; anything bigger is refused with 413.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// Requests the API hands to the supervisor, which owns everything they change.
#[derive(Debug)]
pub enum ControlCommand {
    Reload {
        reply: oneshot::Sender<ReloadReport>,
    },
    /// Silence `probe` for `duration` (zero lifts it); the reply is the end of the silence.
    Silence {
        probe: String,
        duration: std::time::Duration,
        reply: oneshot::Sender<Result<Timestamp, String>>,
    },
    /// Pass `command` to the healer of `probe`; the reply says why not if it cannot.
    Heal {
        probe: String,
        command: HealCommand,
        reply: oneshot::Sender<Result<(), String>>,
    },
}

/// Everything a request handler may read or ask for.
#[derive(Clone)]
pub struct ApiState {
    pub info: watch::Receiver<DaemonInfo>,
    pub probes: ProbeBoard,
    pub heals: HealBoard,
    pub journal: Journal,
    pub bus: Bus,
    pub commands: mpsc::Sender<ControlCommand>,
    /// Group owning the socket file: its members may call mutating routes.
    pub socket_gid: u32,
    pub accounts: Arc<dyn Accounts>,
}

type Body = BoxBody<Bytes, Infallible>;

/// Serve the control API on `listener` until `shutdown` fires.
pub async fn serve(listener: UnixListener, state: ApiState, shutdown: CancellationToken) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            permit = Arc::clone(&permits).acquire_owned() => permit.expect("semaphore never closed"),
        };
        let (stream, _) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(error = %err, "control socket accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let peer = match stream.peer_cred() {
            Ok(cred) => Peer {
                uid: cred.uid(),
                gid: cred.gid(),
                pid: cred.pid(),
            },
            Err(err) => {
                tracing::warn!(error = %err, "cannot read peer credentials; dropping connection");
                continue;
            }
        };
        let state = state.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let service = hyper::service::service_fn(move |request| {
                let state = state.clone();
                let shutdown = shutdown.clone();
                async move { Ok::<_, Infallible>(route(request, peer, &state, shutdown).await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "control connection ended with an error");
            }
        });
    }
}

async fn route(
    request: Request<Incoming>,
    peer: Peer,
    state: &ApiState,
    shutdown: CancellationToken,
) -> Response<Body> {
    let path = request.uri().path().to_string();
    let method = request.method().clone();
    match (method.clone(), path.as_str()) {
        (Method::GET, "/v1/status") => json(StatusCode::OK, &status(state)),
        (Method::GET, "/v1/events") => events(request.uri().query(), state, shutdown).await,
        (Method::POST, "/v1/reload") => {
            if let Err(response) = read_small_body(request).await {
                return response;
            }
            let response = match authorize(&peer, state.socket_gid, state.accounts.as_ref()) {
                Ok(()) => reload(state).await,
                Err(reason) => error(StatusCode::FORBIDDEN, reason),
            };
            audit(state, &peer, &method, &path, response.status());
            response
        }
        (Method::POST, heal_path) if heal_path.starts_with("/v1/heal/") => {
            if let Err(response) = read_small_body(request).await {
                return response;
            }
            let response = match authorize(&peer, state.socket_gid, state.accounts.as_ref()) {
                Ok(()) => heal(state, heal_path).await,
                Err(reason) => error(StatusCode::FORBIDDEN, reason),
            };
            audit(state, &peer, &method, &path, response.status());
            response
        }
        (Method::POST, silence_path)
            if silence_path.starts_with("/v1/probes/") && silence_path.ends_with("/silence") =>
        {
            let query = request.uri().query().map(str::to_string);
            if let Err(response) = read_small_body(request).await {
                return response;
            }
            let response = match authorize(&peer, state.socket_gid, state.accounts.as_ref()) {
                Ok(()) => silence(state, silence_path, query.as_deref()).await,
                Err(reason) => error(StatusCode::FORBIDDEN, reason),
            };
            audit(state, &peer, &method, &path, response.status());
            response
        }
        (_, "/v1/status" | "/v1/events" | "/v1/reload") => error(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{method} is not allowed on {path}"),
        ),
        _ => error(StatusCode::NOT_FOUND, format!("no such route: {path}")),
    }
}

/// Record who called a mutating route and how it ended.
fn audit(state: &ApiState, peer: &Peer, method: &Method, route: &str, status: StatusCode) {
    tracing::info!(uid = peer.uid, pid = ?peer.pid, %method, route, status = status.as_u16(), "control request");
    state.bus.publish(EventKind::ControlRequest {
        method: method.to_string(),
        route: route.to_string(),
        uid: peer.uid,
        pid: peer.pid,
        status: status.as_u16(),
    });
}

fn status(state: &ApiState) -> StatusResponse {
    let daemon = state.info.borrow().clone();
    let uptime_ms = (Timestamp::now().as_millis() - daemon.started_at.as_millis()).max(0);
    StatusResponse {
        daemon,
        uptime_secs: (uptime_ms / 1000) as u64,
        probes: state.probes.snapshot(),
        heals: state.heals.snapshot(),
    }
}

async fn reload(state: &ApiState) -> Response<Body> {
    let (reply, answer) = oneshot::channel();
    if state
        .commands
        .send(ControlCommand::Reload { reply })
        .await
        .is_err()
    {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "sentineld is shutting down".into(),
        );
    }
    match answer.await {
        Ok(report) => {
            let code = match report.outcome {
                ReloadOutcome::Rejected => StatusCode::UNPROCESSABLE_ENTITY,
                _ => StatusCode::OK,
            };
            json(code, &report)
        }
        Err(_) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "sentineld is shutting down".into(),
        ),
    }
}

/// `/v1/probes/{probe}/silence?for=30m` (`for=0` lifts the silence).
async fn silence(state: &ApiState, path: &str, query: Option<&str>) -> Response<Body> {
    let probe = percent_decode(
        path.trim_start_matches("/v1/probes/")
            .trim_end_matches("/silence"),
    );
    let text = query
        .unwrap_or("")
        .split('&')
        .find_map(|pair| pair.strip_prefix("for="))
        .map(percent_decode);
    let duration = match text.as_deref() {
        Some("0") => std::time::Duration::ZERO,
        Some(text) => match humantime::parse_duration(text) {
            Ok(duration) => duration,
            Err(err) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("invalid for=\"{text}\": {err} (write e.g. 30m, 2h, or 0 to lift)"),
                )
            }
        },
        None => {
            return error(
                StatusCode::BAD_REQUEST,
                "missing for=DURATION (e.g. for=30m)".into(),
            )
        }
    };
    let (reply, answer) = oneshot::channel();
    let sent = state
        .commands
        .send(ControlCommand::Silence {
            probe: probe.clone(),
            duration,
            reply,
        })
        .await;
    match (sent, answer.await) {
        (Ok(()), Ok(Ok(until))) => json(StatusCode::OK, &SilenceResponse { probe, until }),
        (Ok(()), Ok(Err(message))) => error(StatusCode::NOT_FOUND, message),
        _ => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "sentineld is shutting down".into(),
        ),
    }
}

/// `/v1/heal/{probe}/now` or `/v1/heal/{probe}/reset`.
async fn heal(state: &ApiState, path: &str) -> Response<Body> {
    let rest = path.trim_start_matches("/v1/heal/");
    let (probe, command) = match rest.rsplit_once('/') {
        Some((probe, "now")) => (probe, HealCommand::Now),
        Some((probe, "reset")) => (probe, HealCommand::Reset),
        _ => {
            return error(
                StatusCode::NOT_FOUND,
                format!("no such route: {path} (use /v1/heal/PROBE/now or /v1/heal/PROBE/reset)"),
            )
        }
    };
    let probe = percent_decode(probe);
    let (reply, answer) = oneshot::channel();
    let sent = state
        .commands
        .send(ControlCommand::Heal {
            probe: probe.clone(),
            command,
            reply,
        })
        .await;
    match (sent, answer.await) {
        (Ok(()), Ok(Ok(()))) => json(
            StatusCode::ACCEPTED,
            &HealResponse {
                probe,
                accepted: format!("{command:?}").to_lowercase(),
            },
        ),
        (Ok(()), Ok(Err(message))) => error(StatusCode::NOT_FOUND, message),
        _ => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "sentineld is shutting down".into(),
        ),
    }
}

/// Query-string options of `GET /v1/events`.
#[derive(Debug, Default, PartialEq)]
pub struct EventsParams {
    pub query: EventQuery,
    pub follow: bool,
}

/// Parse `since=10m|RFC3339|epoch-ms`, `after_id=N`, `kind=a,b`, `limit=N`, `follow=1`.
pub fn parse_events_params(query: Option<&str>, now: Timestamp) -> Result<EventsParams, String> {
    let mut params = EventsParams::default();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode(value);
        match key {
            "since" => params.query.since = Some(parse_since(&value, now)?),
            "after_id" => {
                params.query.after_id = Some(
                    value
                        .parse()
                        .map_err(|_| format!("after_id must be an integer, got \"{value}\""))?,
                )
            }
            "kind" => {
                params.query.kinds = value
                    .split(',')
                    .filter(|k| !k.is_empty())
                    .map(String::from)
                    .collect()
            }
            "limit" => {
                params.query.limit = value
                    .parse()
                    .map_err(|_| format!("limit must be a positive integer, got \"{value}\""))?
            }
            "follow" => params.follow = matches!(value.as_str(), "1" | "true" | ""),
            other => return Err(format!("unknown parameter \"{other}\"")),
        }
    }
    Ok(params)
}

/// `10m` (that long ago), an RFC 3339 time, or epoch milliseconds.
pub fn parse_since(value: &str, now: Timestamp) -> Result<Timestamp, String> {
    if let Ok(ago) = humantime::parse_duration(value) {
        return Ok(now.saturating_sub(ago));
    }
    if let Ok(time) = humantime::parse_rfc3339_weak(value) {
        return Ok(Timestamp::from(time));
    }
    value.parse::<i64>().map(Timestamp).map_err(|_| {
        format!(
            "invalid since \"{value}\": expected a duration (10m), an RFC 3339 time or epoch ms"
        )
    })
}

fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(byte) => {
                        out.push(byte);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn events(
    query: Option<&str>,
    state: &ApiState,
    shutdown: CancellationToken,
) -> Response<Body> {
    let params = match parse_events_params(query, Timestamp::now()) {
        Ok(params) => params,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    if !params.follow {
        return match state.journal.query(params.query).await {
            Ok(events) => json(StatusCode::OK, &EventsResponse { events }),
            Err(err) => error(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()),
        };
    }
    // Subscribe before reading history so nothing falls between the two.
    let mut live = state.journal.follow();
    let history = match state.journal.query(params.query.clone()).await {
        Ok(events) => events,
        Err(err) => return error(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()),
    };
    let (sender, receiver) = mpsc::channel::<Bytes>(256);
    let kinds = params.query.kinds.clone();
    tokio::spawn(async move {
        let mut cursor = params.query.after_id.unwrap_or(0);
        for event in history {
            cursor = event.id;
            if sender.send(ndjson_line(&event)).await.is_err() {
                return;
            }
        }
        loop {
            let event = tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = sender.closed() => return,
                received = live.recv() => match received {
                    Ok(event) => event,
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        let note = serde_json::json!({"error": format!("follower fell behind; {missed} events skipped (read them with after_id)")});
                        let _ = sender.send(Bytes::from(format!("{note}\n"))).await;
                        continue;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            };
            if event.id <= cursor
                || (!kinds.is_empty() && !kinds.iter().any(|k| k == event.event.kind.name()))
            {
                continue;
            }
            cursor = event.id;
            if sender.send(ndjson_line(&event)).await.is_err() {
                return;
            }
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(hyper::header::CONTENT_TYPE, "application/x-ndjson")
        .body(ChannelBody(receiver).boxed())
        .expect("static response parts are valid")
}

fn ndjson_line<T: Serialize>(value: &T) -> Bytes {
    let mut line = serde_json::to_vec(value).expect("events serialize");
    line.push(b'\n');
    Bytes::from(line)
}

/// A response body fed from a channel: each message is one chunk; the body ends when the
/// sender is dropped.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|b| Ok(Frame::data(b))))
    }
}

async fn read_small_body(request: Request<Incoming>) -> Result<Bytes, Response<Body>> {
    match Limited::new(request.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(_) => Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body larger than {MAX_BODY_BYTES} bytes"),
        )),
    }
}

fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    let body = serde_json::to_vec(value).expect("API types serialize");
    Response::builder()
        .status(status)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)).boxed())
        .expect("static response parts are valid")
}

fn error(status: StatusCode, message: String) -> Response<Body> {
    json(status, &ErrorResponse { error: message })
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
    fn percent_decode_table() {
        assert_eq!(percent_decode("a%3Ab"), "a:b");
        assert_eq!(percent_decode("a+b"), "a b");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
