//! Route messages to and from rtnetlink bytes: requests we write, routes and errors we read.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netlink_packet_core::{
    NLM_F_ACK_TLVS, NLM_F_CAPPED, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
    NlasIterator,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteNextHop, RouteProtocol,
    RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::config::FibConfig;
use crate::diff::{Change, Stale};
use crate::route::{Ifindex, KernelRoute, NextHop, NextHops, Prefix, Route, RouteKind};

/// Size of `struct nlmsghdr`.
const NLMSG_HDR_LEN: usize = 16;
/// `NLMSGERR_ATTR_MSG`: the extended ack's human-readable message.
const NLMSGERR_ATTR_MSG: u16 = 1;

/// The `RTM_NEWROUTE` body that creates or replaces `route`.
pub(crate) fn install_message(route: &Route, config: &FibConfig) -> RouteMessage {
    let prefix = route.prefix();
    let mut msg = base_message(prefix, config);
    msg.header.protocol = RouteProtocol::from(config.protocol.get());
    match route.kind() {
        RouteKind::Blackhole => msg.header.kind = RouteType::BlackHole,
        RouteKind::Device(ifindex) => {
            msg.header.kind = RouteType::Unicast;
            msg.header.scope = RouteScope::Link;
            msg.attributes.push(RouteAttribute::Oif(ifindex.get()));
        }
        RouteKind::Via(hops) => {
            msg.header.kind = RouteType::Unicast;
            match hops.as_slice() {
                [hop] => {
                    msg.attributes
                        .push(RouteAttribute::Gateway(RouteAddress::from(hop.gateway)));
                    if let Some(ifindex) = hop.ifindex {
                        msg.attributes.push(RouteAttribute::Oif(ifindex.get()));
                    }
                }
                // The kernel takes one RTA_MULTIPATH for both families; with NLM_F_REPLACE it
                // swaps the whole IPv6 sibling group, not just the first hop.
                many => msg
                    .attributes
                    .push(RouteAttribute::MultiPath(many.iter().map(rtnh).collect())),
            }
        }
    }
    msg
}

/// The `RTM_DELROUTE` body that deletes our route `stale` and nothing else: the kernel matches
/// the protocol number, so another protocol's route at the same prefix is never hit.
pub(crate) fn remove_message(stale: &Stale, config: &FibConfig) -> RouteMessage {
    let mut msg = base_message(stale.prefix, config);
    msg.header.protocol = RouteProtocol::from(config.protocol.get());
    msg.header.scope = RouteScope::NoWhere;
    msg.header.kind = RouteType::Unspec;
    msg.attributes.push(RouteAttribute::Priority(stale.metric));
    msg
}

/// The `RTM_GETROUTE` dump request for one family of our table (kernel-side filtered when the
/// socket has strict checking on).
pub(crate) fn dump_request(ipv6: bool, config: &FibConfig) -> RouteMessage {
    let mut msg = RouteMessage::default();
    msg.header.address_family = family(ipv6);
    msg.header.table = header_table(config);
    msg.attributes
        .push(RouteAttribute::Table(config.table.get()));
    msg
}

fn base_message(prefix: Prefix, config: &FibConfig) -> RouteMessage {
    let mut msg = RouteMessage::default();
    msg.header.address_family = family(prefix.is_ipv6());
    msg.header.destination_prefix_length = prefix.length();
    msg.header.table = header_table(config);
    msg.attributes
        .push(RouteAttribute::Destination(RouteAddress::from(
            prefix.addr(),
        )));
    msg.attributes
        .push(RouteAttribute::Table(config.table.get()));
    msg
}

/// Tables above 255 only fit in RTA_TABLE; the header then says "unspecified", as iproute2 does.
fn header_table(config: &FibConfig) -> u8 {
    u8::try_from(config.table.get()).unwrap_or(RouteHeader::RT_TABLE_UNSPEC)
}

fn family(ipv6: bool) -> AddressFamily {
    if ipv6 {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    }
}

fn rtnh(hop: &NextHop) -> RouteNextHop {
    let mut nh = RouteNextHop::default();
    nh.interface_index = hop.ifindex.map_or(0, Ifindex::get);
    nh.attributes = vec![RouteAttribute::Gateway(RouteAddress::from(hop.gateway))];
    nh
}

