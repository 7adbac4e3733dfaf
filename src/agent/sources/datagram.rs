//! Fire-and-forget input: UDP or Unix datagram sockets. Each datagram is one JSON event or
//! NDJSON lines with the ingest field names; events without a timestamp get the receive time.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde_json::{Map, Value};
use tokio::net::{UdpSocket, UnixDatagram};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::agent::batch::Record;
use crate::agent::config::DatagramAddress;
use crate::agent::parse::{excerpt, now_ms, LineError};
use crate::agent::stats::{Stats, Throttle};

/// The largest UDP payload; a Unix datagram longer than this is cut (and then fails to parse).
const MAX_DATAGRAM: usize = 65_536;

pub enum DatagramSocket {
    Udp(UdpSocket),
    /// The path is removed when the input stops.
    Unix(UnixDatagram, PathBuf),
}

impl DatagramSocket {
    /// Bind now, so a bad address stops the agent at start with a clear error.
    pub async fn bind(address: &DatagramAddress, mode: Option<u32>) -> std::io::Result<Self> {
        match address {
            DatagramAddress::Udp(addr) => Ok(Self::Udp(UdpSocket::bind(addr).await?)),
            DatagramAddress::Unix(path) => {
                remove_stale_socket(path)?;
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                let socket = UnixDatagram::bind(path)?;
                if let Some(mode) = mode {
                    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
                }
                Ok(Self::Unix(socket, path.clone()))
            }
        }
    }

    async fn recv(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Self::Udp(socket) => socket.recv(buf).await,
            Self::Unix(socket, _) => socket.recv(buf).await,
        }
    }

    /// Receive until cancelled, forwarding every event.
    pub async fn run(
        self,
        records: mpsc::Sender<Record>,
        stats: Arc<Stats>,
        cancel: CancellationToken,
    ) {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let mut warn = Throttle::new(Throttle::DEFAULT_INTERVAL);
        loop {
            let received = tokio::select! {
                () = cancel.cancelled() => break,
                received = self.recv(&mut buf) => received,
            };
            let len = match received {
                Ok(len) => len,
                Err(err) => {
                    if let Some(suppressed) = warn.allow(Instant::now()) {
                        tracing::warn!(suppressed, "datagram input: {err}");
                    }
                    continue;
                }
            };
            for event in events_in(&buf[..len], now_ms()) {
                match event {
                    Ok(event) => {
                        let record = Record {
                            event: Some(event),
                            position: None,
                        };
                        if records.send(record).await.is_err() {
                            return;
                        }
                    }
                    Err(reason) => {
                        let total = Stats::add(&stats.bad_datagrams, 1);
                        if let Some(suppressed) = warn.allow(Instant::now()) {
                            tracing::warn!(
                                bad_datagrams_total = total,
                                suppressed,
                                "dropped a datagram event: {reason}"
                            );
                        }
                    }
                }
            }
        }
        if let Self::Unix(_, path) = &self {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// A socket file left by a previous run would make bind fail; anything else at the path is
/// not ours to delete.
fn remove_stale_socket(path: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(path),
        _ => Ok(()),
    }
}

/// The events of one datagram (JSON objects, one per line), stamped with `now_ms` if untimed.
pub fn events_in(payload: &[u8], now_ms: u64) -> Vec<Result<String, LineError>> {
    let text = String::from_utf8_lossy(payload);
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(
            |line| match serde_json::from_str::<Map<String, Value>>(line) {
                Ok(mut object) => {
                    if !object.contains_key("timestamp") {
                        object.insert("timestamp".into(), Value::from(now_ms));
                    }
                    Ok(Value::Object(object).to_string())
                }
                Err(source) => Err(LineError::NotAnObjectDatagram {
                    line: excerpt(line),
                    source,
                }),
            },
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagram_payloads_table() {
        type Expected = Vec<Result<&'static str, &'static str>>;
        let cases: [(&[u8], Expected); 5] = [
            (
                br#"{"tenant_id":"a","endpoint":"/","status_code":200,"latency_ms":1}"#,
                vec![Ok(r#"{"endpoint":"/","latency_ms":1,"status_code":200,"tenant_id":"a","timestamp":5}"#)],
            ),
            (
                b"{\"tenant_id\":\"a\",\"timestamp\":\"2024-01-01T00:00:00Z\"}\n\n{\"tenant_id\":\"b\",\"timestamp\":7}\r\n",
                vec![
                    Ok(r#"{"tenant_id":"a","timestamp":"2024-01-01T00:00:00Z"}"#),
                    Ok(r#"{"tenant_id":"b","timestamp":7}"#),
                ],
            ),
            (b"{\"tenant_id\":\"a\"}\n[1,2]\nnot json", vec![Ok(r#"{"tenant_id":"a","timestamp":5}"#), Err("not a JSON object"), Err("not a JSON object")]),
            (b"", vec![]),
            // the event's `dims` pass through as sent (sentineld checks them)
            (
                br#"{"tenant_id":"a","dims":{"region":"eu-west","plan":"pro"},"timestamp":9}"#,
                vec![Ok(r#"{"dims":{"plan":"pro","region":"eu-west"},"tenant_id":"a","timestamp":9}"#)],
            ),
        ];
        for (payload, expected) in cases {
            let got = events_in(payload, 5);
            assert_eq!(got.len(), expected.len(), "{payload:?}");
            for (got, want) in got.iter().zip(expected) {
                match (got, want) {
                    (Ok(got), Ok(want)) => assert_eq!(got, want),
                    (Err(got), Err(want)) => {
                        assert!(got.to_string().starts_with(want), "{got}")
                    }
                    _ => panic!("{payload:?}: got {got:?}, want {want:?}"),
                }
            }
        }
    }
}
