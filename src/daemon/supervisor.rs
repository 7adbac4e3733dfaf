//! `Supervisor`: the one owner of the daemon's components — started from the config in order,
//! reloaded as a diff (every component prepares, then every one applies), stopped in reverse.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::checkin::Checkin;
use super::component::{
    self, Ai, Archive, Chaos, Component, Drills, Http, JournalRetention, Metrics, Notify, Reload,
    Task, Tenants,
};
use super::probes::{Probes, Shared};
use super::DaemonError;
use crate::api::{CommandRefused, DaemonInfo, ReloadOutcome, ReloadReport};
use crate::config::{self, Config, ConfigDiff, LoadedConfig};
use crate::docker::sightings::Sighting;
use crate::docker::DockerEngine;
use crate::drill::{DrillRun, DrillRunner};
use crate::event::{Bus, EventKind, Timestamp};
use crate::heal::{HealBoard, HealCommand};
use crate::http::PublicRoutes;
use crate::ingest::Ingest;
use crate::journal::{Journal, Retention};
use crate::metrics::MetricsView;
use crate::probe::{ProbeBoard, ProbeState};
use crate::tenants::TenantService;

pub use crate::event::ReloadTrigger;

/// What `run` opened before the components: they outlive them (the journal) or had to act
/// before the control socket served (the chaos engine's recovery, the drills' history).
pub struct Opened {
    pub journal: Journal,
    pub bus: Bus,
    pub retention: watch::Sender<Retention>,
    pub info: watch::Sender<DaemonInfo>,
    pub socket_gid: u32,
    pub chaos: crate::chaos::ChaosEngine,
    pub past_drills: Vec<DrillRun>,
}

pub struct Supervisor {
    /// The config in force: the file's content, except `[daemon]`, which keeps its start value.
    config: Config,
    hash: String,
    bus: Bus,
    info: watch::Sender<DaemonInfo>,
    board: ProbeBoard,
    heal_board: HealBoard,
    // The components, in start order (see `components`).
    notify: Notify,
    archive: Archive,
    retention: JournalRetention,
    metrics: Metrics,
    http: Http,
    tenants: Tenants,
    probes: Probes,
    chaos: Chaos,
    drills: Drills,
    ai: Ai,
    checkin: Checkin,
    /// The supervisor's report on its components, for the check-in; sent every second.
    health: watch::Sender<crate::checkin::SupervisorReport>,
    maintenance: super::maintenance::Maintenance,
}

