//! One healer per healable probe: follows the probe's own status channel (lossless, unlike the
//! bus) and runs the incident loop — budget, backoff, act, verify — publishing each step as an event.

use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::hold::{self, Verdict};
use super::{Backoff, HealAction, HealBoard, HealError, HealSnapshot, RestartBudget};
use crate::event::{Bus, Event, EventKind, FailureReason, HealCause, Timestamp};
use crate::probe::{ProbeState, ProbeStatus, StatusReceiver};

/// Operator requests for one healer (`sentinelctl heal now|reset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealCommand {
    /// Heal now, even if the probe is not Down (still within the budget).
    Now,
    /// A probe this one depends on recovered: restart this one too (skipped while silenced).
    Dependency,
    /// Forget past attempts: the budget is full again and a gave-up probe is healed again.
    Reset,
}

pub struct HealerSpec {
    pub probe: String,
    pub action: HealAction,
    pub budget: RestartBudget,
    pub budget_max: u32,
    pub backoff: Backoff,
    /// The probe must be Up again within this long after an action, or the attempt failed.
    pub verify_within: Duration,
    /// An Up counts as the recovery only once it lasted this long; a Down sooner is a relapse.
    pub stable_for: Duration,
    /// Evidence to archive before acting on a Down probe (the heal's `archive = [...]`).
    pub evidence: Option<Evidence>,
    /// A postgres probe's graded remedy: a server that answers but is stuck gets its steps
    /// first, and a restart only when dead or allowed (`crate::remedy`).
    pub remedy: Option<crate::remedy::Remedy>,
    /// Where each remedy step's snapshot is spooled as a bundle of its own.
    pub remedy_archiver: Option<crate::archive::Archiver>,
}

/// What to archive before a heal, and who archives it.
#[derive(Clone)]
pub struct Evidence {
    pub archiver: crate::archive::Archiver,
    pub sources: Vec<String>,
}

impl HealerSpec {
    /// Build from a validated probe config; `history` holds attempt times from the journal, so
    /// a restart of sentineld does not refill the budget.
    pub fn from_config(
        probe: &crate::probe::ProbeConfig,
        docker: &crate::docker::DockerEngine,
        history: Vec<Timestamp>,
    ) -> Option<Self> {
        use crate::probe::config::HealActionKind;
        let heal = probe.heal.as_ref()?.get_ref();
        let action = match heal.action {
            HealActionKind::DockerRestart => HealAction::DockerRestart {
                engine: docker.clone(),
                container: probe.heal_container()?,
                stop_timeout: heal.stop_timeout.get(),
            },
            HealActionKind::Exec => {
                let (program, args) = heal.command.as_ref()?.split_first()?;
                HealAction::Exec {
                    program: program.clone(),
                    args: args.to_vec(),
                    timeout: heal.timeout.get(),
                }
            }
            HealActionKind::SystemdRestart => HealAction::SystemdRestart {
                systemd: crate::systemd::Systemd::new(),
                unit: probe.heal_unit()?,
                timeout: heal.timeout.get(),
            },
        };
        Some(Self {
            probe: probe.name().to_string(),
            action,
            budget: RestartBudget::new(heal.max_attempts, heal.window.get()).with_history(history),
            budget_max: heal.max_attempts,
            backoff: Backoff::new(heal.backoff.get(), heal.max_backoff.get()),
            verify_within: heal.verify_within.get(),
            stable_for: heal.stable_for.get(),
            evidence: None,
            remedy: crate::remedy::Remedy::from_config(probe, docker, heal.verify_within.get()),
            remedy_archiver: None,
        })
    }
}

/// What the healer saw of the probe since the last Up.
#[derive(Debug, Clone, Default)]
struct Incident {
    fault_at: Option<Timestamp>,
    down_at: Option<Timestamp>,
    acted_at: Option<Timestamp>,
    /// The probe's failure reason when it went Down, for the evidence manifest.
    reason: Option<FailureReason>,
    /// Times the probe came back and fell again before `stable_for`.
    relapses: u32,
    /// The probe itself reported a crash loop (a docker probe's `crash_loop` rule).
    said_crash_loop: bool,
}

impl Incident {
    /// What this incident is: a crash loop, or why the probe failed.
    fn cause(&self) -> Option<FailureReason> {
        hold::cause(self.reason, self.relapses, self.said_crash_loop)
    }
}

/// One request in a healer's mailbox; `done` is answered once the action it asked for finished
/// or was refused (the cascade waits for it before restarting the next dependant).
struct Request {
    command: HealCommand,
    done: Option<oneshot::Sender<()>>,
}

/// How the supervisor and the cascade reach a healer: requests and the probe's silence.
/// Cheap to clone; both channels are lossless (a queue and a latest value).
#[derive(Clone)]
pub struct Mailbox {
    requests: mpsc::Sender<Request>,
    silence: watch::Sender<Option<Timestamp>>,
}

impl Mailbox {
    /// Pass an operator request (`heal now`, `heal reset`).
    pub async fn send(&self, command: HealCommand) -> Result<(), HealError> {
        self.requests
            .send(Request {
                command,
                done: None,
            })
            .await
            .map_err(|_| HealError::Stopped)
    }

    /// Restart for a recovered dependency; resolves once the action finished or was refused.
    pub async fn restart_for_dependency(&self) -> Result<oneshot::Receiver<()>, HealError> {
        let (done, finished) = oneshot::channel();
        self.requests
            .send(Request {
                command: HealCommand::Dependency,
                done: Some(done),
            })
            .await
            .map_err(|_| HealError::Stopped)?;
        Ok(finished)
    }

    /// No healing before `until` (a time in the past lifts the silence).
    pub fn silence(&self, until: Option<Timestamp>) {
        self.silence.send_replace(until);
    }
}

