//! One incident's evidence as a gzip'd tar with a `manifest.json`, written to the spool
//! atomically (temp file, fsync, rename, fsync dir) so a crash never leaves half a bundle.

use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::beneath::SkipReason;
use super::perms::Ownership;
use super::ArchiveError;
use crate::event::{FailureReason, Timestamp};

/// One file inside the bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path inside the bundle, below the bundle's folder: `postgres-logs/log/postgresql.log`.
    pub path: String,
    pub source: String,
    /// Where it came from (a host path, `docker logs demo`, ...), for the post-mortem.
    pub origin: String,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestFile {
    pub path: String,
    pub source: String,
    pub origin: String,
    pub size: u64,
    pub sha256: String,
}

/// What a source could not deliver; the bundle is still written with everything else.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceProblem {
    pub source: String,
    pub error: String,
    /// A file the source skipped, relative to its `path` (`log/evil.log`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Why that file was skipped (`escapes_root`, `magic_link`, `not_regular_file`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<SkipReason>,
}

impl SourceProblem {
    pub fn new(source: &str, error: String) -> Self {
        Self {
            source: source.to_string(),
            error,
            path: None,
            skipped: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub bundle: String,
    pub probe: String,
    pub target: String,
    pub failure_reason: Option<FailureReason>,
    /// When the probe went Down, when collection began and ended (RFC 3339, UTC).
    pub down_at: Option<String>,
    pub collected_from: String,
    pub collected_to: String,
    pub sentineld_version: String,
    pub files: Vec<ManifestFile>,
    pub problems: Vec<SourceProblem>,
}

/// A bundle on local disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpooledBundle {
    pub name: String,
    pub path: PathBuf,
    pub manifest_path: PathBuf,
    pub bytes: u64,
    pub sha256: String,
}

/// `{timestamp}-{target}`: sorts by time, names what was restarted; safe as a file name and key.
pub fn bundle_name(at: Timestamp, target: &str) -> String {
    let stamp: String = at
        .to_rfc3339()
        .chars()
        .take(19)
        .filter(|c| *c != '-' && *c != ':')
        .collect();
    let target: String = target
        .trim_start_matches('/')
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '_' | '.' => c,
            _ => '_',
        })
        .collect();
    format!("{stamp}Z-{target}")
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The manifest's file list for `entries`.
pub fn describe(entries: &[Entry]) -> Vec<ManifestFile> {
    entries
        .iter()
        .map(|entry| ManifestFile {
            path: entry.path.clone(),
            source: entry.source.clone(),
            origin: entry.origin.clone(),
            size: entry.bytes.len() as u64,
            sha256: sha256_hex(&entry.bytes),
        })
        .collect()
}

/// Write `{spool}/{name}.tar.gz` (folder `{name}/` with `manifest.json` first) and
/// `{spool}/{name}.manifest.json`, both 0640 in `owner`'s group. Blocking: run it off the
/// async threads.
pub fn write(
    spool: &Path,
    manifest: &Manifest,
    entries: &[Entry],
    owner: Ownership,
) -> Result<SpooledBundle, ArchiveError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ArchiveError::Io { path, source }
    };
    owner.create_dir_all(spool).map_err(io(spool))?;
    let name = &manifest.bundle;
    let manifest_json = serde_json::to_vec_pretty(manifest).expect("manifest serializes");

    let path = spool.join(format!("{name}.tar.gz"));
    let partial = spool.join(format!(".{name}.tar.gz.part"));
    let file = owner.create_file(&partial).map_err(io(&partial))?;
    let mut tar = tar::Builder::new(GzEncoder::new(file, flate2::Compression::default()));
    let mtime = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut append = |inner: &str, bytes: &[u8]| -> std::io::Result<()> {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o640);
        header.set_mtime(mtime);
        header.set_cksum();
        tar.append_data(&mut header, format!("{name}/{inner}"), bytes)
    };
    append("manifest.json", &manifest_json).map_err(io(&partial))?;
    for entry in entries {
        append(&entry.path, &entry.bytes).map_err(io(&partial))?;
    }
    let file = tar
        .into_inner()
        .and_then(|gz| gz.finish())
        .map_err(io(&partial))?;
    file.sync_all().map_err(io(&partial))?;
    drop(file);
    std::fs::rename(&partial, &path).map_err(io(&path))?;

    let manifest_path = spool.join(format!("{name}.manifest.json"));
    let partial = spool.join(format!(".{name}.manifest.json.part"));
    let mut file = owner.create_file(&partial).map_err(io(&partial))?;
    file.write_all(&manifest_json)
        .and_then(|()| file.sync_all())
        .map_err(io(&partial))?;
    drop(file);
    std::fs::rename(&partial, &manifest_path).map_err(io(&manifest_path))?;
    // The renames are durable only once the directory itself is synced.
    if let Ok(dir) = std::fs::File::open(spool) {
        let _ = dir.sync_all();
    }
    let (bytes, sha256) = hash_file(&path)?;
    Ok(SpooledBundle {
        name: name.clone(),
        path,
        manifest_path,
        bytes,
        sha256,
    })
}

