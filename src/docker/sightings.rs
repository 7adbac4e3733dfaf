//! Discovery, the engine side: lists the running containers, then follows the bus's container
//! events (start, rename, destroy) and re-lists after a reconnect or a lag, so none is missed.

use std::collections::BTreeMap;

use bollard::query_parameters::ListContainersOptions;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use super::discovery::ContainerFacts;
use super::{DockerEngine, DockerError};
use crate::event::{Bus, ContainerAction, Event, EventKind};

/// What the engine told discovery.
#[derive(Debug, Clone, PartialEq)]
pub enum Sighting {
    /// A container started or changed (its facts as inspected now).
    Seen(ContainerFacts),
    /// A container was removed (its full id).
    Gone(String),
    /// Every running container, after a (re)connect: containers not in it are gone.
    All(Vec<ContainerFacts>),
}

/// Follow the engine for discovery until `cancel`, sending what it sees to `out`. The events
/// come from the bus (`watch_events` puts them there); a `docker_engine` connected event and a
/// lagging subscription both lead to a full list.
pub async fn follow(
    engine: DockerEngine,
    bus: Bus,
    out: mpsc::Sender<Sighting>,
    cancel: CancellationToken,
) {
    let mut events = bus.subscribe();
    let mut listed = list(&engine).await.ok();
    if let Some(all) = listed.take() {
        if out.send(Sighting::All(all)).await.is_err() {
            return;
        }
    }
    loop {
        let event = tokio::select! {
            _ = cancel.cancelled() => return,
            event = events.recv() => event,
        };
        let sighting = match event {
            Ok(Event {
                kind:
                    EventKind::ContainerEvent {
                        container_id,
                        action,
                        ..
                    },
                ..
            }) => match action {
                ContainerAction::Start | ContainerAction::Restart => {
                    seen(&engine, &container_id).await
                }
                ContainerAction::Other(word) if word == "rename" => {
                    seen(&engine, &container_id).await
                }
                ContainerAction::Other(word) if word == "destroy" => {
                    Some(Sighting::Gone(container_id))
                }
                _ => None,
            },
            Ok(Event {
                kind:
                    EventKind::DockerEngine {
                        connected: true, ..
                    },
                ..
            })
            | Err(broadcast::error::RecvError::Lagged(_)) => match list(&engine).await {
                Ok(all) => Some(Sighting::All(all)),
                Err(err) => {
                    tracing::debug!(error = %err, "discovery: cannot list containers");
                    None
                }
            },
            Ok(_) => None,
            Err(broadcast::error::RecvError::Closed) => return,
        };
        if let Some(sighting) = sighting {
            if out.send(sighting).await.is_err() {
                return;
            }
        }
    }
}

async fn seen(engine: &DockerEngine, id: &str) -> Option<Sighting> {
    match inspect(engine, id).await {
        Ok(Some(facts)) => Some(Sighting::Seen(facts)),
        Ok(None) => Some(Sighting::Gone(id.to_string())),
        Err(err) => {
            tracing::debug!(error = %err, container = id, "discovery: cannot inspect");
            None
        }
    }
}

/// The running containers' facts.
pub async fn list(engine: &DockerEngine) -> Result<Vec<ContainerFacts>, DockerError> {
    let client = engine.client().await?;
    let summaries = client
        .list_containers(Some(ListContainersOptions::default()))
        .await
        .map_err(|source| DockerError::Api {
            container: "(list)".into(),
            source,
        })?;
    let mut all = Vec::with_capacity(summaries.len());
    for summary in summaries {
        let Some(id) = summary.id else { continue };
        // Gone between the list and the inspect: simply not there.
        if let Some(facts) = inspect(engine, &id).await? {
            all.push(facts);
        }
    }
    Ok(all)
}

/// One container's facts; None when it does not exist (any more).
pub async fn inspect(
    engine: &DockerEngine,
    id: &str,
) -> Result<Option<ContainerFacts>, DockerError> {
    let client = engine.client().await?;
    let details = match client.inspect_container(id, None).await {
        Ok(details) => details,
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => return Ok(None),
        Err(source) => {
            return Err(DockerError::Api {
                container: id.to_string(),
                source,
            })
        }
    };
    let config = details.config.unwrap_or_default();
    let healthcheck = config
        .healthcheck
        .and_then(|h| h.test)
        .and_then(|test| test.first().cloned())
        .is_some_and(|first| first != "NONE");
    Ok(Some(ContainerFacts {
        id: details.id.unwrap_or_else(|| id.to_string()),
        name: details.name.unwrap_or_default(),
        labels: config
            .labels
            .unwrap_or_default()
            .into_iter()
            .collect::<BTreeMap<_, _>>(),
        healthcheck,
    }))
}