/// What a healer follows besides its mailbox.
pub struct HealerInputs {
    /// The probe's status channel: the only source of Down and Up for the healer.
    pub status: StatusReceiver,
    /// The silence in force when the healer starts.
    pub silenced_until: Option<Timestamp>,
}

enum Wake {
    /// The probe's status changed: what it was when last seen, and what it is now.
    Status {
        before: ProbeStatus,
        now: ProbeStatus,
    },
    Fault(Timestamp),
    Command(Request),
    /// The silence was set or lifted: waits re-evaluate.
    SilenceChanged,
    Deadline,
    Stop,
}

struct Healer {
    spec: HealerSpec,
    status: StatusReceiver,
    /// The status last handled: what the next change is compared with.
    seen: ProbeStatus,
    /// Container deaths from the bus date the fault a little earlier than the probe's first
    /// failure; only the incident's `time_to_detect` depends on them, so a lag costs nothing else.
    container_events: Option<broadcast::Receiver<Event>>,
    requests: mpsc::Receiver<Request>,
    silence: watch::Receiver<Option<Timestamp>>,
    bus: Bus,
    board: HealBoard,
    cancel: CancellationToken,
    incident: Incident,
    /// No healing before this time (an operator's `sentinelctl silence`).
    silenced_until: Option<Timestamp>,
    /// Whether the probe's last transition was to Down (an incident is open).
    probe_down: bool,
    /// The probe went Down again after the recovery that closed the last incident.
    reopen: bool,
    /// Requesters waiting for the next action's end (a dependency restart folded into a heal).
    waiting: Vec<oneshot::Sender<()>>,
}

/// Start a healer following `inputs.status`: every Down published there after this call is
/// acted on, however many events pass on the bus meanwhile.
pub fn spawn(
    spec: HealerSpec,
    inputs: HealerInputs,
    bus: Bus,
    board: HealBoard,
    cancel: CancellationToken,
) -> (Mailbox, JoinHandle<()>) {
    let (requests_tx, requests) = mpsc::channel(8);
    let (silence_tx, silence) = watch::channel(inputs.silenced_until);
    let mut status = inputs.status;
    let seen = status.borrow_and_update().clone();
    let mut budget = spec.budget.clone();
    board.put(
        &spec.probe,
        HealSnapshot {
            probe: spec.probe.clone(),
            action: spec.action.describe(),
            budget_remaining: budget.remaining(Timestamp::now()),
            budget_max: spec.budget_max,
            gave_up: false,
            retry_at: None,
            heals_total: 0,
            last_result: None,
            last_ok_at: None,
            holding_until: None,
            relapses: 0,
            crash_loop: false,
            recovered_total: 0,
        },
    );
    let container_events = match &spec.action {
        HealAction::DockerRestart { .. } => Some(bus.subscribe()),
        HealAction::Exec { .. } | HealAction::SystemdRestart { .. } => None,
    };
    let healer = Healer {
        spec,
        status,
        seen,
        container_events,
        requests,
        silence,
        bus,
        board,
        cancel,
        incident: Incident::default(),
        silenced_until: inputs.silenced_until,
        probe_down: false,
        reopen: false,
        waiting: Vec::new(),
    };
    let mailbox = Mailbox {
        requests: requests_tx,
        silence: silence_tx,
    };
    (mailbox, tokio::spawn(healer.run()))
}

impl Healer {
    async fn run(mut self) {
        loop {
            match self.wake(None).await {
                Wake::Stop => break,
                Wake::Deadline | Wake::SilenceChanged => {}
                Wake::Fault(at) => {
                    self.incident.fault_at.get_or_insert(at);
                }
                Wake::Status { before, now } if now.went_down_since(&before) => {
                    self.open_incident(&now);
                    let still_down = matches!(now.state, ProbeState::Down | ProbeState::Recovering);
                    if now.recovered_since(&before) && !still_down {
                        // Down and back Up before this healer looked: nothing to heal if it holds.
                        let up_at = now.up_at.unwrap_or(now.since);
                        match self.hold(up_at).await {
                            Held::Yes => {
                                self.close(up_at, false);
                                if self.seen.state == ProbeState::Failing {
                                    self.incident.fault_at = self.seen.fault_at;
                                }
                                // Down again after it held: that Down is a new incident.
                                if !std::mem::take(&mut self.reopen) {
                                    continue;
                                }
                                let now = self.seen.clone();
                                self.open_incident(&now);
                            }
                            Held::Stop => break,
                            Held::Relapsed => {}
                        }
                    }
                    if !self.heal_until_up().await {
                        break;
                    }
                }
                Wake::Status { now, .. } => match now.state {
                    ProbeState::Failing => {
                        let at = now.fault_at.unwrap_or(now.since);
                        self.incident.fault_at.get_or_insert(at);
                    }
                    ProbeState::Up => {
                        self.probe_down = false;
                        self.incident = Incident::default();
                    }
                    ProbeState::Unknown | ProbeState::Down | ProbeState::Recovering => {}
                },
                Wake::Command(request) => {
                    let Request { command, done } = request;
                    self.waiting.extend(done);
                    match command {
                        HealCommand::Reset => self.reset(),
                        // The operator asked for the heal action itself: no remedy steps first.
                        HealCommand::Now if self.probe_down => {
                            if !self.heal_until_up_from(Remedy::Skip).await {
                                break;
                            }
                        }
                        HealCommand::Now => self.act_once(HealCause::Operator).await,
                        HealCommand::Dependency => self.act_once(HealCause::Dependency).await,
                    }
                    self.answer_waiting();
                }
            }
        }
        self.board.remove(&self.spec.probe);
    }

    /// The probe went Down: remember when and why.
    fn open_incident(&mut self, now: &ProbeStatus) {
        self.probe_down = true;
        self.incident.down_at = now.down_at.or(Some(now.since));
        self.incident.reason = now.reason;
        self.incident.said_crash_loop |= now.reason == Some(FailureReason::CrashLoop);
        if let Some(at) = now.fault_at.or(now.down_at) {
            self.incident.fault_at.get_or_insert(at);
        }
    }

