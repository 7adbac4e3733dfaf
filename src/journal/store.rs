//! `JournalStore`: the SQLite file itself (WAL), synchronous and plain so it tests without a runtime.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, OpenFlags};

use super::JournalError;
use crate::event::{Event, JournaledEvent, Timestamp};

/// File name of the journal database inside the state directory.
pub const DATABASE_FILE: &str = "journal.sqlite3";

/// Which events to read back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventQuery {
    /// Only events at or after this time.
    pub since: Option<Timestamp>,
    /// Only events at or before this time.
    pub until: Option<Timestamp>,
    /// Only events with an id above this one (a follower's cursor).
    pub after_id: Option<i64>,
    /// Only these kinds (`probe_transition`, ...); empty means all.
    pub kinds: Vec<String>,
    /// At most this many, the newest ones, returned oldest first.
    pub limit: usize,
}

impl EventQuery {
    pub const DEFAULT_LIMIT: usize = 1000;
    pub const MAX_LIMIT: usize = 100_000;
}

/// How much history to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub max_age: Duration,
    pub max_events: u64,
}

/// A read-write connection to the journal file in WAL mode (so no connection blocks the
/// journal's writer for long), its schema brought up to date. `synchronous` sets that pragma;
/// None keeps SQLite's default. The one opener of the file: the journal, experiments, the
/// archive ledger and the notification outbox each hold a connection of their own.
pub(crate) fn open_connection(
    path: &Path,
    synchronous: Option<&str>,
) -> Result<Connection, JournalError> {
    let open_error = |source| JournalError::Open {
        path: path.to_path_buf(),
        source,
    };
    let mut connection = Connection::open(path).map_err(open_error)?;
    connection
        .pragma_update(None, "journal_mode", "WAL")
        .map_err(open_error)?;
    if let Some(synchronous) = synchronous {
        connection
            .pragma_update(None, "synchronous", synchronous)
            .map_err(open_error)?;
    }
    connection
        .busy_timeout(Duration::from_secs(5))
        .map_err(open_error)?;
    super::schema::migrate(&mut connection).map_err(|source| JournalError::Schema {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(connection)
}

pub struct JournalStore {
    connection: Connection,
    path: PathBuf,
}

impl JournalStore {
    /// Open (creating if needed) the journal at `path` for reading and writing.
    pub fn open(path: &Path) -> Result<Self, JournalError> {
        // NORMAL is durable across a process crash in WAL mode; only a power loss can drop the
        // last transactions, which is the trade every embedded journal makes.
        let connection = open_connection(path, Some("NORMAL"))?;
        Ok(Self {
            connection,
            path: path.to_path_buf(),
        })
    }

    /// Open an existing journal read-only (the API's query side; never blocks the writer).
    pub fn open_read_only(path: &Path) -> Result<Self, JournalError> {
        let connection = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|source| JournalError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        connection
            .busy_timeout(Duration::from_secs(5))
            .map_err(|source| JournalError::Open {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(Self {
            connection,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The connection itself, for the areas whose tables live in the journal (uptime).
    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    /// Store `events` in one transaction; returns them with their ids.
    pub fn append(&mut self, events: Vec<Event>) -> Result<Vec<JournaledEvent>, JournalError> {
        let transaction = self.connection.transaction()?;
        let mut stored = Vec::with_capacity(events.len());
        {
            let mut insert = transaction
                .prepare_cached("INSERT INTO events (at_ms, kind, body) VALUES (?1, ?2, ?3)")?;
            for event in events {
                let body = serde_json::to_string(&event)?;
                insert.execute(params![event.at.as_millis(), event.kind.name(), body])?;
                crate::uptime::rollup::record(&transaction, &event)?;
                stored.push(JournaledEvent {
                    id: transaction.last_insert_rowid(),
                    event,
                });
            }
        }
        transaction.commit()?;
        Ok(stored)
    }

    pub fn query(&self, query: &EventQuery) -> Result<Vec<JournaledEvent>, JournalError> {
        let mut sql = String::from(
            "SELECT id, body FROM events WHERE at_ms >= ?1 AND id > ?2 AND at_ms <= ?4",
        );
        if !query.kinds.is_empty() {
            let placeholders: Vec<String> = (0..query.kinds.len())
                .map(|i| format!("?{}", i + 5))
                .collect();
            sql.push_str(&format!(" AND kind IN ({})", placeholders.join(",")));
        }
        sql.push_str(" ORDER BY id DESC LIMIT ?3");
        let limit = match query.limit {
            0 => EventQuery::DEFAULT_LIMIT,
            n => n.min(EventQuery::MAX_LIMIT),
        };
        let mut values: Vec<rusqlite::types::Value> = vec![
            query.since.map_or(i64::MIN, Timestamp::as_millis).into(),
            query.after_id.unwrap_or(0).into(),
            (limit as i64).into(),
            query.until.map_or(i64::MAX, Timestamp::as_millis).into(),
        ];
        values.extend(query.kinds.iter().map(|k| k.clone().into()));

        let mut statement = self.connection.prepare(&sql)?;
        let rows = statement.query_map(rusqlite::params_from_iter(values), |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
        })?;
        let mut events = Vec::new();
        for row in rows {
            let (id, body) = row?;
            match serde_json::from_str::<Event>(&body) {
                Ok(event) => events.push(JournaledEvent { id, event }),
                // A row written by a newer sentineld (after a downgrade), with an event kind or
                // a word (state, cause, stage, ...) this build does not know: skip it and say
                // which (serde names the unknown word and the ones expected). The row stays in
                // the file for the release that wrote it. See `event::vocab`.
                Err(err) => tracing::warn!(id, error = %err, "skipping undecodable journal row"),
            }
        }
        events.reverse();
        Ok(events)
    }

    /// Delete events beyond the retention; returns how many were removed.
    pub fn prune(&mut self, retention: Retention, now: Timestamp) -> Result<usize, JournalError> {
        let cutoff = now.saturating_sub(retention.max_age);
        let by_age = self.connection.execute(
            "DELETE FROM events WHERE at_ms < ?1",
            params![cutoff.as_millis()],
        )?;
        // Ids only grow, so "newest max_events" is "id above max(id) - max_events".
        let by_count = self.connection.execute(
            "DELETE FROM events WHERE id <= (SELECT MAX(id) FROM events) - ?1",
            params![retention.max_events as i64],
        )?;
        // Rollups outlive the events they came from, up to their own bound.
        crate::uptime::rollup::prune(&self.connection, now.as_millis())?;
        Ok(by_age + by_count)
    }

    pub fn count(&self) -> Result<u64, JournalError> {
        let count: i64 = self
            .connection
            .query_row("SELECT COUNT(*) FROM events", [], |row| row.get(0))?;
        Ok(count as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventKind;

    fn stopping(at: i64, reason: &str) -> Event {
        Event {
            at: Timestamp(at),
            kind: EventKind::DaemonStopping {
                reason: reason.into(),
            },
        }
    }

    fn rejected(at: i64) -> Event {
        Event {
            at: Timestamp(at),
            kind: EventKind::ConfigRejected {
                trigger: crate::event::ReloadTrigger::Signal,
                error: "bad".into(),
            },
        }
    }

    #[test]
    fn append_query_and_filters() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = JournalStore::open(&dir.path().join(DATABASE_FILE)).unwrap();
        let stored = store
            .append(vec![
                stopping(1000, "a"),
                rejected(2000),
                stopping(3000, "c"),
            ])
            .unwrap();
        assert_eq!(stored.iter().map(|e| e.id).collect::<Vec<_>>(), [1, 2, 3]);

        let reader = JournalStore::open_read_only(store.path()).unwrap();
        let ids = |q: EventQuery| -> Vec<i64> {
            reader.query(&q).unwrap().iter().map(|e| e.id).collect()
        };
        assert_eq!(ids(EventQuery::default()), [1, 2, 3]);
        assert_eq!(
            ids(EventQuery {
                since: Some(Timestamp(2000)),
                ..Default::default()
            }),
            [2, 3]
        );
        assert_eq!(
            ids(EventQuery {
                since: Some(Timestamp(1500)),
                until: Some(Timestamp(2500)),
                ..Default::default()
            }),
            [2]
        );
        assert_eq!(
            ids(EventQuery {
                after_id: Some(2),
                ..Default::default()
            }),
            [3]
        );
        assert_eq!(
            ids(EventQuery {
                kinds: vec!["config_rejected".into()],
                ..Default::default()
            }),
            [2]
        );
        // limit keeps the newest, returned oldest first
        assert_eq!(
            ids(EventQuery {
                limit: 2,
                ..Default::default()
            }),
            [2, 3]
        );
        assert_eq!(
            reader.query(&EventQuery::default()).unwrap()[2].event,
            stopping(3000, "c")
        );
    }

    #[test]
    fn prune_by_age_and_count_and_ids_never_reused() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = JournalStore::open(&dir.path().join(DATABASE_FILE)).unwrap();
        let events: Vec<Event> = (0..10).map(|i| stopping(i * 1000, "x")).collect();
        store.append(events).unwrap();

        // by age: now = 10s, keep 5s → events at 5000..9000 survive
        let removed = store
            .prune(
                Retention {
                    max_age: Duration::from_secs(5),
                    max_events: 100,
                },
                Timestamp(10_000),
            )
            .unwrap();
        assert_eq!(removed, 5);
        assert_eq!(store.count().unwrap(), 5);

        // by count: keep the newest 2
        let removed = store
            .prune(
                Retention {
                    max_age: Duration::from_secs(3600),
                    max_events: 2,
                },
                Timestamp(10_000),
            )
            .unwrap();
        assert_eq!(removed, 3);
        let left: Vec<i64> = store
            .query(&EventQuery::default())
            .unwrap()
            .iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(left, [9, 10]);

        // a follower's cursor stays valid: new ids continue above the pruned ones
        let stored = store.append(vec![stopping(11_000, "y")]).unwrap();
        assert_eq!(stored[0].id, 11);
    }

    /// Store `bodies` as raw rows, as another release of sentineld wrote them.
    fn insert_raw(store: &JournalStore, bodies: &[&str]) {
        for body in bodies {
            let value: serde_json::Value = serde_json::from_str(body).unwrap();
            store
                .connection
                .execute(
                    "INSERT INTO events (at_ms, kind, body) VALUES (?1, ?2, ?3)",
                    params![
                        value["at"].as_i64().unwrap(),
                        value["kind"].as_str().unwrap(),
                        body
                    ],
                )
                .unwrap();
        }
    }

    /// A journal file holding the rows release 0.1.0 wrote (string-typed events) reads back as
    /// typed events with the same values; a row from a newer release with a word this build
    /// does not know is skipped and kept in the file, and Docker actions are an open set.
    #[test]
    fn a_journal_written_by_release_0_1_0_still_reads() {
        let dir = tempfile::tempdir().unwrap();
        let store = JournalStore::open(&dir.path().join(DATABASE_FILE)).unwrap();
        let old: Vec<&str> = crate::event::fixture::JOURNAL_0_1_0.lines().collect();
        insert_raw(&store, &old);
        let newer = [
            // a heal cause this build does not know: the whole row is skipped, not misread
            r#"{"at":1760001000000,"kind":"heal_started","probe":"db","action":"docker restart postgres","attempt":1,"cause":"cron"}"#,
            // a Docker action nobody named: kept verbatim
            r#"{"at":1760001001000,"kind":"container_event","container":"postgres","container_id":"4f2a","action":"exec_start: sh","exit_code":null}"#,
        ];
        insert_raw(&store, &newer);

        let reader = JournalStore::open_read_only(store.path()).unwrap();
        let read = reader
            .query(&EventQuery {
                limit: EventQuery::MAX_LIMIT,
                ..Default::default()
            })
            .unwrap();
        let mut want = crate::event::fixture::journal_0_1_0_events();
        want.push(Event {
            at: Timestamp(1_760_001_001_000),
            kind: EventKind::ContainerEvent {
                container: "postgres".into(),
                container_id: "4f2a".into(),
                action: crate::event::ContainerAction::Other("exec_start: sh".into()),
                exit_code: None,
            },
        });
        // every row is still in the file; only the unknown cause is skipped when reading
        assert_eq!(reader.count().unwrap() as usize, old.len() + newer.len());
        let skipped: Vec<i64> = (1..=reader.count().unwrap() as i64)
            .filter(|id| !read.iter().any(|e| e.id == *id))
            .collect();
        assert_eq!(skipped, [old.len() as i64 + 1], "rows skipped");
        let events: Vec<Event> = read.iter().map(|e| e.event.clone()).collect();
        for (index, (got, want)) in events.iter().zip(&want).enumerate() {
            assert_eq!(got, want, "row {}", index + 1);
        }
        assert_eq!(events.len(), want.len());
        // the API's kind filter still finds old rows by their stored kind
        let transitions = reader
            .query(&EventQuery {
                kinds: vec!["probe_transition".into()],
                limit: EventQuery::MAX_LIMIT,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(transitions.len(), 26);
    }

    #[test]
    fn reopen_keeps_events() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DATABASE_FILE);
        JournalStore::open(&path)
            .unwrap()
            .append(vec![stopping(1, "a")])
            .unwrap();
        assert_eq!(JournalStore::open(&path).unwrap().count().unwrap(), 1);
    }

    #[test]
    fn open_error_names_the_path() {
        let err = JournalStore::open(Path::new("/nonexistent-dir/x/journal.sqlite3"))
            .err()
            .unwrap();
        assert!(
            err.to_string()
                .contains("/nonexistent-dir/x/journal.sqlite3"),
            "{err}"
        );
    }
}
