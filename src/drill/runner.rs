//! `DrillRunner`: runs one drill at a time, step by step, through the chaos engine; judges the
//! expectations over the probes' status channels and the bus; aborts and rolls back on an
//! unrelated Down, a stop or shutdown.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, oneshot};
use tokio::task::JoinHandle;

use super::expect::{evaluate, Verdict};
use super::{Drill, DrillError, Step, Timings};
use crate::chaos::ChaosEngine;
use crate::event::{Bus, DrillOutcome, Event, EventKind, ExpectationVerdict, Timestamp};
use crate::heal::HealBoard;
use crate::probe::{Change, Followed, ProbeBoard, ProbeFeeds, ProbeState};

/// Finished runs kept for `GET /v1/drills` (the journal keeps all of them as events).
const RECENT_RUNS: usize = 20;
/// How often pending expectations are judged again when no event arrives.
const TICK: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Running,
    Passed,
    Failed,
    Aborted,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Passed => "passed",
            Self::Failed => "failed",
            Self::Aborted => "aborted",
        }
    }
}

impl From<DrillOutcome> for RunState {
    fn from(outcome: DrillOutcome) -> Self {
        match outcome {
            DrillOutcome::Passed => Self::Passed,
            DrillOutcome::Failed => Self::Failed,
            DrillOutcome::Aborted => Self::Aborted,
        }
    }
}

/// One decided expectation, as the final table shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    pub step: usize,
    pub expectation: String,
    pub met: bool,
    pub measured_ms: Option<u64>,
    pub limit_ms: Option<u64>,
    pub detail: String,
}

/// One run of a drill, as `GET /v1/drills/{id}` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrillRun {
    pub id: String,
    pub name: String,
    pub state: RunState,
    pub started: Timestamp,
    pub ended: Option<Timestamp>,
    /// The step running now (from 1), or the last one that ran.
    pub step: usize,
    pub steps: usize,
    pub experiments: Vec<String>,
    pub results: Vec<CheckResult>,
    pub reason: Option<String>,
    /// The target picked from the drill's `targets`, if it lists any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Detect / act / recover times (the slowest step's), as far as the run saw them.
    #[serde(default)]
    pub timings: Timings,
}

struct Active {
    id: String,
    stop: Option<oneshot::Sender<String>>,
    task: Option<JoinHandle<()>>,
}

struct Inner {
    chaos: ChaosEngine,
    bus: Bus,
    probes: ProbeBoard,
    /// Probe transitions come from here, not the bus: a Down is never missed.
    feeds: ProbeFeeds,
    /// Successful heals come from here, not the bus, for the same reason.
    heals: HealBoard,
    drills: Mutex<Vec<Drill>>,
    runs: Mutex<Vec<DrillRun>>,
    active: Mutex<Option<Active>>,
    sequence: AtomicU32,
}

