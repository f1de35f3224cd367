//! proptest strategies for canonical messages: values the decoder yields back unchanged.

use std::net::{Ipv4Addr, Ipv6Addr};

use bgpd_wire::*;
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

pub fn v4_prefix() -> impl Strategy<Value = Prefix> {
    (any::<u32>(), 0u8..=32)
        .prop_map(|(a, l)| Prefix::V4(Ipv4Prefix::new(Ipv4Addr::from(a), l).unwrap()))
}

pub fn v6_prefix() -> impl Strategy<Value = Prefix> {
    (any::<u128>(), 0u8..=128)
        .prop_map(|(a, l)| Prefix::V6(Ipv6Prefix::new(Ipv6Addr::from(a), l).unwrap()))
}

pub fn nlri(prefix: impl Strategy<Value = Prefix>, add_path: bool) -> impl Strategy<Value = Nlri> {
    (prefix, any::<u32>()).prop_map(move |(p, id)| Nlri {
        prefix: p,
        path_id: add_path.then_some(id),
    })
}

fn asn(four: bool) -> BoxedStrategy<Asn> {
    if four {
        (1u32..).prop_map(Asn).boxed()
    } else {
        (1u32..=65535).prop_map(Asn).boxed()
    }
}

/// Confederation segments lead (where they belong); on a two-octet session their ASes fit two
/// octets, since AS4_PATH cannot carry them.
pub fn as_path() -> impl Strategy<Value = AsPath> {
    let confed = vec(
        (
            prop_oneof![
                Just(SegmentKind::ConfedSequence),
                Just(SegmentKind::ConfedSet)
            ],
            vec(asn(false), 1..5),
        ),
        0..2,
    );
    let plain = vec(
        (
            prop_oneof![Just(SegmentKind::Sequence), Just(SegmentKind::Set)],
            vec(asn(true), 1..12),
        ),
        0..4,
    );
    (confed, plain).prop_map(|(c, p)| AsPath {
        segments: c
            .into_iter()
            .chain(p)
            .map(|(kind, asns)| AsSegment {
                kind,
                asns: asns.into(),
            })
            .collect(),
    })
}

pub fn unicast_v4() -> impl Strategy<Value = Ipv4Addr> {
    (1u8..224, any::<[u8; 3]>()).prop_map(|(a, [b, c, d])| Ipv4Addr::new(a, b, c, d))
}

fn unknown_attr() -> impl Strategy<Value = RawAttr> {
    let code = (19u8..=255).prop_filter("known type", |c| *c != 32);
    (code, any::<bool>(), vec(any::<u8>(), 0..300)).prop_map(|(type_code, partial, value)| {
        RawAttr {
            flags: flag::OPTIONAL | flag::TRANSITIVE | if partial { flag::PARTIAL } else { 0 },
            type_code,
            value,
        }
    })
}

/// Attributes that carry every well-known mandatory one, so announcing with them is clean.
/// On a two-octet session an AGGREGATOR is four-octet, so AS4_PATH is honoured (RFC 6793 §4.2.3).
pub fn path_attrs(four: bool) -> impl Strategy<Value = PathAttrs> {
    let aggregator_asn = if four {
        (1u32..).boxed()
    } else {
        (65536u32..).boxed()
    };
    (
        (
            prop_oneof![
                Just(Origin::Igp),
                Just(Origin::Egp),
                Just(Origin::Incomplete)
            ],
            as_path(),
            unicast_v4(),
            option::of(any::<u32>()),
            option::of(any::<u32>()),
            any::<bool>(),
            option::of((aggregator_asn, any::<u32>())),
        ),
        (
            vec(any::<u32>().prop_map(Community), 0..6),
            vec(any::<[u8; 8]>().prop_map(ExtCommunity), 0..4),
            vec(
                any::<(u32, u32, u32)>().prop_map(|(g, a, b)| LargeCommunity {
                    global: g,
                    local1: a,
                    local2: b,
                }),
                0..4,
            ),
            option::of(any::<u32>().prop_map(Ipv4Addr::from)),
            vec(any::<u32>().prop_map(Ipv4Addr::from), 0..4),
            // Distinct type codes: a repeated attribute is discarded on receipt (RFC 7606 §3 g).
            vec(unknown_attr(), 0..3).prop_map(|mut v| {
                v.sort_by_key(|a| a.type_code);
                v.dedup_by_key(|a| a.type_code);
                v
            }),
        ),
    )
        .prop_map(
            |(
                (origin, as_path, nh, med, lp, atomic, agg),
                (comm, ext, large, orig, cl, unknown),
            )| PathAttrs {
                origin: Some(origin),
                as_path: Some(as_path),
                next_hop: Some(NextHop::V4(nh)),
                med,
                local_pref: lp,
                atomic_aggregate: atomic,
                aggregator: agg.map(|(a, addr)| Aggregator {
                    asn: Asn(a),
                    addr: Ipv4Addr::from(addr),
                }),
                communities: comm.into(),
                ext_communities: ext,
                large_communities: large,
                originator_id: orig,
                cluster_list: cl,
                unknown,
            },
        )
}

pub fn v6_next_hop() -> impl Strategy<Value = NextHop> {
    (any::<u128>(), option::of(any::<u128>())).prop_map(|(g, ll)| NextHop::V6 {
        global: Ipv6Addr::from(g),
        link_local: ll.map(Ipv6Addr::from),
    })
}

