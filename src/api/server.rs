//! The control-socket server: HTTP/1.1 + JSON over a Unix socket, one task per connection,
//! bounded in connections, header time and body size, and stopped by the injected token.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Serialize;
use tokio::net::UnixListener;
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tokio_util::sync::CancellationToken;

use super::chaos;
use super::events::events;
use super::peer::{authorize, Accounts, Peer};
use super::query::percent_decode;
use super::types::{
    DaemonInfo, ErrorResponse, HealResponse, ReloadOutcome, ReloadReport, SilenceResponse,
    StatusResponse,
};
use crate::event::{Bus, EventKind, Timestamp};
use crate::heal::{HealBoard, HealCommand};
use crate::journal::Journal;
use crate::probe::ProbeBoard;
use crate::tenants::TenantService;

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
    pub tenants: TenantService,
    pub chaos: crate::chaos::ChaosEngine,
    /// The optional AI summary (`[ai]`); off unless configured.
    pub ai: crate::ai::AiService,
    pub archiver: crate::archive::Archiver,
    pub notifier: crate::notify::Notifier,
    pub drills: crate::drill::DrillRunner,
}

pub(super) type Body = BoxBody<Bytes, Infallible>;

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

/// The routes that change something, or cost something: each needs an authorized peer and is
/// audited.
#[derive(Debug, PartialEq)]
enum MutatingRoute {
    Reload,
    Heal,
    Silence,
    Chaos,
    Drill,
    /// `GET /v1/analyze/summary` and `GET /v1/chaos/{id}/summary`: they change nothing here, but
    /// each call sends a document to the AI endpoint, which may cost money.
    AiSummary,
}

