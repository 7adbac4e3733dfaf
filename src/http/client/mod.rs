//! The one outbound HTTP client stack: a connector (`connect.rs`: hyper-util + hyper-rustls over
//! our rustls configs, `tls.rs`) shared by the probes, the agent and the bounded JSON POST below.
//!
//! Notifications and the AI summary POST through one pooled client (keep-alive), built on first
//! use; the agent keeps its own client of the same type over the TCP layer alone (it only
//! speaks http, and links no TLS); an http probe dials a fresh connection
//! per check through the same connector, because a check must prove a new connection works.

pub mod connect;
pub mod target;
pub mod tls;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::Request;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use thiserror::Error;

pub use connect::{connector, ConnectError, ConnectStage, Connector, TcpConnector};
pub use target::{HttpTarget, TargetError};
pub use tls::{TlsError, TlsVerification};

/// How long an idle kept-alive connection waits for the next request before it is closed.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// A pooled HTTP/1.1 client: over [`Connector`] what the JSON POST sends with; over
/// [`TcpConnector`] what the agent ships with.
pub type PooledClient<B, C = Connector> = Client<C, B>;

/// A client with keep-alive over `connector`, idle connections closed after 90 s.
pub fn pooled<B, C>(connector: C) -> PooledClient<B, C>
where
    C: hyper_util::client::legacy::connect::Connect + Clone,
    B: hyper::body::Body + Send + 'static + Unpin,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .build(connector)
}

/// Why a POST got no 2xx answer; the message is what notifications keep as `last_error`.
#[derive(Debug, Error)]
pub enum PostError {
    /// The URL was refused before anything was sent.
    #[error(transparent)]
    Target(#[from] TargetError),
    /// The system trust store could not be made into a TLS config.
    #[error(transparent)]
    Tls(Arc<TlsError>),
    /// DNS, TCP or the TLS handshake failed.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The connection broke or the answer was not HTTP.
    #[error("{detail}")]
    Http {
        detail: String,
        #[source]
        source: hyper_util::client::legacy::Error,
    },
    #[error(transparent)]
    Request(#[from] hyper::http::Error),
    #[error("no answer within {}", humantime::format_duration(*.0))]
    Timeout(Duration),
    /// The receiver answered, but not 2xx: its status and the start of its answer.
    #[error("HTTP {status}: {excerpt}")]
    Status { status: u16, excerpt: String },
}

impl PostError {
    fn from_client(authority: &str, err: hyper_util::client::legacy::Error) -> Self {
        match ConnectError::from_client(authority, err) {
            Ok(connect) => Self::Connect(connect),
            Err(err) => Self::Http {
                detail: crate::logging::error_chain(&err),
                source: err,
            },
        }
    }
}

/// A receiver's answer: status and (at most the asked number of) body bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: Bytes,
}

impl Answer {
    /// Ok(body) for 2xx, else "HTTP 503: <first 200 characters>".
    pub fn success(self) -> Result<Bytes, PostError> {
        match (200..300).contains(&self.status) {
            true => Ok(self.body),
            false => Err(PostError::Status {
                status: self.status,
                excerpt: String::from_utf8_lossy(&self.body)
                    .chars()
                    .take(200)
                    .collect(),
            }),
        }
    }
}

/// The one pooled client of notifications and the AI summary: the system trust store, built
/// (and the store read) on the first POST, not at start.
fn shared() -> Result<&'static PooledClient<Full<Bytes>>, PostError> {
    static CLIENT: OnceLock<Result<PooledClient<Full<Bytes>>, Arc<TlsError>>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            let config = tls::client_config(&TlsVerification::System).map_err(Arc::new)?;
            Ok(pooled(connector(config)))
        })
        .as_ref()
        .map_err(|err| PostError::Tls(Arc::clone(err)))
}

