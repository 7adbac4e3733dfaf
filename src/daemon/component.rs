//! `Component`: one area as the daemon runs it — built from the config at start, changed by a
//! reload's diff (prepare what can fail, then apply), stopped at shutdown — behind one trait.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::DaemonError;
use crate::ai::AiService;
use crate::archive::Archiver;
use crate::chaos::ChaosEngine;
use crate::config::{Config, ConfigDiff};
use crate::drill::DrillRunner;
use crate::http::{Access, PublicRoutes};
use crate::ingest::Ingest;
use crate::journal::Retention;
use crate::notify::Notifier;
use crate::tenants::TenantService;

/// What a reload brings a component: the config that will be in force and how it differs.
pub struct Reload<'a> {
    pub config: &'a Config,
    pub diff: &'a ConfigDiff,
}

/// One area of the running daemon. The supervisor prepares every component, then applies to
/// every one, so a refusal in `prepare` leaves the whole daemon on its old config.
pub trait Component: Send {
    /// Check or acquire what the new config needs and can fail on (a listener, tenant rules).
    /// Nothing that runs changes, except in the last component that can refuse (tenants).
    /// The notes join the reload report's changes.
    fn prepare<'a>(
        &'a mut self,
        reload: &'a Reload<'a>,
    ) -> BoxFuture<'a, Result<Vec<String>, DaemonError>> {
        let _ = reload;
        Box::pin(async { Ok(Vec::new()) })
    }

    /// Take the new config into use; cannot fail.
    fn apply<'a>(&'a mut self, reload: &'a Reload<'a>) -> BoxFuture<'a, ()>;

    /// Stop what runs, within `grace` per task.
    fn stop(&mut self, grace: Duration) -> BoxFuture<'_, ()>;
}

/// Reload `components` in order: every one prepares, and only if none refused does every one
/// apply. The notes of every prepare are returned for the reload report.
pub async fn reload(
    components: &mut [&mut dyn Component],
    reload: &Reload<'_>,
) -> Result<Vec<String>, DaemonError> {
    let mut notes = Vec::new();
    for component in components.iter_mut() {
        notes.extend(component.prepare(reload).await?);
    }
    for component in components.iter_mut() {
        component.apply(reload).await;
    }
    Ok(notes)
}

/// Stop `components`, the last started first.
pub async fn stop(components: &mut [&mut dyn Component], grace: Duration) {
    for component in components.iter_mut().rev() {
        component.stop(grace).await;
    }
}

/// A spawned task and the token that stops it.
pub struct Task {
    pub cancel: CancellationToken,
    pub handle: JoinHandle<()>,
}

impl Task {
    /// Spawn `run(cancel)` with a child of `parent`.
    pub fn spawn<F>(parent: &CancellationToken, run: impl FnOnce(CancellationToken) -> F) -> Self
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let cancel = parent.child_token();
        let handle = tokio::spawn(run(cancel.clone()));
        Self { cancel, handle }
    }

    pub async fn stop(self, grace: Duration) {
        self.cancel.cancel();
        if tokio::time::timeout(grace, self.handle).await.is_err() {
            tracing::warn!("a component did not stop within {grace:?}");
        }
    }
}

async fn stop_all(tasks: impl IntoIterator<Item = Task>, grace: Duration) {
    for task in tasks {
        task.stop(grace).await;
    }
}

/// `[notify]`: the outbox and its delivery.
pub struct Notify {
    pub notifier: Notifier,
    pub delivery: Option<Task>,
}

impl Component for Notify {
    fn apply<'a>(&'a mut self, reload: &'a Reload<'a>) -> BoxFuture<'a, ()> {
        self.notifier
            .configure(&reload.config.notify, &reload.config.probes);
        Box::pin(async {})
    }

    fn stop(&mut self, grace: Duration) -> BoxFuture<'_, ()> {
        Box::pin(stop_all(self.delivery.take(), grace))
    }
}

/// `[archive]`: evidence bundles before restarts, and their uploads.
pub struct Archive {
    pub archiver: Archiver,
    pub uploads: Option<Task>,
}

impl Component for Archive {
    fn apply<'a>(&'a mut self, reload: &'a Reload<'a>) -> BoxFuture<'a, ()> {
        self.archiver
            .configure(&reload.config.archive, &reload.config.probes);
        Box::pin(async {})
    }

    fn stop(&mut self, grace: Duration) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.archiver.finish_collections(grace).await;
            stop_all(self.uploads.take(), grace).await;
        })
    }
}

/// `[journal]`: the journal itself outlives every component; only its retention is reloaded.
pub struct JournalRetention {
    pub retention: watch::Sender<Retention>,
}

pub fn retention_of(config: &Config) -> Retention {
    Retention {
        max_age: config.journal.max_age.get(),
        max_events: config.journal.max_events,
    }
}

