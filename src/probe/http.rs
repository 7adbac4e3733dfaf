//! `http` probe: one request over a fresh connection per check (through the shared connector of
//! `http::client`), accepting the configured status codes (default any 2xx) and body assertions.

use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::{Method, Request};
use regex::Regex;
use tower_service::Service;

use super::{excerpt, CheckResult, Failure, FailureReason};
use crate::http::client::{ConnectError, ConnectStage, Connector, HttpTarget};

/// Most body bytes read for assertions; a health endpoint that sends more is misbehaving.
const MAX_BODY_BYTES: usize = 1024 * 1024;

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
    /// Dials each check's connection; for https targets it carries how the server
    /// certificate is verified. Built once with the probe, never per check.
    pub connector: Connector,
}

impl HttpProbe {
    pub fn get(target: HttpTarget, connector: Connector) -> Self {
        Self {
            target,
            method: Method::GET,
            headers: Vec::new(),
            expect_status: Vec::new(),
            body_regex: None,
            expect_json: None,
            connector,
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

    /// One request over a new connection, driven in this task (no spawned connection task):
    /// a check must prove that a connection can be made, so nothing is pooled.
    async fn request(&self) -> Result<(u16, Bytes), Failure> {
        let io = self
            .connector
            .clone()
            .call(self.target.uri().clone())
            .await
            .map_err(|err| connect_failure(ConnectError::classify(&self.target.authority, err)))?;
        let protocol = |err: String| Failure::new(FailureReason::Protocol, err);
        let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|err| protocol(err.to_string()))?;
        let request = self.build_request()?;
        let exchange = async {
            let response = sender
                .send_request(request)
                .await
                .map_err(|err| protocol(err.to_string()))?;
            let status = response.status().as_u16();
            if !self.reads_body() {
                return Ok((status, Bytes::new()));
            }
            Limited::new(response.into_body(), MAX_BODY_BYTES)
                .collect()
                .await
                .map(|body| (status, body.to_bytes()))
                .map_err(|err| protocol(format!("reading the body: {err}")))
        };
        tokio::pin!(exchange, connection);
        let mut connection_done = false;
        loop {
            tokio::select! {
                result = &mut exchange => return result,
                // The connection ended (closed or broken): the exchange now sees why.
                _ = &mut connection, if !connection_done => connection_done = true,
            }
        }
    }

    fn build_request(&self) -> Result<Request<Empty<Bytes>>, Failure> {
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
        request
            .header(
                hyper::header::USER_AGENT,
                concat!("sentineld/", env!("CARGO_PKG_VERSION")),
            )
            .header(hyper::header::CONNECTION, "close")
            .body(Empty::<Bytes>::new())
            .map_err(|err| Failure::new(FailureReason::Protocol, err.to_string()))
    }
}

/// A connection that could not be made, as a probe failure with its reason.
fn connect_failure(err: ConnectError) -> Failure {
    let reason = match err.stage {
        ConnectStage::Resolve => FailureReason::Dns,
        ConnectStage::Connect(std::io::ErrorKind::ConnectionRefused) => FailureReason::Refused,
        ConnectStage::Connect(std::io::ErrorKind::TimedOut) => FailureReason::Timeout,
        ConnectStage::Connect(_) => FailureReason::Io,
        ConnectStage::Tls => FailureReason::Tls,
    };
    Failure::new(reason, err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_assertions_table() {
        let target = HttpTarget::parse("http://127.0.0.1/").unwrap();
        let with = |regex: Option<&str>, json: Option<(&str, serde_json::Value)>| HttpProbe {
            body_regex: regex.map(|r| Regex::new(r).unwrap()),
            expect_json: json.map(|(p, v)| (p.to_string(), v)),
            ..HttpProbe::get(
                target.clone(),
                crate::http::client::connect::plain().unwrap(),
            )
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

    /// Each check dials its own connection (a check proves a new connection can be made),
    /// through the shared connector, even to a server that would keep connections alive.
    #[tokio::test]
    async fn each_check_dials_a_new_connection() {
        let receiver = crate::http::client::receiver::Receiver::start().await;
        let target = HttpTarget::parse(&format!("http://{}/healthz", receiver.address)).unwrap();
        let probe = HttpProbe {
            expect_json: Some(("/accepted".into(), serde_json::json!(1))),
            ..HttpProbe::get(target, crate::http::client::connect::plain().unwrap())
        };
        for _ in 0..3 {
            let result = probe.check().await;
            assert!(result.is_success(), "{result:?}");
            assert_eq!(result.status_code, Some(200));
        }
        assert_eq!(receiver.accepted(), 3);
    }

    /// Refused, TLS and protocol failures keep their reasons and messages.
    #[tokio::test]
    async fn failures_keep_their_reason_and_message() {
        let plain = crate::http::client::connect::plain().unwrap();
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let target = HttpTarget::parse(&format!("http://{closed}/")).unwrap();
        let failure = HttpProbe::get(target, plain.clone())
            .check()
            .await
            .failure
            .unwrap();
        assert_eq!(failure.reason, FailureReason::Refused);
        assert!(
            failure
                .detail
                .starts_with(&format!("connect {closed}: Connection refused")),
            "{failure:?}"
        );

        // accepts and hangs up: TLS fails for https, the HTTP exchange fails for http
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                drop(stream);
            }
        });
        let config =
            crate::http::client::tls::client_config(&crate::http::client::TlsVerification::Off)
                .unwrap();
        let https = HttpTarget::parse(&format!("https://{address}/")).unwrap();
        let failure = HttpProbe::get(https, crate::http::client::connector(config))
            .check()
            .await
            .failure
            .unwrap();
        assert_eq!(failure.reason, FailureReason::Tls, "{failure:?}");
        assert!(
            failure
                .detail
                .starts_with(&format!("TLS handshake with {address}: ")),
            "{failure:?}"
        );
        let http = HttpTarget::parse(&format!("http://{address}/")).unwrap();
        let failure = HttpProbe::get(http, plain).check().await.failure.unwrap();
        assert_eq!(failure.reason, FailureReason::Protocol, "{failure:?}");
    }
}
