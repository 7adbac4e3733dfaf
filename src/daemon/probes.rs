//! The `Probes` component: probe runners, their healers, the depends_on cascade and the Docker
//! event stream, started from `[[probe]]` and changed probe by probe on reload; discovered
//! probes (`[docker] discover`) join and leave the same set at run time.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::component::{Component, Reload, Task};
use super::discovery::Discovered;
use crate::api::CommandRefused;
use crate::config::{self, ProbeConfig};
use crate::docker::sightings::Sighting;
use crate::docker::DockerEngine;
use crate::event::{Bus, EventKind, Timestamp};
use crate::heal::{HealBoard, HealCommand, HealerInputs, HealerSpec, Mailbox};
use crate::journal::{EventQuery, Journal};
use crate::probe::{self, FirstCheck, ProbeBoard, ProbeFeeds};

/// The running probes. The `[[probe]]` list itself stays with the supervisor's config (a copy
/// here would be one more per probe of a large fleet); start and apply are handed it.
pub struct Probes {
    docker: DockerEngine,
    bus: Bus,
    journal: Journal,
    archiver: crate::archive::Archiver,
    board: ProbeBoard,
    /// Each probe's status channel: what healers, the cascade and drills follow.
    feeds: ProbeFeeds,
    heal_board: HealBoard,
    /// The heartbeat probes' latest beats, which the public listener writes.
    heartbeats: probe::Heartbeats,
    runners: BTreeMap<String, Task>,
    healers: BTreeMap<String, (Task, Mailbox)>,
    /// Restarts dependants when a probe they depend on recovers; rebuilt on every reload.
    cascade: Option<Task>,
    /// Follows the engine's events while any container probe exists.
    docker_events: Option<Task>,
    /// Active silences by probe; re-announced when a probe restarts on reload.
    silences: BTreeMap<String, Timestamp>,
    /// Maintenance windows: a healer is held back until the later of its silence and the
    /// window covering it (the one gate, the healer's silence).
    maintenance: crate::maintenance::Windows,
    /// `[docker] discover`: the sighted containers and the discovered probes that run.
    discovered: Discovered,
    /// Follows the engine while discovery is on; its sightings go to the daemon's loop.
    follower: Option<Task>,
    /// The follower's channel: the daemon's loop takes the receiver once, at start, so
    /// discovery can be turned on by a reload.
    sightings: (mpsc::Sender<Sighting>, Option<mpsc::Receiver<Sighting>>),
    /// Recovery counts read from the journal at start, for probes discovered later.
    recoveries_at_start: BTreeMap<String, u64>,
    stop: CancellationToken,
}

/// What the probes share with the rest of the daemon.
pub struct Shared {
    pub docker: DockerEngine,
    pub bus: Bus,
    pub journal: Journal,
    pub archiver: crate::archive::Archiver,
    pub board: ProbeBoard,
    pub heal_board: HealBoard,
    pub heartbeats: probe::Heartbeats,
    pub maintenance: crate::maintenance::Windows,
    /// `[docker] discover` and `max_discovered`.
    pub discovery: (crate::docker::discovery::Settings, usize),
}

impl Probes {
    /// Start every probe of `config`, with recoveries and silences carried over from the journal.
    pub async fn start(config: &[ProbeConfig], shared: Shared, stop: CancellationToken) -> Self {
        let (settings, max) = shared.discovery;
        let (tx, rx) = mpsc::channel(256);
        let mut probes = Self {
            docker: shared.docker,
            bus: shared.bus,
            journal: shared.journal,
            archiver: shared.archiver,
            board: shared.board,
            feeds: ProbeFeeds::default(),
            heal_board: shared.heal_board,
            heartbeats: shared.heartbeats,
            runners: BTreeMap::new(),
            healers: BTreeMap::new(),
            cascade: None,
            docker_events: None,
            silences: BTreeMap::new(),
            maintenance: shared.maintenance,
            discovered: Discovered::new(settings, max),
            follower: None,
            sightings: (tx, Some(rx)),
            recoveries_at_start: BTreeMap::new(),
            stop,
        };
        let recoveries = probes.recoveries_from_journal().await;
        // Operator silences outlive a restart: a probe silenced for maintenance stays quiet.
        probes.silences = probes.silences_from_journal().await;
        for probe in config {
            let so_far = recoveries.get(probe.name()).copied().unwrap_or(0);
            probes
                .start_probe(probe, so_far, FirstCheck::Staggered)
                .await;
        }
        probes.recoveries_at_start = recoveries;
        probes.follow_containers().await;
        probes.follow_docker_events_if_needed(config).await;
        probes.restart_cascade(config).await;
        probes
    }

