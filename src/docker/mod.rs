//! The Docker engine edge: one client per daemon (API version negotiated on first use) and the
//! engine's event stream, re-published on the bus so probes act on a death at once.
//! `discovery` and `sightings` turn containers into probes (`[docker] discover`).

pub mod config;
pub mod discovery;
pub mod sightings;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bollard::query_parameters::EventsOptionsBuilder;
use bollard::Docker;
use futures_util::StreamExt;
use thiserror::Error;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::event::{Bus, ContainerAction, EventKind};

pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";

/// Request timeout for engine calls, in seconds; probes bound their own checks more tightly.
const REQUEST_TIMEOUT_SECS: u64 = 30;

/// Container actions worth re-checking a probe for.
pub const WATCHED_ACTIONS: [&str; 7] = [
    "die",
    "oom",
    "health_status",
    "start",
    "restart",
    "stop",
    "kill",
];

#[derive(Debug, Error)]
pub enum DockerError {
    #[error("cannot reach the Docker engine at {socket}: {source}")]
    Unreachable {
        socket: PathBuf,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("container {container} does not exist")]
    NoSuchContainer { container: String },
    #[error("Docker engine error for {container}: {source}")]
    Api {
        container: String,
        #[source]
        source: bollard::errors::Error,
    },
}

/// A lazily connected engine client, shared by every Docker probe (and later the healer).
#[derive(Clone)]
pub struct DockerEngine {
    socket: PathBuf,
    client: Arc<Mutex<Option<Docker>>>,
}

impl std::fmt::Debug for DockerEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerEngine")
            .field("socket", &self.socket)
            .finish()
    }
}

impl DockerEngine {
    pub fn new(socket: &Path) -> Self {
        Self {
            socket: socket.to_path_buf(),
            client: Arc::default(),
        }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The client, connecting and negotiating the API version on first use: Debian's 20.10
    /// engine speaks 1.41, newer engines refuse clients that old, so no fixed version fits all.
    pub async fn client(&self) -> Result<Docker, DockerError> {
        let mut slot = self.client.lock().await;
        if let Some(client) = slot.as_ref() {
            return Ok(client.clone());
        }
        let unreachable = |source| DockerError::Unreachable {
            socket: self.socket.clone(),
            source,
        };
        let path = self.socket.to_string_lossy();
        let client =
            Docker::connect_with_unix(&path, REQUEST_TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)
                .map_err(unreachable)?
                .negotiate_version()
                .await
                .map_err(unreachable)?;
        *slot = Some(client.clone());
        Ok(client)
    }

    /// Forget the client after a connection failure, so the next call reconnects.
    pub async fn reset(&self) {
        *self.client.lock().await = None;
    }
}

/// Container actions discovery follows besides [`WATCHED_ACTIONS`] (kept apart: that list is
/// also the vocabulary of the 0.1.0 journal fixture).
pub const LIFECYCLE_ACTIONS: [&str; 2] = ["destroy", "rename"];

/// Follow the engine's container events until `cancel`, publishing each watched one as
/// `container_event`; reconnect with backoff when the engine goes away.
pub async fn watch_events(engine: DockerEngine, bus: Bus, cancel: CancellationToken) {
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    let mut connected = false;
    loop {
        let client = tokio::select! {
            _ = cancel.cancelled() => return,
            client = engine.client() => client,
        };
        let outcome = match client {
            Ok(client) => {
                let mut filters = HashMap::new();
                filters.insert("type", vec!["container"]);
                let actions = WATCHED_ACTIONS.iter().chain(&LIFECYCLE_ACTIONS).copied();
                filters.insert("event", actions.collect());
                let options = EventsOptionsBuilder::default().filters(&filters).build();
                let mut stream = client.events(Some(options));
                if !connected {
                    connected = true;
                    tracing::info!(socket = %engine.socket().display(), "following Docker events");
                    bus.publish(EventKind::DockerEngine {
                        connected: true,
                        detail: format!("following events on {}", engine.socket().display()),
                    });
                }
                backoff.succeeded();
                loop {
                    let next = tokio::select! {
                        _ = cancel.cancelled() => return,
                        next = stream.next() => next,
                    };
                    match next {
                        Some(Ok(message)) => publish(&bus, message),
                        Some(Err(err)) => break err.to_string(),
                        None => break "event stream ended".to_string(),
                    }
                }
            }
            Err(err) => err.to_string(),
        };
        engine.reset().await;
        if connected {
            connected = false;
            tracing::warn!("lost the Docker event stream: {outcome}; reconnecting");
            bus.publish(EventKind::DockerEngine {
                connected: false,
                detail: outcome,
            });
        } else {
            tracing::debug!("Docker engine not reachable: {outcome}");
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(backoff.next_wait()) => {}
        }
    }
}

fn publish(bus: &Bus, message: bollard::models::EventMessage) {
    let Some(actor) = message.actor else { return };
    let attributes = actor.attributes.unwrap_or_default();
    let Some(name) = attributes.get("name").cloned() else {
        return;
    };
    let action = ContainerAction::from(message.action.as_deref().unwrap_or_default());
    bus.publish(EventKind::ContainerEvent {
        container: name,
        container_id: actor.id.unwrap_or_default(),
        action,
        exit_code: attributes.get("exitCode").and_then(|c| c.parse().ok()),
    });
}
