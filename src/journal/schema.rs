//! The journal database's schema history. One SQLite file holds the events, the chaos write-ahead
//! table, the archive ledger and the notify outbox, so one ordered list of migrations keyed on
//! `PRAGMA user_version` (`rusqlite_migration`) brings any copy up to date, whoever opens it first.
//!
//! Rules for adding a change: append a migration, never edit one that shipped. Every migration
//! is idempotent (`IF NOT EXISTS`, or a hook that looks before it alters), because databases
//! written before `user_version` was kept (version 0) may hold any of these tables already, and
//! because the journal, the ledger and the outbox may open the file at the same moment.

use rusqlite::{Connection, TransactionBehavior};
use rusqlite_migration::{HookError, Migrations, M};

/// Version 1: the four tables as they stood before `user_version` was kept (the outbox still
/// without its `notification` column, which version 2 adds).
const BASELINE: &str = "
CREATE TABLE IF NOT EXISTS events (
    id    INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms INTEGER NOT NULL,
    kind  TEXT    NOT NULL,
    body  TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS events_at ON events(at_ms);
CREATE INDEX IF NOT EXISTS events_kind ON events(kind, id);

CREATE TABLE IF NOT EXISTS chaos_experiments (
    id         TEXT    PRIMARY KEY,
    created_ms INTEGER NOT NULL,
    state      TEXT    NOT NULL,
    body       TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS chaos_experiments_state ON chaos_experiments(state);

CREATE TABLE IF NOT EXISTS archives (
    name            TEXT PRIMARY KEY,
    probe           TEXT NOT NULL,
    target          TEXT NOT NULL,
    created_ms      INTEGER NOT NULL,
    path            TEXT NOT NULL,
    manifest_path   TEXT NOT NULL,
    bytes           INTEGER NOT NULL,
    sha256          TEXT NOT NULL,
    state           TEXT NOT NULL,
    destination     TEXT NOT NULL,
    location        TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    uploaded_ms     INTEGER
);
CREATE INDEX IF NOT EXISTS archives_pending ON archives(state, next_attempt_ms);

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

/// The migrations in order; the database's `user_version` is how many of them it has.
fn steps() -> Vec<M<'static>> {
    vec![
        M::up(BASELINE),
        // Version 2: the notification JSON a message was made from (reminders are composed from
        // it). Outboxes from before version 0 was left may already have it.
        M::up_with_hook("", |tx: &rusqlite::Transaction| {
            add_column_unless_present(tx, "notify_outbox", "notification", "TEXT")
        }),
        // Version 3: notification priority lanes (0 critical, 1 the rest) and the parent probe
        // a dependant's held alert waits for (state 'held').
        M::up_with_hook("", |tx: &rusqlite::Transaction| {
            add_column_unless_present(
                tx,
                "notify_outbox",
                "priority",
                "INTEGER NOT NULL DEFAULT 1",
            )?;
            add_column_unless_present(tx, "notify_outbox", "held_by", "TEXT")
        }),
        // Version 4: the uptime rollups (`crate::uptime::rollup`), built from the events the
        // journal already holds.
        M::up_with_hook(
            crate::uptime::rollup::SCHEMA,
            |tx: &rusqlite::Transaction| {
                crate::uptime::rollup::backfill(tx)?;
                Ok(())
            },
        ),
    ]
}

fn migrations() -> Migrations<'static> {
    Migrations::new(steps())
}

/// The `user_version` this build writes.
pub fn latest_version() -> usize {
    steps().len()
}

/// Bring the database behind `connection` up to the latest version, each step in its own
/// transaction (taken IMMEDIATE, so two openers queue on the busy timeout instead of racing).
/// A database from a newer release (a higher `user_version`) is refused, not rewritten.
pub fn migrate(connection: &mut Connection) -> Result<(), rusqlite_migration::Error> {
    connection.set_transaction_behavior(TransactionBehavior::Immediate);
    let result = migrations().to_latest(connection);
    connection.set_transaction_behavior(TransactionBehavior::Deferred);
    result
}

