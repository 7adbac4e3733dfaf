//! Root qdisc faults in a pinned namespace: plan (guardrails, pre-image), apply with read-back,
//! compare-and-delete rollback, and the sweep for qdiscs carrying our handle that nobody journaled.

use nix::libc::{EINVAL, ENODEV, ENOENT, EOPNOTSUPP};

use super::action::{Action, SavedQdisc};
use super::classify::{self, Tree};
use super::ifb::{self, Ingress};
use super::netlink::{KernelError, RouteSocket, TcObject};
use super::netns::{self, NetnsPin};
use super::spec::{Direction, ExperimentSpec, Fault};
use super::{tc, ChaosError};

pub(super) fn kernel(what: &str, err: KernelError) -> ChaosError {
    let said = err.message.as_deref().unwrap_or_default();
    if err.errno == EOPNOTSUPP && what.contains("ifb") {
        return ChaosError::Unavailable(
            "ifb".into(),
            format!("kernel lacks the ifb driver (CONFIG_IFB), which ingress faults redirect through; the kernel said \"{said}\" ({err})"),
        );
    }
    if err.errno == ENOENT && what.contains("mirred") && said.contains("action") {
        return ChaosError::Unavailable(
            "mirred".into(),
            format!("kernel lacks act_mirred (CONFIG_NET_ACT_MIRRED), which ingress faults redirect with; the kernel said \"{said}\""),
        );
    }
    if err.errno == ENOENT && err.message.as_deref() == Some("TC classifier not found") {
        return ChaosError::Unavailable(
            "u32".into(),
            "kernel lacks cls_u32 (CONFIG_NET_CLS_U32), which scoped faults steer with; the kernel said \"TC classifier not found\"".into(),
        );
    }
    if err.errno == ENOENT && err.message.as_deref() == Some("Specified qdisc kind is unknown") {
        let kind = what.split_whitespace().last().unwrap_or("qdisc");
        return ChaosError::Unavailable(
            kind.to_string(),
            format!("kernel lacks sch_{kind} (CONFIG_NET_SCH_{}); the kernel said \"Specified qdisc kind is unknown\"", kind.to_uppercase()),
        );
    }
    ChaosError::Kernel {
        what: what.to_string(),
        detail: err.to_string(),
    }
}

fn open() -> Result<RouteSocket, ChaosError> {
    RouteSocket::open().map_err(|err| kernel("opening rtnetlink", err))
}

/// Inside `pin`: check the guardrails and record what the interface has now.
pub fn plan(
    pin: NetnsPin,
    spec: &ExperimentSpec,
    fault: &Fault,
    handle_major: u16,
) -> Result<Action, ChaosError> {
    let interface = spec.target.interface.clone().unwrap_or_default();
    let (kind, options) = match fault {
        Fault::Netem(netem) => ("netem", tc::netem_options(netem)),
        Fault::Tbf(tbf) => ("tbf", tc::tbf_options(tbf)),
        _ => unreachable!("only network faults reach the qdisc planner"),
    };
    let handle = (handle_major as u32) << 16;
    let scope = fault.scope();
    let tree = scope.is_scoped().then(|| classify::tree(&scope, handle));
    let ingress = match scope.direction {
        Direction::Egress => None,
        Direction::Ingress => Some(ifb_for(pin.clone(), &interface, handle_major)?),
    };
    let (ifindex, replaced) = pin.run(|| {
        let ifindex = netns::ifindex(&interface)?;
        let mut socket = open()?;
        if !spec.allow_default_route {
            let defaults = socket
                .default_route_interfaces()
                .map_err(|err| kernel("listing routes", err))?;
            if defaults.contains(&ifindex) {
                return Err(ChaosError::Refused(format!(
                    "{interface} carries the default route (this host's way out, maybe its management); set allow_default_route = true to impair it anyway"
                )));
            }
        }
        if let Some(ifb) = &ingress {
            return plan_ingress(&mut socket, &interface, ifindex, ifb).map(|()| (ifindex, None));
        }
        let root = socket
            .root_qdisc(ifindex)
            .map_err(|err| kernel("listing qdiscs", err))?;
        let replaced = match root {
            Some(root) if root.handle >> 16 == handle_major as u32 => {
                return Err(ChaosError::Refused(format!(
                    "{interface} already carries our {} {:x}: (another experiment, or one being swept)",
                    root.kind, handle_major
                )))
            }
            Some(root) if root.handle != 0 => {
                if !spec.force {
                    return Err(ChaosError::Refused(format!(
                        "{interface} has a configured root qdisc {} {:x}: that is not ours; set force = true to replace it for the experiment (it is re-created on rollback)",
                        root.kind,
                        root.handle >> 16
                    )));
                }
                Some(SavedQdisc {
                    handle: root.handle,
                    kind: root.kind,
                    options: root.options,
                })
            }
            _ => None,
        };
        Ok((ifindex, replaced))
    })?;
    Ok(Action::Qdisc {
        netns: pin,
        interface,
        ifindex,
        handle,
        qdisc: kind.to_string(),
        options,
        replaced,
        tree,
        ingress: ingress.map(|ifb| Box::new(Ingress { ifb })),
    })
}

