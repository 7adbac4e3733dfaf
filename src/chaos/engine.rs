//! `ChaosEngine`: starting and stopping experiments. Limits → plan (pre-image) → journal →
//! apply with read-back → active until deadline, stop, halt or shutdown (see `lifecycle`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use super::experiment::ExperimentView;
use super::experiment::{boot_id, Experiment, ExperimentState};
use super::host::{ChaosHost, ResolvedContainer};
use super::spec::ExperimentSpec;
use super::spec::SpecError;
use super::{Capability, ChaosError};
use crate::docker::DockerEngine;
use crate::event::{Bus, EventKind, RollbackTrigger, Timestamp};
use crate::journal::ExperimentStore;
use crate::units::HumanDuration;

/// A named, reusable experiment from `[[chaos.profile]]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub name: String,
    pub spec: ExperimentSpec,
    pub duration: HumanDuration,
}

/// The engine's share of the config; replaced on reload (running experiments keep theirs).
#[derive(Debug, Clone, PartialEq)]
pub struct ChaosSettings {
    pub profiles: Vec<Profile>,
    pub max_duration: Duration,
    pub max_concurrent: usize,
    /// For ad-hoc experiments that do not say.
    pub default_duration: Duration,
    /// How often a running experiment's kernel state is read again for drift; zero: never.
    pub drift_check: Duration,
}

/// `POST /v1/chaos/start`: a profile by name, or an ad-hoc spec; `duration` overrides the default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    pub profile: Option<String>,
    pub spec: Option<ExperimentSpec>,
    pub duration: Option<HumanDuration>,
}

/// Why an experiment ends: the `trigger` of its `chaos_rolled_back` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum StopReason {
    Deadline,
    Stop,
    Shutdown,
    Halt(String),
    Recovery,
    /// Someone else changed the experiment's kernel state (the rollback finds what).
    Drift,
}

impl StopReason {
    pub(super) fn trigger(&self) -> RollbackTrigger {
        match self {
            Self::Deadline => RollbackTrigger::Deadline,
            Self::Stop => RollbackTrigger::Stop,
            Self::Shutdown => RollbackTrigger::Shutdown,
            Self::Halt(_) => RollbackTrigger::Halt,
            Self::Recovery => RollbackTrigger::Recovery,
            Self::Drift => RollbackTrigger::Drift,
        }
    }
}

/// An experiment that may hold changes; `stop` and `task` are taken by whoever ends it.
pub(super) struct Running {
    pub(super) halt_on: Vec<String>,
    pub(super) stop: Option<oneshot::Sender<StopReason>>,
    task: Option<JoinHandle<Experiment>>,
}

pub(super) struct Inner {
    pub(super) host: Arc<dyn ChaosHost>,
    pub(super) store: Arc<Mutex<ExperimentStore>>,
    settings: Mutex<ChaosSettings>,
    pub(super) running: Mutex<BTreeMap<String, Running>>,
    pub(super) bus: Bus,
    docker: DockerEngine,
    sequence: AtomicU32,
}

#[derive(Clone)]
pub struct ChaosEngine {
    pub(super) inner: Arc<Inner>,
}

pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub(super) async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    crate::panic_policy::run_blocking(work).await
}

impl ChaosEngine {
    /// Open the experiment table in the journal database under `state_dir`.
    pub fn open(
        state_dir: &Path,
        host: Arc<dyn ChaosHost>,
        settings: ChaosSettings,
        bus: Bus,
        docker: DockerEngine,
    ) -> Result<Self, ChaosError> {
        let store = ExperimentStore::open(&state_dir.join(crate::journal::DATABASE_FILE))
            .map_err(|err| ChaosError::Journal(err.to_string()))?;
        Ok(Self {
            inner: Arc::new(Inner {
                host,
                store: Arc::new(Mutex::new(store)),
                settings: Mutex::new(settings),
                running: Mutex::new(BTreeMap::new()),
                bus,
                docker,
                sequence: AtomicU32::new(0),
            }),
        })
    }

    pub fn configure(&self, settings: ChaosSettings) {
        *lock(&self.inner.settings) = settings;
    }

    pub fn profiles(&self) -> Vec<Profile> {
        lock(&self.inner.settings).profiles.clone()
    }

    pub fn capabilities(&self) -> Vec<Capability> {
        self.inner.host.capabilities()
    }

    /// Running experiments first, then the most recent finished ones.
    pub async fn list(&self) -> Result<Vec<ExperimentView>, ChaosError> {
        let store = Arc::clone(&self.inner.store);
        let rows = blocking(move || lock(&store).recent(50))
            .await
            .map_err(|err| ChaosError::Journal(err.to_string()))?;
        let mut views: Vec<ExperimentView> = rows
            .iter()
            .filter_map(|row| Experiment::from_row(row).ok())
            .map(|e| e.view())
            .collect();
        views.sort_by_key(|v| v.state != ExperimentState::Active);
        Ok(views)
    }