impl MutatingRoute {
    fn of(method: &Method, path: &str) -> Option<Self> {
        let summary = path == "/v1/analyze/summary"
            || (path.starts_with("/v1/chaos/") && path.trim_end_matches('/').ends_with("/summary"));
        if method == Method::GET && summary {
            return Some(Self::AiSummary);
        }
        if method != Method::POST {
            return None;
        }
        match path {
            "/v1/reload" => Some(Self::Reload),
            _ if path.starts_with("/v1/heal/") => Some(Self::Heal),
            _ if path.starts_with("/v1/probes/") && path.ends_with("/silence") => {
                Some(Self::Silence)
            }
            _ if path.starts_with("/v1/chaos/") => Some(Self::Chaos),
            _ if path.starts_with("/v1/drills/") => Some(Self::Drill),
            _ => None,
        }
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
    if let Some(mutating) = MutatingRoute::of(&method, &path) {
        let query = request.uri().query().map(str::to_string);
        let body = match read_small_body(request).await {
            Ok(body) => body,
            Err(response) => return response,
        };
        let response = match authorize(&peer, state.socket_gid, state.accounts.as_ref()) {
            Ok(()) => match mutating {
                MutatingRoute::Reload => reload(state).await,
                MutatingRoute::Heal => heal(state, &path).await,
                MutatingRoute::Silence => silence(state, &path, query.as_deref()).await,
                MutatingRoute::Chaos => chaos::mutate(state, &path, &body).await,
                MutatingRoute::Drill => super::drills::mutate(state, &path).await,
                MutatingRoute::AiSummary if path == "/v1/analyze/summary" => {
                    super::analyze::summary(query.as_deref(), state).await
                }
                MutatingRoute::AiSummary => chaos::read(state, &path).await.unwrap_or_else(|| {
                    error(StatusCode::NOT_FOUND, format!("no such route: {path}"))
                }),
            },
            Err(reason) => error(StatusCode::FORBIDDEN, reason),
        };
        audit(state, &peer, &method, &path, response.status());
        return response;
    }
    match (method.clone(), path.as_str()) {
        (Method::GET, "/v1/status") => json(StatusCode::OK, &status(state)),
        (Method::GET, "/v1/events") => events(request.uri().query(), state, shutdown).await,
        (Method::GET, "/v1/archives") => {
            super::archives::get(request.uri().query(), &state.archiver).await
        }
        (Method::GET, "/v1/outbox") => {
            super::outbox::get(request.uri().query(), &state.notifier).await
        }
        (Method::GET, "/v1/analyze") => {
            super::analyze::get(request.uri().query(), &state.journal).await
        }
        (Method::GET, p) if p.starts_with("/v1/tenants/") => {
            super::tenants::get(p, request.uri().query(), &state.tenants)
        }
        (Method::GET, p) if p == "/v1/chaos" || p.starts_with("/v1/chaos/") => {
            chaos::read(state, p)
                .await
                .unwrap_or_else(|| error(StatusCode::NOT_FOUND, format!("no such route: {path}")))
        }
        (Method::GET, p) if p == "/v1/drills" || p.starts_with("/v1/drills/") => {
            super::drills::read(state, p)
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
        capabilities: state.chaos.capabilities(),
    }
}

/// Hand a command to the supervisor and wait for its answer; if the supervisor is gone, the
/// daemon is shutting down and the caller gets 503.
async fn ask<T>(
    state: &ApiState,
    command: impl FnOnce(oneshot::Sender<T>) -> ControlCommand,
) -> Result<T, Response<Body>> {
    let (reply, answer) = oneshot::channel();
    let shutting_down = || {
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            "sentineld is shutting down".into(),
        )
    };
    state
        .commands
        .send(command(reply))
        .await
        .map_err(|_| shutting_down())?;
    answer.await.map_err(|_| shutting_down())
}

async fn reload(state: &ApiState) -> Response<Body> {
    match ask(state, |reply| ControlCommand::Reload { reply }).await {
        Ok(report) => {
            let code = match report.outcome {
                ReloadOutcome::Rejected => StatusCode::UNPROCESSABLE_ENTITY,
                _ => StatusCode::OK,
            };
            json(code, &report)
        }
        Err(response) => response,
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
    let asked = ask(state, |reply| ControlCommand::Silence {
        probe: probe.clone(),
        duration,
        reply,
    })
    .await;
    match asked {
        Ok(Ok(until)) => json(StatusCode::OK, &SilenceResponse { probe, until }),
        Ok(Err(message)) => error(StatusCode::NOT_FOUND, message),
        Err(response) => response,
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
    let asked = ask(state, |reply| ControlCommand::Heal {
        probe: probe.clone(),
        command,
        reply,
    })
    .await;
    match asked {
        Ok(Ok(())) => json(
            StatusCode::ACCEPTED,
            &HealResponse {
                probe,
                accepted: format!("{command:?}").to_lowercase(),
            },
        ),
        Ok(Err(message)) => error(StatusCode::NOT_FOUND, message),
        Err(response) => response,
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

pub(super) fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    let body = serde_json::to_vec(value).expect("API types serialize");
    Response::builder()
        .status(status)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)).boxed())
        .expect("static response parts are valid")
}

pub(super) fn error(status: StatusCode, message: String) -> Response<Body> {
    json(status, &ErrorResponse { error: message })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutating_routes_table() {
        let cases = [
            (Method::POST, "/v1/reload", Some(MutatingRoute::Reload)),
            (Method::GET, "/v1/status", None),
            (Method::GET, "/v1/analyze", None),
            (
                Method::GET,
                "/v1/analyze/summary",
                Some(MutatingRoute::AiSummary),
            ),
            (Method::GET, "/v1/chaos/x1/report", None),
            (
                Method::GET,
                "/v1/chaos/x1/summary",
                Some(MutatingRoute::AiSummary),
            ),
            (
                Method::POST,
                "/v1/chaos/x1/stop",
                Some(MutatingRoute::Chaos),
            ),
            (Method::GET, "/v1/chaos", None),
        ];
        for (method, path, want) in cases {
            assert_eq!(MutatingRoute::of(&method, path), want, "{method} {path}");
        }
    }
}
