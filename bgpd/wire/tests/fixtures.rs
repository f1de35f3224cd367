//! Messages captured from real sessions between BIRD 2, FRR, GoBGP and ExaBGP (see
//! fixtures/README.md): each decodes, re-encodes to the same message, and holds the values the
//! capture's README and tshark's decode say it holds.
//!
//! The session context of every message comes from negotiating the two OPENs of its TCP
//! stream with `bgpd_wire::negotiate`, as a speaker would.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use bgpd_wire::*;
use bytes::BytesMut;
use smallvec::{SmallVec, smallvec};

/// One captured message.
struct Captured {
    file: String,
    stream: u32,
    message: Message,
    /// Our canonical encoding reproduces the captured bytes exactly.
    byte_exact: bool,
}

fn dir(session: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(session)
}

fn read_hex(path: &PathBuf) -> Vec<u8> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let hex: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
    hex.chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}

/// Endpoint address without the port.
fn host(endpoint: &str) -> String {
    let (h, _) = endpoint.rsplit_once(':').unwrap();
    h.trim_matches(['[', ']']).to_owned()
}

/// Every message of `session` in capture order, decoded with its stream's negotiated context.
fn session(session: &str) -> Vec<Captured> {
    let index = std::fs::read_to_string(dir(session).join("index.tsv")).unwrap();
    let rows: Vec<(String, u32, String, String, usize)> = index
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (
                f[1].to_owned(),
                f[2].parse().unwrap(),
                host(f[3]),
                host(f[4]),
                f[5].parse().unwrap(),
            )
        })
        .collect();
    let mut opens: HashMap<(u32, String), Open> = HashMap::new();
    let mut out = Vec::new();
    for (file, stream, from, to, len) in rows {
        let bytes = read_hex(&dir(session).join(&file));
        assert_eq!(bytes.len(), len, "{file}: length as indexed");
        let header = Header::peek(&bytes, EXTENDED_MAX_MESSAGE_SIZE)
            .unwrap()
            .unwrap();
        assert_eq!(header.len, len, "{file}: framing");
        let ctx = match (
            opens.get(&(stream, from.clone())),
            opens.get(&(stream, to.clone())),
        ) {
            (Some(mine), Some(theirs)) => negotiate(mine, theirs).send,
            _ => SessionContext::default(),
        };
        let message =
            Message::decode(&bytes, &ctx).unwrap_or_else(|e| panic!("{session}/{file}: {e}"));
        if let Message::Update(u) = &message {
            assert!(u.errors.is_empty(), "{session}/{file}: {:?}", u.errors);
        }
        // Decode → encode → decode gives the same message.
        let mut again = BytesMut::new();
        message
            .encode(&ctx, &mut again)
            .unwrap_or_else(|e| panic!("{session}/{file}: {e}"));
        assert_eq!(
            Message::decode(&again, &ctx).unwrap(),
            message,
            "{session}/{file}: re-encoded"
        );
        let byte_exact = again[..] == bytes[..];
        if let Message::Open(o) = &message {
            opens.insert((stream, from), o.clone());
        }
        out.push(Captured {
            file,
            stream,
            message,
            byte_exact,
        });
    }
    out
}

fn open<'a>(msgs: &'a [Captured], file: &str) -> &'a Open {
    match msgs.iter().find(|c| c.file == file).map(|c| &c.message) {
        Some(Message::Open(o)) => o,
        other => panic!("{file}: {other:?}"),
    }
}

fn updates<'a>(msgs: &'a [Captured], sender: &'a str) -> impl Iterator<Item = &'a Update> + 'a {
    msgs.iter()
        .filter(move |c| c.file.starts_with(&format!("{sender}-update")))
        .filter_map(|c| match &c.message {
            Message::Update(u) => Some(&**u),
            _ => None,
        })
}

/// The attributes (with the family's next hop) and path id of each announcement of `prefix` by
/// `sender`, in capture order.
fn announced(msgs: &[Captured], sender: &str, prefix: &str) -> Vec<(PathAttrs, Option<u32>)> {
    let p: Prefix = prefix.parse().unwrap();
    let mut found = Vec::new();
    for u in updates(msgs, sender) {
        for n in u.nlri.iter().filter(|n| n.prefix == p) {
            found.push((u.attrs.clone(), n.path_id));
        }
        if let Some(mp) = &u.mp_reach {
            for n in mp.nlri.iter().filter(|n| n.prefix == p) {
                found.push((
                    PathAttrs {
                        next_hop: Some(mp.next_hop),
                        ..u.attrs.clone()
                    },
                    n.path_id,
                ));
            }
        }
    }
    assert!(!found.is_empty(), "{sender} never announced {prefix}");
    found
}

