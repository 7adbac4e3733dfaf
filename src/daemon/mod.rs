//! The daemon: `run` opens what frames the components (rollback, journal, control socket, signals,
//! sd_notify READY/RELOADING/STOPPING/WATCHDOG); `Supervisor` starts, reloads and stops the areas.

mod checkin;
mod component;
#[cfg(debug_assertions)]
mod debug_flood;
#[cfg(debug_assertions)]
mod debug_panic;
mod discovery;
mod experiments;
mod maintenance;
mod notify;
mod paths;
mod probes;
mod rollback;
mod silences;
mod socket;
mod state;
mod supervisor;
mod tenants;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::api::{self, ApiState, ControlCommand, DaemonInfo, SystemAccounts};
use crate::chaos::{ChaosEngine, ChaosError, LinuxHost};
use crate::config::{self, ConfigError, ConfigWatcher};
use crate::event::{Bus, EventKind, Timestamp};
use crate::journal::{Journal, JournalError};
pub use notify::{watchdog_interval, Notifier};
pub use paths::RuntimePaths;
pub use rollback::{rollback, RollbackOutcome};
use supervisor::{Opened, ReloadTrigger, Supervisor};

#[derive(Debug, Error)]
pub enum DaemonError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot use directory {path}: {source}")]
    Directory {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot create control socket {path}: {source}")]
    Socket {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{} is running on state directory {}; it rolls back its own experiments (sentinelctl chaos stop), or stop it first",
        holder(.pid),
        .state_dir.display()
    )]
    StateBusy {
        state_dir: PathBuf,
        /// From the lock file; unknown while the holder is still writing it.
        pid: Option<u32>,
    },
    #[error("cannot use {path}: {source}")]
    StateFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("another sentineld is already listening on {path}")]
    AlreadyRunning { path: PathBuf },
    #[error("{path} exists and is not a socket; refusing to replace it")]
    SocketPathTaken { path: PathBuf },
    #[error("cannot listen on {address}: {source}")]
    Listen {
        address: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("cannot install signal handler: {source}")]
    Signal { source: std::io::Error },
    #[error("[tenants]: {source}")]
    Tenants {
        #[from]
        source: crate::tenants::TenantsError,
    },
    #[error(transparent)]
    Chaos(#[from] ChaosError),
    #[error("[archive]: {0}")]
    Archive(#[from] crate::archive::ArchiveError),
    #[error("[notify]: {0}")]
    Notify(#[from] crate::notify::NotifyError),
}

fn holder(pid: &Option<u32>) -> String {
    match pid {
        Some(pid) => format!("sentineld (pid {pid})"),
        None => "another sentineld".to_string(),
    }
}

/// How long shutdown waits for components to finish before giving up on them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Quiet time after a file-change notification before reloading: editors write in several steps.
const FILE_CHANGE_SETTLE: Duration = Duration::from_millis(250);

/// Resolves on the first SIGTERM or SIGINT: the shutdown both sentineld and the agent wait for.
/// Call it inside the runtime; the handlers are installed before it returns.
pub fn termination_signal() -> std::io::Result<impl Future<Output = ()>> {
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => tracing::info!("SIGTERM received"),
            _ = interrupt.recv() => tracing::info!("SIGINT received"),
        }
    })
}

