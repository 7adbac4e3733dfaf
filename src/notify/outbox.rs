//! The durable outbox: a `notify_outbox` table in the journal database. A message is stored
//! before any delivery is tried, so a dead receiver or a daemon restart loses nothing.

use std::path::Path;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};

use super::NotifyError;
use crate::event::Timestamp;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS notify_outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    channel         TEXT NOT NULL,
    subject         TEXT NOT NULL,
    status          TEXT NOT NULL,
    body            TEXT NOT NULL,
    created_ms      INTEGER NOT NULL,
    next_attempt_ms INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    state           TEXT NOT NULL DEFAULT 'pending',
    last_error      TEXT,
    sent_ms         INTEGER
);
CREATE INDEX IF NOT EXISTS notify_outbox_due ON notify_outbox(state, next_attempt_ms);
CREATE INDEX IF NOT EXISTS notify_outbox_subject ON notify_outbox(channel, subject, id);
";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub id: i64,
    pub channel: String,
    pub subject: String,
    pub body: String,
    pub attempts: u32,
}

pub struct Outbox {
    connection: Connection,
}

impl Outbox {
    pub fn open(path: &Path) -> Result<Self, NotifyError> {
        let connection = crate::archive::open_table(path, SCHEMA)
            .map_err(|err| NotifyError::Outbox(format!("{}: {err}", path.display())))?;
        Ok(Self { connection })
    }