    pub async fn show(&self, id: &str) -> Result<ExperimentView, ChaosError> {
        self.experiment(id).await.map(|e| e.view())
    }

    /// The journaled record of one experiment (what reports are built from).
    pub async fn experiment(&self, id: &str) -> Result<Experiment, ChaosError> {
        let store = Arc::clone(&self.inner.store);
        let key = id.to_string();
        let row = blocking(move || lock(&store).get(&key))
            .await
            .map_err(|err| ChaosError::Journal(err.to_string()))?
            .ok_or_else(|| ChaosError::NoSuchExperiment(id.to_string()))?;
        Experiment::from_row(&row).map_err(|err| ChaosError::Journal(err.to_string()))
    }

    fn resolve(
        &self,
        request: StartRequest,
    ) -> Result<(Option<String>, ExperimentSpec, Duration), ChaosError> {
        let settings = lock(&self.inner.settings);
        let (profile, spec, default) = match (request.profile, request.spec) {
            (Some(name), None) => {
                let profile = settings
                    .profiles
                    .iter()
                    .find(|p| p.name == name)
                    .ok_or(ChaosError::NoSuchProfile(name))?;
                (
                    Some(profile.name.clone()),
                    profile.spec.clone(),
                    profile.duration.get(),
                )
            }
            (None, Some(spec)) => (None, spec, settings.default_duration),
            _ => return Err(ChaosError::Invalid(SpecError::NoProfileOrSpec)),
        };
        spec.validate().map_err(ChaosError::Invalid)?;
        let duration = request.duration.map_or(default, HumanDuration::get);
        if duration.is_zero() {
            return Err(ChaosError::Invalid(SpecError::ZeroDuration));
        }
        if duration > settings.max_duration {
            return Err(ChaosError::Refused(format!(
                "duration {} exceeds max_duration {}",
                HumanDuration(duration),
                HumanDuration(settings.max_duration)
            )));
        }
        Ok((profile, spec, duration))
    }

    fn next_id(&self) -> String {
        let sequence = self.inner.sequence.fetch_add(1, Ordering::Relaxed) & 0xff;
        format!("x{:x}{sequence:02x}", Timestamp::now().as_millis())
    }

    /// Start an experiment; answers once the faults are in place and read back.
    pub async fn start(&self, request: StartRequest) -> Result<ExperimentView, ChaosError> {
        let (profile, spec, duration) = self.resolve(request)?;
        let id = self.next_id();
        {
            let max = lock(&self.inner.settings).max_concurrent;
            let mut running = lock(&self.inner.running);
            if running.len() >= max {
                return Err(ChaosError::Refused(format!(
                    "{} experiments are running already (max_concurrent = {max})",
                    running.len()
                )));
            }
            let slot = Running {
                halt_on: spec.halt_on.clone(),
                stop: None,
                task: None,
            };
            running.insert(id.clone(), slot);
        }
        let started = self
            .start_reserved(id.clone(), profile, spec, duration)
            .await;
        if started.is_err() {
            lock(&self.inner.running).remove(&id);
        }
        started
    }

    async fn start_reserved(
        &self,
        id: String,
        profile: Option<String>,
        spec: ExperimentSpec,
        duration: Duration,
    ) -> Result<ExperimentView, ChaosError> {
        let created = Timestamp::now();
        let mut experiment = Experiment {
            id: id.clone(),
            profile: profile.clone(),
            spec: spec.clone(),
            actions: Vec::new(),
            state: ExperimentState::Pending,
            created,
            deadline: Timestamp(created.as_millis() + duration.as_millis() as i64),
            boot_id: boot_id(),
            log: Vec::new(),
            ended: None,
            outcome: None,
            baseline: Vec::new(),
        };
        let planned = match &spec.target.container {
            Some(name) => self.resolve_container(name).await.map(Some),
            None => Ok(None),
        };
        let deadline = experiment.deadline;
        let planned = match planned {
            Ok(container) => {
                let host = Arc::clone(&self.inner.host);
                blocking(move || host.plan_until(&spec, container.as_ref(), deadline)).await
            }
            Err(err) => Err(err),
        };
        experiment.actions = match planned {
            Ok(actions) => actions,
            Err(err) => return Err(self.fail(experiment, err, Vec::new()).await),
        };
        // The write-ahead step: nothing touches the kernel before this row is on disk.
        self.persist(&experiment).await?;
        let host = Arc::clone(&self.inner.host);
        let actions = experiment.actions.clone();
        match blocking(move || super::lifecycle::apply_all(host.as_ref(), &actions)).await {
            Ok(log) => experiment.log = log,
            Err((err, log)) => return Err(self.fail(experiment, err, log).await),
        }
        // What drift checks and the rollback compare with: the state right after the read-back.
        let host = Arc::clone(&self.inner.host);
        let actions = experiment.actions.clone();
        experiment.baseline =
            blocking(move || super::lifecycle::observe_all(host.as_ref(), &actions)).await;
        experiment.state = ExperimentState::Active;
        self.persist(&experiment).await?;

        let view = experiment.view();
        let (stop, stopped) = oneshot::channel();
        let engine = self.clone();
        let every = lock(&self.inner.settings).drift_check;
        let task = tokio::spawn(async move {
            let reason = engine.hold(&experiment, duration, stopped, every).await;
            engine.roll_back(experiment, reason).await
        });
        if let Some(slot) = lock(&self.inner.running).get_mut(&id) {
            slot.stop = Some(stop);
            slot.task = Some(task);
        }
        tracing::info!(id, faults = ?view.faults, target = view.target, "chaos experiment started");
        self.inner.bus.publish(EventKind::ChaosStarted {
            experiment: id,
            profile,
            target: view.target.clone(),
            faults: view.faults.clone(),
            until: view.deadline,
        });
        Ok(view)
    }

