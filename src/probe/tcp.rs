//! `tcp` probe: connect to host:port; optionally send bytes and expect an answer matching a regex.

use std::time::Instant;

use regex::bytes::Regex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{connect, excerpt, split_host_port, CheckResult, Failure, FailureReason};

/// Bytes read while waiting for the expected answer; banners and replies are small.
const MAX_ANSWER_BYTES: usize = 16 * 1024;

#[derive(Debug, Clone)]
pub struct TcpProbe {
    pub host: String,
    pub port: u16,
    pub send: Option<Vec<u8>>,
    pub expect: Option<Regex>,
}

impl TcpProbe {
    pub fn new(address: &str) -> Option<Self> {
        let (host, port) = split_host_port(address)?;
        Some(Self {
            host,
            port,
            send: None,
            expect: None,
        })
    }

    pub async fn check(&self) -> CheckResult {
        let started = Instant::now();
        CheckResult::timed(started, self.converse().await)
    }

    async fn converse(&self) -> Result<(), Failure> {
        let mut stream = connect(&self.host, self.port).await?;
        let io = |err: std::io::Error| Failure::new(FailureReason::Protocol, err.to_string());
        if let Some(bytes) = &self.send {
            stream.write_all(bytes).await.map_err(io)?;
        }
        let Some(expect) = &self.expect else {
            return Ok(());
        };
        // Read until the answer matches, the peer closes, or the buffer is full; the caller's
        // timeout bounds the wait.
        let mut answer = Vec::new();
        let mut chunk = [0u8; 2048];
        loop {
            let n = stream.read(&mut chunk).await.map_err(io)?;
            answer.extend_from_slice(&chunk[..n]);
            if expect.is_match(&answer) {
                return Ok(());
            }
            if n == 0 || answer.len() >= MAX_ANSWER_BYTES {
                return Err(Failure::new(
                    FailureReason::Assertion,
                    format!(
                        "answer does not match /{expect}/: {}",
                        excerpt(&String::from_utf8_lossy(&answer))
                    ),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::net::TcpListener;

    use super::*;

    /// A one-connection server that answers `reply` after reading a line.
    async fn server(reply: &'static [u8]) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut line = [0u8; 64];
            let _ = stream.read(&mut line).await;
            let _ = stream.write_all(reply).await;
        });
        address
    }

    #[tokio::test]
    async fn send_expect_table() {
        let cases: [(&[u8], &str, Option<FailureReason>); 3] = [
            (b"+PONG\r\n", r"^\+PONG", None),
            (b"-ERR busy\r\n", r"^\+PONG", Some(FailureReason::Assertion)),
            (b"", r"^\+PONG", Some(FailureReason::Assertion)),
        ];
        for (reply, expect, expected) in cases {
            let mut probe = TcpProbe::new(&server(reply).await).unwrap();
            probe.send = Some(b"PING\r\n".to_vec());
            probe.expect = Some(Regex::new(expect).unwrap());
            let result = probe.check().await;
            assert_eq!(
                result.failure.as_ref().map(|f| f.reason),
                expected,
                "{reply:?}: {:?}",
                result.failure
            );
        }
    }
}