fn add_column_unless_present(
    tx: &rusqlite::Transaction,
    table: &str,
    column: &str,
    kind: &str,
) -> Result<(), HookError> {
    let present = tx
        .prepare("SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2")?
        .exists([table, column])?;
    if !present {
        tx.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {kind}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use rusqlite::OpenFlags;

    use super::*;

    /// A journal database written by the release before `user_version` was kept: the journal,
    /// the chaos table, the ledger and the outbox each opened it and stored rows (5 events, one
    /// active experiment, one pending archive after a failed attempt, two outbox messages).
    const FIXTURE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/journal-before-user-version.sqlite3"
    );

    fn user_version(connection: &Connection) -> i64 {
        connection
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .unwrap()
    }

    /// Every row of every table, as text, in a fixed order: what "without loss" compares.
    fn dump(path: &Path) -> Vec<String> {
        let connection =
            Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        let tables: Vec<String> = connection
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let mut rows = Vec::new();
        for table in tables {
            let mut statement = connection
                .prepare(&format!("SELECT * FROM {table} ORDER BY 1"))
                .unwrap();
            let columns = statement.column_count();
            let names: Vec<String> = statement
                .column_names()
                .into_iter()
                .map(str::to_owned)
                .collect();
            let mut query = statement.query([]).unwrap();
            while let Some(row) = query.next().unwrap() {
                let cells: Vec<String> = (0..columns)
                    .map(|i| {
                        let value: rusqlite::types::Value = row.get(i).unwrap();
                        format!("{}={value:?}", names[i])
                    })
                    .collect();
                rows.push(format!("{table}: {}", cells.join(", ")));
            }
        }
        rows
    }

    fn copy_fixture(dir: &tempfile::TempDir) -> std::path::PathBuf {
        let path = dir.path().join("journal.sqlite3");
        std::fs::copy(FIXTURE, &path).unwrap();
        path
    }

    #[test]
    fn the_list_is_valid_and_its_length_is_the_latest_version() {
        migrations().validate().unwrap();
        let mut connection = Connection::open_in_memory().unwrap();
        migrate(&mut connection).unwrap();
        assert_eq!(user_version(&connection), latest_version() as i64);
    }

    #[test]
    fn a_database_from_before_user_version_migrates_without_loss() {
        let dir = tempfile::tempdir().unwrap();
        let path = copy_fixture(&dir);
        let before = dump(&path);
        assert_eq!(before.len(), 5 + 1 + 1 + 2 + 2, "{before:#?}");
        assert_eq!(user_version(&Connection::open(&path).unwrap()), 0);

        // Each area opens the file as the daemon does; the first one migrates it.
        let journal = crate::journal::JournalStore::open(&path).unwrap();
        assert_eq!(journal.count().unwrap(), 5);
        let experiments = crate::journal::ExperimentStore::open(&path).unwrap();
        assert_eq!(experiments.unfinished().unwrap().len(), 1);
        let ledger = crate::archive::Ledger::open(&path).unwrap();
        assert_eq!(ledger.list(10).unwrap().len(), 1);
        let outbox = crate::notify::Outbox::open(&path).unwrap();
        assert_eq!(outbox.list(10).unwrap().len(), 2);
        drop((journal, experiments, ledger, outbox));

        assert_eq!(without_new(dump(&path)), before, "no row or value changed");
        let connection = Connection::open(&path).unwrap();
        assert_eq!(user_version(&connection), latest_version() as i64);
        // Opening again is a no-op.
        drop(connection);
        crate::notify::Outbox::open(&path).unwrap();
        assert_eq!(without_new(dump(&path)), before);
    }

    #[test]
    fn an_outbox_from_before_the_notification_column_gains_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.sqlite3");
        let connection = Connection::open(&path).unwrap();
        connection.execute_batch(BASELINE).unwrap();
        connection
            .execute_batch(
                "INSERT INTO notify_outbox (channel, subject, status, body, created_ms, next_attempt_ms) \
                 VALUES ('slack', 'web', 'firing', '{}', 1, 1)",
            )
            .unwrap();
        drop(connection);
        let outbox = crate::notify::Outbox::open(&path).unwrap();
        assert_eq!(outbox.list(10).unwrap().len(), 1);
        assert!(outbox.open_alerts().unwrap().is_empty());
        let connection = Connection::open(&path).unwrap();
        let has_column: bool = connection
            .prepare("SELECT 1 FROM pragma_table_info('notify_outbox') WHERE name = 'notification'")
            .unwrap()
            .exists([])
            .unwrap();
        assert!(has_column);
        assert_eq!(user_version(&connection), latest_version() as i64);
    }

    #[test]
    fn a_database_from_a_newer_release_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = copy_fixture(&dir);
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", 99)
            .unwrap();
        let before = dump(&path);
        let err = crate::journal::JournalStore::open(&path).err().unwrap();
        let text = err.to_string();
        assert!(text.contains("journal.sqlite3"), "{text}");
        assert!(std::error::Error::source(&err).is_some());
        assert_eq!(dump(&path), before);
    }

    #[test]
    fn two_openers_at_once_both_succeed() {
        for _ in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let path = copy_fixture(&dir);
            let before = dump(&path);
            let threads: Vec<_> = (0..4)
                .map(|i| {
                    let path = path.clone();
                    std::thread::spawn(move || match i % 2 {
                        0 => crate::notify::Outbox::open(&path)
                            .map(drop)
                            .map_err(|e| e.to_string()),
                        _ => crate::journal::JournalStore::open(&path)
                            .map(drop)
                            .map_err(|e| e.to_string()),
                    })
                })
                .collect();
            for thread in threads {
                thread.join().unwrap().unwrap();
            }
            assert_eq!(without_new(dump(&path)), before);
        }
    }

    /// The rows without version 3's outbox columns (at their defaults).
    fn without_new(rows: Vec<String>) -> Vec<String> {
        rows.into_iter()
            .map(|r| r.replace(", priority=Integer(1), held_by=Null", ""))
            .collect()
    }

    /// A journal of schema version 2 (the release before the uptime rollups) holding probe
    /// transitions and a daemon stop opens, reaches the latest version, and gets rollups that
    /// give what a full recomputation from its events gives.
    #[test]
    fn a_version_2_journal_gets_its_uptime_rollups() {
        use crate::event::{Event, EventKind, ProbeState, Timestamp};
        use crate::uptime::math::{day_of, merged_exclusions, recompute, Change, Class, Span};

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.sqlite3");
        let mut connection = Connection::open(&path).unwrap();
        Migrations::new(steps().into_iter().take(2).collect())
            .to_latest(&mut connection)
            .unwrap();
        assert_eq!(user_version(&connection), 2);
        let day = 86_400_000;
        let t0 = 20_000 * day;
        let transition = |at: i64, to: ProbeState| Event {
            at: Timestamp(at),
            kind: EventKind::ProbeTransition {
                probe: "web".into(),
                from: ProbeState::Unknown,
                to,
                reason: None,
                status_code: None,
                latency_ms: None,
                recoveries_total: 0,
            },
        };
        let events = [
            transition(t0 + 1000, ProbeState::Up),
            transition(t0 + day - 3_600_000, ProbeState::Down),
            transition(t0 + day + 600_000, ProbeState::Recovering),
            transition(t0 + day + 900_000, ProbeState::Up),
            Event {
                at: Timestamp(t0 + 2 * day),
                kind: EventKind::DaemonStopping {
                    reason: "upgrade".into(),
                },
            },
            transition(t0 + 2 * day + 3_600_000, ProbeState::Up),
        ];
        for event in &events {
            connection
                .execute(
                    "INSERT INTO events (at_ms, kind, body) VALUES (?1, ?2, ?3)",
                    rusqlite::params![
                        event.at.as_millis(),
                        event.kind.name(),
                        serde_json::to_string(event).unwrap()
                    ],
                )
                .unwrap();
        }
        assert!(!connection
            .prepare("SELECT 1 FROM sqlite_master WHERE name = 'uptime_days'")
            .unwrap()
            .exists([])
            .unwrap());
        drop(connection);

        let store = crate::journal::JournalStore::open(&path).unwrap();
        assert_eq!(user_version(store.connection()), latest_version() as i64);
        let now = t0 + 3 * day;
        let changes = [
            (t0 + 1000, Class::Up),
            (t0 + day - 3_600_000, Class::Down),
            (t0 + day + 900_000, Class::Up),
            (t0 + 2 * day, Class::Unknown),
            (t0 + 2 * day + 3_600_000, Class::Up),
        ]
        .map(|(at, class)| Change { at, class });
        let rows =
            crate::uptime::rollup::load(store.connection(), None, day_of(t0), day_of(now)).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].days.len(), 3, "a row for each day with data");
        for window in [
            Span { from: t0, to: now },
            Span {
                from: t0 + day - 1,
                to: t0 + day + 1,
            },
            Span {
                from: t0 + 2 * day,
                to: now,
            },
        ] {
            let want = recompute(&changes, now, window, &merged_exclusions("web", &[]));
            let got = crate::uptime::rollup::figures(&rows[0], now, window, &[]);
            assert_eq!(got, want, "{window:?}");
        }
        let whole = crate::uptime::rollup::figures(&rows[0], now, Span { from: t0, to: now }, &[]);
        assert_eq!(whole.down_ms, 3_600_000 + 900_000);
        assert_eq!(whole.unknown_ms, 1000 + 3_600_000);
        assert_eq!((whole.incidents, whole.ttr_median_ms), (1, Some(4_500_000)));
    }
}
