//! Evidence first: before a heal restarts something, collect its logs and state into one bundle
//! in the local spool, then ship it to S3 or a directory in the background, retrying until done.

mod beneath;
mod bundle;
mod collect;
pub mod config;
mod evidence;
mod ledger;
mod perms;
mod s3;
mod sink;
mod uploader;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use thiserror::Error;
use tokio::sync::{oneshot, watch, Notify};

pub use beneath::{Refusal, SkipReason, SourceDir};
pub use bundle::{Manifest, ManifestFile, SourceProblem, SpooledBundle};
pub use collect::{host_path, HostPath, SourcePlan};
pub use evidence::{ContainerApi, Mount, Postgres, SqlApi};
#[cfg(test)]
pub(crate) use ledger::Ledger;
pub use ledger::{ArchiveRecord, UploadState};
pub use perms::Ownership;
pub use s3::S3Sink;
pub use sink::{plan_quota, LocalSink, QuotaPlan, Sink, Upload};
pub use uploader::retry_delay;

use crate::docker::DockerEngine;
use crate::event::{ArchiveStage, Bus, EventKind, FailureReason, Timestamp};
use crate::probe::AnyProbe;
use crate::probe::{ProbeConfig, ProbeKind};
use config::{ArchiveSection, SourceKind, SourceSection};

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
    /// A files source's directory cannot be opened, or leads out of its container's mount.
    #[error("source directory {path}: {refusal}")]
    SourceDir {
        path: PathBuf,
        #[source]
        refusal: Refusal,
    },
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
    /// The postgres probes, which `pg_stat_activity` sources name.
    probes: Vec<ProbeConfig>,
}

