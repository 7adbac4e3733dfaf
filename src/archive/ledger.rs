//! The `archives` table in the journal database: every spooled bundle, its upload state and
//! next attempt, so pending uploads resume after a daemon restart.

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::ArchiveError;
use crate::event::Timestamp;
use crate::journal::open_connection;

/// Where a bundle stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UploadState {
    /// On local disk, not uploaded yet (or still retrying).
    Pending,
    /// In the sink, verified; the spool copy may be pruned.
    Uploaded,
    /// Uploaded, and its spool copy deleted to keep within the quota.
    Pruned,
}

impl UploadState {
    fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Uploaded => "uploaded",
            Self::Pruned => "pruned",
        }
    }

    fn parse(text: &str) -> Self {
        match text {
            "uploaded" => Self::Uploaded,
            "pruned" => Self::Pruned,
            _ => Self::Pending,
        }
    }
}

/// One bundle as `sentinelctl archives` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArchiveRecord {
    pub name: String,
    pub probe: String,
    pub target: String,
    pub created_at: Timestamp,
    pub path: PathBuf,
    pub manifest_path: PathBuf,
    pub bytes: u64,
    pub sha256: String,
    pub state: UploadState,
    /// Where it goes (`s3://bucket/prefix/name/`, or a directory).
    pub destination: String,
    /// Where it is, once uploaded.
    pub location: Option<String>,
    pub attempts: u32,
    pub next_attempt_at: Option<Timestamp>,
    pub last_error: Option<String>,
    pub uploaded_at: Option<Timestamp>,
}

pub struct Ledger {
    connection: Connection,
}

impl Ledger {
    pub fn open(path: &Path) -> Result<Self, ArchiveError> {
        let connection =
            open_connection(path, None).map_err(|err| ArchiveError::Ledger(err.to_string()))?;
        Ok(Self { connection })
    }

    pub fn insert(&self, record: &ArchiveRecord) -> Result<(), ArchiveError> {
        self.connection
            .execute(
                "INSERT OR REPLACE INTO archives (name, probe, target, created_ms, path, manifest_path, \
                 bytes, sha256, state, destination, attempts, next_attempt_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 0, 0)",
                params![
                    record.name,
                    record.probe,
                    record.target,
                    record.created_at.as_millis(),
                    record.path.to_string_lossy(),
                    record.manifest_path.to_string_lossy(),
                    record.bytes as i64,
                    record.sha256,
                    record.state.as_str(),
                    record.destination,
                ],
            )
            .map_err(sql)?;
        Ok(())
    }

    pub fn mark_uploaded(
        &self,
        name: &str,
        location: &str,
        at: Timestamp,
    ) -> Result<(), ArchiveError> {
        self.connection
            .execute(
                "UPDATE archives SET state = 'uploaded', location = ?2, uploaded_ms = ?3, \
                 attempts = attempts + 1, last_error = NULL WHERE name = ?1",
                params![name, location, at.as_millis()],
            )
            .map_err(sql)?;
        Ok(())
    }

    pub fn mark_failed(
        &self,
        name: &str,
        error: &str,
        next: Timestamp,
    ) -> Result<(), ArchiveError> {
        self.connection
            .execute(
                "UPDATE archives SET attempts = attempts + 1, last_error = ?2, next_attempt_ms = ?3 \
                 WHERE name = ?1",
                params![name, error, next.as_millis()],
            )
            .map_err(sql)?;
        Ok(())
    }

    pub fn mark_pruned(&self, name: &str) -> Result<(), ArchiveError> {
        self.connection
            .execute(
                "UPDATE archives SET state = 'pruned' WHERE name = ?1",
                params![name],
            )
            .map_err(sql)?;
        Ok(())
    }

    /// Pending bundles whose next attempt is due, oldest first.
    pub fn due(&self, now: Timestamp) -> Result<Vec<ArchiveRecord>, ArchiveError> {
        self.select(
            "WHERE state = 'pending' AND next_attempt_ms <= ?1 ORDER BY created_ms",
            now.as_millis(),
        )
    }

    /// When the next pending bundle is due, if any.
    pub fn next_due(&self) -> Result<Option<Timestamp>, ArchiveError> {
        self.connection
            .query_row(
                "SELECT MIN(next_attempt_ms) FROM archives WHERE state = 'pending'",
                [],
                |row| row.get::<_, Option<i64>>(0),
            )
            .optional()
            .map(|v| v.flatten().map(Timestamp))
            .map_err(sql)
    }