    /// Heal, and again for as long as the probe goes Down again right after a recovery.
    async fn heal_until_up(&mut self) -> bool {
        self.heal_until_up_from(Remedy::First).await
    }

    async fn heal_until_up_from(&mut self, mut remedy: Remedy) -> bool {
        loop {
            let mut ended = match std::mem::replace(&mut remedy, Remedy::First) {
                Remedy::First => self.remedy_first().await,
                Remedy::Skip => Ended::Restart,
            };
            // One place closes the incident, whichever phase saw the recovery hold.
            let go_on = loop {
                match ended {
                    Ended::Restart => ended = self.heal().await,
                    Ended::Up { at, healed } => break self.close(at, healed),
                    Ended::Stop => break false,
                }
            };
            if !go_on {
                return false;
            }
            if !std::mem::take(&mut self.reopen) {
                return true;
            }
            let now = self.seen.clone();
            self.open_incident(&now);
        }
    }

    /// Tell whoever waits for an action that it is over (or was refused).
    fn answer_waiting(&mut self) {
        for done in self.waiting.drain(..) {
            let _ = done.send(());
        }
    }

    fn reset(&mut self) {
        self.spec.budget.reset();
        self.spec.backoff.succeeded();
        let remaining = self.spec.budget.remaining(Timestamp::now());
        self.board.update(&self.spec.probe, |s| {
            s.gave_up = false;
            s.retry_at = None;
            s.budget_remaining = remaining;
        });
        tracing::info!(probe = %self.spec.probe, "heal budget reset");
    }

    /// The incident loop: act, verify, back off, until a recovery held or the healer stops.
    async fn heal(&mut self) -> Ended {
        let probe = self.spec.probe.clone();
        let mut attempt = 0u32;
        // `heal now` overrides a silence for the attempt it asked for.
        let mut forced = false;
        loop {
            let now = Timestamp::now();
            if let Some(until) = self.silenced_until.filter(|until| *until > now && !forced) {
                tracing::info!(probe, "silenced until {}; not healing", until.to_rfc3339());
                let wait = Duration::from_millis((until.as_millis() - now.as_millis()) as u64);
                match self.wait_held(wait, Until::SilenceChanges).await {
                    Outcome::Up(at) => return Ended::Up { at, healed: false },
                    Outcome::Stop => return Ended::Stop,
                    Outcome::Reset => self.reset(),
                    Outcome::Now => forced = true,
                    Outcome::Elapsed | Outcome::Relapsed => {}
                }
                continue;
            }
            let forced_now = std::mem::take(&mut forced);
            if let Err(retry_at) = self.spec.budget.check(now) {
                tracing::error!(
                    probe,
                    "heal budget exhausted; giving up until {}",
                    retry_at.to_rfc3339()
                );
                let reason = self.incident.cause();
                let crash_loop = reason == Some(FailureReason::CrashLoop);
                self.board.update(&probe, |s| {
                    s.gave_up = true;
                    s.retry_at = Some(retry_at);
                    s.budget_remaining = 0;
                    s.crash_loop = crash_loop;
                });
                self.bus.publish(EventKind::HealGaveUp {
                    probe: probe.clone(),
                    attempts: self.spec.budget_max,
                    retry_at,
                    reason,
                });
                self.answer_waiting();
                let wait =
                    Duration::from_millis((retry_at.as_millis() - now.as_millis()).max(0) as u64);
                match self.wait_held(wait, Until::Deadline).await {
                    Outcome::Up(at) => return Ended::Up { at, healed: false },
                    Outcome::Stop => return Ended::Stop,
                    Outcome::Reset => {
                        self.reset();
                        continue;
                    }
                    Outcome::Elapsed | Outcome::Now | Outcome::Relapsed => {
                        self.board.update(&probe, |s| s.gave_up = false);
                        continue;
                    }
                }
            }
            let delay = self.spec.backoff.delay();
            if !delay.is_zero() {
                match self.wait_held(delay, Until::Deadline).await {
                    Outcome::Up(at) => return Ended::Up { at, healed: false },
                    Outcome::Stop => return Ended::Stop,
                    Outcome::Reset => self.reset(),
                    Outcome::Elapsed | Outcome::Now | Outcome::Relapsed => {}
                }
            }

            attempt += 1;
            let acted_at = Timestamp::now();
            self.incident.acted_at.get_or_insert(acted_at);
            let cause = if forced_now {
                HealCause::Operator
            } else {
                HealCause::Down
            };
            self.perform(attempt, cause).await;

            match self.verify(self.spec.verify_within).await {
                Outcome::Up(at) => {
                    self.spec.backoff.succeeded();
                    return Ended::Up { at, healed: true };
                }
                Outcome::Stop => return Ended::Stop,
                Outcome::Reset => self.reset(),
                // Back, but not for long: the next attempt, under the budget and the backoff.
                Outcome::Relapsed => self.spec.backoff.failed(),
                Outcome::Elapsed | Outcome::Now => {
                    tracing::warn!(
                        probe,
                        "not recovered within {} after healing",
                        humantime::format_duration(self.spec.verify_within)
                    );
                    self.spec.backoff.failed();
                }
            }
        }
    }

