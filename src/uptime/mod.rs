//! Uptime: per probe, availability over 24 h / 7 d / 30 d / 90 d (or any `since`), incidents and
//! time to recover, from daily rollups the journal keeps as it stores probe transitions.
//!
//! How time counts (docs/uptime.md): Up and Failing are up; Down and Recovering are down;
//! Unknown, time before a probe's first transition and time while sentineld was stopped are "no
//! data" and left out of the denominator (availability = up / (up + down)); time inside an
//! exclusion (a maintenance window) is left out of all three. Silencing a probe changes nothing
//! here: it mutes alerts, the probe was still down. An incident begins when a probe becomes Down
//! while none is open and ends at its next Up; its time to recover spans any unknown time
//! between. After a crash (no `daemon_stopping`), the time until the next start counts in the
//! last state seen, since nothing says when the crash happened.

pub mod math;
pub mod rollup;

use std::collections::BTreeMap;

use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::event::Timestamp;
use crate::journal::{EventQuery, Journal, JournalError};
pub use math::{Class, Figures, Span, DAY_MS};

#[derive(Debug, Error)]
pub enum UptimeError {
    #[error("the uptime rollups could not be read")]
    Sql(#[from] rusqlite::Error),
    #[error("the journal could not be read")]
    Journal(#[from] JournalError),
    #[error("the uptime rollup of probe `{probe}` for day {day} is corrupt")]
    CorruptRollup { probe: String, day: i64 },
}

/// A span left out of the figures, for one probe or for all (`probe: None`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exclusion {
    pub probe: Option<String>,
    pub from: Timestamp,
    pub to: Timestamp,
}

/// Probe name → labels: what a maintenance window scoped by labels is resolved against
/// (`maintenance::Windows::probe_labels`, the running config's probes).
pub type ProbeLabels = BTreeMap<String, BTreeMap<String, String>>;

/// The spans to leave out between `from` and `to`: the maintenance windows journaled in that
/// time (`maintenance::excluded_spans`), one exclusion per covered probe. A window scoped by
/// labels covers the probes that carry them now; one naming a probe covers it even if it is no
/// longer configured.
pub async fn exclusions(
    journal: &Journal,
    from: Timestamp,
    to: Timestamp,
    labels: &ProbeLabels,
) -> Result<Vec<Exclusion>, UptimeError> {
    // No window lasts longer than maintenance::MAX_DURATION: one that began earlier has ended
    // before `from`, and its end event (which carries its start) is read all the same.
    let query = EventQuery {
        since: Some(from.saturating_sub(crate::maintenance::MAX_DURATION)),
        until: Some(to),
        kinds: vec!["maintenance_started".into(), "maintenance_ended".into()],
        limit: EventQuery::MAX_LIMIT,
        ..Default::default()
    };
    let events = journal.query(query).await?;
    let spans = crate::maintenance::excluded_spans(events.iter().map(|e| &e.event), to);
    Ok(covered(&spans, labels, from))
}

/// The exclusions of `spans` that end after `from`, one per probe each covers.
fn covered(
    spans: &[crate::maintenance::Span],
    labels: &ProbeLabels,
    from: Timestamp,
) -> Vec<Exclusion> {
    let mut exclusions = Vec::new();
    for span in spans.iter().filter(|span| span.to > from) {
        let mut probes: Vec<&String> = span.scope.probes.iter().collect();
        probes.extend(
            labels
                .iter()
                .filter(|(name, own)| span.covers(name, own) && !span.scope.probes.contains(*name))
                .map(|(name, _)| name),
        );
        exclusions.extend(probes.into_iter().map(|probe| Exclusion {
            probe: Some(probe.clone()),
            from: span.from,
            to: span.to,
        }));
    }
    exclusions
}

/// The standard windows, by name and length.
pub const STANDARD_WINDOWS: [(&str, i64); 4] = [
    ("24h", DAY_MS),
    ("7d", 7 * DAY_MS),
    ("30d", 30 * DAY_MS),
    ("90d", 90 * DAY_MS),
];

/// What to report: one window from `since` (else the four standard ones), for one probe (else all).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UptimeRequest {
    /// The window's name as asked (`30d`, an RFC 3339 time) and its start.
    pub since: Option<(String, Timestamp)>,
    pub probe: Option<String>,
}

