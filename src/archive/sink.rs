//! Where spooled bundles end up: a local directory (the default) or S3. Both lay bundles out as
//! `{root}/{timestamp}-{target}/bundle.tar.gz` + `manifest.json` and verify what they wrote.
//! Also the spool quota: which uploaded bundles to prune, and when to alert instead.

use std::path::{Path, PathBuf};

use super::ledger::{ArchiveRecord, UploadState};
use super::perms::Ownership;
use super::s3::S3Sink;
use super::ArchiveError;

/// One spooled bundle to ship.
#[derive(Debug, Clone)]
pub struct Upload {
    pub name: String,
    pub path: PathBuf,
    pub manifest_path: PathBuf,
    pub bytes: u64,
    pub sha256: String,
}

impl From<&ArchiveRecord> for Upload {
    fn from(record: &ArchiveRecord) -> Self {
        Self {
            name: record.name.clone(),
            path: record.path.clone(),
            manifest_path: record.manifest_path.clone(),
            bytes: record.bytes,
            sha256: record.sha256.clone(),
        }
    }
}

pub const BUNDLE_OBJECT: &str = "bundle.tar.gz";
pub const MANIFEST_OBJECT: &str = "manifest.json";

#[derive(Debug, Clone)]
pub enum Sink {
    Local(LocalSink),
    S3(Box<S3Sink>),
}

impl Sink {
    /// Where `name` goes: shown as soon as the bundle is spooled, before it is uploaded.
    pub fn destination(&self, name: &str) -> String {
        match self {
            Self::Local(local) => format!("{}/", local.dir.join(name).display()),
            Self::S3(s3) => s3.destination(name),
        }
    }

    /// Ship the bundle and verify it; returns where the bundle object is.
    pub async fn upload(&self, upload: &Upload) -> Result<String, ArchiveError> {
        match self {
            Self::Local(local) => {
                let local = local.clone();
                let upload = upload.clone();
                crate::panic_policy::run_blocking(move || local.copy(&upload)).await
            }
            Self::S3(s3) => s3.upload(upload).await,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalSink {
    pub dir: PathBuf,
    /// Copies are 0640 and new folders 0750 in this group.
    pub owner: Ownership,
}

impl LocalSink {
    fn copy(&self, upload: &Upload) -> Result<String, ArchiveError> {
        let folder = self.dir.join(&upload.name);
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ArchiveError::Io { path, source }
        };
        self.owner.create_dir_all(&folder).map_err(io(&folder))?;
        let bundle = folder.join(BUNDLE_OBJECT);
        for (from, to) in [
            (&upload.manifest_path, folder.join(MANIFEST_OBJECT)),
            (&upload.path, bundle.clone()),
        ] {
            let partial = to.with_extension("part");
            let mut source = std::fs::File::open(from).map_err(io(from))?;
            let mut copy = self.owner.create_file(&partial).map_err(io(&partial))?;
            std::io::copy(&mut source, &mut copy)
                .and_then(|_| copy.sync_all())
                .map_err(io(&partial))?;
            drop(copy);
            std::fs::rename(&partial, &to).map_err(io(&to))?;
        }
        let (bytes, sha256) = super::bundle::hash_file(&bundle)?;
        if bytes != upload.bytes || sha256 != upload.sha256 {
            return Err(ArchiveError::Upload(format!(
                "{} does not match the spooled bundle after copying (sha256 {sha256}, expected {})",
                bundle.display(),
                upload.sha256
            )));
        }
        Ok(bundle.display().to_string())
    }
}

/// What to do to keep the spool within its quota.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct QuotaPlan {
    /// Uploaded bundles whose spool copies to delete, oldest first.
    pub prune: Vec<String>,
    /// Bytes still over the quota after pruning: only un-uploaded bundles are left to delete,
    /// and those are kept (and alerted about).
    pub still_over: u64,
}

/// `records` are the bundles in the spool (pending or uploaded), in any order.
pub fn plan_quota(records: &[ArchiveRecord], quota: u64) -> QuotaPlan {
    let mut on_disk: Vec<&ArchiveRecord> = records
        .iter()
        .filter(|r| r.state != UploadState::Pruned)
        .collect();
    on_disk.sort_by_key(|r| (r.created_at, r.name.clone()));
    let mut total: u64 = on_disk.iter().map(|r| r.bytes).sum();
    let mut plan = QuotaPlan::default();
    for record in on_disk {
        if total <= quota {
            break;
        }
        if record.state == UploadState::Uploaded {
            total -= record.bytes;
            plan.prune.push(record.name.clone());
        }
    }
    plan.still_over = total.saturating_sub(quota);
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str, at: i64, bytes: u64, state: UploadState) -> ArchiveRecord {
        ArchiveRecord {
            bytes,
            state,
            ..super::super::ledger::tests::record(name, at)
        }
    }

    #[test]
    fn quota_prunes_uploaded_oldest_first_and_never_pending() {
        use UploadState::*;
        let records = vec![
            record("new-up", 4, 30, Uploaded),
            record("old-pending", 1, 30, Pending),
            record("old-up", 2, 30, Uploaded),
            record("gone", 0, 500, Pruned),
            record("mid-up", 3, 30, Uploaded),
        ];
        let cases: [(u64, &[&str], u64); 5] = [
            (1000, &[], 0),
            (120, &[], 0),
            (90, &["old-up"], 0),
            (45, &["old-up", "mid-up", "new-up"], 0),
            (10, &["old-up", "mid-up", "new-up"], 20),
        ];
        for (quota, prune, still_over) in cases {
            let plan = plan_quota(&records, quota);
            assert_eq!(plan.prune, prune, "quota {quota}");
            assert_eq!(plan.still_over, still_over, "quota {quota}");
        }
    }

    #[test]
    fn local_sink_copies_and_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join("spool");
        std::fs::create_dir_all(&spool).unwrap();
        std::fs::write(spool.join("b.tar.gz"), b"bundle bytes").unwrap();
        std::fs::write(spool.join("b.manifest.json"), b"{}").unwrap();
        let (bytes, sha256) = super::super::bundle::hash_file(&spool.join("b.tar.gz")).unwrap();
        let sink = LocalSink {
            dir: dir.path().join("out"),
            owner: Ownership::default(),
        };
        let mut upload = Upload {
            name: "b".into(),
            path: spool.join("b.tar.gz"),
            manifest_path: spool.join("b.manifest.json"),
            bytes,
            sha256,
        };
        let location = sink.copy(&upload).unwrap();
        assert_eq!(
            location,
            dir.path().join("out/b/bundle.tar.gz").display().to_string()
        );
        assert_eq!(
            std::fs::read(dir.path().join("out/b/manifest.json")).unwrap(),
            b"{}"
        );
        upload.sha256 = "0000".into();
        let err = sink.copy(&upload).unwrap_err().to_string();
        assert!(err.contains("does not match"), "{err}");
    }
}
