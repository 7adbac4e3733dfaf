//! The daily rollups in the journal database, kept in the same transaction as the events they
//! come from, so a query reads at most one row per probe and day instead of every transition.
//!
//! `uptime_open` holds each probe's open span (its class since when, and the start of an
//! incident not yet recovered). `uptime_days` holds one row per probe and UTC day for the time
//! before the open span: the class at the start of the day, the changes of class within it
//! (`changes`: 5 bytes each, u32 LE millisecond offset in the day, u8 class), the Up and Down
//! milliseconds of the day, and the incidents that began that day (`incidents`: 12 bytes each,
//! u32 LE offset, i64 LE time to recover or -1 while not recovered). Whole days outside any
//! exclusion use the sums; window edges and excluded days replay the changes.

use rusqlite::{params, Connection, OptionalExtension};

use super::math::{day_of, Class, Figures, Span, Tally, DAY_MS};
use super::UptimeError;
use crate::event::{Event, EventKind};

/// Tables and indexes; created by journal schema version 4.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS uptime_open (
    probe       TEXT    PRIMARY KEY,
    class       INTEGER NOT NULL,
    since_ms    INTEGER NOT NULL,
    incident_ms INTEGER
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS uptime_days (
    probe       TEXT    NOT NULL,
    day         INTEGER NOT NULL,
    start_class INTEGER NOT NULL,
    changes     BLOB    NOT NULL,
    up_ms       INTEGER NOT NULL,
    down_ms     INTEGER NOT NULL,
    incidents   BLOB    NOT NULL,
    PRIMARY KEY (probe, day)
) WITHOUT ROWID;
";

/// Days of rollups kept (the journal's pruning drops older rows): the longest report is 90 d,
/// and a year more lets `--since` reach back past the events' own retention.
pub const KEEP_DAYS: i64 = 400;

const CHANGE_BYTES: usize = 5;
const INCIDENT_BYTES: usize = 12;