    /// The sightings of discovery, for the daemon's loop to hand back to [`Self::sighted`];
    /// None after the first call.
    pub fn take_sightings(&mut self) -> Option<mpsc::Receiver<Sighting>> {
        self.sightings.1.take()
    }

    /// (Re)start the follower while discovery is on, or stop it: a new follower lists every
    /// container first, so each is judged again under the current settings.
    async fn follow_containers(&mut self) {
        if let Some(task) = self.follower.take() {
            task.stop(super::SHUTDOWN_GRACE).await;
        }
        if self.discovered.is_on() {
            let (docker, bus, tx) = (
                self.docker.clone(),
                self.bus.clone(),
                self.sightings.0.clone(),
            );
            self.follower = Some(Task::spawn(&self.stop, |cancel| {
                crate::docker::sightings::follow(docker, bus, tx, cancel)
            }));
        }
    }

    /// `config` and the discovered probes: what the cascade and the notifier work from.
    pub fn with_discovered(&self, config: &[ProbeConfig]) -> Vec<ProbeConfig> {
        self.discovered.with(config)
    }

    pub fn discovering(&self) -> bool {
        self.discovered.is_on() || !self.discovered.running.is_empty()
    }

    /// Take the engine's news and start, change or stop discovered probes to match; true when
    /// the running set changed.
    pub async fn sighted(&mut self, sightings: Vec<Sighting>, config: &[ProbeConfig]) -> bool {
        for sighting in sightings {
            self.discovered.absorb(sighting, &self.bus);
        }
        let changed = self.reconcile_discovered(config).await;
        if changed {
            let all = self.with_discovered(config);
            self.follow_docker_events_if_needed(&all).await;
            self.restart_cascade(&all).await;
        }
        changed
    }

    /// Stop and start discovered probes so they match the sighted containers beside `config`.
    async fn reconcile_discovered(&mut self, config: &[ProbeConfig]) -> bool {
        let plan = self.discovered.plan(config);
        let changed = !plan.stop.is_empty() || !plan.start.is_empty();
        let mut carried = BTreeMap::new();
        for (name, reason) in plan.stop {
            if let Some(snapshot) = self.board.snapshot().into_iter().find(|s| s.name == name) {
                carried.insert(name.clone(), snapshot.recoveries_total);
                if let (Some(reason), Some(note)) = (reason, snapshot.discovered) {
                    self.bus.publish(EventKind::ProbeUndiscovered {
                        probe: name.clone(),
                        container: note.container,
                        container_id: note.container_id,
                        reason,
                    });
                }
            }
            if let Some(task) = self.runners.remove(&name) {
                task.stop(super::SHUTDOWN_GRACE).await;
            }
            if let Some((task, _)) = self.healers.remove(&name) {
                task.stop(super::SHUTDOWN_GRACE).await;
            }
            self.feeds.close(&name);
            tracing::info!(probe = %name, "discovered probe stopped");
        }
        for candidate in plan.start {
            let name = candidate.name.clone();
            let so_far = carried
                .get(&name)
                .or_else(|| self.recoveries_at_start.get(&name))
                .copied()
                .unwrap_or(0);
            self.start_probe(&candidate.probe, so_far, FirstCheck::Now)
                .await;
            let note = self.discovered.note(&candidate);
            self.board.update(&name, |s| s.discovered = Some(note));
            self.bus.publish(EventKind::ProbeDiscovered {
                probe: name.clone(),
                container: candidate.container.clone(),
                container_id: crate::docker::discovery::short_id(&candidate.container_id),
                from: candidate.from,
            });
            tracing::info!(probe = %name, container = %candidate.container, from = %candidate.from, "discovered probe started");
        }
        changed
    }