fn one(msgs: &[Captured], sender: &str, prefix: &str) -> PathAttrs {
    let mut all = announced(msgs, sender, prefix);
    assert_eq!(all.len(), 1, "{sender} {prefix}: {all:?}");
    all.remove(0).0
}

fn withdrawn(msgs: &[Captured], sender: &str) -> Vec<Nlri> {
    updates(msgs, sender)
        .flat_map(|u| {
            u.withdrawn
                .iter()
                .chain(u.mp_unreach.iter().flat_map(|m| &m.withdrawn))
                .copied()
        })
        .collect()
}

fn end_of_ribs(msgs: &[Captured], sender: &str) -> Vec<AfiSafi> {
    updates(msgs, sender)
        .filter_map(Update::end_of_rib_family)
        .collect()
}

fn path(asns: &[u32]) -> Option<AsPath> {
    Some(AsPath::sequence(asns.iter().map(|&a| Asn(a))))
}

fn comms(list: &[(u16, u16)]) -> SmallVec<[Community; 4]> {
    list.iter().map(|&(a, v)| Community::new(a, v)).collect()
}

fn large(g: u32, a: u32, b: u32) -> Vec<LargeCommunity> {
    vec![LargeCommunity {
        global: g,
        local1: a,
        local2: b,
    }]
}

fn notifications<'a>(msgs: &'a [Captured], sender: &str) -> Vec<&'a Notification> {
    msgs.iter()
        .filter(|c| c.file.starts_with(&format!("{sender}-notification")))
        .filter_map(|c| match &c.message {
            Message::Notification(n) => Some(n),
            _ => None,
        })
        .collect()
}

fn has_cap(o: &Open, want: &Capability) -> bool {
    o.capabilities.contains(want)
}

fn graceful_restart(o: &Open) -> &GracefulRestart {
    o.capabilities
        .iter()
        .find_map(|c| match c {
            Capability::GracefulRestart(g) => Some(g),
            _ => None,
        })
        .expect("graceful restart capability")
}