impl Supervisor {
    pub async fn start(
        loaded: LoadedConfig,
        opened: Opened,
        stop: CancellationToken,
    ) -> Result<Self, DaemonError> {
        let Opened {
            journal,
            bus,
            retention,
            info,
            socket_gid,
            chaos,
            past_drills,
        } = opened;
        let config = &loaded.config;
        let state_dir = info.borrow().state_dir.clone();
        let board = ProbeBoard::default();
        let heal_board = HealBoard::default();

        let maintenance =
            super::maintenance::Maintenance::start(config, &journal, &bus, &stop).await;
        let notifier = crate::notify::Notifier::open(&state_dir, &config.notify, &config.probes)?;
        notifier.follow_maintenance(maintenance.windows.clone());
        let delivery_stop = stop.child_token();
        let notify = Notify {
            delivery: Some(Task {
                handle: notifier.spawn(&bus, delivery_stop.clone()),
                cancel: delivery_stop,
            }),
            notifier,
        };

        let docker = DockerEngine::new(&config.docker.socket);
        let archiver = crate::archive::Archiver::open(
            &state_dir,
            &config.archive,
            &config.probes,
            crate::archive::Ownership::group(socket_gid),
            docker.clone(),
            bus.clone(),
        )?;
        let uploads = {
            let archiver = archiver.clone();
            Task::spawn(&stop, |cancel| archiver.run_uploads(cancel))
        };
        let archive = Archive {
            archiver: archiver.clone(),
            uploads: Some(uploads),
        };

        let (tenant_service, ingest) = (TenantService::default(), Ingest::default());
        let notes = super::tenants::apply(&config.tenants, &tenant_service, &ingest)?;
        tenant_service.restore_mutes(super::tenants::mutes_from_journal(&journal).await);
        for note in notes {
            tracing::info!("{note}");
        }
        let alerts = {
            let (tenants, bus) = (tenant_service.clone(), bus.clone());
            Task::spawn(&stop, |cancel| tenants.run_alerts(bus, cancel))
        };
        let snapshots_stop = stop.child_token();
        let snapshots = super::experiments::spawn_tenant_snapshots(
            &bus,
            tenant_service.clone(),
            snapshots_stop.clone(),
        );
        let tenants = Tenants {
            tenants: tenant_service.clone(),
            ingest: ingest.clone(),
            alerts: Some(alerts),
            snapshots: Some(snapshots),
            snapshots_stop,
        };

        let status_page = crate::status_page::StatusPage::new(
            board.clone(),
            journal.clone(),
            tenant_service.clone(),
            maintenance.windows.clone(),
        );
        let metrics_view = MetricsView::new(board.clone(), heal_board.clone())
            .with_source(Arc::new(tenant_service.clone()))
            .with_source(Arc::new(ingest.clone()))
            .with_source(Arc::new(status_page.clone()));
        let collector = {
            let (view, bus) = (metrics_view.clone(), bus.clone());
            Task::spawn(&stop, move |cancel| view.collect(&bus, cancel))
        };
        let metrics = Metrics {
            collector: Some(collector),
        };

        let heartbeats = crate::probe::Heartbeats::default();
        let access = crate::http::Access::default();
        access.configure(config.http.access_settings());
        let mut http = Http {
            routes: PublicRoutes {
                metrics: metrics_view,
                ingest,
                tenants: tenant_service,
                status_page,
                access,
                heartbeats: heartbeats.clone(),
            },
            served: None,
            pending: None,
            stop: stop.clone(),
        };
        let listener = match config.http.enabled {
            true => Some(Http::bind(config.http.listen).await?),
            false => None,
        };
        http.serve(listener);

        let (health, reports) = watch::channel(crate::checkin::SupervisorReport::now(Vec::new()));
        let checkin = Checkin::start(
            config,
            crate::checkin::Inputs {
                journal: journal.clone(),
                board: board.clone(),
                reports,
            },
            &stop,
        );
        let shared = Shared {
            docker,
            bus: bus.clone(),
            journal,
            archiver,
            board: board.clone(),
            heal_board: heal_board.clone(),
            heartbeats,
            maintenance: maintenance.windows.clone(),
            discovery: discovery_settings(config),
        };
        let probes = Probes::start(&config.probes, shared, stop.clone()).await;

        let halts = {
            let chaos = chaos.clone();
            let cancel = stop.child_token();
            Task {
                handle: chaos.watch_halts(cancel.clone()),
                cancel,
            }
        };
        let runner = DrillRunner::new(
            chaos.clone(),
            bus.clone(),
            (board.clone(), probes.feeds(), heal_board.clone()),
            config.drills(),
        );
        runner.remember(past_drills);
        let scheduler = {
            let scheduler = crate::drill::schedule::Scheduler::new(
                runner.clone(),
                maintenance.windows.clone(),
                bus.clone(),
            );
            Task::spawn(&stop, |cancel| scheduler.run(cancel))
        };
        let service = crate::ai::AiService::default();
        service.configure(config.ai.settings());

        Ok(Self {
            config: loaded.config,
            hash: loaded.hash,
            bus,
            info,
            board,
            heal_board,
            notify,
            archive,
            retention: JournalRetention { retention },
            tenants,
            metrics,
            http,
            probes,
            chaos: Chaos {
                engine: chaos,
                halts: Some(halts),
            },
            drills: Drills {
                runner,
                scheduler: Some(scheduler),
            },
            ai: Ai { service },
            checkin,
            health,
            maintenance,
        })
    }

    /// Every component in start order: reload goes through them in this order, shutdown in
    /// the reverse. Adding an area means adding it here (and to `start`). Of the two that can
    /// refuse a reload, the listener binds before tenants change, as tenants apply as they check.
    fn components(&mut self) -> [&mut dyn Component; 12] {
        [
            &mut self.notify,
            &mut self.archive,
            &mut self.retention,
            &mut self.metrics,
            &mut self.http,
            &mut self.tenants,
            &mut self.probes,
            &mut self.chaos,
            &mut self.drills,
            &mut self.ai,
            &mut self.checkin,
            &mut self.maintenance,
        ]
    }

    /// Tell the check-in which tasks ended while they should run (none, when healthy).
    pub fn report_health(&self) {
        let finished = |task: &Option<Task>| task.as_ref().is_some_and(|t| t.handle.is_finished());
        let mut stopped: Vec<String> = [
            ("notify delivery", finished(&self.notify.delivery)),
            ("archive uploads", finished(&self.archive.uploads)),
            ("metrics collector", finished(&self.metrics.collector)),
            (
                "public listener",
                self.http
                    .served
                    .as_ref()
                    .is_some_and(|(_, t)| t.handle.is_finished()),
            ),
            ("tenant alerts", finished(&self.tenants.alerts)),
            ("chaos halts", finished(&self.chaos.halts)),
            ("maintenance tick", self.maintenance.stopped()),
            ("drill scheduler", finished(&self.drills.scheduler)),
        ]
        .into_iter()
        .filter(|(_, ended)| *ended)
        .map(|(name, _)| name.to_string())
        .collect();
        stopped.extend(self.probes.stopped());
        self.health
            .send_replace(crate::checkin::SupervisorReport::now(stopped));
    }

