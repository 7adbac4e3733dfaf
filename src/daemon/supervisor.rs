//! `Supervisor`: the running components built from the effective config, and reload as a
//! diff — prepare everything that can fail first, then swap, so a failed reload changes nothing.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::DaemonError;
use crate::api::{DaemonInfo, ReloadOutcome, ReloadReport};
use crate::config::{self, Config, ConfigDiff, LoadedConfig};
use crate::docker::DockerEngine;
use crate::event::{Bus, EventKind, Timestamp};
use crate::heal::{HealBoard, HealCommand, HealerInputs, HealerSpec, Mailbox};
use crate::http::PublicRoutes;
use crate::ingest::Ingest;
use crate::journal::Retention;
use crate::journal::{EventQuery, Journal};
use crate::metrics::MetricsView;
use crate::probe::{self, ProbeBoard, ProbeFeeds, ProbeState};
use crate::tenants::TenantService;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadTrigger {
    Api,
    Signal,
    FileChange,
}

impl ReloadTrigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Signal => "sighup",
            Self::FileChange => "file-change",
        }
    }
}

pub fn retention_of(config: &Config) -> Retention {
    Retention {
        max_age: config.journal.max_age.get(),
        max_events: config.journal.max_events,
    }
}

struct Task {
    cancel: CancellationToken,
    handle: JoinHandle<()>,
}

impl Task {
    async fn stop(self, grace: Duration) {
        self.cancel.cancel();
        if tokio::time::timeout(grace, self.handle).await.is_err() {
            tracing::warn!("a component did not stop within {grace:?}");
        }
    }
}

pub struct Supervisor {
    /// The config in force: the file's content, except `[daemon]`, which keeps its start value.
    config: Config,
    hash: String,
    bus: Bus,
    board: ProbeBoard,
    /// Each probe's status channel: what healers, the cascade and drills follow.
    feeds: ProbeFeeds,
    probes: BTreeMap<String, Task>,
    http: Option<(SocketAddr, Task)>,
    /// Who may read `/metrics` and the status page; changed in place on reload.
    access: crate::http::Access,
    /// The status page and the journal facts it keeps between requests.
    status_page: crate::status_page::StatusPage,
    docker: DockerEngine,
    /// Follows the engine's events while any container probe exists.
    docker_events: Option<Task>,
    journal: Journal,
    metrics: MetricsView,
    metrics_task: Task,
    tenants: TenantService,
    ingest: Ingest,
    /// Ranks tenants once per bucket and publishes alert changes.
    tenant_alerts: Task,
    heal_board: HealBoard,
    healers: BTreeMap<String, (Task, Mailbox)>,
    /// Restarts dependants when a probe they depend on recovers; rebuilt on every reload.
    cascade: Option<Task>,
    /// Active silences by probe; re-announced when a probe restarts on reload.
    silences: BTreeMap<String, Timestamp>,
    retention: watch::Sender<Retention>,
    info: watch::Sender<DaemonInfo>,
    stop: CancellationToken,
    /// Evidence bundles before restarts, and their uploads.
    archiver: crate::archive::Archiver,
    archive_uploads: Task,
    /// The notification outbox and its delivery.
    notifier: crate::notify::Notifier,
    notifications: Task,
}

