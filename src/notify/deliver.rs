//! The network edge of notifications: one JSON POST over HTTP or HTTPS (the host's trust
//! store), and a per-channel sliding-minute rate limit.

use std::collections::VecDeque;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::Request;
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;

use crate::probe::{HttpTarget, TlsVerification};

/// A receiver that has not answered by then counts as down for this attempt.
const POST_TIMEOUT: Duration = Duration::from_secs(10);

/// Error bodies are kept (shortened) in the outbox's last_error; no more is read.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

fn tls_config() -> Result<Arc<ClientConfig>, String> {
    static CONFIG: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| crate::probe::client_config(&TlsVerification::System))
        .clone()
}

/// POST `body` as JSON to `url` with extra `headers`; Ok when the receiver answered 2xx.
pub async fn post(url: &str, headers: &[(String, String)], body: Vec<u8>) -> Result<(), String> {
    match tokio::time::timeout(POST_TIMEOUT, post_inner(url, headers, body)).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {}s", POST_TIMEOUT.as_secs())),
    }
}

async fn post_inner(url: &str, headers: &[(String, String)], body: Vec<u8>) -> Result<(), String> {
    let target = HttpTarget::parse(url)?;
    let stream = crate::probe::connect(&target.host, target.port)
        .await
        .map_err(|failure| failure.detail)?;
    if target.tls {
        let name = crate::probe::server_name(&target.host)?;
        let stream = tokio_rustls::TlsConnector::from(tls_config()?)
            .connect(name, stream)
            .await
            .map_err(|err| format!("TLS handshake with {}: {err}", target.authority))?;
        exchange(stream, &target, headers, body).await
    } else {
        exchange(stream, &target, headers, body).await
    }
}

async fn exchange<S>(
    stream: S,
    target: &HttpTarget,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> Result<(), String>
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
    for (name, value) in headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let request = request
        .body(Full::new(Bytes::from(body)))
        .map_err(|err| err.to_string())?;
    let result = match sender.send_request(request).await {
        Ok(response) => {
            let status = response.status();
            let answer = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            match status.is_success() {
                true => Ok(()),
                false => Err(format!(
                    "HTTP {}: {}",
                    status.as_u16(),
                    String::from_utf8_lossy(&answer)
                        .chars()
                        .take(200)
                        .collect::<String>()
                )),
            }
        }
        Err(err) => Err(err.to_string()),
    };
    connection.abort();
    result
}

/// At most `per_minute` sends in any 60 s.
#[derive(Debug)]
pub struct RateLimit {
    per_minute: usize,
    sent: VecDeque<Instant>,
}

impl RateLimit {
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute: per_minute.max(1) as usize,
            sent: VecDeque::new(),
        }
    }

    /// None: send now (and count it). Some(wait): over the limit for this long.
    pub fn take(&mut self, now: Instant) -> Option<Duration> {
        let minute = Duration::from_secs(60);
        while self
            .sent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= minute)
        {
            self.sent.pop_front();
        }
        if self.sent.len() >= self.per_minute {
            let oldest = *self.sent.front().expect("full window is not empty");
            return Some(minute - now.duration_since(oldest));
        }
        self.sent.push_back(now);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_slides_over_a_minute() {
        let start = Instant::now();
        let mut limit = RateLimit::new(2);
        assert_eq!(limit.take(start), None);
        assert_eq!(limit.take(start + Duration::from_secs(10)), None);
        assert_eq!(
            limit.take(start + Duration::from_secs(20)),
            Some(Duration::from_secs(40))
        );
        assert_eq!(limit.take(start + Duration::from_secs(60)), None);
        assert_eq!(
            limit.take(start + Duration::from_secs(61)),
            Some(Duration::from_secs(9))
        );
    }
}
