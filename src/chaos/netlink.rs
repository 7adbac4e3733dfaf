//! A synchronous rtnetlink socket for qdiscs and routes, bound to the network namespace of the
//! thread that opens it; kernel refusals carry the extended-ACK text ("Specified qdisc kind is unknown").

use netlink_packet_core::{
    DefaultNla, NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP,
    NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST,
};
use netlink_packet_route::link::{InfoKind, LinkAttribute, LinkFlags, LinkInfo, LinkMessage};
use netlink_packet_route::route::RouteMessage;
use netlink_packet_route::tc::{TcAttribute, TcHandle, TcMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use super::tc::{attributes, TCA_KIND, TCA_OPTIONS};

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const RTM_NEWQDISC: u16 = 36;
const RTM_NEWTCLASS: u16 = 40;
const RTM_NEWTFILTER: u16 = 44;
const RTM_NEWROUTE: u16 = 24;
const RTM_NEWLINK: u16 = 16;
const IFLA_IFNAME: u16 = 3;
const IFLA_LINKINFO: u16 = 18;
const IFLA_INFO_KIND: u16 = 1;
const NLMSGERR_ATTR_MSG: u16 = 1;
const TC_H_ROOT: u32 = 0xFFFF_FFFF;
const RT_TABLE_MAIN: u8 = 254;
const RTA_OIF: u16 = 4;
const RTA_MULTIPATH: u16 = 9;
const RTA_TABLE: u16 = 15;

/// A kernel refusal: errno plus the extended-ACK message when the kernel gave one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelError {
    pub errno: i32,
    pub message: Option<String>,
}

impl std::fmt::Display for KernelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let os = std::io::Error::from_raw_os_error(self.errno);
        match &self.message {
            Some(message) => write!(f, "{message} ({os})"),
            None => write!(f, "{os}"),
        }
    }
}

impl KernelError {
    fn io(err: std::io::Error) -> Self {
        Self {
            errno: err.raw_os_error().unwrap_or(nix::libc::EIO),
            message: None,
        }
    }
}

/// A qdisc as a dump reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Qdisc {
    pub ifindex: i32,
    pub handle: u32,
    pub parent: u32,
    pub kind: String,
    /// Raw TCA_OPTIONS payload.
    pub options: Vec<u8>,
    /// tcmsg's `info`: for a filter, prio << 16 | protocol (network order).
    pub info: u32,
}

/// A network interface as a link dump reports it (only what the ifb code needs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: i32,
    pub name: String,
    /// IFLA_INFO_KIND ("ifb", "veth"), empty for devices without one (lo, physical).
    pub kind: String,
}

/// Which traffic-control object a request or dump is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcObject {
    Qdisc,
    Class,
    Filter,
}

impl Qdisc {
    pub fn is_root(&self) -> bool {
        self.parent == TC_H_ROOT
    }
}

pub struct RouteSocket {
    socket: Socket,
    sequence: u32,
}

impl RouteSocket {
    /// Open in the calling thread's network namespace; it stays bound there.
    pub fn open() -> Result<Self, KernelError> {
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(KernelError::io)?;
        socket.bind_auto().map_err(KernelError::io)?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(KernelError::io)?;
        // Extended ACK for the kernel's reason; capped ACK so errors echo only the header.
        let _ = socket.set_ext_ack(true);
        let _ = socket.set_cap_ack(true);
        Ok(Self {
            socket,
            sequence: 0,
        })
    }

    /// Send one request and collect every reply payload until the ACK or end of dump.
    fn request(
        &mut self,
        message: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<(u16, Vec<u8>)>, KernelError> {
        self.sequence = self.sequence.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = self.sequence;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(message));
        packet.finalize();
        let mut buffer = vec![0; packet.buffer_len()];
        packet.serialize(&mut buffer);
        self.socket.send(&buffer, 0).map_err(KernelError::io)?;

        let mut replies = Vec::new();
        loop {
            let (bytes, _) = self.socket.recv_from_full().map_err(KernelError::io)?;
            if read_replies(&bytes, self.sequence, &mut replies)? == Reading::Finished {
                return Ok(replies);
            }
        }
    }

