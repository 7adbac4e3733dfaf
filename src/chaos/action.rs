//! `Action`: one change to the host, with its target pinned (netns inode, ifindex, cgroup inode,
//! pid + start time) and the pre-image needed to undo it. Journaled before it is applied.

use serde::{Deserialize, Serialize};

use super::cgroup::CgroupChange;
use super::classify::Tree;
use super::ifb::Ingress;
use super::netns::NetnsPin;
use super::spec::{ContainerAction, Destination};
use super::unit::UnitChange;

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
        /// A scoped fault: the root is an htb with this tree, and `qdisc`/`options` are the
        /// fault qdisc under its class. Absent in rows of earlier releases (unscoped faults).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tree: Option<Tree>,
        /// An ingress fault: `ifindex` is the target's, whose ingress is redirected to this
        /// ifb; the root qdisc (or tree) is on the ifb. Absent for egress faults.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ingress: Option<Box<Ingress>>,
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
    /// A blackhole route (partition) in a pinned namespace, marked as ours by its protocol
    /// and metric so the delete compares them.
    Route {
        netns: NetnsPin,
        destination: Destination,
        metric: u32,
    },
    /// Runtime properties of a systemd unit (`SetUnitProperties`), with the values they replaced.
    Unit(UnitChange),
    /// A CPU or memory burner in the target's cgroup (pid journaled in its record file).
    Stress(super::stress::StressAction),
    /// A file filling a filesystem up to a ceiling.
    DiskFill(super::diskfill::FillAction),
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
                tree,
                ingress,
                ..
            } => {
                let mut text = match tree {
                    None => format!(
                        "{qdisc} {:x}: on {interface} (ifindex {ifindex}) in {}",
                        handle >> 16,
                        netns.describe()
                    ),
                    Some(tree) => format!(
                        "htb {:x}: with {qdisc} {:x}: in class {:x}:{:x} for {} u32 filter(s) on {interface} (ifindex {ifindex}) in {}",
                        handle >> 16,
                        tree.leaf_handle >> 16,
                        tree.classid >> 16,
                        tree.classid & 0xffff,
                        tree.filters.len(),
                        netns.describe()
                    ),
                };
                if let Some(ingress) = ingress {
                    let on = format!("on {interface} (ifindex {ifindex})");
                    let via = format!(
                        "on {} for the ingress of {interface} (ifindex {ifindex})",
                        ingress.ifb
                    );
                    text = text.replacen(&on, &via, 1);
                }
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
            Self::Route {
                netns, destination, ..
            } => format!("blackhole route {destination} in {}", netns.describe()),
            Self::Unit(change) => change.describe(),
            Self::Stress(stress) => {
                let dirs: Vec<String> = stress
                    .cgroups
                    .iter()
                    .map(|c| c.dir.display().to_string())
                    .collect();
                format!(
                    "burner {} with {} in {}",
                    stress.token,
                    stress.burn.describe(),
                    match dirs.is_empty() {
                        true => "its cgroup".to_string(),
                        false => dirs.join(", "),
                    }
                )
            }
            Self::DiskFill(fill) => format!("fill file {}", fill.file.display()),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A qdisc action journaled by the previous release (no `tree`) still reads, as unscoped;
    /// a scoped one and a route round-trip through the journal's JSON.
    #[test]
    fn journal_rows_of_the_previous_release_still_read() {
        let old = r#"{"kind":"qdisc","netns":{"path":"/run/netns/a","pid":null,"inode":4026532,"device":4},
            "interface":"veth-a","ifindex":2,"handle":1578958848,"qdisc":"tbf","options":[1,2],"replaced":null}"#;
        let action: Action = serde_json::from_str(old).unwrap();
        assert!(matches!(&action, Action::Qdisc { tree: None, qdisc, .. } if qdisc == "tbf"));
        assert!(!serde_json::to_string(&action).unwrap().contains("tree"));

        let netns = super::super::netns::NetnsPin {
            path: None,
            pid: None,
            inode: 1,
            device: 2,
        };
        let scope = crate::chaos::spec::Scope {
            destinations: vec!["10.0.0.2:80".parse().unwrap()],
            protocol: Some(crate::chaos::spec::Protocol::Tcp),
            direction: Default::default(),
        };
        let scoped = Action::Qdisc {
            netns: netns.clone(),
            interface: "veth-a".into(),
            ifindex: 2,
            handle: 0x5e1d_0000,
            qdisc: "tbf".into(),
            options: vec![1],
            replaced: None,
            tree: Some(crate::chaos::classify::tree(&scope, 0x5e1d_0000)),
            ingress: None,
        };
        let ingress = Action::Qdisc {
            netns: netns.clone(),
            interface: "veth-a".into(),
            ifindex: 2,
            handle: 0x5e1d_0000,
            qdisc: "netem".into(),
            options: vec![1],
            replaced: None,
            tree: None,
            ingress: Some(Box::new(Ingress {
                ifb: "sntl5e1d-2".into(),
            })),
        };
        assert_eq!(
            ingress.describe(),
            "netem 5e1d: on sntl5e1d-2 for the ingress of veth-a (ifindex 2) in host netns (inode 1)"
        );
        let route = Action::Route {
            netns,
            destination: "fd00::/64".parse().unwrap(),
            metric: 0x5e1d,
        };
        for action in [scoped, ingress, route] {
            let json = serde_json::to_string(&action).unwrap();
            assert_eq!(
                serde_json::from_str::<Action>(&json).unwrap(),
                action,
                "{json}"
            );
        }
        assert!(Action::Route {
            netns: super::super::netns::NetnsPin {
                path: None,
                pid: None,
                inode: 1,
                device: 2
            },
            destination: "10.0.0.2".parse().unwrap(),
            metric: 1
        }
        .describe()
        .starts_with("blackhole route 10.0.0.2/32 in host netns"));
    }
}
