//! Drift, as plain logic: what a running experiment's kernel state reads now against what it read
//! right after apply, whether someone else changed it, and what its rollback may still undo.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::action::Action;
use crate::event::DriftCause;

/// A qdisc as a dump reports it: handle, kind and raw options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeenQdisc {
    pub handle: u32,
    pub kind: String,
    pub options: Vec<u8>,
}

impl SeenQdisc {
    /// "tbf 5e1d:"
    pub fn name(&self) -> String {
        format!("{} {:x}:", self.kind, self.handle >> 16)
    }
}

/// What the host reports now of one action's change (read through `ChaosHost::observe`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "seen", rename_all = "snake_case")]
pub enum Observed {
    /// The interface's root qdisc (None: the dump has none), and for a scoped fault the fault
    /// qdisc under our class.
    Qdisc {
        root: Option<SeenQdisc>,
        leaf: Option<SeenQdisc>,
    },
    /// Each file the change writes, once, in the order of its first write, with what it holds.
    Cgroup { files: Vec<(String, String)> },
    /// Whether our blackhole route (protocol and metric ours) is in the main table.
    Route { present: bool },
    /// Nothing to compare: a signal, a pause, a container action.
    Unwatched,
}

/// A cgroup file that holds another value than the one the experiment read back after its write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewritten {
    pub file: String,
    pub ours: String,
    pub found: String,
}

/// Someone else's change to one action's kernel state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drift {
    /// Another root qdisc sits where ours was.
    QdiscReplaced {
        ours: String,
        found: SeenQdisc,
    },
    /// No root qdisc of anyone's: ours was deleted and the kernel's default is back.
    QdiscRemoved {
        ours: String,
    },
    /// Ours is still the root, but its options (or its fault qdisc's) were changed.
    QdiscChanged {
        ours: String,
    },
    CgroupRewritten {
        files: Vec<Rewritten>,
    },
    RouteRemoved,
}

impl Drift {
    pub fn cause(&self) -> DriftCause {
        match self {
            Self::QdiscReplaced { .. } => DriftCause::QdiscReplaced,
            Self::QdiscRemoved { .. } => DriftCause::QdiscRemoved,
            Self::QdiscChanged { .. } => DriftCause::QdiscChanged,
            Self::CgroupRewritten { .. } => DriftCause::CgroupRewritten,
            Self::RouteRemoved => DriftCause::RouteRemoved,
        }
    }

    /// What is there now, in a line people read.
    pub fn detail(&self) -> String {
        match self {
            Self::QdiscReplaced { ours, found } => {
                format!("{} replaced our {ours} as the root qdisc", found.name())
            }
            Self::QdiscRemoved { ours } => {
                format!("our {ours} was deleted; the kernel's default qdisc is back")
            }
            Self::QdiscChanged { ours } => format!("our {ours} has other options now"),
            Self::CgroupRewritten { files } => files
                .iter()
                .map(|r| format!("{} is {} (ours was {})", r.file, r.found, r.ours))
                .collect::<Vec<_>>()
                .join(", "),
            Self::RouteRemoved => "our blackhole route was deleted".into(),
        }
    }
}

/// Compare what `now` reads with the `baseline` read right after apply. None: nothing changed,
/// or nothing can be compared (different shapes, an action of an earlier release).
pub fn compare(baseline: &Observed, now: &Observed) -> Option<Drift> {
    match (baseline, now) {
        (
            Observed::Qdisc {
                root: Some(ours),
                leaf: our_leaf,
            },
            Observed::Qdisc { root, leaf },
        ) => match root {
            // handle 0 is the kernel's default (noqueue, pfifo_fast, mq): nobody's configuration
            None => Some(Drift::QdiscRemoved { ours: ours.name() }),
            Some(root) if root.handle == 0 => Some(Drift::QdiscRemoved { ours: ours.name() }),
            Some(root) if root.handle != ours.handle || root.kind != ours.kind => {
                Some(Drift::QdiscReplaced {
                    ours: ours.name(),
                    found: root.clone(),
                })
            }
            // an htb root's options carry a packet counter (direct_pkts): only its leaf is compared
            Some(root)
                if (root.kind != "htb" && root.options != ours.options) || leaf != our_leaf =>
            {
                Some(Drift::QdiscChanged { ours: ours.name() })
            }
            Some(_) => None,
        },
        (Observed::Cgroup { files: ours }, Observed::Cgroup { files: now }) => {
            let files: Vec<Rewritten> = ours
                .iter()
                .filter_map(|(file, value)| {
                    let found = now.iter().find(|(f, _)| f == file).map(|(_, v)| v)?;
                    (found != value).then(|| Rewritten {
                        file: file.clone(),
                        ours: value.clone(),
                        found: found.clone(),
                    })
                })
                .collect();
            (!files.is_empty()).then_some(Drift::CgroupRewritten { files })
        }
        (Observed::Route { present: true }, Observed::Route { present: false }) => {
            Some(Drift::RouteRemoved)
        }
        _ => None,
    }
}

