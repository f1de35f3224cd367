//! Packing many routes with one attribute set into UPDATEs: every route arrives once, every
//! message respects the negotiated size, and no message could have held one more route.

use std::net::{Ipv4Addr, Ipv6Addr};

use bgpd_wire::*;
use bytes::BytesMut;

fn attrs(next_hop: NextHop) -> PathAttrs {
    PathAttrs {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::sequence([Asn(65001), Asn(4_200_000_001)])),
        next_hop: Some(next_hop),
        med: Some(10),
        communities: smallvec::smallvec![Community::new(65001, 1)],
        large_communities: vec![LargeCommunity {
            global: 65001,
            local1: 1,
            local2: 2,
        }],
        ..PathAttrs::default()
    }
}

fn v4_routes(n: u32, add_path: bool) -> Vec<Nlri> {
    (0..n)
        .map(|i| Nlri {
            prefix: Prefix::V4(
                Ipv4Prefix::new(Ipv4Addr::from(0x0a00_0000 + (i << 8)), 24).unwrap(),
            ),
            path_id: add_path.then_some(i % 3),
        })
        .collect()
}

fn v6_routes(n: u32) -> Vec<Nlri> {
    (0..n)
        .map(|i| {
            Nlri::new(
                Ipv6Prefix::new(
                    Ipv6Addr::from(0x2001_0db8u128 << 96 | u128::from(i) << 80),
                    48,
                )
                .unwrap(),
            )
        })
        .collect()
}

/// Splits `out` into messages and decodes each, checking the size limit.
fn messages(out: &[u8], ctx: &SessionContext) -> Vec<Update> {
    let mut rest = out;
    let mut updates = Vec::new();
    while !rest.is_empty() {
        let h = Header::peek(rest, ctx.max_message_size).unwrap().unwrap();
        assert!(h.len <= ctx.max_message_size);
        match Message::decode(&rest[..h.len], ctx).unwrap() {
            Message::Update(u) => {
                assert!(u.errors.is_empty(), "{:?}", u.errors);
                updates.push(*u);
            }
            other => panic!("{other:?}"),
        }
        rest = &rest[h.len..];
    }
    updates
}

fn ctx(max: usize, four: bool, add_path: &[AfiSafi]) -> SessionContext {
    SessionContext {
        four_octet_as: four,
        add_path_families: add_path.to_vec(),
        max_message_size: max,
    }
}

/// The messages hold `routes` in order, each one full: the next route would not have fitted.
fn assert_packed(
    out: &[u8],
    ctx: &SessionContext,
    family: AfiSafi,
    routes: &[Nlri],
    attrs: Option<&PathAttrs>,
) {
    let updates = messages(out, ctx);
    let mut got = Vec::new();
    let mut rest = out;
    for (i, u) in updates.iter().enumerate() {
        let len = Header::peek(rest, ctx.max_message_size)
            .unwrap()
            .unwrap()
            .len;
        rest = &rest[len..];
        let (carried, announced_attrs): (Vec<Nlri>, Option<PathAttrs>) =
            match (&u.mp_reach, &u.mp_unreach) {
                (Some(mp), _) => {
                    assert_eq!(mp.afi_safi, family);
                    (
                        mp.nlri.clone(),
                        Some(PathAttrs {
                            next_hop: Some(mp.next_hop),
                            ..u.attrs.clone()
                        }),
                    )
                }
                (None, Some(mp)) => (mp.withdrawn.clone(), None),
                (None, None) if u.nlri.is_empty() => (u.withdrawn.clone(), None),
                (None, None) => (u.nlri.clone(), Some(u.attrs.clone())),
            };
        assert_eq!(announced_attrs.as_ref(), attrs);
        if i + 1 < updates.len() {
            let next = &routes[got.len() + carried.len()];
            let extra = next.prefix.wire_len() + if ctx.add_path(family) { 4 } else { 0 };
            assert!(
                len + extra > ctx.max_message_size,
                "message {i} of {len} octets had room for {next:?}"
            );
        }
        got.extend(carried);
    }
    assert_eq!(got, routes);
}

#[test]
fn ipv4_routes_fill_4096_octet_messages() {
    let ctx = ctx(4096, true, &[]);
    let a = attrs(NextHop::V4(Ipv4Addr::new(192, 0, 2, 1)));
    let routes = v4_routes(1100, false);
    let mut out = BytesMut::new();
    let n = pack::announce(&ctx, AfiSafi::IPV4_UNICAST, &a, &routes, &mut out).unwrap();
    assert_eq!(n, 2, "4400 octets of NLRI need two 4096-octet messages");
    assert_packed(&out, &ctx, AfiSafi::IPV4_UNICAST, &routes, Some(&a));
}

#[test]
fn extended_messages_take_everything_at_once() {
    let ctx = ctx(65535, true, &[]);
    let a = attrs(NextHop::V4(Ipv4Addr::new(192, 0, 2, 1)));
    let routes = v4_routes(1000, false);
    let mut out = BytesMut::new();
    assert_eq!(
        pack::announce(&ctx, AfiSafi::IPV4_UNICAST, &a, &routes, &mut out).unwrap(),
        1
    );
    assert_packed(&out, &ctx, AfiSafi::IPV4_UNICAST, &routes, Some(&a));
}

#[test]
fn add_path_ids_travel_and_count_against_the_size() {
    let ctx = ctx(4096, true, &[AfiSafi::IPV4_UNICAST]);
    let a = attrs(NextHop::V4(Ipv4Addr::new(192, 0, 2, 1)));
    let routes = v4_routes(1000, true);
    let mut out = BytesMut::new();
    // 8 octets a route: about 500 per message.
    assert_eq!(
        pack::announce(&ctx, AfiSafi::IPV4_UNICAST, &a, &routes, &mut out).unwrap(),
        2
    );
    assert_packed(&out, &ctx, AfiSafi::IPV4_UNICAST, &routes, Some(&a));
}

