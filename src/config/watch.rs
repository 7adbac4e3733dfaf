//! Watches the config file for changes so edits reload without a SIGHUP.
//!
//! Editors rarely write in place: vim and many others write a new file and rename it over the old
//! one, and Kubernetes-style deployments swap a symlink. A watch on the file's inode would go
//! deaf after the first such save, so we watch the *directories* that hold the file and every
//! link of its symlink chain, and wake on any change to a name in that chain. Spurious wake-ups
//! are harmless: the reload compares content hashes and does nothing when nothing changed.
//! The secret files the config names (`token_file`, `url_file`, ...) are watched the same way, so
//! rotating one reloads too.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use thiserror::Error;
use tokio::sync::mpsc;

#[derive(Debug, Error)]
pub enum WatchError {
    #[error("cannot watch {path} for config changes: {source}")]
    Watch {
        path: PathBuf,
        #[source]
        source: notify::Error,
    },
}

/// Keeps the watch alive; dropping it stops watching.
pub struct ConfigWatcher {
    watcher: RecommendedWatcher,
    config_path: PathBuf,
    /// Secret files of the config in force; a change to one is a reason to reload.
    secret_files: Vec<PathBuf>,
    watched_dirs: BTreeSet<PathBuf>,
    names: Arc<Mutex<BTreeSet<OsString>>>,
}

impl ConfigWatcher {
    /// Start watching `config_path`; each relevant change sends `()` on `changed` (coalesced:
    /// a full channel means a reload is already pending).
    pub fn start(config_path: &Path, changed: mpsc::Sender<()>) -> Result<Self, WatchError> {
        let names: Arc<Mutex<BTreeSet<OsString>>> = Arc::default();
        let filter = Arc::clone(&names);
        let watcher = notify::recommended_watcher(move |result: notify::Result<notify::Event>| {
            let relevant = match result {
                // Opening and reading are not changes; the reload itself reads the config and
                // its secret files, and must not wake itself up again.
                Ok(event) if is_read_only(&event.kind) => false,
                Ok(event) => {
                    let names = filter.lock().unwrap_or_else(|p| p.into_inner());
                    event.paths.is_empty()
                        || event.paths.iter().any(|path| {
                            path.file_name().is_some_and(|name| {
                                names.contains(name) || name.to_string_lossy().starts_with("..")
                            })
                        })
                }
                // An error from the backend (e.g. queue overflow): better to re-read once.
                Err(_) => true,
            };
            if relevant {
                let _ = changed.try_send(());
            }
        })
        .map_err(|source| WatchError::Watch {
            path: config_path.to_path_buf(),
            source,
        })?;
        let mut this = Self {
            watcher,
            config_path: config_path.to_path_buf(),
            secret_files: Vec::new(),
            watched_dirs: BTreeSet::new(),
            names,
        };
        this.refresh()?;
        Ok(this)
    }

    /// Watch these secret files too (replacing the previous set), then [`Self::refresh`].
    pub fn watch_secret_files(&mut self, paths: Vec<PathBuf>) -> Result<(), WatchError> {
        self.secret_files = paths;
        self.refresh()
    }

    /// Re-resolve the symlink chains and watch any new directories in them. Called after every
    /// reload, because a symlink swap can move the real file to a directory we did not watch.
    /// A secret file's directory that cannot be watched is logged, not fatal: reload still
    /// re-reads the file.
    pub fn refresh(&mut self) -> Result<(), WatchError> {
        let mut names = BTreeSet::new();
        self.watch_chain(&self.config_path.clone(), &mut names)?;
        for secret in self.secret_files.clone() {
            if let Err(err) = self.watch_chain(&secret, &mut names) {
                tracing::warn!(error = %err, "a rotated secret file will be seen on the next reload only");
            }
        }
        *self.names.lock().unwrap_or_else(|p| p.into_inner()) = names;
        Ok(())
    }

    fn watch_chain(
        &mut self,
        path: &Path,
        names: &mut BTreeSet<OsString>,
    ) -> Result<(), WatchError> {
        for link in &symlink_chain(path) {
            if let Some(name) = link.file_name() {
                names.insert(name.to_os_string());
            }
            let dir = match link.parent() {
                Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
                _ => PathBuf::from("."),
            };
            if self.watched_dirs.contains(&dir) || !dir.is_dir() {
                continue;
            }
            self.watcher
                .watch(&dir, RecursiveMode::NonRecursive)
                .map_err(|source| WatchError::Watch {
                    path: dir.clone(),
                    source,
                })?;
            self.watched_dirs.insert(dir);
        }
        Ok(())
    }

    pub fn watched_dirs(&self) -> impl Iterator<Item = &Path> {
        self.watched_dirs.iter().map(PathBuf::as_path)
    }
}