impl Component for JournalRetention {
    fn apply<'a>(&'a mut self, reload: &'a Reload<'a>) -> BoxFuture<'a, ()> {
        if reload.diff.journal_changed {
            let _ = self.retention.send(retention_of(reload.config));
        }
        Box::pin(async {})
    }

    fn stop(&mut self, _grace: Duration) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// `[tenants]`: the detector, ingest limits and the alert loop.
pub struct Tenants {
    pub tenants: TenantService,
    pub ingest: Ingest,
    pub alerts: Option<Task>,
    /// Tenant snapshots around chaos experiments.
    pub snapshots: Option<JoinHandle<()>>,
    pub snapshots_stop: CancellationToken,
}

impl Component for Tenants {
    fn prepare<'a>(
        &'a mut self,
        reload: &'a Reload<'a>,
    ) -> BoxFuture<'a, Result<Vec<String>, DaemonError>> {
        let result = match reload.diff.tenants_changed {
            true => super::tenants::apply(&reload.config.tenants, &self.tenants, &self.ingest)
                .map_err(DaemonError::from),
            false => Ok(Vec::new()),
        };
        Box::pin(async { result })
    }

    fn apply<'a>(&'a mut self, _reload: &'a Reload<'a>) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }

    fn stop(&mut self, grace: Duration) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.snapshots_stop.cancel();
            if let Some(snapshots) = self.snapshots.take() {
                let _ = snapshots.await;
            }
            stop_all(self.alerts.take(), grace).await;
        })
    }
}

/// `/metrics`' collector.
pub struct Metrics {
    pub collector: Option<Task>,
}

impl Component for Metrics {
    fn apply<'a>(&'a mut self, _reload: &'a Reload<'a>) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }

    fn stop(&mut self, grace: Duration) -> BoxFuture<'_, ()> {
        Box::pin(stop_all(self.collector.take(), grace))
    }
}

/// `[http]`: the public listener; it moves, starts or stops when `enabled` or `listen` change,
/// and who may read what changes in place.
pub struct Http {
    pub routes: PublicRoutes,
    pub served: Option<(SocketAddr, Task)>,
    /// Bound by `prepare`, served by `apply`.
    pub pending: Option<TcpListener>,
    pub stop: CancellationToken,
}

impl Http {
    pub async fn bind(address: SocketAddr) -> Result<TcpListener, DaemonError> {
        TcpListener::bind(address)
            .await
            .map_err(|source| DaemonError::Listen { address, source })
    }

    /// Serve `listener`, if any.
    pub fn serve(&mut self, listener: Option<TcpListener>) {
        let Some(listener) = listener else { return };
        let Ok(address) = listener.local_addr() else {
            return;
        };
        let routes = self.routes.clone();
        let task = Task::spawn(&self.stop, |cancel| {
            crate::http::serve(listener, routes, cancel)
        });
        tracing::info!(%address, "public listener on http://{address}");
        self.served = Some((address, task));
    }

    fn address(&self) -> Option<SocketAddr> {
        self.served.as_ref().map(|(address, _)| *address)
    }

    fn access(&self) -> &Access {
        &self.routes.access
    }
}

impl Component for Http {
    fn prepare<'a>(
        &'a mut self,
        reload: &'a Reload<'a>,
    ) -> BoxFuture<'a, Result<Vec<String>, DaemonError>> {
        // A listener bound for a reload that another component refused is let go here.
        self.pending = None;
        Box::pin(async move {
            let http = &reload.config.http;
            if reload.diff.http_changed && http.enabled && self.address() != Some(http.listen) {
                self.pending = Some(Self::bind(http.listen).await?);
            }
            Ok(Vec::new())
        })
    }

    fn apply<'a>(&'a mut self, reload: &'a Reload<'a>) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let http = &reload.config.http;
            if reload.diff.http_access_changed {
                self.access().configure(http.access_settings());
            }
            let pending = self.pending.take();
            if reload.diff.http_changed {
                let keep = http.enabled && self.address() == Some(http.listen);
                if !keep {
                    if let Some((_, task)) = self.served.take() {
                        task.stop(super::SHUTDOWN_GRACE).await;
                    }
                    self.serve(pending);
                }
            }
        })
    }

    fn stop(&mut self, grace: Duration) -> BoxFuture<'_, ()> {
        self.pending = None;
        Box::pin(stop_all(self.served.take().map(|(_, task)| task), grace))
    }
}

/// `[chaos]`: the engine (recovered before the socket serves) and the halts it watches for.
pub struct Chaos {
    pub engine: ChaosEngine,
    pub halts: Option<Task>,
}