    /// A postgres probe that went Down while its server still answers: run the remedy steps in
    /// order (each within the budget, each verified), and say whether a restart follows. A dead
    /// server, or a probe without a remedy, goes straight to the restart.
    async fn remedy_first(&mut self) -> Ended {
        use crate::remedy::Condition;
        let Some(remedy) = self.spec.remedy.clone() else {
            return Ended::Restart;
        };
        if Condition::of(self.incident.reason) == Condition::Dead {
            return Ended::Restart;
        }
        let probe = self.spec.probe.clone();
        // A silence holds the steps as it holds a restart.
        loop {
            let now = Timestamp::now();
            let Some(until) = self.silenced_until.filter(|until| *until > now) else {
                break;
            };
            tracing::info!(probe, "silenced until {}; no remedy", until.to_rfc3339());
            let wait = Duration::from_millis((until.as_millis() - now.as_millis()) as u64);
            match self.wait_held(wait, Until::SilenceChanges).await {
                Outcome::Up(at) => return Ended::Up { at, healed: false },
                Outcome::Stop => return Ended::Stop,
                Outcome::Reset => self.reset(),
                Outcome::Now => return Ended::Restart,
                Outcome::Elapsed | Outcome::Relapsed => {}
            }
        }
        for (index, step) in remedy.steps.iter().enumerate() {
            if self.spec.budget.check(Timestamp::now()).is_err() {
                // the restart path reports the exhausted budget and waits for it
                tracing::warn!(probe, "heal budget exhausted; no more remedy steps");
                break;
            }
            match self.remedy_step(&remedy, index as u32 + 1, step).await {
                StepDone::Nothing => continue,
                StepDone::Failed => break,
                StepDone::Acted => {}
            }
            match self.verify(step.verify_within).await {
                Outcome::Up(at) => return Ended::Up { at, healed: true },
                Outcome::Stop => return Ended::Stop,
                Outcome::Reset => self.reset(),
                Outcome::Now => return Ended::Restart,
                Outcome::Relapsed => tracing::warn!(
                    probe,
                    "back after remedy step {}, but it did not hold",
                    index + 1
                ),
                Outcome::Elapsed => tracing::warn!(
                    probe,
                    "not recovered within {} after remedy step {}",
                    humantime::format_duration(step.verify_within),
                    index + 1
                ),
            }
        }
        let restart = remedy.restart_when_overloaded;
        let event = EventKind::RemedyExhausted {
            probe: probe.clone(),
            steps: remedy.steps.len() as u32,
            restart,
        };
        tracing::warn!(probe, "{}", event.summary());
        self.bus.publish(event);
        if restart {
            return Ended::Restart;
        }
        // Still answering: no restart, until it recovers, an operator asks, or it dies.
        loop {
            match self.wake(None).await {
                Wake::Stop => return Ended::Stop,
                Wake::Status { before, now } if came_up(&before, &now).is_some() => {
                    let at = came_up(&before, &now).unwrap_or(now.since);
                    match self.hold(at).await {
                        Held::Yes => return Ended::Up { at, healed: false },
                        Held::Stop => return Ended::Stop,
                        Held::Relapsed => {}
                    }
                }
                Wake::Status { now, .. }
                    if now.state == ProbeState::Down
                        && Condition::of(now.reason) == Condition::Dead =>
                {
                    tracing::warn!(probe, "the server stopped answering; restarting");
                    self.incident.reason = now.reason;
                    return Ended::Restart;
                }
                Wake::Command(Request { command, done }) => {
                    self.waiting.extend(done);
                    match command {
                        HealCommand::Reset => self.reset(),
                        HealCommand::Now | HealCommand::Dependency => return Ended::Restart,
                    }
                }
                Wake::Status { .. } | Wake::Fault(_) | Wake::SilenceChanged | Wake::Deadline => {}
            }
        }
    }

    /// One remedy step: snapshot, evidence, signal, journal. The budget counts it only when it
    /// acts on some session.
    async fn remedy_step(
        &mut self,
        remedy: &crate::remedy::Remedy,
        number: u32,
        step: &crate::remedy::Step,
    ) -> StepDone {
        use crate::remedy;
        let probe = self.spec.probe.clone();
        let event = |sessions, bundle, error: Option<String>| EventKind::RemedyStep {
            probe: probe.clone(),
            action: step.action,
            step: number,
            sessions,
            bundle,
            error,
        };
        let surveyed = async {
            let connection = remedy::Connection::open(&remedy.target).await?;
            let (snapshot, targets) = remedy::survey(&connection, step).await?;
            Ok::<_, remedy::RemedyError>((connection, snapshot, targets))
        };
        let (connection, snapshot, targets) = match surveyed.await {
            Ok(surveyed) => surveyed,
            Err(err) => {
                let event = event(Vec::new(), None, Some(err.to_string()));
                tracing::error!(probe, "{}", event.summary());
                self.bus.publish(event);
                return StepDone::Failed;
            }
        };
        if targets.is_empty() {
            let event = event(Vec::new(), None, None);
            tracing::info!(probe, "{}", event.summary());
            self.bus.publish(event);
            return StepDone::Nothing;
        }
        // Evidence first: the state the step acts on, before it acts.
        let bundle = match &self.spec.remedy_archiver {
            Some(archiver) => Some(
                archiver
                    .capture(crate::archive::CaptureRequest {
                        probe: probe.clone(),
                        container: None,
                        sources: Vec::new(),
                        reason: self.incident.reason,
                        down_at: self.incident.down_at,
                        attachments: remedy::evidence_files(number, step, &snapshot, &targets),
                        attachments_dir: format!("remedy-step-{number}"),
                    })
                    .await,
            ),
            None => None,
        };
        let now = Timestamp::now();
        self.spec.budget.record(now);
        self.incident.acted_at.get_or_insert(now);
        let (signalled, error) = match connection.signal(step.action, &targets).await {
            Ok(signalled) => (signalled, None),
            Err(err) => (Vec::new(), Some(err.to_string())),
        };
        drop(connection);
        let failed = error.is_some();
        let event = event(remedy::sessions(&targets, &signalled), bundle, error);
        let summary = event.summary();
        tracing::warn!(probe, "{summary}");
        self.bus.publish(event);
        let remaining = self.spec.budget.remaining(Timestamp::now());
        self.board.update(&probe, |s| {
            s.heals_total += 1;
            s.budget_remaining = remaining;
            s.last_result = Some(summary);
        });
        if failed {
            StepDone::Failed
        } else {
            StepDone::Acted
        }
    }

