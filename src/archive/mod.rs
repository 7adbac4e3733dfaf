//! Evidence first: before a heal restarts something, collect its logs and state into one bundle
//! in the local spool, then ship it to S3 or a directory in the background, retrying until done.

mod bundle;
mod collect;
mod evidence;
mod ledger;
mod s3;
mod sink;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use thiserror::Error;
use tokio::sync::{oneshot, Notify};
use tokio_util::sync::CancellationToken;

pub use bundle::{Manifest, ManifestFile, SpooledBundle};
pub use collect::{host_path, SourcePlan};
pub use evidence::{ContainerApi, Mount, Postgres, SqlApi};
pub(crate) use ledger::open_table;
pub use ledger::{ArchiveRecord, UploadState};
pub use s3::S3Sink;
pub use sink::{plan_quota, LocalSink, QuotaPlan, Sink, Upload};

use crate::config::{Config, ProbeConfig, SourceKind, SourceSection};
use crate::docker::DockerEngine;
use crate::event::{Bus, EventKind, Timestamp};
use crate::probe::AnyProbe;

#[derive(Debug, Error)]
pub enum ArchiveError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A source could not deliver (container gone, database down, path not mounted).
    #[error("{0}")]
    Source(String),
    #[error("archive ledger (journal database) {0}")]
    Ledger(String),
    #[error("upload failed: {0}")]
    Upload(String),
}

/// The settings in force, swapped whole on reload.
struct Settings {
    spool_dir: PathBuf,
    quota: u64,
    timeout: Duration,
    max_retry_delay: Duration,
    sink: Sink,
    sources: Vec<SourceSection>,
    probes: Vec<ProbeConfig>,
}

impl Settings {
    fn from_config(config: &Config, state_dir: &Path, previous: Option<&Settings>) -> Self {
        let section = &config.archive;
        let mut sink = match (&section.s3, &section.local) {
            (Some(s3), _) => Sink::S3(Box::new(S3Sink::new(s3))),
            (None, Some(local)) => Sink::Local(LocalSink {
                dir: local.dir.clone(),
            }),
            (None, None) => Sink::Local(LocalSink {
                dir: state_dir.join("archive/bundles"),
            }),
        };
        // Keep the S3 client (and its loaded credentials) when its settings did not change.
        if let (Sink::S3(new), Some(Sink::S3(old))) = (&sink, previous.map(|p| &p.sink)) {
            if new.same_settings(old) {
                sink = Sink::S3(old.clone());
            }
        }
        Self {
            spool_dir: section
                .spool_dir
                .clone()
                .unwrap_or_else(|| state_dir.join("archive/spool")),
            quota: section.spool_quota.bytes(),
            timeout: section.timeout.get_ref().get(),
            max_retry_delay: section.max_retry_delay.get(),
            sink,
            sources: section.sources.clone(),
            probes: config.probes.clone(),
        }
    }
}

/// What a healer asks for before it acts.
#[derive(Debug, Clone)]
pub struct CaptureRequest {
    pub probe: String,
    /// The container being restarted, if the heal restarts one.
    pub container: Option<String>,
    pub sources: Vec<String>,
    /// The probe's failure reason (`refused`, `timeout`, ...).
    pub reason: Option<String>,
    pub down_at: Option<Timestamp>,
}

/// The archive service: cheap to clone, shared by healers, the uploader and the API.
#[derive(Clone)]
pub struct Archiver {
    inner: Arc<Inner>,
}

struct Inner {
    state_dir: PathBuf,
    settings: RwLock<Arc<Settings>>,
    ledger: Mutex<ledger::Ledger>,
    docker: DockerEngine,
    bus: Bus,
    wake: Notify,
}

impl Archiver {
    /// Open the ledger in the journal database under `state_dir`.
    pub fn open(
        state_dir: &Path,
        config: &Config,
        docker: DockerEngine,
        bus: Bus,
    ) -> Result<Self, ArchiveError> {
        let ledger = ledger::Ledger::open(&state_dir.join(crate::journal::DATABASE_FILE))?;
        Ok(Self {
            inner: Arc::new(Inner {
                state_dir: state_dir.to_path_buf(),
                settings: RwLock::new(Arc::new(Settings::from_config(config, state_dir, None))),
                ledger: Mutex::new(ledger),
                docker,
                bus,
                wake: Notify::new(),
            }),
        })
    }