/// Fold `event` into the rollups. Called for every event the journal stores, inside its
/// transaction; events of other kinds cost nothing.
pub fn record(connection: &Connection, event: &Event) -> rusqlite::Result<()> {
    let at = event.at.as_millis();
    match &event.kind {
        EventKind::ProbeTransition { probe, to, .. } => {
            change(connection, probe, at, Class::of(*to))
        }
        // Nothing is known about any probe from here until its next transition.
        EventKind::DaemonStopping { .. } | EventKind::DaemonStarted { .. } => {
            let probes: Vec<String> = connection
                .prepare_cached("SELECT probe FROM uptime_open WHERE class != 0")?
                .query_map([], |row| row.get(0))?
                .collect::<Result<_, _>>()?;
            for probe in probes {
                change(connection, &probe, at, Class::Unknown)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Rebuild the rollups from the events already in the journal (schema migration to version 4).
/// Rows another release wrote that this one cannot decode are passed over.
pub fn backfill(connection: &Connection) -> rusqlite::Result<()> {
    let mut statement = connection.prepare(
        "SELECT body FROM events WHERE kind IN ('probe_transition', 'daemon_stopping', 'daemon_started') ORDER BY id",
    )?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        let body: String = row.get(0)?;
        if let Ok(event) = serde_json::from_str::<Event>(&body) {
            record(connection, &event)?;
        }
    }
    Ok(())
}

/// Drop rollup days older than [`KEEP_DAYS`] before `now_ms`.
pub fn prune(connection: &Connection, now_ms: i64) -> rusqlite::Result<usize> {
    connection.execute(
        "DELETE FROM uptime_days WHERE day < ?1",
        params![day_of(now_ms) - KEEP_DAYS],
    )
}

fn offset(at: i64) -> u32 {
    at.rem_euclid(DAY_MS) as u32
}

fn change(connection: &Connection, probe: &str, at: i64, class: Class) -> rusqlite::Result<()> {
    let open: Option<(u8, i64, Option<i64>)> = connection
        .prepare_cached("SELECT class, since_ms, incident_ms FROM uptime_open WHERE probe = ?1")?
        .query_row([probe], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .optional()?;
    let (at, mut incident) = match open {
        None => {
            ensure_day(connection, probe, day_of(at), Class::Unknown)?;
            (at, None)
        }
        Some((code, since, incident)) => {
            let previous = Class::from_code(code).unwrap_or(Class::Unknown);
            if previous == class {
                return Ok(());
            }
            // A clock that stepped back: the change counts at the open span's start.
            let at = at.max(since);
            close_span(connection, probe, since, at, previous)?;
            (at, incident)
        }
    };
    let day = day_of(at);
    let (mut changes, mut incidents) = blobs(connection, probe, day)?;
    changes.extend_from_slice(&offset(at).to_le_bytes());
    changes.push(class.code());
    match class {
        Class::Down if incident.is_none() => {
            incident = Some(at);
            incidents.extend_from_slice(&offset(at).to_le_bytes());
            incidents.extend_from_slice(&(-1i64).to_le_bytes());
        }
        Class::Up => {
            if let Some(start) = incident.take() {
                let ttr = at - start;
                if day_of(start) == day {
                    set_ttr(&mut incidents, offset(start), ttr);
                } else {
                    let (start_changes, mut start_incidents) =
                        blobs(connection, probe, day_of(start))?;
                    set_ttr(&mut start_incidents, offset(start), ttr);
                    store_blobs(
                        connection,
                        probe,
                        day_of(start),
                        &start_changes,
                        &start_incidents,
                    )?;
                }
            }
        }
        _ => {}
    }
    store_blobs(connection, probe, day, &changes, &incidents)?;
    connection
        .prepare_cached(
            "INSERT INTO uptime_open (probe, class, since_ms, incident_ms) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (probe) DO UPDATE SET class = ?2, since_ms = ?3, incident_ms = ?4",
        )?
        .execute(params![probe, class.code(), at, incident])?;
    Ok(())
}

fn set_ttr(incidents: &mut [u8], start_offset: u32, ttr: i64) {
    for entry in incidents.chunks_exact_mut(INCIDENT_BYTES) {
        let offset = u32::from_le_bytes(entry[..4].try_into().unwrap_or_default());
        let open = i64::from_le_bytes(entry[4..].try_into().unwrap_or_default()) < 0;
        if offset == start_offset && open {
            entry[4..].copy_from_slice(&ttr.to_le_bytes());
        }
    }
}

/// Add the closed span `[from, to)` of `class` to the days it touches, creating their rows.
fn close_span(
    connection: &Connection,
    probe: &str,
    from: i64,
    to: i64,
    class: Class,
) -> rusqlite::Result<()> {
    for day in day_of(from)..=day_of(to) {
        // Days after the first start in `class`; the first day's row exists already.
        ensure_day(connection, probe, day, class)?;
        let part = Span { from, to }.clip(Span {
            from: day * DAY_MS,
            to: (day + 1) * DAY_MS,
        });
        let (up, down) = match class {
            Class::Up => (part.len(), 0),
            Class::Down => (0, part.len()),
            Class::Unknown => continue,
        };
        if part.is_empty() {
            continue;
        }
        connection
            .prepare_cached(
                "UPDATE uptime_days SET up_ms = up_ms + ?3, down_ms = down_ms + ?4
                 WHERE probe = ?1 AND day = ?2",
            )?
            .execute(params![probe, day, up, down])?;
    }
    Ok(())
}

fn ensure_day(
    connection: &Connection,
    probe: &str,
    day: i64,
    start: Class,
) -> rusqlite::Result<()> {
    connection
        .prepare_cached(
            "INSERT INTO uptime_days (probe, day, start_class, changes, up_ms, down_ms, incidents)
             VALUES (?1, ?2, ?3, x'', 0, 0, x'') ON CONFLICT DO NOTHING",
        )?
        .execute(params![probe, day, start.code()])?;
    Ok(())
}

fn blobs(connection: &Connection, probe: &str, day: i64) -> rusqlite::Result<(Vec<u8>, Vec<u8>)> {
    Ok(connection
        .prepare_cached("SELECT changes, incidents FROM uptime_days WHERE probe = ?1 AND day = ?2")?
        .query_row(params![probe, day], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?
        .unwrap_or_default())
}

fn store_blobs(
    connection: &Connection,
    probe: &str,
    day: i64,
    changes: &[u8],
    incidents: &[u8],
) -> rusqlite::Result<()> {
    connection
        .prepare_cached(
            "UPDATE uptime_days SET changes = ?3, incidents = ?4 WHERE probe = ?1 AND day = ?2",
        )?
        .execute(params![probe, day, changes, incidents])?;
    Ok(())
}

/// One probe's rollup rows for a range of days, and its open span.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeRows {
    pub probe: String,
    /// By day, ascending.
    pub days: Vec<DayRow>,
    pub open: Open,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Open {
    pub class: Class,
    pub since: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DayRow {
    pub day: i64,
    pub start: Class,
    /// The `changes` blob as stored (validated on load), decoded only when a day is replayed.
    changes: Vec<u8>,
    pub up_ms: i64,
    pub down_ms: i64,
    /// (start, time to recover).
    pub incidents: Vec<(i64, Option<i64>)>,
}

impl DayRow {
    /// The changes of class within the day: (time, class), ascending.
    pub fn changes(&self) -> impl Iterator<Item = (i64, Class)> + '_ {
        let base = self.day * DAY_MS;
        self.changes.chunks_exact(CHANGE_BYTES).map(move |entry| {
            let offset = u32::from_le_bytes([entry[0], entry[1], entry[2], entry[3]]);
            let class = Class::from_code(entry[4]).unwrap_or(Class::Unknown);
            (base + i64::from(offset), class)
        })
    }
}

/// The rows of `probe` (every probe when `None`) for days `first..=last`, by probe name.
pub fn load(
    connection: &Connection,
    probe: Option<&str>,
    first: i64,
    last: i64,
) -> Result<Vec<ProbeRows>, UptimeError> {
    let mut open = connection.prepare_cached(
        "SELECT probe, class, since_ms FROM uptime_open WHERE ?1 IS NULL OR probe = ?1 ORDER BY probe",
    )?;
    let opens: Vec<(String, u8, i64)> = open
        .query_map([probe], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
        .collect::<Result<_, _>>()?;
    let mut days = connection.prepare_cached(
        "SELECT day, start_class, changes, up_ms, down_ms, incidents FROM uptime_days
         WHERE probe = ?1 AND day BETWEEN ?2 AND ?3 ORDER BY day",
    )?;
    let mut out = Vec::with_capacity(opens.len());
    for (name, class, since) in opens {
        let mut rows = Vec::new();
        let mut query = days.query(params![name, first, last])?;
        while let Some(row) = query.next()? {
            let day: i64 = row.get(0)?;
            let corrupt = || UptimeError::CorruptRollup {
                probe: name.clone(),
                day,
            };
            let start = Class::from_code(row.get(1)?).ok_or_else(corrupt)?;
            let changes_blob: Vec<u8> = row.get(2)?;
            let incidents_blob: Vec<u8> = row.get(5)?;
            if changes_blob.len() % CHANGE_BYTES != 0 || incidents_blob.len() % INCIDENT_BYTES != 0
            {
                return Err(corrupt());
            }
            let base = day * DAY_MS;
            let valid = changes_blob
                .chunks_exact(CHANGE_BYTES)
                .all(|entry| Class::from_code(entry[4]).is_some());
            if !valid {
                return Err(corrupt());
            }
            let incidents = incidents_blob
                .chunks_exact(INCIDENT_BYTES)
                .map(|entry| {
                    let offset = u32::from_le_bytes([entry[0], entry[1], entry[2], entry[3]]);
                    let mut ttr = [0u8; 8];
                    ttr.copy_from_slice(&entry[4..]);
                    let ttr = i64::from_le_bytes(ttr);
                    (base + i64::from(offset), (ttr >= 0).then_some(ttr))
                })
                .collect();
            rows.push(DayRow {
                day,
                start,
                changes: changes_blob,
                up_ms: row.get(3)?,
                down_ms: row.get(4)?,
                incidents,
            });
        }
        out.push(ProbeRows {
            probe: name,
            days: rows,
            open: Open {
                class: Class::from_code(class).unwrap_or(Class::Unknown),
                since,
            },
        });
    }
    Ok(out)
}

/// The figures of `window` from one probe's rows (which must cover the window's days), with
/// the open span running to `now`.
pub fn figures(rows: &ProbeRows, now: i64, window: Span, excluded: &[Span]) -> Figures {
    let mut tally = Tally::default();
    let first = day_of(window.from);
    let last = day_of(window.to.saturating_sub(1).max(window.from));
    let start = rows.days.partition_point(|row| row.day < first);
    for row in rows.days[start..].iter().take_while(|row| row.day <= last) {
        let day = Span {
            from: row.day * DAY_MS,
            to: (row.day + 1) * DAY_MS,
        };
        let closed = Span {
            from: day.from,
            to: day.to.min(rows.open.since),
        };
        let whole = closed == day
            && window.from <= day.from
            && day.to <= window.to
            && excluded.iter().all(|e| e.clip(day).is_empty());
        if whole {
            tally.up_ms += row.up_ms;
            tally.down_ms += row.down_ms;
        } else {
            let mut at = day.from;
            let mut class = row.start;
            for (change_at, next) in row.changes() {
                tally.span(
                    Span {
                        from: at,
                        to: change_at.min(closed.to),
                    },
                    class,
                    window,
                    excluded,
                );
                at = change_at.max(at);
                class = next;
            }
            tally.span(
                Span {
                    from: at,
                    to: closed.to,
                },
                class,
                window,
                excluded,
            );
        }
        for &(start, ttr) in &row.incidents {
            tally.incident(start, ttr, window, excluded);
        }
    }
    tally.span(
        Span {
            from: rows.open.since,
            to: now.max(rows.open.since),
        },
        rows.open.class,
        window,
        excluded,
    );
    tally.finish(window, excluded)
}
