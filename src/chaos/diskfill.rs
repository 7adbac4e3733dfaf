//! `disk_fill`: one file written into a directory up to a ceiling that never takes its filesystem
//! above `max_used_percent` (statvfs, rechecked at apply), removed at rollback and by the sweep.
//!
//! The file's name carries our owner mark and the action's token; a record under
//! `STATE_DIR/chaos-fill/` names it too, so a sweep finds it without the experiment journal.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::spec::SpecError;
use super::stress::{write_synced, StressError};
use crate::units::ByteSize;

/// `disk_fill`: fill `path` (a directory) with `bytes`, or up to the ceiling when not given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskFill {
    pub path: PathBuf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<ByteSize>,
    /// The filesystem's used share (as `df` shows it) never goes above this, percent.
    #[serde(default = "DiskFill::default_ceiling")]
    pub max_used_percent: f64,
}

impl DiskFill {
    pub const DEFAULT_CEILING: f64 = 90.0;

    fn default_ceiling() -> f64 {
        Self::DEFAULT_CEILING
    }
}

pub(super) fn validate(fill: &DiskFill) -> Result<(), SpecError> {
    if !fill.path.is_absolute()
        || fill
            .path
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(SpecError::DiskFillPath);
    }
    if !(fill.max_used_percent > 0.0 && fill.max_used_percent < 100.0) {
        return Err(SpecError::DiskFillCeiling {
            value: fill.max_used_percent,
        });
    }
    if fill.bytes == Some(ByteSize(0)) {
        return Err(SpecError::DiskFillZero);
    }
    Ok(())
}

/// Why a fill could not be planned, written or removed.
#[derive(Debug, thiserror::Error)]
pub enum FillError {
    #[error("disk_fill: {} is not a directory", path.display())]
    NotDirectory {
        path: PathBuf,
        #[source]
        source: Option<std::io::Error>,
    },
    #[error("disk_fill: cannot read the filesystem of {}: {source}", path.display())]
    Statvfs {
        path: PathBuf,
        #[source]
        source: nix::errno::Errno,
    },
    #[error("disk_fill: the filesystem of {} is {used:.1}% used, at or above the ceiling {ceiling}%: nothing may be written", path.display())]
    AboveCeiling {
        path: PathBuf,
        used: f64,
        ceiling: f64,
    },
    #[error("disk_fill: cannot write {}: {source}", file.display())]
    Write {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("disk_fill: cannot remove {}: {source}", file.display())]
    Remove {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("disk_fill record: {0}")]
    Record(#[source] StressError),
}

/// The journaled fill: which file, how much at most, and the ceiling to recheck at apply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FillAction {
    pub file: PathBuf,
    pub bytes: Option<u64>,
    pub max_used_percent: f64,
    pub record: Option<PathBuf>,
}

/// A filesystem's usage as `df` counts it (blocks reserved for root are not available).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    pub used: u64,
    pub available: u64,
}

impl Usage {
    pub fn of(path: &Path) -> Result<Self, FillError> {
        let stat = nix::sys::statvfs::statvfs(path).map_err(|source| FillError::Statvfs {
            path: path.to_path_buf(),
            source,
        })?;
        let unit = stat.fragment_size() as u64;
        Ok(Self {
            used: (stat.blocks() as u64 - stat.blocks_free() as u64) * unit,
            available: stat.blocks_available() as u64 * unit,
        })
    }

    pub fn percent(&self) -> f64 {
        match self.used + self.available {
            0 => 100.0,
            total => self.used as f64 * 100.0 / total as f64,
        }
    }

    /// Bytes that may still be written before the used share reaches `ceiling` percent.
    pub fn room_below(&self, ceiling: f64) -> u64 {
        let total = (self.used + self.available) as f64;
        let allowed = (total * ceiling / 100.0).floor() as u64;
        allowed.saturating_sub(self.used).min(self.available)
    }
}

/// The fill file's name: a mark of ours, the owner and the token.
pub fn file_name(owner: u16, token: &str) -> String {
    format!(".sentinel-fill-{owner:x}-{token}")
}