    pub fn qdiscs(&mut self, ifindex: i32) -> Result<Vec<Qdisc>, KernelError> {
        let message = RouteNetlinkMessage::GetQueueDiscipline(TcMessage::default());
        let replies = self.request(message, NLM_F_REQUEST | NLM_F_DUMP)?;
        Ok(replies
            .into_iter()
            .filter(|(kind, _)| *kind == RTM_NEWQDISC)
            .filter_map(|(_, payload)| parse_qdisc(&payload))
            .filter(|q| q.ifindex == ifindex)
            .collect())
    }

    pub fn root_qdisc(&mut self, ifindex: i32) -> Result<Option<Qdisc>, KernelError> {
        Ok(self.qdiscs(ifindex)?.into_iter().find(Qdisc::is_root))
    }

    /// Add a root qdisc with our handle; `replace` overrides a foreign root (NLM_F_REPLACE).
    pub fn add_root(
        &mut self,
        ifindex: i32,
        handle: u32,
        kind: &str,
        options: &[u8],
        replace: bool,
    ) -> Result<(), KernelError> {
        let mut message = tc_message(ifindex, handle, kind);
        message.attributes.push(TcAttribute::Other(DefaultNla::new(
            TCA_OPTIONS,
            options.to_vec(),
        )));
        let mode = if replace { NLM_F_REPLACE } else { NLM_F_EXCL };
        self.request(
            RouteNetlinkMessage::NewQueueDiscipline(message),
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | mode,
        )?;
        Ok(())
    }

    /// Compare-and-delete: the kernel refuses ("Invalid handle", "Invalid qdisc name") unless
    /// the root carries exactly this handle and kind, so we never delete what is not ours.
    pub fn delete_root(
        &mut self,
        ifindex: i32,
        handle: u32,
        kind: &str,
    ) -> Result<(), KernelError> {
        let message = tc_message(ifindex, handle, kind);
        self.request(
            RouteNetlinkMessage::DelQueueDiscipline(message),
            NLM_F_REQUEST | NLM_F_ACK,
        )?;
        Ok(())
    }

    /// Create a qdisc, class or filter under `parent` (NLM_F_EXCL: never replaces).
    #[allow(clippy::too_many_arguments)]
    pub fn add_tc(
        &mut self,
        object: TcObject,
        ifindex: i32,
        handle: u32,
        parent: u32,
        info: u32,
        kind: &str,
        options: &[u8],
    ) -> Result<(), KernelError> {
        let mut message = tc_message(ifindex, handle, kind);
        message.header.parent = TcHandle::from(parent);
        message.header.info = info;
        message.attributes.push(TcAttribute::Other(DefaultNla::new(
            TCA_OPTIONS,
            options.to_vec(),
        )));
        let message = match object {
            TcObject::Qdisc => RouteNetlinkMessage::NewQueueDiscipline(message),
            TcObject::Class => RouteNetlinkMessage::NewTrafficClass(message),
            TcObject::Filter => RouteNetlinkMessage::NewTrafficFilter(message),
        };
        self.request(
            message,
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        )?;
        Ok(())
    }

    /// Every class of `ifindex`, or every filter attached to qdisc `parent` of `ifindex`.
    pub fn dump_tc(
        &mut self,
        object: TcObject,
        ifindex: i32,
        parent: u32,
    ) -> Result<Vec<Qdisc>, KernelError> {
        let mut message = TcMessage::with_index(ifindex);
        message.header.parent = TcHandle::from(parent);
        let (message, want) = match object {
            TcObject::Qdisc => (
                RouteNetlinkMessage::GetQueueDiscipline(message),
                RTM_NEWQDISC,
            ),
            TcObject::Class => (RouteNetlinkMessage::GetTrafficClass(message), RTM_NEWTCLASS),
            TcObject::Filter => (
                RouteNetlinkMessage::GetTrafficFilter(message),
                RTM_NEWTFILTER,
            ),
        };
        let replies = self.request(message, NLM_F_REQUEST | NLM_F_DUMP)?;
        Ok(replies
            .into_iter()
            .filter(|(kind, _)| *kind == want)
            .filter_map(|(_, payload)| parse_qdisc(&payload))
            .filter(|q| q.ifindex == ifindex)
            .collect())
    }