/// The first header of a config's `headers` table that could not be sent: a name or a value
/// HTTP does not allow.
pub fn invalid_header(
    headers: &std::collections::BTreeMap<String, String>,
) -> Option<(&str, &str)> {
    headers
        .iter()
        .find(|(name, value)| {
            hyper::header::HeaderName::from_bytes(name.as_bytes()).is_err()
                || hyper::header::HeaderValue::from_str(value).is_err()
        })
        .map(|(name, value)| (name.as_str(), value.as_str()))
}

/// POST `body` as JSON to `url` with extra `headers`; at most `max_answer` bytes of the answer
/// are read, and everything must be done within `timeout`.
pub async fn post_json(
    url: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
    timeout: Duration,
    max_answer: usize,
) -> Result<Answer, PostError> {
    let body = Some(("application/json", body));
    send(hyper::Method::POST, url, headers, body, timeout, max_answer).await
}

/// `method` to `url` through the shared pooled client, with a body of the given content type
/// (or none); bounded as [`post_json`].
pub async fn send(
    method: hyper::Method,
    url: &str,
    headers: &[(String, String)],
    body: Option<(&str, Vec<u8>)>,
    timeout: Duration,
    max_answer: usize,
) -> Result<Answer, PostError> {
    let target = HttpTarget::parse(url)?;
    let client = shared()?;
    let (content_type, body) = match body {
        Some((content_type, body)) => (Some(content_type), body),
        None => (None, Vec::new()),
    };
    let mut request = Request::builder()
        .method(method)
        .uri(target.uri().clone())
        .header(hyper::header::HOST, target.authority.as_str());
    if let Some(content_type) = content_type {
        request = request.header(hyper::header::CONTENT_TYPE, content_type);
    }
    request = request.header(
        hyper::header::USER_AGENT,
        concat!("sentineld/", env!("CARGO_PKG_VERSION")),
    );
    let has_auth = headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("authorization"));
    if let (Some(auth), false) = (target.basic_auth(), has_auth) {
        request = request.header(hyper::header::AUTHORIZATION, auth);
    }
    for (name, value) in headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let request = request.body(Full::new(Bytes::from(body)))?;
    let exchange = async {
        let response = client
            .request(request)
            .await
            .map_err(|err| PostError::from_client(&target.authority, err))?;
        let status = response.status().as_u16();
        let body = Limited::new(response.into_body(), max_answer)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        Ok(Answer { status, body })
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(result) => result,
        Err(_) => Err(PostError::Timeout(timeout)),
    }
}

/// A real HTTP/1.1 server on loopback for the client stack's tests: answers 200 "ok" to every
/// request, keeps connections alive, and counts the connections it accepted.
#[cfg(test)]
pub(crate) mod receiver {
    use std::convert::Infallible;
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use hyper::service::service_fn;
    use hyper::{Request, Response};
    use hyper_util::rt::TokioIo;

    pub struct Receiver {
        pub address: SocketAddr,
        accepted: Arc<AtomicUsize>,
        requests: Arc<AtomicUsize>,
    }