pub fn record_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("chaos-fill")
}

pub(super) fn plan(
    fill: &DiskFill,
    owner: u16,
    state_dir: Option<&Path>,
) -> Result<FillAction, FillError> {
    let meta = std::fs::metadata(&fill.path).map_err(|source| FillError::NotDirectory {
        path: fill.path.clone(),
        source: Some(source),
    })?;
    if !meta.is_dir() {
        return Err(FillError::NotDirectory {
            path: fill.path.clone(),
            source: None,
        });
    }
    let usage = Usage::of(&fill.path)?;
    if usage.room_below(fill.max_used_percent) == 0 {
        return Err(FillError::AboveCeiling {
            path: fill.path.clone(),
            used: usage.percent(),
            ceiling: fill.max_used_percent,
        });
    }
    let token = super::stress::token();
    Ok(FillAction {
        file: fill.path.join(file_name(owner, &token)),
        bytes: fill.bytes.map(|b| b.0),
        max_used_percent: fill.max_used_percent,
        record: state_dir.map(|dir| record_dir(dir).join(format!("{token}.json"))),
    })
}

/// Chunk written between two ceiling checks.
const CHUNK: usize = 1 << 20;

/// Write the file up to its size or the ceiling (rechecked every chunk) and read back.
pub fn apply(action: &FillAction) -> Result<String, FillError> {
    let dir = action.file.parent().unwrap_or(Path::new("/"));
    if let Some(record) = &action.record {
        let body = serde_json::to_vec(&action.file).expect("paths serialize");
        write_synced(record, &body).map_err(FillError::Record)?;
    }
    let usage = Usage::of(dir)?;
    let room = usage.room_below(action.max_used_percent);
    if room == 0 {
        return Err(FillError::AboveCeiling {
            path: dir.to_path_buf(),
            used: usage.percent(),
            ceiling: action.max_used_percent,
        });
    }
    let want = action.bytes.map_or(room, |b| b.min(room));
    let write_error = |source| FillError::Write {
        file: action.file.clone(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&action.file)
        .map_err(write_error)?;
    let chunk = vec![0x5a_u8; CHUNK];
    let mut written = 0u64;
    while written < want {
        // Recheck: others write to this filesystem too.
        if written % (64 * CHUNK as u64) == 0 && written > 0 {
            file.sync_data().map_err(write_error)?;
            if Usage::of(dir)?.room_below(action.max_used_percent) < CHUNK as u64 {
                break;
            }
        }
        let size = (want - written).min(CHUNK as u64) as usize;
        file.write_all(&chunk[..size]).map_err(write_error)?;
        written += size as u64;
    }
    file.sync_all().map_err(write_error)?;
    let after = Usage::of(dir)?;
    Ok(format!(
        "{} holds {}; filesystem {:.1}% used (ceiling {}%)",
        action.file.display(),
        ByteSize(written),
        after.percent(),
        action.max_used_percent
    ))
}

/// Remove the file (only a regular file with our name) and its record; idempotent.
pub fn revert(action: &FillAction) -> Result<String, FillError> {
    let ours = action
        .file
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with(".sentinel-fill-"));
    let line = match std::fs::symlink_metadata(&action.file) {
        Ok(meta) if ours && meta.is_file() => {
            std::fs::remove_file(&action.file).map_err(|source| FillError::Remove {
                file: action.file.clone(),
                source,
            })?;
            format!(
                "{} removed ({})",
                action.file.display(),
                ByteSize(meta.len())
            )
        }
        Ok(_) => format!(
            "{} left alone: not a fill file of ours",
            action.file.display()
        ),
        Err(_) => format!("{} was not there", action.file.display()),
    };
    if let Some(record) = &action.record {
        let _ = std::fs::remove_file(record);
    }
    Ok(line)
}