    /// Delete the qdisc `handle` of `kind` under `parent` (e.g. the ingress qdisc, ffff: under
    /// ffff:fff1); like `delete_root`, the kernel compares handle and kind.
    pub fn delete_qdisc(
        &mut self,
        ifindex: i32,
        handle: u32,
        parent: u32,
        kind: &str,
    ) -> Result<(), KernelError> {
        let mut message = tc_message(ifindex, handle, kind);
        message.header.parent = TcHandle::from(parent);
        self.request(
            RouteNetlinkMessage::DelQueueDiscipline(message),
            NLM_F_REQUEST | NLM_F_ACK,
        )?;
        Ok(())
    }

    /// Every link of the namespace.
    pub fn links(&mut self) -> Result<Vec<Link>, KernelError> {
        let replies = self.request(
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            NLM_F_REQUEST | NLM_F_DUMP,
        )?;
        Ok(replies
            .into_iter()
            .filter(|(kind, _)| *kind == RTM_NEWLINK)
            .filter_map(|(_, payload)| parse_link(&payload))
            .collect())
    }

    /// Create an ifb device named `name`, up (NLM_F_EXCL: an existing name is "File exists").
    pub fn add_ifb(&mut self, name: &str) -> Result<(), KernelError> {
        let mut message = LinkMessage::default();
        message.header.flags = LinkFlags::Up;
        message.header.change_mask = LinkFlags::Up;
        message
            .attributes
            .push(LinkAttribute::IfName(name.to_string()));
        message
            .attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Ifb)]));
        self.request(
            RouteNetlinkMessage::NewLink(message),
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        )?;
        Ok(())
    }

    /// Delete link `index`.
    pub fn delete_link(&mut self, index: i32) -> Result<(), KernelError> {
        let mut message = LinkMessage::default();
        message.header.index = index as u32;
        self.request(
            RouteNetlinkMessage::DelLink(message),
            NLM_F_REQUEST | NLM_F_ACK,
        )?;
        Ok(())
    }

    /// Add a route (NLM_F_EXCL: an equal route makes the kernel answer "File exists").
    pub fn add_route(&mut self, route: RouteMessage) -> Result<(), KernelError> {
        self.request(
            RouteNetlinkMessage::NewRoute(route),
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        )?;
        Ok(())
    }

    /// Delete the route that matches every field given (type, protocol, metric, table, prefix):
    /// the kernel compares them, so a route that is not ours is left alone ("No such process").
    pub fn delete_route(&mut self, route: RouteMessage) -> Result<(), KernelError> {
        self.request(
            RouteNetlinkMessage::DelRoute(route),
            NLM_F_REQUEST | NLM_F_ACK,
        )?;
        Ok(())
    }

    /// The raw RTM_NEWROUTE payloads of every route of `family`.
    pub fn routes(&mut self, family: AddressFamily) -> Result<Vec<Vec<u8>>, KernelError> {
        let mut message = RouteMessage::default();
        message.header.address_family = family;
        let replies = self.request(
            RouteNetlinkMessage::GetRoute(message),
            NLM_F_REQUEST | NLM_F_DUMP,
        )?;
        Ok(replies
            .into_iter()
            .filter(|(kind, _)| *kind == RTM_NEWROUTE)
            .map(|(_, payload)| payload)
            .collect())
    }

    /// Interfaces that carry a default route (IPv4 or IPv6, main table).
    pub fn default_route_interfaces(&mut self) -> Result<Vec<i32>, KernelError> {
        let mut found = Vec::new();
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let mut message = RouteMessage::default();
            message.header.address_family = family;
            let replies = self.request(
                RouteNetlinkMessage::GetRoute(message),
                NLM_F_REQUEST | NLM_F_DUMP,
            )?;
            for (kind, payload) in replies {
                if kind == RTM_NEWROUTE {
                    found.extend(default_route_oifs(&payload));
                }
            }
        }
        Ok(found)
    }
}

