//! Where each tailed file was safely read up to: (device, inode, offset) per configured path,
//! saved in the state dir with write + fsync + rename, so a crash leaves the old or the new file.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::sources::tail::FilePos;
use super::AgentError;

const FILE_NAME: &str = "offsets.json";

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct OnDisk {
    files: BTreeMap<String, FilePos>,
}

pub struct OffsetStore {
    path: PathBuf,
    saved: OnDisk,
}

impl OffsetStore {
    /// Load the offsets saved in `state_dir` (none yet is fine).
    pub fn open(state_dir: &Path) -> Result<Self, AgentError> {
        let path = state_dir.join(FILE_NAME);
        let saved = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|err| AgentError::Offsets {
                path: path.clone(),
                message: err.to_string(),
            })?,
            Err(err) if err.kind() == io::ErrorKind::NotFound => OnDisk::default(),
            Err(err) => {
                return Err(AgentError::Offsets {
                    path,
                    message: err.to_string(),
                })
            }
        };
        Ok(Self { path, saved })
    }

    /// Where reading of `source` (a configured path) resumes.
    pub fn get(&self, source: &str) -> Option<FilePos> {
        self.saved.files.get(source).copied()
    }

    /// Record new positions and save them; call only once their lines are safe (accepted by
    /// sentineld or written to the disk buffer).
    pub fn commit(&mut self, positions: &BTreeMap<String, FilePos>) -> io::Result<()> {
        if positions.is_empty() {
            return Ok(());
        }
        let changed = positions
            .iter()
            .any(|(source, pos)| self.saved.files.get(source) != Some(pos));
        if !changed {
            return Ok(());
        }
        self.saved
            .files
            .extend(positions.iter().map(|(k, v)| (k.clone(), *v)));
        let json = serde_json::to_vec_pretty(&self.saved).map_err(io::Error::other)?;
        write_atomically(&self.path, &json)
    }
}

/// Replace `path` with `bytes` so that after a crash it holds either the old or the new bytes.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut temp_name = path.as_os_str().to_owned();
    temp_name.push(".tmp");
    let temp = PathBuf::from(temp_name);
    let mut file = std::fs::File::create(&temp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&temp, path)?;
    // The rename itself must reach the disk too.
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::sources::tail::FileId;

    fn pos(ino: u64, offset: u64) -> FilePos {
        FilePos {
            file: FileId { dev: 7, ino },
            offset,
        }
    }

    #[test]
    fn commits_survive_a_reopen_and_merge_per_source() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = OffsetStore::open(dir.path()).unwrap();
        assert_eq!(store.get("/a"), None);
        store
            .commit(&BTreeMap::from([("/a".to_string(), pos(1, 10))]))
            .unwrap();
        store
            .commit(&BTreeMap::from([("/b".to_string(), pos(2, 5))]))
            .unwrap();
        store
            .commit(&BTreeMap::from([("/a".to_string(), pos(3, 4))]))
            .unwrap();
        let reopened = OffsetStore::open(dir.path()).unwrap();
        assert_eq!(reopened.get("/a"), Some(pos(3, 4)));
        assert_eq!(reopened.get("/b"), Some(pos(2, 5)));
        let text = std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap();
        assert!(text.contains("\"ino\": 3"), "{text}");
        assert!(!dir.path().join("offsets.json.tmp").exists());
    }

    #[test]
    fn a_leftover_temp_file_is_ignored_and_a_corrupt_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = OffsetStore::open(dir.path()).unwrap();
        store
            .commit(&BTreeMap::from([("/a".to_string(), pos(1, 10))]))
            .unwrap();
        // a crash between write and rename leaves only the temp file half-written
        std::fs::write(dir.path().join("offsets.json.tmp"), b"{\"files\":{\"/a\":").unwrap();
        assert_eq!(
            OffsetStore::open(dir.path()).unwrap().get("/a"),
            Some(pos(1, 10))
        );
        std::fs::write(dir.path().join(FILE_NAME), b"garbage").unwrap();
        let err = OffsetStore::open(dir.path()).err().unwrap().to_string();
        assert!(
            err.contains("offsets.json") && err.contains("move it away"),
            "{err}"
        );
    }
}