/// Fill records in `state_dir` that `known` files do not account for.
pub fn orphans(state_dir: Option<&Path>, known: &[PathBuf]) -> Vec<FillAction> {
    let Some(dir) = state_dir.map(record_dir) else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
        .filter_map(|entry| {
            let file: PathBuf = serde_json::from_slice(&std::fs::read(entry.path()).ok()?).ok()?;
            (!known.contains(&file)).then(|| FillAction {
                file,
                bytes: None,
                max_used_percent: 0.0,
                record: Some(entry.path()),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_below_the_ceiling_is_df_arithmetic() {
        let usage = Usage {
            used: 60,
            available: 40,
        };
        assert_eq!(usage.percent(), 60.0);
        assert_eq!(usage.room_below(90.0), 30);
        assert_eq!(usage.room_below(60.0), 0);
        assert_eq!(usage.room_below(50.0), 0);
        // never more than what is available (root's reserve is not ours)
        assert_eq!(
            Usage {
                used: 0,
                available: 10
            }
            .room_below(99.0),
            9
        );
    }

    /// A 16 MiB tmpfs of its own, unmounted when dropped: no other writer moves its usage.
    struct Tmpfs(tempfile::TempDir);

    impl Tmpfs {
        fn mount() -> Option<Self> {
            let dir = tempfile::tempdir().unwrap();
            let mounted = std::process::Command::new("mount")
                .args(["-t", "tmpfs", "-o", "size=16m", "tmpfs"])
                .arg(dir.path())
                .status()
                .is_ok_and(|s| s.success());
            if !mounted && std::env::var_os("CI").is_some() {
                panic!("CI must be able to mount a tmpfs (run as root)");
            }
            mounted.then_some(Self(dir))
        }
    }

    impl Drop for Tmpfs {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg(self.0.path())
                .status();
        }
    }

    #[test]
    fn a_fill_respects_its_ceiling_and_is_removed_with_its_record() {
        let Some(mount) = Tmpfs::mount() else {
            eprintln!("\n!!! SKIPPING: cannot mount a tmpfs (not root?) !!!\n");
            return;
        };
        let dir = &mount.0;
        let state = tempfile::tempdir().unwrap();
        let before = Usage::of(dir.path()).unwrap();
        // a ceiling of 50% of 16 MiB: the fill stops at 8 MiB, whatever `bytes` says
        let ceiling = 50.0;
        let fill = DiskFill {
            path: dir.path().to_path_buf(),
            bytes: Some(ByteSize(1 << 40)),
            max_used_percent: ceiling,
        };
        let action = plan(&fill, 0x5e1d, Some(state.path())).unwrap();
        let line = apply(&action).unwrap();
        let size = std::fs::metadata(&action.file).unwrap().len();
        let room = before.room_below(ceiling);
        assert!(
            size <= room && size + (1 << 20) >= room,
            "{size} of {room}: {line}"
        );
        assert!(
            Usage::of(dir.path()).unwrap().percent() <= ceiling,
            "{line}"
        );
        // the sweep sees the record when no experiment knows the file
        let found = orphans(Some(state.path()), &[]);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].file, action.file);
        assert!(orphans(Some(state.path()), std::slice::from_ref(&action.file)).is_empty());
        revert(&found[0]).unwrap();
        assert!(!action.file.exists());
        assert!(orphans(Some(state.path()), &[]).is_empty());
        // idempotent; a file not ours is left alone
        assert!(revert(&action).unwrap().contains("was not there"));
        let other = FillAction {
            file: dir.path().join("precious"),
            bytes: None,
            max_used_percent: 0.0,
            record: None,
        };
        std::fs::write(&other.file, b"x").unwrap();
        assert!(revert(&other).unwrap().contains("left alone"));
        assert!(other.file.exists());
        // at or above the ceiling: refused before anything is written
        std::fs::write(dir.path().join("ballast"), vec![1u8; 9 << 20]).unwrap();
        let full = DiskFill {
            max_used_percent: 50.0,
            ..fill
        };
        let err = plan(&full, 0x5e1d, None).unwrap_err();
        assert!(matches!(err, FillError::AboveCeiling { .. }), "{err}");
    }
}
