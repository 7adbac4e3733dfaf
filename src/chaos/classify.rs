//! The bytes of a scoped network fault: an `htb` root, the class that holds the fault, and the
//! `u32` filters that steer chosen destinations (and port/protocol) into it. Pure: no socket here.
//!
//! Why htb + u32: they are the classful qdisc and the classifier that every kernel we run on
//! has (this host's has no `prio`, `flower` or `matchall`). Unclassified packets go to htb's
//! default minor, which no class has, so htb sends them on directly, unshaped.

use serde::{Deserialize, Serialize};

use super::spec::{Destination, Direction, Protocol, Scope};
use super::tc::{attributes, nla};

const TCA_HTB_PARMS: u16 = 1;
const TCA_HTB_INIT: u16 = 2;
const TCA_U32_CLASSID: u16 = 1;
const TCA_U32_SEL: u16 = 5;
const TC_U32_TERMINAL: u8 = 1;
const TC_H_HTB_VERSION: u32 = 3;
const HTB_RATE2QUANTUM: u32 = 10;
/// No class carries minor 0: unclassified traffic takes htb's direct queue, at line rate.
const HTB_DEFAULT_MINOR: u32 = 0;
/// The fault's class: `MAJOR:1`.
pub const FAULT_MINOR: u32 = 1;
/// The fault class itself never shapes: the most a u32 rate says (34 Gbit/s).
const FAULT_CLASS_RATE: u32 = u32::MAX;
const FAULT_CLASS_BURST: u64 = 64 * 1024;
const FAULT_CLASS_QUANTUM: u32 = 200_000;
const TC_LINKLAYER_ETHERNET: u8 = 1;
pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86DD;
/// Filter priorities: one per protocol, as the kernel keeps one classifier per (prio, protocol).
const PRIO_IPV4: u16 = 1;
const PRIO_IPV6: u16 = 2;

/// One u32 filter on the htb root: `info` is the tcmsg's (prio << 16 | protocol, network order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filter {
    pub protocol: u16,
    pub prio: u16,
    pub options: Vec<u8>,
}

impl Filter {
    pub fn info(&self) -> u32 {
        ((self.prio as u32) << 16) | self.protocol.to_be() as u32
    }

    /// The selector this filter matches (TCA_U32_SEL), for read-back.
    pub fn selector(&self) -> Option<&[u8]> {
        find(&self.options, TCA_U32_SEL)
    }
}

/// The tree a scoped fault installs under our root handle, journaled with the fault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    pub root_options: Vec<u8>,
    pub classid: u32,
    pub class_options: Vec<u8>,
    /// The fault qdisc's own handle (our major + 1), child of `classid`.
    pub leaf_handle: u32,
    pub filters: Vec<Filter>,
}

/// The whole plan for `scope` under root handle `handle` (major:0).
pub fn tree(scope: &Scope, handle: u32) -> Tree {
    let classid = handle | FAULT_MINOR;
    Tree {
        root_options: htb_root_options(),
        classid,
        class_options: htb_class_options(),
        leaf_handle: handle.wrapping_add(1 << 16),
        filters: filters(scope, classid),
    }
}

fn u32s(values: &[u32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_ne_bytes()).collect()
}

fn find(bytes: &[u8], kind: u16) -> Option<&[u8]> {
    attributes(bytes)
        .into_iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, v)| v)
}

/// htb's TCA_OPTIONS for the root: `struct tc_htb_glob` (version, rate2quantum, defcls,
/// debug, direct_pkts), as `tc qdisc add ... htb` sends it.
pub fn htb_root_options() -> Vec<u8> {
    nla(
        TCA_HTB_INIT,
        &u32s(&[TC_H_HTB_VERSION, HTB_RATE2QUANTUM, HTB_DEFAULT_MINOR, 0, 0]),
    )
}

