//! `http` probe: GET a plain-http URL and accept the configured status codes (default any 2xx).

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use regex::Regex;

use super::{connect, excerpt, CheckResult, Failure, FailureReason};

/// Most body bytes read for assertions; a health endpoint that sends more is misbehaving.
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// A parsed probe URL: where to connect and what to ask for.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpTarget {
    /// `https`: speak TLS after connecting.
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// `host[:port]` as written, without any `user:password@`: the Host header, and what
    /// messages show.
    pub authority: String,
    pub path_and_query: String,
    /// `user:password` from the URL (percent-decoded): sent as HTTP Basic auth, never shown.
    userinfo: Option<String>,
}

impl std::fmt::Debug for HttpTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display())
    }
}

impl HttpTarget {
    pub fn parse(url: &str) -> Result<Self, String> {
        let uri: Uri = url
            .parse()
            .map_err(|err| format!("invalid URL \"{url}\": {err}"))?;
        let tls = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => {
                return Err(format!(
                "unsupported URL scheme in \"{url}\": expected http:// or https://host[:port]/path"
            ))
            }
        };
        let authority = uri
            .authority()
            .ok_or_else(|| format!("invalid URL \"{url}\": no host"))?;
        let (userinfo, host_port) = match authority.as_str().rsplit_once('@') {
            Some((userinfo, host_port)) => (Some(userinfo), host_port),
            None => (None, authority.as_str()),
        };
        Ok(Self {
            tls,
            host: authority.host().trim_matches(['[', ']']).to_string(),
            port: authority.port_u16().unwrap_or(if tls { 443 } else { 80 }),
            authority: host_port.to_string(),
            path_and_query: uri
                .path_and_query()
                .map_or_else(|| "/".to_string(), |p| p.as_str().to_string()),
            userinfo: userinfo.map(|u| {
                percent_encoding::percent_decode_str(u)
                    .decode_utf8_lossy()
                    .into_owned()
            }),
        })
    }

    /// `https://host[:port]/path`: the scheme as configured, without credentials or query
    /// string, so it is safe on the status page, in `sentinelctl status` and in messages.
    pub fn display(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        let path = self
            .path_and_query
            .split_once('?')
            .map_or(self.path_and_query.as_str(), |(path, _)| path);
        format!("{scheme}://{}{path}", self.authority)
    }

    /// `Authorization: Basic ...` for a URL that carries `user:password@`.
    pub fn basic_auth(&self) -> Option<String> {
        use base64::Engine as _;
        let userinfo = self.userinfo.as_ref()?;
        Some(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(userinfo)
        ))
    }
}

#[derive(Debug, Clone)]
pub struct HttpProbe {
    pub target: HttpTarget,
    pub method: Method,
    pub headers: Vec<(String, String)>,
    /// Accepted codes; empty means any 2xx.
    pub expect_status: Vec<u16>,
    pub body_regex: Option<Regex>,
    /// JSON pointer and the value expected there.
    pub expect_json: Option<(String, serde_json::Value)>,
    /// For https targets: how the server certificate is verified.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl HttpProbe {
    pub fn get(target: HttpTarget) -> Self {
        Self {
            target,
            method: Method::GET,
            headers: Vec::new(),
            expect_status: Vec::new(),
            body_regex: None,
            expect_json: None,
            tls: None,
        }
    }

    fn reads_body(&self) -> bool {
        self.body_regex.is_some() || self.expect_json.is_some()
    }