/// `GET /v1/uptime`'s answer. Field names are stable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UptimeReport {
    pub now: Timestamp,
    pub windows: Vec<WindowSpec>,
    pub probes: Vec<ProbeUptime>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowSpec {
    pub name: String,
    pub from: Timestamp,
    pub to: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeUptime {
    pub probe: String,
    /// In the order of `windows`.
    pub windows: Vec<WindowFigures>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowFigures {
    pub window: String,
    #[serde(flatten)]
    pub figures: Figures,
}

/// The report over an open journal connection (what the route and the bench call).
pub fn report_from(
    connection: &Connection,
    now: Timestamp,
    request: &UptimeRequest,
    exclusions: &[Exclusion],
) -> Result<UptimeReport, UptimeError> {
    let windows: Vec<WindowSpec> = match &request.since {
        Some((name, since)) => vec![WindowSpec {
            name: name.clone(),
            from: (*since).min(now),
            to: now,
        }],
        None => STANDARD_WINDOWS
            .iter()
            .map(|(name, length)| {
                let span = math::window_before(now, *length);
                WindowSpec {
                    name: (*name).to_string(),
                    from: Timestamp(span.from),
                    to: Timestamp(span.to),
                }
            })
            .collect(),
    };
    let first = windows
        .iter()
        .map(|w| w.from.as_millis())
        .min()
        .unwrap_or(now.0);
    let rows = rollup::load(
        connection,
        request.probe.as_deref(),
        math::day_of(first),
        math::day_of(now.as_millis()),
    )?;
    let probes = rows
        .iter()
        .map(|rows| {
            let excluded = math::merged_exclusions(&rows.probe, exclusions);
            ProbeUptime {
                probe: rows.probe.clone(),
                windows: windows
                    .iter()
                    .map(|w| WindowFigures {
                        window: w.name.clone(),
                        figures: rollup::figures(
                            rows,
                            now.as_millis(),
                            Span {
                                from: w.from.as_millis(),
                                to: w.to.as_millis(),
                            },
                            &excluded,
                        ),
                    })
                    .collect(),
            }
        })
        .collect();
    Ok(UptimeReport {
        now,
        windows,
        probes,
    })
}

/// The report, read from the journal with the maintenance exclusions applied.
pub async fn report(
    journal: &Journal,
    now: Timestamp,
    request: UptimeRequest,
    labels: &ProbeLabels,
) -> Result<UptimeReport, UptimeError> {
    let from = request
        .since
        .as_ref()
        .map_or(now.0 - 90 * DAY_MS, |(_, since)| since.0.min(now.0));
    let excluded = exclusions(journal, Timestamp(from), now, labels).await?;
    journal
        .read(move |connection| report_from(connection, now, &request, &excluded))
        .await
}

/// One UTC day of a probe's bar on the status page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DayCell {
    /// `YYYY-MM-DD`.
    pub date: String,
    /// `None`: no data that day (or all of it excluded).
    pub availability: Option<f64>,
    pub down_ms: i64,
}

/// Per probe (by name), the last `days` UTC days up to today's, oldest first.
pub fn bars_from(
    connection: &Connection,
    now: Timestamp,
    days: i64,
    exclusions: &[Exclusion],
) -> Result<Vec<(String, Vec<DayCell>)>, UptimeError> {
    let today = math::day_of(now.as_millis());
    let first = today - days + 1;
    let rows = rollup::load(connection, None, first, today)?;
    Ok(rows
        .iter()
        .map(|rows| {
            (
                rows.probe.clone(),
                cells(rows, now, first..=today, exclusions),
            )
        })
        .collect())
}

/// One probe's cells for `days` (UTC day numbers) from its rows, which must cover them.
fn cells(
    rows: &rollup::ProbeRows,
    now: Timestamp,
    days: std::ops::RangeInclusive<i64>,
    exclusions: &[Exclusion],
) -> Vec<DayCell> {
    let excluded = math::merged_exclusions(&rows.probe, exclusions);
    days.map(|day| {
        let window = Span {
            from: day * DAY_MS,
            to: ((day + 1) * DAY_MS).min(now.as_millis()),
        };
        let figures = rollup::figures(rows, now.as_millis(), window, &excluded);
        DayCell {
            date: now_date(day),
            availability: figures.availability,
            down_ms: figures.down_ms,
        }
    })
    .collect()
}

/// The status page's past days, kept between requests. A day that has ended keeps its figures:
/// its rollups only ever gain what `now` already counted (the open span is closed with the same
/// class), so its cell changes only with the exclusions (a maintenance event, a label change on
/// reload) or with the day. A request with the same exclusions on the same UTC day reads
/// today's rollups alone; anything else rebuilds the whole bar.
#[derive(Debug, Default)]
pub struct BarCache {
    /// (today, days, exclusions) the cached cells were computed for.
    key: Option<(i64, i64, Vec<Exclusion>)>,
    /// Per probe, the cells of the days before today, oldest first.
    past: BTreeMap<String, Vec<DayCell>>,
    /// Requests answered from the cache (tests and the bench read it).
    pub hits: u64,
}

/// [`bars_from`], with the past days from `cache` when it holds them for these exclusions.
pub fn bars_cached(
    connection: &Connection,
    now: Timestamp,
    days: i64,
    exclusions: &[Exclusion],
    cache: &mut BarCache,
) -> Result<Vec<(String, Vec<DayCell>)>, UptimeError> {
    let today = math::day_of(now.as_millis());
    let key = (today, days, exclusions.to_vec());
    if cache.key.as_ref() != Some(&key) || days < 1 {
        let bars = bars_from(connection, now, days, exclusions)?;
        cache.past = bars
            .iter()
            .map(|(probe, cells)| {
                (
                    probe.clone(),
                    cells[..cells.len().saturating_sub(1)].to_vec(),
                )
            })
            .collect();
        cache.key = Some(key);
        return Ok(bars);
    }
    cache.hits += 1;
    let first = today - days + 1;
    let mut bars = Vec::new();
    for rows in rollup::load(connection, None, today, today)? {
        let mut bar = match cache.past.get(&rows.probe) {
            Some(past) => past.clone(),
            // A probe first seen since the cache was built: its whole bar, once.
            None => {
                let full = rollup::load(connection, Some(&rows.probe), first, today)?;
                let past = full
                    .first()
                    .map(|rows| cells(rows, now, first..=today - 1, exclusions))
                    .unwrap_or_default();
                cache.past.insert(rows.probe.clone(), past.clone());
                past
            }
        };
        bar.extend(cells(&rows, now, today..=today, exclusions));
        bars.push((rows.probe, bar));
    }
    Ok(bars)
}

/// The status page's bars, read from the journal with the maintenance exclusions applied; the
/// past days come from `cache` when nothing that shapes them changed.
pub async fn bars(
    journal: &Journal,
    now: Timestamp,
    days: i64,
    labels: &ProbeLabels,
    cache: std::sync::Arc<std::sync::Mutex<BarCache>>,
) -> Result<Vec<(String, Vec<DayCell>)>, UptimeError> {
    let from = (math::day_of(now.0) - days + 1) * DAY_MS;
    let excluded = exclusions(journal, Timestamp(from), now, labels).await?;
    journal
        .read(move |connection| {
            let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
            bars_cached(connection, now, days, &excluded, &mut cache)
        })
        .await
}

fn now_date(day: i64) -> String {
    Timestamp(day * DAY_MS).to_rfc3339()[..10].to_string()
}

#[cfg(test)]
mod tests;
