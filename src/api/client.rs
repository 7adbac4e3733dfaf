//! The control-socket client `sentinelctl` uses: one request per connection to a [`Target`] of the
//! route table, errors that tell a person what to do next.

use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use thiserror::Error;
use tokio::net::UnixStream;

use super::peer::{Accounts, SystemAccounts};
use super::routes::Target;
use super::types::ErrorResponse;

#[derive(Debug, Error)]
pub enum ClientError {
    #[error("cannot connect to {path}: no such file — is sentineld running? (pick another socket with --socket)")]
    NoSocket { path: PathBuf },
    #[error("cannot connect to {path}: permission denied — add your user to group {group}")]
    PermissionDenied { path: PathBuf, group: String },
    #[error(
        "cannot connect to {path}: connection refused — sentineld is not running (stale socket)"
    )]
    Refused { path: PathBuf },
    #[error("cannot connect to {path}: {source}")]
    Connect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("lost the connection to sentineld: {0}")]
    Protocol(#[from] hyper::Error),
    /// The daemon answered with an error status; `message` is its explanation.
    #[error("{message}")]
    Api { status: u16, message: String },
    #[error("unexpected answer from sentineld: {0}")]
    Decode(#[source] serde_json::Error),
    #[error("cannot encode the request body: {0}")]
    Encode(#[source] serde_json::Error),
    #[error("cannot build the request for {uri}: {source}")]
    Request {
        uri: String,
        #[source]
        source: hyper::http::Error,
    },
}

impl ClientError {
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

pub struct ControlClient {
    socket: PathBuf,
}

impl ControlClient {
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        Self {
            socket: socket.into(),
        }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Call `target` with the route's method; a 2xx answer's JSON is decoded into `T`.
    pub async fn call<T: DeserializeOwned>(
        &self,
        target: impl Into<Target>,
    ) -> Result<T, ClientError> {
        decode(self.send(&target.into(), Bytes::new()).await?).await
    }

    /// Call with a JSON body (chaos start: a profile and duration, or an ad-hoc spec).
    pub async fn call_json<T: DeserializeOwned>(
        &self,
        target: impl Into<Target>,
        body: &impl serde::Serialize,
    ) -> Result<T, ClientError> {
        let body = serde_json::to_vec(body).map_err(ClientError::Encode)?;
        decode(self.send(&target.into(), Bytes::from(body)).await?).await
    }

    /// Call a route whose error answers also carry a typed body (reload: a rejection is a
    /// report too).
    pub async fn call_report<T: DeserializeOwned>(
        &self,
        target: impl Into<Target>,
    ) -> Result<(u16, T), ClientError> {
        let response = self.send(&target.into(), Bytes::new()).await?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        match serde_json::from_slice::<T>(&body) {
            Ok(value) => Ok((status, value)),
            Err(_) => Err(api_error(status, &body)),
        }
    }

    /// Call a streaming route and hand each complete line to `on_line` until the daemon ends it.
    pub async fn stream_lines(
        &self,
        target: impl Into<Target>,
        mut on_line: impl FnMut(&[u8]),
    ) -> Result<(), ClientError> {
        self.stream_lines_until(target, |line| {
            on_line(line);
            true
        })
        .await
    }

    /// Like [`Self::stream_lines`], but stop (and hang up) once `on_line` answers false.
    pub async fn stream_lines_until(
        &self,
        target: impl Into<Target>,
        mut on_line: impl FnMut(&[u8]) -> bool,
    ) -> Result<(), ClientError> {
        let response = self.send(&target.into(), Bytes::new()).await?;
        let status = response.status();
        let mut body = response.into_body();
        if status != StatusCode::OK {
            let bytes = body.collect().await?.to_bytes();
            return Err(api_error(status.as_u16(), &bytes));
        }
        let mut pending = Vec::new();
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame?.into_data() {
                pending.extend_from_slice(&data);
                while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=end).collect();
                    if !on_line(&line[..line.len() - 1]) {
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
    }

    async fn send(&self, target: &Target, body: Bytes) -> Result<Response<Incoming>, ClientError> {
        let stream = UnixStream::connect(&self.socket)
            .await
            .map_err(|err| self.connect_error(err))?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let uri = target.uri();
        let request = Request::builder()
            .method(target.method())
            .uri(&uri)
            .header(hyper::header::HOST, "sentineld")
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))
            .map_err(|source| ClientError::Request { uri, source })?;
        Ok(sender.send_request(request).await?)
    }

    fn connect_error(&self, err: std::io::Error) -> ClientError {
        let path = self.socket.clone();
        match err.kind() {
            ErrorKind::NotFound => ClientError::NoSocket { path },
            ErrorKind::PermissionDenied => {
                let group = std::fs::metadata(&path)
                    .ok()
                    .and_then(|meta| SystemAccounts.group_name(meta.gid()))
                    .unwrap_or_else(|| crate::paths::DEFAULT_SOCKET_GROUP.to_string());
                ClientError::PermissionDenied { path, group }
            }
            ErrorKind::ConnectionRefused => ClientError::Refused { path },
            _ => ClientError::Connect { path, source: err },
        }
    }
}

async fn decode<T: DeserializeOwned>(response: Response<Incoming>) -> Result<T, ClientError> {
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    if !status.is_success() {
        return Err(api_error(status.as_u16(), &body));
    }
    serde_json::from_slice(&body).map_err(ClientError::Decode)
}

fn api_error(status: u16, body: &[u8]) -> ClientError {
    let message = serde_json::from_slice::<ErrorResponse>(body)
        .map(|e| e.error)
        .unwrap_or_else(|_| format!("HTTP {status}: {}", String::from_utf8_lossy(body).trim()));
    ClientError::Api { status, message }
}
