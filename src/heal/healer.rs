//! One healer per healable probe: follows the probe's own status channel (lossless, unlike the
//! bus) and runs the incident loop — budget, backoff, act, verify — publishing each step as an event.

use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

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
                        // Down and back Up before this healer looked: nothing left to heal.
                        self.close(now.up_at.unwrap_or(now.since), false);
                        if now.state == ProbeState::Failing {
                            self.incident.fault_at = now.fault_at;
                        }
                        continue;
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
            let remedied = match std::mem::replace(&mut remedy, Remedy::First) {
                Remedy::First => self.remedy_first().await,
                Remedy::Skip => Remedied::Restart,
            };
            let go_on = match remedied {
                Remedied::Up { at, healed } => self.close(at, healed),
                Remedied::Stop => false,
                Remedied::Restart => self.heal().await,
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

    /// The incident loop; returns false when the healer must stop.
    async fn heal(&mut self) -> bool {
        let probe = self.spec.probe.clone();
        let mut attempt = 0u32;
        // `heal now` overrides a silence for the attempt it asked for.
        let mut forced = false;
        loop {
            let now = Timestamp::now();
            if let Some(until) = self.silenced_until.filter(|until| *until > now && !forced) {
                tracing::info!(probe, "silenced until {}; not healing", until.to_rfc3339());
                let wait = Duration::from_millis((until.as_millis() - now.as_millis()) as u64);
                match self
                    .wait_for_up_or_command(wait, Until::SilenceChanges)
                    .await
                {
                    Outcome::Up(at) => return self.close(at, false),
                    Outcome::Stop => return false,
                    Outcome::Reset => self.reset(),
                    Outcome::Now => forced = true,
                    Outcome::Elapsed => {}
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
                self.board.update(&probe, |s| {
                    s.gave_up = true;
                    s.retry_at = Some(retry_at);
                    s.budget_remaining = 0;
                });
                self.bus.publish(EventKind::HealGaveUp {
                    probe: probe.clone(),
                    attempts: self.spec.budget_max,
                    retry_at,
                });
                self.answer_waiting();
                let wait =
                    Duration::from_millis((retry_at.as_millis() - now.as_millis()).max(0) as u64);
                match self.wait_for_up_or_command(wait, Until::Deadline).await {
                    Outcome::Up(at) => return self.close(at, false),
                    Outcome::Stop => return false,
                    Outcome::Reset => {
                        self.reset();
                        continue;
                    }
                    Outcome::Elapsed | Outcome::Now => {
                        self.board.update(&probe, |s| s.gave_up = false);
                        continue;
                    }
                }
            }
            let delay = self.spec.backoff.delay();
            if !delay.is_zero() {
                match self.wait_for_up_or_command(delay, Until::Deadline).await {
                    Outcome::Up(at) => return self.close(at, false),
                    Outcome::Stop => return false,
                    Outcome::Reset => self.reset(),
                    Outcome::Elapsed | Outcome::Now => {}
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

            match self
                .wait_for_up_or_command(self.spec.verify_within, Until::Deadline)
                .await
            {
                Outcome::Up(at) => {
                    self.spec.backoff.succeeded();
                    return self.close(at, true);
                }
                Outcome::Stop => return false,
                Outcome::Reset => self.reset(),
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
    async fn remedy_first(&mut self) -> Remedied {
        use crate::remedy::Condition;
        let Some(remedy) = self.spec.remedy.clone() else {
            return Remedied::Restart;
        };
        if Condition::of(self.incident.reason) == Condition::Dead {
            return Remedied::Restart;
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
            match self
                .wait_for_up_or_command(wait, Until::SilenceChanges)
                .await
            {
                Outcome::Up(at) => return Remedied::Up { at, healed: false },
                Outcome::Stop => return Remedied::Stop,
                Outcome::Reset => self.reset(),
                Outcome::Now => return Remedied::Restart,
                Outcome::Elapsed => {}
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
            match self
                .wait_for_up_or_command(step.verify_within, Until::Deadline)
                .await
            {
                Outcome::Up(at) => return Remedied::Up { at, healed: true },
                Outcome::Stop => return Remedied::Stop,
                Outcome::Reset => self.reset(),
                Outcome::Now => return Remedied::Restart,
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
            return Remedied::Restart;
        }
        // Still answering: no restart, until it recovers, an operator asks, or it dies.
        loop {
            match self.wake(None).await {
                Wake::Stop => return Remedied::Stop,
                Wake::Status { before, now } if now.recovered_since(&before) => {
                    self.reopen = now.state != ProbeState::Up;
                    let at = now.up_at.unwrap_or(now.since);
                    return Remedied::Up { at, healed: false };
                }
                Wake::Status { now, .. } if now.state == ProbeState::Up => {
                    return Remedied::Up {
                        at: now.since,
                        healed: false,
                    }
                }
                Wake::Status { now, .. }
                    if now.state == ProbeState::Down
                        && Condition::of(now.reason) == Condition::Dead =>
                {
                    tracing::warn!(probe, "the server stopped answering; restarting");
                    self.incident.reason = now.reason;
                    return Remedied::Restart;
                }
                Wake::Command(Request { command, done }) => {
                    self.waiting.extend(done);
                    match command {
                        HealCommand::Reset => self.reset(),
                        HealCommand::Now | HealCommand::Dependency => return Remedied::Restart,
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
        });
        true
    }

    async fn wait_for_up_or_command(&mut self, limit: Duration, until: Until) -> Outcome {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match self.wake(Some(deadline)).await {
                Wake::Stop => return Outcome::Stop,
                Wake::Status { before, now } if now.recovered_since(&before) => {
                    let up_at = now.up_at.unwrap_or(now.since);
                    // Down again already: a new incident opens once this one is closed.
                    self.reopen = now.state != ProbeState::Up;
                    return Outcome::Up(up_at);
                }
                Wake::Status { now, .. } if now.state == ProbeState::Up => {
                    return Outcome::Up(now.since)
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

/// How the remedy phase of an incident ended.
enum Remedied {
    /// The probe is Up; `healed` when a step did it.
    Up {
        at: Timestamp,
        healed: bool,
    },
    /// The heal action (restart) follows.
    Restart,
    Stop,
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
    Up(Timestamp),
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