/// The ifb name an ingress fault on `interface` gets (its ifindex is part of the name).
fn ifb_for(pin: NetnsPin, interface: &str, handle_major: u16) -> Result<String, ChaosError> {
    let ifindex = pin.run(|| netns::ifindex(interface))?;
    ifb::ifb_name(handle_major, ifindex).ok_or_else(|| {
        ChaosError::Refused(format!(
            "{interface} has ifindex {ifindex}: too large to name its ifb device within 15 characters"
        ))
    })
}

/// An ingress fault's guardrails: our ifb must not exist yet, and the interface must have no
/// ingress or clsact qdisc (it is someone else's, and ours would replace it).
fn plan_ingress(
    socket: &mut RouteSocket,
    interface: &str,
    ifindex: i32,
    ifb: &str,
) -> Result<(), ChaosError> {
    let links = socket.links().map_err(|err| kernel("listing links", err))?;
    if links.iter().any(|l| l.name == ifb) {
        return Err(ChaosError::Refused(format!(
            "{interface} already has our ingress device {ifb} (another experiment, or one being swept)"
        )));
    }
    if let Some(kind) = ifb::ingress_qdisc(socket, ifindex)? {
        return Err(ChaosError::Refused(format!(
            "{interface} has an {kind} qdisc that is not ours: an ingress fault needs the interface's ingress hook; remove it first"
        )));
    }
    Ok(())
}

/// The kind of the root qdisc an action installs: htb for a scoped fault, else the fault's.
pub fn root_kind<'a>(kind: &'a str, tree: Option<&Tree>) -> &'a str {
    match tree {
        Some(_) => "htb",
        None => kind,
    }
}

/// A scoped fault: htb root, its class, the fault qdisc under the class, the u32 filters;
/// then each read back. On an error the caller's revert deletes the root (and so the rest).
fn apply_tree(
    socket: &mut RouteSocket,
    ifindex: i32,
    handle: u32,
    kind: &str,
    options: &[u8],
    replace: bool,
    tree: &Tree,
) -> Result<String, ChaosError> {
    socket
        .add_root(ifindex, handle, "htb", &tree.root_options, replace)
        .map_err(|err| kernel("adding htb", err))?;
    socket
        .add_tc(
            TcObject::Class,
            ifindex,
            tree.classid,
            handle,
            0,
            "htb",
            &tree.class_options,
        )
        .map_err(|err| kernel("adding the htb class", err))?;
    socket
        .add_tc(
            TcObject::Qdisc,
            ifindex,
            tree.leaf_handle,
            tree.classid,
            0,
            kind,
            options,
        )
        .map_err(|err| kernel(&format!("adding {kind}"), err))?;
    for filter in &tree.filters {
        socket
            .add_tc(
                TcObject::Filter,
                ifindex,
                0,
                handle,
                filter.info(),
                "u32",
                &filter.options,
            )
            .map_err(|err| kernel("adding a u32 filter", err))?;
    }
    read_back_tree(socket, ifindex, handle, kind, options, tree).map_err(|detail| {
        ChaosError::Kernel {
            what: format!("scoped {kind} read-back"),
            detail,
        }
    })
}