/// Whether a reply datagram ended the request (ACK or end of dump) or more are to come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reading {
    More,
    Finished,
}

/// The messages of one received datagram that answer request `sequence`: payloads go to
/// `replies`; an error message ends the request with the kernel's errno and extended-ACK text.
/// Messages of other requests are skipped; a truncated one ends the datagram.
pub(crate) fn read_replies(
    bytes: &[u8],
    sequence: u32,
    replies: &mut Vec<(u16, Vec<u8>)>,
) -> Result<Reading, KernelError> {
    let mut offset = 0;
    while let Some(header) = bytes.get(offset..offset + 16) {
        let length = u32::from_ne_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let kind = u16::from_ne_bytes([header[4], header[5]]);
        let reply_sequence = u32::from_ne_bytes([header[8], header[9], header[10], header[11]]);
        if length < 16 || length > bytes.len() - offset {
            break;
        }
        let payload = &bytes[offset + 16..offset + length];
        offset = offset.saturating_add((length + 3) & !3);
        if reply_sequence != sequence {
            continue;
        }
        match kind {
            NLMSG_DONE => return Ok(Reading::Finished),
            NLMSG_ERROR => {
                let Some(code) = payload.get(..4) else {
                    return Err(KernelError {
                        errno: nix::libc::EBADMSG,
                        message: Some(format!(
                            "netlink error reply of {} bytes, too short for its code",
                            payload.len()
                        )),
                    });
                };
                let code = i32::from_ne_bytes([code[0], code[1], code[2], code[3]]);
                if code == 0 {
                    return Ok(Reading::Finished);
                }
                return Err(KernelError {
                    // the kernel sends -errno; anything else is no errno we can name
                    errno: code
                        .checked_neg()
                        .filter(|errno| *errno > 0)
                        .unwrap_or(nix::libc::EIO),
                    message: extack_message(&payload[4..]),
                });
            }
            _ => replies.push((kind, payload.to_vec())),
        }
    }
    Ok(Reading::More)
}

/// The interfaces a route message sends through when it is a default route of the main table:
/// its RTA_OIF, or every nexthop's interface of a multipath (ECMP) route, which has no RTA_OIF.
pub(crate) fn default_route_oifs(payload: &[u8]) -> Vec<i32> {
    // struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags (u32)
    let (Some(&dst_len), Some(&table), Some(attrs)) =
        (payload.get(1), payload.get(4), payload.get(12..))
    else {
        return Vec::new();
    };
    let attrs = attributes(attrs);
    let table = attrs
        .iter()
        .find(|(k, _)| *k == RTA_TABLE)
        .and_then(|(_, v)| (*v).try_into().ok().map(u32::from_ne_bytes))
        .unwrap_or(table as u32);
    if dst_len != 0 || table != RT_TABLE_MAIN as u32 {
        return Vec::new();
    }
    let mut oifs = Vec::new();
    for (kind, value) in attrs {
        match kind {
            RTA_OIF => oifs.extend(value.try_into().ok().map(i32::from_ne_bytes)),
            RTA_MULTIPATH => oifs.extend(nexthop_oifs(value)),
            _ => {}
        }
    }
    oifs
}

/// The interfaces of RTA_MULTIPATH's packed `struct rtnexthop`s (len u16, flags u8, hops u8,
/// ifindex i32, then the nexthop's own attributes), each padded to 4 bytes.
fn nexthop_oifs(mut bytes: &[u8]) -> Vec<i32> {
    let mut oifs = Vec::new();
    while let (Some(length), Some(ifindex)) = (bytes.get(..2), bytes.get(4..8)) {
        let length = u16::from_ne_bytes([length[0], length[1]]) as usize;
        if length < 8 || length > bytes.len() {
            break;
        }
        oifs.push(i32::from_ne_bytes([
            ifindex[0], ifindex[1], ifindex[2], ifindex[3],
        ]));
        bytes = bytes.get((length + 3) & !3..).unwrap_or_default();
    }
    oifs
}