/// Cheap to clone; `configure` on reload (a running drill keeps its steps).
#[derive(Clone)]
pub struct DrillRunner {
    inner: Arc<Inner>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Why a step ended early.
enum Interrupt {
    /// Stop, shutdown or an unrelated failure: roll back and record why.
    Abort(String),
}

impl DrillRunner {
    pub fn new(
        chaos: ChaosEngine,
        bus: Bus,
        (probes, feeds, heals): (ProbeBoard, ProbeFeeds, HealBoard),
        drills: Vec<Drill>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                chaos,
                bus,
                probes,
                feeds,
                heals,
                drills: Mutex::new(drills),
                runs: Mutex::new(Vec::new()),
                active: Mutex::new(None),
                sequence: AtomicU32::new(0),
            }),
        }
    }

    /// Seed the recent runs with those of earlier daemons (from the journal, oldest first).
    pub fn remember(&self, past: Vec<DrillRun>) {
        let mut runs = lock(&self.inner.runs);
        let mut all = past;
        all.append(&mut runs);
        let excess = all.len().saturating_sub(RECENT_RUNS);
        all.drain(..excess);
        *runs = all;
    }

    pub fn configure(&self, drills: Vec<Drill>) {
        *lock(&self.inner.drills) = drills;
    }

    pub fn drills(&self) -> Vec<Drill> {
        lock(&self.inner.drills).clone()
    }

    /// Recent runs, newest first.
    pub fn runs(&self) -> Vec<DrillRun> {
        lock(&self.inner.runs).iter().rev().cloned().collect()
    }

    pub fn run_view(&self, id: &str) -> Result<DrillRun, DrillError> {
        lock(&self.inner.runs)
            .iter()
            .find(|r| r.id == id)
            .cloned()
            .ok_or_else(|| DrillError::NoSuchRun(id.to_string()))
    }

    /// The configured drill `name`.
    pub fn drill(&self, name: &str) -> Result<Drill, DrillError> {
        lock(&self.inner.drills)
            .iter()
            .find(|d| d.name == name)
            .cloned()
            .ok_or_else(|| DrillError::NoSuchDrill(name.to_string()))
    }

    /// The id of the run going on now, if one is.
    pub fn running(&self) -> Option<String> {
        lock(&self.inner.active).as_ref().map(|a| a.id.clone())
    }

    /// Start drill `name` in the background (a target picked at random when it lists
    /// `targets`); answers with its run at once.
    pub fn start(&self, name: &str) -> Result<DrillRun, DrillError> {
        let drill = self.drill(name)?;
        let target = pick(&drill.targets);
        self.start_picked(&drill, target)
    }

    /// A random one of `targets`, `None` when it is empty.
    pub fn pick_target(&self, name: &str) -> Result<Option<String>, DrillError> {
        Ok(pick(&self.drill(name)?.targets))
    }

    /// Start `drill` with `target` (already picked) written into its steps.
    pub fn start_picked(
        &self,
        drill: &Drill,
        target: Option<String>,
    ) -> Result<DrillRun, DrillError> {
        let drill = match &target {
            Some(target) => drill.for_target(target)?,
            None => drill.clone(),
        };
        let mut active = lock(&self.inner.active);
        if let Some(running) = active.as_ref() {
            return Err(DrillError::Busy(running.id.clone()));
        }
        let sequence = self.inner.sequence.fetch_add(1, Ordering::Relaxed) & 0xff;
        let id = format!("d{:x}{sequence:02x}", Timestamp::now().as_millis());
        let run = DrillRun {
            id: id.clone(),
            name: drill.name.clone(),
            state: RunState::Running,
            started: Timestamp::now(),
            ended: None,
            step: 0,
            steps: drill.steps.len(),
            experiments: Vec::new(),
            results: Vec::new(),
            reason: None,
            target: target.clone(),
            timings: Timings::default(),
        };
        {
            let mut runs = lock(&self.inner.runs);
            runs.push(run.clone());
            let excess = runs.len().saturating_sub(RECENT_RUNS);
            runs.drain(..excess);
        }
        // Subscribe before answering, so no event of the first step can be missed.
        let events = Followers {
            bus: self.inner.bus.subscribe(),
            probes: Followed::new(self.inner.feeds.follow_all()),
        };
        let (stop, stopped) = oneshot::channel();
        let runner = self.clone();
        let task =
            tokio::spawn(async move { runner.execute(id, drill, target, events, stopped).await });
        *active = Some(Active {
            id: run.id.clone(),
            stop: Some(stop),
            task: Some(task),
        });
        Ok(run)
    }

    /// Abort run `id` (rolling back its experiment) and answer with how it ended.
    pub async fn stop(&self, id: &str) -> Result<DrillRun, DrillError> {
        let (stop, task) = {
            let mut active = lock(&self.inner.active);
            match active.as_mut() {
                Some(running) if running.id == id => (running.stop.take(), running.task.take()),
                _ => {
                    let run = self.run_view(id)?;
                    return Err(DrillError::Finished(run.id));
                }
            }
        };
        if let Some(stop) = stop {
            let _ = stop.send("stopped by an operator".into());
        }
        if let Some(task) = task {
            let _ = task.await;
        }
        self.run_view(id)
    }

    /// SIGTERM: abort the running drill (its experiment is rolled back) before the engine stops.
    pub async fn shutdown(&self) {
        let taken = lock(&self.inner.active)
            .as_mut()
            .map(|a| (a.stop.take(), a.task.take()));
        if let Some((stop, task)) = taken {
            if let Some(stop) = stop {
                let _ = stop.send("daemon shutdown".into());
            }
            if let Some(task) = task {
                let _ = task.await;
            }
        }
    }

    fn update(&self, id: &str, change: impl FnOnce(&mut DrillRun)) {
        if let Some(run) = lock(&self.inner.runs).iter_mut().find(|r| r.id == id) {
            change(run);
        }
    }

    async fn execute(
        self,
        id: String,
        drill: Drill,
        target: Option<String>,
        mut events: Followers,
        mut stopped: oneshot::Receiver<String>,
    ) {
        // A probe Down before the drill began is not a failure the drill could cause or hide.
        let watched: HashSet<String> = drill.probes().into_iter().collect();
        let already_down: HashSet<String> = self
            .inner
            .probes
            .snapshot()
            .into_iter()
            .filter(|p| p.state == ProbeState::Down)
            .map(|p| p.name)
            .collect();
        let ignored = |probe: &str| watched.contains(probe) || already_down.contains(probe);
        self.inner.bus.publish(EventKind::DrillStarted {
            drill: id.clone(),
            name: drill.name.clone(),
            steps: drill.steps.len(),
            probes: drill.probes(),
            alerts: drill.alerts(),
            target,
        });
        let mut abort = None;
        let mut timings: Option<Timings> = None;
        for (index, step) in drill.steps.iter().enumerate() {
            let context = StepContext {
                id: &id,
                name: &drill.name,
                number: index + 1,
                step,
            };
            match self
                .run_step(&context, &mut events, &mut stopped, &ignored)
                .await
            {
                Ok(step) => timings = Some(timings.map_or(step, |t| t.slowest(step))),
                Err(Interrupt::Abort(reason)) => {
                    abort = Some(reason);
                    break;
                }
            }
        }
        let timings = timings.unwrap_or_default();
        let run = self.run_view(&id).ok();
        let results = run.map(|r| r.results).unwrap_or_default();
        let met = results.iter().filter(|r| r.met).count();
        let missed = results.len() - met;
        let outcome = match (&abort, missed) {
            (Some(_), _) => DrillOutcome::Aborted,
            (None, 0) => DrillOutcome::Passed,
            (None, _) => DrillOutcome::Failed,
        };
        let state = RunState::from(outcome);
        self.update(&id, |run| {
            run.state = state;
            run.ended = Some(Timestamp::now());
            run.reason = abort.clone();
            run.timings = timings;
        });
        match &abort {
            Some(reason) => tracing::warn!(drill = drill.name, id, "drill aborted: {reason}"),
            None => tracing::info!(drill = drill.name, id, met, missed, "drill finished"),
        }
        self.inner.bus.publish(EventKind::DrillFinished {
            drill: id.clone(),
            name: drill.name.clone(),
            outcome,
            met,
            missed,
            reason: abort,
            detect_ms: timings.detect_ms,
            act_ms: timings.act_ms,
            recover_ms: timings.recover_ms,
        });
        // A run that went to its end is judged against the objective: slower alerts.
        if let (Some(objective), false) = (drill.objective, outcome == DrillOutcome::Aborted) {
            let (met, detail) = objective.judge(&timings);
            self.inner.bus.publish(EventKind::DrillObjectiveChecked {
                drill: id.clone(),
                name: drill.name.clone(),
                verdict: match met {
                    true => ExpectationVerdict::Met,
                    false => ExpectationVerdict::Missed,
                },
                objective: objective.describe(),
                detail,
            });
        }
        let mut active = lock(&self.inner.active);
        if active.as_ref().is_some_and(|a| a.id == id) {
            *active = None;
        }
    }

    /// Apply the step's experiment, judge its expectations until all are decided, roll back.
    async fn run_step(
        &self,
        context: &StepContext<'_>,
        events: &mut Followers,
        stopped: &mut oneshot::Receiver<String>,
        ignored: &impl Fn(&str) -> bool,
    ) -> Result<Timings, Interrupt> {
        let StepContext {
            id, name, number, ..
        } = *context;
        self.update(id, |run| run.step = number);
        // Measured from the request: a kill is seen within milliseconds of being applied.
        let start = Timestamp::now();
        let view = match self
            .inner
            .chaos
            .start(context.step.experiment.clone())
            .await
        {
            Ok(view) => view,
            Err(err) => {
                return Err(Interrupt::Abort(format!(
                    "step {number}: the experiment did not start: {err}"
                )))
            }
        };
        let experiment = view.id.clone();
        self.update(id, |run| run.experiments.push(experiment.clone()));
        self.inner.bus.publish(EventKind::DrillStepStarted {
            drill: id.to_string(),
            name: name.to_string(),
            step: number,
            experiment: experiment.clone(),
            faults: view.faults.clone(),
        });
        let outcome = self
            .judge(context, start, &experiment, events, stopped, ignored)
            .await;
        // Deadline rollbacks answer NoSuchExperiment here: nothing is left to undo.
        if let Err(err) = self.inner.chaos.stop(&experiment).await {
            tracing::debug!(experiment, "drill step rollback: {err}");
        }
        outcome
    }

    async fn judge(
        &self,
        context: &StepContext<'_>,
        start: Timestamp,
        experiment: &str,
        events: &mut Followers,
        stopped: &mut oneshot::Receiver<String>,
        ignored: &impl Fn(&str) -> bool,
    ) -> Result<Timings, Interrupt> {
        let expectations = &context.step.expect;
        let mut decided: Vec<bool> = vec![false; expectations.len()];
        let mut seen: Vec<Event> = Vec::new();
        let mut experiment_over = false;
        // The last successful heal already judged, per probe.
        let mut healed_at: std::collections::HashMap<String, Timestamp> = Default::default();
        let mut tick = tokio::time::interval(TICK);
        loop {
            tokio::select! {
                reason = &mut *stopped => {
                    return Err(Interrupt::Abort(reason.unwrap_or_else(|_| "daemon shutdown".into())));
                }
                _ = events.probes.changed() => {}
                received = events.bus.recv() => match received {
                    // Transitions and heals are judged from the probes' status channels and
                    // the heal board (below).
                    Ok(Event { kind: EventKind::ProbeTransition { .. } | EventKind::HealFinished { .. }, .. }) => {}
                    Ok(event) => {
                        if matches!(&event.kind, EventKind::ChaosRolledBack { experiment: e, .. } if e == experiment) {
                            experiment_over = true;
                        }
                        seen.push(event);
                    }
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "drill fell behind the bus; some events were not judged");
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        return Err(Interrupt::Abort("daemon shutdown".into()));
                    }
                },
                _ = tick.tick() => events.probes.refresh(&self.inner.feeds),
            }
            for change in events.probes.take_changes() {
                if change.now.went_down_since(&change.before) && !ignored(&change.probe) {
                    let probe = change.probe;
                    return Err(Interrupt::Abort(format!(
                        "unrelated failure of probe {probe}"
                    )));
                }
                seen.extend(transitions(&change));
            }
            for heal in self.inner.heals.snapshot() {
                let Some(at) = heal.last_ok_at.filter(|at| *at >= start) else {
                    continue;
                };
                if healed_at.get(&heal.probe) != Some(&at) {
                    healed_at.insert(heal.probe.clone(), at);
                    seen.push(Event {
                        at,
                        kind: EventKind::HealFinished {
                            probe: heal.probe,
                            action: heal.action,
                            ok: true,
                            detail: heal.last_result.unwrap_or_default(),
                        },
                    });
                }
            }
            let now = Timestamp::now();
            // The step lasts until every timed expectation is decided; with none, as long as
            // its experiment.
            let timed_pending = expectations
                .iter()
                .zip(&decided)
                .any(|(e, done)| !done && e.limit().is_some());
            let has_timed = expectations.iter().any(|e| e.limit().is_some());
            let over = !timed_pending && (has_timed || experiment_over);
            for (index, expectation) in expectations.iter().enumerate() {
                if decided[index] {
                    continue;
                }
                let verdict = evaluate(expectation, start, &seen, now, over);
                if verdict.is_decided() {
                    decided[index] = true;
                    self.record(context, expectation, verdict);
                }
            }
            if decided.iter().all(|d| *d) {
                return Ok(super::trend::step_timings(
                    &context.step.watched_probes(),
                    start,
                    &seen,
                ));
            }
        }
    }

    fn record(
        &self,
        context: &StepContext<'_>,
        expectation: &super::Expectation,
        verdict: Verdict,
    ) {
        let (met, measured_ms, detail) = match verdict {
            Verdict::Met {
                measured_ms,
                detail,
            } => (true, measured_ms, detail),
            Verdict::Missed {
                measured_ms,
                detail,
            } => (false, measured_ms, detail),
            Verdict::Pending => return,
        };
        let result = CheckResult {
            step: context.number,
            expectation: expectation.describe(),
            met,
            measured_ms,
            limit_ms: expectation.limit().map(|l| l.as_millis() as u64),
            detail,
        };
        self.update(context.id, |run| run.results.push(result.clone()));
        self.inner.bus.publish(EventKind::DrillExpectationChecked {
            drill: context.id.to_string(),
            name: context.name.to_string(),
            step: context.number,
            expectation: result.expectation,
            verdict: if met {
                ExpectationVerdict::Met
            } else {
                ExpectationVerdict::Missed
            },
            measured_ms: result.measured_ms,
            limit_ms: result.limit_ms,
            detail: result.detail,
        });
    }
}