impl Supervisor {
    pub async fn start(
        loaded: LoadedConfig,
        journal: Journal,
        bus: Bus,
        retention: watch::Sender<Retention>,
        info: watch::Sender<DaemonInfo>,
        socket_gid: u32,
        stop: CancellationToken,
    ) -> Result<Self, DaemonError> {
        let board = ProbeBoard::default();
        let heal_board = HealBoard::default();
        let (tenants, ingest) = (TenantService::default(), Ingest::default());
        let notes = super::tenants::apply(&loaded.config.tenants, &tenants, &ingest)
            .map_err(DaemonError::Tenants)?;
        for note in notes {
            tracing::info!("{note}");
        }
        let status_page =
            crate::status_page::StatusPage::new(board.clone(), journal.clone(), tenants.clone());
        let metrics = MetricsView::new(board.clone(), heal_board.clone())
            .with_source(Arc::new(tenants.clone()))
            .with_source(Arc::new(ingest.clone()))
            .with_source(Arc::new(status_page.clone()));
        let alerts_cancel = stop.child_token();
        let tenant_alerts = Task {
            handle: tokio::spawn(
                tenants
                    .clone()
                    .run_alerts(bus.clone(), alerts_cancel.clone()),
            ),
            cancel: alerts_cancel,
        };
        let metrics_cancel = stop.child_token();
        let metrics_task = Task {
            handle: tokio::spawn(metrics.collect(&bus, metrics_cancel.clone())),
            cancel: metrics_cancel,
        };
        let state_dir = info.borrow().state_dir.clone();
        let docker = DockerEngine::new(&loaded.config.docker.socket);
        let archiver = crate::archive::Archiver::open(
            &state_dir,
            &loaded.config,
            crate::archive::Ownership::group(socket_gid),
            docker.clone(),
            bus.clone(),
        )?;
        let uploads_cancel = stop.child_token();
        let archive_uploads = Task {
            handle: tokio::spawn(archiver.clone().run_uploads(uploads_cancel.clone())),
            cancel: uploads_cancel,
        };
        let notifier = crate::notify::Notifier::open(&state_dir, &loaded.config)?;
        let notify_cancel = stop.child_token();
        let notifications = Task {
            handle: notifier.spawn(&bus, notify_cancel.clone()),
            cancel: notify_cancel,
        };
        let mut supervisor = Self {
            config: Config::default(),
            hash: loaded.hash,
            bus,
            board,
            feeds: ProbeFeeds::default(),
            probes: BTreeMap::new(),
            http: None,
            access: crate::http::Access::default(),
            status_page,
            docker,
            docker_events: None,
            journal,
            metrics,
            metrics_task,
            tenants,
            ingest,
            tenant_alerts,
            heal_board,
            healers: BTreeMap::new(),
            silences: BTreeMap::new(),
            cascade: None,
            retention,
            info,
            stop,
            archiver,
            archive_uploads,
            notifier,
            notifications,
        };
        supervisor
            .access
            .configure(loaded.config.http.access_settings());
        let listener = match loaded.config.http.enabled {
            true => Some(bind_http(loaded.config.http.listen).await?),
            false => None,
        };
        supervisor.start_http(listener);
        let recoveries = supervisor.recoveries_from_journal().await;
        // Operator silences outlive a restart: a probe silenced for maintenance stays quiet.
        supervisor.silences = supervisor.silences_from_journal().await;
        for probe in &loaded.config.probes {
            let so_far = recoveries.get(probe.name()).copied().unwrap_or(0);
            supervisor.start_probe(probe, so_far).await;
        }
        supervisor.config = loaded.config;
        supervisor.follow_docker_events_if_needed().await;
        supervisor.restart_cascade().await;
        Ok(supervisor)
    }

    pub fn board(&self) -> ProbeBoard {
        self.board.clone()
    }

    pub fn feeds(&self) -> ProbeFeeds {
        self.feeds.clone()
    }

