//! UPDATEs captured from real BIRD, FRR, GoBGP and ExaBGP sessions (the `bgpd-wire` fixtures)
//! replayed into a route reflector: every route a sender left announced reaches a monitor
//! client exactly once, with the reflection attributes, and nothing else does.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use bgpd_rib::{PeerConfig, PeerId, Rib, RibSettings, Session};
use bgpd_wire::{
    AfiSafi, Asn, Header, Message, NextHop, Open, Prefix, SessionContext, Update, negotiate,
};
use common::ip;

const LOCAL_AS: Asn = Asn(64999);

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../wire/tests/fixtures")
}

fn unhex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(|b| b.is_ascii_hexdigit()).collect();
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}

struct Row {
    file: String,
    stream: String,
    from: String,
    to: String,
}

fn rows(dir: &Path) -> Vec<Row> {
    let index = std::fs::read_to_string(dir.join("index.tsv")).unwrap();
    index
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            Row {
                file: f[1].into(),
                stream: f[2].into(),
                from: f[3].into(),
                to: f[4].into(),
            }
        })
        .collect()
}

fn message(dir: &Path, file: &str, ctx: &SessionContext) -> Message {
    let bytes = unhex(&std::fs::read_to_string(dir.join(file)).unwrap());
    Message::decode(&bytes, ctx).unwrap()
}

/// Whether the RIB can pass a route of `family` with next hop `nh` on (RFC 8950 next hops are
/// not supported).
fn reflectable(family: AfiSafi, nh: Option<NextHop>) -> bool {
    matches!(
        (family, nh),
        (AfiSafi::IPV4_UNICAST, Some(NextHop::V4(_)))
            | (AfiSafi::IPV6_UNICAST, Some(NextHop::V6 { .. }))
    )
}

/// The routes `u` leaves announced, applied to `live` as a receiver would.
fn model(live: &mut BTreeSet<(String, Option<u32>, Prefix)>, who: &str, u: &Update) {
    let withdrawn = u
        .withdrawn
        .iter()
        .chain(u.mp_unreach.iter().flat_map(|m| &m.withdrawn));
    for n in withdrawn {
        live.remove(&(who.to_owned(), n.path_id, n.prefix));
    }
    let plain = u
        .nlri
        .iter()
        .map(|n| (AfiSafi::IPV4_UNICAST, u.attrs.next_hop, n));
    let mp = u.mp_reach.iter().flat_map(|m| {
        m.nlri
            .iter()
            .map(move |n| (m.afi_safi, Some(m.next_hop), n))
    });
    for (family, nh, n) in plain.chain(mp) {
        let key = (who.to_owned(), n.path_id, n.prefix);
        if u.treat_as_withdraw() || !reflectable(family, nh) {
            live.remove(&key);
        } else {
            live.insert(key);
        }
    }
}

fn replay(session: &str) {
    let dir = fixtures().join(session);
    let rows = rows(&dir);
    let mut opens: HashMap<(String, String), Open> = HashMap::new();
    for r in rows.iter().filter(|r| r.file.contains("-open-")) {
        let Message::Open(o) = message(&dir, &r.file, &SessionContext::default()) else {
            panic!("{} is no OPEN", r.file)
        };
        opens.insert((r.stream.clone(), r.from.clone()), o);
    }

    let mut settings = RibSettings::new(LOCAL_AS, ip("10.255.255.1"));
    settings.cluster_id = Some(ip("10.255.255.1"));
    let mut rib = Rib::new(settings);
    let client = |addr: IpAddr| PeerConfig {
        rr_client: true,
        ..PeerConfig::new(addr, LOCAL_AS)
    };
    let monitor = rib
        .add_peer(client("10.255.255.2".parse().unwrap()))
        .unwrap();
    let mut monitor_session = Session::ipv4(ip("10.255.255.2"), ip("10.255.255.1"));
    monitor_session.families.push(AfiSafi::IPV6_UNICAST);
    monitor_session.local_v6 = Some("fd00:ffff::1".parse().unwrap());
    rib.peer_up(monitor, monitor_session).unwrap();

    let mut peers: HashMap<(String, String), PeerId> = HashMap::new();
    let mut live = BTreeSet::new();
    let mut applied = 0;
    for r in rows.iter().filter(|r| r.file.contains("-update-")) {
        let key = (r.stream.clone(), r.from.clone());
        let (Some(theirs), Some(ours)) = (
            opens.get(&key),
            opens.get(&(r.stream.clone(), r.to.clone())),
        ) else {
            continue;
        };
        let negotiated = negotiate(ours, theirs);
        let peer = *peers.entry(key.clone()).or_insert_with(|| {
            let addr = r.from.parse::<SocketAddr>().unwrap().ip();
            let id = rib.add_peer(client(addr)).unwrap();
            let session =
                Session::negotiated(&negotiated, theirs.bgp_id, Some(ip("10.255.255.1")), None);
            rib.peer_up(id, session).unwrap();
            id
        });
        let Message::Update(u) = message(&dir, &r.file, &negotiated.receive) else {
            panic!("{} is no UPDATE", r.file)
        };
        rib.apply_update(peer, &u).unwrap();
        model(&mut live, &format!("{}/{}", r.stream, r.from), &u);
        applied += 1;
    }
    assert!(applied > 0, "{session}: no UPDATE replayed");

    let mut seen: BTreeSet<Prefix> = BTreeSet::new();
    let ctx = SessionContext {
        four_octet_as: true,
        ..SessionContext::default()
    };
    for out in rib
        .drain()
        .outbound
        .iter()
        .filter(|o| o.peers.contains(&monitor))
    {
        let mut buf: &[u8] = &out.messages;
        while !buf.is_empty() {
            let h = Header::peek(buf, ctx.max_message_size).unwrap().unwrap();
            let Message::Update(u) = Message::decode(&buf[..h.len], &ctx).unwrap() else {
                panic!("not an UPDATE")
            };
            buf = &buf[h.len..];
            let announced = u.nlri.iter().chain(u.mp_reach.iter().flat_map(|m| &m.nlri));
            for n in announced {
                assert!(seen.insert(n.prefix), "{session}: {} sent twice", n.prefix);
                assert_eq!(
                    u.attrs.cluster_list.first(),
                    Some(&ip("10.255.255.1")),
                    "{session}: {}",
                    n.prefix
                );
                assert!(u.attrs.originator_id.is_some(), "{session}: {}", n.prefix);
            }
        }
    }
    let expected: BTreeSet<Prefix> = live.iter().map(|(_, _, p)| *p).collect();
    assert!(!expected.is_empty(), "{session}: nothing to reflect");
    assert_eq!(seen, expected, "{session}");
}

#[test]
fn bird_and_gobgp() {
    replay("bird-gobgp");
}

#[test]
fn frr_and_gobgp() {
    replay("frr-gobgp");
}

#[test]
fn bird_and_frr() {
    replay("bird-frr");
}

#[test]
fn exabgp_and_gobgp_including_a_two_octet_speaker() {
    replay("exabgp-gobgp");
}