/// One of `targets` at random (`None` when there are none).
fn pick(targets: &[String]) -> Option<String> {
    match targets.len() {
        0 => None,
        n => Some(targets[fastrand::usize(..n)].clone()),
    }
}

/// What a running drill follows: the probes' status channels (lossless) and the bus (for
/// experiments, tenant alerts and heals).
struct Followers {
    bus: broadcast::Receiver<Event>,
    probes: Followed,
}

/// The transitions a change stands for, oldest first, as events the verdicts read. A follower
/// that woke late still gets the Down and the recovery it slept through, at their own times.
fn transitions(change: &Change) -> Vec<Event> {
    let Change { probe, before, now } = change;
    let event = |at: Timestamp, from: ProbeState, to: ProbeState| Event {
        at,
        kind: EventKind::ProbeTransition {
            probe: probe.clone(),
            from,
            to,
            reason: now.reason,
            status_code: None,
            latency_ms: None,
            recoveries_total: now.recoveries_total,
        },
    };
    let (down, up) = (
        now.down_at.unwrap_or(now.since),
        now.up_at.unwrap_or(now.since),
    );
    let (went_down, recovered) = (now.went_down_since(before), now.recovered_since(before));
    let mut events = Vec::new();
    match (went_down, recovered) {
        (true, true) if down <= up => {
            events.push(event(down, before.state, ProbeState::Down));
            events.push(event(up, ProbeState::Down, ProbeState::Up));
        }
        (true, true) => {
            // Down, Up and Down again: the first Down's time is lost; it was before the Up.
            events.push(event(up, before.state, ProbeState::Down));
            events.push(event(up, ProbeState::Down, ProbeState::Up));
            events.push(event(down, ProbeState::Up, ProbeState::Down));
        }
        (true, false) => events.push(event(down, before.state, ProbeState::Down)),
        (false, true) => events.push(event(up, before.state, ProbeState::Up)),
        (false, false) => events.push(event(now.since, before.state, now.state)),
    }
    events
}