    impl Receiver {
        pub async fn start() -> Self {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let address = listener.local_addr().unwrap();
            let accepted = Arc::new(AtomicUsize::new(0));
            let requests = Arc::new(AtomicUsize::new(0));
            let (count, served) = (Arc::clone(&accepted), Arc::clone(&requests));
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    count.fetch_add(1, Ordering::SeqCst);
                    let served = Arc::clone(&served);
                    let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                        let served = Arc::clone(&served);
                        async move {
                            let _ = request.into_body().collect().await;
                            served.fetch_add(1, Ordering::SeqCst);
                            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(
                                br#"{"accepted":1,"rejected":[]}"#,
                            ))))
                        }
                    });
                    tokio::spawn(
                        hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service),
                    );
                }
            });
            Self {
                address,
                accepted,
                requests,
            }
        }

        /// Connections accepted so far.
        pub fn accepted(&self) -> usize {
            self.accepted.load(Ordering::SeqCst)
        }

        /// Requests answered so far.
        pub fn requests(&self) -> usize {
            self.requests.load(Ordering::SeqCst)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_header_http_cannot_carry_is_named() {
        let table = |pairs: &[(&str, &str)]| -> std::collections::BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        type Pair<'a> = (&'a str, &'a str);
        let cases: [(&[Pair], Option<Pair>); 4] = [
            (&[("X-Token", "abc"), ("Accept", "*/*")], None),
            (&[("bad header", "v")], Some(("bad header", "v"))),
            (&[("X-Ok", "line\nbreak")], Some(("X-Ok", "line\nbreak"))),
            (&[], None),
        ];
        for (pairs, expected) in cases {
            assert_eq!(invalid_header(&table(pairs)), expected, "{pairs:?}");
        }
    }

    #[test]
    fn errors_read_as_before_and_keep_their_cause() {
        let answer = Answer {
            status: 503,
            body: Bytes::from("x".repeat(300)),
        };
        let err = answer.success().unwrap_err();
        assert_eq!(err.to_string(), format!("HTTP 503: {}", "x".repeat(200)));
        assert_eq!(
            PostError::Timeout(Duration::from_secs(10)).to_string(),
            "no answer within 10s"
        );
        let ok = Answer {
            status: 204,
            body: Bytes::new(),
        };
        assert_eq!(ok.success().unwrap(), Bytes::new());
    }

    /// Several notifications to one receiver travel over one kept-alive connection of the
    /// shared pool (each POST used to dial its own).
    #[tokio::test]
    async fn posts_to_one_receiver_share_one_kept_alive_connection() {
        let receiver = receiver::Receiver::start().await;
        let url = format!("http://{}/hook", receiver.address);
        for n in 0..5 {
            let answer = post_json(
                &url,
                &[],
                format!("{{\"n\":{n}}}").into_bytes(),
                Duration::from_secs(5),
                1024,
            )
            .await
            .unwrap();
            assert_eq!(answer.status, 200);
        }
        assert_eq!(receiver.requests(), 5);
        assert_eq!(receiver.accepted(), 1, "one connection for five POSTs");
    }

    /// A refused port and a peer that hangs up during the TLS handshake: each says where it
    /// stopped, reads as before, and keeps the socket's or TLS layer's error as its cause.
    #[tokio::test]
    async fn connect_failures_name_their_stage_and_keep_their_cause() {
        use std::error::Error;
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let post = |url: String| async move {
            post_json(&url, &[], Vec::new(), Duration::from_secs(5), 1024)
                .await
                .unwrap_err()
        };
        let err = post(format!("http://{closed}/")).await;
        let PostError::Connect(connect) = &err else {
            panic!("{err:?}")
        };
        assert_eq!(
            connect.stage,
            ConnectStage::Connect(std::io::ErrorKind::ConnectionRefused)
        );
        assert!(
            err.to_string()
                .starts_with(&format!("connect {closed}: Connection refused")),
            "{err}"
        );
        let io = std::iter::successors(err.source(), |&e| e.source())
            .find_map(|e| e.downcast_ref::<std::io::Error>())
            .expect("the socket's error is kept");
        assert_eq!(io.kind(), std::io::ErrorKind::ConnectionRefused);

        // accepts, then hangs up: no TLS server there
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                drop(stream);
            }
        });
        let err = post(format!("https://{address}/")).await;
        assert!(
            matches!(&err, PostError::Connect(c) if c.stage == ConnectStage::Tls),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .starts_with(&format!("TLS handshake with {address}: ")),
            "{err}"
        );
        assert!(err.source().is_some());
    }

    #[test]
    fn a_bad_url_is_refused_with_its_typed_cause() {
        let err = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(post_json(
                "ftp://example.test/",
                &[],
                Vec::new(),
                Duration::from_secs(1),
                1,
            ))
            .unwrap_err();
        assert!(
            matches!(err, PostError::Target(TargetError::Scheme { .. })),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "unsupported URL scheme in \"ftp://example.test/\": expected http:// or https://host[:port]/path"
        );
    }
}
