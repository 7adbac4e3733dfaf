//! Reading back what an action changed, now, for the drift check (`drift::compare`): the root
//! qdisc, the cgroup files, the blackhole route, each read in its pinned target (host edge).

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;

use netlink_packet_route::AddressFamily;
use nix::libc::ENODEV;

use super::action::Action;
use super::cgroup::CgroupChange;
use super::drift::{Observed, SeenQdisc};
use super::netlink::{Qdisc, RouteSocket};
use super::spec::Destination;
use super::ChaosError;

fn kernel(what: &str, err: super::netlink::KernelError) -> ChaosError {
    if err.errno == ENODEV {
        return ChaosError::TargetGone(format!("{what}: the interface is gone"));
    }
    ChaosError::Kernel {
        what: what.to_string(),
        detail: err.to_string(),
    }
}

fn seen(qdisc: &Qdisc) -> SeenQdisc {
    SeenQdisc {
        handle: qdisc.handle,
        kind: qdisc.kind.clone(),
        options: qdisc.options.clone(),
    }
}

/// What the kernel holds now of `action`'s change; `TargetGone` when its target is not there.
pub fn observe(action: &Action) -> Result<Observed, ChaosError> {
    match action {
        // Not watched yet: an ingress fault's qdisc sits on its ifb, not on the target's root
        // (whose root is not ours to compare), and a unit's limits are read over D-Bus.
        Action::Qdisc {
            ingress: Some(_), ..
        }
        | Action::Unit(_) => Ok(Observed::Unwatched),
        Action::Qdisc {
            netns,
            interface,
            ifindex,
            tree,
            ..
        } => netns.run(|| {
            // the pinned index may now name another interface: then ours is gone
            if super::netns::ifindex(interface).ok() != Some(*ifindex) {
                return Err(ChaosError::TargetGone(format!(
                    "interface {interface} (ifindex {ifindex}) is gone"
                )));
            }
            let mut socket = RouteSocket::open().map_err(|e| kernel("opening rtnetlink", e))?;
            let qdiscs = socket
                .qdiscs(*ifindex)
                .map_err(|e| kernel("listing qdiscs", e))?;
            let root = qdiscs.iter().find(|q| q.is_root()).map(seen);
            let leaf = tree.as_ref().and_then(|tree| {
                qdiscs
                    .iter()
                    .find(|q| q.handle == tree.leaf_handle && q.parent == tree.classid)
                    .map(seen)
            });
            Ok(Observed::Qdisc { root, leaf })
        }),
        Action::Cgroup(change) => cgroup(change),
        Action::Route {
            netns,
            destination,
            metric,
        } => netns.run(|| route(destination, *metric)),
        // A burner may end before the experiment by design (its own `duration`); a fill file
        // is the experiment's own: neither is kernel state someone else would rewrite.
        Action::Signal { .. }
        | Action::Pause { .. }
        | Action::Container { .. }
        | Action::Stress(_)
        | Action::DiskFill(_) => Ok(Observed::Unwatched),
    }
}

/// The files the change writes, each once, as they read now; the directory must be the one
/// pinned (same inode).
fn cgroup(change: &CgroupChange) -> Result<Observed, ChaosError> {
    let inode = std::fs::metadata(&change.dir).map(|m| m.ino()).ok();
    if inode != Some(change.inode) {
        return Err(ChaosError::TargetGone(format!(
            "cgroup {} no longer exists",
            change.dir.display()
        )));
    }
    let mut done = BTreeSet::new();
    let mut files = Vec::new();
    for (file, _) in &change.apply {
        if !done.insert(file.as_str()) {
            continue;
        }
        let path = change.dir.join(file);
        let value = std::fs::read_to_string(&path)
            .map_err(|err| ChaosError::Cgroup(format!("cannot read {}: {err}", path.display())))?;
        files.push((file.clone(), value.trim().to_string()));
    }
    Ok(Observed::Cgroup { files })
}

fn route(destination: &Destination, metric: u32) -> Result<Observed, ChaosError> {
    let mut socket = RouteSocket::open().map_err(|e| kernel("opening rtnetlink", e))?;
    let family = match destination.net {
        ipnet::IpNet::V4(_) => AddressFamily::Inet,
        ipnet::IpNet::V6(_) => AddressFamily::Inet6,
    };
    let present = socket
        .routes(family)
        .map_err(|e| kernel("listing routes", e))?
        .iter()
        .filter_map(|payload| super::route::parse_route(payload))
        .any(|r| r.net == destination.net && r.is_ours(metric));
    Ok(Observed::Route { present })
}