/// Size and SHA-256 of a file, streamed.
pub fn hash_file(path: &Path) -> Result<(u64, String), ArchiveError> {
    let mut file = std::fs::File::open(path).map_err(|source| ArchiveError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut hasher = Sha256::new();
    let bytes = std::io::copy(&mut file, &mut hasher).map_err(|source| ArchiveError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok((bytes, hex(&hasher.finalize())))
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn bundle_names_sort_by_time_and_are_safe() {
        let cases = [
            (1_700_000_000_123, "postgres", "20231114T221320Z-postgres"),
            (1_700_000_000_000, "/my db", "20231114T221320Z-my_db"),
            (0, "a/b", "19700101T000000Z-a_b"),
        ];
        for (at, target, expected) in cases {
            assert_eq!(bundle_name(Timestamp(at), target), expected);
        }
    }

    #[test]
    fn written_bundle_holds_manifest_and_files_with_matching_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let entries = vec![
            Entry {
                path: "logs/a.log".into(),
                source: "logs".into(),
                origin: "/var/log/a.log".into(),
                bytes: b"line one\n".to_vec(),
            },
            Entry {
                path: "container/inspect.json".into(),
                source: "container".into(),
                origin: "docker inspect demo".into(),
                bytes: b"{}".to_vec(),
            },
        ];
        let manifest = Manifest {
            bundle: "20231114T221320Z-demo".into(),
            probe: "demo".into(),
            target: "demo".into(),
            failure_reason: Some(FailureReason::Refused),
            down_at: None,
            collected_from: "a".into(),
            collected_to: "b".into(),
            sentineld_version: "0".into(),
            files: describe(&entries),
            problems: vec![],
        };
        let spooled = write(dir.path(), &manifest, &entries, Ownership::default()).unwrap();
        assert_eq!(
            spooled.path,
            dir.path().join("20231114T221320Z-demo.tar.gz")
        );
        assert_eq!(hash_file(&spooled.path).unwrap().1, spooled.sha256);
        for path in [&spooled.path, &spooled.manifest_path] {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o7777;
            assert_eq!(mode, 0o640, "{}", path.display());
        }
        // no temp file left behind
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.ends_with(".part")), "{names:?}");

        let file = std::fs::File::open(&spooled.path).unwrap();
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).unwrap();
            seen.push((path, bytes));
        }
        assert_eq!(seen[0].0, "20231114T221320Z-demo/manifest.json");
        let back: Manifest = serde_json::from_slice(&seen[0].1).unwrap();
        assert_eq!(back, manifest);
        for (file, (path, bytes)) in back.files.iter().zip(&seen[1..]) {
            assert_eq!(path, &format!("20231114T221320Z-demo/{}", file.path));
            assert_eq!(sha256_hex(bytes), file.sha256);
            assert_eq!(bytes.len() as u64, file.size);
        }
    }
}