/// The kernel's dump of the tree, compared with what was sent: the root htb with our handle,
/// the class and its rate, the fault qdisc's options, and each filter's classid and selector.
fn read_back_tree(
    socket: &mut RouteSocket,
    ifindex: i32,
    handle: u32,
    kind: &str,
    options: &[u8],
    tree: &Tree,
) -> Result<String, String> {
    let qdiscs = socket.qdiscs(ifindex).map_err(|e| e.to_string())?;
    match qdiscs.iter().find(|q| q.is_root()) {
        Some(root) if root.handle == handle && root.kind == "htb" => {}
        other => {
            return Err(format!(
                "the root qdisc is {:?}, not our htb",
                other.map(|q| &q.kind)
            ))
        }
    }
    let classes = socket
        .dump_tc(TcObject::Class, ifindex, 0)
        .map_err(|e| e.to_string())?;
    let class = classes
        .iter()
        .find(|c| c.handle == tree.classid && c.kind == "htb")
        .ok_or_else(|| {
            format!(
                "no htb class {:x}:{:x}",
                tree.classid >> 16,
                tree.classid & 0xffff
            )
        })?;
    let (sent, got) = (
        classify::htb_class_rate(&tree.class_options),
        classify::htb_class_rate(&class.options),
    );
    if sent != got {
        return Err(format!("htb class rate sent {sent:?}, kernel has {got:?}"));
    }
    let leaf = qdiscs
        .iter()
        .find(|q| q.handle == tree.leaf_handle && q.parent == tree.classid && q.kind == kind)
        .ok_or_else(|| format!("no {kind} {:x}: under the class", tree.leaf_handle >> 16))?;
    let verified = tc::verify_options(kind, options, &leaf.options).map_err(|e| e.to_string())?;
    let filters = socket
        .dump_tc(TcObject::Filter, ifindex, handle)
        .map_err(|e| e.to_string())?;
    for filter in &tree.filters {
        let found = filters.iter().any(|dumped| {
            dumped.kind == "u32"
                && dumped.info == filter.info()
                && classify::dumped_u32(&dumped.options).is_some_and(|(classid, sel)| {
                    classid == tree.classid && Some(sel) == filter.selector()
                })
        });
        if !found {
            return Err(format!(
                "u32 filter (prio {}, protocol {:#06x}) with its selector is not in the dump",
                filter.prio, filter.protocol
            ));
        }
    }
    Ok(format!(
        "htb {:x}: class {:x}:{:x}, {} u32 filter(s) verified; {verified}",
        handle >> 16,
        tree.classid >> 16,
        tree.classid & 0xffff,
        tree.filters.len()
    ))
}

/// The fault as the root qdisc (or scoped tree) of `ifindex`, read back.
fn apply_root(
    socket: &mut RouteSocket,
    ifindex: i32,
    handle: u32,
    kind: &str,
    options: &[u8],
    replace: bool,
    tree: Option<&Tree>,
) -> Result<String, ChaosError> {
    if let Some(tree) = tree {
        return apply_tree(socket, ifindex, handle, kind, options, replace, tree);
    }
    socket
        .add_root(ifindex, handle, kind, options, replace)
        .map_err(|err| kernel(&format!("adding {kind}"), err))?;
    let root = socket
        .root_qdisc(ifindex)
        .map_err(|err| kernel("reading back the qdisc", err))?;
    let verified = match root {
        Some(root) if root.handle == handle && root.kind == kind => {
            tc::verify_options(kind, options, &root.options)
        }
        other => Err(tc::ReadBack::NotOurs {
            kind: kind.to_string(),
            found: other.map(|q| q.kind),
        }),
    };
    verified.map_err(|mismatch| {
        let _ = socket.delete_root(ifindex, handle, kind);
        ChaosError::Kernel {
            what: format!("{kind} read-back"),
            detail: mismatch.to_string(),
        }
    })
}