    pub fn feeds(&self) -> ProbeFeeds {
        self.feeds.clone()
    }

    /// Runners and healers whose task ended although they were not stopped.
    pub fn stopped(&self) -> Vec<String> {
        let runners = self
            .runners
            .iter()
            .filter(|(_, task)| task.handle.is_finished())
            .map(|(name, _)| format!("probe {name} runner"));
        let healers = self
            .healers
            .iter()
            .filter(|(_, (task, _))| task.handle.is_finished())
            .map(|(name, _)| format!("probe {name} healer"));
        runners.chain(healers).collect()
    }

    /// Silence a probe for `duration` (zero lifts it): told to its healer, announced on the bus
    /// (for notifiers and the record), shown in status. None if there is no such probe.
    pub fn silence(&mut self, probe: &str, duration: Duration) -> Option<Timestamp> {
        if !self.runners.contains_key(probe) {
            return None;
        }
        let until = Timestamp(Timestamp::now().as_millis() + duration.as_millis() as i64);
        if duration.is_zero() {
            self.silences.remove(probe);
        } else {
            self.silences.insert(probe.to_string(), until);
        }
        self.announce_silence(probe, until);
        if let Some((_, healer)) = self.healers.get(probe) {
            healer.silence(Some(self.mute_until(probe).unwrap_or(until)));
        }
        tracing::info!(probe, "silenced until {}", until.to_rfc3339());
        Some(until)
    }

    /// No healing before this: the later of the probe's silence and the maintenance window
    /// covering it now.
    fn mute_until(&self, probe: &str) -> Option<Timestamp> {
        let window = self
            .maintenance
            .covering(probe, Timestamp::now())
            .map(|cover| cover.until);
        self.silences.get(probe).copied().max(window)
    }

    /// Tell every healer what holds it back now (a maintenance window opened or ended).
    pub fn sync_mutes(&self) {
        for (name, (_, healer)) in &self.healers {
            healer.silence(self.mute_until(name));
        }
    }

    fn announce_silence(&self, probe: &str, until: Timestamp) {
        let active = (until > Timestamp::now()).then_some(until);
        self.board.update(probe, |s| s.silenced_until = active);
        self.bus.publish(EventKind::ProbeSilenced {
            probe: probe.to_string(),
            until,
        });
    }

    /// Pass an operator request to a probe's healer.
    pub async fn heal_command(
        &self,
        probe: &str,
        command: HealCommand,
    ) -> Result<(), CommandRefused> {
        match self.healers.get(probe) {
            Some((_, healer)) => healer
                .send(command)
                .await
                .map_err(|_| CommandRefused::HealerStopped(probe.to_string())),
            None if self.runners.contains_key(probe) => {
                Err(CommandRefused::NoHealAction(probe.to_string()))
            }
            None => Err(CommandRefused::NoSuchProbe(probe.to_string())),
        }
    }