    /// The config in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn info(&self) -> DaemonInfo {
        self.info.borrow().clone()
    }

    /// The STATUS= line for systemd: what runs and how it is doing.
    pub fn status_line(&self) -> String {
        let snapshots = self.board.snapshot();
        let down = snapshots
            .iter()
            .filter(|s| s.state == ProbeState::Down)
            .count();
        let plural = if snapshots.len() == 1 { "" } else { "s" };
        format!(
            "Running: {} probe{plural}, {down} down; config {}",
            snapshots.len(),
            &self.hash[..12.min(self.hash.len())]
        )
    }

    pub async fn reload(&mut self, trigger: ReloadTrigger) -> ReloadReport {
        let path = self.info.borrow().config_path.clone();
        let report = match self.try_reload(&path, trigger).await {
            Ok(report) => report,
            Err(error) => {
                tracing::error!(
                    trigger = trigger.as_str(),
                    "config rejected, keeping the running one: {error}"
                );
                self.bus.publish(EventKind::ConfigRejected {
                    trigger: trigger.as_str().into(),
                    error: error.clone(),
                });
                ReloadReport {
                    at: Timestamp::now(),
                    trigger: trigger.as_str().into(),
                    outcome: ReloadOutcome::Rejected,
                    config_hash: None,
                    error: Some(error),
                    changes: vec![],
                    restart_required: vec![],
                }
            }
        };
        self.info.send_modify(|info| {
            info.config_hash = self.hash.clone();
            info.last_reload = Some(report.clone());
        });
        report
    }

    async fn try_reload(
        &mut self,
        path: &Path,
        trigger: ReloadTrigger,
    ) -> Result<ReloadReport, String> {
        let loaded = config::load(path).map_err(|e| e.to_string())?;
        let mut report = ReloadReport {
            at: Timestamp::now(),
            trigger: trigger.as_str().into(),
            outcome: ReloadOutcome::Unchanged,
            config_hash: Some(loaded.hash.clone()),
            error: None,
            changes: vec![],
            restart_required: vec![],
        };
        let mut new_config = loaded.config;
        let diff = ConfigDiff::between(&self.config, &new_config);
        // The same file can still bring news: a secret file it names was rotated.
        if loaded.hash == self.hash && diff.changes().is_empty() {
            tracing::info!(trigger = trigger.as_str(), "config unchanged");
            return Ok(report);
        }
        let source = loaded.source;
        // Process-wide settings stay as started; the report says a restart is needed.
        new_config.daemon = self.config.daemon.clone();
        new_config.docker = self.config.docker.clone();

        // Prepare: the only step that can fail is binding a new listener, so do it first.
        let new_listener = match (diff.http_changed, new_config.http.enabled) {
            (true, true) if self.http.as_ref().map(|(a, _)| *a) != Some(new_config.http.listen) => {
                Some(
                    bind_http(new_config.http.listen)
                        .await
                        .map_err(|e| e.to_string())?,
                )
            }
            _ => None,
        };
        let mut tenant_notes = Vec::new();
        if diff.tenants_changed {
            tenant_notes = super::tenants::apply(&new_config.tenants, &self.tenants, &self.ingest)?;
        }

        // Apply.
        self.archiver.configure(&new_config);
        self.notifier.configure(&new_config);
        if diff.journal_changed {
            let _ = self.retention.send(retention_of(&new_config));
        }
        if diff.http_access_changed {
            self.access.configure(new_config.http.access_settings());
        }
        if diff.http_changed {
            let keep = new_config.http.enabled
                && self.http.as_ref().map(|(a, _)| *a) == Some(new_config.http.listen);
            if !keep {
                if let Some((_, task)) = self.http.take() {
                    task.stop(super::SHUTDOWN_GRACE).await;
                }
                self.start_http(new_listener);
            }
        }
        // A changed probe restarts, but keeps counting its recoveries.
        let carried: BTreeMap<String, u64> = self
            .board
            .snapshot()
            .into_iter()
            .filter(|s| diff.probes_changed.contains(&s.name))
            .map(|s| (s.name, s.recoveries_total))
            .collect();
        for name in diff.probes_removed.iter().chain(&diff.probes_changed) {
            if let Some(task) = self.probes.remove(name) {
                task.stop(super::SHUTDOWN_GRACE).await;
            }
            if let Some((task, _)) = self.healers.remove(name) {
                task.stop(super::SHUTDOWN_GRACE).await;
            }
            self.feeds.close(name);
        }
        let starting: Vec<config::ProbeConfig> = new_config
            .probes
            .iter()
            .filter(|p| {
                diff.probes_added.iter().any(|n| n == p.name())
                    || diff.probes_changed.iter().any(|n| n == p.name())
            })
            .cloned()
            .collect();
        for probe in &starting {
            let so_far = carried.get(probe.name()).copied().unwrap_or(0);
            self.start_probe(probe, so_far).await;
        }

        self.config = new_config;
        self.hash = loaded.hash.clone();
        let state_dir = self.info.borrow().state_dir.clone();
        let remembered = crate::panic_policy::run_blocking(move || {
            super::state::remember_accepted(&state_dir, &source)
        })
        .await;
        if let Err(err) = remembered {
            tracing::warn!(
                "{err}; a rollback after a crash would use the previous accepted config"
            );
        }
        self.follow_docker_events_if_needed().await;
        self.restart_cascade().await;
        report.outcome = ReloadOutcome::Applied;
        report.changes = diff.changes();
        report.changes.extend(tenant_notes);
        report.restart_required = diff.restart_required.clone();
        tracing::info!(
            trigger = trigger.as_str(),
            changes = ?report.changes,
            restart_required = ?report.restart_required,
            "config applied"
        );
        self.bus.publish(EventKind::ConfigApplied {
            config_hash: loaded.hash,
            trigger: trigger.as_str().into(),
            changes: report.changes.clone(),
            restart_required: report.restart_required.clone(),
        });
        Ok(report)
    }

    pub fn tenants(&self) -> TenantService {
        self.tenants.clone()
    }

    pub fn heal_board(&self) -> HealBoard {
        self.heal_board.clone()
    }

    /// Silence a probe for `duration` (zero lifts it): announced on the bus for the healer
    /// (and notifiers), shown in status.
    pub fn silence(&mut self, probe: &str, duration: Duration) -> Result<Timestamp, String> {
        if !self.probes.contains_key(probe) {
            return Err(format!("no such probe: {probe}"));
        }
        let until = Timestamp(Timestamp::now().as_millis() + duration.as_millis() as i64);
        if duration.is_zero() {
            self.silences.remove(probe);
        } else {
            self.silences.insert(probe.to_string(), until);
        }
        self.announce_silence(probe, until);
        if let Some((_, healer)) = self.healers.get(probe) {
            healer.silence(Some(until));
        }
        tracing::info!(probe, "silenced until {}", until.to_rfc3339());
        Ok(until)
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
    pub async fn heal_command(&self, probe: &str, command: HealCommand) -> Result<(), String> {
        match self.healers.get(probe) {
            Some((_, healer)) => healer
                .send(command)
                .await
                .map_err(|_| format!("the healer of {probe} has stopped")),
            None if self.probes.contains_key(probe) => {
                Err(format!("probe {probe} has no heal action configured"))
            }
            None => Err(format!("no such probe: {probe}")),
        }
    }

    /// Start the probe's healer first, so it follows the probe's status from its first transition.
    async fn start_probe(&mut self, probe: &config::ProbeConfig, recoveries_total: u64) {
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
                let cancel = self.stop.child_token();
                let inputs = HealerInputs {
                    status: follower,
                    silenced_until: self.silences.get(probe.name()).copied(),
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
            recoveries_total,
            status,
            self.bus.clone(),
            self.board.clone(),
            cancel.clone(),
        ) {
            Some(handle) => {
                self.probes
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
    async fn restart_cascade(&mut self) {
        if let Some(task) = self.cascade.take() {
            task.stop(super::SHUTDOWN_GRACE).await;
        }
        let plan = crate::heal::cascade::dependants_by_parent(&self.config.probes);
        if plan.is_empty() {
            return;
        }
        let healers = self
            .healers
            .iter()
            .map(|(name, (_, mailbox))| (name.clone(), mailbox.clone()))
            .collect();
        let cancel = self.stop.child_token();
        let handle = tokio::spawn(crate::heal::cascade::run(
            plan,
            healers,
            self.feeds.clone(),
            self.bus.clone(),
            cancel.clone(),
        ));
        self.cascade = Some(Task { cancel, handle });
    }

    /// Follow Docker events exactly while some probe watches a container.
    async fn follow_docker_events_if_needed(&mut self) {
        let needed = self
            .config
            .probes
            .iter()
            .any(|p| p.kind() == config::ProbeKind::Docker);
        match (needed, self.docker_events.is_some()) {
            (true, false) => {
                let cancel = self.stop.child_token();
                let handle = tokio::spawn(crate::docker::watch_events(
                    self.docker.clone(),
                    self.bus.clone(),
                    cancel.clone(),
                ));
                self.docker_events = Some(Task { cancel, handle });
            }
            (false, true) => {
                if let Some(task) = self.docker_events.take() {
                    task.stop(super::SHUTDOWN_GRACE).await;
                }
            }
            _ => {}
        }
    }

    fn start_http(&mut self, listener: Option<TcpListener>) {
        let Some(listener) = listener else { return };
        let Ok(address) = listener.local_addr() else {
            return;
        };
        let cancel = self.stop.child_token();
        let routes = PublicRoutes {
            metrics: self.metrics.clone(),
            ingest: self.ingest.clone(),
            tenants: self.tenants.clone(),
            status_page: self.status_page.clone(),
            access: self.access.clone(),
        };
        let handle = tokio::spawn(crate::http::serve(listener, routes, cancel.clone()));
        tracing::info!(%address, "public listener on http://{address}");
        self.http = Some((address, Task { cancel, handle }));
    }

    /// Stop every component (the caller already cancelled the shared token).
    pub async fn stop(self, grace: Duration) {
        for (_, task) in self.probes {
            task.stop(grace).await;
        }
        for (_, (task, _)) in self.healers {
            task.stop(grace).await;
        }
        if let Some((_, task)) = self.http {
            task.stop(grace).await;
        }
        if let Some(task) = self.docker_events {
            task.stop(grace).await;
        }
        if let Some(task) = self.cascade {
            task.stop(grace).await;
        }
        self.metrics_task.stop(grace).await;
        self.tenant_alerts.stop(grace).await;
        self.archiver.finish_collections(grace).await;
        self.archive_uploads.stop(grace).await;
        self.notifications.stop(grace).await;
    }

    pub fn archiver(&self) -> crate::archive::Archiver {
        self.archiver.clone()
    }

    pub fn notifier(&self) -> crate::notify::Notifier {
        self.notifier.clone()
    }
}

async fn bind_http(address: SocketAddr) -> Result<TcpListener, DaemonError> {
    TcpListener::bind(address)
        .await
        .map_err(|source| DaemonError::Listen { address, source })
}
