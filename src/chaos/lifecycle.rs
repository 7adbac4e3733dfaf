//! How experiments end: rollback (deadline, stop, halt, shutdown), the halt-condition watcher,
//! and recovery at start of what a crash left behind, plus the sweep for orphaned qdiscs.

use std::sync::Arc;

use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::action::Action;
use super::drift::{self, Drift, Observed, Undo};
use super::engine::{blocking, lock, ChaosEngine, StopReason};
use super::experiment::{Experiment, ExperimentState};
use super::host::ChaosHost;
use super::ChaosError;
use crate::event::{EventKind, ProbeState, RollbackTrigger, Timestamp};

impl ChaosEngine {
    pub(super) async fn roll_back(
        &self,
        mut experiment: Experiment,
        reason: StopReason,
    ) -> Experiment {
        experiment.state = ExperimentState::RollingBack;
        if let Err(err) = self.persist(&experiment).await {
            tracing::error!(id = experiment.id, error = %err, "cannot journal the rollback start");
        }
        let host = Arc::clone(&self.inner.host);
        let actions = experiment.actions.clone();
        let baseline = experiment.baseline.clone();
        let (ok, lines, drifts) =
            blocking(move || revert_owned(host.as_ref(), &actions, &baseline)).await;
        experiment.log.extend(lines.iter().cloned());
        experiment.state = match (ok, drifts.is_empty()) {
            (true, true) => ExperimentState::RolledBack,
            (true, false) => ExperimentState::Drifted,
            (false, _) => ExperimentState::RollbackFailed,
        };
        experiment.ended = Some(Timestamp::now());
        experiment.outcome = Some(match &reason {
            StopReason::Halt(why) => format!("halted: {why}"),
            other => other.trigger().to_string(),
        });
        if !drifts.is_empty() {
            let what: Vec<String> = drifts.iter().map(|(_, d)| d.detail()).collect();
            if let Some(outcome) = &mut experiment.outcome {
                outcome.push_str(&format!("; drifted: {}", what.join("; ")));
            }
        }
        for (action, drift) in &drifts {
            tracing::warn!(id = experiment.id, action, cause = %drift.cause(), "chaos experiment drifted: {}", drift.detail());
            self.inner.bus.publish(EventKind::ChaosDrifted {
                experiment: experiment.id.clone(),
                profile: experiment.profile.clone(),
                action: action.clone(),
                cause: drift.cause(),
                detail: drift.detail(),
            });
        }
        if let Err(err) = self.persist(&experiment).await {
            tracing::error!(id = experiment.id, error = %err, "cannot journal the rollback end");
        }
        lock(&self.inner.running).remove(&experiment.id);
        if let StopReason::Halt(why) = &reason {
            self.inner.bus.publish(EventKind::ChaosAborted {
                experiment: experiment.id.clone(),
                profile: experiment.profile.clone(),
                reason: why.clone(),
            });
        }
        let detail = lines.join("; ");
        match ok {
            true => tracing::info!(
                id = experiment.id,
                trigger = reason.trigger().as_str(),
                "chaos rolled back: {detail}"
            ),
            false => tracing::error!(
                id = experiment.id,
                trigger = reason.trigger().as_str(),
                "chaos rollback failed: {detail}"
            ),
        }
        self.inner.bus.publish(EventKind::ChaosRolledBack {
            experiment: experiment.id.clone(),
            profile: experiment.profile.clone(),
            trigger: reason.trigger(),
            ok,
            detail,
        });
        experiment
    }

