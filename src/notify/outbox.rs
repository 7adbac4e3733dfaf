//! The durable outbox: a `notify_outbox` table in the journal database. A message is stored
//! before any delivery is tried, so a dead receiver or a daemon restart loses nothing; which
//! alerts still fire (and so get reminders) is read from it too, not kept in memory.

use std::path::Path;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::NotifyError;
use crate::event::Timestamp;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub id: i64,
    pub channel: String,
    pub subject: String,
    pub body: String,
    pub attempts: u32,
    /// In the critical lane (a firing critical alert): sent before the rest of its channel's
    /// queue, with its own rate limit lane.
    pub critical: bool,
}

/// A message to store: its channel-shaped `body` and the `notification` it was made from (JSON,
/// so a reminder can be made again after a restart).
#[derive(Debug, Clone, Copy)]
pub struct NewMessage<'a> {
    pub channel: &'a str,
    pub subject: &'a str,
    pub status: &'a str,
    pub body: &'a str,
    pub notification: &'a str,
    /// The probe is silenced: recorded as `suppressed`, never delivered.
    pub suppressed: bool,
    /// A firing critical alert: the channel's critical lane.
    pub critical: bool,
    /// A dependant's alert held (state `held`) until this parent probe recovers.
    pub held_by: Option<&'a str>,
}

/// Where a message is in its life, as `sentinelctl outbox` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Not delivered yet: waiting for its first try, a retry or the rate limit.
    Pending,
    Delivered,
    /// Still undelivered after `max_age`: given up.
    Expired,
    /// Not sent: its probe was silenced.
    Suppressed,
    /// Waiting for the probe's `depends_on` parent to recover (then sent, or folded).
    Held,
    /// Not sent: told by its parent's message (it recovered with its parent).
    Folded,
    /// Not sent: a critical alert about the same subject came before it was tried.
    Superseded,
}

impl DeliveryState {
    fn from_column(text: &str) -> Self {
        match text {
            "sent" => Self::Delivered,
            "expired" => Self::Expired,
            "suppressed" => Self::Suppressed,
            "held" => Self::Held,
            "folded" => Self::Folded,
            "superseded" => Self::Superseded,
            _ => Self::Pending,
        }
    }
}

/// One row of the outbox, for `GET /v1/outbox`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub id: i64,
    pub channel: String,
    pub subject: String,
    /// firing, resolved or reminder.
    pub status: String,
    pub state: DeliveryState,
    pub attempts: u32,
    pub created_at: Timestamp,
    /// Pending only: when the next try is due.
    pub next_attempt_at: Option<Timestamp>,
    pub last_error: Option<String>,
    pub delivered_at: Option<Timestamp>,
}

/// An alert still firing on a channel: the newest firing/resolved message there is a firing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenAlert {
    pub channel: String,
    /// The notification JSON it was made from.
    pub notification: String,
    /// The newest message about it on this channel (firing or reminder).
    pub last_told: Timestamp,
}

pub struct Outbox {
    connection: Connection,
}

impl Outbox {
    pub fn open(path: &Path) -> Result<Self, NotifyError> {
        let connection = crate::journal::open_connection(path, None)
            .map_err(|err| NotifyError::Outbox(err.to_string()))?;
        Ok(Self { connection })
    }

    /// Store a message unless the same subject in the same status with the same text went to
    /// this channel within `dedup_window` (reminders are never deduplicated). A critical one
    /// supersedes the untried messages about its subject queued before it on the channel, so
    /// it never waits behind them. Returns whether it was stored.
    pub fn enqueue(
        &self,
        message: NewMessage<'_>,
        now: Timestamp,
        dedup_window: Duration,
    ) -> Result<bool, NotifyError> {
        let NewMessage {
            channel,
            subject,
            status,
            body,
            notification,
            suppressed,
            critical,
            held_by,
        } = message;
        if status != "reminder" && !suppressed {
            let last: Option<(String, i64, Option<bool>)> = self
                .connection
                .query_row(
                    "SELECT status, created_ms, json_extract(notification, '$.text') = \
                     json_extract(?3, '$.text') FROM notify_outbox WHERE channel = ?1 AND subject = ?2 \
                     AND status != 'reminder' AND state NOT IN ('suppressed', 'folded', 'superseded') \
                     ORDER BY id DESC LIMIT 1",
                    params![channel, subject, notification],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
                )
                .optional()
                .map_err(sql)?;
            let window_start = now.saturating_sub(dedup_window).as_millis();
            if let Some((last_status, at, same_text)) = last {
                if last_status == status && at >= window_start && same_text.unwrap_or(true) {
                    return Ok(false);
                }
            }
        }
        let state = match (suppressed, held_by) {
            (true, _) => "suppressed",
            (false, Some(_)) => "held",
            (false, None) => "pending",
        };
        if critical && state == "pending" {
            self.connection
                .execute(
                    "UPDATE notify_outbox SET state = 'superseded' WHERE channel = ?1 AND subject = ?2 \
                     AND state = 'pending' AND attempts = 0 AND priority = 1",
                    params![channel, subject],
                )
                .map_err(sql)?;
        }
        self.connection
            .execute(
                "INSERT INTO notify_outbox (channel, subject, status, body, created_ms, next_attempt_ms, \
                 state, notification, priority, held_by) VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, ?7, ?8, ?9)",
                params![
                    channel,
                    subject,
                    status,
                    body,
                    now.as_millis(),
                    state,
                    notification,
                    if critical { 0 } else { 1 },
                    held_by
                ],
            )
            .map_err(sql)?;
        Ok(true)
    }

