//! Ingress faults: an ifb device in the target's namespace and the target's `ingress` qdisc with
//! a u32 match-all filter whose mirred action redirects every received packet to the ifb, on
//! whose root the fault sits. The ifb's name and the filter's prio mark them ours for the sweep.

use nix::libc::{EINVAL, ENODEV, ENOENT};
use serde::{Deserialize, Serialize};

use super::netlink::{Link, RouteSocket, TcObject};
use super::qdisc::kernel;
use super::tc::{attributes, nla, NLA_F_NESTED};
use super::ChaosError;

/// The ingress qdisc's handle (ffff:) and its parent (TC_H_INGRESS): fixed by the kernel.
pub const INGRESS_HANDLE: u32 = 0xFFFF_0000;
pub const TC_H_INGRESS: u32 = 0xFFFF_FFF1;
const ETH_P_ALL: u16 = 0x0003;
const TCA_U32_SEL: u16 = 5;
const TCA_U32_ACT: u16 = 7;
const TC_U32_TERMINAL: u8 = 1;
const TCA_ACT_KIND: u16 = 1;
const TCA_ACT_OPTIONS: u16 = 2;
const TCA_MIRRED_PARMS: u16 = 2;
/// `action` of a redirect: the packet is taken from the device it arrived on.
const TC_ACT_STOLEN: i32 = 4;
/// mirred's `eaction`: redirect to the egress of the target device (the ifb).
pub const TCA_EGRESS_REDIR: i32 = 1;
/// The longest interface name (IFNAMSIZ 16, with its NUL).
const IFNAME_MAX: usize = 15;

/// What an ingress fault adds to its qdisc action: the ifb carrying the fault. Journaled
/// before anything is created, so a restart after `kill -9` knows what to delete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ingress {
    pub ifb: String,
}

/// `sntl<handle major>-<target ifindex>`, e.g. `sntl5e1d-3`: ours, this daemon's, for that
/// interface; None when it would not fit in an interface name.
pub fn ifb_name(handle_major: u16, target_ifindex: i32) -> Option<String> {
    let name = format!("sntl{handle_major:04x}-{target_ifindex}");
    (name.len() <= IFNAME_MAX).then_some(name)
}

/// The target ifindex an ifb name of ours encodes; None for any other name.
pub fn target_of(name: &str, handle_major: u16) -> Option<i32> {
    name.strip_prefix(&format!("sntl{handle_major:04x}-"))?
        .parse()
        .ok()
        .filter(|index: &i32| *index > 0)
}

/// The redirect filter's tcmsg `info`: prio = our handle major (the sweep's marker), protocol
/// all (network order), as `tc filter add ... prio P protocol all` sends it.
pub fn filter_info(handle_major: u16) -> u32 {
    ((handle_major as u32) << 16) | ETH_P_ALL.to_be() as u32
}

/// u32's TCA_OPTIONS for `u32 match u32 0 0 action mirred egress redirect dev IFB`: a
/// selector with one key that matches every packet, and one mirred action.
pub fn redirect_options(ifb_ifindex: i32) -> Vec<u8> {
    let mut selector = vec![TC_U32_TERMINAL, 0, 1, 0];
    selector.extend([0u8; 12]); // offmask, off, offoff, hoff, hmask
    selector.extend([0u8; 16]); // key: mask 0, value 0, off 0, offmask 0
    let mut parms = Vec::with_capacity(28);
    // struct tc_mirred: tc_gen (index, capab, action, refcnt, bindcnt), eaction, ifindex
    for word in [0, 0, TC_ACT_STOLEN, 0, 0, TCA_EGRESS_REDIR, ifb_ifindex] {
        parms.extend(word.to_ne_bytes());
    }
    let mut action = nla(TCA_ACT_KIND, b"mirred\0");
    action.extend(nla(
        TCA_ACT_OPTIONS | NLA_F_NESTED,
        &nla(TCA_MIRRED_PARMS, &parms),
    ));
    let mut out = nla(TCA_U32_SEL, &selector);
    out.extend(nla(
        TCA_U32_ACT | NLA_F_NESTED,
        &nla(1 | NLA_F_NESTED, &action),
    ));
    out
}

fn find(bytes: &[u8], kind: u16) -> Option<&[u8]> {
    attributes(bytes)
        .into_iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, v)| v)
}

/// A dumped u32 filter's mirred action: (eaction, ifindex), when it has one.
pub fn dumped_redirect(options: &[u8]) -> Option<(i32, i32)> {
    let actions = find(options, TCA_U32_ACT)?;
    attributes(actions).into_iter().find_map(|(_, action)| {
        let kind = find(action, TCA_ACT_KIND)?;
        if kind.strip_suffix(b"\0").unwrap_or(kind) != b"mirred" {
            return None;
        }
        let parms = find(find(action, TCA_ACT_OPTIONS)?, TCA_MIRRED_PARMS)?;
        let word = |at: usize| Some(i32::from_ne_bytes(parms.get(at..at + 4)?.try_into().ok()?));
        Some((word(20)?, word(24)?))
    })
}