#[test]
fn ipv6_routes_go_in_mp_reach() {
    let ctx = ctx(4096, true, &[]);
    let nh = NextHop::V6 {
        global: "2001:db8::1".parse().unwrap(),
        link_local: Some("fe80::1".parse().unwrap()),
    };
    let a = attrs(nh);
    let routes = v6_routes(2000);
    let mut out = BytesMut::new();
    let n = pack::announce(&ctx, AfiSafi::IPV6_UNICAST, &a, &routes, &mut out).unwrap();
    assert!(n >= 3);
    assert_packed(&out, &ctx, AfiSafi::IPV6_UNICAST, &routes, Some(&a));
}

#[test]
fn ipv4_routes_with_ipv6_next_hop_go_in_mp_reach() {
    // RFC 8950.
    let ctx = ctx(4096, true, &[]);
    let a = attrs(NextHop::V6 {
        global: "2001:db8::1".parse().unwrap(),
        link_local: None,
    });
    let routes = v4_routes(1500, false);
    let mut out = BytesMut::new();
    pack::announce(&ctx, AfiSafi::IPV4_UNICAST, &a, &routes, &mut out).unwrap();
    assert_packed(&out, &ctx, AfiSafi::IPV4_UNICAST, &routes, Some(&a));
}

#[test]
fn two_octet_sessions_get_as4_path() {
    let ctx = ctx(4096, false, &[]);
    let a = attrs(NextHop::V4(Ipv4Addr::new(192, 0, 2, 1)));
    let routes = v4_routes(10, false);
    let mut out = BytesMut::new();
    pack::announce(&ctx, AfiSafi::IPV4_UNICAST, &a, &routes, &mut out).unwrap();
    // AS_PATH with AS_TRANS (0x5ba0), AS4_PATH with the real ASes.
    assert!(out.windows(6).any(|w| w == [2, 2, 0xfd, 0xe9, 0x5b, 0xa0]));
    assert!(out.windows(4).any(|w| w == 4_200_000_001u32.to_be_bytes()));
    assert_packed(&out, &ctx, AfiSafi::IPV4_UNICAST, &routes, Some(&a));
}

#[test]
fn withdrawals_pack_in_both_families() {
    let ctx = ctx(4096, true, &[]);
    let routes = v4_routes(3000, false);
    let mut out = BytesMut::new();
    assert_eq!(
        pack::withdraw(&ctx, AfiSafi::IPV4_UNICAST, &routes, &mut out).unwrap(),
        3
    );
    assert_packed(&out, &ctx, AfiSafi::IPV4_UNICAST, &routes, None);

    let routes = v6_routes(3000);
    let mut out = BytesMut::new();
    pack::withdraw(&ctx, AfiSafi::IPV6_UNICAST, &routes, &mut out).unwrap();
    assert_packed(&out, &ctx, AfiSafi::IPV6_UNICAST, &routes, None);
}

#[test]
fn nothing_to_send_writes_nothing() {
    let ctx = ctx(4096, true, &[]);
    let mut out = BytesMut::new();
    let a = attrs(NextHop::V4(Ipv4Addr::new(192, 0, 2, 1)));
    assert_eq!(
        pack::announce(&ctx, AfiSafi::IPV4_UNICAST, &a, &[], &mut out).unwrap(),
        0
    );
    assert_eq!(
        pack::withdraw(&ctx, AfiSafi::IPV6_UNICAST, &[], &mut out).unwrap(),
        0
    );
    assert!(out.is_empty());
}

#[test]
fn packing_refuses_what_cannot_be_sent() {
    let ctx = ctx(4096, true, &[]);
    let mut out = BytesMut::new();
    let no_nh = PathAttrs {
        next_hop: None,
        ..attrs(NextHop::V4(Ipv4Addr::LOCALHOST))
    };
    assert_eq!(
        pack::announce(
            &ctx,
            AfiSafi::IPV4_UNICAST,
            &no_nh,
            &v4_routes(1, false),
            &mut out
        ),
        Err(EncodeError::NextHop(AfiSafi::IPV4_UNICAST))
    );
    let a = attrs(NextHop::V4(Ipv4Addr::new(192, 0, 2, 1)));
    assert!(matches!(
        pack::announce(&ctx, AfiSafi::IPV4_UNICAST, &a, &v6_routes(1), &mut out),
        Err(EncodeError::FamilyMismatch { .. })
    ));
    // Attributes that leave no room for a single prefix.
    let huge = PathAttrs {
        communities: (0..1100).map(Community).collect(),
        ..a
    };
    assert!(matches!(
        pack::announce(
            &ctx,
            AfiSafi::IPV4_UNICAST,
            &huge,
            &v4_routes(1, false),
            &mut out
        ),
        Err(EncodeError::TooLarge { .. })
    ));
}

#[test]
fn an_error_midway_leaves_only_whole_messages() {
    let ctx = ctx(4096, true, &[]);
    let a = attrs(NextHop::V4(Ipv4Addr::new(192, 0, 2, 1)));
    let mut routes = v4_routes(1500, false);
    routes.push(v6_routes(1)[0]);
    let mut out = BytesMut::new();
    assert!(matches!(
        pack::announce(&ctx, AfiSafi::IPV4_UNICAST, &a, &routes, &mut out),
        Err(EncodeError::FamilyMismatch { .. })
    ));
    // The first, full message stays; the failed one is gone entirely.
    let updates = messages(&out, &ctx);
    assert_eq!(updates.len(), 1);
    assert!(updates[0].nlri.len() > 900);
}