    /// Run the action once, within the budget already checked, and publish what happened.
    async fn perform(&mut self, attempt: u32, cause: HealCause) {
        let probe = self.spec.probe.clone();
        self.spec.budget.record(Timestamp::now());
        let action = self.spec.action.describe();
        // One bundle per incident: its first attempt; later attempts restart what it captured.
        let first = attempt == 1;
        if let (Some(evidence), HealCause::Down | HealCause::Operator, true) =
            (&self.spec.evidence, cause, first)
        {
            let container = match &self.spec.action {
                HealAction::DockerRestart { container, .. } => Some(container.clone()),
                HealAction::Exec { .. } | HealAction::SystemdRestart { .. } => None,
            };
            evidence
                .archiver
                .capture(crate::archive::CaptureRequest {
                    probe: probe.clone(),
                    container,
                    sources: evidence.sources.clone(),
                    reason: self.incident.reason,
                    down_at: self.incident.down_at,
                    attachments: Vec::new(),
                    attachments_dir: String::new(),
                })
                .await;
        }
        tracing::warn!(probe, attempt, cause = cause.as_str(), "healing: {action}");
        self.bus.publish(EventKind::HealStarted {
            probe: probe.clone(),
            action: action.clone(),
            attempt,
            cause,
        });
        let result = self.spec.action.run().await;
        let (ok, detail) = match &result {
            Ok(note) => (true, note.clone()),
            Err(err) => (false, err.to_string()),
        };
        if !ok {
            tracing::error!(probe, "heal action failed: {detail}");
        }
        let finished = Event::now(EventKind::HealFinished {
            probe: probe.clone(),
            action,
            ok,
            detail: detail.clone(),
        });
        let finished_at = finished.at;
        self.bus.publish_event(finished);
        let remaining = self.spec.budget.remaining(Timestamp::now());
        self.board.update(&probe, |s| {
            s.heals_total += 1;
            s.budget_remaining = remaining;
            s.last_result = Some(detail);
            if ok {
                s.last_ok_at = Some(finished_at);
            }
        });
        self.answer_waiting();
    }

    /// One action on a probe that is not Down (operator or dependency restart): no incident,
    /// no verification loop, but the budget still applies.
    async fn act_once(&mut self, cause: HealCause) {
        let now = Timestamp::now();
        let silenced = self.silenced_until.is_some_and(|until| until > now);
        if silenced && cause == HealCause::Dependency {
            tracing::info!(probe = %self.spec.probe, "silenced; not restarting after its dependency recovered");
            return;
        }
        if let Err(retry_at) = self.spec.budget.check(now) {
            self.bus.publish(EventKind::HealGaveUp {
                probe: self.spec.probe.clone(),
                attempts: self.spec.budget_max,
                retry_at,
                reason: None,
            });
            return;
        }
        self.perform(1, cause).await;
    }

    /// The probe is Up: publish the incident's times and forget it.
    fn close(&mut self, up_at: Timestamp, healed: bool) -> bool {
        let incident = std::mem::take(&mut self.incident);
        self.probe_down = false;
        let between = |from: Option<Timestamp>, to: Option<Timestamp>| match (from, to) {
            (Some(from), Some(to)) => Some((to.as_millis() - from.as_millis()).max(0) as u64),
            _ => None,
        };
        let event = EventKind::IncidentClosed {
            probe: self.spec.probe.clone(),
            healed,
            time_to_detect_ms: between(incident.fault_at, incident.down_at),
            time_to_act_ms: between(incident.down_at, incident.acted_at),
            time_to_recover_ms: between(incident.fault_at.or(incident.down_at), Some(up_at)),
        };
        tracing::info!(probe = %self.spec.probe, "{}", event.summary());
        self.bus.publish(event);
        self.board.update(&self.spec.probe, |s| {
            s.gave_up = false;
            s.retry_at = None;
            s.holding_until = None;
            s.relapses = 0;
            s.crash_loop = false;
            s.recovered_total += 1;
        });
        true
    }

    /// Wait for the probe to be Up after an action, and for that Up to hold: a relapse ends
    /// the verification (the attempt failed).
    async fn verify(&mut self, limit: Duration) -> Outcome {
        match self.wait_for_up_or_command(limit, Until::Deadline).await {
            Outcome::Up(at) => self.held_outcome(at).await,
            other => other,
        }
    }