    /// Every bundle, newest first (at most `limit`).
    pub fn list(&self, limit: usize) -> Result<Vec<ArchiveRecord>, ArchiveError> {
        self.select("WHERE ?1 = ?1 ORDER BY created_ms DESC, name DESC", 0)
            .map(|mut all| {
                all.truncate(limit);
                all
            })
    }

    fn select(&self, clause: &str, value: i64) -> Result<Vec<ArchiveRecord>, ArchiveError> {
        let sql_text = format!(
            "SELECT name, probe, target, created_ms, path, manifest_path, bytes, sha256, state, \
             destination, location, attempts, next_attempt_ms, last_error, uploaded_ms FROM archives {clause}"
        );
        let mut statement = self.connection.prepare(&sql_text).map_err(sql)?;
        let rows = statement
            .query_map(params![value], |row| {
                let state = UploadState::parse(&row.get::<_, String>(8)?);
                Ok(ArchiveRecord {
                    name: row.get(0)?,
                    probe: row.get(1)?,
                    target: row.get(2)?,
                    created_at: Timestamp(row.get(3)?),
                    path: PathBuf::from(row.get::<_, String>(4)?),
                    manifest_path: PathBuf::from(row.get::<_, String>(5)?),
                    bytes: row.get::<_, i64>(6)? as u64,
                    sha256: row.get(7)?,
                    state,
                    destination: row.get(9)?,
                    location: row.get(10)?,
                    attempts: row.get::<_, i64>(11)? as u32,
                    next_attempt_at: (state == UploadState::Pending)
                        .then(|| row.get::<_, i64>(12).map(Timestamp))
                        .transpose()?,
                    last_error: row.get(13)?,
                    uploaded_at: row.get::<_, Option<i64>>(14)?.map(Timestamp),
                })
            })
            .map_err(sql)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(sql)
    }
}

fn sql(err: rusqlite::Error) -> ArchiveError {
    ArchiveError::Ledger(err.to_string())
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A pending 10-byte bundle spooled at `/spool/NAME.tar.gz`: the archive tests' row.
    pub(in crate::archive) fn record(name: &str, created: i64) -> ArchiveRecord {
        ArchiveRecord {
            name: name.into(),
            probe: "p".into(),
            target: "t".into(),
            created_at: Timestamp(created),
            path: format!("/spool/{name}.tar.gz").into(),
            manifest_path: format!("/spool/{name}.manifest.json").into(),
            bytes: 10,
            sha256: "h".into(),
            state: UploadState::Pending,
            destination: format!("s3://b/{name}/"),
            location: None,
            attempts: 0,
            next_attempt_at: None,
            last_error: None,
            uploaded_at: None,
        }
    }

    #[test]
    fn pending_bundles_survive_reopen_and_retry_when_due() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.sqlite3");
        {
            let ledger = Ledger::open(&path).unwrap();
            ledger.insert(&record("a", 1)).unwrap();
            ledger.insert(&record("b", 2)).unwrap();
            ledger.mark_failed("a", "S3 down", Timestamp(500)).unwrap();
        }
        let ledger = Ledger::open(&path).unwrap();
        let due = |at| -> Vec<String> {
            let due = ledger.due(Timestamp(at)).unwrap();
            due.into_iter().map(|r| r.name).collect()
        };
        assert_eq!(due(100), ["b"]);
        assert_eq!(ledger.next_due().unwrap(), Some(Timestamp(0)));
        ledger
            .mark_uploaded("b", "s3://b/b/bundle.tar.gz", Timestamp(200))
            .unwrap();
        assert_eq!(ledger.next_due().unwrap(), Some(Timestamp(500)));
        assert_eq!(due(500), ["a"]);

        let all = ledger.list(10).unwrap();
        assert_eq!(all[0].name, "b");
        assert_eq!(all[0].state, UploadState::Uploaded);
        assert_eq!(all[0].location.as_deref(), Some("s3://b/b/bundle.tar.gz"));
        assert_eq!(all[1].attempts, 1);
        assert_eq!(all[1].last_error.as_deref(), Some("S3 down"));
        ledger.mark_pruned("b").unwrap();
        assert_eq!(ledger.list(1).unwrap()[0].state, UploadState::Pruned);
    }
}