/// `struct tc_ratespec` with the link layer set, so the kernel computes its own rate table.
fn ratespec(rate: u32) -> Vec<u8> {
    let mut out = vec![0, TC_LINKLAYER_ETHERNET];
    out.extend_from_slice(&0u16.to_ne_bytes()); // overhead
    out.extend_from_slice(&(-1i16).to_ne_bytes()); // cell_align
    out.extend_from_slice(&0u16.to_ne_bytes()); // mpu
    out.extend_from_slice(&rate.to_ne_bytes());
    out
}

/// htb's TCA_OPTIONS for the fault class: `struct tc_htb_opt` (rate, ceil, buffer, cbuffer,
/// quantum, level, prio). Its rate is the most a u32 says: the class holds the fault, the
/// fault qdisc under it does the shaping.
pub fn htb_class_options() -> Vec<u8> {
    let ticks = (FAULT_CLASS_BURST as u128 * 15_625_000 / FAULT_CLASS_RATE as u128) as u32;
    let mut parms = ratespec(FAULT_CLASS_RATE);
    parms.extend(ratespec(FAULT_CLASS_RATE));
    parms.extend(u32s(&[ticks, ticks, FAULT_CLASS_QUANTUM, 0, 0]));
    nla(TCA_HTB_PARMS, &parms)
}

/// The rate (bytes/s) of an htb class's TCA_OPTIONS, as sent or as the kernel dumps it.
pub fn htb_class_rate(options: &[u8]) -> Option<u32> {
    let parms = find(options, TCA_HTB_PARMS)?;
    Some(u32::from_ne_bytes(parms.get(8..12)?.try_into().ok()?))
}

/// One `struct tc_u32_key`: mask and value in network order at `off` from the network header.
fn key(mask: u32, value: u32, off: i32) -> Vec<u8> {
    let mut out = mask.to_be_bytes().to_vec();
    out.extend((value & mask).to_be_bytes());
    out.extend(off.to_ne_bytes());
    out.extend(0i32.to_ne_bytes()); // offmask
    out
}

fn prefix_mask(len: u8) -> u32 {
    match len {
        0 => 0,
        len => u32::MAX << (32 - len.min(32) as u32),
    }
}

fn ip_protocol(protocol: Protocol, v6: bool) -> u32 {
    match (protocol, v6) {
        (Protocol::Tcp, _) => 6,
        (Protocol::Udp, _) => 17,
        (Protocol::Icmp, false) => 1,
        (Protocol::Icmp, true) => 58,
    }
}

/// The keys of one filter, in the order `tc ... u32 match ip dst D match ip protocol P
/// match ip dport N` gives them; for ingress the peer is the source (`match ip src D ...
/// match ip sport N`). Ports are read at the fixed offset iproute2 uses (IPv4 without
/// options, IPv6 without extension headers).
fn keys(
    destination: Option<&Destination>,
    protocol: Option<Protocol>,
    v6: bool,
    direction: Direction,
) -> Vec<Vec<u8>> {
    let ingress = direction == Direction::Ingress;
    let mut keys = Vec::new();
    match destination.map(|d| d.net) {
        Some(ipnet::IpNet::V4(net)) => keys.push(key(
            prefix_mask(net.prefix_len()),
            u32::from(net.network()),
            if ingress { 12 } else { 16 },
        )),
        Some(ipnet::IpNet::V6(net)) => {
            let words = net.network().octets();
            let base = if ingress { 8 } else { 24 };
            for word in 0..4u8 {
                let bits = net.prefix_len().saturating_sub(word * 32);
                if bits == 0 {
                    break;
                }
                let at = word as usize * 4;
                let value = u32::from_be_bytes(words[at..at + 4].try_into().expect("4 bytes"));
                keys.push(key(prefix_mask(bits), value, base + at as i32));
            }
        }
        None => {}
    }
    if let Some(protocol) = protocol {
        let number = ip_protocol(protocol, v6);
        keys.push(match v6 {
            false => key(0x00ff_0000, number << 16, 8),
            true => key(0x0000_ff00, number << 8, 4),
        });
    }
    if let Some(port) = destination.and_then(|d| d.port) {
        let at = if v6 { 40 } else { 20 };
        keys.push(match ingress {
            false => key(0x0000_ffff, port as u32, at),
            true => key(0xffff_0000, (port as u32) << 16, at),
        });
    }
    keys
}

