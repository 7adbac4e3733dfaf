//! Root qdisc faults in a pinned namespace: plan (guardrails, pre-image), apply with read-back,
//! compare-and-delete rollback, and the sweep for qdiscs carrying our handle that nobody journaled.

use nix::libc::{EINVAL, ENODEV, ENOENT};

use super::action::{Action, SavedQdisc};
use super::netlink::{KernelError, RouteSocket};
use super::netns::{self, NetnsPin};
use super::spec::{ExperimentSpec, Fault};
use super::{tc, ChaosError};

fn kernel(what: &str, err: KernelError) -> ChaosError {
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
    })
}

pub fn apply(
    pin: &NetnsPin,
    ifindex: i32,
    handle: u32,
    kind: &str,
    options: &[u8],
    replaced: Option<&SavedQdisc>,
) -> Result<String, ChaosError> {
    pin.run(|| {
        let mut socket = open()?;
        socket
            .add_root(ifindex, handle, kind, options, replaced.is_some())
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
    })
}

pub fn revert(
    pin: &NetnsPin,
    ifindex: i32,
    handle: u32,
    kind: &str,
    replaced: Option<&SavedQdisc>,
) -> Result<String, ChaosError> {
    pin.run(|| {
        let mut socket = open()?;
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
        for name in interfaces()? {
            let Ok(ifindex) = netns::ifindex(&name) else {
                continue;
            };
            if let Ok(Some(root)) = socket.root_qdisc(ifindex) {
                if root.handle >> 16 == handle_major as u32 {
                    found.push((name, ifindex, root));
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
        .filter(|(_, ifindex, _)| {
            !known.iter().any(|action| {
                matches!(action, Action::Qdisc { netns, ifindex: i, .. }
                    if netns.inode == pin.inode && i == ifindex)
            })
        })
        .map(|(interface, ifindex, root)| Action::Qdisc {
            netns: pin.clone(),
            interface,
            ifindex,
            handle: root.handle,
            qdisc: root.kind,
            options: root.options,
            replaced: None,
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