/// Appends `body` as one netlink message with `flags` and `seq` to `out`.
pub(crate) fn encode(body: RouteNetlinkMessage, flags: u16, seq: u32, out: &mut Vec<u8>) {
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | flags;
    header.sequence_number = seq;
    let mut msg = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(body));
    msg.finalize();
    let start = out.len();
    // Netlink messages are 4-byte aligned; route messages already are, this keeps it certain.
    let len = msg.buffer_len().next_multiple_of(4);
    out.resize(start + len, 0);
    msg.serialize(&mut out[start..]);
}

/// Offsets in an encoded route request: `nlmsghdr` flags and sequence, `rtmsg` destination
/// length, and the first attribute (always `RTA_DST`, see `base_message`).
const FLAGS_AT: usize = 6;
const SEQ_AT: usize = 8;
const DST_LEN_AT: usize = NLMSG_HDR_LEN + 1;
const FIRST_NLA_AT: usize = NLMSG_HDR_LEN + 12;
const RTA_DST: u16 = 1;

/// What makes two route requests byte-identical but for prefix, flags and sequence number.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Shape {
    Install { ipv6: bool, kind: RouteKind },
    Remove { ipv6: bool, metric: u32 },
}

/// Encodes changes into one batch. Messages for the same shape of change (a peer's routes via the
/// same next hops, blackholes, removals) differ only in prefix, flags and sequence number, so the
/// first of a run is built with netlink-packet-route and the rest are its bytes with those fields
/// rewritten: building each from scratch was most of our CPU time per route.
#[derive(Debug, Default)]
pub(crate) struct ChangeEncoder {
    template: Option<(Shape, Vec<u8>)>,
}

impl ChangeEncoder {
    /// Appends the request for `change` to `out`.
    pub(crate) fn encode(
        &mut self,
        change: &Change,
        config: &FibConfig,
        flags: u16,
        seq: u32,
        out: &mut Vec<u8>,
    ) {
        let prefix = change.prefix();
        let shape = match change {
            Change::Create(route) | Change::Replace(route) => Shape::Install {
                ipv6: prefix.is_ipv6(),
                kind: route.kind().clone(),
            },
            Change::Remove(stale) => Shape::Remove {
                ipv6: prefix.is_ipv6(),
                metric: stale.metric,
            },
        };
        if let Some((_, bytes)) = self.template.as_ref().filter(|(s, _)| *s == shape) {
            let start = out.len();
            out.extend_from_slice(bytes);
            if patch(&mut out[start..], NLM_F_REQUEST | flags, seq, prefix) {
                return;
            }
            out.truncate(start);
        }
        let body = match change {
            Change::Create(route) | Change::Replace(route) => {
                RouteNetlinkMessage::NewRoute(install_message(route, config))
            }
            Change::Remove(stale) => RouteNetlinkMessage::DelRoute(remove_message(stale, config)),
        };
        let start = out.len();
        encode(body, flags, seq, out);
        self.template = Some((shape, out[start..].to_vec()));
    }
}

