//! The one outbound connector: hyper-util's `HttpConnector` (with our resolver) under
//! hyper-rustls's `HttpsConnector` with our rustls config, and what a failed connect was.

use std::error::Error as StdError;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::client::legacy::connect::HttpConnector;
use rustls::ClientConfig;

use super::tls::{self, TlsError};

/// What every outbound user dials with: TCP (and DNS) by hyper-util, then TLS for `https`
/// URLs with the config it was built with; `http` URLs stay plain.
pub type Connector = HttpsConnector<HttpConnector<Resolver>>;

/// Any error a connector or a client over it returns.
pub type BoxError = Box<dyn StdError + Send + Sync>;

/// The TCP layer alone, for a caller that only ever speaks `http` (the agent): no TLS code
/// is linked into a binary that uses only this.
pub type TcpConnector = HttpConnector<Resolver>;

/// The TCP layer of every connector: our resolver, no Nagle delay for small requests.
pub fn tcp() -> TcpConnector {
    let mut http = HttpConnector::new_with_resolver(Resolver);
    http.enforce_http(false);
    http.set_nodelay(true);
    http
}

/// A connector whose `https` URLs are verified by `tls` (the system store, a probe's CA file,
/// or none). Build it once per trust setting: each request then only clones a few `Arc`s.
pub fn connector(tls: Arc<ClientConfig>) -> Connector {
    HttpsConnector::from((tcp(), tls))
}

/// A [`connector`] for one request per connection (an http probe's check): without
/// `TCP_NODELAY`, which cannot speed up a single write and costs a system call per check.
pub fn single_request(tls: Arc<ClientConfig>) -> Connector {
    let mut tcp = tcp();
    tcp.set_nodelay(false);
    HttpsConnector::from((tcp, tls))
}

/// The connector for plain `http` probes: one per process, its TLS
/// config trusts nothing, so it never reads the system store and refuses any `https` peer.
pub fn plain() -> Result<Connector, Arc<TlsError>> {
    static PLAIN: OnceLock<Result<Connector, Arc<TlsError>>> = OnceLock::new();
    PLAIN
        .get_or_init(|| Ok(single_request(tls::trusting_nobody().map_err(Arc::new)?)))
        .clone()
}

/// Resolves host names with tokio (`getaddrinfo` on the blocking pool), saying which name
/// failed. IP literals never get here: `HttpConnector` parses them itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct Resolver;

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("cannot resolve {host}: {source}")]
    Lookup {
        host: String,
        #[source]
        source: io::Error,
    },
    #[error("{host} has no addresses")]
    NoAddresses { host: String },
}

impl tower_service::Service<Name> for Resolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = ResolveError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, ResolveError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ResolveError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        Box::pin(async move {
            let host = name.as_str();
            // Port 0: the connector puts the URL's port on every address.
            let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host, 0))
                .await
                .map_err(|source| ResolveError::Lookup {
                    host: host.to_string(),
                    source,
                })?
                .collect();
            match addresses.is_empty() {
                true => Err(ResolveError::NoAddresses {
                    host: host.to_string(),
                }),
                false => Ok(addresses.into_iter()),
            }
        })
    }
}

/// Where a connection attempt stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectStage {
    /// The host name did not resolve (or to nothing).
    Resolve,
    /// TCP connect failed with this kind of error (refused, timed out, ...).
    Connect(io::ErrorKind),
    /// The TLS handshake failed (certificate, protocol, peer hung up).
    Tls,
}

/// A connection that could not be made: the stage, the authority dialed, what went wrong,
/// and the connector's own error as the cause. It reads "connect 127.0.0.1:9: Connection
/// refused (os error 111)", "TLS handshake with host:443: ...", "cannot resolve host: ...".
#[derive(Debug, thiserror::Error)]
#[error("{}", self.describe())]
pub struct ConnectError {
    pub stage: ConnectStage,
    authority: String,
    /// The innermost message that says what broke (the socket's, rustls's, the resolver's).
    reason: String,
    #[source]
    source: BoxError,
}

impl ConnectError {
    /// Sort out an error of [`Connector`] (or [`TcpConnector`]) dialing `authority` (`host:port`). The TLS layer
    /// returns an `io::Error` of its own; everything from the TCP layer comes wrapped in
    /// hyper-util's error, with our `ResolveError` or the socket's `io::Error` beneath it.
    pub fn classify(authority: &str, source: BoxError) -> Self {
        let (stage, reason) = stage_of(&*source);
        Self {
            stage,
            authority: authority.to_string(),
            reason,
            source,
        }
    }

    /// The connect failure inside a pooled client's error, if that is what it was.
    pub fn from_client(
        authority: &str,
        err: hyper_util::client::legacy::Error,
    ) -> Result<Self, hyper_util::client::legacy::Error> {
        if !err.is_connect() {
            return Err(err);
        }
        let (stage, reason) = match err.source() {
            Some(inner) => stage_of(inner),
            None => (ConnectStage::Connect(io::ErrorKind::Other), err.to_string()),
        };
        Ok(Self {
            stage,
            authority: authority.to_string(),
            reason,
            source: Box::new(err),
        })
    }

    /// What went wrong, without the stage and the authority ("Connection refused (os error
    /// 111)"); a resolver failure names its host.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    fn describe(&self) -> String {
        let (authority, reason) = (&self.authority, &self.reason);
        match self.stage {
            ConnectStage::Resolve => reason.clone(),
            ConnectStage::Connect(_) => format!("connect {authority}: {reason}"),
            ConnectStage::Tls => format!("TLS handshake with {authority}: {reason}"),
        }
    }
}

/// The stage and reason of a connector's error: a bare `io::Error` is the TLS layer's; the TCP
/// layer's error holds the resolver's error or the socket's beneath it.
fn stage_of(err: &(dyn StdError + 'static)) -> (ConnectStage, String) {
    if err.is::<io::Error>() {
        return (ConnectStage::Tls, err.to_string());
    }
    let mut cause = err.source();
    while let Some(inner) = cause {
        if let Some(resolve) = inner.downcast_ref::<ResolveError>() {
            return (ConnectStage::Resolve, resolve.to_string());
        }
        if let Some(io) = inner.downcast_ref::<io::Error>() {
            return (ConnectStage::Connect(io.kind()), io.to_string());
        }
        cause = inner.source();
    }
    (ConnectStage::Connect(io::ErrorKind::Other), err.to_string())
}