    /// Alerts whose newest firing/resolved message on a channel is a firing (suppressed, held,
    /// folded and superseded ones do not count): what reminders are about, also right after a daemon restart.
    pub fn open_alerts(&self) -> Result<Vec<OpenAlert>, NotifyError> {
        let mut statement = self
            .connection
            .prepare(
                "SELECT o.channel, o.notification, (SELECT MAX(r.created_ms) FROM notify_outbox AS r \
                 WHERE r.channel = o.channel AND r.subject = o.subject AND r.state NOT IN \
                 ('suppressed', 'held', 'folded', 'superseded')) \
                 FROM notify_outbox AS o WHERE o.id IN (SELECT MAX(id) FROM notify_outbox \
                 WHERE status != 'reminder' AND state NOT IN ('suppressed', 'held', 'folded', 'superseded') \
                 GROUP BY channel, subject) \
                 AND o.status = 'firing' AND o.notification IS NOT NULL ORDER BY o.id",
            )
            .map_err(sql)?;
        let rows = statement
            .query_map([], |row| {
                Ok(OpenAlert {
                    channel: row.get(0)?,
                    notification: row.get(1)?,
                    last_told: Timestamp(row.get(2)?),
                })
            })
            .map_err(sql)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(sql)
    }

    /// The newest `limit` messages, newest first.
    pub fn list(&self, limit: usize) -> Result<Vec<OutboxEntry>, NotifyError> {
        let mut statement = self
            .connection
            .prepare(
                "SELECT id, channel, subject, status, state, attempts, created_ms, next_attempt_ms, \
                 last_error, sent_ms FROM notify_outbox ORDER BY id DESC LIMIT ?1",
            )
            .map_err(sql)?;
        let rows = statement
            .query_map(params![limit as i64], |row| {
                let state = DeliveryState::from_column(&row.get::<_, String>(4)?);
                Ok(OutboxEntry {
                    id: row.get(0)?,
                    channel: row.get(1)?,
                    subject: row.get(2)?,
                    status: row.get(3)?,
                    state,
                    attempts: row.get::<_, i64>(5)? as u32,
                    created_at: Timestamp(row.get(6)?),
                    next_attempt_at: (state == DeliveryState::Pending)
                        .then(|| row.get(7).map(Timestamp))
                        .transpose()?,
                    last_error: row.get(8)?,
                    delivered_at: row.get::<_, Option<i64>>(9)?.map(Timestamp),
                })
            })
            .map_err(sql)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(sql)
    }