    pub fn board(&self) -> ProbeBoard {
        self.board.clone()
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
                    trigger,
                    error: error.to_string(),
                });
                ReloadReport {
                    at: Timestamp::now(),
                    trigger,
                    outcome: ReloadOutcome::Rejected,
                    config_hash: None,
                    error: Some(error.to_string()),
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
    ) -> Result<ReloadReport, DaemonError> {
        let loaded = config::load(path)?;
        let mut report = ReloadReport {
            at: Timestamp::now(),
            trigger,
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
        // Process-wide settings stay as started (the daemon's, the Docker socket); the report
        // says a restart is needed. Discovery's settings are taken.
        new_config.daemon = self.config.daemon.clone();
        new_config.docker.socket = self.config.docker.socket.clone();

        // Prepare everything that can fail, in every component, before anything changes.
        let reload = Reload {
            config: &new_config,
            diff: &diff,
        };
        let notes = component::reload(&mut self.components(), &reload).await?;

        self.config = new_config;
        self.hash = loaded.hash.clone();
        if self.probes.discovering() {
            // The notifier and the windows were given the file's probes; the discovered ones
            // count too.
            self.discovered_changed();
        }
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
        report.outcome = ReloadOutcome::Applied;
        report.changes = diff.changes();
        report.changes.extend(notes);
        report.restart_required = diff.restart_required.clone();
        tracing::info!(
            trigger = trigger.as_str(),
            changes = ?report.changes,
            restart_required = ?report.restart_required,
            "config applied"
        );
        self.bus.publish(EventKind::ConfigApplied {
            config_hash: loaded.hash,
            trigger,
            changes: report.changes.clone(),
            restart_required: report.restart_required.clone(),
        });
        Ok(report)
    }

    pub fn tenants(&self) -> TenantService {
        self.tenants.tenants.clone()
    }

    pub fn heal_board(&self) -> HealBoard {
        self.heal_board.clone()
    }

    pub fn archiver(&self) -> crate::archive::Archiver {
        self.archive.archiver.clone()
    }

    pub fn notifier(&self) -> crate::notify::Notifier {
        self.notify.notifier.clone()
    }

    pub fn chaos(&self) -> crate::chaos::ChaosEngine {
        self.chaos.engine.clone()
    }

    pub fn drills(&self) -> DrillRunner {
        self.drills.runner.clone()
    }

    pub fn ai(&self) -> crate::ai::AiService {
        self.ai.service.clone()
    }

    /// Discovery's sightings, for the daemon's loop (None when `[docker] discover` is off).
    pub fn take_sightings(&mut self) -> Option<tokio::sync::mpsc::Receiver<Sighting>> {
        self.probes.take_sightings()
    }

    /// Start, change or stop discovered probes after what the engine said.
    pub async fn sighted(&mut self, sightings: Vec<Sighting>) {
        if self.probes.sighted(sightings, &self.config.probes).await {
            self.discovered_changed();
        }
    }

    /// Tell the notifier (dependants, channels) and the maintenance windows (label scopes)
    /// about the discovered probes beside the file's.
    fn discovered_changed(&mut self) {
        let all = self.probes.with_discovered(&self.config.probes);
        self.notify.notifier.configure(&self.config.notify, &all);
        self.maintenance.windows.set_probes(&all);
    }

    /// Silence a probe for `duration` (zero lifts it).
    pub fn silence(
        &mut self,
        probe: &str,
        duration: Duration,
    ) -> Result<Timestamp, CommandRefused> {
        self.probes
            .silence(probe, duration)
            .ok_or_else(|| CommandRefused::NoSuchProbe(probe.to_string()))
    }

    pub fn maintenance(&self) -> crate::maintenance::Windows {
        self.maintenance.windows.clone()
    }

    /// A maintenance window opened or ended: tell every healer what holds it back now.
    pub fn sync_maintenance(&self) {
        self.probes.sync_mutes();
    }

    /// Pass an operator request to a probe's healer.
    pub async fn heal_command(
        &self,
        probe: &str,
        command: HealCommand,
    ) -> Result<(), CommandRefused> {
        self.probes.heal_command(probe, command).await
    }

    /// Stop every component, the last started first: a drill and the chaos engine roll back
    /// before the probes stop, and evidence is written before the notifier stops.
    pub async fn stop(mut self, grace: Duration) {
        component::stop(&mut self.components(), grace).await;
    }
}

/// What discovery works from (`mode` Off: nothing is discovered), and `max_discovered`.
pub(super) fn discovery_settings(config: &Config) -> (crate::docker::discovery::Settings, usize) {
    let docker = &config.docker;
    let settings = crate::docker::discovery::Settings {
        mode: docker.discover,
        defaults: docker.defaults.clone(),
        archive_sources: config
            .archive
            .sources
            .iter()
            .map(|s| s.name.get_ref().clone())
            .collect(),
        only: docker.only(),
    };
    (settings, docker.max_discovered as usize)
}

#[cfg(test)]
mod tests {
    use crate::api::ReloadReport;
    use crate::event::ReloadTrigger;

    /// The report's `trigger` is the typed word, written as the string field was
    /// (`GET /v1/status`'s `last_reload.trigger`), and a word no trigger has is refused.
    #[test]
    fn reload_report_trigger_is_a_typed_word() {
        let json = r#"{"at":0,"trigger":"file-change","outcome":"applied","config_hash":"ab","error":null,"changes":[],"restart_required":[]}"#;
        let report: ReloadReport =
            crate::event::fixture::assert_closed_word(json, "file-change", "cron");
        assert_eq!(report.trigger, ReloadTrigger::FileChange);
    }
}
