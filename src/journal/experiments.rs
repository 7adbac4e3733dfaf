//! `ExperimentStore`: the chaos write-ahead table in the journal database. A row is written
//! (and synced) before the kernel is touched, so a restart after a crash knows what to roll back.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

use super::JournalError;
use crate::event::Timestamp;

/// States in which an experiment may still have changed the host.
pub const UNFINISHED_STATES: [&str; 3] = ["pending", "active", "rolling_back"];

/// One experiment as stored: the chaos area owns the meaning of `body` (JSON).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExperimentRow {
    pub id: String,
    pub created: Timestamp,
    pub state: String,
    pub body: String,
}

pub struct ExperimentStore {
    connection: Connection,
}

impl ExperimentStore {
    /// Open the table in the journal database at `path` (created if needed).
    pub fn open(path: &Path) -> Result<Self, JournalError> {
        // FULL: the intent must be on disk before the kernel changes, even across power loss.
        let connection = super::store::open_connection(path, Some("FULL"))?;
        Ok(Self { connection })
    }

    /// Insert or replace the row.
    pub fn put(&self, row: &ExperimentRow) -> Result<(), JournalError> {
        self.connection.execute(
            "INSERT INTO chaos_experiments (id, created_ms, state, body) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(id) DO UPDATE SET state = excluded.state, body = excluded.body",
            params![row.id, row.created.as_millis(), row.state, row.body],
        )?;
        Ok(())
    }

    pub fn get(&self, id: &str) -> Result<Option<ExperimentRow>, JournalError> {
        Ok(self
            .connection
            .query_row(
                "SELECT id, created_ms, state, body FROM chaos_experiments WHERE id = ?1",
                params![id],
                row,
            )
            .optional()?)
    }

    /// Experiments that may still hold changes, oldest first.
    pub fn unfinished(&self) -> Result<Vec<ExperimentRow>, JournalError> {
        let mut statement = self.connection.prepare(
            "SELECT id, created_ms, state, body FROM chaos_experiments
             WHERE state IN ('pending', 'active', 'rolling_back') ORDER BY created_ms, id",
        )?;
        let rows = statement.query_map([], row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The newest `limit` experiments, newest first.
    pub fn recent(&self, limit: usize) -> Result<Vec<ExperimentRow>, JournalError> {
        let mut statement = self.connection.prepare(
            "SELECT id, created_ms, state, body FROM chaos_experiments
             ORDER BY created_ms DESC, id DESC LIMIT ?1",
        )?;
        let rows = statement.query_map(params![limit as i64], row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

fn row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ExperimentRow> {
    Ok(ExperimentRow {
        id: row.get(0)?,
        created: Timestamp(row.get(1)?),
        state: row.get(2)?,
        body: row.get(3)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_survive_reopen_and_unfinished_filters_by_state() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(super::super::DATABASE_FILE);
        let store = ExperimentStore::open(&path).unwrap();
        for (id, state) in [("a", "pending"), ("b", "rolled_back"), ("c", "active")] {
            store
                .put(&ExperimentRow {
                    id: id.into(),
                    created: Timestamp(id.as_bytes()[0] as i64),
                    state: state.into(),
                    body: "{}".into(),
                })
                .unwrap();
        }
        let mut c = store.get("c").unwrap().unwrap();
        c.state = "rolling_back".into();
        store.put(&c).unwrap();
        drop(store);
        let store = ExperimentStore::open(&path).unwrap();
        let ids: Vec<String> = store
            .unfinished()
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(ids, ["a", "c"]);
        assert_eq!(store.get("c").unwrap().unwrap().state, "rolling_back");
        assert_eq!(store.recent(2).unwrap()[0].id, "c");
        assert!(store.get("zzz").unwrap().is_none());
        // the events table of the same file is untouched and usable
        let events = super::super::JournalStore::open(&path).unwrap();
        assert_eq!(events.count().unwrap(), 0);
    }
}