/// Rewrites flags, sequence number and destination of an encoded route request; false if the
/// bytes are not laid out as `base_message` makes them.
fn patch(msg: &mut [u8], flags: u16, seq: u32, prefix: Prefix) -> bool {
    let addr = match prefix.addr() {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    let nla_len = (4 + addr.len()) as u16;
    let header_ok = msg
        .get(FIRST_NLA_AT..FIRST_NLA_AT + 4)
        .is_some_and(|h| h[..2] == nla_len.to_ne_bytes() && h[2..] == RTA_DST.to_ne_bytes());
    let value = FIRST_NLA_AT + 4..FIRST_NLA_AT + 4 + addr.len();
    if !header_ok || msg.len() < value.end {
        return false;
    }
    msg[FLAGS_AT..FLAGS_AT + 2].copy_from_slice(&flags.to_ne_bytes());
    msg[SEQ_AT..SEQ_AT + 4].copy_from_slice(&seq.to_ne_bytes());
    msg[DST_LEN_AT] = prefix.length();
    msg[value].copy_from_slice(&addr);
    true
}

/// Splits a datagram into its netlink messages; a truncated or malformed tail ends the walk
/// and is returned as `Err` with what was left.
pub(crate) fn split_messages(mut buf: &[u8]) -> impl Iterator<Item = Result<&[u8], usize>> {
    std::iter::from_fn(move || {
        if buf.is_empty() {
            return None;
        }
        let len = buf
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .map(|b: [u8; 4]| u32::from_ne_bytes(b) as usize)
            .filter(|len| *len >= NLMSG_HDR_LEN && *len <= buf.len());
        match len {
            Some(len) => {
                let (msg, rest) = buf.split_at(len);
                buf = rest.get(len.next_multiple_of(4) - len..).unwrap_or(&[]);
                Some(Ok(msg))
            }
            None => {
                let left = buf.len();
                buf = &[];
                Some(Err(left))
            }
        }
    })
}

/// The extended-ack message of an `NLMSG_ERROR`, if the kernel sent one. `error_flags` are the
/// error message's header flags, `echo` the bytes after its error code.
pub(crate) fn extack_message(error_flags: u16, echo: &[u8]) -> Option<String> {
    if error_flags & NLM_F_ACK_TLVS == 0 {
        return None;
    }
    let echoed = if error_flags & NLM_F_CAPPED != 0 {
        NLMSG_HDR_LEN
    } else {
        let len: [u8; 4] = echo.get(..4)?.try_into().ok()?;
        u32::from_ne_bytes(len) as usize
    };
    let tlvs = echo.get(echoed.next_multiple_of(4)..)?;
    NlasIterator::new(tlvs)
        .filter_map(Result::ok)
        .find(|nla| nla.kind() == NLMSGERR_ATTR_MSG)
        .map(|nla| {
            let text = nla.value();
            let text = text.split(|b| *b == 0).next().unwrap_or(text);
            String::from_utf8_lossy(text).into_owned()
        })
}

/// The route in `msg`, or `None` for what we never program nor remove (multicast and other
/// families, source-specific and TOS routes).
pub(crate) fn parse_route(msg: &RouteMessage) -> Option<KernelRoute> {
    let h = &msg.header;
    let ipv6 = match h.address_family {
        AddressFamily::Inet => false,
        AddressFamily::Inet6 => true,
        _ => return None,
    };
    if h.source_prefix_length != 0 || h.tos != 0 {
        return None;
    }
    let mut table = u32::from(h.table);
    let mut metric = 0;
    let mut dst = None;
    let mut gateway = None;
    let mut oif = None;
    let mut multipath = None;
    let mut exotic = false;
    for attr in &msg.attributes {
        match attr {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Priority(p) => metric = *p,
            RouteAttribute::Destination(a) => dst = Some(address(a)?),
            RouteAttribute::Gateway(a) => gateway = Some(address(a)?),
            RouteAttribute::Oif(i) => oif = Ifindex::new(*i),
            RouteAttribute::MultiPath(hops) => multipath = Some(hops),
            RouteAttribute::Via(_)
            | RouteAttribute::NhId(_)
            | RouteAttribute::Encap(_)
            | RouteAttribute::EncapType(_)
            | RouteAttribute::NewDestination(_) => exotic = true,
            _ => {}
        }
    }
    let unspecified = if ipv6 {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    };
    let prefix = Prefix::new(dst.unwrap_or(unspecified), h.destination_prefix_length).ok()?;
    let kind = match h.kind {
        _ if exotic => None,
        RouteType::BlackHole => Some(RouteKind::Blackhole),
        RouteType::Unicast => match (multipath, gateway, oif) {
            (Some(hops), _, _) => hops
                .iter()
                .map(parse_next_hop)
                .collect::<Option<Vec<_>>>()
                .and_then(|hops| NextHops::new(hops).ok())
                .map(RouteKind::Via),
            (None, Some(gateway), ifindex) => NextHops::new([NextHop { gateway, ifindex }])
                .ok()
                .map(RouteKind::Via),
            (None, None, Some(ifindex)) => Some(RouteKind::Device(ifindex)),
            (None, None, None) => None,
        },
        _ => None,
    };
    Some(KernelRoute {
        prefix,
        table,
        protocol: u8::from(h.protocol),
        metric,
        kind,
    })
}

/// A multipath member with a gateway; members without one (device-only) are not our shape.
fn parse_next_hop(nh: &RouteNextHop) -> Option<NextHop> {
    let gateway = nh.attributes.iter().find_map(|attr| match attr {
        RouteAttribute::Gateway(a) => address(a),
        _ => None,
    })?;
    Some(NextHop {
        gateway,
        ifindex: Ifindex::new(nh.interface_index),
    })
}

fn address(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::{NLM_F_ACK, Parseable};

    fn round_trip(route: &Route) -> KernelRoute {
        let config = FibConfig::default();
        let mut buf = Vec::new();
        encode(
            RouteNetlinkMessage::NewRoute(install_message(route, &config)),
            0,
            7,
            &mut buf,
        );
        let msgs: Vec<_> = split_messages(&buf).collect();
        assert_eq!(msgs.len(), 1);
        let bytes = msgs[0].unwrap();
        let body = RouteMessage::parse(&bytes[NLMSG_HDR_LEN..]).unwrap();
        parse_route(&body).unwrap()
    }

    #[test]
    fn installs_parse_back_to_the_route() {
        let if3 = Ifindex::new(3).unwrap();
        let hops = |gws: &[&str]| {
            NextHops::new(gws.iter().map(|g| NextHop {
                gateway: g.parse().unwrap(),
                ifindex: Some(if3),
            }))
            .unwrap()
        };
        let routes = [
            Route::blackhole("10.1.0.0/26".parse().unwrap()),
            Route::blackhole("fd00:1::/122".parse().unwrap()),
            Route::host("10.1.0.7".parse().unwrap(), if3),
            Route::host("fd00:1::7".parse().unwrap(), if3),
            Route::via("10.2.0.0/26".parse().unwrap(), hops(&["10.0.0.1"])).unwrap(),
            Route::via(
                "10.2.0.0/26".parse().unwrap(),
                hops(&["10.0.0.1", "10.0.0.2"]),
            )
            .unwrap(),
            Route::via(
                "fd00:2::/64".parse().unwrap(),
                hops(&["fe80::1", "fe80::2"]),
            )
            .unwrap(),
            Route::via("0.0.0.0/0".parse().unwrap(), hops(&["10.0.0.1"])).unwrap(),
        ];
        for route in &routes {
            let got = round_trip(route);
            assert_eq!(got.prefix, route.prefix(), "{route}");
            assert_eq!(got.table, 254, "{route}");
            assert_eq!(got.protocol, crate::config::DEFAULT_PROTOCOL, "{route}");
            assert_eq!(got.kind.as_ref(), Some(route.kind()), "{route}");
        }
    }

    #[test]
    fn big_tables_go_in_the_attribute() {
        let config = FibConfig {
            table: crate::config::TableId::new(1000).unwrap(),
            ..FibConfig::default()
        };
        let msg = install_message(&Route::blackhole("10.0.0.0/8".parse().unwrap()), &config);
        assert_eq!(msg.header.table, 0);
        assert_eq!(parse_route(&msg).unwrap().table, 1000);
    }

    #[test]
    fn splitting_survives_garbage() {
        let cases: &[(&[u8], usize, bool)] = &[
            (&[], 0, false),
            (&[1, 2, 3], 1, true),
            // A length below the header size must not loop forever.
            (&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 1, true),
            // A length beyond the buffer.
            (&[200, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 1, true),
            (&[16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 1, false),
        ];
        for (bytes, count, tail_err) in cases {
            let parts: Vec<_> = split_messages(bytes).collect();
            assert_eq!(parts.len(), *count, "{bytes:?}");
            assert_eq!(
                parts.last().is_some_and(|p| p.is_err()),
                *tail_err,
                "{bytes:?}"
            );
        }
    }

    #[test]
    fn patched_templates_equal_fresh_encodings() {
        let config = FibConfig::default();
        let if3 = Ifindex::new(3).unwrap();
        let hops = |gws: &[&str]| {
            NextHops::new(gws.iter().map(|g| NextHop::via(g.parse().unwrap()))).unwrap()
        };
        let v4 = |i: u32| IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i * 64));
        let p4 = |i: u32| Prefix::new(v4(i), 26 + (i % 7) as u8).unwrap();
        let v6 = |i: u32| IpAddr::V6(Ipv6Addr::from(0xfd00_u128 << 112 | u128::from(i) << 64));
        let p6 = |i: u32| Prefix::new(v6(i), 48 + (i % 17) as u8).unwrap();
        let shapes: Vec<Box<dyn Fn(u32) -> Change>> = vec![
            Box::new(|i| Change::Create(Route::blackhole(p4(i)))),
            Box::new(|i| Change::Replace(Route::blackhole(p6(i)))),
            Box::new(|i| Change::Replace(Route::host(v4(i), if3))),
            Box::new(|i| Change::Replace(Route::host(v6(i), if3))),
            Box::new(|i| Change::Replace(Route::via(p4(i), hops(&["10.0.0.1"])).unwrap())),
            Box::new(|i| {
                Change::Replace(Route::via(p4(i), hops(&["10.0.0.1", "10.0.0.2"])).unwrap())
            }),
            Box::new(|i| {
                Change::Replace(Route::via(p6(i), hops(&["fe80::1", "fe80::2"])).unwrap())
            }),
            Box::new(|i| {
                Change::Remove(Stale {
                    prefix: p4(i),
                    metric: 0,
                })
            }),
            Box::new(|i| {
                Change::Remove(Stale {
                    prefix: p6(i),
                    metric: 1024,
                })
            }),
        ];
        // Runs of the same shape, as real batches have them, then shapes interleaved.
        let mut changes: Vec<Change> = shapes.iter().flat_map(|make| (0..40).map(make)).collect();
        changes.extend((0..40).flat_map(|i| shapes.iter().map(move |make| make(i))));
        let mut encoder = ChangeEncoder::default();
        let (mut patched, mut fresh) = (Vec::new(), Vec::new());
        for (seq, change) in changes.iter().enumerate() {
            let flags = if seq % 5 == 0 { NLM_F_ACK } else { 0 };
            encoder.encode(change, &config, flags, seq as u32, &mut patched);
            let body = match change {
                Change::Create(r) | Change::Replace(r) => {
                    RouteNetlinkMessage::NewRoute(install_message(r, &config))
                }
                Change::Remove(s) => RouteNetlinkMessage::DelRoute(remove_message(s, &config)),
            };
            encode(body, flags, seq as u32, &mut fresh);
            assert_eq!(patched, fresh, "{change}");
        }
    }

    #[test]
    fn corrupted_replies_never_panic() {
        let mut buf = Vec::new();
        let route = Route::via(
            "fd00:2::/64".parse().unwrap(),
            NextHops::new(["fe80::1", "fe80::2"].map(|g| NextHop {
                gateway: g.parse().unwrap(),
                ifindex: Ifindex::new(3),
            }))
            .unwrap(),
        )
        .unwrap();
        let config = FibConfig::default();
        encode(
            RouteNetlinkMessage::NewRoute(install_message(&route, &config)),
            0,
            1,
            &mut buf,
        );
        // Deterministic xorshift: flip bytes all over a valid message, thousands of times.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut parsed = 0;
        for _ in 0..20_000 {
            let mut bytes = buf.clone();
            for _ in 0..(next() % 4 + 1) {
                let at = (next() % bytes.len() as u64) as usize;
                bytes[at] = next() as u8;
            }
            if next() % 4 == 0 {
                // Cut the message short but keep its length field consistent, so the cut
                // reaches the attribute parsers.
                let len = (next() % (bytes.len() as u64 + 1)) as usize;
                bytes.truncate(len);
                if let Some(field) = bytes.get_mut(..4) {
                    field.copy_from_slice(&(len as u32).to_ne_bytes());
                }
            }
            for msg in split_messages(&bytes).filter_map(Result::ok) {
                if let Ok(msg) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(msg) {
                    if let NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewRoute(m)) =
                        &msg.payload
                    {
                        parsed += usize::from(parse_route(m).is_some());
                    }
                    if let NetlinkPayload::Error(e) = &msg.payload {
                        let _ = extack_message(msg.header.flags, &e.header);
                    }
                }
            }
        }
        assert!(
            parsed > 1_000,
            "the corruption rarely reached the route parser: {parsed}"
        );
    }

    #[test]
    fn extack_text_is_found_or_absent() {
        // Capped echo: 16-byte header, then one NLA "bad\0" of type 1.
        let mut echo = vec![0u8; 16];
        echo.extend_from_slice(&[8, 0, 1, 0, b'b', b'a', b'd', 0]);
        assert_eq!(
            extack_message(NLM_F_CAPPED | NLM_F_ACK_TLVS, &echo),
            Some("bad".into())
        );
        assert_eq!(extack_message(NLM_F_CAPPED, &echo), None);
        assert_eq!(
            extack_message(NLM_F_CAPPED | NLM_F_ACK_TLVS, &echo[..3]),
            None
        );
        assert_eq!(extack_message(NLM_F_ACK_TLVS, &[]), None);
    }
}
