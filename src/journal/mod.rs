//! The embedded journal: every event on the bus is stored in SQLite (WAL) under the state dir,
//! pruned by age and count, and re-published with its id so followers can resume without gaps.

pub mod config;
mod experiments;
pub mod schema;
mod store;
mod table;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use thiserror::Error;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::event::{Bus, Event, EventKind, JournaledEvent, Timestamp};
use crate::panic_policy::run_blocking;
pub use experiments::{ExperimentRow, ExperimentStore, UNFINISHED_STATES};
pub(crate) use store::open_connection;
pub use store::{EventQuery, JournalStore, Retention, DATABASE_FILE};
pub use table::SharedTable;

#[derive(Debug, Error)]
pub enum JournalError {
    #[error("cannot open journal {path}: {source}")]
    Open {
        path: std::path::PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("cannot bring the schema of journal {path} up to date: {source}")]
    Schema {
        path: std::path::PathBuf,
        #[source]
        source: rusqlite_migration::Error,
    },
    #[error("journal query failed: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("cannot encode event for the journal: {0}")]
    Encode(#[from] serde_json::Error),
}

/// How often retention runs. Pruning is cheap (two indexed deletes), so once a minute keeps the
/// file near its bound without a noticeable cost.
const PRUNE_INTERVAL: Duration = Duration::from_secs(60);

/// Most events written in one transaction; bounds the latency a burst adds to followers.
const MAX_BATCH: usize = 512;

/// Read side of the journal plus the feed of freshly stored events.
#[derive(Clone)]
pub struct Journal {
    reader: Arc<Mutex<JournalStore>>,
    feed: broadcast::Sender<JournaledEvent>,
    /// How the writer's last write went; closed when the writer has stopped.
    health: watch::Receiver<WriteHealth>,
}

/// How the journal writer's last write of a batch went: what "the journal is healthy" means
/// to the `[heartbeat]` check-in. Ok until a write fails; Failing until one succeeds again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteHealth {
    Ok,
    Failing {
        since: Timestamp,
        /// The last failure, with its causes.
        error: String,
    },
}

impl Journal {
    /// Open the journal in `state_dir` and start the writer. The writer subscribes to `bus`
    /// before this returns, so every event published afterwards is stored.
    pub fn start(
        state_dir: &Path,
        bus: &Bus,
        retention: watch::Receiver<Retention>,
        shutdown: CancellationToken,
    ) -> Result<(Journal, JoinHandle<()>), JournalError> {
        let path = state_dir.join(DATABASE_FILE);
        let writer = JournalStore::open(&path)?;
        let reader = JournalStore::open_read_only(&path)?;
        let (feed, _) = broadcast::channel(crate::event::BUS_CAPACITY);
        let (health_tx, health) = watch::channel(WriteHealth::Ok);
        let journal = Journal {
            reader: Arc::new(Mutex::new(reader)),
            feed: feed.clone(),
            health,
        };
        let task = tokio::spawn(run_writer(
            writer,
            bus.subscribe(),
            Outputs {
                feed,
                health: health_tx,
            },
            retention,
            shutdown,
        ));
        Ok((journal, task))
    }

    pub async fn query(&self, query: EventQuery) -> Result<Vec<JournaledEvent>, JournalError> {
        let reader = Arc::clone(&self.reader);
        run_blocking(move || {
            let store = reader.lock().unwrap_or_else(|p| p.into_inner());
            store.query(&query)
        })
        .await
    }

    /// Run `work` on the read-only connection, on the blocking pool (the uptime rollups).
    pub async fn read<R: Send + 'static>(
        &self,
        work: impl FnOnce(&rusqlite::Connection) -> R + Send + 'static,
    ) -> R {
        let reader = Arc::clone(&self.reader);
        run_blocking(move || {
            let store = reader.lock().unwrap_or_else(|p| p.into_inner());
            work(store.connection())
        })
        .await
    }

    /// Events as they are stored. Subscribe first, then query history with `after_id`, to
    /// follow without a gap.
    pub fn follow(&self) -> broadcast::Receiver<JournaledEvent> {
        self.feed.subscribe()
    }

    /// How the writer's last write went; `None` once the writer has stopped.
    pub fn write_health(&self) -> Option<WriteHealth> {
        match self.health.has_changed() {
            Ok(_) => Some(self.health.borrow().clone()),
            Err(_) => None,
        }
    }
}