#[allow(clippy::too_many_arguments)]
pub fn apply(
    pin: &NetnsPin,
    ifindex: i32,
    handle: u32,
    kind: &str,
    options: &[u8],
    replaced: Option<&SavedQdisc>,
    tree: Option<&Tree>,
    ingress: Option<&Ingress>,
) -> Result<String, ChaosError> {
    pin.run(|| {
        let mut socket = open()?;
        let Some(ingress) = ingress else {
            return apply_root(
                &mut socket,
                ifindex,
                handle,
                kind,
                options,
                replaced.is_some(),
                tree,
            );
        };
        // the fault first, then the redirect: no packet meets an ifb without its fault
        let device = ifb::create(&mut socket, &ingress.ifb)?;
        let fault = apply_root(&mut socket, device, handle, kind, options, false, tree)?;
        let major = (handle >> 16) as u16;
        let redirect = ifb::redirect(&mut socket, ifindex, device, major)?;
        Ok(format!(
            "ifb {} (ifindex {device}) verified; {fault}; {redirect}",
            ingress.ifb
        ))
    })
}

pub fn revert(
    pin: &NetnsPin,
    ifindex: i32,
    handle: u32,
    kind: &str,
    replaced: Option<&SavedQdisc>,
    tree: Option<&Tree>,
    ingress: Option<&Ingress>,
) -> Result<String, ChaosError> {
    // deleting the root takes its classes, the fault qdisc and the filters with it
    let kind = root_kind(kind, tree);
    pin.run(|| {
        let mut socket = open()?;
        if let Some(ingress) = ingress {
            // deleting the ifb takes the fault on its root with it
            return ifb::remove(&mut socket, ifindex, &ingress.ifb, (handle >> 16) as u16);
        }
        let mut outcome = match socket.delete_root(ifindex, handle, kind) {
            Ok(()) => format!("{kind} {:x}: deleted", handle >> 16),
            // Not ours any more, or already gone: nothing of ours to delete.
            Err(err) if [ENOENT, EINVAL, ENODEV].contains(&err.errno) => {
                format!("{kind} {:x}: was not present ({err})", handle >> 16)
            }
            Err(err) => return Err(kernel(&format!("deleting {kind}"), err)),
        };
        if let Some(saved) = replaced {
            socket
                .add_root(ifindex, saved.handle, &saved.kind, &saved.options, false)
                .map_err(|err| kernel(&format!("re-creating {}", saved.kind), err))?;
            outcome.push_str(&format!(
                "; {} {:x}: re-created",
                saved.kind,
                saved.handle >> 16
            ));
        }
        let root = socket
            .root_qdisc(ifindex)
            .map_err(|err| kernel("reading back after rollback", err))?;
        if root.is_some_and(|r| r.handle == handle) {
            return Err(ChaosError::Kernel {
                what: "rollback".into(),
                detail: format!("our {kind} is still the root qdisc"),
            });
        }
        Ok(outcome)
    })
}