fn tc_message(ifindex: i32, handle: u32, kind: &str) -> TcMessage {
    let mut message = TcMessage::with_index(ifindex);
    message.header.handle = TcHandle::from(handle);
    message.header.parent = TcHandle::ROOT;
    message.attributes.push(TcAttribute::Kind(kind.to_string()));
    message
}

/// A qdisc from an RTM_NEWQDISC payload (`struct tcmsg`, then attributes); None when too short.
pub(crate) fn parse_qdisc(payload: &[u8]) -> Option<Qdisc> {
    let header = payload.get(..20)?;
    let word = |at: usize| u32::from_ne_bytes(header[at..at + 4].try_into().unwrap());
    let mut qdisc = Qdisc {
        ifindex: word(4) as i32,
        handle: word(8),
        parent: word(12),
        kind: String::new(),
        options: Vec::new(),
        info: word(16),
    };
    for (kind, value) in attributes(&payload[20..]) {
        match kind {
            TCA_KIND => {
                qdisc.kind = String::from_utf8_lossy(value)
                    .trim_end_matches('\0')
                    .to_string()
            }
            TCA_OPTIONS => qdisc.options = value.to_vec(),
            _ => {}
        }
    }
    Some(qdisc)
}

/// A link from an RTM_NEWLINK payload (`struct ifinfomsg`, then attributes); None when too short.
pub(crate) fn parse_link(payload: &[u8]) -> Option<Link> {
    let header = payload.get(..16)?;
    let mut link = Link {
        index: i32::from_ne_bytes(header[4..8].try_into().ok()?),
        name: String::new(),
        kind: String::new(),
    };
    let text = |value: &[u8]| {
        String::from_utf8_lossy(value)
            .trim_end_matches('\0')
            .to_string()
    };
    for (kind, value) in attributes(&payload[16..]) {
        match kind {
            IFLA_IFNAME => link.name = text(value),
            IFLA_LINKINFO => {
                if let Some((_, info)) = attributes(value)
                    .into_iter()
                    .find(|(k, _)| *k == IFLA_INFO_KIND)
                {
                    link.kind = text(info);
                }
            }
            _ => {}
        }
    }
    Some(link)
}

