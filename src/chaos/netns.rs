//! Network namespaces: the daemon's own, a named one under /run/netns, or a process's
//! (a container's). Entered with setns on a dedicated thread; identified by inode so a reused name
//! or pid never redirects a rollback.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use nix::sched::{setns, unshare, CloneFlags};
use serde::{Deserialize, Serialize};

use super::ChaosError;

pub const NAMED_NETNS_DIR: &str = "/run/netns";

/// Which namespace, and the identity it had when the experiment was journaled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetnsPin {
    /// None: the daemon's own namespace.
    pub path: Option<PathBuf>,
    /// For a container or process namespace: its pid and start time (pid reuse guard).
    pub pid: Option<(i32, u64)>,
    pub inode: u64,
    pub device: u64,
}

impl NetnsPin {
    pub fn own() -> Result<Self, ChaosError> {
        let (inode, device) = identity(&PathBuf::from("/proc/self/ns/net"))?;
        Ok(Self {
            path: None,
            pid: None,
            inode,
            device,
        })
    }

    pub fn named(name: &str) -> Result<Self, ChaosError> {
        if name.contains('/') || name.is_empty() || name == ".." {
            return Err(ChaosError::Target(format!("invalid netns name \"{name}\"")));
        }
        let path = PathBuf::from(NAMED_NETNS_DIR).join(name);
        let (inode, device) = identity(&path)?;
        Ok(Self {
            path: Some(path),
            pid: None,
            inode,
            device,
        })
    }

    pub fn of_pid(pid: i32) -> Result<Self, ChaosError> {
        let start = super::process::start_time(pid)?;
        let path = PathBuf::from(format!("/proc/{pid}/ns/net"));
        let (inode, device) = identity(&path)?;
        Ok(Self {
            path: Some(path),
            pid: Some((pid, start)),
            inode,
            device,
        })
    }

    pub fn describe(&self) -> String {
        match (&self.path, self.pid) {
            (None, _) => format!("host netns (inode {})", self.inode),
            (Some(_), Some((pid, _))) => format!("netns of pid {pid} (inode {})", self.inode),
            (Some(path), None) => format!("netns {} (inode {})", path.display(), self.inode),
        }
    }

    /// Open the namespace again, refusing if it is no longer the one we pinned.
    fn open_verified(&self) -> Result<Option<File>, ChaosError> {
        let Some(path) = &self.path else {
            let own = Self::own()?;
            return match (own.inode, own.device) == (self.inode, self.device) {
                true => Ok(None),
                false => Err(ChaosError::TargetGone(
                    "the daemon's network namespace changed".into(),
                )),
            };
        };
        let file = File::open(path)
            .map_err(|err| ChaosError::TargetGone(format!("{}: {err}", path.display())))?;
        let meta = file
            .metadata()
            .map_err(|err| ChaosError::TargetGone(format!("{}: {err}", path.display())))?;
        if (meta.ino(), meta.dev()) != (self.inode, self.device) {
            return Err(ChaosError::TargetGone(format!(
                "{} is another namespace now (inode {} instead of {})",
                path.display(),
                meta.ino(),
                self.inode
            )));
        }
        if let Some((pid, start)) = self.pid {
            if super::process::start_time(pid).ok() != Some(start) {
                return Err(ChaosError::TargetGone(format!("process {pid} has exited")));
            }
        }
        Ok(Some(file))
    }

    /// Run `work` inside this namespace, on a thread of its own: setns changes only the calling
    /// thread, and a netlink socket stays bound to the namespace it was created in.
    pub fn run<T: Send>(
        &self,
        work: impl FnOnce() -> Result<T, ChaosError> + Send,
    ) -> Result<T, ChaosError> {
        let file = self.open_verified()?;
        std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    if let Some(file) = file {
                        setns(&file, CloneFlags::CLONE_NEWNET).map_err(|err| {
                            ChaosError::Target(format!("cannot enter {}: {err}", self.describe()))
                        })?;
                        // Close it here: holding it keeps a dead namespace alive.
                        drop(file);
                    }
                    work()
                })
                .join()
                // Unreachable in the binaries: a panic aborts them (crate::panic_policy).
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }
}

/// Run `work` in a brand-new, empty network namespace that disappears with the thread.
pub fn run_in_scratch<T: Send>(
    work: impl FnOnce() -> Result<T, ChaosError> + Send,
) -> Result<T, ChaosError> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                unshare(CloneFlags::CLONE_NEWNET).map_err(|err| {
                    ChaosError::Target(format!("cannot create a scratch netns: {err}"))
                })?;
                work()
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Named namespaces under /run/netns (the orphan sweep visits each).
pub fn named() -> Vec<String> {
    std::fs::read_dir(NAMED_NETNS_DIR)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn identity(path: &PathBuf) -> Result<(u64, u64), ChaosError> {
    let meta = std::fs::metadata(path)
        .map_err(|err| ChaosError::Target(format!("{}: {err}", path.display())))?;
    Ok((meta.ino(), meta.dev()))
}

/// The interface's index, read inside the namespace.
pub fn ifindex(name: &str) -> Result<i32, ChaosError> {
    nix::net::if_::if_nametoindex(name)
        .map(|index| index as i32)
        .map_err(|_| ChaosError::Target(format!("no interface \"{name}\" in this namespace")))
}