/// A session context: two- or four-octet ASes, ADD-PATH on IPv4 and/or IPv6 unicast, 65535 octets.
pub fn ctx() -> impl Strategy<Value = SessionContext> {
    (any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(four, ap4, ap6)| SessionContext {
        four_octet_as: four,
        add_path_families: [(ap4, AfiSafi::IPV4_UNICAST), (ap6, AfiSafi::IPV6_UNICAST)]
            .into_iter()
            .filter_map(|(on, f)| on.then_some(f))
            .collect(),
        max_message_size: EXTENDED_MAX_MESSAGE_SIZE,
    })
}

/// An UPDATE valid under `ctx`; IPv6 routes in MP_REACH/MP_UNREACH, IPv4 ones in the plain fields
/// or (RFC 8950) in MP_REACH with an IPv6 next hop.
pub fn update(ctx: &SessionContext) -> impl Strategy<Value = Update> + use<> {
    let ap4 = ctx.add_path(AfiSafi::IPV4_UNICAST);
    let ap6 = ctx.add_path(AfiSafi::IPV6_UNICAST);
    let mp_reach = prop_oneof![
        (v6_next_hop(), vec(nlri(v6_prefix(), ap6), 0..20)).prop_map(|(next_hop, nlri)| MpReach {
            afi_safi: AfiSafi::IPV6_UNICAST,
            next_hop,
            nlri
        }),
        (v6_next_hop(), vec(nlri(v4_prefix(), ap4), 0..20)).prop_map(|(next_hop, nlri)| MpReach {
            afi_safi: AfiSafi::IPV4_UNICAST,
            next_hop,
            nlri
        }),
    ];
    let mp_unreach = vec(nlri(v6_prefix(), ap6), 0..20).prop_map(|w| MpUnreach {
        afi_safi: AfiSafi::IPV6_UNICAST,
        withdrawn: w,
    });
    (
        vec(nlri(v4_prefix(), ap4), 0..30),
        path_attrs(ctx.four_octet_as),
        option::of(mp_reach),
        option::of(mp_unreach),
        vec(nlri(v4_prefix(), ap4), 0..30),
    )
        .prop_map(|(withdrawn, attrs, mp_reach, mp_unreach, nlri)| Update {
            withdrawn,
            attrs,
            mp_reach,
            mp_unreach,
            nlri,
            errors: Vec::new(),
        })
}

fn family() -> impl Strategy<Value = AfiSafi> {
    (any::<u16>(), any::<u8>()).prop_map(|(a, s)| AfiSafi::new(Afi(a), Safi(s)))
}

pub fn capability() -> impl Strategy<Value = Capability> {
    let name = "[a-z0-9.-]{0,30}";
    prop_oneof![
        family().prop_map(Capability::Multiprotocol),
        Just(Capability::RouteRefresh),
        vec((family(), any::<u16>()), 0..4).prop_map(|v| Capability::ExtendedNextHop(
            v.into_iter()
                .map(|(nlri, nh)| ExtendedNextHop {
                    nlri,
                    next_hop_afi: Afi(nh)
                })
                .collect()
        )),
        Just(Capability::ExtendedMessage),
        (
            any::<bool>(),
            any::<bool>(),
            0u16..4096,
            vec((family(), any::<bool>()), 0..4)
        )
            .prop_map(|(r, n, t, f)| {
                Capability::GracefulRestart(GracefulRestart {
                    restarting: r,
                    notification: n,
                    restart_time: t,
                    families: f
                        .into_iter()
                        .map(|(afi_safi, fp)| GracefulRestartFamily {
                            afi_safi,
                            forwarding_preserved: fp,
                        })
                        .collect(),
                })
            }),
        any::<u32>().prop_map(|a| Capability::FourOctetAs(Asn(a))),
        vec(
            (
                family(),
                prop_oneof![
                    Just(AddPathMode::Receive),
                    Just(AddPathMode::Send),
                    Just(AddPathMode::Both)
                ]
            ),
            0..4
        )
        .prop_map(|v| Capability::AddPath(
            v.into_iter()
                .map(|(afi_safi, mode)| AddPathFamily { afi_safi, mode })
                .collect()
        )),
        Just(Capability::EnhancedRouteRefresh),
        (name, name).prop_map(|(host, domain)| Capability::Hostname { host, domain }),
        (128u8..=255, vec(any::<u8>(), 0..120))
            .prop_map(|(code, value)| Capability::Unknown { code, value }),
    ]
}

pub fn open() -> impl Strategy<Value = Open> {
    (
        any::<u16>(),
        any::<u16>(),
        any::<u32>(),
        vec(capability(), 0..12),
    )
        .prop_map(|(my_as, hold_time, id, caps)| Open {
            my_as,
            hold_time,
            bgp_id: Ipv4Addr::from(id),
            capabilities: caps,
        })
}

pub fn notification() -> impl Strategy<Value = Notification> {
    (any::<u8>(), any::<u8>(), vec(any::<u8>(), 0..64))
        .prop_map(|(c, s, data)| Notification::new(ErrorCode::from_octets(c, s), data))
}

pub fn route_refresh() -> impl Strategy<Value = RouteRefresh> {
    (family(), any::<u8>()).prop_map(|(afi_safi, s)| RouteRefresh {
        afi_safi,
        subtype: s.into(),
    })
}