/// Run the daemon with the config at `config_path` until `shutdown` completes.
pub async fn run(
    config_path: PathBuf,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DaemonError> {
    // Installed first: SIGHUP's default action ends the process, and a reload asked for while
    // sentineld starts (once the socket answers, say) must wait for the loop, not kill it.
    let mut hangup =
        signal(SignalKind::hangup()).map_err(|source| DaemonError::Signal { source })?;
    let is_root = nix::unistd::geteuid().is_root();
    // First undo what a crash left, whether or not the config can be read or is valid: the
    // state directory and the chaos settings come from what the text allows and from the last
    // accepted config. The lock, held until exit, keeps a second daemon (or rollback) out.
    let source = match config::read_source(&config_path) {
        Ok(source) => source,
        Err(err) => {
            // No config to read (a wrong path, say): roll back only where a journal already is,
            // creating nothing, then say what is wrong with the config.
            match rollback::rollback(&config_path, None).await {
                Ok(outcome) if !outcome.recovery.is_empty() => tracing::warn!(
                    "rolled back what an earlier run left: {}",
                    outcome.lines().join("; ")
                ),
                Ok(_) => {}
                Err(rollback_err) => {
                    tracing::error!("cannot roll back what an earlier run left: {rollback_err}")
                }
            }
            return Err(err.into());
        }
    };
    let mut notes = Vec::new();
    let (state_dir, _state_lock) = rollback::at_start(Some(&source), is_root, &mut notes).await?;
    let loaded = config::from_source(&config_path, source)?;
    let socket = paths::socket(&loaded.config.daemon, is_root, &mut notes)?;
    let runtime_paths = RuntimePaths {
        state_dir,
        socket,
        notes,
    };
    let (accepted_dir, accepted) = (runtime_paths.state_dir.clone(), loaded.source.clone());
    let remembered = crate::panic_policy::run_blocking(move || {
        state::remember_accepted(&accepted_dir, &accepted)
    })
    .await;
    if let Err(err) = remembered {
        tracing::warn!("{err}; a rollback after a crash would use the previous accepted config");
    }
    let notifier = Notifier::from_env();
    let bus = Bus::new();
    #[cfg(debug_assertions)]
    debug_panic::arm(&bus);
    #[cfg(debug_assertions)]
    debug_flood::arm(&bus);

    // The journal outlives every other component so their last events are stored.
    let journal_stop = CancellationToken::new();
    let (retention_tx, retention_rx) = watch::channel(component::retention_of(&loaded.config));
    let (journal, journal_task) = Journal::start(
        &runtime_paths.state_dir,
        &bus,
        retention_rx,
        journal_stop.clone(),
    )?;

    // Before the socket serves. `rollback::at_start` already undid what the journal holds, with
    // the last accepted settings; this pass finds nothing of that left, and sweeps orphans that
    // carry the qdisc handle of the config now in force (a restart may have changed it).
    let chaos = start_chaos(&loaded.config, &runtime_paths.state_dir, &bus)?;
    chaos.recover().await;
    let past_drills = drill_history(&journal, &bus).await;

    let bound = socket::bind(
        &runtime_paths.socket,
        loaded.config.daemon.socket_mode_bits(),
        &loaded.config.daemon.socket_group,
    )?;
    let mut notes = runtime_paths.notes.clone();
    notes.extend(bound.notes);
    for note in &notes {
        tracing::warn!("{note}");
    }

    let components_stop = CancellationToken::new();
    let (info_tx, info_rx) = watch::channel(DaemonInfo {
        version: env!("CARGO_PKG_VERSION").to_string(),
        pid: std::process::id(),
        started_at: Timestamp::now(),
        config_path: config_path.clone(),
        config_hash: loaded.hash.clone(),
        state_dir: runtime_paths.state_dir.clone(),
        socket: runtime_paths.socket.clone(),
        notes,
        last_reload: None,
    });
    let opened = Opened {
        journal: journal.clone(),
        bus: bus.clone(),
        retention: retention_tx,
        info: info_tx,
        socket_gid: bound.gid,
        chaos,
        past_drills,
    };
    let mut supervisor = Supervisor::start(loaded, opened, components_stop.clone()).await?;

    let (command_tx, mut command_rx) = mpsc::channel::<ControlCommand>(8);
    let api_state = ApiState {
        info: info_rx,
        probes: supervisor.board(),
        heals: supervisor.heal_board(),
        journal,
        bus: bus.clone(),
        commands: command_tx,
        socket_gid: bound.gid,
        accounts: Arc::new(SystemAccounts),
        tenants: supervisor.tenants(),
        chaos: supervisor.chaos(),
        ai: supervisor.ai(),
        archiver: supervisor.archiver(),
        notifier: supervisor.notifier(),
        drills: supervisor.drills(),
        maintenance: supervisor.maintenance(),
    };
    let api_task = tokio::spawn(api::serve(
        bound.listener,
        api_state,
        components_stop.clone(),
    ));

    let (file_tx, mut file_rx) = mpsc::channel::<()>(1);
    let mut watcher = match ConfigWatcher::start(&config_path, file_tx) {
        Ok(watcher) => Some(watcher),
        Err(err) => {
            tracing::warn!(error = %err, "config file changes will not be noticed; use SIGHUP or sentinelctl reload");
            None
        }
    };
    refresh_watch(&mut watcher, supervisor.config());

    let info = supervisor.info();
    bus.publish(EventKind::DaemonStarted {
        version: info.version.clone(),
        config_path: config_path.display().to_string(),
        config_hash: info.config_hash.clone(),
    });
    tracing::info!(
        socket = %runtime_paths.socket.display(),
        state_dir = %runtime_paths.state_dir.display(),
        config = %config_path.display(),
        "sentineld {} running",
        info.version
    );
    notifier.ready(&supervisor.status_line());

    let watchdog_period = notifier
        .watchdog_interval()
        .map(|interval| interval / 2)
        .unwrap_or(Duration::from_secs(3600));
    let mut watchdog = tokio::time::interval(watchdog_period);
    // The supervisor's word on its components, for the `[heartbeat]` check-in: sent from this
    // loop, so a loop that stops turning (a stuck reload) is seen as well.
    let mut health_report = tokio::time::interval(Duration::from_secs(1));
    health_report.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // A maintenance window opened or ended: the healers hear of it here.
    let mut maintenance_changes = supervisor.maintenance().changes();
    tokio::pin!(shutdown);
    // Discovery's sightings (quiet while `[docker] discover` is off; a reload can turn it on).
    let mut sightings = supervisor
        .take_sightings()
        .unwrap_or_else(|| mpsc::channel(1).1);
    loop {
        let trigger = tokio::select! {
            _ = &mut shutdown => break,
            _ = watchdog.tick() => {
                if notifier.watchdog_interval().is_some() {
                    notifier.watchdog();
                }
                continue;
            }
            _ = health_report.tick() => {
                supervisor.report_health();
                continue;
            }
            Ok(()) = maintenance_changes.changed() => {
                supervisor.sync_maintenance();
                continue;
            }
            _ = hangup.recv() => ReloadTrigger::Signal,
            Some(()) = file_rx.recv() => {
                // Let the editor finish; fold the burst of notifications into one reload.
                tokio::time::sleep(FILE_CHANGE_SETTLE).await;
                while file_rx.try_recv().is_ok() {}
                ReloadTrigger::FileChange
            }
            Some(sighting) = sightings.recv() => {
                // A burst (a compose project starting) is applied as one change.
                let mut batch = vec![sighting];
                while let Ok(more) = sightings.try_recv() {
                    batch.push(more);
                }
                supervisor.sighted(batch).await;
                continue;
            }
            Some(command) = command_rx.recv() => match command {
                ControlCommand::Reload { reply } => {
                    let report = reload(&mut supervisor, &notifier, ReloadTrigger::Api).await;
                    let _ = reply.send(report);
                    refresh_watch(&mut watcher, supervisor.config());
                    continue;
                }
                ControlCommand::Silence { probe, duration, reply } => {
                    let _ = reply.send(supervisor.silence(&probe, duration));
                    continue;
                }
                ControlCommand::Heal { probe, command, reply } => {
                    let _ = reply.send(supervisor.heal_command(&probe, command).await);
                    continue;
                }
            },
        };
        reload(&mut supervisor, &notifier, trigger).await;
        refresh_watch(&mut watcher, supervisor.config());
    }

    tracing::info!("shutting down");
    notifier.stopping();
    bus.publish(EventKind::DaemonStopping {
        reason: "signal".into(),
    });
    // Mutating calls from now on are answered 503 (shutting down); reads answer until the end.
    drop(command_rx);
    // The drill first (it records why it ended and rolls back its own experiment), then the
    // chaos engine, then the rest, the last started first.
    supervisor.stop(SHUTDOWN_GRACE).await;
    components_stop.cancel();
    if tokio::time::timeout(SHUTDOWN_GRACE, api_task)
        .await
        .is_err()
    {
        tracing::warn!("control socket did not close in time");
    }
    journal_stop.cancel();
    if tokio::time::timeout(SHUTDOWN_GRACE, journal_task)
        .await
        .is_err()
    {
        tracing::warn!("journal did not finish writing in time");
    }
    let _ = std::fs::remove_file(&runtime_paths.socket);
    tracing::info!("stopped");
    Ok(())
}

async fn reload(
    supervisor: &mut Supervisor,
    notifier: &Notifier,
    trigger: ReloadTrigger,
) -> api::ReloadReport {
    notifier.reloading();
    let report = supervisor.reload(trigger).await;
    notifier.ready(&supervisor.status_line());
    report
}

/// Earlier daemons' drill runs from the journal; a `drill_finished` (aborted) is journaled for
/// each run a crash left unfinished.
async fn drill_history(journal: &Journal, bus: &Bus) -> Vec<crate::drill::DrillRun> {
    use crate::drill::history;
    let query = crate::journal::EventQuery {
        kinds: history::DRILL_KINDS.map(String::from).to_vec(),
        limit: crate::journal::EventQuery::MAX_LIMIT,
        ..Default::default()
    };
    let events = match journal.query(query).await {
        Ok(events) => events,
        Err(err) => {
            tracing::warn!(error = %err, "cannot read past drills");
            return Vec::new();
        }
    };
    let mut runs = history::runs_from_journal(&events);
    for finished in history::close_interrupted(&mut runs, Timestamp::now()) {
        tracing::warn!("{}", finished.summary());
        bus.publish(finished);
    }
    runs
}

/// The chaos engine on this host's kernel; the capability probe runs here, once.
fn start_chaos(
    config: &config::Config,
    state_dir: &std::path::Path,
    bus: &Bus,
) -> Result<ChaosEngine, DaemonError> {
    let docker = crate::docker::DockerEngine::new(&config.docker.socket);
    let host = LinuxHost::new(
        config.chaos.cgroup_root.clone(),
        config.chaos.handle_major(),
        docker.clone(),
    )
    .with_state_dir(state_dir.to_path_buf());
    for capability in crate::chaos::ChaosHost::capabilities(&host) {
        tracing::info!("chaos capability {}", capability.line());
    }
    let settings = config.chaos.settings();
    Ok(ChaosEngine::open(
        state_dir,
        Arc::new(host),
        settings,
        bus.clone(),
        docker,
    )?)
}

/// Follow the config file's symlink chain and the secret files the config in force names.
fn refresh_watch(watcher: &mut Option<ConfigWatcher>, config: &config::Config) {
    if let Some(watcher) = watcher {
        let secrets = config
            .secret_files()
            .into_iter()
            .map(|(_, file)| file.path().to_path_buf())
            .collect();
        if let Err(err) = watcher.watch_secret_files(secrets) {
            tracing::warn!(error = %err, "cannot follow the config file's new location");
        }
    }
}