/// What rollback does with an action whose state drifted.
#[derive(Debug, Clone, PartialEq)]
pub enum Undo {
    /// Revert this action (the journaled one, or one narrowed to what is still ours); `note`
    /// says what was left alone.
    Revert { action: Box<Action>, note: String },
    /// Nothing of ours is left to undo.
    Leave { note: String },
}

/// Undo only what is still ours: a foreign root qdisc is neither deleted nor covered by the
/// qdisc `force` had saved; a rewritten cgroup file keeps its new value.
pub fn undo(action: &Action, drift: &Drift) -> Undo {
    let revert = |note: String| Undo::Revert {
        action: Box::new(action.clone()),
        note,
    };
    match (drift, action) {
        (Drift::QdiscReplaced { found, .. }, Action::Qdisc { replaced, .. }) => {
            let mut note = format!("left {} in place (not ours)", found.name());
            if let Some(saved) = replaced {
                note.push_str(&format!(
                    "; the {} {:x}: we had replaced is not re-created over it",
                    saved.kind,
                    saved.handle >> 16
                ));
            }
            Undo::Leave { note }
        }
        (Drift::QdiscRemoved { ours }, Action::Qdisc { replaced, .. }) => match replaced {
            // the configured qdisc we displaced is ours to give back; the default is nobody's
            Some(saved) => revert(format!(
                "our {ours} had been deleted by someone else; re-creating the {} {:x}: it replaced",
                saved.kind,
                saved.handle >> 16
            )),
            None => Undo::Leave {
                note: format!("our {ours} had already been deleted by someone else"),
            },
        },
        (Drift::QdiscChanged { ours }, Action::Qdisc { .. }) => revert(format!(
            "our {ours} had its options changed by someone else; deleted all the same (it carries our handle)"
        )),
        (Drift::CgroupRewritten { files }, Action::Cgroup(change)) => {
            let foreign: BTreeSet<&str> = files.iter().map(|r| r.file.as_str()).collect();
            let kept: Vec<String> = files
                .iter()
                .map(|r| {
                    format!(
                        "left {}={} (written by someone else; ours was {})",
                        r.file, r.found, r.ours
                    )
                })
                .collect();
            let note = kept.join(", ");
            let mut narrowed = change.clone();
            narrowed
                .restore
                .retain(|(file, _)| !foreign.contains(file.as_str()));
            match narrowed.restore.is_empty() {
                true => Undo::Leave { note },
                false => Undo::Revert {
                    action: Box::new(Action::Cgroup(narrowed)),
                    note,
                },
            }
        }
        (Drift::RouteRemoved, Action::Route { destination, .. }) => Undo::Leave {
            note: format!(
                "our blackhole route to {} had already been deleted by someone else",
                destination.net
            ),
        },
        // a drift of another shape than its action cannot come from `compare`; undo as journaled
        _ => revert(String::new()),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::chaos::action::SavedQdisc;
    use crate::chaos::cgroup::CgroupChange;
    use crate::chaos::netns::NetnsPin;

    fn qdisc(handle: u32, kind: &str, options: &[u8]) -> SeenQdisc {
        SeenQdisc {
            handle,
            kind: kind.into(),
            options: options.to_vec(),
        }
    }

    fn seen(root: Option<SeenQdisc>, leaf: Option<SeenQdisc>) -> Observed {
        Observed::Qdisc { root, leaf }
    }

    fn files(pairs: &[(&str, &str)]) -> Observed {
        Observed::Cgroup {
            files: pairs
                .iter()
                .map(|(f, v)| (f.to_string(), v.to_string()))
                .collect(),
        }
    }

    const OURS: u32 = 0x5e1d_0000;

    /// (case, baseline, now, the cause found or None)
    #[test]
    fn compare_finds_each_kind_of_foreign_change() {
        let tbf = || Some(qdisc(OURS, "tbf", &[1, 2, 3]));
        let htb = || Some(qdisc(OURS, "htb", &[9]));
        let leaf = || Some(qdisc(0x5e1e_0000, "tbf", &[1]));
        let cases: Vec<(&str, Observed, Observed, Option<DriftCause>)> = vec![
            ("unchanged tbf", seen(tbf(), None), seen(tbf(), None), None),
            (
                "another root qdisc",
                seen(tbf(), None),
                seen(Some(qdisc(0x0001_0000, "htb", &[])), None),
                Some(DriftCause::QdiscReplaced),
            ),
            (
                "our handle, another kind",
                seen(tbf(), None),
                seen(Some(qdisc(OURS, "htb", &[])), None),
                Some(DriftCause::QdiscReplaced),
            ),
            (
                "the default is back",
                seen(tbf(), None),
                seen(Some(qdisc(0, "noqueue", &[])), None),
                Some(DriftCause::QdiscRemoved),
            ),
            (
                "no root at all",
                seen(tbf(), None),
                seen(None, None),
                Some(DriftCause::QdiscRemoved),
            ),
            (
                "tc qdisc change on ours",
                seen(tbf(), None),
                seen(Some(qdisc(OURS, "tbf", &[1, 2, 4])), None),
                Some(DriftCause::QdiscChanged),
            ),
            (
                "scoped, unchanged",
                seen(htb(), leaf()),
                seen(htb(), leaf()),
                None,
            ),
            (
                "scoped: traffic moved the htb root's direct_pkts counter",
                seen(htb(), leaf()),
                seen(Some(qdisc(OURS, "htb", &[10])), leaf()),
                None,
            ),
            (
                "scoped, fault qdisc changed",
                seen(htb(), leaf()),
                seen(htb(), Some(qdisc(0x5e1e_0000, "tbf", &[2]))),
                Some(DriftCause::QdiscChanged),
            ),
            (
                "scoped, fault qdisc deleted",
                seen(htb(), leaf()),
                seen(htb(), None),
                Some(DriftCause::QdiscChanged),
            ),
            (
                "cgroup unchanged",
                files(&[
                    ("cpu.cfs_quota_us", "10000"),
                    ("cpu.cfs_period_us", "100000"),
                ]),
                files(&[
                    ("cpu.cfs_quota_us", "10000"),
                    ("cpu.cfs_period_us", "100000"),
                ]),
                None,
            ),
            (
                "cgroup limit rewritten",
                files(&[("memory.limit_in_bytes", "67108864")]),
                files(&[("memory.limit_in_bytes", "134217728")]),
                Some(DriftCause::CgroupRewritten),
            ),
            (
                "a file that cannot be read now is not a drift",
                files(&[("memory.max", "67108864")]),
                files(&[]),
                None,
            ),
            (
                "route still there",
                Observed::Route { present: true },
                Observed::Route { present: true },
                None,
            ),
            (
                "route deleted",
                Observed::Route { present: true },
                Observed::Route { present: false },
                Some(DriftCause::RouteRemoved),
            ),
            (
                "nothing read after apply (a row of an earlier release)",
                Observed::Unwatched,
                seen(None, None),
                None,
            ),
            (
                "shapes differ",
                Observed::Route { present: true },
                files(&[]),
                None,
            ),
        ];
        for (case, baseline, now, want) in cases {
            let got = compare(&baseline, &now);
            assert_eq!(got.as_ref().map(Drift::cause), want, "{case}: {got:?}");
            if let Some(drift) = got {
                assert!(!drift.detail().is_empty(), "{case}");
            }
        }
    }

    fn qdisc_action(replaced: Option<SavedQdisc>) -> Action {
        Action::Qdisc {
            netns: NetnsPin {
                path: None,
                pid: None,
                inode: 1,
                device: 2,
            },
            interface: "veth-a".into(),
            ifindex: 2,
            handle: OURS,
            qdisc: "tbf".into(),
            options: vec![1],
            replaced,
            tree: None,
            ingress: None,
        }
    }

    fn v1_cpu() -> Action {
        Action::Cgroup(CgroupChange {
            dir: PathBuf::from("/sys/fs/cgroup/cpu/app"),
            inode: 7,
            apply: vec![
                ("cpu.cfs_quota_us".into(), "-1".into()),
                ("cpu.cfs_period_us".into(), "50000".into()),
                ("cpu.cfs_quota_us".into(), "10000".into()),
            ],
            restore: vec![
                ("cpu.cfs_quota_us".into(), "-1".into()),
                ("cpu.cfs_period_us".into(), "100000".into()),
                ("cpu.cfs_quota_us".into(), "-1".into()),
            ],
        })
    }

    fn rewritten(file: &str, ours: &str, found: &str) -> Rewritten {
        Rewritten {
            file: file.into(),
            ours: ours.into(),
            found: found.into(),
        }
    }

    /// What rollback still undoes after each drift: (case, action, drift, the restore writes
    /// left, or None when nothing is undone, and a word the note must hold).
    #[test]
    fn rollback_undoes_only_what_is_still_ours() {
        let saved = SavedQdisc {
            handle: 0x0001_0000,
            kind: "htb".into(),
            options: vec![],
        };
        let foreign = qdisc(0x0002_0000, "tbf", &[]);
        type Case = (
            &'static str,
            Action,
            Drift,
            Option<Vec<(String, String)>>,
            &'static str,
        );
        let cases: Vec<Case> = vec![
            (
                "replaced: the foreign root stays",
                qdisc_action(None),
                Drift::QdiscReplaced {
                    ours: "tbf 5e1d:".into(),
                    found: foreign.clone(),
                },
                None,
                "left tbf 2: in place",
            ),
            (
                "replaced: nor is the saved qdisc re-created over it",
                qdisc_action(Some(saved.clone())),
                Drift::QdiscReplaced {
                    ours: "tbf 5e1d:".into(),
                    found: foreign,
                },
                None,
                "not re-created",
            ),
            (
                "removed: nothing of ours left",
                qdisc_action(None),
                Drift::QdiscRemoved {
                    ours: "tbf 5e1d:".into(),
                },
                None,
                "already been deleted",
            ),
            (
                "removed: the configured qdisc we displaced comes back",
                qdisc_action(Some(saved)),
                Drift::QdiscRemoved {
                    ours: "tbf 5e1d:".into(),
                },
                Some(vec![]),
                "re-creating the htb 1:",
            ),
            (
                "changed: ours is deleted all the same",
                qdisc_action(None),
                Drift::QdiscChanged {
                    ours: "tbf 5e1d:".into(),
                },
                Some(vec![]),
                "deleted all the same",
            ),
            (
                "quota rewritten: only the period is restored",
                v1_cpu(),
                Drift::CgroupRewritten {
                    files: vec![rewritten("cpu.cfs_quota_us", "10000", "20000")],
                },
                Some(vec![("cpu.cfs_period_us".into(), "100000".into())]),
                "left cpu.cfs_quota_us=20000",
            ),
            (
                "both rewritten: nothing written back",
                v1_cpu(),
                Drift::CgroupRewritten {
                    files: vec![
                        rewritten("cpu.cfs_quota_us", "10000", "20000"),
                        rewritten("cpu.cfs_period_us", "50000", "100000"),
                    ],
                },
                None,
                "ours was 50000",
            ),
            (
                "route deleted: nothing to delete",
                Action::Route {
                    netns: NetnsPin {
                        path: None,
                        pid: None,
                        inode: 1,
                        device: 2,
                    },
                    destination: "10.254.0.2".parse().unwrap(),
                    metric: 0x5e1d,
                },
                Drift::RouteRemoved,
                None,
                "10.254.0.2/32",
            ),
        ];
        for (case, action, drift, writes, word) in cases {
            let (reverted, note) = match undo(&action, &drift) {
                Undo::Revert { action: done, note } => (Some(*done), note),
                Undo::Leave { note } => (None, note),
            };
            assert!(note.contains(word), "{case}: {note}");
            match (writes, reverted) {
                (None, None) => {}
                (Some(writes), Some(Action::Cgroup(change))) => {
                    assert_eq!(change.restore, writes, "{case}")
                }
                (Some(_), Some(done)) => assert_eq!(done, action, "{case}: reverted as journaled"),
                (want, got) => panic!("{case}: want {want:?}, got {got:?}"),
            }
        }
    }

    /// `chaos_drifted` and its cause are journaled with snake_case words and read back.
    #[test]
    fn chaos_drifted_round_trips_with_its_cause() {
        let drift = Drift::CgroupRewritten {
            files: vec![rewritten("memory.limit_in_bytes", "67108864", "134217728")],
        };
        let event = crate::event::Event {
            at: crate::event::Timestamp(5),
            kind: crate::event::EventKind::ChaosDrifted {
                experiment: "x1".into(),
                profile: Some("squeeze".into()),
                action: "/sys/fs/cgroup/memory/app memory.limit_in_bytes=67108864".into(),
                cause: drift.cause(),
                detail: drift.detail(),
            },
        };
        let json = serde_json::to_string(&event).unwrap();
        assert!(
            json.contains(r#""kind":"chaos_drifted""#)
                && json.contains(r#""cause":"cgroup_rewritten""#),
            "{json}"
        );
        let read: crate::event::Event = serde_json::from_str(&json).unwrap();
        assert_eq!(read, event);
        assert_eq!(
            read.kind.summary(),
            "chaos x1: drifted (cgroup_rewritten): memory.limit_in_bytes is 134217728 (ours was 67108864)"
        );
        // a cause no release wrote is refused
        assert!(serde_json::from_str::<crate::event::Event>(
            &json.replace("cgroup_rewritten", "gone")
        )
        .is_err());
    }
}
