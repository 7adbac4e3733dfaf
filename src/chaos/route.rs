//! Partitions: blackhole routes to chosen prefixes in the target's namespace, over rtnetlink
//! (no `gact` needed); marked as ours by protocol and metric, read back, compare-deleted, swept.

use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::AddressFamily;
use nix::libc::{ENOENT, ESRCH};

use super::action::Action;
use super::netlink::{KernelError, RouteSocket};
use super::netns::NetnsPin;
use super::spec::{Destination, PartitionSpec};
use super::tc::attributes;
use super::ChaosError;

/// `rtm_protocol` of our routes (unassigned in iproute2's rt_protos); with the metric (our
/// handle major) it is what a delete must match, and what the sweep looks for.
pub const ROUTE_PROTOCOL: u8 = 94;
const RTN_BLACKHOLE: u8 = 6;
const RTA_DST: u16 = 1;
const RTA_PRIORITY: u16 = 6;
const RTA_TABLE: u16 = 15;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

fn kernel(what: &str, err: KernelError) -> ChaosError {
    ChaosError::Kernel {
        what: what.to_string(),
        detail: err.to_string(),
    }
}

fn open() -> Result<RouteSocket, ChaosError> {
    RouteSocket::open().map_err(|err| kernel("opening rtnetlink", err))
}

/// The RTM_NEWROUTE / RTM_DELROUTE message of our blackhole route to `destination`.
pub fn blackhole(destination: &Destination, metric: u32) -> RouteMessage {
    let mut route = RouteMessage::default();
    let (family, address) = match destination.net {
        ipnet::IpNet::V4(net) => (AddressFamily::Inet, RouteAddress::Inet(net.network())),
        ipnet::IpNet::V6(net) => (AddressFamily::Inet6, RouteAddress::Inet6(net.network())),
    };
    route.header.address_family = family;
    route.header.destination_prefix_length = destination.net.prefix_len();
    route.header.table = RouteHeader::RT_TABLE_MAIN;
    route.header.protocol = RouteProtocol::from(ROUTE_PROTOCOL);
    route.header.scope = RouteScope::Universe;
    route.header.kind = RouteType::BlackHole;
    route.attributes.push(RouteAttribute::Destination(address));
    route.attributes.push(RouteAttribute::Priority(metric));
    route
}

/// A route as a dump reports it (only what partitions need).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpedRoute {
    pub net: ipnet::IpNet,
    pub table: u32,
    pub protocol: u8,
    pub kind: u8,
    pub metric: u32,
}

impl DumpedRoute {
    /// Ours: our protocol, blackhole, our metric, the main table.
    pub fn is_ours(&self, metric: u32) -> bool {
        self.protocol == ROUTE_PROTOCOL
            && self.kind == RTN_BLACKHOLE
            && self.metric == metric
            && self.table == RouteHeader::RT_TABLE_MAIN as u32
    }
}

/// A route from an RTM_NEWROUTE payload (`struct rtmsg`, then attributes); None when too
/// short or of another family.
pub fn parse_route(payload: &[u8]) -> Option<DumpedRoute> {
    let header = payload.get(..12)?;
    let (family, dst_len) = (header[0], header[1]);
    let mut table = header[4] as u32;
    let mut metric = 0;
    let mut dst: Option<&[u8]> = None;
    for (kind, value) in attributes(&payload[12..]) {
        match kind {
            RTA_DST => dst = Some(value),
            RTA_PRIORITY => metric = u32::from_ne_bytes(value.try_into().ok()?),
            RTA_TABLE => table = u32::from_ne_bytes(value.try_into().ok()?),
            _ => {}
        }
    }
    let net = match family {
        AF_INET => {
            let octets: [u8; 4] = dst.unwrap_or(&[0; 4]).try_into().ok()?;
            ipnet::IpNet::V4(ipnet::Ipv4Net::new(octets.into(), dst_len).ok()?)
        }
        AF_INET6 => {
            let octets: [u8; 16] = dst.unwrap_or(&[0; 16]).try_into().ok()?;
            ipnet::IpNet::V6(ipnet::Ipv6Net::new(octets.into(), dst_len).ok()?)
        }
        _ => return None,
    };
    Some(DumpedRoute {
        net,
        table,
        protocol: header[5],
        kind: header[7],
        metric,
    })
}

