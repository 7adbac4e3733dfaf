//! Experiment reports: for one chaos experiment, a timeline from the journal, time-to-detect,
//! -act and -recover per probe, the verdict on its steady-state hypothesis, and tenants before
//! versus during the fault. Pure and synchronous: the journal rows come in, a report comes out.
//!
//! # Layout
//! - [`verdict`]: judging a hypothesis over probe state changes (shared with drills).
//! - `timeline`, `probes`, `tenants`: the three views of the events, each a pure function.

mod probes;
mod tenants;
mod timeline;
pub mod verdict;

#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

use crate::chaos::experiment::{Experiment, ExperimentState};
use crate::chaos::Hypothesis;
use crate::event::{EventKind, JournaledEvent, RollbackTrigger, Timestamp};
pub use probes::{FinalState, ProbeTimes};
pub use tenants::{TenantComparison, TenantRow, TenantSide};
pub use timeline::TimelineEntry;
pub use verdict::{judge, ProbeChange, ProbeHistories, Span, Verdict, Violation};

/// How long after the rollback the report keeps reading: recoveries come after it.
pub const TAIL_MS: i64 = 60_000;

/// Everything `GET /v1/chaos/ID/report` answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentReport {
    pub experiment: String,
    pub profile: Option<String>,
    pub state: ExperimentState,
    pub target: String,
    pub faults: Vec<String>,
    /// When the experiment was journaled, just before its faults were applied: time zero of
    /// every offset, because a kill or signal takes effect during the apply.
    pub created: Timestamp,
    /// `chaos_started`: the faults were in place and read back.
    pub fault_applied: Option<Timestamp>,
    pub rolled_back: Option<Timestamp>,
    pub rollback_trigger: Option<RollbackTrigger>,
    pub outcome: Option<String>,
    pub hypothesis: Option<Hypothesis>,
    pub verdict: Verdict,
    pub timeline: Vec<TimelineEntry>,
    pub probes: Vec<ProbeTimes>,
    /// `None` when no tenant snapshot was recorded (detector disabled).
    pub tenants: Option<TenantComparison>,
    /// The journal span read: from the experiment's creation to [`TAIL_MS`] after its rollback.
    pub window_start: Timestamp,
    pub window_end: Timestamp,
    /// Caveats a reader should know (events the journal missed, a missing start event).
    pub notes: Vec<String>,
}

/// The journal span a report over `experiment` reads, as of `now`.
pub fn window(experiment: &Experiment, now: Timestamp) -> (Timestamp, Timestamp) {
    let tail = experiment
        .spec
        .hypothesis
        .as_ref()
        .and_then(|h| h.recover_within)
        .map_or(TAIL_MS, |d| TAIL_MS.max(d.get().as_millis() as i64));
    let end = match experiment.ended {
        Some(ended) => Timestamp(ended.0 + tail).min(now),
        None => now,
    };
    (experiment.created, end)
}

/// Build the report from the experiment row and the journal events of its window (any order;
/// events outside the window are ignored).
pub fn build(
    experiment: &Experiment,
    events: &[JournaledEvent],
    now: Timestamp,
) -> ExperimentReport {
    let (start, end) = window(experiment, now);
    let mut events: Vec<&JournaledEvent> = events
        .iter()
        .filter(|e| e.event.at >= start && e.event.at <= end)
        .collect();
    events.sort_by_key(|e| (e.event.at, e.id));
    let id = experiment.id.as_str();
    let fault_applied = events.iter().find_map(|e| match &e.event.kind {
        EventKind::ChaosStarted { experiment, .. } if experiment == id => Some(e.event.at),
        _ => None,
    });
    let rollback = events.iter().find_map(|e| match &e.event.kind {
        EventKind::ChaosRolledBack {
            experiment,
            trigger,
            ..
        } if experiment == id => Some((e.event.at, *trigger)),
        _ => None,
    });
    let zero = experiment.created;
    let mut notes = Vec::new();
    let dropped: u64 = events
        .iter()
        .map(|e| match &e.event.kind {
            EventKind::EventsDropped { missed, .. } => *missed,
            _ => 0,
        })
        .sum();
    if dropped > 0 {
        notes.push(format!(
            "the journal missed {dropped} events in this window"
        ));
    }
    let histories = probes::histories(&events);
    let verdict = verdict_of(
        experiment,
        &histories,
        fault_applied,
        rollback.as_ref(),
        end,
        dropped,
        &mut notes,
    );
    let mut probe_names: Vec<String> = histories.keys().cloned().collect();
    if let Some(hypothesis) = &experiment.spec.hypothesis {
        probe_names.extend(hypothesis.steady_state.iter().cloned());
    }
    ExperimentReport {
        experiment: experiment.id.clone(),
        profile: experiment.profile.clone(),
        state: experiment.state,
        target: experiment.spec.target.describe(),
        faults: experiment
            .spec
            .faults
            .iter()
            .map(|f| f.describe())
            .collect(),
        created: experiment.created,
        fault_applied,
        rolled_back: rollback.as_ref().map(|(at, _)| *at),
        rollback_trigger: rollback.map(|(_, trigger)| trigger),
        outcome: experiment.outcome.clone(),
        hypothesis: experiment.spec.hypothesis.clone(),
        verdict,
        timeline: timeline::entries(&events, id, zero),
        probes: probes::times(
            &events,
            &histories,
            &probe_names,
            zero,
            fault_applied.is_some(),
        ),
        tenants: tenants::compare(&events, id),
        window_start: start,
        window_end: end,
        notes,
    }
}

fn verdict_of(
    experiment: &Experiment,
    histories: &ProbeHistories,
    fault_applied: Option<Timestamp>,
    rollback: Option<&(Timestamp, RollbackTrigger)>,
    end: Timestamp,
    dropped: u64,
    notes: &mut Vec<String>,
) -> Verdict {
    let Some(hypothesis) = &experiment.spec.hypothesis else {
        return Verdict::NotStated;
    };
    if experiment.state == ExperimentState::Failed {
        return Verdict::Inconclusive {
            reason: format!(
                "the experiment did not start: {}",
                experiment
                    .outcome
                    .as_deref()
                    .unwrap_or("no reason recorded")
            ),
        };
    }
    if fault_applied.is_none() {
        notes.push("no chaos_started event for this experiment in the journal (pruned?)".into());
        return Verdict::Inconclusive {
            reason: "the journal holds no chaos_started event for it".into(),
        };
    }
    let finished = !matches!(
        experiment.state,
        ExperimentState::Pending | ExperimentState::Active | ExperimentState::RollingBack
    );
    let rolled_back = match (rollback, finished) {
        (Some((at, _)), _) => Some(*at),
        (None, true) => {
            notes.push(
                "the experiment ended but its chaos_rolled_back event is not in the journal".into(),
            );
            experiment.ended
        }
        (None, false) => None,
    };
    let verdict = judge(
        hypothesis,
        histories,
        Span {
            fault_at: experiment.created,
            rolled_back,
            evaluated_at: end,
        },
    );
    match verdict {
        Verdict::Held { .. } if dropped > 0 => Verdict::Inconclusive {
            reason: format!(
                "nothing broke the hypothesis, but the journal missed {dropped} events"
            ),
        },
        other => other,
    }
}
