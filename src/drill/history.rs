//! Drill runs remembered across restarts: rebuilt from the journal's `drill_*` events, so
//! `sentinelctl drill list/show` still shows them, and a run a crash left unfinished is closed.
//! (The chaos engine's own recovery rolls back the experiment such a run had in place.)

use std::collections::BTreeMap;

use super::runner::{CheckResult, DrillRun, RunState};
use super::Timings;
use crate::event::{DrillOutcome, EventKind, ExpectationVerdict, JournaledEvent, Timestamp};

/// The journal kinds this reads.
pub const DRILL_KINDS: [&str; 4] = [
    "drill_started",
    "drill_step_started",
    "drill_expectation_checked",
    "drill_finished",
];

/// Why a run a crash interrupted ended, as its `drill_finished` says.
pub const INTERRUPTED: &str = "sentineld stopped during the drill without finishing it (crash or kill); its experiment was rolled back by chaos recovery at the next start";

/// The runs in `events` (oldest first), oldest first; a run without `drill_finished` is
/// still `running` here.
pub fn runs_from_journal(events: &[JournaledEvent]) -> Vec<DrillRun> {
    let mut order: Vec<String> = Vec::new();
    let mut runs: BTreeMap<String, DrillRun> = BTreeMap::new();
    for journaled in events {
        let at = journaled.event.at;
        match &journaled.event.kind {
            EventKind::DrillStarted {
                drill,
                name,
                steps,
                target,
                ..
            } => {
                order.push(drill.clone());
                let mut run = started(drill, name, *steps, at);
                run.target = target.clone();
                runs.insert(drill.clone(), run);
            }
            EventKind::DrillStepStarted {
                drill,
                step,
                experiment,
                ..
            } => {
                if let Some(run) = runs.get_mut(drill) {
                    run.step = *step;
                    run.experiments.push(experiment.clone());
                }
            }
            EventKind::DrillExpectationChecked {
                drill,
                step,
                expectation,
                verdict,
                measured_ms,
                limit_ms,
                detail,
                ..
            } => {
                if let Some(run) = runs.get_mut(drill) {
                    run.results.push(CheckResult {
                        step: *step,
                        expectation: expectation.clone(),
                        met: *verdict == ExpectationVerdict::Met,
                        measured_ms: *measured_ms,
                        limit_ms: *limit_ms,
                        detail: detail.clone(),
                    });
                }
            }
            EventKind::DrillFinished {
                drill,
                outcome,
                reason,
                detect_ms,
                act_ms,
                recover_ms,
                ..
            } => {
                if let Some(run) = runs.get_mut(drill) {
                    run.state = RunState::from(*outcome);
                    run.ended = Some(at);
                    run.reason = reason.clone();
                    run.timings = Timings {
                        detect_ms: *detect_ms,
                        act_ms: *act_ms,
                        recover_ms: *recover_ms,
                    };
                }
            }
            _ => {}
        }
    }
    order
        .into_iter()
        .filter_map(|id| runs.remove(&id))
        .collect()
}

fn started(id: &str, name: &str, steps: usize, at: Timestamp) -> DrillRun {
    DrillRun {
        id: id.to_string(),
        name: name.to_string(),
        state: RunState::Running,
        started: at,
        ended: None,
        step: 0,
        steps,
        experiments: Vec::new(),
        results: Vec::new(),
        reason: None,
        target: None,
        timings: Timings::default(),
    }
}

/// Close the runs still `running` (no drill runs before the daemon is up, so a crash
/// interrupted them) as aborted at `now`; the `drill_finished` events to journal for them.
pub fn close_interrupted(runs: &mut [DrillRun], now: Timestamp) -> Vec<EventKind> {
    runs.iter_mut()
        .filter(|run| run.state == RunState::Running)
        .map(|run| {
            run.state = RunState::Aborted;
            run.ended = Some(now);
            run.reason = Some(INTERRUPTED.into());
            let met = run.results.iter().filter(|r| r.met).count();
            EventKind::DrillFinished {
                drill: run.id.clone(),
                name: run.name.clone(),
                outcome: DrillOutcome::Aborted,
                met,
                missed: run.results.len() - met,
                reason: run.reason.clone(),
                detect_ms: None,
                act_ms: None,
                recover_ms: None,
            }
        })
        .collect()
}

#[cfg(test)]
#[path = "history_tests.rs"]
mod tests;