    /// Check the body against the configured assertions.
    fn assert_body(&self, body: &[u8]) -> Result<(), Failure> {
        let assertion = |detail: String| Failure::new(FailureReason::Assertion, detail);
        if let Some(regex) = &self.body_regex {
            let text = String::from_utf8_lossy(body);
            if !regex.is_match(&text) {
                return Err(assertion(format!(
                    "body does not match /{regex}/: {}",
                    excerpt(&text)
                )));
            }
        }
        if let Some((pointer, expected)) = &self.expect_json {
            let document: serde_json::Value = serde_json::from_slice(body).map_err(|err| {
                assertion(format!(
                    "body is not JSON ({err}): {}",
                    excerpt(&String::from_utf8_lossy(body))
                ))
            })?;
            match document.pointer(pointer) {
                Some(found) if found == expected => {}
                Some(found) => {
                    return Err(assertion(format!(
                        "JSON {pointer} is {found}, expected {expected}"
                    )))
                }
                None => return Err(assertion(format!("JSON has no {pointer}"))),
            }
        }
        Ok(())
    }
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
            Ok((status, body)) if self.accepts(status) => match self.assert_body(&body) {
                Ok(()) => CheckResult::success(elapsed, Some(status)),
                Err(failure) => CheckResult::failure(elapsed, failure, Some(status)),
            },
            Ok((status, _)) => CheckResult::failure(
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

    async fn request(&self) -> Result<(u16, Bytes), Failure> {
        let stream = connect(&self.target.host, self.target.port).await?;
        match (&self.tls, self.target.tls) {
            (Some(config), true) => {
                let tls_failure = |detail: String| Failure::new(FailureReason::Tls, detail);
                let name = super::tls::server_name(&self.target.host)
                    .map_err(|err| tls_failure(err.to_string()))?;
                let stream = tokio_rustls::TlsConnector::from(Arc::clone(config))
                    .connect(name, stream)
                    .await
                    .map_err(|err| {
                        tls_failure(format!(
                            "TLS handshake with {}: {err}",
                            self.target.authority
                        ))
                    })?;
                self.exchange(stream).await
            }
            (None, true) => Err(Failure::new(
                FailureReason::Tls,
                "no TLS configuration for an https target",
            )),
            (_, false) => self.exchange(stream).await,
        }
    }

    /// One request over an established connection (plain or TLS).
    async fn exchange<S>(&self, stream: S) -> Result<(u16, Bytes), Failure>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|err| Failure::new(FailureReason::Protocol, err.to_string()))?;
        let connection = tokio::spawn(connection);
        let mut request = Request::builder()
            .method(self.method.clone())
            .uri(self.target.path_and_query.as_str())
            .header(hyper::header::HOST, self.target.authority.as_str());
        let configured_auth = self
            .headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("authorization"));
        if let (Some(auth), false) = (self.target.basic_auth(), configured_auth) {
            request = request.header(hyper::header::AUTHORIZATION, auth);
        }
        for (name, value) in &self.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let request = request
            .header(
                hyper::header::USER_AGENT,
                concat!("sentineld/", env!("CARGO_PKG_VERSION")),
            )
            .header(hyper::header::CONNECTION, "close")
            .body(Empty::<Bytes>::new())
            .map_err(|err| Failure::new(FailureReason::Protocol, err.to_string()))?;
        let protocol = |err: String| Failure::new(FailureReason::Protocol, err);
        let response = sender
            .send_request(request)
            .await
            .map_err(|err| protocol(err.to_string()));
        let result = match response {
            Ok(response) if self.reads_body() => {
                let status = response.status().as_u16();
                Limited::new(response.into_body(), MAX_BODY_BYTES)
                    .collect()
                    .await
                    .map(|body| (status, body.to_bytes()))
                    .map_err(|err| protocol(format!("reading the body: {err}")))
            }
            Ok(response) => Ok((response.status().as_u16(), Bytes::new())),
            Err(failure) => Err(failure),
        };
        connection.abort();
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_show_no_credentials_and_no_query() {
        let target =
            HttpTarget::parse("https://us%3Aer:p%40ss@example.com:8443/path?key=secret").unwrap();
        assert_eq!(target.display(), "https://example.com:8443/path");
        assert_eq!(target.authority, "example.com:8443");
        assert_eq!(target.path_and_query, "/path?key=secret");
        assert_eq!(
            (target.host.as_str(), target.port, target.tls),
            ("example.com", 8443, true)
        );
        // base64("us:er:p@ss")
        assert_eq!(
            target.basic_auth().as_deref(),
            Some("Basic dXM6ZXI6cEBzcw==")
        );
        assert!(!format!("{target:?}").contains("secret"));
        let plain = HttpTarget::parse("http://127.0.0.1:9/healthz").unwrap();
        assert_eq!(plain.display(), "http://127.0.0.1:9/healthz");
        assert_eq!(plain.basic_auth(), None);
    }

    #[test]
    fn body_assertions_table() {
        let target = HttpTarget::parse("http://127.0.0.1/").unwrap();
        let with = |regex: Option<&str>, json: Option<(&str, serde_json::Value)>| HttpProbe {
            body_regex: regex.map(|r| Regex::new(r).unwrap()),
            expect_json: json.map(|(p, v)| (p.to_string(), v)),
            ..HttpProbe::get(target.clone())
        };
        let ok = serde_json::json!("ok");
        let cases = [
            (
                with(Some("healthy"), None),
                r#"{"status":"healthy"}"#,
                Ok(()),
            ),
            (
                with(Some("^ok$"), None),
                "not ok",
                Err("body does not match /^ok$/"),
            ),
            (
                with(None, Some(("/status", ok.clone()))),
                r#"{"status":"ok"}"#,
                Ok(()),
            ),
            (
                with(None, Some(("/checks/0/ok", serde_json::json!(true)))),
                r#"{"checks":[{"ok":true}]}"#,
                Ok(()),
            ),
            (
                with(None, Some(("/status", ok.clone()))),
                r#"{"status":"degraded"}"#,
                Err(r#"JSON /status is "degraded", expected "ok""#),
            ),
            (
                with(None, Some(("/status", ok.clone()))),
                r#"{}"#,
                Err("JSON has no /status"),
            ),
            (
                with(None, Some(("/status", ok))),
                "<html>",
                Err("body is not JSON"),
            ),
        ];
        for (probe, body, expected) in cases {
            match (probe.assert_body(body.as_bytes()), expected) {
                (Ok(()), Ok(())) => {}
                (Err(failure), Err(start)) => {
                    assert_eq!(failure.reason, FailureReason::Assertion);
                    assert!(
                        failure.detail.starts_with(start),
                        "{body}: {}",
                        failure.detail
                    );
                }
                (got, want) => panic!("{body}: got {got:?}, want {want:?}"),
            }
        }
    }

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
        let https = HttpTarget::parse("https://example.test/x").unwrap();
        assert!(https.tls);
        assert_eq!(https.port, 443);
        for bad in ["ftp://x/", "not a url", "/relative"] {
            assert!(HttpTarget::parse(bad).is_err(), "{bad}");
        }
    }
}