    /// Start the probe's healer first, so it follows the probe's status from its first transition.
    async fn start_probe(&mut self, probe: &ProbeConfig, recoveries_total: u64, start: FirstCheck) {
        let (status, follower) = self.feeds.open(probe.name(), recoveries_total);
        if let Some(heal) = &probe.heal {
            let history = self
                .heal_history(probe.name(), heal.get_ref().window.get())
                .await;
            if let Some(mut spec) = HealerSpec::from_config(probe, &self.docker, history) {
                spec.evidence =
                    heal.get_ref()
                        .archive
                        .clone()
                        .map(|sources| crate::heal::Evidence {
                            archiver: self.archiver.clone(),
                            sources,
                        });
                if spec.remedy.is_some() {
                    spec.remedy_archiver = Some(self.archiver.clone());
                }
                let cancel = self.stop.child_token();
                let inputs = HealerInputs {
                    status: follower,
                    silenced_until: self.mute_until(probe.name()),
                };
                let (mailbox, handle) = crate::heal::spawn(
                    spec,
                    inputs,
                    self.bus.clone(),
                    self.heal_board.clone(),
                    cancel.clone(),
                );
                self.healers
                    .insert(probe.name().to_string(), (Task { cancel, handle }, mailbox));
            }
        }
        let cancel = self.stop.child_token();
        match probe::spawn(
            probe,
            &self.docker,
            &self.heartbeats,
            recoveries_total,
            status,
            self.bus.clone(),
            self.board.clone(),
            cancel.clone(),
            start,
        ) {
            Some(handle) => {
                self.runners
                    .insert(probe.name().to_string(), Task { cancel, handle });
                if let Some(until) = self.silences.get(probe.name()).copied() {
                    self.announce_silence(probe.name(), until);
                }
            }
            None => tracing::error!(
                probe = probe.name(),
                "probe config passed validation but cannot be built"
            ),
        }
    }