/// Where the writer reports: the stored events, and how writing goes.
struct Outputs {
    feed: broadcast::Sender<JournaledEvent>,
    health: watch::Sender<WriteHealth>,
}

async fn run_writer(
    store: JournalStore,
    mut events: broadcast::Receiver<Event>,
    outputs: Outputs,
    mut retention: watch::Receiver<Retention>,
    shutdown: CancellationToken,
) {
    let store = Arc::new(Mutex::new(store));
    let mut prune_tick = tokio::time::interval(PRUNE_INTERVAL);
    loop {
        let mut batch = Vec::new();
        tokio::select! {
            // Drain events before honouring shutdown, so the last words are kept.
            biased;
            received = events.recv() => match received {
                Ok(event) => batch.push(event),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::error!(missed, "journal fell behind the event bus; events were lost");
                    batch.push(Event::now(EventKind::EventsDropped {
                        subscriber: "journal".into(),
                        missed,
                    }));
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
            _ = prune_tick.tick() => {
                let retention = *retention.borrow_and_update();
                prune(&store, retention).await;
                continue;
            }
            _ = shutdown.cancelled() => {
                drain(&mut events, &mut batch, usize::MAX);
                write(&store, &outputs, batch).await;
                break;
            }
        }
        drain(&mut events, &mut batch, MAX_BATCH);
        write(&store, &outputs, batch).await;
    }
}

fn drain(events: &mut broadcast::Receiver<Event>, batch: &mut Vec<Event>, limit: usize) {
    while batch.len() < limit {
        match events.try_recv() {
            Ok(event) => batch.push(event),
            Err(broadcast::error::TryRecvError::Lagged(missed)) => {
                batch.push(Event::now(EventKind::EventsDropped {
                    subscriber: "journal".into(),
                    missed,
                }))
            }
            Err(_) => break,
        }
    }
}

async fn write(store: &Arc<Mutex<JournalStore>>, outputs: &Outputs, batch: Vec<Event>) {
    if batch.is_empty() {
        return;
    }
    let count = batch.len();
    let store = Arc::clone(store);
    let result = run_blocking(move || {
        store
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .append(batch)
    })
    .await;
    match result {
        Ok(stored) => {
            outputs.health.send_if_modified(|health| {
                let failed = *health != WriteHealth::Ok;
                *health = WriteHealth::Ok;
                failed
            });
            for event in stored {
                let _ = outputs.feed.send(event);
            }
        }
        Err(err) => {
            tracing::error!(error = %err, count, "cannot write events to the journal");
            let error = crate::logging::error_chain(&err);
            outputs.health.send_modify(|health| {
                let since = match health {
                    WriteHealth::Failing { since, .. } => *since,
                    WriteHealth::Ok => Timestamp::now(),
                };
                *health = WriteHealth::Failing { since, error };
            });
        }
    }
}

async fn prune(store: &Arc<Mutex<JournalStore>>, retention: Retention) {
    let store = Arc::clone(store);
    let result = run_blocking(move || {
        store
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .prune(retention, Timestamp::now())
    })
    .await;
    match result {
        Ok(0) => {}
        Ok(removed) => tracing::debug!(removed, "journal retention pruned events"),
        Err(err) => tracing::warn!(error = %err, "journal retention failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn writer_stores_bus_events_feeds_followers_and_drains_on_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let bus = Bus::new();
        let shutdown = CancellationToken::new();
        let (_retention_tx, retention) = watch::channel(Retention {
            max_age: Duration::from_secs(3600),
            max_events: 100,
        });
        let (journal, task) =
            Journal::start(dir.path(), &bus, retention, shutdown.clone()).unwrap();
        let mut follower = journal.follow();

        bus.publish(EventKind::DaemonStopping {
            reason: "one".into(),
        });
        let first = tokio::time::timeout(Duration::from_secs(5), follower.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(first.id, 1);

        // published right before shutdown: must still be stored
        bus.publish(EventKind::DaemonStopping {
            reason: "last".into(),
        });
        shutdown.cancel();
        task.await.unwrap();

        let stored = journal.query(EventQuery::default()).await.unwrap();
        assert_eq!(stored.len(), 2);
        assert_eq!(
            stored[1].event.kind,
            EventKind::DaemonStopping {
                reason: "last".into()
            }
        );
    }
}