    /// Wait up to `limit` as `wait_for_up_or_command` does, where an Up counts only once it
    /// held; a relapse is journaled and the wait goes on to its deadline.
    async fn wait_held(&mut self, limit: Duration, until: Until) -> Outcome {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.wait_for_up_or_command(left, until).await {
                Outcome::Up(at) => match self.held_outcome(at).await {
                    Outcome::Relapsed => continue,
                    other => return other,
                },
                other => return other,
            }
        }
    }

    async fn held_outcome(&mut self, up_at: Timestamp) -> Outcome {
        match self.hold(up_at).await {
            Held::Yes => Outcome::Up(up_at),
            Held::Relapsed => Outcome::Relapsed,
            Held::Stop => Outcome::Stop,
        }
    }

    /// The probe came Up at `up_at`: wait until that Up run held for `stable_for`, or fell
    /// again sooner (a relapse, journaled). Operator requests meanwhile: a reset refills the
    /// budget; `heal now` and dependency restarts are answered without an action (it is Up).
    async fn hold(&mut self, up_at: Timestamp) -> Held {
        let probe = self.spec.probe.clone();
        loop {
            let verdict = hold::judge(up_at, self.spec.stable_for, &self.seen, Timestamp::now());
            let holding_until = match verdict {
                Verdict::Holding { until } => until,
                _ => None,
            };
            self.board
                .update(&probe, |s| s.holding_until = holding_until);
            match verdict {
                Verdict::Held => {
                    // Down again after it held: a new incident, opened once this one closed.
                    self.reopen = hold::fell_since(up_at, &self.seen).is_some()
                        && self.seen.state != ProbeState::Up;
                    return Held::Yes;
                }
                Verdict::Relapsed { after } => {
                    self.relapsed(after);
                    return Held::Relapsed;
                }
                Verdict::Holding { until } => {
                    let deadline =
                        until.map(|until| tokio::time::Instant::now() + until.duration_from_now());
                    match self.wake(deadline).await {
                        Wake::Stop => {
                            self.board.update(&probe, |s| s.holding_until = None);
                            return Held::Stop;
                        }
                        Wake::Command(Request { command, done }) => {
                            self.waiting.extend(done);
                            match command {
                                HealCommand::Reset => self.reset(),
                                HealCommand::Now | HealCommand::Dependency => {
                                    tracing::info!(probe, "up again and holding; no action")
                                }
                            }
                            self.answer_waiting();
                        }
                        Wake::Status { .. }
                        | Wake::Fault(_)
                        | Wake::SilenceChanged
                        | Wake::Deadline => {}
                    }
                }
            }
        }
    }

    /// The probe fell again `after` coming back: the same incident goes on.
    fn relapsed(&mut self, after: Duration) {
        self.reopen = false;
        self.incident.relapses += 1;
        self.incident.said_crash_loop |= self.seen.reason == Some(FailureReason::CrashLoop);
        let reason = hold::cause(
            self.seen.reason.or(self.incident.reason),
            self.incident.relapses,
            self.incident.said_crash_loop,
        );
        let event = EventKind::IncidentRelapsed {
            probe: self.spec.probe.clone(),
            relapses: self.incident.relapses,
            held_ms: after.as_millis() as u64,
            stable_for_ms: self.spec.stable_for.as_millis() as u64,
            reason,
        };
        tracing::warn!(probe = %self.spec.probe, "{}", event.summary());
        self.bus.publish(event);
        let relapses = self.incident.relapses;
        self.board.update(&self.spec.probe, |s| {
            s.holding_until = None;
            s.relapses = relapses;
            s.crash_loop = reason == Some(FailureReason::CrashLoop);
        });
    }

    async fn wait_for_up_or_command(&mut self, limit: Duration, until: Until) -> Outcome {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match self.wake(Some(deadline)).await {
                Wake::Stop => return Outcome::Stop,
                // Whether it held (or is Down again already) is for `hold` to judge.
                Wake::Status { before, now } if came_up(&before, &now).is_some() => {
                    return Outcome::Up(came_up(&before, &now).unwrap_or(now.since));
                }
                Wake::Status { before, now } if now.went_down_since(&before) => {
                    if let Some(at) = now.down_at {
                        self.incident.down_at.get_or_insert(at);
                    }
                }
                Wake::Status { .. } | Wake::Fault(_) => {}
                Wake::Command(Request { command, done }) => {
                    self.waiting.extend(done);
                    return match command {
                        HealCommand::Reset => Outcome::Reset,
                        HealCommand::Now | HealCommand::Dependency => Outcome::Now,
                    };
                }
                Wake::Deadline => return Outcome::Elapsed,
                // Only a wait for the silence to end cares; a verification keeps its deadline.
                Wake::SilenceChanged if until == Until::SilenceChanges => return Outcome::Elapsed,
                Wake::SilenceChanged => {}
            }
        }
    }

    /// The next thing that concerns this healer, or `Deadline` when `deadline` passes first.
    async fn wake(&mut self, deadline: Option<tokio::time::Instant>) -> Wake {
        loop {
            let sleep = async {
                match deadline {
                    Some(deadline) => tokio::time::sleep_until(deadline).await,
                    None => std::future::pending().await,
                }
            };
            let container_event = async {
                match self.container_events.as_mut() {
                    Some(events) => events.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = self.cancel.cancelled() => return Wake::Stop,
                _ = sleep => return Wake::Deadline,
                Some(request) = self.requests.recv() => return Wake::Command(request),
                Ok(()) = self.status.changed() => {
                    let now = self.status.borrow_and_update().clone();
                    let before = std::mem::replace(&mut self.seen, now.clone());
                    return Wake::Status { before, now };
                }
                Ok(()) = self.silence.changed() => {
                    self.silenced_until = *self.silence.borrow_and_update();
                    return Wake::SilenceChanged;
                }
                received = container_event => match received {
                    // The container's death is the fault's real start: it precedes the probe's Down.
                    Ok(Event { at, kind: EventKind::ContainerEvent { container: name, action, .. } })
                        if self.watches_container(&name) && action.is_death() =>
                    {
                        return Wake::Fault(at);
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::debug!(probe = %self.spec.probe, missed, "healer skipped container events; the fault is dated by the probe");
                    }
                    Err(broadcast::error::RecvError::Closed) => self.container_events = None,
                },
            }
        }
    }
}

/// What besides its deadline ends a wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Until {
    Deadline,
    SilenceChanges,
}

impl Healer {
    /// Whether a Docker event about `name` is about the container this healer restarts.
    fn watches_container(&self, name: &str) -> bool {
        matches!(&self.spec.action, HealAction::DockerRestart { container, .. } if container == name)
    }
}

/// Whether an incident starts with the remedy steps (a Down) or skips them (`heal now`).
enum Remedy {
    First,
    Skip,
}

/// How a phase of an incident (remedy steps, heal attempts) ended.
enum Ended {
    /// The probe is Up since `at` and that held; `healed` when an action of ours did it.
    Up {
        at: Timestamp,
        healed: bool,
    },
    /// The heal action (restart) follows.
    Restart,
    Stop,
}

