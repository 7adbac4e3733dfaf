//! The HTTP edge: POSTs NDJSON batches to sentineld over a kept-alive HTTP/1.1 connection
//! (the shared client stack of `http::client`) and sorts the answer into accepted / refused
//! for good / retry later.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{header, Method, Request, StatusCode, Uri};
use serde::Deserialize;

use super::{Delivery, Transport};
use crate::agent::AgentError;
use crate::http::client::{connect, pooled, ConnectError, PooledClient, TcpConnector};

/// Where batches go: `http://HOST:PORT/PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `host:port`, for the connection and the Host header.
    pub authority: String,
    pub path: String,
    /// `http://authority/path`, what the client dials.
    pub uri: Uri,
}

impl Target {
    pub fn parse(url: &str) -> Result<Self, AgentError> {
        let url_owned = || url.to_string();
        if url.starts_with("https://") {
            return Err(AgentError::HttpsEndpoint { url: url_owned() });
        }
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| AgentError::NotHttp { url: url_owned() })?;
        let (authority, path) = match rest.find('/') {
            Some(slash) => (&rest[..slash], &rest[slash..]),
            None => (rest, "/v1/events"),
        };
        if authority.is_empty() {
            return Err(AgentError::NoHost { url: url_owned() });
        }
        let authority = if authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        let uri = format!("http://{authority}{path}")
            .parse()
            .map_err(|source| AgentError::InvalidEndpoint {
                url: url_owned(),
                source,
            })?;
        Ok(Self {
            authority,
            path: path.to_string(),
            uri,
        })
    }
}