/// An access that changes nothing: open, read, or close after reading.
fn is_read_only(kind: &notify::EventKind) -> bool {
    use notify::event::{AccessKind, AccessMode};
    matches!(
        kind,
        notify::EventKind::Access(access)
            if !matches!(access, AccessKind::Close(AccessMode::Write))
    )
}

/// `path` followed by each symlink target it leads to (bounded, so a loop cannot hang us).
fn symlink_chain(path: &Path) -> Vec<PathBuf> {
    let mut chain = vec![path.to_path_buf()];
    let mut current = path.to_path_buf();
    for _ in 0..16 {
        let Ok(target) = std::fs::read_link(&current) else {
            break;
        };
        let next = match current.parent() {
            Some(parent) if target.is_relative() => parent.join(target),
            _ => target,
        };
        chain.push(next.clone());
        current = next;
    }
    if let Ok(real) = std::fs::canonicalize(path) {
        if !chain.contains(&real) {
            chain.push(real);
        }
    }
    chain
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    async fn changed_within(rx: &mut mpsc::Receiver<()>, wait: Duration) -> bool {
        tokio::time::timeout(wait, rx.recv()).await.is_ok()
    }

    fn drain(rx: &mut mpsc::Receiver<()>) {
        while rx.try_recv().is_ok() {}
    }

    #[tokio::test]
    async fn sees_in_place_writes_renames_and_symlink_swaps() {
        let dir = tempfile::tempdir().unwrap();
        let real_a = dir.path().join("a");
        let real_b = dir.path().join("b");
        std::fs::create_dir_all(&real_a).unwrap();
        std::fs::create_dir_all(&real_b).unwrap();
        std::fs::write(real_a.join("sentineld.toml"), "# a\n").unwrap();
        std::fs::write(real_b.join("sentineld.toml"), "# b\n").unwrap();
        let link = dir.path().join("sentineld.toml");
        std::os::unix::fs::symlink(real_a.join("sentineld.toml"), &link).unwrap();

        let (tx, mut rx) = mpsc::channel(1);
        let mut watcher = ConfigWatcher::start(&link, tx).unwrap();
        let wait = Duration::from_secs(5);

        // An in-place write to the symlink's target.
        std::fs::write(real_a.join("sentineld.toml"), "# a2\n").unwrap();
        assert!(changed_within(&mut rx, wait).await, "in-place write");
        tokio::time::sleep(Duration::from_millis(100)).await;
        drain(&mut rx);

        // An editor-style save: write a temp file, rename it over the target.
        let temp = real_a.join(".sentineld.toml.swp");
        std::fs::write(&temp, "# a3\n").unwrap();
        std::fs::rename(&temp, real_a.join("sentineld.toml")).unwrap();
        assert!(changed_within(&mut rx, wait).await, "write-rename");
        tokio::time::sleep(Duration::from_millis(100)).await;
        drain(&mut rx);

        // A symlink swap, done atomically with rename as deploy tools do.
        let new_link = dir.path().join(".sentineld.toml.new");
        std::os::unix::fs::symlink(real_b.join("sentineld.toml"), &new_link).unwrap();
        std::fs::rename(&new_link, &link).unwrap();
        assert!(changed_within(&mut rx, wait).await, "symlink swap");
        watcher.refresh().unwrap();
        assert!(watcher.watched_dirs().any(|d| d == real_b));
        tokio::time::sleep(Duration::from_millis(100)).await;
        drain(&mut rx);

        // After the swap, writes to the new target are seen too.
        std::fs::write(real_b.join("sentineld.toml"), "# b2\n").unwrap();
        assert!(changed_within(&mut rx, wait).await, "write after swap");
        tokio::time::sleep(Duration::from_millis(100)).await;
        drain(&mut rx);

        // Reading the config (as every reload does) does not wake us.
        std::fs::read_to_string(&link).unwrap();
        assert!(
            !changed_within(&mut rx, Duration::from_millis(500)).await,
            "a read"
        );

        // Unrelated files in the same directory do not wake us.
        std::fs::write(dir.path().join("unrelated.txt"), "x").unwrap();
        assert!(
            !changed_within(&mut rx, Duration::from_millis(500)).await,
            "unrelated file"
        );

        // A secret file in a directory of its own, once named, wakes us when rotated.
        let secrets = dir.path().join("secrets");
        std::fs::create_dir_all(&secrets).unwrap();
        std::fs::write(secrets.join("token"), "one\n").unwrap();
        watcher
            .watch_secret_files(vec![secrets.join("token")])
            .unwrap();
        assert!(watcher.watched_dirs().any(|d| d == secrets));
        let temp = secrets.join(".token.new");
        std::fs::write(&temp, "two\n").unwrap();
        std::fs::rename(&temp, secrets.join("token")).unwrap();
        assert!(changed_within(&mut rx, wait).await, "secret rotation");
    }
}
