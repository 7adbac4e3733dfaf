//! The public TCP listener: `/healthz`, `/metrics`, tenant event ingest (`POST /v1/events`, OTLP
//! traces on `POST /v1/traces`),
//! heartbeat beats (`POST /v1/heartbeat/NAME`, [`heartbeat`]), the read-only status page
//! (`GET /`) and the tenant ranking a fleet's peers read (`GET /v1/tenants/top`, the control
//! API's answer), each read route exposed as its owner chose ([`access`]).
//! Bounded like the control socket: connections and header time; ingest bounds its own bodies.
//! [`client`] is the outbound side: the one client stack (connector, pooled client, JSON POST).

pub mod access;
pub mod client;
pub mod config;
pub mod heartbeat;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::ingest::Ingest;
use crate::metrics::MetricsView;
use crate::status_page::StatusPage;
use crate::tenants::TenantService;
pub use access::{Access, AccessSettings, Exposure};
use access::{ReadRoute, Verdict};

/// What the public routes serve from; cheap to clone per connection.
#[derive(Clone)]
pub struct PublicRoutes {
    pub metrics: MetricsView,
    pub ingest: Ingest,
    pub tenants: TenantService,
    pub status_page: StatusPage,
    /// Whether `/metrics` and the status page are open, off or behind read tokens.
    pub access: Access,
    /// The heartbeat probes beats are for (`POST /v1/heartbeat/NAME`).
    pub heartbeats: crate::probe::Heartbeats,
}

/// Most connections served at once; the rest wait in the accept queue.
const MAX_CONNECTIONS: usize = 256;
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Serve the public routes on `listener` until `shutdown` fires.
pub async fn serve(listener: TcpListener, routes: PublicRoutes, shutdown: CancellationToken) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            permit = Arc::clone(&permits).acquire_owned() => permit.expect("semaphore never closed"),
        };
        let stream = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    tracing::warn!(error = %err, "public listener accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let shutdown = shutdown.clone();
        let routes = routes.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let routes = routes.clone();
                async move {
                    let reply = match (request.method(), request.uri().path()) {
                        (&Method::POST, "/v1/events") => {
                            routes.ingest.handle(request, &routes.tenants).await
                        }
                        (&Method::POST, "/v1/traces") => {
                            routes.ingest.handle_otlp(request, &routes.tenants).await
                        }
                        (_, path) if path.starts_with(heartbeat::PREFIX) => {
                            heartbeat::handle(&routes.heartbeats, request).await
                        }
                        (&Method::GET, "/" | "/status") => {
                            match routes
                                .access
                                .check(ReadRoute::StatusPage, request.headers())
                            {
                                Verdict::Serve => html(routes.status_page.html().await),
                                verdict => refusal(verdict),
                            }
                        }
                        (&Method::GET, "/v1/tenants/top") => {
                            match routes.access.check(ReadRoute::Tenants, request.headers()) {
                                Verdict::Serve => tenants_top(&request, &routes.tenants),
                                verdict => refusal(verdict),
                            }
                        }
                        (&Method::GET, "/metrics") => {
                            match routes.access.check(ReadRoute::Metrics, request.headers()) {
                                Verdict::Serve => route(&request, &routes.metrics),
                                verdict => refusal(verdict),
                            }
                        }
                        _ => route(&request, &routes.metrics),
                    };
                    Ok::<_, Infallible>(reply)
                }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = shutdown.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(2), connection).await;
                }
            }
        });
    }
}

fn route<B>(request: &Request<B>, metrics: &MetricsView) -> Response<Full<Bytes>> {
    match (request.method(), request.uri().path()) {
        (&Method::GET, "/metrics") => Response::builder()
            .status(StatusCode::OK)
            .header(
                hyper::header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )
            .body(Full::new(Bytes::from(metrics.render())))
            .expect("static response parts are valid"),
        (&Method::GET | &Method::HEAD, "/healthz") => {
            respond(StatusCode::OK, "application/json", r#"{"status":"ok"}"#)
        }
        (_, "/v1/events") => respond(
            StatusCode::METHOD_NOT_ALLOWED,
            "application/json",
            r#"{"error":"use POST /v1/events with JSON or NDJSON tenant events"}"#,
        ),
        (_, "/v1/traces") => respond(
            StatusCode::METHOD_NOT_ALLOWED,
            "application/json",
            r#"{"error":"use POST /v1/traces with OTLP protobuf or JSON"}"#,
        ),
        (_, "/healthz") => respond(
            StatusCode::METHOD_NOT_ALLOWED,
            "application/json",
            r#"{"error":"use GET /healthz"}"#,
        ),
        _ => respond(
            StatusCode::NOT_FOUND,
            "application/json",
            r#"{"error":"no such route"}"#,
        ),
    }
}

/// 404 for a route its owner turned off, 401 (with the scheme to use) for a missing read token.
fn refusal(verdict: Verdict) -> Response<Full<Bytes>> {
    match verdict {
        Verdict::Unauthorized => {
            let mut reply = respond(
                StatusCode::UNAUTHORIZED,
                "application/json",
                r#"{"error":"this route needs a read token ([http] read_tokens): send Authorization: Bearer TOKEN"}"#,
            );
            reply.headers_mut().insert(
                hyper::header::WWW_AUTHENTICATE,
                hyper::header::HeaderValue::from_static("Bearer"),
            );
            reply
        }
        Verdict::NotFound | Verdict::Serve => respond(
            StatusCode::NOT_FOUND,
            "application/json",
            r#"{"error":"no such route"}"#,
        ),
    }
}

/// The control socket's `GET /v1/tenants/top`, for `sentinelctl tenants top --peer URL`.
fn tenants_top<B>(request: &Request<B>, tenants: &TenantService) -> Response<Full<Bytes>> {
    let (status, body) = match crate::api::top_answer(request.uri().query(), tenants) {
        Ok(answer) => (
            StatusCode::OK,
            serde_json::to_vec(&answer).expect("API types serialize"),
        ),
        Err(refused) => (
            refused.status(),
            serde_json::to_vec(&serde_json::json!({ "error": refused.to_string() }))
                .expect("a JSON value serializes"),
        ),
    };
    Response::builder()
        .status(status)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("static response parts are valid")
}

fn html(page: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(StatusCode::OK)
        .header(hyper::header::CONTENT_TYPE, "text/html; charset=utf-8")
        // The page is only ever a snapshot: no intermediary should serve an old one.
        .header(hyper::header::CACHE_CONTROL, "no-store")
        .body(Full::new(Bytes::from(page)))
        .expect("static response parts are valid")
}

fn respond(status: StatusCode, content_type: &str, body: &'static str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(hyper::header::CONTENT_TYPE, content_type)
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .expect("static response parts are valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_table() {
        let cases = [
            (Method::GET, "/healthz", 200),
            (Method::HEAD, "/healthz", 200),
            (Method::POST, "/healthz", 405),
            (Method::GET, "/nope", 404),
            (Method::GET, "/metrics", 200),
            (Method::GET, "/v1/events", 405),
            (Method::GET, "/v1/traces", 405),
        ];
        for (method, path, status) in cases {
            let request = Request::builder()
                .method(method.clone())
                .uri(path)
                .body(())
                .unwrap();
            let metrics = MetricsView::default();
            assert_eq!(
                route(&request, &metrics).status().as_u16(),
                status,
                "{method} {path}"
            );
        }
    }
}