/// Whether `ifindex` has an ingress (or clsact) qdisc, and its kind.
pub fn ingress_qdisc(socket: &mut RouteSocket, ifindex: i32) -> Result<Option<String>, ChaosError> {
    Ok(socket
        .qdiscs(ifindex)
        .map_err(|err| kernel("listing qdiscs", err))?
        .into_iter()
        .find(|q| q.parent == TC_H_INGRESS)
        .map(|q| q.kind))
}

/// The u32 filters with our prio on `ifindex`'s ingress qdisc: (eaction, ifindex) of each
/// one's redirect. Empty when there is no ingress qdisc.
fn our_redirects(
    socket: &mut RouteSocket,
    ifindex: i32,
    handle_major: u16,
) -> Result<Vec<Option<(i32, i32)>>, ChaosError> {
    if ingress_qdisc(socket, ifindex)?.is_none() {
        return Ok(Vec::new());
    }
    Ok(socket
        .dump_tc(TcObject::Filter, ifindex, INGRESS_HANDLE)
        .map_err(|err| kernel("listing ingress filters", err))?
        .into_iter()
        .filter(|f| f.kind == "u32" && f.info == filter_info(handle_major))
        .map(|f| dumped_redirect(&f.options))
        .filter(Option::is_some)
        .collect())
}

fn link_named(socket: &mut RouteSocket, name: &str) -> Result<Option<Link>, ChaosError> {
    Ok(socket
        .links()
        .map_err(|err| kernel("listing links", err))?
        .into_iter()
        .find(|l| l.name == name))
}

/// Create the ifb, up; its ifindex, read back from the link dump.
pub fn create(socket: &mut RouteSocket, name: &str) -> Result<i32, ChaosError> {
    socket
        .add_ifb(name)
        .map_err(|err| kernel("adding an ifb device", err))?;
    match link_named(socket, name)? {
        Some(link) if link.kind == "ifb" => Ok(link.index),
        other => Err(ChaosError::Kernel {
            what: "ifb read-back".into(),
            detail: format!("after the kernel's ACK the link {name} is {other:?}, not an ifb"),
        }),
    }
}

/// The target's ingress qdisc and the filter redirecting to the ifb, then both read back.
pub fn redirect(
    socket: &mut RouteSocket,
    target: i32,
    ifb: i32,
    handle_major: u16,
) -> Result<String, ChaosError> {
    socket
        .add_tc(
            TcObject::Qdisc,
            target,
            INGRESS_HANDLE,
            TC_H_INGRESS,
            0,
            "ingress",
            &[],
        )
        .map_err(|err| kernel("adding ingress", err))?;
    socket
        .add_tc(
            TcObject::Filter,
            target,
            0,
            INGRESS_HANDLE,
            filter_info(handle_major),
            "u32",
            &redirect_options(ifb),
        )
        .map_err(|err| kernel("adding a u32 filter with a mirred redirect", err))?;
    let kind = ingress_qdisc(socket, target)?;
    let redirects = our_redirects(socket, target, handle_major)?;
    if kind.as_deref() != Some("ingress") || redirects != [Some((TCA_EGRESS_REDIR, ifb))] {
        return Err(ChaosError::Kernel {
            what: "ingress redirect read-back".into(),
            detail: format!(
                "the ingress qdisc is {kind:?} and its filters of prio {handle_major:#x} redirect {redirects:?}, not to ifindex {ifb} alone"
            ),
        });
    }
    Ok(format!(
        "ingress ffff: with a u32 filter (prio {handle_major:#x}) redirecting to ifindex {ifb} verified"
    ))
}