    async fn fail(
        &self,
        mut experiment: Experiment,
        err: ChaosError,
        log: Vec<String>,
    ) -> ChaosError {
        experiment.state = ExperimentState::Failed;
        experiment.log = log;
        experiment.ended = Some(Timestamp::now());
        experiment.outcome = Some(err.to_string());
        if let Err(journal) = self.persist(&experiment).await {
            tracing::error!(id = experiment.id, error = %journal, "cannot journal a failed experiment");
        }
        tracing::warn!(id = experiment.id, error = %err, "chaos experiment did not start");
        self.inner.bus.publish(EventKind::ChaosAborted {
            experiment: experiment.id,
            profile: experiment.profile,
            reason: err.to_string(),
        });
        err
    }

    async fn resolve_container(&self, name: &str) -> Result<ResolvedContainer, ChaosError> {
        let client = self
            .inner
            .docker
            .client()
            .await
            .map_err(|err| ChaosError::Docker(err.to_string()))?;
        let inspect = client
            .inspect_container(name, None)
            .await
            .map_err(|err| ChaosError::Target(format!("container {name}: {err}")))?;
        let pid = inspect.state.and_then(|s| s.pid).unwrap_or(0);
        if pid <= 0 {
            return Err(ChaosError::Target(format!(
                "container {name} is not running"
            )));
        }
        Ok(ResolvedContainer {
            id: inspect.id.unwrap_or_default(),
            name: name.to_string(),
            pid: pid as i32,
        })
    }

    pub(super) async fn persist(&self, experiment: &Experiment) -> Result<(), ChaosError> {
        let store = Arc::clone(&self.inner.store);
        let row = experiment.to_row();
        blocking(move || lock(&store).put(&row))
            .await
            .map_err(|err| ChaosError::Journal(err.to_string()))
    }

    /// End a running experiment now and answer with its final state.
    pub async fn stop(&self, id: &str) -> Result<ExperimentView, ChaosError> {
        self.end(id, StopReason::Stop).await?;
        self.show(id).await
    }

    async fn end(&self, id: &str, reason: StopReason) -> Result<(), ChaosError> {
        let (stop, task) = {
            let mut running = lock(&self.inner.running);
            let slot = running.get_mut(id).ok_or_else(|| {
                ChaosError::NoSuchExperiment(format!("{id} running (see sentinelctl chaos list)"))
            })?;
            (slot.stop.take(), slot.task.take())
        };
        if let Some(stop) = stop {
            let _ = stop.send(reason);
        }
        match task {
            Some(task) => {
                let _ = task.await;
                Ok(())
            }
            None => Err(ChaosError::Refused(format!(
                "{id} is still starting or already being stopped"
            ))),
        }
    }

    /// Stop every running experiment; the ids that were stopped.
    pub async fn stop_all(&self) -> Vec<String> {
        self.end_all(StopReason::Stop).await
    }

    /// SIGTERM: roll everything back before the daemon exits.
    pub async fn shutdown(&self) {
        let ended = self.end_all(StopReason::Shutdown).await;
        if !ended.is_empty() {
            tracing::info!(?ended, "chaos experiments rolled back for shutdown");
        }
    }

    async fn end_all(&self, reason: StopReason) -> Vec<String> {
        let ids: Vec<String> = lock(&self.inner.running).keys().cloned().collect();
        let mut ended = Vec::new();
        for id in ids {
            if self.end(&id, reason.clone()).await.is_ok() {
                ended.push(id);
            }
        }
        ended
    }
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