/// `struct tc_u32_sel` (flags, offshift, nkeys, offmask, off, offoff, hoff, hmask) + keys.
pub fn selector(keys: &[Vec<u8>]) -> Vec<u8> {
    let mut out = vec![TC_U32_TERMINAL, 0, keys.len() as u8, 0];
    out.extend([0u8; 12]);
    for key in keys {
        out.extend(key);
    }
    out
}

/// u32's TCA_OPTIONS: CLASSID, then SEL, the order `tc filter add ... u32 ... flowid` sends.
pub fn u32_options(classid: u32, keys: &[Vec<u8>]) -> Vec<u8> {
    let mut out = nla(TCA_U32_CLASSID, &classid.to_ne_bytes());
    out.extend(nla(TCA_U32_SEL, &selector(keys)));
    out
}

/// The filters for `scope`: one per destination (IPv4 at prio 1, IPv6 at prio 2), or, with a
/// protocol alone, one per IP version.
pub fn filters(scope: &Scope, classid: u32) -> Vec<Filter> {
    let filter = |destination: Option<&Destination>, v6: bool| Filter {
        protocol: if v6 { ETH_P_IPV6 } else { ETH_P_IP },
        prio: if v6 { PRIO_IPV6 } else { PRIO_IPV4 },
        options: u32_options(
            classid,
            &keys(destination, scope.protocol, v6, scope.direction),
        ),
    };
    if scope.destinations.is_empty() {
        return vec![filter(None, false), filter(None, true)];
    }
    scope
        .destinations
        .iter()
        .map(|d| filter(Some(d), d.net.addr().is_ipv6()))
        .collect()
}

