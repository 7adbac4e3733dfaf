//! Who may read evidence: spooled bundles, their manifests and local-sink copies are 0640 and
//! the directories the archive creates 0750, in the control socket's group, whatever the umask.

use std::fs::{DirBuilder, File, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

pub const FILE_MODE: u32 = 0o640;
pub const DIR_MODE: u32 = 0o750;

/// The group evidence files are given: the control socket's, so whoever may operate sentineld
/// may read its evidence. `None` leaves them in the process's group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ownership {
    pub group: Option<u32>,
}

impl Ownership {
    pub fn group(gid: u32) -> Self {
        Self { group: Some(gid) }
    }

    /// A new file at `path` for writing: a stale one is unlinked first and the new one made
    /// with O_EXCL (so never through a symlink or into someone's hard link), then fchmod'ed to
    /// 0640 and given the group, so the umask neither widens nor narrows it.
    pub fn create_file(&self, path: &Path) -> io::Result<File> {
        match std::fs::remove_file(path) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => return Err(err),
            _ => {}
        }
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(path)?;
        self.apply(&file, FILE_MODE, path)?;
        Ok(file)
    }

    /// `path` and its missing parents; those created here are 0750 in the group. Directories
    /// that already exist are left as their owner made them.
    pub fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut missing = Vec::new();
        let mut at = Some(path);
        while let Some(dir) = at.filter(|d| !d.as_os_str().is_empty()) {
            if std::fs::symlink_metadata(dir).is_ok() {
                break;
            }
            missing.push(dir);
            at = dir.parent();
        }
        for dir in missing.into_iter().rev() {
            match DirBuilder::new().mode(DIR_MODE).create(dir) {
                Ok(()) => self.apply(&File::open(dir)?, DIR_MODE, dir)?,
                // Made meanwhile by someone else (another collection): theirs to keep.
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
                Err(err) => return Err(err),
            }
        }
        if !path.is_dir() {
            return Err(io::Error::from(io::ErrorKind::NotADirectory));
        }
        Ok(())
    }

    fn apply(&self, file: &File, mode: u32, path: &Path) -> io::Result<()> {
        file.set_permissions(Permissions::from_mode(mode))?;
        if let Some(gid) = self.group {
            // Not fatal: evidence in the wrong group is still evidence (and still 0640).
            if let Err(err) = std::os::unix::fs::fchown(file, None, Some(gid)) {
                tracing::warn!("cannot give {} to group {gid}: {err}", path.display());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path)
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    }

    /// The umask itself is process-wide, so it is varied in the integration test
    /// (`archive::evidence_files_are_0640_in_the_socket_group_whatever_the_umask`), not here.
    #[test]
    fn files_and_new_directories_get_their_modes_and_group() {
        let dir = tempfile::tempdir().unwrap();
        let gid = nix::unistd::getegid().as_raw();
        let owner = Ownership::group(gid);
        let base = dir.path().join("run");
        let nested = base.join("a/b");
        owner.create_dir_all(&nested).unwrap();
        let file = nested.join("bundle.tar.gz");
        owner.create_file(&file).unwrap();
        for d in [&base, &base.join("a"), &nested] {
            assert_eq!(mode(d), DIR_MODE, "{}", d.display());
        }
        assert_eq!(mode(&file), FILE_MODE);
        assert_eq!(std::fs::metadata(&file).unwrap().gid(), gid);
        // an existing directory is left alone; a stale file is replaced, a symlink not followed
        let existing = dir.path().join("existing");
        std::fs::create_dir(&existing).unwrap();
        std::fs::set_permissions(&existing, Permissions::from_mode(0o755)).unwrap();
        owner.create_dir_all(&existing).unwrap();
        assert_eq!(mode(&existing), 0o755);
        let target = dir.path().join("target");
        std::fs::write(&target, "keep").unwrap();
        let link = existing.join("x.part");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        owner.create_file(&link).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"keep");
        assert!(std::fs::symlink_metadata(&link).unwrap().is_file());
        // a file where a directory should be
        assert!(owner.create_dir_all(&target).is_err());
    }
}