/// Why a batch did not get an answer (it is retried); the text is the reason in the agent's
/// warning.
#[derive(Debug, thiserror::Error)]
enum SendError {
    #[error("cannot connect to {authority}: {}", .source.reason())]
    Connect {
        authority: String,
        #[source]
        source: ConnectError,
    },
    #[error("sending to sentineld: {0}")]
    Send(#[source] hyper_util::client::legacy::Error),
    #[error("{0}")]
    Request(#[source] hyper::http::Error),
    #[error("reading sentineld's answer: {0}")]
    Answer(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// sentineld's answers are small; a proxy's error page is cut here.
const MAX_RESPONSE_BYTES: usize = 1 << 20;

pub struct HttpTransport {
    target: Target,
    authorization: Option<String>,
    timeout: Duration,
    /// Keeps its connection to sentineld alive between batches.
    client: PooledClient<Full<Bytes>, TcpConnector>,
}

impl HttpTransport {
    pub fn new(target: Target, token: Option<&str>, timeout: Duration) -> Self {
        Self {
            target,
            authorization: token
                .filter(|t| !t.is_empty())
                .map(|t| format!("Bearer {t}")),
            timeout,
            client: pooled(connect::tcp()),
        }
    }

    async fn exchange(
        &mut self,
        body: Bytes,
    ) -> Result<(StatusCode, Option<Duration>, Bytes), SendError> {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(self.target.uri.clone())
            .header(header::HOST, &self.target.authority)
            .header(header::CONTENT_TYPE, "application/x-ndjson")
            .header(
                header::USER_AGENT,
                concat!("sentinel-agent/", env!("CARGO_PKG_VERSION")),
            );
        if let Some(authorization) = &self.authorization {
            request = request.header(header::AUTHORIZATION, authorization);
        }
        let request = request.body(Full::new(body)).map_err(SendError::Request)?;
        let authority = &self.target.authority;
        let response = self.client.request(request).await.map_err(|err| {
            match ConnectError::from_client(authority, err) {
                Ok(source) => SendError::Connect {
                    authority: authority.clone(),
                    source,
                },
                Err(err) => SendError::Send(err),
            }
        })?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(SendError::Answer)?
            .to_bytes();
        Ok((status, retry_after, body))
    }
}

impl Transport for HttpTransport {
    async fn post(&mut self, body: Bytes) -> Delivery {
        let outcome = tokio::time::timeout(self.timeout, self.exchange(body)).await;
        let (status, retry_after, answer) = match outcome {
            Ok(Ok(exchange)) => exchange,
            Ok(Err(err)) => {
                return Delivery::Retry {
                    reason: err.to_string(),
                    after: None,
                }
            }
            // The timed-out exchange dropped its connection: the next batch dials anew.
            Err(_) => {
                return Delivery::Retry {
                    reason: format!("no answer from sentineld within {:?}", self.timeout),
                    after: None,
                };
            }
        };
        classify(status, retry_after, &answer)
    }
}

#[derive(Deserialize)]
struct Answer {
    accepted: u64,
    #[serde(default)]
    rejected: Vec<RejectedEvent>,
}

#[derive(Deserialize)]
struct RejectedEvent {
    index: u64,
    error: String,
}

/// Sort an HTTP answer per the ingest contract.
pub fn classify(status: StatusCode, retry_after: Option<Duration>, body: &[u8]) -> Delivery {
    let text = String::from_utf8_lossy(body);
    let message = crate::agent::parse::excerpt(text.trim());
    if status.is_success() {
        return match serde_json::from_slice::<Answer>(body) {
            Ok(answer) => Delivery::Accepted {
                accepted: answer.accepted,
                rejected: answer
                    .rejected
                    .into_iter()
                    .map(|r| (r.index, r.error))
                    .collect(),
            },
            // Not sentineld's answer shape: assume all taken rather than resend forever.
            Err(_) => Delivery::Accepted {
                accepted: 0,
                rejected: Vec::new(),
            },
        };
    }
    let retryable = status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        // The tenant detector is off: an operator fixes the daemon, the buffer keeps the events.
        || status == StatusCode::NOT_FOUND;
    if retryable {
        Delivery::Retry {
            reason: format!("sentineld answered {status}: {message}"),
            after: retry_after,
        }
    } else {
        Delivery::Refused {
            status: status.as_u16(),
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A refused connection keeps the socket's error as its cause; the retry reason reads as
    /// before.
    #[tokio::test]
    async fn a_refused_connection_keeps_its_io_error() {
        use std::error::Error;
        // a port that was just free: nothing listens there
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let target = Target::parse(&format!("http://127.0.0.1:{port}/v1/events")).unwrap();
        let mut transport = HttpTransport::new(target, None, Duration::from_secs(5));
        let err = transport.exchange(Bytes::new()).await.unwrap_err();
        let io = std::iter::successors(err.source(), |&e| e.source())
            .find_map(|s| s.downcast_ref::<std::io::Error>())
            .expect("the socket's error is kept");
        assert_eq!(io.kind(), std::io::ErrorKind::ConnectionRefused);
        assert_eq!(
            err.to_string(),
            format!("cannot connect to 127.0.0.1:{port}: {io}")
        );
        let Delivery::Retry { reason, .. } = transport.post(Bytes::new()).await else {
            panic!("a refused connection is retried")
        };
        assert!(
            reason.starts_with("cannot connect to 127.0.0.1:"),
            "{reason}"
        );
    }

    /// Batches keep going over one kept-alive connection to sentineld.
    #[tokio::test]
    async fn batches_share_one_kept_alive_connection() {
        let receiver = crate::http::client::receiver::Receiver::start().await;
        let target = Target::parse(&format!("http://{}/v1/events", receiver.address)).unwrap();
        let mut transport = HttpTransport::new(target, Some("t"), Duration::from_secs(5));
        for _ in 0..4 {
            let delivery = transport.post(Bytes::from_static(b"{}\n")).await;
            assert!(
                matches!(delivery, Delivery::Accepted { accepted: 1, .. }),
                "{delivery:?}"
            );
        }
        assert_eq!(receiver.requests(), 4);
        assert_eq!(receiver.accepted(), 1, "one connection for four batches");
    }

    #[test]
    fn targets() {
        let ok = [
            (
                "http://127.0.0.1:9137/v1/events",
                "127.0.0.1:9137",
                "/v1/events",
            ),
            (
                "http://sentinel.local/ingest?x=1",
                "sentinel.local:80",
                "/ingest?x=1",
            ),
            ("http://[::1]:9137", "[::1]:9137", "/v1/events"),
        ];
        for (url, authority, path) in ok {
            let target = Target::parse(url).unwrap();
            assert_eq!(
                (target.authority.as_str(), target.path.as_str()),
                (authority, path)
            );
        }
        for bad in [
            "https://x/v1/events",
            "ftp://x",
            "http:///v1/events",
            "127.0.0.1:9137",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn answers_per_the_ingest_contract() {
        let ok = classify(
            StatusCode::OK,
            None,
            br#"{"accepted":2,"rejected":[{"index":1,"error":"status_code 999 out of range"}]}"#,
        );
        assert_eq!(
            ok,
            Delivery::Accepted {
                accepted: 2,
                rejected: vec![(1, "status_code 999 out of range".into())]
            }
        );
        for (status, retry) in [
            (429, true),
            (503, true),
            (500, true),
            (404, true),
            (400, false),
            (401, false),
            (413, false),
        ] {
            let delivery = classify(
                StatusCode::from_u16(status).unwrap(),
                None,
                b"{\"error\":\"x\"}",
            );
            assert_eq!(
                matches!(delivery, Delivery::Retry { .. }),
                retry,
                "{status}"
            );
            assert_eq!(
                matches!(delivery, Delivery::Refused { .. }),
                !retry,
                "{status}"
            );
        }
        let later = classify(
            StatusCode::TOO_MANY_REQUESTS,
            Some(Duration::from_secs(3)),
            b"",
        );
        assert!(
            matches!(later, Delivery::Retry { after: Some(d), .. } if d == Duration::from_secs(3))
        );
    }
}