fn routes(socket: &mut RouteSocket, net: &ipnet::IpNet) -> Result<Vec<DumpedRoute>, ChaosError> {
    let family = match net {
        ipnet::IpNet::V4(_) => AddressFamily::Inet,
        ipnet::IpNet::V6(_) => AddressFamily::Inet6,
    };
    Ok(socket
        .routes(family)
        .map_err(|err| kernel("listing routes", err))?
        .iter()
        .filter_map(|payload| parse_route(payload))
        .collect())
}

/// Inside `pin`: one blackhole route per destination. A prefix the main table already routes
/// is refused: that route (metric 0 for a connected one) would win over ours.
pub fn plan(
    pin: NetnsPin,
    partition: &PartitionSpec,
    handle_major: u16,
) -> Result<Vec<Action>, ChaosError> {
    pin.run(|| {
        let mut socket = open()?;
        for destination in &partition.destinations {
            let existing = routes(&mut socket, &destination.net)?;
            if let Some(route) = existing.iter().find(|r| {
                r.net == destination.net && r.table == RouteHeader::RT_TABLE_MAIN as u32
            }) {
                return Err(ChaosError::Refused(format!(
                    "{} already has a route in the main table (protocol {}, metric {}): it would win over a blackhole; partition a narrower prefix",
                    destination.net, route.protocol, route.metric
                )));
            }
        }
        Ok(())
    })?;
    Ok(partition
        .destinations
        .iter()
        .map(|destination| Action::Route {
            netns: pin.clone(),
            destination: *destination,
            metric: handle_major as u32,
        })
        .collect())
}

pub fn apply(pin: &NetnsPin, destination: &Destination, metric: u32) -> Result<String, ChaosError> {
    pin.run(|| {
        let mut socket = open()?;
        socket
            .add_route(blackhole(destination, metric))
            .map_err(|err| kernel(&format!("adding a blackhole route to {destination}"), err))?;
        let found = routes(&mut socket, &destination.net)?
            .iter()
            .any(|r| r.net == destination.net && r.is_ours(metric));
        match found {
            true => Ok(format!(
                "blackhole {} verified (protocol {ROUTE_PROTOCOL}, metric {metric})",
                destination.net
            )),
            false => Err(ChaosError::Kernel {
                what: "blackhole route read-back".into(),
                detail: format!(
                    "after the kernel's ACK no blackhole route to {} is in the main table",
                    destination.net
                ),
            }),
        }
    })
}

pub fn revert(
    pin: &NetnsPin,
    destination: &Destination,
    metric: u32,
) -> Result<String, ChaosError> {
    pin.run(|| {
        let mut socket = open()?;
        let outcome = match socket.delete_route(blackhole(destination, metric)) {
            Ok(()) => format!("blackhole {}: deleted", destination.net),
            Err(err) if [ESRCH, ENOENT].contains(&err.errno) => {
                format!("blackhole {}: was not present ({err})", destination.net)
            }
            Err(err) => return Err(kernel("deleting a blackhole route", err)),
        };
        let left = routes(&mut socket, &destination.net)?
            .iter()
            .any(|r| r.net == destination.net && r.is_ours(metric));
        if left {
            return Err(ChaosError::Kernel {
                what: "rollback".into(),
                detail: format!("our blackhole route to {} is still there", destination.net),
            });
        }
        Ok(outcome)
    })
}