    /// Store a message unless the same subject in the same status went to this channel within
    /// `dedup_window` (reminders are never deduplicated). Returns whether it was stored.
    pub fn enqueue(
        &self,
        channel: &str,
        subject: &str,
        status: &str,
        body: &str,
        now: Timestamp,
        dedup_window: Duration,
    ) -> Result<bool, NotifyError> {
        if status != "reminder" {
            let last: Option<(String, i64)> = self
                .connection
                .query_row(
                    "SELECT status, created_ms FROM notify_outbox WHERE channel = ?1 AND subject = ?2 \
                     AND status != 'reminder' ORDER BY id DESC LIMIT 1",
                    params![channel, subject],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()
                .map_err(sql)?;
            let window_start = now.saturating_sub(dedup_window).as_millis();
            if let Some((last_status, at)) = last {
                if last_status == status && at >= window_start {
                    return Ok(false);
                }
            }
        }
        self.connection
            .execute(
                "INSERT INTO notify_outbox (channel, subject, status, body, created_ms, next_attempt_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                params![channel, subject, status, body, now.as_millis()],
            )
            .map_err(sql)?;
        Ok(true)
    }

    /// Pending messages due now, oldest first, at most `limit`. Each channel's queue is kept
    /// in order: a message waiting for its retry holds back the newer ones behind it, so a
    /// "resolved" never overtakes its "firing".
    pub fn due(&self, now: Timestamp, limit: usize) -> Result<Vec<Message>, NotifyError> {
        let mut statement = self
            .connection
            .prepare(
                "SELECT id, channel, subject, body, attempts, next_attempt_ms FROM notify_outbox \
                 WHERE state = 'pending' ORDER BY id",
            )
            .map_err(sql)?;
        let rows = statement
            .query_map([], |row| {
                let message = Message {
                    id: row.get(0)?,
                    channel: row.get(1)?,
                    subject: row.get(2)?,
                    body: row.get(3)?,
                    attempts: row.get::<_, i64>(4)? as u32,
                };
                Ok((message, row.get::<_, i64>(5)?))
            })
            .map_err(sql)?;
        let mut held = std::collections::HashSet::new();
        let mut due = Vec::new();
        for row in rows {
            let (message, next_attempt_ms) = row.map_err(sql)?;
            if held.contains(&message.channel) {
                continue;
            }
            if next_attempt_ms > now.as_millis() {
                held.insert(message.channel.clone());
                continue;
            }
            due.push(message);
            if due.len() == limit {
                break;
            }
        }
        Ok(due)
    }

    /// When the head of some channel's queue is due next.
    pub fn next_due(&self) -> Result<Option<Timestamp>, NotifyError> {
        self.connection
            .query_row(
                "SELECT MIN(next_attempt_ms) FROM notify_outbox AS o WHERE state = 'pending' \
                 AND id = (SELECT MIN(id) FROM notify_outbox WHERE state = 'pending' AND channel = o.channel)",
                [],
                |row| row.get::<_, Option<i64>>(0),
            )
            .map(|v| v.map(Timestamp))
            .map_err(sql)
    }

    pub fn mark_sent(&self, id: i64, now: Timestamp) -> Result<(), NotifyError> {
        self.connection
            .execute(
                "UPDATE notify_outbox SET state = 'sent', sent_ms = ?2, attempts = attempts + 1, \
                 last_error = NULL WHERE id = ?1",
                params![id, now.as_millis()],
            )
            .map_err(sql)?;
        Ok(())
    }

    /// A failed attempt; `next` is when to try again. Counts as an attempt.
    pub fn mark_failed(&self, id: i64, error: &str, next: Timestamp) -> Result<(), NotifyError> {
        self.connection
            .execute(
                "UPDATE notify_outbox SET attempts = attempts + 1, last_error = ?2, \
                 next_attempt_ms = ?3 WHERE id = ?1",
                params![id, error, next.as_millis()],
            )
            .map_err(sql)?;
        Ok(())
    }

    /// Move a message back (rate limit): not an attempt.
    pub fn postpone(&self, id: i64, next: Timestamp) -> Result<(), NotifyError> {
        self.connection
            .execute(
                "UPDATE notify_outbox SET next_attempt_ms = ?2 WHERE id = ?1",
                params![id, next.as_millis()],
            )
            .map_err(sql)?;
        Ok(())
    }

    /// Give up on pending messages created before `cutoff`, and forget delivered ones older
    /// than that; returns how many were given up.
    pub fn expire(&self, cutoff: Timestamp) -> Result<usize, NotifyError> {
        let expired = self
            .connection
            .execute(
                "UPDATE notify_outbox SET state = 'expired' WHERE state = 'pending' AND created_ms < ?1",
                params![cutoff.as_millis()],
            )
            .map_err(sql)?;
        self.connection
            .execute(
                "DELETE FROM notify_outbox WHERE state = 'sent' AND created_ms < ?1",
                params![cutoff.as_millis()],
            )
            .map_err(sql)?;
        Ok(expired)
    }

    /// (state, count) per state, for tests and status.
    pub fn counts(&self) -> Result<Vec<(String, u64)>, NotifyError> {
        let mut statement = self
            .connection
            .prepare("SELECT state, COUNT(*) FROM notify_outbox GROUP BY state ORDER BY state")
            .map_err(sql)?;
        let rows = statement
            .query_map([], |row| Ok((row.get(0)?, row.get::<_, i64>(1)? as u64)))
            .map_err(sql)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(sql)
    }
}

fn sql(err: rusqlite::Error) -> NotifyError {
    NotifyError::Outbox(err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedup_retry_and_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(&dir.path().join("journal.sqlite3")).unwrap();
        let window = Duration::from_secs(60);
        let put = |status: &str, at: i64| {
            outbox
                .enqueue("slack", "probe:pg", status, "{}", Timestamp(at), window)
                .unwrap()
        };
        assert!(put("firing", 1_000));
        assert!(!put("firing", 2_000), "same state within the window");
        assert!(put("reminder", 3_000));
        assert!(put("reminder", 3_001), "reminders are not deduplicated");
        assert!(put("resolved", 4_000));
        assert!(put("firing", 5_000), "a new firing after a resolve");
        assert!(put("resolved", 70_000));
        assert!(put("resolved", 140_000), "the window passed");

        let due = outbox.due(Timestamp(4_000), 10).unwrap();
        assert_eq!(due.iter().map(|m| m.id).collect::<Vec<_>>(), [1, 2, 3, 4]);
        outbox.mark_sent(1, Timestamp(4_000)).unwrap();
        outbox.mark_failed(2, "503", Timestamp(9_000)).unwrap();
        outbox.postpone(3, Timestamp(9_000)).unwrap();
        let due = outbox.due(Timestamp(5_000), 10).unwrap();
        assert!(
            due.is_empty(),
            "message 2 waits for its retry, and the queue behind it: {due:?}"
        );
        assert_eq!(outbox.next_due().unwrap(), Some(Timestamp(9_000)));
        let again = outbox.due(Timestamp(9_000), 10).unwrap();
        assert_eq!(again.iter().map(|m| m.id).collect::<Vec<_>>(), [2, 3, 4, 5]);
        assert_eq!(again[0].attempts, 1);
        assert_eq!(again[1].attempts, 0, "postponing is not an attempt");

        assert_eq!(outbox.expire(Timestamp(4_500)).unwrap(), 3);
        let counts = outbox.counts().unwrap();
        assert_eq!(
            counts,
            [("expired".to_string(), 3), ("pending".to_string(), 3)]
        );
    }
}