/// A u32 filter as dumped: its classid and selector, when it has them (the hash table
/// entries the kernel adds have neither).
pub fn dumped_u32(options: &[u8]) -> Option<(u32, &[u8])> {
    let classid = find(options, TCA_U32_CLASSID)?;
    let classid = u32::from_ne_bytes(classid.try_into().ok()?);
    Some((classid, find(options, TCA_U32_SEL)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(text: &str) -> Vec<u8> {
        text.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    }

    fn scope(destinations: &[&str], protocol: Option<Protocol>) -> Scope {
        Scope {
            destinations: destinations.iter().map(|d| d.parse().unwrap()).collect(),
            protocol,
            direction: Direction::Egress,
        }
    }

    /// `tc qdisc add dev X root handle 5e1d: htb` (strace of tc 6.1: TCA_OPTIONS holds
    /// TCA_HTB_INIT = {3, 10, 0, 0, 0}).
    #[test]
    fn htb_root_is_tc_s_glob() {
        assert_eq!(
            htb_root_options(),
            hex("18 00 02 00 03 00 00 00 0a 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00")
        );
    }

    #[test]
    fn htb_class_layout() {
        let options = htb_class_options();
        let parms = find(&options, TCA_HTB_PARMS).unwrap();
        assert_eq!(parms.len(), 44, "struct tc_htb_opt");
        // rate and ceil: linklayer ethernet, cell_align -1, u32::MAX B/s
        for at in [0, 12] {
            assert_eq!(parms[at + 1], 1);
            assert_eq!(&parms[at + 4..at + 6], &(-1i16).to_ne_bytes());
            assert_eq!(&parms[at + 8..at + 12], &u32::MAX.to_ne_bytes());
        }
        assert_eq!(&parms[32..36], &200_000u32.to_ne_bytes(), "quantum");
        assert_eq!(htb_class_rate(&options), Some(u32::MAX));
        assert_eq!(htb_class_rate(&[]), None);
    }

    /// Selectors as `tc filter add ... u32 match ip dst D [match ip protocol P] [match ip
    /// dport N 0xffff] flowid 5e1d:1` sends them (tc's pack_key8/16/32; strace of tc 6.1).
    #[test]
    fn u32_selectors_match_tc() {
        let classid = 0x5e1d_0001;
        type Want<'a> = Vec<(u16, u16, &'a str)>;
        let cases: Vec<(Scope, Want)> = vec![
            // match ip dst 10.254.0.2/32
            (
                scope(&["10.254.0.2"], None),
                vec![(
                    ETH_P_IP,
                    1,
                    "01 00 01 00 00 00 00 00 00 00 00 00 00 00 00 00 \
                     ff ff ff ff 0a fe 00 02 10 00 00 00 00 00 00 00",
                )],
            ),
            // match ip dst 10.0.0.0/8 match ip protocol 6 0xff match ip dport 443 0xffff
            (
                scope(&["10.0.0.0/8:443"], Some(Protocol::Tcp)),
                vec![(
                    ETH_P_IP,
                    1,
                    "01 00 03 00 00 00 00 00 00 00 00 00 00 00 00 00 \
                     ff 00 00 00 0a 00 00 00 10 00 00 00 00 00 00 00 \
                     00 ff 00 00 00 06 00 00 08 00 00 00 00 00 00 00 \
                     00 00 ff ff 00 00 01 bb 14 00 00 00 00 00 00 00",
                )],
            ),
            // match ip6 dst fd00:1::/40 match ip6 protocol 17 0xff match ip6 dport 53 0xffff
            (
                scope(&["[fd00:1::/40]:53"], Some(Protocol::Udp)),
                vec![(
                    ETH_P_IPV6,
                    2,
                    "01 00 04 00 00 00 00 00 00 00 00 00 00 00 00 00 \
                     ff ff ff ff fd 00 00 01 18 00 00 00 00 00 00 00 \
                     ff 00 00 00 00 00 00 00 1c 00 00 00 00 00 00 00 \
                     00 00 ff 00 00 00 11 00 04 00 00 00 00 00 00 00 \
                     00 00 ff ff 00 00 00 35 28 00 00 00 00 00 00 00",
                )],
            ),
            // a protocol alone: one filter per IP version (icmp is 1, ICMPv6 58)
            (
                scope(&[], Some(Protocol::Icmp)),
                vec![
                    (
                        ETH_P_IP,
                        1,
                        "01 00 01 00 00 00 00 00 00 00 00 00 00 00 00 00 \
                     00 ff 00 00 00 01 00 00 08 00 00 00 00 00 00 00",
                    ),
                    (
                        ETH_P_IPV6,
                        2,
                        "01 00 01 00 00 00 00 00 00 00 00 00 00 00 00 00 \
                     00 00 ff 00 00 00 3a 00 04 00 00 00 00 00 00 00",
                    ),
                ],
            ),
            // 0.0.0.0/0: a key with mask 0 (matches every IPv4 packet)
            (
                scope(&["0.0.0.0/0"], None),
                vec![(
                    ETH_P_IP,
                    1,
                    "01 00 01 00 00 00 00 00 00 00 00 00 00 00 00 00 \
                     00 00 00 00 00 00 00 00 10 00 00 00 00 00 00 00",
                )],
            ),
        ];
        for (scope, want) in cases {
            let got = filters(&scope, classid);
            assert_eq!(got.len(), want.len(), "{scope:?}");
            for (filter, (protocol, prio, sel)) in got.iter().zip(want) {
                assert_eq!(
                    (filter.protocol, filter.prio),
                    (protocol, prio),
                    "{scope:?}"
                );
                assert_eq!(filter.selector().unwrap(), hex(sel), "{scope:?}");
                assert_eq!(
                    dumped_u32(&filter.options),
                    Some((classid, &hex(sel)[..])),
                    "{scope:?}"
                );
            }
        }
    }

    /// For ingress the peer is the packet's source: `tc ... u32 match ip src 10.254.0.2/32
    /// match ip protocol 6 0xff match ip sport 80 0xffff` and `match ip6 src fd00:5e::/64`.
    #[test]
    fn ingress_selectors_match_the_source_like_tc() {
        let ingress = |destinations: &[&str], protocol| Scope {
            direction: Direction::Ingress,
            ..scope(destinations, protocol)
        };
        let cases = [
            (
                ingress(&["10.254.0.2:80"], Some(Protocol::Tcp)),
                "01 00 03 00 00 00 00 00 00 00 00 00 00 00 00 00 \
                 ff ff ff ff 0a fe 00 02 0c 00 00 00 00 00 00 00 \
                 00 ff 00 00 00 06 00 00 08 00 00 00 00 00 00 00 \
                 ff ff 00 00 00 50 00 00 14 00 00 00 00 00 00 00",
            ),
            (
                ingress(&["fd00:5e::/64"], None),
                "01 00 02 00 00 00 00 00 00 00 00 00 00 00 00 00 \
                 ff ff ff ff fd 00 00 5e 08 00 00 00 00 00 00 00 \
                 ff ff ff ff 00 00 00 00 0c 00 00 00 00 00 00 00",
            ),
        ];
        for (scope, want) in cases {
            let got = filters(&scope, 0x5e1d_0001);
            assert_eq!(got.len(), 1);
            assert_eq!(got[0].selector().unwrap(), hex(want), "{scope:?}");
        }
    }

    #[test]
    fn filter_info_is_prio_and_protocol_in_network_order() {
        let filter = &filters(&scope(&["10.0.0.1"], None), 0x5e1d_0001)[0];
        // tc: info = TC_H_MAKE(prio << 16, htons(ETH_P_IP))
        assert_eq!(filter.info(), 0x0001_0008);
        let filter = &filters(&scope(&["::1"], None), 0x5e1d_0001)[0];
        assert_eq!(filter.info(), (2 << 16) | 0xDD86);
    }

    #[test]
    fn tree_handles() {
        let tree = tree(&scope(&["10.0.0.1"], None), 0x5e1d_0000);
        assert_eq!(tree.classid, 0x5e1d_0001);
        assert_eq!(tree.leaf_handle, 0x5e1e_0000);
        assert_eq!(tree.filters.len(), 1);
        assert_eq!(dumped_u32(&[]), None);
    }
}

/// The plan of a scoped spec, end to end: spec → the objects to create (root, class, fault
/// qdisc, filters); rollback removes them all by deleting the root (see `qdisc::revert`).
#[cfg(test)]
mod plan_tests {
    use super::*;
    use crate::chaos::spec::Fault;

    #[test]
    fn a_scoped_spec_plans_root_class_leaf_and_one_filter_per_destination() {
        let fault: Fault = serde_json::from_str(
            r#"{"kind":"tbf","rate":"1mbit/s","burst":"16KiB","limit":"32KiB",
                "destinations":["10.254.0.2","fd00::/64"],"protocol":"tcp"}"#,
        )
        .unwrap();
        let scope = fault.scope();
        assert!(scope.is_scoped());
        let plan = tree(&scope, 0x5e1d_0000);
        assert_eq!(plan.root_options, htb_root_options());
        assert_eq!(plan.class_options, htb_class_options());
        assert_eq!((plan.classid, plan.leaf_handle), (0x5e1d_0001, 0x5e1e_0000));
        let filters: Vec<(u16, u16, usize)> = plan
            .filters
            .iter()
            .map(|f| (f.protocol, f.prio, f.selector().unwrap()[2] as usize))
            .collect();
        // IPv4: dst + protocol keys; IPv6 /64: two address words + protocol
        assert_eq!(filters, [(ETH_P_IP, 1, 2), (ETH_P_IPV6, 2, 3)]);
        // an unscoped fault plans no tree
        let plain: Fault = serde_json::from_str(r#"{"kind":"netem","delay":"10ms"}"#).unwrap();
        assert!(!plain.scope().is_scoped());
    }
}