/// How judging an Up run ended.
enum Held {
    Yes,
    Relapsed,
    Stop,
}

/// When the probe came Up, if the change from `before` to `now` brought it Up (also when it
/// already fell again: a recovery since `before`).
fn came_up(before: &ProbeStatus, now: &ProbeStatus) -> Option<Timestamp> {
    if now.recovered_since(before) {
        return Some(now.up_at.unwrap_or(now.since));
    }
    (now.state == ProbeState::Up).then_some(now.since)
}

/// What one remedy step did.
enum StepDone {
    /// Its condition held for no session.
    Nothing,
    /// It signalled sessions: wait for the probe.
    Acted,
    /// It could not reach the server or signal: no further step.
    Failed,
}

enum Outcome {
    /// Up since this time, and it held.
    Up(Timestamp),
    /// Up, then Down again before `stable_for`.
    Relapsed,
    Elapsed,
    Now,
    Reset,
    Stop,
}

#[cfg(test)]
mod tests {
    use tokio::sync::watch;

    use super::*;
    use crate::probe::{FailureReason, Transition};

    /// A healer running `true` as its action, and the fake probe that drives it.
    struct Rig {
        probe: watch::Sender<ProbeStatus>,
        board: HealBoard,
        mailbox: Mailbox,
        cancel: CancellationToken,
        handle: JoinHandle<()>,
        recoveries: u64,
    }

    fn rig(bus: &Bus) -> Rig {
        rig_holding(bus, Duration::ZERO)
    }

    /// A rig whose recoveries count only after `stable_for`.
    fn rig_holding(bus: &Bus, stable_for: Duration) -> Rig {
        let spec = HealerSpec {
            probe: "app".into(),
            action: HealAction::Exec {
                program: "true".into(),
                args: vec![],
                timeout: Duration::from_secs(5),
            },
            budget: RestartBudget::new(3, Duration::from_secs(600)),
            budget_max: 3,
            backoff: Backoff::new(Duration::from_millis(10), Duration::from_millis(10)),
            verify_within: Duration::from_secs(10),
            stable_for,
            evidence: None,
            remedy: None,
            remedy_archiver: None,
        };
        let (probe, status) = watch::channel(ProbeStatus::unknown(0));
        let board = HealBoard::default();
        let cancel = CancellationToken::new();
        let inputs = HealerInputs {
            status,
            silenced_until: None,
        };
        let (mailbox, handle) = spawn(spec, inputs, bus.clone(), board.clone(), cancel.clone());
        Rig {
            probe,
            board,
            mailbox,
            cancel,
            handle,
            recoveries: 0,
        }
    }

    impl Rig {
        fn go(&mut self, from: ProbeState, to: ProbeState) {
            let reason = (to == ProbeState::Down).then_some(FailureReason::Refused);
            if (Transition { from, to }).is_recovery() {
                self.recoveries += 1;
            }
            let recoveries = self.recoveries;
            self.probe.send_modify(|s| {
                s.apply(
                    Transition { from, to },
                    Timestamp::now(),
                    reason,
                    recoveries,
                )
            });
        }

        fn heals(&self) -> u64 {
            self.board.snapshot().first().map_or(0, |s| s.heals_total)
        }

        async fn wait_heals(&self, want: u64) {
            let waited = tokio::time::timeout(Duration::from_secs(10), async {
                while self.heals() < want {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            });
            assert!(waited.await.is_ok(), "heals {} != {want}", self.heals());
        }

        async fn stop(self) {
            self.cancel.cancel();
            let _ = self.handle.await;
        }
    }

    /// The bus is flooded far past its capacity while the probe goes Down: the healer acts,
    /// because it follows the probe's own channel, not the bus.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_down_is_healed_while_the_bus_is_flooded() {
        let bus = Bus::new();
        let mut rig = rig(&bus);
        rig.go(ProbeState::Unknown, ProbeState::Up);
        let flood = {
            let bus = bus.clone();
            std::thread::spawn(move || {
                for i in 0..200_000u32 {
                    bus.publish(EventKind::ProbeSilenced {
                        probe: format!("other{}", i % 7),
                        until: Timestamp(0),
                    });
                }
            })
        };
        rig.go(ProbeState::Up, ProbeState::Failing);
        rig.go(ProbeState::Failing, ProbeState::Down);
        rig.wait_heals(1).await;
        flood.join().unwrap();
        rig.go(ProbeState::Down, ProbeState::Up);
        // A second incident is a second heal: the first one was closed by the recovery.
        rig.go(ProbeState::Up, ProbeState::Down);
        rig.wait_heals(2).await;
        rig.stop().await;
    }

