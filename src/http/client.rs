//! Outbound JSON POST over HTTP or HTTPS (the host's trust store), bounded in time and in the
//! answer read: what notifications and the optional AI summary send with.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::Request;
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;

use crate::probe::{HttpTarget, TlsVerification};

/// A receiver's answer: status and (at most the asked number of) body bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: Bytes,
}

impl Answer {
    /// Ok(body) for 2xx, else "HTTP 503: <first 200 characters>".
    pub fn success(self) -> Result<Bytes, String> {
        match (200..300).contains(&self.status) {
            true => Ok(self.body),
            false => Err(format!(
                "HTTP {}: {}",
                self.status,
                String::from_utf8_lossy(&self.body)
                    .chars()
                    .take(200)
                    .collect::<String>()
            )),
        }
    }
}

fn tls_config() -> Result<Arc<ClientConfig>, String> {
    static CONFIG: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            crate::probe::client_config(&TlsVerification::System).map_err(|err| err.to_string())
        })
        .clone()
}

/// POST `body` as JSON to `url` with extra `headers`; at most `max_answer` bytes of the answer
/// are read, and everything must be done within `timeout`.
pub async fn post_json(
    url: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
    timeout: Duration,
    max_answer: usize,
) -> Result<Answer, String> {
    let post = post_inner(url, headers, body, max_answer);
    match tokio::time::timeout(timeout, post).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "no answer within {}",
            humantime::format_duration(timeout)
        )),
    }
}

async fn post_inner(
    url: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
    max_answer: usize,
) -> Result<Answer, String> {
    let target = HttpTarget::parse(url)?;
    let stream = crate::probe::connect(&target.host, target.port)
        .await
        .map_err(|failure| failure.detail)?;
    if target.tls {
        let name = crate::probe::server_name(&target.host).map_err(|err| err.to_string())?;
        let stream = tokio_rustls::TlsConnector::from(tls_config()?)
            .connect(name, stream)
            .await
            .map_err(|err| format!("TLS handshake with {}: {err}", target.authority))?;
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
) -> Result<Answer, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|err| err.to_string())?;
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
    let request = request
        .body(Full::new(Bytes::from(body)))
        .map_err(|err| err.to_string())?;
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
        Err(err) => Err(err.to_string()),
    };
    connection.abort();
    result
}
