//! `http` probe: GET a plain-http URL and accept the configured status codes (default any 2xx).

use std::time::Instant;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;

use super::{connect, CheckResult, Failure, FailureReason};

/// A parsed probe URL: where to connect and what to ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpTarget {
    pub host: String,
    pub port: u16,
    /// `host[:port]` as written, for the Host header.
    pub authority: String,
    pub path_and_query: String,
}

impl HttpTarget {
    pub fn parse(url: &str) -> Result<Self, String> {
        let uri: Uri = url
            .parse()
            .map_err(|err| format!("invalid URL \"{url}\": {err}"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err(format!(
                    "unsupported URL scheme in \"{url}\": this build probes plain http only"
                ))
            }
            _ => {
                return Err(format!(
                    "unsupported URL scheme in \"{url}\": expected http://host[:port]/path"
                ))
            }
        }
        let authority = uri
            .authority()
            .ok_or_else(|| format!("invalid URL \"{url}\": no host"))?;
        Ok(Self {
            host: authority.host().trim_matches(['[', ']']).to_string(),
            port: authority.port_u16().unwrap_or(80),
            authority: authority.as_str().to_string(),
            path_and_query: uri
                .path_and_query()
                .map_or_else(|| "/".to_string(), |p| p.as_str().to_string()),
        })
    }
}

#[derive(Debug, Clone)]
pub struct HttpProbe {
    pub target: HttpTarget,
    /// Accepted codes; empty means any 2xx.
    pub expect_status: Vec<u16>,
}

impl HttpProbe {
    fn accepts(&self, status: u16) -> bool {
        if self.expect_status.is_empty() {
            (200..300).contains(&status)
        } else {
            self.expect_status.contains(&status)
        }
    }

    pub async fn check(&self) -> CheckResult {
        let started = Instant::now();
        let result = self.request().await;
        let elapsed = started.elapsed();
        match result {
            Ok(status) if self.accepts(status) => CheckResult::success(elapsed, Some(status)),
            Ok(status) => CheckResult::failure(
                elapsed,
                Failure::new(
                    FailureReason::HttpStatus,
                    format!("unexpected status {status}"),
                ),
                Some(status),
            ),
            Err(failure) => CheckResult::failure(elapsed, failure, None),
        }
    }

    async fn request(&self) -> Result<u16, Failure> {
        let stream = connect(&self.target.host, self.target.port).await?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|err| Failure::new(FailureReason::Protocol, err.to_string()))?;
        let connection = tokio::spawn(connection);
        let request = Request::get(self.target.path_and_query.as_str())
            .header(hyper::header::HOST, self.target.authority.as_str())
            .header(
                hyper::header::USER_AGENT,
                concat!("sentineld/", env!("CARGO_PKG_VERSION")),
            )
            .header(hyper::header::CONNECTION, "close")
            .body(Empty::<Bytes>::new())
            .map_err(|err| Failure::new(FailureReason::Protocol, err.to_string()))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|err| Failure::new(FailureReason::Protocol, err.to_string()));
        connection.abort();
        Ok(response?.status().as_u16())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_table() {
        let ok = [
            (
                "http://127.0.0.1:9137/healthz",
                "127.0.0.1",
                9137,
                "/healthz",
            ),
            ("http://example.test/", "example.test", 80, "/"),
            ("http://example.test", "example.test", 80, "/"),
            ("http://[::1]:8080/a?b=c", "::1", 8080, "/a?b=c"),
        ];
        for (url, host, port, path) in ok {
            let target = HttpTarget::parse(url).unwrap();
            assert_eq!((target.host.as_str(), target.port), (host, port), "{url}");
            assert_eq!(target.path_and_query, path, "{url}");
        }
        for bad in ["ftp://x/", "https://x/", "not a url", "/relative"] {
            assert!(HttpTarget::parse(bad).is_err(), "{bad}");
        }
    }
}
