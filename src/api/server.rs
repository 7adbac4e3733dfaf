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
use thiserror::Error;
use tokio::net::UnixListener;
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tokio_util::sync::CancellationToken;

use super::chaos;
use super::events::events;
use super::peer::{authorize, Accounts, Peer};
use super::query::parse_silence_for;
use super::routes::{Guard, Miss, Route};
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
        reply: oneshot::Sender<Result<Timestamp, CommandRefused>>,
    },
    /// Pass `command` to the healer of `probe`; the reply says why not if it cannot.
    Heal {
        probe: String,
        command: HealCommand,
        reply: oneshot::Sender<Result<(), CommandRefused>>,
    },
}

/// Why the supervisor could not do what a control command asked (404 for the caller).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CommandRefused {
    #[error("no such probe: {0}")]
    NoSuchProbe(String),
    #[error("probe {0} has no heal action configured")]
    NoHealAction(String),
    #[error("the healer of {0} has stopped")]
    HealerStopped(String),
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
    pub maintenance: crate::maintenance::Windows,
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

async fn route(
    request: Request<Incoming>,
    peer: Peer,
    state: &ApiState,
    shutdown: CancellationToken,
) -> Response<Body> {
    let path = request.uri().path().to_string();
    let method = request.method().clone();
    let route = match Route::resolve(&method, &path) {
        Ok(route) => route,
        Err(Miss::NotFound) => {
            return error(StatusCode::NOT_FOUND, format!("no such route: {path}"))
        }
        Err(Miss::MethodNotAllowed { allowed }) => {
            return not_allowed(&method, &path, &allowed);
        }
    };
    let query = request.uri().query().map(str::to_string);
    let query = query.as_deref();
    if route.guard() == Guard::Open {
        return answer(route, query, &Bytes::new(), state, shutdown, &peer).await;
    }
    let body = match read_small_body(request).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let response = match authorize(&peer, state.socket_gid, state.accounts.as_ref()) {
        Ok(()) => answer(route, query, &body, state, shutdown, &peer).await,
        Err(denied) => error(StatusCode::FORBIDDEN, denied.to_string()),
    };
    audit(state, &peer, &method, &path, response.status());
    response
}

/// Answer `route`; by now a guarded route's peer is authorized and its body read.
async fn answer(
    route: Route,
    query: Option<&str>,
    body: &Bytes,
    state: &ApiState,
    shutdown: CancellationToken,
    peer: &Peer,
) -> Response<Body> {
    match route {
        Route::Status => json(StatusCode::OK, &status(state)),
        Route::Events => events(query, state, shutdown).await,
        Route::Reload => reload(state).await,
        Route::Silence { probe } => silence(state, probe, query).await,
        Route::HealNow { probe } => heal(state, probe, HealCommand::Now).await,
        Route::HealReset { probe } => heal(state, probe, HealCommand::Reset).await,
        Route::Archives => super::archives::get(query, &state.archiver).await,
        Route::Outbox => super::outbox::get(query, &state.notifier).await,
        Route::Analyze => super::analyze::get(query, &state.journal).await,
        Route::AnalyzeSummary => super::analyze::summary(query, state).await,
        Route::TenantsTop => super::tenants::top(query, &state.tenants),
        Route::Tenant { tenant } => super::tenants::tenant(&tenant, query, &state.tenants),
        Route::ChaosList => chaos::list(state).await,
        Route::ChaosProfiles => chaos::profiles(state),
        Route::ChaosStart => chaos::start(state, body).await,
        Route::ChaosStopAll => chaos::stop_all(state).await,
        Route::ChaosShow { experiment } => chaos::show(state, &experiment).await,
        Route::ChaosStop { experiment } => chaos::stop(state, &experiment).await,
        Route::ChaosReport { experiment } => super::report::get(state, &experiment).await,
        Route::ChaosSummary { experiment } => super::report::summary(state, &experiment).await,
        Route::DrillList => super::drills::list(state),
        Route::DrillShow { run } => super::drills::show(state, &run),
        Route::DrillRun { drill } => super::drills::run(state, &drill),
        Route::DrillStop { run } => super::drills::stop(state, &run).await,
        Route::NotifyTest { channel } => super::outbox::test(&state.notifier, &channel).await,
        Route::MaintenanceList => super::maintenance::list(state),
        Route::MaintenanceStart => super::maintenance::start(state, body, peer),
        Route::MaintenanceEnd { window } => super::maintenance::end(state, &window, peer),
        Route::TenantMute { tenant } => super::tenants::mute(tenant, query, peer, state),
        Route::TenantMutes => super::tenants::mutes(&state.tenants),
        Route::TenantsExplain => super::explain::explain(query, &state.tenants),
        Route::Uptime => super::uptime::get(query, &state.journal, &state.maintenance).await,
        Route::DrillTrend { drill } => super::drills::trend_of(state, &drill, query).await,
    }
}

/// 405 with the methods the path takes.
fn not_allowed(method: &Method, path: &str, allowed: &[Method]) -> Response<Body> {
    let mut response = error(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not allowed on {path}"),
    );
    let allow = allowed
        .iter()
        .map(Method::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if let Ok(allow) = hyper::header::HeaderValue::from_str(&allow) {
        response.headers_mut().insert(hyper::header::ALLOW, allow);
    }
    response
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
    let now = Timestamp::now();
    let mut probes = state.probes.snapshot();
    for probe in &mut probes {
        probe.maintenance = state.maintenance.covering(&probe.name, now);
    }
    StatusResponse {
        daemon,
        uptime_secs: (uptime_ms / 1000) as u64,
        probes,
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
async fn silence(state: &ApiState, probe: String, query: Option<&str>) -> Response<Body> {
    let duration = match parse_silence_for(query) {
        Ok(duration) => duration,
        Err(err) => return error(StatusCode::BAD_REQUEST, err.to_string()),
    };
    let asked = ask(state, |reply| ControlCommand::Silence {
        probe: probe.clone(),
        duration,
        reply,
    })
    .await;
    match asked {
        Ok(Ok(until)) => json(StatusCode::OK, &SilenceResponse { probe, until }),
        Ok(Err(refused)) => error(StatusCode::NOT_FOUND, refused.to_string()),
        Err(response) => response,
    }
}

/// `/v1/heal/{probe}/now` or `/v1/heal/{probe}/reset`.
async fn heal(state: &ApiState, probe: String, command: HealCommand) -> Response<Body> {
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
        Ok(Err(refused)) => error(StatusCode::NOT_FOUND, refused.to_string()),
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
