//! The state directory's own files: a lock so that one sentineld (or one rollback) uses it at a
//! time, and the last accepted config, which rollback reads when the current one is broken.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use super::DaemonError;

/// Held (flock) by the running daemon and by `sentineld rollback`; holds the holder's pid.
pub const LOCK_FILE: &str = "sentineld.lock";
/// The text of the last config the daemon accepted, at start or on reload.
pub const LAST_GOOD_FILE: &str = "last-good.toml";

/// The state directory, locked for this process until dropped. The kernel drops the lock when
/// the process dies, `kill -9` included, so a crash never leaves the directory locked.
#[derive(Debug)]
pub struct StateLock {
    _file: Flock<File>,
}

impl StateLock {
    /// Lock `state_dir` (which must exist) or say who holds it.
    pub fn acquire(state_dir: &Path) -> Result<Self, DaemonError> {
        let path = state_dir.join(LOCK_FILE);
        let io_error = |source| DaemonError::StateFile {
            path: path.clone(),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(&path)
            .map_err(io_error)?;
        let mut locked = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(locked) => locked,
            Err((mut file, nix::errno::Errno::EWOULDBLOCK)) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                return Err(DaemonError::StateBusy {
                    state_dir: state_dir.to_path_buf(),
                    pid: pid.trim().parse().ok(),
                });
            }
            Err((_, errno)) => return Err(io_error(errno.into())),
        };
        let pid = format!("{}\n", std::process::id());
        locked
            .set_len(0)
            .and_then(|()| locked.rewind())
            .and_then(|()| locked.write_all(pid.as_bytes()))
            .map_err(io_error)?;
        Ok(Self { _file: locked })
    }
}

/// Keep `source` as the last accepted config: written whole or not at all, readable by root only
/// (a config may hold tokens).
pub fn remember_accepted(state_dir: &Path, source: &str) -> Result<(), DaemonError> {
    let path = state_dir.join(LAST_GOOD_FILE);
    let temp = state_dir.join(format!(".{LAST_GOOD_FILE}.tmp"));
    let io_error = |source| DaemonError::StateFile {
        path: path.clone(),
        source,
    };
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temp)?;
        file.write_all(source.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temp, &path)?;
        File::open(state_dir)?.sync_all()
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written.map_err(io_error)
}

/// The last accepted config's text; `None` when there is none yet (or it cannot be read).
pub fn last_accepted(state_dir: &Path) -> Option<String> {
    match std::fs::read_to_string(state_dir.join(LAST_GOOD_FILE)) {
        Ok(text) => Some(text),
        Err(err) if err.kind() == ErrorKind::NotFound => None,
        Err(err) => {
            tracing::warn!(error = %err, "cannot read the last accepted config; rollback uses defaults");
            None
        }
    }
}

/// Where an earlier daemon may have kept state, in the order to look: the configured (or
/// given) directory, then, for a non-root run that was not told one, the fallback that the
/// daemon uses when the configured one is not writable.
pub fn candidates(wanted: PathBuf, explicit: bool, is_root: bool) -> Vec<PathBuf> {
    let mut dirs = vec![wanted];
    if !explicit && !is_root {
        let fallback = crate::config::paths::user_state_dir();
        if !dirs.contains(&fallback) {
            dirs.push(fallback);
        }
    }
    dirs
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn the_lock_is_exclusive_names_its_holder_and_is_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let held = StateLock::acquire(dir.path()).unwrap();
        // a second open file description of the same file is refused, as another process is
        match StateLock::acquire(dir.path()) {
            Err(DaemonError::StateBusy { state_dir, pid }) => {
                assert_eq!(state_dir, dir.path());
                assert_eq!(pid, Some(std::process::id()));
            }
            other => panic!("{other:?}"),
        }
        drop(held);
        StateLock::acquire(dir.path()).unwrap();
    }

    #[test]
    fn the_busy_error_says_who_and_what_to_do() {
        let err = DaemonError::StateBusy {
            state_dir: "/var/lib/sentinel".into(),
            pid: Some(42),
        };
        assert_eq!(
            err.to_string(),
            "sentineld (pid 42) is running on state directory /var/lib/sentinel; it rolls back its own experiments (sentinelctl chaos stop), or stop it first"
        );
        let err = DaemonError::StateBusy {
            state_dir: "/s".into(),
            pid: None,
        };
        assert!(err
            .to_string()
            .starts_with("another sentineld is running on state directory /s;"));
    }

    #[test]
    fn last_good_is_replaced_whole_and_private() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(last_accepted(dir.path()), None);
        remember_accepted(dir.path(), "[daemon]\n").unwrap();
        remember_accepted(dir.path(), "[chaos]\n").unwrap();
        assert_eq!(last_accepted(dir.path()).as_deref(), Some("[chaos]\n"));
        let mode = std::fs::metadata(dir.path().join(LAST_GOOD_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [LAST_GOOD_FILE], "no temp file is left");
    }

    #[test]
    fn a_write_that_fails_names_the_file() {
        let err = remember_accepted(Path::new("/proc/sentinel-cannot-exist"), "x").unwrap_err();
        assert!(
            err.to_string()
                .contains("/proc/sentinel-cannot-exist/last-good.toml"),
            "{err}"
        );
    }

    #[test]
    fn non_root_also_looks_at_the_fallback_unless_told() {
        let wanted = PathBuf::from("/var/lib/sentinel");
        assert_eq!(
            candidates(wanted.clone(), false, true),
            std::slice::from_ref(&wanted)
        );
        assert_eq!(
            candidates(wanted.clone(), true, false),
            std::slice::from_ref(&wanted)
        );
        let dirs = candidates(wanted.clone(), false, false);
        assert_eq!(dirs[0], wanted);
        assert_eq!(dirs.len(), 2);
    }
}