impl Settings {
    fn from_config(
        section: &ArchiveSection,
        probes: &[ProbeConfig],
        state_dir: &Path,
        owner: Ownership,
        previous: Option<&Settings>,
    ) -> Self {
        let mut sink = match (&section.s3, &section.local) {
            (Some(s3), _) => Sink::S3(Box::new(S3Sink::new(s3))),
            (None, Some(local)) => Sink::Local(LocalSink {
                dir: local.dir.clone(),
                owner,
            }),
            (None, None) => Sink::Local(LocalSink {
                dir: state_dir.join("archive/bundles"),
                owner,
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
            // Only what a `pg_stat_activity` source can name: a full copy of a large fleet's
            // probes would be held here for nothing.
            probes: probes
                .iter()
                .filter(|p| *p.kind.get_ref() == ProbeKind::Postgres)
                .cloned()
                .collect(),
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
    pub reason: Option<FailureReason>,
    pub down_at: Option<Timestamp>,
    /// Files the requester already holds (a remedy step's snapshot), written under
    /// `attachments_dir/` in the bundle beside what the sources collect.
    pub attachments: Vec<(String, Vec<u8>)>,
    /// The folder of the attachments in the bundle and their `source` in the manifest.
    pub attachments_dir: String,
}

/// The archive service: cheap to clone, shared by healers, the uploader and the API.
#[derive(Clone)]
pub struct Archiver {
    inner: Arc<Inner>,
}

struct Inner {
    state_dir: PathBuf,
    /// Bundles and sink copies are 0640 in this group (the control socket's).
    owner: Ownership,
    settings: RwLock<Arc<Settings>>,
    ledger: crate::journal::SharedTable<ledger::Ledger>,
    docker: DockerEngine,
    bus: Bus,
    wake: Notify,
    /// Collections still running, also those whose heal stopped waiting (archive timeout):
    /// shutdown waits for them so a late bundle is spooled, not lost.
    /// Bundle name -> probe.
    collecting: watch::Sender<BTreeMap<String, String>>,
}

/// Marks one collection as running until dropped (also when its task is cancelled).
struct Collecting {
    running: watch::Sender<BTreeMap<String, String>>,
    bundle: String,
}

impl Collecting {
    fn start(running: &watch::Sender<BTreeMap<String, String>>, bundle: &str, probe: &str) -> Self {
        running.send_modify(|r| {
            r.insert(bundle.to_string(), probe.to_string());
        });
        Self {
            running: running.clone(),
            bundle: bundle.to_string(),
        }
    }
}

impl Drop for Collecting {
    fn drop(&mut self) {
        self.running.send_modify(|r| {
            r.remove(&self.bundle);
        });
    }
}

impl Archiver {
    /// Open the ledger in the journal database under `state_dir`; bundles and their copies
    /// are written 0640 in `owner`'s group.
    pub fn open(
        state_dir: &Path,
        section: &ArchiveSection,
        probes: &[ProbeConfig],
        owner: Ownership,
        docker: DockerEngine,
        bus: Bus,
    ) -> Result<Self, ArchiveError> {
        let ledger = ledger::Ledger::open(&state_dir.join(crate::journal::DATABASE_FILE))?;
        let settings = Settings::from_config(section, probes, state_dir, owner, None);
        Ok(Self {
            inner: Arc::new(Inner {
                state_dir: state_dir.to_path_buf(),
                owner,
                settings: RwLock::new(Arc::new(settings)),
                ledger: crate::journal::SharedTable::new(ledger),
                docker,
                bus,
                wake: Notify::new(),
                collecting: watch::Sender::new(BTreeMap::new()),
            }),
        })
    }

    /// Apply a reloaded `[archive]` (sources, sink, quota) and probes; bundles already spooled
    /// keep their place.
    pub fn configure(&self, section: &ArchiveSection, probes: &[ProbeConfig]) {
        let mut slot = self
            .inner
            .settings
            .write()
            .unwrap_or_else(|p| p.into_inner());
        *slot = Arc::new(Settings::from_config(
            section,
            probes,
            &self.inner.state_dir,
            self.inner.owner,
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
        self.inner.ledger.call(work).await
    }

    /// Bundles newest first, for `sentinelctl archives`.
    pub async fn list(&self, limit: usize) -> Result<Vec<ArchiveRecord>, ArchiveError> {
        self.ledger(move |ledger| ledger.list(limit)).await
    }

    /// Collect and spool evidence; returns the bundle's name once it is on local disk or the
    /// archive timeout passed (journaled as `archive_failed` stage `timeout`; collection
    /// continues).
    pub async fn capture(&self, request: CaptureRequest) -> String {
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
        let named = name.clone();
        let running = Collecting::start(&self.inner.collecting, &name, &request.probe);
        tokio::spawn(async move {
            let _running = running;
            let result = this.collect_and_spool(&request, &name, &target).await;
            if let Err(err) = &result {
                tracing::error!(probe = %request.probe, bundle = %name, "evidence not spooled: {err}");
                this.inner.bus.publish(EventKind::ArchiveFailed {
                    probe: request.probe.clone(),
                    bundle: name.clone(),
                    stage: ArchiveStage::Spool,
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
                stage: ArchiveStage::Timeout,
                error: format!(
                    "not on local disk within the archive timeout ({waited}); the restart went ahead and collection continues"
                ),
                will_retry: true,
            });
        }
        named
    }

    /// At shutdown: wait up to `grace` for collections still running, so a bundle that missed
    /// the archive timeout still reaches the spool (and the ledger) before the daemon exits.
    /// A bundle still not written then is journaled as lost (`archive_failed`, stage
    /// `shutdown`), never dropped silently.
    pub async fn finish_collections(&self, grace: Duration) {
        let mut running = self.inner.collecting.subscribe();
        let left = running.borrow().len();
        if left == 0 {
            return;
        }
        tracing::info!(
            "waiting up to {grace:?} for {left} evidence collection(s) to reach the spool"
        );
        if tokio::time::timeout(grace, running.wait_for(|r| r.is_empty()))
            .await
            .is_ok()
        {
            return;
        }
        let lost = running.borrow().clone();
        for (bundle, probe) in lost {
            let error = format!(
                "sentineld stopped while this evidence was still being collected (waited {}); the bundle was not written",
                humantime::format_duration(grace)
            );
            tracing::error!(%probe, %bundle, "{error}");
            self.inner.bus.publish(EventKind::ArchiveFailed {
                probe,
                bundle,
                stage: ArchiveStage::Shutdown,
                error,
                will_retry: false,
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
        let (mut entries, problems) =
            collect::collect(&self.inner.docker, &evidence::Postgres, &plans).await;
        let folder = &request.attachments_dir;
        entries.extend(
            request
                .attachments
                .iter()
                .map(|(path, bytes)| bundle::Entry {
                    path: format!("{folder}/{path}"),
                    source: folder.clone(),
                    origin: format!("{folder}: taken by sentineld before acting"),
                    bytes: bytes.clone(),
                }),
        );
        for problem in &problems {
            tracing::warn!(probe = %request.probe, source = %problem.source, "evidence source: {}", problem.error);
        }
        let manifest = Manifest {
            bundle: name.to_string(),
            probe: request.probe.clone(),
            target: target.to_string(),
            failure_reason: request.reason,
            down_at: request.down_at.map(Timestamp::to_rfc3339),
            collected_from: started.to_rfc3339(),
            collected_to: Timestamp::now().to_rfc3339(),
            sentineld_version: env!("CARGO_PKG_VERSION").to_string(),
            files: bundle::describe(&entries),
            problems,
        };
        let (spool, owner) = (settings.spool_dir.clone(), self.inner.owner);
        let spooled = crate::panic_policy::run_blocking(move || {
            bundle::write(&spool, &manifest, &entries, owner)
        })
        .await?;
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