    /// Pending messages due now, critical ones first, then oldest first, at most `limit`.
    /// Each channel has two lanes, critical and the rest, each kept in order: a message
    /// waiting for its retry or the rate limit holds back the newer ones of its lane and of
    /// its subject (so a "resolved" never overtakes its "firing"), never the other lane.
    pub fn due(&self, now: Timestamp, limit: usize) -> Result<Vec<Message>, NotifyError> {
        let mut statement = self
            .connection
            .prepare(
                "SELECT id, channel, subject, body, attempts, next_attempt_ms, priority FROM notify_outbox \
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
                    critical: row.get::<_, i64>(6)? == 0,
                };
                Ok((message, row.get::<_, i64>(5)?))
            })
            .map_err(sql)?;
        let mut held_lanes = std::collections::HashSet::new();
        let mut held_subjects = std::collections::HashSet::new();
        let mut due = Vec::new();
        for row in rows {
            let (message, next_attempt_ms) = row.map_err(sql)?;
            let lane = (message.channel.clone(), message.critical);
            let subject = (message.channel.clone(), message.subject.clone());
            if held_lanes.contains(&lane)
                || held_subjects.contains(&subject)
                || next_attempt_ms > now.as_millis()
            {
                held_lanes.insert(lane);
                held_subjects.insert(subject);
                continue;
            }
            due.push(message);
        }
        due.sort_by_key(|m| !m.critical);
        due.truncate(limit);
        Ok(due)
    }

    /// When the head of some channel lane's queue is due next.
    pub fn next_due(&self) -> Result<Option<Timestamp>, NotifyError> {
        self.connection
            .query_row(
                "SELECT MIN(next_attempt_ms) FROM notify_outbox AS o WHERE state = 'pending' \
                 AND id = (SELECT MIN(id) FROM notify_outbox WHERE state = 'pending' \
                 AND channel = o.channel AND priority = o.priority)",
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

    /// The held alerts as (subject, parent), oldest first: what an earlier sentineld held.
    pub fn held(&self) -> Result<Vec<(String, String)>, NotifyError> {
        let mut statement = self
            .connection
            .prepare(
                "SELECT subject, held_by FROM notify_outbox WHERE state = 'held' \
                 AND held_by IS NOT NULL ORDER BY id",
            )
            .map_err(sql)?;
        let rows = statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .map_err(sql)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(sql)
    }

    /// `parent` recovered: its dependants' held alerts are due now, except those whose
    /// subject is in `folded` (they recovered with it), which are folded. Returns how many
    /// were released.
    pub fn release(
        &self,
        parent: &str,
        folded: &[String],
        now: Timestamp,
    ) -> Result<usize, NotifyError> {
        for subject in folded {
            self.connection
                .execute(
                    "UPDATE notify_outbox SET state = 'folded' WHERE state = 'held' AND held_by = ?1 \
                     AND subject = ?2",
                    params![parent, subject],
                )
                .map_err(sql)?;
        }
        self.connection
            .execute(
                "UPDATE notify_outbox SET state = 'pending', next_attempt_ms = ?2 \
                 WHERE state = 'held' AND held_by = ?1",
                params![parent, now.as_millis()],
            )
            .map_err(sql)
    }

    /// Give up on pending (and held) messages created before `cutoff`, and forget delivered and
    /// suppressed ones older than that; returns how many were given up.
    pub fn expire(&self, cutoff: Timestamp) -> Result<usize, NotifyError> {
        let expired = self
            .connection
            .execute(
                "UPDATE notify_outbox SET state = 'expired' WHERE state IN ('pending', 'held') \
                 AND created_ms < ?1",
                params![cutoff.as_millis()],
            )
            .map_err(sql)?;
        self.connection
            .execute(
                "DELETE FROM notify_outbox WHERE state IN ('sent', 'suppressed', 'folded', 'superseded') \
                 AND created_ms < ?1",
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
            let message = NewMessage {
                channel: "slack",
                subject: "probe:pg",
                status,
                body: "{}",
                notification: "{}",
                suppressed: false,
                critical: false,
                held_by: None,
            };
            outbox.enqueue(message, Timestamp(at), window).unwrap()
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

    #[test]
    fn open_alerts_and_listing_come_from_the_table() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.sqlite3");
        let outbox = Outbox::open(&path).unwrap();
        let window = Duration::from_secs(60);
        let put = |channel: &str, subject: &str, status: &str, at: i64, suppressed: bool| {
            let notification = format!("{{\"subject\":\"{subject}\"}}");
            let message = NewMessage {
                channel,
                subject,
                status,
                body: "{}",
                notification: &notification,
                suppressed,
                critical: false,
                held_by: None,
            };
            outbox.enqueue(message, Timestamp(at), window).unwrap()
        };
        put("hook", "probe:a", "firing", 1_000, false);
        put("hook", "probe:a", "reminder", 5_000, false);
        put("hook", "probe:b", "firing", 2_000, false);
        put("hook", "probe:b", "resolved", 3_000, false);
        put("slack", "probe:a", "firing", 1_000, false);
        assert!(
            put("hook", "probe:c", "firing", 4_000, true),
            "suppressed rows are kept"
        );
        assert!(
            put("hook", "probe:c", "firing", 4_001, false),
            "a suppressed firing does not dedup a real one"
        );
        let open: Vec<(String, String, Timestamp)> = outbox
            .open_alerts()
            .unwrap()
            .into_iter()
            .map(|a| (a.channel, a.notification, a.last_told))
            .collect();
        let want = |channel: &str, subject: &str, at: i64| {
            (
                channel.to_string(),
                format!("{{\"subject\":\"{subject}\"}}"),
                Timestamp(at),
            )
        };
        assert_eq!(
            open,
            [
                want("hook", "probe:a", 5_000),
                want("slack", "probe:a", 1_000),
                want("hook", "probe:c", 4_001)
            ],
            "b resolved; the reminder counts as the last word on a"
        );

        outbox.mark_failed(1, "refused", Timestamp(9_000)).unwrap();
        outbox.mark_sent(3, Timestamp(2_500)).unwrap();
        let listed = outbox.list(100).unwrap();
        assert_eq!(listed.len(), 7);
        assert_eq!(listed[0].id, 7, "newest first");
        let by_id = |id: i64| listed.iter().find(|e| e.id == id).unwrap();
        assert_eq!(by_id(6).state, DeliveryState::Suppressed);
        assert_eq!(by_id(6).next_attempt_at, None);
        assert_eq!(
            (
                by_id(1).state,
                by_id(1).attempts,
                by_id(1).last_error.as_deref()
            ),
            (DeliveryState::Pending, 1, Some("refused"))
        );
        assert_eq!(by_id(1).next_attempt_at, Some(Timestamp(9_000)));
        assert_eq!(
            (by_id(3).state, by_id(3).delivered_at),
            (DeliveryState::Delivered, Some(Timestamp(2_500)))
        );
        assert_eq!(outbox.list(2).unwrap().len(), 2);
    }

    #[test]
    fn criticals_have_their_own_lane_and_held_alerts_wait_for_their_parent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.sqlite3");
        let outbox = Outbox::open(&path).unwrap();
        let window = Duration::from_secs(60);
        let put = |subject: &str, status: &str, text: &str, critical: bool, held_by, at: i64| {
            let notification = format!("{{\"text\":\"{text}\"}}");
            let message = NewMessage {
                channel: "hook",
                subject,
                status,
                body: text,
                notification: &notification,
                suppressed: false,
                critical,
                held_by,
            };
            outbox.enqueue(message, Timestamp(at), window).unwrap()
        };
        // a warning waiting for the rate limit holds its lane, not the critical lane
        put("archive:b", "firing", "upload problem", false, None, 1);
        put("archive:c", "firing", "spool problem", false, None, 2);
        outbox.postpone(1, Timestamp(60_000)).unwrap();
        put("probe:web", "firing", "web down", true, None, 3);
        let due: Vec<i64> = outbox
            .due(Timestamp(10), 10)
            .unwrap()
            .iter()
            .map(|m| m.id)
            .collect();
        assert_eq!(
            due,
            [3],
            "the critical goes; the warning lane waits in order"
        );
        assert_eq!(outbox.next_due().unwrap(), Some(Timestamp(3)));

        // an untried resolve is superseded by a newer critical about the same subject
        outbox.mark_sent(3, Timestamp(11)).unwrap();
        put("probe:web", "resolved", "web up", false, None, 20);
        put("probe:web", "firing", "web gave up", true, None, 21);
        let due = outbox.due(Timestamp(30), 10).unwrap();
        assert_eq!(due.iter().map(|m| m.id).collect::<Vec<_>>(), [5]);
        assert!(due[0].critical);
        let state = |id: i64| {
            let list = outbox.list(100).unwrap();
            list.iter().find(|e| e.id == id).unwrap().state
        };
        assert_eq!(state(4), DeliveryState::Superseded);
        // the same state with another text is not a duplicate; the same text is
        assert!(!put("probe:web", "firing", "web gave up", true, None, 22));

        // held until the parent recovers, across a reopen (a daemon restart)
        put("probe:api", "firing", "api down", true, Some("db"), 40);
        put("probe:queue", "firing", "queue down", true, Some("db"), 41);
        put("probe:queue", "resolved", "queue up", false, Some("db"), 42);
        drop(outbox);
        let outbox = Outbox::open(&path).unwrap();
        assert_eq!(
            outbox.held().unwrap(),
            [
                ("probe:api".to_string(), "db".to_string()),
                ("probe:queue".to_string(), "db".to_string()),
                ("probe:queue".to_string(), "db".to_string()),
            ]
        );
        let due = outbox.due(Timestamp(50), 10).unwrap();
        assert!(
            due.iter().all(|m| m.id < 6),
            "held rows are not due: {due:?}"
        );
        let released = outbox
            .release("db", &["probe:queue".to_string()], Timestamp(60))
            .unwrap();
        assert_eq!(released, 1);
        let due = outbox.due(Timestamp(60), 10).unwrap();
        assert!(due.iter().any(|m| m.id == 6), "{due:?}");
        let list = outbox.list(100).unwrap();
        let state = |id: i64| list.iter().find(|e| e.id == id).unwrap().state;
        assert_eq!(
            (state(7), state(8)),
            (DeliveryState::Folded, DeliveryState::Folded)
        );
        assert!(outbox.held().unwrap().is_empty());
    }
}