    /// Hold a started experiment until its deadline, a stop, or someone else's change to its
    /// kernel state (read again every `every`; zero: never).
    pub(super) async fn hold(
        &self,
        experiment: &Experiment,
        duration: std::time::Duration,
        mut stopped: tokio::sync::oneshot::Receiver<StopReason>,
        every: std::time::Duration,
    ) -> StopReason {
        let deadline = tokio::time::sleep(duration);
        tokio::pin!(deadline);
        let watched = !every.is_zero()
            && experiment
                .baseline
                .iter()
                .any(|seen| *seen != Observed::Unwatched);
        let mut tick = tokio::time::interval(every.max(std::time::Duration::from_millis(100)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await; // the first tick is now: the baseline was just read
        loop {
            tokio::select! {
                _ = &mut deadline => return StopReason::Deadline,
                reason = &mut stopped => return reason.unwrap_or(StopReason::Shutdown),
                _ = tick.tick(), if watched => {
                    let host = Arc::clone(&self.inner.host);
                    let actions = experiment.actions.clone();
                    let baseline = experiment.baseline.clone();
                    let found = blocking(move || drifts(host.as_ref(), &actions, &baseline)).await;
                    if !found.is_empty() {
                        tracing::warn!(id = experiment.id, drifts = found.len(), "someone else changed the experiment's kernel state; rolling back what is still ours");
                        return StopReason::Drift;
                    }
                }
            }
        }
    }

    /// Abort experiments whose `halt_on` names a probe that goes Down.
    pub fn watch_halts(&self, cancel: CancellationToken) -> JoinHandle<()> {
        let engine = self.clone();
        let mut events = self.inner.bus.subscribe();
        tokio::spawn(async move {
            loop {
                let event = tokio::select! {
                    _ = cancel.cancelled() => return,
                    event = events.recv() => event,
                };
                let kind = match event {
                    Ok(event) => event.kind,
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                let EventKind::ProbeTransition { probe, to, .. } = kind else {
                    continue;
                };
                if to != ProbeState::Down {
                    continue;
                }
                let condition = format!("probe:{probe}");
                let mut running = lock(&engine.inner.running);
                for (id, slot) in running.iter_mut() {
                    if slot.halt_on.contains(&condition) {
                        if let Some(stop) = slot.stop.take() {
                            tracing::warn!(id, probe, "halt condition met; rolling back");
                            let _ = stop.send(StopReason::Halt(format!("probe {probe} went down")));
                        }
                    }
                }
            }
        })
    }

    /// At start, before serving: roll back what a crash left, then sweep orphans; what was done
    /// and what went wrong, experiment by experiment.
    pub async fn recover(&self) -> Recovery {
        let mut recovery = Recovery::default();
        let store = Arc::clone(&self.inner.store);
        let rows = match blocking(move || lock(&store).unfinished()).await {
            Ok(rows) => rows,
            Err(err) => {
                tracing::error!(error = %err, "cannot read unfinished chaos experiments");
                recovery.problems.push(ChaosError::Journal(format!(
                    "cannot read unfinished experiments: {err}"
                )));
                Vec::new()
            }
        };
        for row in rows {
            match Experiment::from_row(&row) {
                Ok(experiment) => {
                    tracing::warn!(
                        id = row.id,
                        state = row.state,
                        "rolling back an experiment left by a previous run"
                    );
                    let done = self.roll_back(experiment, StopReason::Recovery).await;
                    recovery.experiments.push(Recovered {
                        ok: matches!(
                            done.state,
                            ExperimentState::RolledBack | ExperimentState::Drifted
                        ),
                        id: done.id,
                        log: done.log,
                    });
                }
                Err(err) => {
                    tracing::error!("{err}");
                    recovery.problems.push(ChaosError::Journal(err.to_string()));
                }
            }
        }
        let host = Arc::clone(&self.inner.host);
        let orphans = blocking(move || host.orphans(&[])).await;
        for orphan in orphans {
            let host = Arc::clone(&self.inner.host);
            let described = orphan.describe();
            let result = blocking(move || host.revert(&orphan)).await;
            tracing::warn!(
                orphan = described,
                ?result,
                "swept a qdisc carrying our handle that no experiment accounts for"
            );
            let detail = match &result {
                Ok(line) => line.clone(),
                Err(err) => err.to_string(),
            };
            self.inner.bus.publish(EventKind::ChaosRolledBack {
                experiment: "orphan".into(),
                profile: None,
                trigger: RollbackTrigger::Sweep,
                ok: result.is_ok(),
                detail: format!("{described}: {detail}"),
            });
            recovery.swept.push(Swept {
                qdisc: described,
                result,
            });
        }
        recovery
    }
}

/// What start-time recovery did: each experiment a crash left, each orphaned qdisc swept, and
/// what could not even be read.
#[derive(Debug, Default)]
pub struct Recovery {
    pub experiments: Vec<Recovered>,
    pub swept: Vec<Swept>,
    /// An unreadable journal or an undecodable row: something may still be in place.
    pub problems: Vec<ChaosError>,
}

#[derive(Debug)]
pub struct Recovered {
    pub id: String,
    /// Everything was undone (or its target is gone); false means `rollback_failed`.
    pub ok: bool,
    /// What the kernel reported at each step, the apply steps first.
    pub log: Vec<String>,
}

#[derive(Debug)]
pub struct Swept {
    /// `tbf 5e1d: on veth0 (ifindex 3) in netns ...`
    pub qdisc: String,
    pub result: Result<String, ChaosError>,
}

impl Recovery {
    /// Nothing was left to undo and nothing went wrong.
    pub fn is_empty(&self) -> bool {
        self.experiments.is_empty() && self.swept.is_empty() && self.problems.is_empty()
    }

    /// Everything left behind is undone.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
            && self.experiments.iter().all(|e| e.ok)
            && self.swept.iter().all(|s| s.result.is_ok())
    }

    /// Ids of the experiments rolled back (whether or not completely).
    pub fn ids(&self) -> Vec<&str> {
        self.experiments.iter().map(|e| e.id.as_str()).collect()
    }
}

/// Apply in order; on a failure undo everything attempted (reverts are idempotent and only
/// touch what is provably ours), and return the error with the log.
pub(super) fn apply_all(
    host: &dyn ChaosHost,
    actions: &[Action],
) -> Result<Vec<String>, (ChaosError, Vec<String>)> {
    let mut log = Vec::new();
    for (index, action) in actions.iter().enumerate() {
        match host.apply(action) {
            Ok(readback) => log.push(format!("applied {}: {readback}", action.describe())),
            Err(err) => {
                log.push(format!("failed {}: {err}", action.describe()));
                let (_, undone) = revert_all(host, &actions[..=index]);
                log.extend(undone);
                return Err((err, log));
            }
        }
    }
    Ok(log)
}

/// What each action's change reads now; `Unwatched` where it cannot be read.
pub(super) fn observe_all(host: &dyn ChaosHost, actions: &[Action]) -> Vec<Observed> {
    actions
        .iter()
        .map(|action| match host.observe(action) {
            Ok(seen) => seen,
            Err(err) => {
                tracing::warn!(action = action.describe(), error = %err, "cannot read back for drift checks");
                Observed::Unwatched
            }
        })
        .collect()
}

/// Someone else's changes to `actions` since `baseline` was read, with each action's
/// description; a target that is gone or cannot be read now is not a drift.
pub(super) fn drifts(
    host: &dyn ChaosHost,
    actions: &[Action],
    baseline: &[Observed],
) -> Vec<(usize, Drift)> {
    actions
        .iter()
        .zip(baseline)
        .enumerate()
        .filter(|(_, (_, seen))| **seen != Observed::Unwatched)
        .filter_map(|(index, (action, seen))| match host.observe(action) {
            Ok(now) => drift::compare(seen, &now).map(|d| (index, d)),
            Err(ChaosError::TargetGone(_)) => None,
            Err(err) => {
                tracing::debug!(action = action.describe(), error = %err, "drift check: cannot read");
                None
            }
        })
        .collect()
}

/// `revert_all`, except that an action someone else changed since `baseline` is undone only
/// as far as it is still ours (see `drift::undo`); the drifts found, with each action's
/// description.
fn revert_owned(
    host: &dyn ChaosHost,
    actions: &[Action],
    baseline: &[Observed],
) -> (bool, Vec<String>, Vec<(String, Drift)>) {
    let found = drifts(host, actions, baseline);
    if found.is_empty() {
        let (ok, log) = revert_all(host, actions);
        return (ok, log, Vec::new());
    }
    let mut ok = true;
    let mut log = Vec::new();
    let mut drifted = Vec::new();
    for (index, action) in actions.iter().enumerate().rev() {
        if !action.is_reversible() {
            continue;
        }
        let Some((_, drift)) = found.iter().find(|(i, _)| *i == index) else {
            let (done, lines) = revert_all(host, std::slice::from_ref(action));
            ok &= done;
            log.extend(lines);
            continue;
        };
        drifted.push((action.describe(), drift.clone()));
        match drift::undo(action, drift) {
            Undo::Leave { note } => log.push(format!(
                "nothing of ours to revert for {}: {note}",
                action.describe()
            )),
            Undo::Revert {
                action: narrowed,
                note,
            } => {
                let (done, lines) = revert_all(host, std::slice::from_ref(narrowed.as_ref()));
                ok &= done;
                log.extend(lines);
                if !note.is_empty() {
                    log.push(format!("drifted {}: {note}", action.describe()));
                }
            }
        }
    }
    (ok, log, drifted)
}

/// Undo in reverse order, every step even after a failure; a target that is gone counts as undone.
fn revert_all(host: &dyn ChaosHost, actions: &[Action]) -> (bool, Vec<String>) {
    let mut ok = true;
    let mut log = Vec::new();
    for action in actions.iter().rev().filter(|a| a.is_reversible()) {
        match host.revert(action) {
            Ok(line) => log.push(format!("reverted {}: {line}", action.describe())),
            Err(ChaosError::TargetGone(why)) => log.push(format!(
                "nothing to revert for {}: target gone: {why}",
                action.describe()
            )),
            Err(err) => {
                ok = false;
                log.push(format!("FAILED to revert {}: {err}", action.describe()));
            }
        }
    }
    (ok, log)
}
