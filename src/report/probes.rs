//! Per probe: when it went down after the start (time-to-detect), when a heal started
//! (time-to-act) and when it was Up again (time-to-recover), from the journal's own events.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::verdict::{ProbeChange, ProbeHistories};
use crate::event::{EventKind, JournaledEvent, ProbeState, Timestamp};

/// The times of one probe in the experiment's window. The three times are of its first outage
/// after the fault; `downs` counts them all.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeTimes {
    pub probe: String,
    pub downs: usize,
    /// Experiment start (faults being applied) → probe Down.
    pub time_to_detect_ms: Option<i64>,
    /// Probe Down → first heal started.
    pub time_to_act_ms: Option<i64>,
    /// Probe Down → probe Up.
    pub time_to_recover_ms: Option<i64>,
    pub heals: usize,
    /// Its state at the end of the window ("unchanged" when it never moved).
    pub final_state: FinalState,
}

/// Where a probe stood at the end of the window. In JSON it is the word of its last state
/// ("up", "down", ...), or "unchanged" when it did not move in the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinalState {
    Unchanged,
    Moved(ProbeState),
}

impl FinalState {
    const UNCHANGED: &'static str = "unchanged";

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unchanged => Self::UNCHANGED,
            Self::Moved(state) => state.as_str(),
        }
    }
}

impl fmt::Display for FinalState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for FinalState {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for FinalState {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = Cow::<str>::deserialize(deserializer)?;
        if text == Self::UNCHANGED {
            return Ok(Self::Unchanged);
        }
        match ProbeState::ALL.iter().find(|state| state.as_str() == text) {
            Some(&state) => Ok(Self::Moved(state)),
            None => Err(serde::de::Error::unknown_variant(
                &text,
                &[
                    "unchanged",
                    "unknown",
                    "up",
                    "failing",
                    "down",
                    "recovering",
                ],
            )),
        }
    }
}

/// Probe state changes by probe, oldest first.
pub(super) fn histories(events: &[&JournaledEvent]) -> ProbeHistories {
    let mut histories = ProbeHistories::new();
    for event in events {
        if let EventKind::ProbeTransition {
            probe, from, to, ..
        } = &event.event.kind
        {
            histories
                .entry(probe.clone())
                .or_default()
                .push(ProbeChange {
                    at: event.event.at,
                    from: *from,
                    to: *to,
                });
        }
    }
    histories
}

/// Times for `names` (deduplicated, sorted), measured from `zero`. Without a fault time
/// (`has_fault` false) nothing is measured from it.
pub(super) fn times(
    events: &[&JournaledEvent],
    histories: &ProbeHistories,
    names: &[String],
    zero: Timestamp,
    has_fault: bool,
) -> Vec<ProbeTimes> {
    let mut names: Vec<&String> = names.iter().collect();
    names.sort();
    names.dedup();
    let none = Vec::new();
    names
        .into_iter()
        .map(|probe| {
            let changes: Vec<&ProbeChange> = histories
                .get(probe)
                .unwrap_or(&none)
                .iter()
                .filter(|c| c.at >= zero)
                .collect();
            let heal_starts: Vec<Timestamp> = events
                .iter()
                .filter_map(|e| match &e.event.kind {
                    EventKind::HealStarted { probe: p, .. } if p == probe && e.event.at >= zero => {
                        Some(e.event.at)
                    }
                    _ => None,
                })
                .collect();
            let first_down = changes.iter().position(|c| c.to == ProbeState::Down);
            let down_at = first_down.map(|i| changes[i].at);
            let up_at = first_down.and_then(|i| {
                changes[i + 1..]
                    .iter()
                    .find(|c| c.to == ProbeState::Up)
                    .map(|c| c.at)
            });
            let acted_at = down_at.and_then(|down| {
                heal_starts
                    .iter()
                    .find(|at| **at >= down && up_at.is_none_or(|up| **at <= up))
                    .copied()
            });
            ProbeTimes {
                probe: probe.clone(),
                downs: changes.iter().filter(|c| c.to == ProbeState::Down).count(),
                time_to_detect_ms: down_at.filter(|_| has_fault).map(|d| d.0 - zero.0),
                time_to_act_ms: down_at.zip(acted_at).map(|(d, a)| a.0 - d.0),
                time_to_recover_ms: down_at.zip(up_at).map(|(d, u)| u.0 - d.0),
                heals: heal_starts.len(),
                final_state: changes
                    .last()
                    .map_or(FinalState::Unchanged, |c| FinalState::Moved(c.to)),
            }
        })
        .collect()
}
