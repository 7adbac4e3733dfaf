//! What the page shows from the journal (recent incidents, running experiments), kept between
//! requests and brought up to date with only the rows journaled since the last one: a GET reads a
//! handful of rows, not thousands, however busy the journal is.

use std::sync::atomic::{AtomicU64, Ordering};

use super::drills::{DrillTracker, DrillView, DRILL_KINDS};
use super::experiments::{ExperimentTracker, EXPERIMENT_HORIZON, EXPERIMENT_KINDS};
use super::{ActiveExperiment, INCIDENT_HORIZON, MAX_INCIDENTS, TRANSITIONS_READ};
use crate::analyze::{Outage, OutageTracker};
use crate::event::{JournaledEvent, Timestamp};
use crate::journal::{EventQuery, Journal, JournalError};

/// `drill_finished` rows read at most: the newest ones, enough for the last runs of many drills.
const DRILL_RUNS_READ: usize = 2000;

/// One kind of journal fact followed by cursor: the highest id read so far.
#[derive(Debug, Default)]
struct Cursor(Option<i64>);

impl Cursor {
    /// The rows of `kinds` since `since` that are newer than the cursor (all of them, up to
    /// `limit`, the first time). `Fresh` when the state must be rebuilt from these alone.
    async fn read(
        &mut self,
        journal: &Journal,
        kinds: &[&str],
        since: Timestamp,
        limit: usize,
        rows: &AtomicU64,
    ) -> Result<(Vec<JournaledEvent>, Start), JournalError> {
        let query = EventQuery {
            since: Some(since),
            until: None,
            after_id: self.0,
            kinds: kinds.iter().map(|k| k.to_string()).collect(),
            limit,
        };
        let mut events = journal.query(query).await?;
        rows.fetch_add(events.len() as u64, Ordering::Relaxed);
        // More new rows than one read returns: the newest `limit` are exactly what a first read
        // would see, so start over from them rather than leave a gap.
        let start = match self.0.is_none() || events.len() >= limit {
            true => Start::Fresh,
            false => Start::Continue,
        };
        if let Some(last) = events.iter().map(|e| e.id).max() {
            self.0 = Some(last);
        } else if self.0.is_none() {
            self.0 = Some(0);
        }
        events.sort_by_key(|e| (e.event.at, e.id));
        Ok((events, start))
    }
}

#[derive(Debug, PartialEq)]
enum Start {
    Fresh,
    Continue,
}

/// The journal facts of the page; one per listener, behind a lock so concurrent GETs take turns
/// (the second then finds nothing new to read).
#[derive(Debug, Default)]
pub(super) struct History {
    transitions: Cursor,
    experiments: Cursor,
    outages: OutageTracker,
    running: ExperimentTracker,
    drill_runs: Cursor,
    drills: DrillTracker,
}

impl History {
    /// Read what the journal got since the last refresh; `rows` counts the rows read.
    pub(super) async fn refresh(
        &mut self,
        journal: &Journal,
        now: Timestamp,
        rows: &AtomicU64,
    ) -> Result<(), JournalError> {
        let since = now.saturating_sub(INCIDENT_HORIZON);
        let (events, start) = self
            .transitions
            .read(
                journal,
                &["probe_transition"],
                since,
                TRANSITIONS_READ,
                rows,
            )
            .await?;
        if start == Start::Fresh {
            self.outages = OutageTracker::default();
        }
        events.iter().for_each(|e| self.outages.push(e));
        self.outages.retain(since, MAX_INCIDENTS);

        let since = now.saturating_sub(EXPERIMENT_HORIZON);
        let (events, start) = self
            .experiments
            .read(
                journal,
                &EXPERIMENT_KINDS,
                since,
                EventQuery::MAX_LIMIT,
                rows,
            )
            .await?;
        if start == Start::Fresh {
            self.running = ExperimentTracker::default();
        }
        events.iter().for_each(|e| self.running.push(e));
        self.running.retain(since);

        // Every drill's last runs, however old: a weekly drill's trend spans months.
        let (events, start) = self
            .drill_runs
            .read(journal, &DRILL_KINDS, Timestamp(0), DRILL_RUNS_READ, rows)
            .await?;
        if start == Start::Fresh {
            self.drills = DrillTracker::default();
        }
        events.iter().for_each(|e| self.drills.push(e));
        Ok(())
    }

    pub(super) fn drills(&self) -> Vec<DrillView> {
        self.drills.views()
    }

    /// The newest incidents first, at most [`MAX_INCIDENTS`], within the horizon.
    pub(super) fn incidents(&self, now: Timestamp) -> Vec<Outage> {
        let since = now.saturating_sub(INCIDENT_HORIZON);
        let mut found: Vec<Outage> = self
            .outages
            .outages()
            .iter()
            .filter(|o| o.down_at >= since)
            .cloned()
            .collect();
        found.reverse();
        found.truncate(MAX_INCIDENTS);
        found
    }

    pub(super) fn experiments(&self, now: Timestamp) -> Vec<ActiveExperiment> {
        self.running.running(now.saturating_sub(EXPERIMENT_HORIZON))
    }
}
