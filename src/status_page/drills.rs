//! The drills section of the page: per drill, its last finished run and the recovery times of
//! its recent runs, fed from `drill_finished` rows (which carry each run's times).

use std::collections::{BTreeMap, VecDeque};

use crate::drill::trend::{direction_of, Direction};
use crate::event::{DrillOutcome, EventKind, JournaledEvent, Timestamp};

/// Runs remembered per drill (the trend the page draws).
pub const RUNS_SHOWN: usize = 10;
/// The journal kind this reads.
pub const DRILL_KINDS: [&str; 1] = ["drill_finished"];

/// One finished run as the page shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunView {
    pub id: String,
    pub ended: Timestamp,
    pub outcome: DrillOutcome,
    pub recover_ms: Option<u64>,
}

/// One drill on the page: its recent runs, oldest first, and where recovery is heading.
#[derive(Debug, Clone, PartialEq)]
pub struct DrillView {
    pub name: String,
    pub runs: Vec<RunView>,
    pub direction: Direction,
}

/// The last [`RUNS_SHOWN`] finished runs per drill, fed one `drill_finished` at a time.
#[derive(Debug, Clone, Default)]
pub struct DrillTracker {
    runs: BTreeMap<String, VecDeque<RunView>>,
}

impl DrillTracker {
    pub fn push(&mut self, journaled: &JournaledEvent) {
        if let EventKind::DrillFinished {
            drill,
            name,
            outcome,
            recover_ms,
            ..
        } = &journaled.event.kind
        {
            let runs = self.runs.entry(name.clone()).or_default();
            runs.push_back(RunView {
                id: drill.clone(),
                ended: journaled.event.at,
                outcome: *outcome,
                recover_ms: *recover_ms,
            });
            while runs.len() > RUNS_SHOWN {
                runs.pop_front();
            }
        }
    }

    /// Every drill that finished a run, by name.
    pub fn views(&self) -> Vec<DrillView> {
        self.runs
            .iter()
            .map(|(name, runs)| {
                let recover: Vec<u64> = runs.iter().filter_map(|r| r.recover_ms).collect();
                DrillView {
                    name: name.clone(),
                    runs: runs.iter().cloned().collect(),
                    direction: direction_of(&recover),
                }
            })
            .collect()
    }
}
