//! Random sequences of announcements, withdrawals, session resets and graceful restarts (with
//! End-of-RIB) from route-reflector clients, writers filling up and draining, and route
//! refreshes, checked after every drain against a plain model: each peer whose writer has room
//! holds exactly the best route of every prefix, except the prefixes whose best route it
//! announced itself.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use bgpd_rib::{Down, PeerId, Session};
use bgpd_wire::NextHop;
use common::*;
use proptest::prelude::*;

const CLIENTS: usize = 3;
const PREFIXES: usize = 6;

#[derive(Debug, Clone)]
enum Op {
    Announce {
        client: usize,
        prefix: usize,
        local_pref: u32,
        hop: u8,
    },
    Withdraw {
        client: usize,
        prefix: usize,
    },
    Reset {
        client: usize,
    },
    /// The session drops gracefully and comes back at once (RFC 4724): routes kept as stale.
    Restart {
        client: usize,
    },
    /// The client's End-of-RIB: its routes still stale go.
    EndOfRib {
        client: usize,
    },
    /// The writer of a client (or, at index `CLIENTS`, the monitor) is full.
    Block {
        peer: usize,
    },
    /// That writer has room again.
    Unblock {
        peer: usize,
    },
    /// The peer asks for the table again (ROUTE-REFRESH).
    Refresh {
        peer: usize,
    },
    Drain,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..CLIENTS, 0..PREFIXES, 1u32..4, 1u8..4)
            .prop_map(|(client, prefix, local_pref, hop)| Op::Announce { client, prefix, local_pref, hop }),
        2 => (0..CLIENTS, 0..PREFIXES).prop_map(|(client, prefix)| Op::Withdraw { client, prefix }),
        1 => (0..CLIENTS).prop_map(|client| Op::Reset { client }),
        1 => (0..CLIENTS).prop_map(|client| Op::Restart { client }),
        1 => (0..CLIENTS).prop_map(|client| Op::EndOfRib { client }),
        1 => (0..=CLIENTS).prop_map(|peer| Op::Block { peer }),
        1 => (0..=CLIENTS).prop_map(|peer| Op::Unblock { peer }),
        1 => (0..=CLIENTS).prop_map(|peer| Op::Refresh { peer }),
        2 => Just(Op::Drain),
    ]
}

fn prefix(i: usize) -> String {
    format!("10.{i}.0.0/24")
}

fn addr(client: usize) -> String {
    format!("10.0.0.{}", 11 + client)
}

/// The model: (prefix, client) -> (LOCAL_PREF, next hop, stale).
type Routes = BTreeMap<(usize, usize), (u32, NextHop, bool)>;

/// Best route of `prefix`: highest LOCAL_PREF, then lowest router id (the client index here).
fn best(routes: &Routes, prefix: usize) -> Option<(usize, NextHop)> {
    routes
        .iter()
        .filter(|((p, _), _)| *p == prefix)
        .max_by(|((_, ca), (la, ..)), ((_, cb), (lb, ..))| la.cmp(lb).then(cb.cmp(ca)))
        .map(|((_, c), (_, nh, _))| (*c, *nh))
}

/// Drains until no writable peer has a table or backlog left to be sent.
fn settle(lab: &mut Lab) {
    lab.drain();
    let mut drains = 0;
    while lab.rib.catching_up() {
        lab.drain();
        drains += 1;
        assert!(drains < 10, "catching up does not end");
    }
}