/// Qdiscs with our handle major in `pin` that `known` does not account for.
pub fn orphans(pin: NetnsPin, handle_major: u16, known: &[Action]) -> Vec<Action> {
    let found = pin.run(|| {
        let mut socket = open()?;
        let mut found = Vec::new();
        for (target, name, ifb) in ifb::found(&mut socket, handle_major)? {
            found.push((name, target, None, Some(ifb)));
        }
        for name in interfaces()? {
            if ifb::target_of(&name, handle_major).is_some() {
                continue; // the fault on our ifb goes with the ifb
            }
            let Ok(ifindex) = netns::ifindex(&name) else {
                continue;
            };
            if let Ok(Some(root)) = socket.root_qdisc(ifindex) {
                if root.handle >> 16 == handle_major as u32 {
                    found.push((name, ifindex, Some(root), None));
                }
            }
        }
        Ok(found)
    });
    let Ok(found) = found else {
        return Vec::new();
    };
    found
        .into_iter()
        .filter(|(_, ifindex, _, ifb)| {
            !known.iter().any(|action| {
                matches!(action, Action::Qdisc { netns, ifindex: i, ingress, .. }
                    if netns.inode == pin.inode && i == ifindex
                        && ingress.as_ref().map(|i| &i.ifb) == ifb.as_ref())
            })
        })
        .map(|(interface, ifindex, root, ifb)| match (root, ifb) {
            (Some(root), _) => Action::Qdisc {
                netns: pin.clone(),
                interface,
                ifindex,
                handle: root.handle,
                qdisc: root.kind,
                options: root.options,
                replaced: None,
                tree: None,
                ingress: None,
            },
            (None, ifb) => Action::Qdisc {
                netns: pin.clone(),
                interface: match interface.is_empty() {
                    true => "(gone)".into(),
                    false => interface,
                },
                ifindex,
                handle: (handle_major as u32) << 16,
                qdisc: "ingress".into(),
                options: Vec::new(),
                replaced: None,
                tree: None,
                ingress: ifb.map(|ifb| Box::new(Ingress { ifb })),
            },
        })
        .collect()
}

/// Interface names of the calling thread's namespace. /sys shows the mounting process's
/// namespace, so names come from if_nameindex, which asks the thread's own.
fn interfaces() -> Result<Vec<String>, ChaosError> {
    let list = nix::net::if_::if_nameindex()
        .map_err(|err| ChaosError::Target(format!("cannot list interfaces: {err}")))?;
    Ok(list
        .iter()
        .map(|i| i.name().to_string_lossy().into_owned())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the kernel lacks is named, for a qdisc and for the classifier scoped faults use.
    #[test]
    fn missing_qdiscs_and_classifiers_are_named() {
        let refusal = |message: &str| KernelError {
            errno: ENOENT,
            message: Some(message.into()),
        };
        let cases = [
            (
                "adding netem",
                "Specified qdisc kind is unknown",
                "netem",
                "kernel lacks sch_netem",
            ),
            (
                "adding htb",
                "Specified qdisc kind is unknown",
                "htb",
                "kernel lacks sch_htb",
            ),
            (
                "adding a u32 filter",
                "TC classifier not found",
                "u32",
                "kernel lacks cls_u32",
            ),
        ];
        for (what, said, name, want) in cases {
            check(what, refusal(said), name, want);
        }
        // ingress faults: the kernel's words when ifb, sch_ingress or act_mirred is missing
        let unsupported = KernelError {
            errno: EOPNOTSUPP,
            message: Some("Unknown device type".into()),
        };
        check(
            "adding an ifb device",
            unsupported,
            "ifb",
            "kernel lacks the ifb driver",
        );
        check(
            "adding ingress",
            refusal("Specified qdisc kind is unknown"),
            "ingress",
            "kernel lacks sch_ingress (CONFIG_NET_SCH_INGRESS)",
        );
        check(
            "adding a u32 filter with a mirred redirect",
            refusal("Failed to load TC action module"),
            "mirred",
            "kernel lacks act_mirred (CONFIG_NET_ACT_MIRRED)",
        );
        assert!(matches!(
            kernel("adding htb", refusal("Exclusivity flag on, cannot modify")),
            ChaosError::Kernel { .. }
        ));
    }

    fn check(what: &str, err: KernelError, name: &str, want: &str) {
        match kernel(what, err) {
            ChaosError::Unavailable(got, detail) => {
                assert_eq!(got, name);
                assert!(detail.starts_with(want), "{detail}");
            }
            other => panic!("{what}: {other:?}"),
        }
    }

    #[test]
    fn a_scoped_fault_deletes_its_htb_root() {
        let tree = classify::tree(&Default::default(), 0x5e1d_0000);
        assert_eq!(root_kind("tbf", Some(&tree)), "htb");
        assert_eq!(root_kind("tbf", None), "tbf");
    }
}
