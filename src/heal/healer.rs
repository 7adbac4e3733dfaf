//! One healer per healable probe: follows the probe's transitions on the bus and runs the
//! incident loop — budget, backoff, act, verify — publishing each step as an event.

use std::time::Duration;

use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{Backoff, HealAction, HealBoard, HealSnapshot, RestartBudget};
use crate::event::{Bus, Event, EventKind, FailureReason, HealCause, ProbeState, Timestamp};

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
        };
        Some(Self {
            probe: probe.name().to_string(),
            action,
            budget: RestartBudget::new(heal.max_attempts, heal.window.get()).with_history(history),
            budget_max: heal.max_attempts,
            backoff: Backoff::new(heal.backoff.get(), heal.max_backoff.get()),
            verify_within: heal.verify_within.get(),
            evidence: None,
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

enum Wake {
    Transition {
        to: ProbeState,
        at: Timestamp,
        reason: Option<FailureReason>,
    },
    Fault(Timestamp),
    Command(HealCommand),
    /// The silence was set or lifted: waits re-evaluate.
    SilenceChanged,
    Deadline,
    Stop,
}

struct Healer {
    spec: HealerSpec,
    events: broadcast::Receiver<Event>,
    commands: mpsc::Receiver<HealCommand>,
    bus: Bus,
    board: HealBoard,
    cancel: CancellationToken,
    incident: Incident,
    /// No healing before this time (an operator's `sentinelctl silence`).
    silenced_until: Option<Timestamp>,
    /// Whether the probe's last transition was to Down (an incident is open).
    probe_down: bool,
}

/// Start a healer. Subscribes to the bus before returning so no transition is missed.
pub fn spawn(
    spec: HealerSpec,
    bus: Bus,
    board: HealBoard,
    cancel: CancellationToken,
) -> (mpsc::Sender<HealCommand>, JoinHandle<()>) {
    let (command_tx, commands) = mpsc::channel(8);
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
        },
    );
    let healer = Healer {
        events: bus.subscribe(),
        spec,
        commands,
        bus,
        board,
        cancel,
        incident: Incident::default(),
        silenced_until: None,
        probe_down: false,
    };
    (command_tx, tokio::spawn(healer.run()))
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
                Wake::Transition { to, at, reason } => match to {
                    ProbeState::Failing => {
                        self.incident.fault_at.get_or_insert(at);
                    }
                    ProbeState::Down => {
                        self.probe_down = true;
                        self.incident.down_at = Some(at);
                        self.incident.reason = reason;
                        self.incident.fault_at.get_or_insert(at);
                        if !self.heal().await {
                            break;
                        }
                    }
                    ProbeState::Up => {
                        self.probe_down = false;
                        self.incident = Incident::default();
                    }
                    ProbeState::Unknown | ProbeState::Recovering => {}
                },
                Wake::Command(HealCommand::Reset) => self.reset(),
                Wake::Command(HealCommand::Now) if self.probe_down => {
                    if !self.heal().await {
                        break;
                    }
                }
                Wake::Command(HealCommand::Now) => self.act_once(HealCause::Operator).await,
                Wake::Command(HealCommand::Dependency) => {
                    self.act_once(HealCause::Dependency).await
                }
            }
        }
        self.board.remove(&self.spec.probe);
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
                HealAction::Exec { .. } => None,
            };
            evidence
                .archiver
                .capture(crate::archive::CaptureRequest {
                    probe: probe.clone(),
                    container,
                    sources: evidence.sources.clone(),
                    reason: self.incident.reason,
                    down_at: self.incident.down_at,
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
        self.bus.publish(EventKind::HealFinished {
            probe: probe.clone(),
            action,
            ok,
            detail: detail.clone(),
        });
        let remaining = self.spec.budget.remaining(Timestamp::now());
        self.board.update(&probe, |s| {
            s.heals_total += 1;
            s.budget_remaining = remaining;
            s.last_result = Some(detail);
        });
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
                Wake::Transition {
                    to: ProbeState::Up,
                    at,
                    ..
                } => return Outcome::Up(at),
                Wake::Transition {
                    to: ProbeState::Down,
                    at,
                    ..
                } => {
                    self.incident.down_at.get_or_insert(at);
                }
                Wake::Transition { .. } | Wake::Fault(_) => {}
                Wake::Command(HealCommand::Reset) => return Outcome::Reset,
                Wake::Command(HealCommand::Now | HealCommand::Dependency) => return Outcome::Now,
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
            tokio::select! {
                _ = self.cancel.cancelled() => return Wake::Stop,
                _ = sleep => return Wake::Deadline,
                Some(command) = self.commands.recv() => return Wake::Command(command),
                received = self.events.recv() => match received {
                    Ok(Event { at, kind: EventKind::ProbeTransition { probe, to, reason, .. } }) if probe == self.spec.probe => {
                        return Wake::Transition { to, at, reason };
                    }
                    Ok(Event { kind: EventKind::ProbeSilenced { probe, until }, .. }) if probe == self.spec.probe => {
                        self.silenced_until = Some(until);
                        return Wake::SilenceChanged;
                    }
                    // The container's death is the fault's real start: it precedes the probe's Down.
                    Ok(Event { at, kind: EventKind::ContainerEvent { container: name, action, .. } })
                        if self.watches_container(&name) && action.is_death() =>
                    {
                        return Wake::Fault(at);
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(probe = %self.spec.probe, missed, "healer fell behind the bus");
                    }
                    Err(broadcast::error::RecvError::Closed) => return Wake::Stop,
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

enum Outcome {
    Up(Timestamp),
    Elapsed,
    Now,
    Reset,
    Stop,
}