impl Component for Chaos {
    fn apply<'a>(&'a mut self, reload: &'a Reload<'a>) -> BoxFuture<'a, ()> {
        self.engine.configure(reload.config.chaos.settings());
        Box::pin(async {})
    }

    /// Running experiments are rolled back before anything else stops.
    fn stop(&mut self, grace: Duration) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.engine.shutdown().await;
            stop_all(self.halts.take(), grace).await;
        })
    }
}

/// `[[drill]]`: a running drill keeps its steps; shutdown aborts it and rolls it back. The
/// scheduler reads the drills' schedules from the runner at each tick, so a reload needs
/// nothing of it; it stops first, so no scheduled run starts during shutdown.
pub struct Drills {
    pub runner: DrillRunner,
    pub scheduler: Option<Task>,
}

impl Component for Drills {
    fn apply<'a>(&'a mut self, reload: &'a Reload<'a>) -> BoxFuture<'a, ()> {
        self.runner.configure(reload.config.drills());
        Box::pin(async {})
    }

    fn stop(&mut self, grace: Duration) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            stop_all(self.scheduler.take(), grace).await;
            self.runner.shutdown().await;
        })
    }
}

/// `[ai]`: summaries on request; nothing runs between requests.
pub struct Ai {
    pub service: AiService,
}

impl Component for Ai {
    fn apply<'a>(&'a mut self, reload: &'a Reload<'a>) -> BoxFuture<'a, ()> {
        self.service.configure(reload.config.ai.settings());
        Box::pin(async {})
    }

    fn stop(&mut self, _grace: Duration) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use crate::tenants::TenantsError;

    use super::*;

    /// Records what the supervisor asked of it; refuses to prepare when told to.
    struct Fake {
        name: &'static str,
        refuse: bool,
        log: Arc<Mutex<Vec<String>>>,
    }

    impl Fake {
        fn note(&self, what: &str) {
            self.log
                .lock()
                .unwrap()
                .push(format!("{what} {}", self.name));
        }
    }

    impl Component for Fake {
        fn prepare<'a>(
            &'a mut self,
            _reload: &'a Reload<'a>,
        ) -> BoxFuture<'a, Result<Vec<String>, DaemonError>> {
            self.note("prepare");
            let refuse = self.refuse;
            let name = self.name;
            Box::pin(async move {
                match refuse {
                    true => Err(DaemonError::from(TenantsError::InvalidConfig {
                        field: "window",
                        message: format!("{name} refused"),
                    })),
                    false => Ok(vec![format!("{name} ready")]),
                }
            })
        }

        fn apply<'a>(&'a mut self, _reload: &'a Reload<'a>) -> BoxFuture<'a, ()> {
            self.note("apply");
            Box::pin(async {})
        }

        fn stop(&mut self, _grace: Duration) -> BoxFuture<'_, ()> {
            self.note("stop");
            Box::pin(async {})
        }
    }

    fn fakes(refusing: Option<&str>) -> (Vec<Fake>, Arc<Mutex<Vec<String>>>) {
        let log = Arc::new(Mutex::new(Vec::new()));
        let fakes = ["http", "tenants", "probes"]
            .into_iter()
            .map(|name| Fake {
                name,
                refuse: refusing == Some(name),
                log: log.clone(),
            })
            .collect();
        (fakes, log)
    }

    #[tokio::test]
    async fn every_component_prepares_before_any_applies_and_stops_in_reverse() {
        let (config, diff) = (Config::default(), ConfigDiff::default());
        let change = Reload {
            config: &config,
            diff: &diff,
        };
        let (mut fakes, log) = fakes(None);
        let mut components: Vec<&mut dyn Component> =
            fakes.iter_mut().map(|f| f as &mut dyn Component).collect();
        let notes = reload(&mut components, &change).await.unwrap();
        assert_eq!(notes, ["http ready", "tenants ready", "probes ready"]);
        stop(&mut components, Duration::from_secs(1)).await;
        assert_eq!(
            *log.lock().unwrap(),
            [
                "prepare http",
                "prepare tenants",
                "prepare probes",
                "apply http",
                "apply tenants",
                "apply probes",
                "stop probes",
                "stop tenants",
                "stop http",
            ]
        );
    }

    #[tokio::test]
    async fn a_refusal_applies_nothing() {
        let (config, diff) = (Config::default(), ConfigDiff::default());
        let change = Reload {
            config: &config,
            diff: &diff,
        };
        let (mut fakes, log) = fakes(Some("tenants"));
        let mut components: Vec<&mut dyn Component> =
            fakes.iter_mut().map(|f| f as &mut dyn Component).collect();
        let refused = reload(&mut components, &change).await.unwrap_err();
        assert_eq!(
            refused.to_string(),
            "[tenants]: tenant detector config: tenants refused"
        );
        assert_eq!(*log.lock().unwrap(), ["prepare http", "prepare tenants"]);
    }
}
