//! Binds the control socket with its mode and group, refusing to steal a live daemon's socket.

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use nix::unistd::Group;
use tokio::net::UnixListener;

use super::DaemonError;

pub struct BoundSocket {
    pub listener: UnixListener,
    /// Group that owns the socket file, which decides who may call mutating routes.
    pub gid: u32,
    pub notes: Vec<String>,
}

pub fn bind(path: &Path, mode: u32, group: &str) -> Result<BoundSocket, DaemonError> {
    let socket_error = |source| DaemonError::Socket {
        path: path.to_path_buf(),
        source,
    };
    if let Ok(metadata) = std::fs::symlink_metadata(path) {
        if !metadata.file_type().is_socket() {
            return Err(DaemonError::SocketPathTaken {
                path: path.to_path_buf(),
            });
        }
        // A socket someone still answers on belongs to a running daemon: leave it alone.
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(DaemonError::AlreadyRunning {
                path: path.to_path_buf(),
            });
        }
        std::fs::remove_file(path).map_err(socket_error)?;
    }
    let listener = UnixListener::bind(path).map_err(socket_error)?;
    let mut notes = Vec::new();
    let wanted = Group::from_name(group).ok().flatten();
    let chown_error = match &wanted {
        Some(found) => nix::unistd::chown(path, None, Some(found.gid)).err(),
        None => None,
    };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(socket_error)?;
    let gid = std::fs::metadata(path).map_err(socket_error)?.gid();
    if wanted.as_ref().map(|g| g.gid.as_raw()) != Some(gid) {
        let in_force = Group::from_gid(nix::unistd::Gid::from_raw(gid))
            .ok()
            .flatten()
            .map_or_else(|| format!("gid {gid}"), |g| g.name);
        let why = match chown_error {
            Some(err) => format!("cannot give the socket to group {group} ({err})"),
            None => format!("group {group} does not exist (create it: groupadd --system {group})"),
        };
        notes.push(format!(
            "{why}; mutating routes are open to root and members of group {in_force}"
        ));
    }
    Ok(BoundSocket {
        listener,
        gid,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn binds_with_mode_and_replaces_only_stale_sockets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let bound = bind(&path, 0o640, "no-such-group-sentinel-test").unwrap();
        let metadata = std::fs::metadata(&path).unwrap();
        assert_eq!(metadata.permissions().mode() & 0o777, 0o640);
        assert!(
            bound.notes[0].contains("does not exist"),
            "{:?}",
            bound.notes
        );

        // live: refused
        let err = bind(&path, 0o640, "x").err().unwrap();
        assert!(matches!(err, DaemonError::AlreadyRunning { .. }), "{err}");

        // stale (listener gone): replaced
        drop(bound);
        bind(&path, 0o660, "x").unwrap();

        // not a socket: refused
        let file = dir.path().join("plain");
        std::fs::write(&file, "x").unwrap();
        assert!(matches!(
            bind(&file, 0o660, "x").err().unwrap(),
            DaemonError::SocketPathTaken { .. }
        ));
    }
}