/// Remove the target's ingress qdisc when it carries our filter, then the ifb (and with it
/// the fault on its root); both read back. What is not ours, or already gone, is left.
pub fn remove(
    socket: &mut RouteSocket,
    target: i32,
    ifb: &str,
    handle_major: u16,
) -> Result<String, ChaosError> {
    let mut outcome = Vec::new();
    let ours = !our_redirects(socket, target, handle_major)?.is_empty();
    if ours {
        match socket.delete_qdisc(target, INGRESS_HANDLE, TC_H_INGRESS, "ingress") {
            Ok(()) => outcome.push("ingress ffff: deleted".to_string()),
            Err(err) if [ENOENT, EINVAL, ENODEV].contains(&err.errno) => {
                outcome.push(format!("ingress ffff: was not present ({err})"))
            }
            Err(err) => return Err(kernel("deleting ingress", err)),
        }
    } else {
        outcome.push("no ingress filter of ours".into());
    }
    match link_named(socket, ifb)? {
        Some(link) if link.kind == "ifb" => match socket.delete_link(link.index) {
            Ok(()) => outcome.push(format!("ifb {ifb} deleted")),
            Err(err) if err.errno == ENODEV => outcome.push(format!("ifb {ifb} was gone")),
            Err(err) => return Err(kernel("deleting the ifb device", err)),
        },
        Some(link) => outcome.push(format!(
            "{ifb} is a {:?} link, not our ifb: left",
            link.kind
        )),
        None => outcome.push(format!("ifb {ifb} was not present")),
    }
    let left_link = link_named(socket, ifb)?.is_some_and(|l| l.kind == "ifb");
    let left_filter = !our_redirects(socket, target, handle_major)?.is_empty();
    if left_link || left_filter {
        return Err(ChaosError::Kernel {
            what: "rollback".into(),
            detail: format!(
                "still there after the deletes: ifb {ifb}: {left_link}, our ingress filter: {left_filter}"
            ),
        });
    }
    Ok(outcome.join("; "))
}

/// Ingress faults of ours in the calling thread's namespace: each ifb named ours, and each
/// interface whose ingress qdisc carries a filter of our prio, as (target ifindex, its name
/// or "" when it is gone, ifb name).
pub fn found(
    socket: &mut RouteSocket,
    handle_major: u16,
) -> Result<Vec<(i32, String, String)>, ChaosError> {
    let links = socket.links().map_err(|err| kernel("listing links", err))?;
    let name_of = |index: i32| {
        links
            .iter()
            .find(|l| l.index == index)
            .map_or(String::new(), |l| l.name.clone())
    };
    let mut found: Vec<(i32, String, String)> = links
        .iter()
        .filter(|l| l.kind == "ifb")
        .filter_map(|l| {
            let target = target_of(&l.name, handle_major)?;
            Some((target, name_of(target), l.name.clone()))
        })
        .collect();
    for link in &links {
        if found.iter().any(|(target, _, _)| *target == link.index) {
            continue;
        }
        if !our_redirects(socket, link.index, handle_major)?.is_empty() {
            if let Some(name) = ifb_name(handle_major, link.index) {
                found.push((link.index, link.name.clone(), name));
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(text: &str) -> Vec<u8> {
        text.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    }

    #[test]
    fn ifb_names_are_ours_and_fit() {
        assert_eq!(ifb_name(0x5e1d, 3).as_deref(), Some("sntl5e1d-3"));
        assert_eq!(target_of("sntl5e1d-3", 0x5e1d), Some(3));
        // another daemon's, someone else's, or not an index
        for name in [
            "sntl5e60-3",
            "ifb0",
            "sntl5e1d-",
            "sntl5e1d-x",
            "sntl5e1d-0",
        ] {
            assert_eq!(target_of(name, 0x5e1d), None, "{name}");
        }
        assert_eq!(ifb_name(0x5e1d, 999_999).unwrap().len(), 15);
        assert_eq!(ifb_name(0x5e1d, 1_000_000), None);
    }

    /// `tc filter add dev X parent ffff: protocol all prio 24093 u32 match u32 0 0 action
    /// mirred egress redirect dev ifb` (iproute2 6.1): the selector, then the action nest
    /// (kind "mirred", parms with action STOLEN, eaction EGRESS_REDIR and the ifindex).
    #[test]
    fn the_redirect_filter_matches_tc() {
        assert_eq!(filter_info(0x5e1d), 0x5e1d_0300);
        let options = redirect_options(9);
        let sel = find(&options, TCA_U32_SEL).unwrap();
        assert_eq!(
            sel,
            hex("01 00 01 00 00 00 00 00 00 00 00 00 00 00 00 00 \
                 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00")
        );
        assert_eq!(dumped_redirect(&options), Some((TCA_EGRESS_REDIR, 9)));
        let action = attributes(find(&options, TCA_U32_ACT).unwrap())[0].1;
        let parms = find(find(action, TCA_ACT_OPTIONS).unwrap(), TCA_MIRRED_PARMS).unwrap();
        assert_eq!(parms.len(), 28, "struct tc_mirred");
        assert_eq!(&parms[8..12], &TC_ACT_STOLEN.to_ne_bytes());
        // a filter without actions, or with another action, redirects nowhere
        assert_eq!(dumped_redirect(&nla(TCA_U32_SEL, sel)), None);
        let gact = nla(TCA_U32_ACT, &nla(1, &nla(TCA_ACT_KIND, b"gact\0")));
        assert_eq!(dumped_redirect(&gact), None);
        for end in 0..options.len() {
            let _ = dumped_redirect(&options[..end]);
        }
    }
}
