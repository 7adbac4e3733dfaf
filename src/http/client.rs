//! Outbound JSON POST over HTTP or HTTPS (the host's trust store), bounded in time and in the
//! answer read: what notifications and the optional AI summary send with.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::Request;
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use thiserror::Error;

use crate::probe::{HttpTarget, TlsVerification};

/// Why a POST got no 2xx answer; the message is what notifications keep as `last_error`.
#[derive(Debug, Error)]
pub enum PostError {
    /// The URL, the TLS setup or the server name was refused before anything was sent.
    #[error("{0}")]
    Target(String),
    #[error("{0}")]
    Connect(String),
    #[error("TLS handshake with {authority}: {source}")]
    Tls {
        authority: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Http(#[from] hyper::Error),
    #[error("{0}")]
    Request(#[from] hyper::http::Error),
    #[error("no answer within {}", humantime::format_duration(*.0))]
    Timeout(Duration),
    /// The receiver answered, but not 2xx: its status and the start of its answer.
    #[error("HTTP {status}: {excerpt}")]
    Status { status: u16, excerpt: String },
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

fn tls_config() -> Result<Arc<ClientConfig>, PostError> {
    static CONFIG: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            crate::probe::client_config(&TlsVerification::System).map_err(|err| err.to_string())
        })
        .clone()
        .map_err(PostError::Target)
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
    let post = post_inner(url, headers, body, max_answer);
    match tokio::time::timeout(timeout, post).await {
        Ok(result) => result,
        Err(_) => Err(PostError::Timeout(timeout)),
    }
}

async fn post_inner(
    url: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
    max_answer: usize,
) -> Result<Answer, PostError> {
    let target = HttpTarget::parse(url).map_err(PostError::Target)?;
    let stream = crate::probe::connect(&target.host, target.port)
        .await
        .map_err(|failure| PostError::Connect(failure.detail))?;
    if target.tls {
        let name = crate::probe::server_name(&target.host)
            .map_err(|err| PostError::Target(err.to_string()))?;
        let stream = tokio_rustls::TlsConnector::from(tls_config()?)
            .connect(name, stream)
            .await
            .map_err(|source| PostError::Tls {
                authority: target.authority.clone(),
                source,
            })?;
        exchange(stream, &target, headers, body, max_answer).await
    } else {
        exchange(stream, &target, headers, body, max_answer).await
    }
}

async fn exchange<S>(
    stream: S,
    target: &HttpTarget,
    headers: &[(String, String)],
    body: Vec<u8>,
    max_answer: usize,
) -> Result<Answer, PostError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let connection = tokio::spawn(connection);
    let mut request = Request::post(target.path_and_query.as_str())
        .header(hyper::header::HOST, target.authority.as_str())
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(
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
    let result = match sender.send_request(request).await {
        Ok(response) => {
            let status = response.status().as_u16();
            let body = Limited::new(response.into_body(), max_answer)
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            Ok(Answer { status, body })
        }
        Err(err) => Err(PostError::Http(err)),
    };
    connection.abort();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let tls = PostError::Tls {
            authority: "example.invalid:443".into(),
            source: std::io::Error::other("bad certificate"),
        };
        assert_eq!(
            tls.to_string(),
            "TLS handshake with example.invalid:443: bad certificate"
        );
        assert!(std::error::Error::source(&tls).is_some());
        let ok = Answer {
            status: 204,
            body: Bytes::new(),
        };
        assert_eq!(ok.success().unwrap(), Bytes::new());
    }
}