#[derive(Clone, Copy)]
struct StepContext<'a> {
    id: &'a str,
    name: &'a str,
    number: usize,
    step: &'a Step,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::{ProbeStatus, Transition};

    fn step(status: &mut ProbeStatus, from: ProbeState, to: ProbeState, at: i64, rec: u64) {
        status.apply(Transition { from, to }, Timestamp(at), None, rec);
    }

    fn tos(events: &[Event]) -> Vec<(i64, ProbeState)> {
        events
            .iter()
            .map(|e| match &e.kind {
                EventKind::ProbeTransition { to, .. } => (e.at.as_millis(), *to),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    /// A drill that looks only after a Down and its recovery still judges both, at their times.
    #[test]
    fn a_late_look_still_sees_the_down_and_the_recovery() {
        let mut status = ProbeStatus::unknown(0);
        step(&mut status, ProbeState::Unknown, ProbeState::Up, 1, 0);
        let before = status.clone();
        step(&mut status, ProbeState::Up, ProbeState::Down, 10, 0);
        step(&mut status, ProbeState::Down, ProbeState::Recovering, 20, 0);
        step(&mut status, ProbeState::Recovering, ProbeState::Up, 30, 1);
        let change = Change {
            probe: "api".into(),
            before: before.clone(),
            now: status.clone(),
        };
        assert_eq!(
            tos(&transitions(&change)),
            [(10, ProbeState::Down), (30, ProbeState::Up)]
        );
        let expectation = super::super::Expectation::ProbeUp {
            probe: "api".into(),
            within: Duration::from_millis(25),
        };
        let verdict = evaluate(
            &expectation,
            Timestamp(5),
            &transitions(&change),
            Timestamp(40),
            false,
        );
        assert!(
            matches!(
                verdict,
                Verdict::Met {
                    measured_ms: Some(25),
                    ..
                }
            ),
            "{verdict:?}"
        );
        // Down again after the recovery: the last event says Down.
        step(&mut status, ProbeState::Up, ProbeState::Down, 35, 1);
        let change = Change {
            probe: "api".into(),
            before,
            now: status,
        };
        let seen = tos(&transitions(&change));
        assert_eq!(seen.last(), Some(&(35, ProbeState::Down)), "{seen:?}");
    }
}