    /// Apply a reloaded config (sources, sink, quota); bundles already spooled keep their place.
    pub fn configure(&self, config: &Config) {
        let mut slot = self
            .inner
            .settings
            .write()
            .unwrap_or_else(|p| p.into_inner());
        *slot = Arc::new(Settings::from_config(
            config,
            &self.inner.state_dir,
            Some(&slot),
        ));
        drop(slot);
        self.inner.wake.notify_one();
    }

    fn settings(&self) -> Arc<Settings> {
        Arc::clone(
            &self
                .inner
                .settings
                .read()
                .unwrap_or_else(|p| p.into_inner()),
        )
    }

    async fn ledger<T: Send + 'static>(
        &self,
        work: impl FnOnce(&ledger::Ledger) -> Result<T, ArchiveError> + Send + 'static,
    ) -> Result<T, ArchiveError> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            work(&inner.ledger.lock().unwrap_or_else(|p| p.into_inner()))
        })
        .await
        .map_err(|err| ArchiveError::Ledger(format!("task panicked: {err}")))?
    }

    /// Bundles newest first, for `sentinelctl archives`.
    pub async fn list(&self, limit: usize) -> Result<Vec<ArchiveRecord>, ArchiveError> {
        self.ledger(move |ledger| ledger.list(limit)).await
    }

    /// Collect and spool evidence; returns once the bundle is on local disk or the archive
    /// timeout passed (journaled as `archive_failed` stage `timeout`; collection continues).
    pub async fn capture(&self, request: CaptureRequest) {
        let settings = self.settings();
        let target = request.container.clone().unwrap_or(request.probe.clone());
        let name = self.unused_name(&settings.spool_dir, &target);
        self.inner.bus.publish(EventKind::ArchiveStarted {
            probe: request.probe.clone(),
            bundle: name.clone(),
            sources: request.sources.clone(),
        });
        let (done_tx, done) = oneshot::channel();
        let this = self.clone();
        let (probe, bundle) = (request.probe.clone(), name.clone());
        tokio::spawn(async move {
            let result = this.collect_and_spool(&request, &name, &target).await;
            if let Err(err) = &result {
                tracing::error!(probe = %request.probe, bundle = %name, "evidence not spooled: {err}");
                this.inner.bus.publish(EventKind::ArchiveFailed {
                    probe: request.probe.clone(),
                    bundle: name.clone(),
                    stage: "spool".into(),
                    error: err.to_string(),
                    will_retry: false,
                });
            }
            let _ = done_tx.send(());
        });
        if tokio::time::timeout(settings.timeout, done).await.is_err() {
            let waited = humantime::format_duration(settings.timeout);
            tracing::warn!(
                probe,
                bundle,
                "evidence not spooled within {waited}; healing anyway"
            );
            self.inner.bus.publish(EventKind::ArchiveFailed {
                probe,
                bundle,
                stage: "timeout".into(),
                error: format!(
                    "not on local disk within the archive timeout ({waited}); the restart went ahead and collection continues"
                ),
                will_retry: true,
            });
        }
    }

    fn unused_name(&self, spool: &Path, target: &str) -> String {
        let base = bundle::bundle_name(Timestamp::now(), target);
        let mut name = base.clone();
        let mut n = 2;
        while spool.join(format!("{name}.tar.gz")).exists() {
            name = format!("{base}-{n}");
            n += 1;
        }
        name
    }

    async fn collect_and_spool(
        &self,
        request: &CaptureRequest,
        name: &str,
        target: &str,
    ) -> Result<SpooledBundle, ArchiveError> {
        let settings = self.settings();
        let started = Timestamp::now();
        let plans = plan_sources(&settings, request, &self.inner.docker);
        let (entries, problems) =
            collect::collect(&self.inner.docker, &evidence::Postgres, &plans).await;
        for problem in &problems {
            tracing::warn!(probe = %request.probe, source = %problem.source, "evidence source: {}", problem.error);
        }
        let manifest = Manifest {
            bundle: name.to_string(),
            probe: request.probe.clone(),
            target: target.to_string(),
            failure_reason: request.reason.clone(),
            down_at: request.down_at.map(Timestamp::to_rfc3339),
            collected_from: started.to_rfc3339(),
            collected_to: Timestamp::now().to_rfc3339(),
            sentineld_version: env!("CARGO_PKG_VERSION").to_string(),
            files: bundle::describe(&entries),
            problems,
        };
        let spool = settings.spool_dir.clone();
        let spooled =
            tokio::task::spawn_blocking(move || bundle::write(&spool, &manifest, &entries))
                .await
                .map_err(|err| ArchiveError::Source(format!("bundle writer panicked: {err}")))??;
        let destination = settings.sink.destination(name);
        let record = ArchiveRecord {
            name: spooled.name.clone(),
            probe: request.probe.clone(),
            target: target.to_string(),
            created_at: started,
            path: spooled.path.clone(),
            manifest_path: spooled.manifest_path.clone(),
            bytes: spooled.bytes,
            sha256: spooled.sha256.clone(),
            state: UploadState::Pending,
            destination: destination.clone(),
            location: None,
            attempts: 0,
            next_attempt_at: None,
            last_error: None,
            uploaded_at: None,
        };
        self.ledger(move |ledger| ledger.insert(&record)).await?;
        tracing::info!(probe = %request.probe, bundle = %name, bytes = spooled.bytes, "evidence spooled at {}", spooled.path.display());
        self.inner.bus.publish(EventKind::ArchiveSpooled {
            probe: request.probe.clone(),
            bundle: name.to_string(),
            path: spooled.path.display().to_string(),
            bytes: spooled.bytes,
            sha256: spooled.sha256.clone(),
            destination,
        });
        self.inner.wake.notify_one();
        Ok(spooled)
    }

    /// Upload pending bundles (now and after every restart) with backoff, and keep the spool
    /// within its quota, until `cancel`.
    pub async fn run_uploads(self, cancel: CancellationToken) {
        let mut over_quota_alerted = false;
        loop {
            let now = Timestamp::now();
            match self.ledger(move |ledger| ledger.due(now)).await {
                Ok(due) => {
                    for record in due {
                        if cancel.is_cancelled() {
                            return;
                        }
                        self.upload_one(record).await;
                    }
                }
                Err(err) => tracing::error!("cannot read pending uploads: {err}"),
            }
            self.enforce_quota(&mut over_quota_alerted).await;
            let next = self.ledger(|ledger| ledger.next_due()).await.ok().flatten();
            let wait = next.map_or(Duration::from_secs(60), |at| {
                Duration::from_millis(
                    (at.as_millis() - Timestamp::now().as_millis()).clamp(0, 60_000) as u64,
                )
            });
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = self.inner.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    async fn upload_one(&self, record: ArchiveRecord) {
        let settings = self.settings();
        let upload = Upload::from(&record);
        let result = settings.sink.upload(&upload).await;
        let name = record.name.clone();
        match result {
            Ok(location) => {
                tracing::info!(bundle = %name, "evidence uploaded to {location}");
                let stored = location.clone();
                let (n, at) = (name.clone(), Timestamp::now());
                if let Err(err) = self.ledger(move |l| l.mark_uploaded(&n, &stored, at)).await {
                    tracing::error!("cannot record upload of {name}: {err}");
                }
                self.inner.bus.publish(EventKind::ArchiveUploaded {
                    probe: record.probe,
                    bundle: name,
                    location,
                    bytes: record.bytes,
                });
            }
            Err(err) => {
                let delay = retry_delay(record.attempts + 1, settings.max_retry_delay);
                let next = Timestamp(Timestamp::now().as_millis() + delay.as_millis() as i64);
                tracing::warn!(bundle = %name, attempt = record.attempts + 1, "{err}; retrying in {}", humantime::format_duration(delay));
                let (n, text) = (name.clone(), err.to_string());
                if let Err(err) = self.ledger(move |l| l.mark_failed(&n, &text, next)).await {
                    tracing::error!("cannot record failed upload of {name}: {err}");
                }
                self.inner.bus.publish(EventKind::ArchiveFailed {
                    probe: record.probe,
                    bundle: name,
                    stage: "upload".into(),
                    error: err.to_string(),
                    will_retry: true,
                });
            }
        }
    }

    async fn enforce_quota(&self, alerted: &mut bool) {
        let quota = self.settings().quota;
        let Ok(records) = self.ledger(|ledger| ledger.list(usize::MAX)).await else {
            return;
        };
        let plan = plan_quota(&records, quota);
        for name in &plan.prune {
            let Some(record) = records.iter().find(|r| &r.name == name) else {
                continue;
            };
            let _ = std::fs::remove_file(&record.path);
            let _ = std::fs::remove_file(&record.manifest_path);
            let n = name.clone();
            match self.ledger(move |l| l.mark_pruned(&n)).await {
                Ok(()) => {
                    tracing::info!(bundle = %name, "pruned uploaded bundle from the spool (quota)")
                }
                Err(err) => tracing::warn!(bundle = %name, "cannot record pruning: {err}"),
            }
        }
        if plan.still_over == 0 {
            *alerted = false;
            return;
        }
        if !*alerted {
            *alerted = true;
            let oldest = records
                .iter()
                .filter(|r| r.state == UploadState::Pending)
                .min_by_key(|r| r.created_at);
            self.inner.bus.publish(EventKind::ArchiveFailed {
                probe: oldest.map(|r| r.probe.clone()).unwrap_or_default(),
                bundle: oldest.map(|r| r.name.clone()).unwrap_or_default(),
                stage: "quota".into(),
                error: format!(
                    "spool over its quota by {} bytes and only un-uploaded bundles are left; they are kept until uploaded",
                    plan.still_over
                ),
                will_retry: true,
            });
        }
    }
}

/// 1 s, 2 s, 4 s, ... up to `max`.
pub fn retry_delay(attempt: u32, max: Duration) -> Duration {
    let exponent = attempt.saturating_sub(1).min(20);
    Duration::from_secs(1u64 << exponent).min(max)
}

/// Resolve the named sources for this request.
fn plan_sources(
    settings: &Settings,
    request: &CaptureRequest,
    docker: &DockerEngine,
) -> Vec<SourcePlan> {
    request
        .sources
        .iter()
        .map(|name| {
            let unavailable = |why: String| SourcePlan::Unavailable {
                source: name.clone(),
                why,
            };
            let Some(source) = settings.sources.iter().find(|s| s.name() == name) else {
                return unavailable(format!("no [[archive.source]] named {name}"));
            };
            match source.kind {
                SourceKind::Files => SourcePlan::Files {
                    source: name.clone(),
                    container: source.container.as_ref().map(|c| c.get_ref().clone()),
                    path: source.path.as_ref().map(|p| p.get_ref().clone()).unwrap_or_default(),
                    include: source.include.clone().unwrap_or_default(),
                    max_bytes: source.max_bytes.bytes(),
                },
                SourceKind::Container => {
                    match source.container.as_ref().map(|c| c.get_ref().clone()).or(request.container.clone()) {
                        Some(container) => SourcePlan::Container {
                            source: name.clone(),
                            container,
                            tail: source.tail.unwrap_or(1000),
                            since: source.since.map(|s| s.get()),
                        },
                        None => unavailable("no container: the heal restarts none, so set `container` on this source".into()),
                    }
                }
                SourceKind::PgStatActivity => {
                    let probe_name = source.probe.as_ref().map_or(request.probe.as_str(), |p| p.get_ref());
                    let built = settings
                        .probes
                        .iter()
                        .find(|p| p.name() == probe_name)
                        .and_then(|p| AnyProbe::from_config(p, docker));
                    match built {
                        Some(AnyProbe::Postgres(target)) => SourcePlan::Activity {
                            source: name.clone(),
                            target: Box::new(target),
                        },
                        _ => unavailable(format!("probe {probe_name} is not a postgres probe; set `probe` on this source")),
                    }
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_doubles_up_to_the_max() {
        let max = Duration::from_secs(60);
        let cases = [(1, 1), (2, 2), (3, 4), (6, 32), (7, 60), (100, 60)];
        for (attempt, secs) in cases {
            assert_eq!(
                retry_delay(attempt, max),
                Duration::from_secs(secs),
                "attempt {attempt}"
            );
        }
    }
}
