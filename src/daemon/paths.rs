//! Decides where the state directory and control socket go. Root uses the configured paths or
//! fails loudly; an unprivileged run falls back to paths it can write, and says which.

use std::io::ErrorKind;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use super::DaemonError;
use crate::config::{paths, DaemonSection};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimePaths {
    pub state_dir: PathBuf,
    pub socket: PathBuf,
    /// One line per fallback taken, for the log and `sentinelctl status`.
    pub notes: Vec<String>,
}

/// The state directory, created if needed; a non-root run falls back to one it can write
/// (and says so in `notes`).
pub fn state_dir(
    wanted: &Path,
    is_root: bool,
    notes: &mut Vec<String>,
) -> Result<PathBuf, DaemonError> {
    usable_dir(
        wanted,
        0o750,
        is_root,
        paths::user_state_dir(),
        "state directory",
        notes,
    )
}

/// The control socket's path, its directory created; the same fallback as the state directory.
pub fn socket(
    section: &DaemonSection,
    is_root: bool,
    notes: &mut Vec<String>,
) -> Result<PathBuf, DaemonError> {
    let socket_dir = section
        .socket
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let fallback_dir = paths::user_runtime_dir();
    let chosen_dir = usable_dir(
        socket_dir,
        0o755,
        is_root,
        fallback_dir.clone(),
        "socket directory",
        notes,
    )?;
    Ok(if chosen_dir == socket_dir {
        section.socket.clone()
    } else {
        fallback_dir.join(paths::SOCKET_FILE_NAME)
    })
}

fn usable_dir(
    wanted: &Path,
    mode: u32,
    is_root: bool,
    fallback: PathBuf,
    what: &str,
    notes: &mut Vec<String>,
) -> Result<PathBuf, DaemonError> {
    match ensure_writable_dir(wanted, mode) {
        Ok(()) => Ok(wanted.to_path_buf()),
        Err(err) if !is_root && is_permission_problem(&err) => {
            ensure_writable_dir(&fallback, 0o700).map_err(|source| DaemonError::Directory {
                path: fallback.clone(),
                source,
            })?;
            notes.push(format!(
                "{what} {} is not writable by this user ({err}); using {} instead",
                wanted.display(),
                fallback.display()
            ));
            Ok(fallback)
        }
        Err(source) => Err(DaemonError::Directory {
            path: wanted.to_path_buf(),
            source,
        }),
    }
}

fn is_permission_problem(err: &std::io::Error) -> bool {
    matches!(
        err.kind(),
        ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem
    )
}

fn ensure_writable_dir(path: &Path, mode: u32) -> std::io::Result<()> {
    if !path.is_dir() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(mode)
            .create(path)?;
    }
    nix::unistd::access(
        path,
        nix::unistd::AccessFlags::W_OK | nix::unistd::AccessFlags::X_OK,
    )
    .map_err(std::io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uses_configured_paths_when_writable() {
        let dir = tempfile::tempdir().unwrap();
        let section = DaemonSection {
            state_dir: dir.path().join("state"),
            socket: dir.path().join("run/s.sock"),
            ..DaemonSection::default()
        };
        let mut notes = Vec::new();
        let state = state_dir(&section.state_dir, false, &mut notes).unwrap();
        let socket = socket(&section, false, &mut notes).unwrap();
        assert_eq!(state, dir.path().join("state"));
        assert_eq!(socket, dir.path().join("run/s.sock"));
        assert!(notes.is_empty());
        assert!(state.is_dir());
    }

    #[test]
    fn root_never_falls_back() {
        let wanted = PathBuf::from("/proc/sentinel-cannot-exist");
        let err = state_dir(&wanted, true, &mut Vec::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("/proc/sentinel-cannot-exist"), "{err}");
    }
}