fn check(
    lab: &Lab,
    routes: &Routes,
    peers: &[(Option<usize>, PeerId)],
    blocked: &BTreeSet<usize>,
) -> Result<(), TestCaseError> {
    for (i, &(me, peer)) in peers.iter().enumerate() {
        if blocked.contains(&i) {
            continue;
        }
        let mut want = BTreeMap::new();
        for p in 0..PREFIXES {
            if let Some((from, nh)) = best(routes, p) {
                if Some(from) != me {
                    want.insert(prefix(p), nh);
                }
            }
        }
        let got: BTreeMap<String, NextHop> = lab
            .seen(peer)
            .iter()
            .map(|((_, p), a)| (p.to_string(), a.next_hop.unwrap()))
            .collect();
        prop_assert_eq!(&got, &want, "peer {:?}", me);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]
    #[test]
    fn every_peer_holds_the_best_routes_of_others(ops in prop::collection::vec(op(), 1..40)) {
        let mut lab = Lab::reflector("10.0.0.1", "10.0.0.1");
        let clients: Vec<PeerId> =
            (0..CLIENTS).map(|c| lab.peer(&addr(c), 65000, |cfg, _| cfg.rr_client = true)).collect();
        let monitor = lab.peer("10.0.0.99", 65000, |cfg, _| cfg.rr_client = true);
        let mut peers: Vec<(Option<usize>, PeerId)> = clients.iter().enumerate().map(|(c, p)| (Some(c), *p)).collect();
        peers.push((None, monitor));
        let mut routes = Routes::new();
        let mut blocked = BTreeSet::new();
        for op in ops {
            match op {
                Op::Announce { client, prefix: p, local_pref, hop } => {
                    let nh = format!("10.0.1.{hop}");
                    let mut attrs = route(&[], &nh);
                    attrs.local_pref = Some(local_pref);
                    lab.announce(clients[client], &attrs, &[&prefix(p)]);
                    routes.insert((p, client), (local_pref, NextHop::V4(ip(&nh)), false));
                }
                Op::Withdraw { client, prefix: p } => {
                    lab.withdraw(clients[client], &[&prefix(p)]);
                    routes.remove(&(p, client));
                }
                Op::Reset { client } => {
                    blocked.remove(&client);
                    lab.rib.peer_down(clients[client], Down::Hard).unwrap();
                    // The peer forgets what it learned from us, as a real one does.
                    lab.seen.remove(&clients[client]);
                    routes.retain(|(_, c), _| *c != client);
                    lab.up(clients[client], Session::ipv4(ip(&addr(client)), ip("192.0.2.254")));
                }
                Op::Restart { client } => {
                    blocked.remove(&client);
                    lab.rib.peer_down(clients[client], Down::Graceful).unwrap();
                    lab.seen.remove(&clients[client]);
                    for ((_, c), r) in routes.iter_mut() {
                        if *c == client {
                            r.2 = true;
                        }
                    }
                    lab.up(clients[client], Session::ipv4(ip(&addr(client)), ip("192.0.2.254")));
                }
                Op::EndOfRib { client } => {
                    lab.rib.apply_update(clients[client], &bgpd_wire::Update::default()).unwrap();
                    routes.retain(|(_, c), r| *c != client || !r.2);
                }
                Op::Block { peer } => {
                    lab.rib.peer_blocked(peers[peer].1).unwrap();
                    blocked.insert(peer);
                }
                Op::Unblock { peer } => {
                    lab.rib.peer_writable(peers[peer].1).unwrap();
                    blocked.remove(&peer);
                }
                Op::Refresh { peer } => {
                    lab.rib.route_refresh(peers[peer].1, bgpd_wire::AfiSafi::IPV4_UNICAST).unwrap();
                }
                Op::Drain => {
                    settle(&mut lab);
                    check(&lab, &routes, &peers, &blocked)?;
                }
            }
        }
        for peer in std::mem::take(&mut blocked) {
            lab.rib.peer_writable(peers[peer].1).unwrap();
        }
        settle(&mut lab);
        check(&lab, &routes, &peers, &blocked)?;
        let accepted: u64 = clients.iter().map(|c| lab.rib.peer_counts(*c).unwrap().accepted).sum();
        prop_assert_eq!(accepted, routes.len() as u64);
        let prefixes = (0..PREFIXES).filter(|p| best(&routes, *p).is_some()).count() as u64;
        prop_assert_eq!(lab.rib.peer_counts(monitor).unwrap().advertised, prefixes);
    }
}