#[test]
fn bird_gobgp_ebgp_with_add_path() {
    let m = session("bird-gobgp");
    // Stream 1 is the IPv4 session, stream 0 the IPv6 one.
    let bird = open(&m, "bird-open-2.hex");
    assert_eq!(bird.asn(), Asn(65001));
    assert_eq!(bird.bgp_id, Ipv4Addr::new(10, 0, 1, 1));
    assert!(has_cap(bird, &Capability::FourOctetAs(Asn(65001))));
    assert!(has_cap(bird, &Capability::ExtendedMessage));
    assert!(has_cap(bird, &Capability::EnhancedRouteRefresh));
    assert!(has_cap(
        bird,
        &Capability::Hostname {
            host: "bird1".into(),
            domain: String::new()
        }
    ));
    assert!(has_cap(
        bird,
        &Capability::AddPath(vec![AddPathFamily {
            afi_safi: AfiSafi::IPV4_UNICAST,
            mode: AddPathMode::Both
        }])
    ));
    let gr = graceful_restart(bird);
    assert_eq!(gr.restart_time, 120);
    assert_eq!(
        gr.families.iter().map(|f| f.afi_safi).collect::<Vec<_>>(),
        [AfiSafi::IPV4_UNICAST]
    );
    let gobgp = open(&m, "gobgp-open-2.hex");
    assert_eq!(gobgp.asn(), Asn(65002));
    assert_eq!(gobgp.bgp_id, Ipv4Addr::new(10, 0, 1, 2));
    let n = negotiate(bird, gobgp);
    assert_eq!(n.send.add_path_families, [AfiSafi::IPV4_UNICAST]);
    assert_eq!(n.receive.add_path_families, [AfiSafi::IPV4_UNICAST]);
    assert!(n.send.four_octet_as);

    // Two paths of 10.101.0.0/24, told apart by path id; one has MED 10.
    let paths = announced(&m, "bird", "10.101.0.0/24");
    assert_eq!(paths.len(), 2);
    assert_ne!(paths[0].1, paths[1].1);
    assert!(paths.iter().all(|(_, id)| id.is_some()));
    let med10 = paths
        .iter()
        .find(|(a, _)| a.med == Some(10))
        .expect("MED 10 path");
    assert!(paths.iter().any(|(a, _)| a.med.is_none()));
    let gone = withdrawn(&m, "bird");
    assert!(gone.contains(&Nlri {
        prefix: "10.101.0.0/24".parse().unwrap(),
        path_id: med10.1
    }));

    let a = one(&m, "bird", "10.101.1.0/24");
    assert_eq!(a.med, Some(50));
    assert_eq!(a.as_path, path(&[65001]));
    assert_eq!(a.next_hop, Some(NextHop::V4(Ipv4Addr::new(10, 0, 1, 1))));
    assert_eq!(a.origin, Some(Origin::Igp));
    assert_eq!(
        one(&m, "bird", "10.101.2.0/24").communities,
        comms(&[(65001, 100), (65001, 200)])
    );
    assert_eq!(
        one(&m, "bird", "10.101.3.0/24").large_communities,
        large(65001, 1, 2)
    );
    assert_eq!(
        one(&m, "bird", "10.101.4.0/24").ext_communities,
        [ExtCommunity::route_target(65001, 7)]
    );
    assert_eq!(
        one(&m, "bird", "10.101.5.0/24").as_path,
        path(&[65001, 65001])
    );
    assert_eq!(
        one(&m, "bird", "10.101.6.0/24").as_path,
        path(&[65001, 65001, 65001, 65001])
    );
    // The plain routes share one UPDATE.
    let packed = updates(&m, "bird")
        .find(|u| {
            u.nlri
                .iter()
                .any(|n| n.prefix == "10.101.10.0/24".parse().unwrap())
        })
        .unwrap();
    let prefixes: Vec<String> = packed.nlri.iter().map(|n| n.prefix.to_string()).collect();
    for p in [
        "10.101.0.0/24",
        "10.101.10.0/24",
        "10.101.11.0/24",
        "10.101.12.0/24",
    ] {
        assert!(prefixes.contains(&p.to_owned()), "{p} in {prefixes:?}");
    }

    // IPv6 over MP_REACH with a global and a link-local next hop.
    let v6 = one(&m, "bird", "2001:db8:101:1::/64");
    assert_eq!(v6.med, Some(60));
    assert_eq!(v6.communities, comms(&[(65001, 600)]));
    assert_eq!(v6.large_communities, large(65001, 6, 6));
    match v6.next_hop {
        Some(NextHop::V6 {
            global,
            link_local: Some(ll),
        }) => {
            assert_eq!(global, "fd00:1::1".parse::<Ipv6Addr>().unwrap());
            assert!(ll.segments()[0] == 0xfe80, "{ll}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        one(&m, "bird", "2001:db8:101:2::/64").as_path,
        path(&[65001, 65001])
    );

    let g = one(&m, "gobgp", "10.102.1.0/24");
    assert_eq!(g.med, Some(20));
    assert_eq!(g.communities, comms(&[(65002, 100), (65002, 200)]));
    assert_eq!(g.large_communities, large(65002, 1, 2));
    let g2 = &announced(&m, "gobgp", "10.102.2.0/24")[0].0;
    assert_eq!(g2.as_path, path(&[65002, 65020, 65021]));
    assert_eq!(g2.origin, Some(Origin::Incomplete));
    assert_eq!(one(&m, "gobgp", "10.102.0.0/24").origin, Some(Origin::Igp));
    assert_eq!(one(&m, "gobgp", "10.102.3.0/24").med, Some(30));
    assert_eq!(
        one(&m, "gobgp", "2001:db8:102::/48").communities,
        comms(&[(65002, 600)])
    );
    let gone: Vec<Prefix> = withdrawn(&m, "gobgp").iter().map(|n| n.prefix).collect();
    assert!(gone.contains(&"10.102.2.0/24".parse().unwrap()));
    assert!(gone.contains(&"2001:db8:102::/48".parse().unwrap()));

    for sender in ["bird", "gobgp"] {
        let eor = end_of_ribs(&m, sender);
        assert!(
            eor.contains(&AfiSafi::IPV4_UNICAST) && eor.contains(&AfiSafi::IPV6_UNICAST),
            "{sender}: {eor:?}"
        );
    }
    let shutdowns = notifications(&m, "bird");
    assert!(
        shutdowns
            .iter()
            .all(|n| n.code == ErrorCode::Cease(Cease::AdministrativeShutdown))
    );
    assert!(
        shutdowns
            .iter()
            .any(|n| n.shutdown_message() == Some("fixture shutdown"))
    );
}

#[test]
fn frr_gobgp_ibgp() {
    let m = session("frr-gobgp");
    let frr = open(&m, "frr-open-1.hex");
    assert_eq!(frr.asn(), Asn(65000));
    assert_eq!(frr.bgp_id, Ipv4Addr::new(10, 0, 2, 1));
    assert!(has_cap(frr, &Capability::RouteRefresh));
    assert!(has_cap(frr, &Capability::EnhancedRouteRefresh));
    assert!(
        frr.capabilities
            .iter()
            .any(|c| matches!(c, Capability::Hostname { host, .. } if host == "frr1"))
    );
    // The pre-standard route refresh (128) and LLGR (71) stay raw.
    assert!(
        frr.capabilities
            .iter()
            .any(|c| matches!(c, Capability::Unknown { code: 128, .. }))
    );
    let gobgp = open(&m, "gobgp-open-1.hex");
    assert_eq!(gobgp.bgp_id, Ipv4Addr::new(10, 0, 2, 2));
    assert_eq!(graceful_restart(gobgp).restart_time, 90);
    assert!(
        gobgp
            .capabilities
            .iter()
            .any(|c| matches!(c, Capability::ExtendedNextHop(v)
        if v.iter().any(|e| e.nlri.afi == Afi::IPV4 && e.next_hop_afi == Afi::IPV6)))
    );
    // FRR sends path ids to GoBGP on IPv4, GoBGP sends none.
    assert_eq!(
        negotiate(frr, gobgp).send.add_path_families,
        [AfiSafi::IPV4_UNICAST]
    );
    assert!(negotiate(gobgp, frr).send.add_path_families.is_empty());
    assert!(
        announced(&m, "frr", "10.103.0.0/24")
            .iter()
            .all(|(_, id)| id.is_some())
    );

    let a = one(&m, "frr", "10.103.1.0/24");
    assert_eq!(a.local_pref, Some(250));
    assert_eq!(a.med, Some(77));
    assert_eq!(a.communities, comms(&[(65000, 1), (65000, 2)]));
    assert_eq!(a.large_communities, large(65000, 3, 4));
    assert_eq!(a.ext_communities, [ExtCommunity::route_target(65000, 5)]);
    assert_eq!(a.as_path, Some(AsPath::default()));
    let v6 = one(&m, "frr", "2001:db8:103:1::/64");
    assert_eq!((v6.local_pref, v6.med), (Some(250), Some(77)));
    assert_eq!(
        one(&m, "frr", "10.103.2.0/24").as_path,
        path(&[65000, 65000])
    );
    assert!(
        withdrawn(&m, "frr")
            .iter()
            .any(|n| n.prefix == "10.103.3.0/24".parse().unwrap())
    );
    one(&m, "frr", "2001:db8:103::/48");

    assert_eq!(one(&m, "gobgp", "10.104.0.0/24").local_pref, Some(300));
    let g = one(&m, "gobgp", "10.104.1.0/24");
    assert_eq!((g.local_pref, g.med), (Some(120), Some(5)));
    assert_eq!(g.communities, comms(&[(65000, 40)]));
    assert_eq!(g.large_communities, large(65000, 4, 4));
    assert!(
        announced(&m, "gobgp", "10.104.1.0/24")
            .iter()
            .all(|(_, id)| id.is_none())
    );
    assert_eq!(one(&m, "gobgp", "2001:db8:104::/48").local_pref, Some(150));
    assert!(
        withdrawn(&m, "gobgp")
            .iter()
            .any(|n| n.prefix == "10.104.1.0/24".parse().unwrap())
    );

    // Only the IPv4 session negotiated graceful restart both ways, so only it has End-of-RIB.
    for sender in ["frr", "gobgp"] {
        assert_eq!(end_of_ribs(&m, sender), [AfiSafi::IPV4_UNICAST], "{sender}");
    }
    let frr_n = notifications(&m, "frr");
    assert!(frr_n.iter().any(
        |n| n.code == ErrorCode::Cease(Cease::AdministrativeShutdown)
            && n.shutdown_message() == Some("fixture maintenance")
    ));
    assert!(
        notifications(&m, "gobgp")
            .iter()
            .any(|n| n.code == ErrorCode::Cease(Cease::AdministrativeReset))
    );
}

#[test]
fn bird_frr_ebgp_and_bad_peer_as() {
    let m = session("bird-frr");
    let bird = open(&m, "bird-open-1.hex");
    assert_eq!(
        (bird.asn(), bird.bgp_id),
        (Asn(65001), Ipv4Addr::new(10, 0, 3, 1))
    );
    let frr = open(&m, "frr-open-1.hex");
    assert_eq!(
        (frr.asn(), frr.bgp_id),
        (Asn(65003), Ipv4Addr::new(10, 0, 3, 2))
    );
    assert!(negotiate(bird, frr).send.add_path_families.is_empty());
    // On the IPv6 session BIRD is only restart-aware: no families.
    assert!(
        graceful_restart(open(&m, "bird-open-2.hex"))
            .families
            .is_empty()
    );

    let packed = updates(&m, "bird")
        .find(|u| {
            u.nlri
                .iter()
                .any(|n| n.prefix == "10.105.0.0/24".parse().unwrap())
        })
        .unwrap();
    assert!(
        packed
            .nlri
            .iter()
            .any(|n| n.prefix == "10.105.2.0/24".parse().unwrap())
    );
    let b = one(&m, "bird", "10.105.1.0/24");
    assert_eq!(
        (b.med, b.communities.clone()),
        (Some(500), comms(&[(65001, 5)]))
    );
    assert!(
        withdrawn(&m, "bird")
            .iter()
            .any(|n| n.prefix == "2001:db8:105::/48".parse().unwrap())
    );

    let f = one(&m, "frr", "10.106.1.0/24");
    assert_eq!(f.communities, comms(&[(65003, 10), (65003, 11)]));
    assert_eq!(f.ext_communities, [ExtCommunity::route_target(65003, 9)]);
    assert_eq!(f.large_communities, large(65003, 7, 8));
    assert_eq!(f.med, Some(0));
    assert_eq!(f.as_path, path(&[65003]));
    assert_eq!(
        one(&m, "frr", "2001:db8:106::/48").large_communities,
        large(65003, 7, 8)
    );
    assert_eq!(
        one(&m, "frr", "10.105.1.0/24").as_path,
        path(&[65003, 65001])
    );

    // The wrong-AS stream: our validation agrees with FRR's verdict, and FRR's NOTIFICATION
    // carries the offending AS.
    let wrong = open(&m, "bird-wrongas-open-1.hex");
    let e = wrong
        .validate(Some(Asn(65099)), Asn(65003), Ipv4Addr::new(10, 0, 3, 2))
        .unwrap_err();
    assert_eq!(e.code(), (2, 2));
    let bad_as = m
        .iter()
        .find(|c| c.stream == 2 && c.file.starts_with("frr-notification"))
        .map(|c| match &c.message {
            Message::Notification(n) => n.clone(),
            other => panic!("{other:?}"),
        })
        .unwrap();
    assert_eq!(bad_as.code, ErrorCode::Open(OpenError::BadPeerAs));
    assert_eq!(bad_as.data, 65001u16.to_be_bytes());
    assert!(
        notifications(&m, "bird")
            .iter()
            .all(|n| n.code == ErrorCode::Cease(Cease::AdministrativeShutdown))
    );
}

#[test]
fn exabgp_gobgp_rare_attributes_and_two_octet_as() {
    let m = session("exabgp-gobgp");
    let exa = open(&m, "exabgp-open-1.hex");
    assert_eq!(exa.asn(), Asn(65000));
    assert_eq!(exa.bgp_id, Ipv4Addr::new(10, 0, 4, 1));

    let a = one(&m, "exabgp", "10.107.0.0/24");
    assert_eq!(a.local_pref, Some(200));
    assert_eq!(
        a.as_path,
        Some(AsPath {
            segments: smallvec![
                AsSegment {
                    kind: SegmentKind::Sequence,
                    asns: smallvec![Asn(65040)]
                },
                AsSegment {
                    kind: SegmentKind::Set,
                    asns: smallvec![Asn(65041), Asn(65042)]
                },
            ]
        })
    );
    assert!(a.atomic_aggregate);
    assert_eq!(
        a.aggregator,
        Some(Aggregator {
            asn: Asn(65040),
            addr: Ipv4Addr::new(10, 0, 4, 1)
        })
    );
    let c = one(&m, "exabgp", "10.107.1.0/24");
    assert_eq!(
        c.communities[..],
        [Community::NO_EXPORT, Community::new(65000, 7)]
    );
    assert_eq!(c.ext_communities.len(), 2);
    assert!(
        c.ext_communities
            .contains(&ExtCommunity::route_target(65000, 1))
    );
    assert_eq!(c.large_communities, large(65000, 1, 1));
    let u = one(&m, "exabgp", "10.107.2.0/24");
    assert_eq!(
        u.unknown,
        [RawAttr {
            flags: 0xc0,
            type_code: 255,
            value: vec![1, 2, 3, 4]
        }]
    );
    let r = one(&m, "exabgp", "10.107.3.0/24");
    assert_eq!(r.originator_id, Some(Ipv4Addr::new(10, 9, 9, 9)));
    assert_eq!(
        r.cluster_list,
        [Ipv4Addr::new(10, 8, 8, 8), Ipv4Addr::new(10, 8, 8, 9)]
    );
    let two = announced(&m, "exabgp", "10.107.4.0/24");
    let by_id: HashMap<Option<u32>, &PathAttrs> = two.iter().map(|(a, id)| (*id, a)).collect();
    assert_eq!(by_id[&Some(7)].med, Some(4));
    assert_eq!(
        by_id[&Some(7)].next_hop,
        Some(NextHop::V4(Ipv4Addr::new(10, 0, 4, 1)))
    );
    assert_eq!(by_id[&Some(8)].local_pref, Some(90));
    assert_eq!(
        by_id[&Some(8)].next_hop,
        Some(NextHop::V4(Ipv4Addr::new(10, 0, 4, 3)))
    );
    let v6 = one(&m, "exabgp", "2001:db8:107::/48");
    assert_eq!(v6.origin, Some(Origin::Egp));
    assert_eq!(
        v6.next_hop,
        Some(NextHop::V6 {
            global: "fd00:4::1".parse().unwrap(),
            link_local: None
        })
    );
    let gone = withdrawn(&m, "exabgp");
    assert!(gone.contains(&Nlri {
        prefix: "10.107.4.0/24".parse().unwrap(),
        path_id: Some(0)
    }));
    assert!(
        gone.iter()
            .any(|n| n.prefix == "2001:db8:107::/48".parse().unwrap() && n.path_id.is_none())
    );

    // The two-octet speaker: AS_TRANS in AS_PATH, the real path in AS4_PATH, merged on decode.
    let as2 = open(&m, "exabgp-as2-open-1.hex");
    assert_eq!(as2.asn(), Asn(65005));
    assert!(
        !as2.capabilities
            .iter()
            .any(|c| matches!(c, Capability::FourOctetAs(_)))
    );
    assert_eq!(
        one(&m, "exabgp-as2", "10.108.0.0/24").as_path,
        path(&[65005, 4_200_000_001])
    );
    // GoBGP sends it back to ExaBGP on the four-octet session with the same path.
    let back = announced(&m, "gobgp", "10.108.0.0/24");
    assert!(
        back.iter()
            .any(|(a, _)| a.as_path == path(&[65005, 4_200_000_001]))
    );
    // GoBGP passes the unknown attribute on to the two-octet peer without setting Partial.
    let passed = announced(&m, "gobgp", "10.107.2.0/24");
    assert!(passed.iter().any(|(a, _)| a.unknown
        == [RawAttr {
            flags: 0xc0,
            type_code: 255,
            value: vec![1, 2, 3, 4]
        }]));
    assert!(
        notifications(&m, "gobgp")
            .iter()
            .any(|n| n.code == ErrorCode::Cease(Cease::AdministrativeShutdown))
    );
}

#[test]
fn canonical_messages_reencode_byte_exact() {
    // Where the sender's encoding is the canonical one — fixed-form messages, one capability
    // per optional parameter (ExaBGP, FRR), GoBGP's attribute order (including its two-octet
    // AS_PATH + AS4_PATH and the unknown attribute it passes on) — decode → encode gives the
    // captured bytes back.
    let mut exact = 0;
    let mut total = 0;
    for d in ["bird-gobgp", "frr-gobgp", "bird-frr", "exabgp-gobgp"] {
        for c in session(d) {
            let canonical = matches!(c.message, Message::Keepalive | Message::Notification(_))
                || c.file.starts_with("exabgp-open")
                || c.file.starts_with("frr-open")
                || (d == "exabgp-gobgp" && c.file.starts_with("gobgp-update"));
            assert!(
                !canonical || c.byte_exact,
                "{d}/{}: re-encoding differs",
                c.file
            );
            exact += usize::from(c.byte_exact);
            total += 1;
        }
    }
    assert_eq!(total, 123);
    assert!(exact >= 89, "{exact} of {total} byte-exact");
}