    /// A Down and its recovery that both happen before the healer looks close the incident
    /// without an action; a Down right after a recovery opens a new incident.
    #[tokio::test]
    async fn coalesced_edges_are_not_lost() {
        let bus = Bus::new();
        let mut events = bus.subscribe();
        let mut rig = rig(&bus);
        rig.go(ProbeState::Unknown, ProbeState::Up);
        rig.go(ProbeState::Up, ProbeState::Down);
        rig.go(ProbeState::Down, ProbeState::Up);
        let closed = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                if let Ok(Event {
                    kind: EventKind::IncidentClosed { healed, .. },
                    ..
                }) = events.recv().await
                {
                    return healed;
                }
            }
        })
        .await;
        assert_eq!(closed, Ok(false), "the incident closes, unhealed");
        assert_eq!(rig.heals(), 0);
        // Down, Up and Down again in one go: still Down, so it is healed.
        rig.go(ProbeState::Up, ProbeState::Down);
        rig.go(ProbeState::Down, ProbeState::Up);
        rig.go(ProbeState::Up, ProbeState::Down);
        rig.wait_heals(1).await;
        rig.stop().await;
    }

    /// The next event on `events` that `pick` takes, within 10 s; the events passed on the way
    /// are kept in `seen`.
    async fn next<T>(
        events: &mut broadcast::Receiver<Event>,
        seen: &mut Vec<Event>,
        mut pick: impl FnMut(&Event) -> Option<T>,
    ) -> T {
        let found = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let event = events.recv().await.expect("the bus keeps up");
                let picked = pick(&event);
                seen.push(event);
                if let Some(picked) = picked {
                    return picked;
                }
            }
        });
        match found.await {
            Ok(picked) => picked,
            Err(_) => panic!("not seen within 10 s; saw {seen:#?}"),
        }
    }

    fn count(seen: &[Event], name: &str) -> usize {
        seen.iter().filter(|e| e.kind.name() == name).count()
    }

    /// Up again after a heal, but Down 100 ms later with `stable_for` 400 ms: a relapse of the
    /// same incident (journaled, no `incident_closed`), healed again; the Up that holds closes
    /// it `stable_for` later, its time to recover running to the start of that Up.
    #[tokio::test]
    async fn a_down_within_stable_for_is_a_relapse_of_the_same_incident() {
        let bus = Bus::new();
        let mut events = bus.subscribe();
        let mut seen = Vec::new();
        let stable_for = Duration::from_millis(400);
        let mut rig = rig_holding(&bus, stable_for);
        rig.go(ProbeState::Unknown, ProbeState::Up);
        rig.go(ProbeState::Up, ProbeState::Down);
        rig.wait_heals(1).await;
        rig.go(ProbeState::Down, ProbeState::Up);
        tokio::time::sleep(Duration::from_millis(100)).await;
        rig.go(ProbeState::Up, ProbeState::Down);
        let (relapses, held_ms) = next(&mut events, &mut seen, |e| match &e.kind {
            EventKind::IncidentRelapsed {
                relapses, held_ms, ..
            } => Some((*relapses, *held_ms)),
            _ => None,
        })
        .await;
        assert_eq!(relapses, 1);
        assert!((100..400).contains(&held_ms), "held {held_ms} ms");
        assert_eq!(count(&seen, "incident_closed"), 0, "{seen:#?}");
        rig.wait_heals(2).await;
        let up = Timestamp::now();
        rig.go(ProbeState::Down, ProbeState::Up);
        let (closed_at, healed, recover_ms) = next(&mut events, &mut seen, |e| match &e.kind {
            EventKind::IncidentClosed {
                healed,
                time_to_recover_ms,
                ..
            } => Some((e.at, *healed, *time_to_recover_ms)),
            _ => None,
        })
        .await;
        assert!(healed);
        let waited = closed_at.as_millis() - up.as_millis();
        assert!(waited >= 400, "closed {waited} ms after the Up that held");
        let first_down = seen
            .iter()
            .find(|e| e.kind.name() == "heal_started")
            .map(|e| e.at.as_millis())
            .unwrap();
        // From the fault to the start of the Up that held: not to the close.
        let recover_ms = recover_ms.unwrap() as i64;
        assert!(
            recover_ms <= up.as_millis() - first_down + 50,
            "{recover_ms}"
        );
        let open_ms = closed_at.as_millis() - first_down;
        assert!(
            open_ms >= recover_ms + 350,
            "open {open_ms} ms, recover {recover_ms} ms"
        );
        assert_eq!(count(&seen, "incident_closed"), 1);
        let board = rig.board.snapshot();
        assert_eq!(board[0].recovered_total, 1);
        assert_eq!(board[0].relapses, 0);
        rig.stop().await;
    }

    /// A probe that falls right after each heal: never recovered, a crash loop from its second
    /// relapse on, and the budget ends it with a gave-up naming the crash loop.
    #[tokio::test]
    async fn relapse_after_relapse_is_a_crash_loop_that_gives_up() {
        let bus = Bus::new();
        let mut events = bus.subscribe();
        let mut seen = Vec::new();
        let mut rig = rig_holding(&bus, Duration::from_secs(5));
        rig.go(ProbeState::Unknown, ProbeState::Up);
        rig.go(ProbeState::Up, ProbeState::Down);
        for heal in 1..=3 {
            rig.wait_heals(heal).await;
            rig.go(ProbeState::Down, ProbeState::Up);
            tokio::time::sleep(Duration::from_millis(20)).await;
            rig.go(ProbeState::Up, ProbeState::Down);
            let reason = next(&mut events, &mut seen, |e| match &e.kind {
                EventKind::IncidentRelapsed { reason, .. } => Some(*reason),
                _ => None,
            })
            .await;
            let want = match heal {
                1 => Some(FailureReason::Refused),
                _ => Some(FailureReason::CrashLoop),
            };
            assert_eq!(reason, want, "relapse {heal}");
        }
        let (attempts, reason) = next(&mut events, &mut seen, |e| match &e.kind {
            EventKind::HealGaveUp {
                attempts, reason, ..
            } => Some((*attempts, *reason)),
            _ => None,
        })
        .await;
        assert_eq!((attempts, reason), (3, Some(FailureReason::CrashLoop)));
        assert_eq!(count(&seen, "incident_closed"), 0, "{seen:#?}");
        let board = rig.board.snapshot();
        assert!(board[0].gave_up && board[0].crash_loop, "{board:?}");
        assert_eq!(board[0].recovered_total, 0);
        rig.stop().await;
    }

    /// The cascade's request is answered once the dependant's action is over.
    #[tokio::test]
    async fn a_dependency_restart_is_answered_when_done() {
        let bus = Bus::new();
        let mut rig = rig(&bus);
        rig.go(ProbeState::Unknown, ProbeState::Up);
        let done = rig.mailbox.restart_for_dependency().await.unwrap();
        let answered = tokio::time::timeout(Duration::from_secs(5), done).await;
        assert!(matches!(answered, Ok(Ok(()))), "{answered:?}");
        assert_eq!(rig.heals(), 1);
        rig.stop().await;
    }
}
