//! `Action`: one change to the host, with its target pinned (netns inode, ifindex, cgroup inode,
//! pid + start time) and the pre-image needed to undo it. Journaled before it is applied.

use serde::{Deserialize, Serialize};

use super::cgroup::CgroupChange;
use super::netns::NetnsPin;
use super::spec::ContainerAction;

/// A root qdisc that was there before and that `force` replaced: re-created on rollback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedQdisc {
    pub handle: u32,
    pub kind: String,
    pub options: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    Qdisc {
        netns: NetnsPin,
        interface: String,
        ifindex: i32,
        handle: u32,
        qdisc: String,
        options: Vec<u8>,
        replaced: Option<SavedQdisc>,
    },
    Cgroup(CgroupChange),
    Signal {
        pid: i32,
        start: u64,
        signal: String,
    },
    Pause {
        pid: i32,
        start: u64,
    },
    Container {
        id: String,
        name: String,
        action: ContainerAction,
    },
}

impl Action {
    pub fn describe(&self) -> String {
        match self {
            Self::Qdisc {
                netns,
                interface,
                ifindex,
                handle,
                qdisc,
                replaced,
                ..
            } => {
                let mut text = format!(
                    "{qdisc} {:x}: on {interface} (ifindex {ifindex}) in {}",
                    handle >> 16,
                    netns.describe()
                );
                if let Some(saved) = replaced {
                    text.push_str(&format!(
                        ", replacing {} {:x}:",
                        saved.kind,
                        saved.handle >> 16
                    ));
                }
                text
            }
            Self::Cgroup(change) => {
                let files: Vec<String> = change
                    .apply
                    .iter()
                    .map(|(file, value)| format!("{file}={value}"))
                    .collect();
                format!("{} {}", change.dir.display(), files.join(" "))
            }
            Self::Signal { pid, signal, .. } => format!("{signal} to pid {pid}"),
            Self::Pause { pid, .. } => format!("SIGSTOP pid {pid} (SIGCONT on rollback)"),
            Self::Container { name, action, .. } => {
                format!("docker {action:?} {name}").to_lowercase()
            }
        }
    }

    /// Whether rollback has anything to undo (a kill is not undone).
    pub fn is_reversible(&self) -> bool {
        match self {
            Self::Signal { .. } => false,
            Self::Container { action, .. } => *action == ContainerAction::Pause,
            _ => true,
        }
    }
}