/// With NETLINK_CAP_ACK the error echoes only the 16-byte request header; TLVs follow.
pub(crate) fn extack_message(after_code: &[u8]) -> Option<String> {
    let tlvs = after_code.get(16..)?;
    attributes(tlvs)
        .into_iter()
        .find(|(kind, _)| *kind == NLMSGERR_ATTR_MSG)
        .map(|(_, value)| {
            String::from_utf8_lossy(value)
                .trim_end_matches('\0')
                .to_string()
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::tc::nla;

    #[test]
    fn extack_text_is_found_after_the_echoed_header() {
        let mut error = vec![0u8; 16];
        error.extend(nla(NLMSGERR_ATTR_MSG, b"Specified qdisc kind is unknown\0"));
        assert_eq!(
            extack_message(&error).as_deref(),
            Some("Specified qdisc kind is unknown")
        );
        assert_eq!(extack_message(&[0u8; 16]), None);
    }

    #[test]
    fn qdisc_dump_is_parsed() {
        let mut payload = vec![0u8; 4];
        payload.extend(3i32.to_ne_bytes());
        payload.extend(0x5e1d_0000u32.to_ne_bytes());
        payload.extend(TC_H_ROOT.to_ne_bytes());
        payload.extend(0u32.to_ne_bytes());
        payload.extend(nla(TCA_KIND, b"tbf\0"));
        payload.extend(nla(TCA_OPTIONS, &[1, 2, 3, 4]));
        let qdisc = parse_qdisc(&payload).unwrap();
        assert_eq!(qdisc.ifindex, 3);
        assert_eq!(qdisc.handle, 0x5e1d_0000);
        assert!(qdisc.is_root());
        assert_eq!(qdisc.kind, "tbf");
        assert_eq!(qdisc.options, [1, 2, 3, 4]);
    }

    /// A `struct rtmsg` for a route of `dst_len` in `table`, then `attrs`.
    fn route(dst_len: u8, table: u8, attrs: &[Vec<u8>]) -> Vec<u8> {
        let mut payload = vec![2, dst_len, 0, 0, table, 3, 0, 1, 0, 0, 0, 0];
        payload.extend(attrs.concat());
        payload
    }

    /// A `struct rtnexthop` via `ifindex` with a gateway attribute.
    fn nexthop(ifindex: i32) -> Vec<u8> {
        let gateway = nla(5, &[10, 254, 0, 2]);
        let mut hop = ((8 + gateway.len()) as u16).to_ne_bytes().to_vec();
        hop.extend([0, 0]);
        hop.extend(ifindex.to_ne_bytes());
        hop.extend(gateway);
        hop
    }

    #[test]
    fn default_routes_name_their_interfaces_single_path_and_multipath() {
        let oif = |index: i32| nla(RTA_OIF, &index.to_ne_bytes());
        let ecmp = nla(RTA_MULTIPATH, &[nexthop(7), nexthop(9)].concat());
        let main = RT_TABLE_MAIN;
        let cases: Vec<(Vec<u8>, Vec<i32>)> = vec![
            (route(0, main, &[oif(3)]), vec![3]),
            (route(0, main, std::slice::from_ref(&ecmp)), vec![7, 9]),
            // not a default route, or not in the main table
            (route(24, main, &[oif(3)]), vec![]),
            (route(0, 255, std::slice::from_ref(&ecmp)), vec![]),
            (
                route(0, 252, &[nla(RTA_TABLE, &254u32.to_ne_bytes()), oif(4)]),
                vec![4],
            ),
            // truncated nexthops: the whole ones are kept, the rest ignored
            (
                route(0, main, &[nla(RTA_MULTIPATH, &nexthop(7)[..12])]),
                vec![],
            ),
            (
                route(
                    0,
                    main,
                    &[nla(
                        RTA_MULTIPATH,
                        &[nexthop(7), vec![20, 0, 0, 0]].concat(),
                    )],
                ),
                vec![7],
            ),
            (vec![2, 0, 0, 0], vec![]),
            (vec![], vec![]),
        ];
        for (payload, want) in cases {
            assert_eq!(default_route_oifs(&payload), want, "{payload:?}");
        }
    }

    /// One netlink message: 16-byte header (length, type, flags, sequence, port), payload, padding.
    fn message(kind: u16, sequence: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = ((16 + payload.len()) as u32).to_ne_bytes().to_vec();
        out.extend(kind.to_ne_bytes());
        out.extend(0u16.to_ne_bytes());
        out.extend(sequence.to_ne_bytes());
        out.extend(0u32.to_ne_bytes());
        out.extend(payload);
        while out.len() % 4 != 0 {
            out.push(0);
        }
        out
    }

    /// No reply can panic the reader, however short: a truncated error message, an error code
    /// that has no negation, and every prefix of a real dump each give an answer.
    #[test]
    fn replies_of_any_length_are_read_without_panic() {
        let mut qdisc = vec![0u8; 20];
        qdisc.extend(nla(TCA_KIND, b"tbf\0"));
        let mut dump = message(RTM_NEWQDISC, 6, &[1, 2, 3, 4]);
        dump.extend(message(RTM_NEWQDISC, 7, &qdisc));
        dump.extend(message(NLMSG_DONE, 7, &[0; 4]));
        let mut replies = Vec::new();
        assert_eq!(read_replies(&dump, 7, &mut replies), Ok(Reading::Finished));
        assert_eq!(replies, [(RTM_NEWQDISC, qdisc.clone())]);
        for end in 0..dump.len() {
            let mut replies = Vec::new();
            assert_eq!(
                read_replies(&dump[..end], 7, &mut replies),
                Ok(Reading::More),
                "prefix of {end} bytes"
            );
        }

        // an error message cut before (or inside) its 4-byte code
        for short in 0..4 {
            let mut reply = message(NLMSG_ERROR, 7, &[0xFF; 3][..short]);
            reply.truncate(16 + short);
            reply[..4].copy_from_slice(&(16 + short as u32).to_ne_bytes());
            let err = read_replies(&reply, 7, &mut Vec::new()).unwrap_err();
            assert_eq!(err.errno, nix::libc::EBADMSG, "{short} bytes");
            assert!(err.to_string().contains("too short"), "{err}");
        }
        // i32::MIN has no positive errno, and a positive code is none
        for code in [i32::MIN, 5] {
            let reply = message(NLMSG_ERROR, 7, &code.to_ne_bytes());
            let err = read_replies(&reply, 7, &mut Vec::new()).unwrap_err();
            assert_eq!(err.errno, nix::libc::EIO, "code {code}");
        }
        // a real refusal keeps its errno and text
        let mut refusal = (-nix::libc::ENOENT).to_ne_bytes().to_vec();
        refusal.extend([0u8; 16]);
        refusal.extend(nla(NLMSGERR_ATTR_MSG, b"Specified qdisc kind is unknown\0"));
        let err = read_replies(&message(NLMSG_ERROR, 7, &refusal), 7, &mut Vec::new()).unwrap_err();
        assert_eq!(err.errno, nix::libc::ENOENT);
        assert_eq!(
            err.message.as_deref(),
            Some("Specified qdisc kind is unknown")
        );
        // a length past the datagram, or below the header, ends the datagram
        for length in [u32::MAX, 17, 15, 0] {
            let mut reply = message(NLMSG_DONE, 7, &[]);
            reply[..4].copy_from_slice(&length.to_ne_bytes());
            assert_eq!(read_replies(&reply, 7, &mut Vec::new()), Ok(Reading::More));
        }
    }

    #[test]
    fn default_routes_are_found_and_short_ones_skipped() {
        let mut route = vec![2, 0, 0, 0, RT_TABLE_MAIN, 0, 0, 0, 0, 0, 0, 0];
        route.extend(nla(RTA_OIF, &4i32.to_ne_bytes()));
        assert_eq!(default_route_oifs(&route), [4]);
        let mut other_table = route.clone();
        other_table.extend(nla(RTA_TABLE, &255u32.to_ne_bytes()));
        assert_eq!(default_route_oifs(&other_table), Vec::<i32>::new());
        let mut not_default = route.clone();
        not_default[1] = 24;
        assert_eq!(default_route_oifs(&not_default), Vec::<i32>::new());
        for end in 0..route.len() {
            assert_eq!(
                default_route_oifs(&route[..end]),
                Vec::<i32>::new(),
                "{end} bytes"
            );
        }
        for end in 0..20 {
            assert_eq!(parse_qdisc(&[0; 20][..end]), None, "{end} bytes");
        }
    }

    /// `ip link add sntl5e60-3 type ifb` as a dump shows it: ifinfomsg, IFLA_IFNAME,
    /// IFLA_LINKINFO { IFLA_INFO_KIND "ifb" }; short payloads give None.
    #[test]
    fn link_dump_is_parsed() {
        let mut payload = vec![0u8, 0, 1, 0];
        payload.extend(7i32.to_ne_bytes());
        payload.extend([0u8; 8]);
        payload.extend(nla(IFLA_IFNAME, b"sntl5e60-3\0"));
        payload.extend(nla(IFLA_LINKINFO, &nla(IFLA_INFO_KIND, b"ifb\0")));
        let link = parse_link(&payload).unwrap();
        assert_eq!(
            link,
            Link {
                index: 7,
                name: "sntl5e60-3".into(),
                kind: "ifb".into()
            }
        );
        for end in 0..16 {
            assert_eq!(parse_link(&payload[..end]), None, "{end} bytes");
        }
    }

    #[test]
    fn kernel_error_shows_the_kernel_text_first() {
        let err = KernelError {
            errno: nix::libc::ENOENT,
            message: Some("Specified qdisc kind is unknown".into()),
        };
        assert!(err
            .to_string()
            .starts_with("Specified qdisc kind is unknown (No such file"));
    }
}