    /// Each probe's recovery count at its last journaled transition: one query at start, so
    /// the count survives a daemon restart without a scan per probe.
    async fn recoveries_from_journal(&self) -> BTreeMap<String, u64> {
        let query = EventQuery {
            kinds: vec!["probe_transition".into()],
            limit: EventQuery::MAX_LIMIT,
            ..Default::default()
        };
        let mut latest = BTreeMap::new();
        match self.journal.query(query).await {
            Ok(events) => {
                for event in events {
                    if let EventKind::ProbeTransition {
                        probe,
                        recoveries_total,
                        ..
                    } = event.event.kind
                    {
                        latest.insert(probe, recoveries_total);
                    }
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot read past transitions; recoveries start at 0")
            }
        }
        latest
    }

    /// The silences still in force, from the last `probe_silenced` of each probe.
    async fn silences_from_journal(&self) -> BTreeMap<String, Timestamp> {
        let query = EventQuery {
            kinds: vec!["probe_silenced".into()],
            limit: EventQuery::MAX_LIMIT,
            ..Default::default()
        };
        match self.journal.query(query).await {
            Ok(events) => super::silences::active_silences(&events, Timestamp::now()),
            Err(err) => {
                tracing::warn!(error = %err, "cannot read past silences; none restored");
                BTreeMap::new()
            }
        }
    }

    /// When this probe was healed within `window`, from the journal: the budget survives restarts.
    async fn heal_history(&self, probe: &str, window: Duration) -> Vec<Timestamp> {
        let query = EventQuery {
            since: Some(Timestamp::now().saturating_sub(window)),
            kinds: vec!["heal_started".into()],
            limit: EventQuery::MAX_LIMIT,
            ..Default::default()
        };
        match self.journal.query(query).await {
            Ok(events) => events
                .into_iter()
                .filter(|e| matches!(&e.event.kind, EventKind::HealStarted { probe: p, .. } if p == probe))
                .map(|e| e.event.at)
                .collect(),
            Err(err) => {
                tracing::warn!(probe, error = %err, "cannot read past heals; the budget starts full");
                Vec::new()
            }
        }
    }

    /// (Re)start the depends_on cascade with the current plan and healers.
    async fn restart_cascade(&mut self, config: &[ProbeConfig]) {
        if let Some(task) = self.cascade.take() {
            task.stop(super::SHUTDOWN_GRACE).await;
        }
        let plan = crate::heal::cascade::dependants_by_parent(config);
        if plan.is_empty() {
            return;
        }
        let healers = self
            .healers
            .iter()
            .map(|(name, (_, mailbox))| (name.clone(), mailbox.clone()))
            .collect();
        let (feeds, bus) = (self.feeds.clone(), self.bus.clone());
        self.cascade = Some(Task::spawn(&self.stop, |cancel| {
            crate::heal::cascade::run(plan, healers, feeds, bus, cancel)
        }));
    }

    /// Follow Docker events exactly while some probe watches a container (or discovery runs).
    async fn follow_docker_events_if_needed(&mut self, config: &[ProbeConfig]) {
        let needed =
            self.discovered.is_on() || config.iter().any(|p| p.kind() == config::ProbeKind::Docker);
        match (needed, self.docker_events.is_some()) {
            (true, false) => {
                let (docker, bus) = (self.docker.clone(), self.bus.clone());
                self.docker_events = Some(Task::spawn(&self.stop, |cancel| {
                    crate::docker::watch_events(docker, bus, cancel)
                }));
            }
            (false, true) => {
                if let Some(task) = self.docker_events.take() {
                    task.stop(super::SHUTDOWN_GRACE).await;
                }
            }
            _ => {}
        }
    }
}

impl Component for Probes {
    /// A changed probe restarts (with its healer), but keeps counting its recoveries.
    fn apply<'a>(&'a mut self, reload: &'a Reload<'a>) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let diff = reload.diff;
            let carried: BTreeMap<String, u64> = self
                .board
                .snapshot()
                .into_iter()
                .filter(|s| diff.probes_changed.contains(&s.name))
                .map(|s| (s.name, s.recoveries_total))
                .collect();
            for name in diff.probes_removed.iter().chain(&diff.probes_changed) {
                if let Some(task) = self.runners.remove(name) {
                    task.stop(super::SHUTDOWN_GRACE).await;
                }
                if let Some((task, _)) = self.healers.remove(name) {
                    task.stop(super::SHUTDOWN_GRACE).await;
                }
                self.feeds.close(name);
            }
            // `[docker]` discovery settings take effect without a restart.
            let (settings, max) = super::supervisor::discovery_settings(reload.config);
            if self.discovered.reconfigure(settings, max) {
                tracing::info!("discovery settings changed; listing the containers again");
                self.follow_containers().await;
            }
            // Discovered probes the new config claims stop before its probes start; those it
            // gave up start again.
            self.reconcile_discovered(&reload.config.probes).await;
            let starting: Vec<ProbeConfig> = reload
                .config
                .probes
                .iter()
                .filter(|p| {
                    diff.probes_added.iter().any(|n| n == p.name())
                        || diff.probes_changed.iter().any(|n| n == p.name())
                })
                .cloned()
                .collect();
            // A heartbeat probe that stays one keeps its latest beat, even when it restarts.
            let probes = &reload.config.probes;
            self.heartbeats.retain(|name| {
                probes
                    .iter()
                    .any(|p| p.name() == name && p.kind() == config::ProbeKind::Heartbeat)
            });
            for probe in &starting {
                let so_far = carried.get(probe.name()).copied().unwrap_or(0);
                self.start_probe(probe, so_far, FirstCheck::Staggered).await;
            }
            let all = self.with_discovered(&reload.config.probes);
            self.follow_docker_events_if_needed(&all).await;
            self.restart_cascade(&all).await;
        })
    }

    fn stop(&mut self, grace: Duration) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            for (_, task) in std::mem::take(&mut self.runners) {
                task.stop(grace).await;
            }
            for (_, (task, _)) in std::mem::take(&mut self.healers) {
                task.stop(grace).await;
            }
            if let Some(task) = self.docker_events.take() {
                task.stop(grace).await;
            }
            if let Some(task) = self.cascade.take() {
                task.stop(grace).await;
            }
            if let Some(task) = self.follower.take() {
                task.stop(grace).await;
            }
        })
    }
}