/// Our blackhole routes in `pin` (protocol and metric ours) that `known` does not account for.
pub fn orphans(pin: NetnsPin, handle_major: u16, known: &[Action]) -> Vec<Action> {
    let metric = handle_major as u32;
    let found = pin.run(|| {
        let mut socket = open()?;
        let mut found = Vec::new();
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let payloads = socket
                .routes(family)
                .map_err(|err| kernel("listing routes", err))?;
            found.extend(
                payloads
                    .iter()
                    .filter_map(|p| parse_route(p))
                    .filter(|r| r.is_ours(metric)),
            );
        }
        Ok(found)
    });
    let Ok(found) = found else {
        return Vec::new();
    };
    found
        .into_iter()
        .filter(|route| {
            !known.iter().any(|action| {
                matches!(action, Action::Route { netns, destination, .. }
                    if netns.inode == pin.inode && destination.net == route.net)
            })
        })
        .map(|route| Action::Route {
            netns: pin.clone(),
            destination: Destination {
                net: route.net,
                port: None,
            },
            metric,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::tc::nla;
    use netlink_packet_core::Emitable;

    fn bytes(route: &RouteMessage) -> Vec<u8> {
        let mut out = vec![0; route.buffer_len()];
        route.emit(&mut out);
        out
    }

    /// `ip route add blackhole 10.254.0.2/32 proto 94 metric 24093` (struct rtmsg: family,
    /// dst_len, src_len, tos, table, protocol, scope, type, flags; then RTA_DST, RTA_PRIORITY).
    #[test]
    fn blackhole_routes_match_ip_route() {
        let cases: Vec<(&str, Vec<u8>)> = vec![
            (
                "10.254.0.2",
                [
                    vec![2, 32, 0, 0, 254, 94, 0, 6, 0, 0, 0, 0],
                    nla(RTA_DST, &[10, 254, 0, 2]),
                    nla(RTA_PRIORITY, &0x5e1du32.to_ne_bytes()),
                ]
                .concat(),
            ),
            (
                "fd00:5e::/64",
                [
                    vec![10, 64, 0, 0, 254, 94, 0, 6, 0, 0, 0, 0],
                    nla(
                        RTA_DST,
                        &"fd00:5e::".parse::<std::net::Ipv6Addr>().unwrap().octets(),
                    ),
                    nla(RTA_PRIORITY, &0x5e1du32.to_ne_bytes()),
                ]
                .concat(),
            ),
        ];
        for (destination, want) in cases {
            let destination: Destination = destination.parse().unwrap();
            let sent = bytes(&blackhole(&destination, 0x5e1d));
            assert_eq!(sent, want, "{destination}");
            // what we send is what the dump parser reads back as ours
            let parsed = parse_route(&sent).unwrap();
            assert_eq!(parsed.net, destination.net);
            assert!(parsed.is_ours(0x5e1d), "{parsed:?}");
            assert!(!parsed.is_ours(0x5e1e), "another daemon's handle");
        }
    }

    #[test]
    fn dumped_routes_of_others_and_short_ones() {
        // a connected route: protocol kernel (2), type unicast (1), RTA_TABLE main
        let mut connected = vec![2, 24, 0, 0, 254, 2, 253, 1, 0, 0, 0, 0];
        connected.extend(nla(RTA_TABLE, &254u32.to_ne_bytes()));
        connected.extend(nla(RTA_DST, &[10, 254, 0, 0]));
        let route = parse_route(&connected).unwrap();
        assert_eq!(route.net, "10.254.0.0/24".parse::<ipnet::IpNet>().unwrap());
        assert!(!route.is_ours(0));
        // a default route has no RTA_DST
        let default = parse_route(&[10, 0, 0, 0, 254, 3, 0, 1, 0, 0, 0, 0]).unwrap();
        assert_eq!(default.net, "::/0".parse::<ipnet::IpNet>().unwrap());
        for end in 0..12 {
            assert_eq!(parse_route(&connected[..end]), None, "{end} bytes");
        }
        // another family, a bad prefix length, a wrong-sized address
        assert_eq!(parse_route(&[7, 0, 0, 0, 254, 0, 0, 1, 0, 0, 0, 0]), None);
        assert_eq!(parse_route(&[2, 33, 0, 0, 254, 0, 0, 1, 0, 0, 0, 0]), None);
        let mut short = vec![2, 8, 0, 0, 254, 0, 0, 1, 0, 0, 0, 0];
        short.extend(nla(RTA_DST, &[10, 0]));
        assert_eq!(parse_route(&short), None);
    }
}
