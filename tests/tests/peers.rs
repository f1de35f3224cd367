//! The peer launchers work against each other: real BIRD, FRR, GoBGP and ExaBGP in namespaces
//! establish sessions, exchange IPv4 and IPv6 routes with their attributes, and propagate
//! withdrawals. Copy these as the pattern for interop tests.

use std::net::IpAddr;
use std::time::Duration;

use testkit::netns::{Netns, link};
use testkit::peers::bird::Bird;
use testkit::peers::exabgp::Exabgp;
use testkit::peers::frr::Frr;
use testkit::peers::gobgp::Gobgp;
use testkit::peers::{
    AddPath, BgpPeer, Community, GracefulRestart, LargeCommunity, Neighbor, PeerConfig, Route,
};

/// How long a session may take to come up, and a route or a withdrawal to arrive, on a loaded
/// CI machine (connect retries are 2 s; an idle machine needs a few seconds).
const UP: Duration = Duration::from_secs(60);
const PROPAGATE: Duration = Duration::from_secs(30);

/// Two namespaces on one veth: `a` has 10.77.0.1/24 + fd77::1/64, `b` .2 / ::2.
struct Pair {
    a: Netns,
    b: Netns,
}

impl Pair {
    fn new() -> Pair {
        let a = Netns::new("pa").unwrap();
        let b = Netns::new("pb").unwrap();
        link(
            &a,
            "va",
            &["10.77.0.1/24", "fd77::1/64"],
            &b,
            "vb",
            &["10.77.0.2/24", "fd77::2/64"],
        )
        .unwrap();
        Pair { a, b }
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// An eBGP config with one IPv4 and one IPv6 session to the other side of the pair.
fn ebgp(side: u8, asn: u32, other_as: u32) -> PeerConfig {
    let other = 3 - side;
    PeerConfig::new(asn, format!("10.77.0.{side}").parse().unwrap())
        .neighbor(Neighbor::new(ip(&format!("10.77.0.{other}")), other_as).hold_time(9))
        .neighbor(Neighbor::new(ip(&format!("fd77::{other}")), other_as).hold_time(9))
}

/// `a` and `b` are up on both sessions; each announces an IPv4 and an IPv6 route with
/// attributes that the other must see; a withdrawal from each side propagates.
fn exchange(a: &mut dyn BgpPeer, b: &mut dyn BgpPeer) {
    for (x, y, y_addr4, y_addr6) in [
        (&*a, &*b, "10.77.0.2", "fd77::2"),
        (&*b, &*a, "10.77.0.1", "fd77::1"),
    ] {
        x.wait_established(ip(y_addr4), UP).unwrap();
        x.wait_established(ip(y_addr6), UP).unwrap();
        let _ = y;
    }
    a.announce(
        Route::parse("10.201.0.0/24")
            .unwrap()
            .med(7)
            .community(65001, 10)
            .large_community(65001, 1, 2)
            .as_path(&[65100]),
    )
    .unwrap();
    a.announce(
        Route::parse("2001:db8:201::/48")
            .unwrap()
            .community(65001, 60),
    )
    .unwrap();
    b.announce(Route::parse("10.202.0.0/24").unwrap().community(65002, 20))
        .unwrap();
    b.announce(Route::parse("2001:db8:202::/48").unwrap())
        .unwrap();

    let r = b
        .wait_route("10.201.0.0/24".parse().unwrap(), PROPAGATE)
        .unwrap();
    assert_eq!(r.from, Some(ip("10.77.0.1")), "{r:?}");
    assert_eq!(r.as_path, vec![a.config().asn, 65100], "{r:?}");
    assert_eq!(r.med, Some(7), "{r:?}");
    assert!(r.communities.contains(&Community::new(65001, 10)), "{r:?}");
    assert_eq!(r.large_communities, vec![LargeCommunity::new(65001, 1, 2)]);
    assert_eq!(r.next_hop, Some(ip("10.77.0.1")), "{r:?}");
    let r6 = b
        .wait_route("2001:db8:201::/48".parse().unwrap(), PROPAGATE)
        .unwrap();
    assert_eq!(r6.from, Some(ip("fd77::1")), "{r6:?}");
    assert!(
        r6.communities.contains(&Community::new(65001, 60)),
        "{r6:?}"
    );
    let r = a
        .wait_route("10.202.0.0/24".parse().unwrap(), PROPAGATE)
        .unwrap();
    assert_eq!(r.as_path, vec![b.config().asn], "{r:?}");
    assert!(r.communities.contains(&Community::new(65002, 20)), "{r:?}");
    a.wait_route("2001:db8:202::/48".parse().unwrap(), PROPAGATE)
        .unwrap();

    a.withdraw("10.201.0.0/24".parse().unwrap()).unwrap();
    b.withdraw("2001:db8:202::/48".parse().unwrap()).unwrap();
    b.wait_route_gone("10.201.0.0/24".parse().unwrap(), PROPAGATE)
        .unwrap();
    a.wait_route_gone("2001:db8:202::/48".parse().unwrap(), PROPAGATE)
        .unwrap();
    // What was not withdrawn stays.
    assert!(
        !b.paths("2001:db8:201::/48".parse().unwrap())
            .unwrap()
            .is_empty()
    );
}

#[test]
fn bird_and_gobgp_exchange_and_withdraw_routes() {
    let pair = Pair::new();
    let mut bird = Bird::start(&pair.a, ebgp(1, 65001, 65002)).unwrap();
    let mut gobgp = Gobgp::start(&pair.b, ebgp(2, 65002, 65001)).unwrap();
    exchange(&mut bird, &mut gobgp);
}

#[test]
fn frr_and_gobgp_exchange_and_withdraw_routes() {
    let pair = Pair::new();
    let mut frr = Frr::start(&pair.a, ebgp(1, 65001, 65002)).unwrap();
    let mut gobgp = Gobgp::start(&pair.b, ebgp(2, 65002, 65001)).unwrap();
    exchange(&mut frr, &mut gobgp);
}

/// BIRD asks FRR for a ROUTE-REFRESH at every `birdc configure`, right before FRR withdraws
/// here: the race in which FRR 8.4 can lose a withdrawal, which the launcher catches.
#[test]
fn bird_and_frr_exchange_and_withdraw_routes() {
    let pair = Pair::new();
    let mut bird = Bird::start(&pair.a, ebgp(1, 65001, 65002)).unwrap();
    let mut frr = Frr::start(&pair.b, ebgp(2, 65002, 65001)).unwrap();
    exchange(&mut bird, &mut frr);
}

#[test]
fn exabgp_and_bird_exchange_and_withdraw_routes() {
    let pair = Pair::new();
    let mut exabgp = Exabgp::start(&pair.a, ebgp(1, 65001, 65002)).unwrap();
    let mut bird = Bird::start(&pair.b, ebgp(2, 65002, 65001)).unwrap();
    exchange(&mut exabgp, &mut bird);
    // A raw API command: an AS_SET, which no other launcher can originate.
    exabgp
        .api("neighbor 10.77.0.2 announce route 10.208.0.0/24 next-hop self as-path [ 65001 ( 65101 65102 ) ]")
        .unwrap();
    let r = bird
        .wait_route("10.208.0.0/24".parse().unwrap(), PROPAGATE)
        .unwrap();
    assert_eq!(r.as_path, vec![65001, 65101, 65102], "{r:?}");
}

/// A hub namespace joined to `n` leaves by one veth each: link `i` (from 1) has 10.78.i.1/24 +
/// fd78:i::1/64 on the hub and .2 / ::2 on leaf `i`.
struct Star {
    hub: Netns,
    leaves: Vec<Netns>,
}

impl Star {
    fn new(n: usize) -> Star {
        let hub = Netns::new("hub").unwrap();
        let leaves: Vec<Netns> = (1..=n)
            .map(|i| {
                let leaf = Netns::new(&format!("l{i}")).unwrap();
                link(
                    &hub,
                    &format!("h{i}"),
                    &[&format!("10.78.{i}.1/24"), &format!("fd78:{i}::1/64")],
                    &leaf,
                    "uplink",
                    &[&format!("10.78.{i}.2/24"), &format!("fd78:{i}::2/64")],
                )
                .unwrap();
                leaf
            })
            .collect();
        Star { hub, leaves }
    }

    fn hub_addr(i: usize) -> IpAddr {
        ip(&format!("10.78.{i}.1"))
    }

    fn leaf_addr(i: usize) -> IpAddr {
        ip(&format!("10.78.{i}.2"))
    }

    /// A leaf's config: AS `asn`, one IPv4 session to the hub.
    fn leaf_config(i: usize, asn: u32, hub_as: u32) -> PeerConfig {
        PeerConfig::new(asn, format!("10.78.{i}.2").parse().unwrap())
            .neighbor(Neighbor::new(Star::hub_addr(i), hub_as).hold_time(9))
    }
}

#[test]
fn wrong_peer_as_is_reported_by_bird_and_frr() {
    let pair = Pair::new();
    // Both expect AS 65099 from a neighbour that is AS 65002 / 65001.
    let bird = Bird::start(
        &pair.a,
        PeerConfig::new(65001, "10.77.0.1".parse().unwrap())
            .neighbor(Neighbor::new(ip("10.77.0.2"), 65099)),
    )
    .unwrap();
    let frr = Frr::start(
        &pair.b,
        PeerConfig::new(65002, "10.77.0.2".parse().unwrap())
            .neighbor(Neighbor::new(ip("10.77.0.1"), 65099)),
    )
    .unwrap();
    for peer in [&bird as &dyn BgpPeer, &frr] {
        let neighbor = peer.config().neighbors[0].address;
        peer.wait_for("a Bad Peer AS error", UP, &|| {
            Ok(peer
                .session(neighbor)?
                .and_then(|s| s.last_error)
                .is_some_and(|e| e.to_lowercase().contains("peer as")))
        })
        .unwrap();
        assert!(!peer.is_established(neighbor).unwrap());
    }
}

#[test]
fn frozen_gobgp_expires_birds_hold_timer_and_comes_back_when_thawed() {
    let pair = Pair::new();
    let bird = Bird::start(
        &pair.a,
        PeerConfig::new(65001, "10.77.0.1".parse().unwrap())
            .neighbor(Neighbor::new(ip("10.77.0.2"), 65002).hold_time(3)),
    )
    .unwrap();
    let gobgp = Gobgp::start(
        &pair.b,
        PeerConfig::new(65002, "10.77.0.2".parse().unwrap())
            .neighbor(Neighbor::new(ip("10.77.0.1"), 65001).hold_time(3)),
    )
    .unwrap();
    bird.wait_established(ip("10.77.0.2"), UP).unwrap();
    gobgp.freeze().unwrap();
    bird.wait_for("hold timer expiry", Duration::from_secs(20), &|| {
        Ok(bird
            .session(ip("10.77.0.2"))?
            .and_then(|s| s.last_error)
            .is_some_and(|e| e.contains("Hold timer expired")))
    })
    .unwrap();
    gobgp.thaw().unwrap();
    bird.wait_established(ip("10.77.0.2"), UP).unwrap();
}

#[test]
fn bird_keeps_gobgp_routes_stale_across_a_graceful_restart() {
    let pair = Pair::new();
    let gr = GracefulRestart::Enabled { restart_time: 60 };
    // BIRD only helps (`graceful restart aware`).
    let bird = Bird::start(
        &pair.a,
        PeerConfig::new(65001, "10.77.0.1".parse().unwrap()).neighbor(
            Neighbor::new(ip("10.77.0.2"), 65002).graceful_restart(GracefulRestart::Helper),
        ),
    )
    .unwrap();
    let mut gobgp = Gobgp::start(
        &pair.b,
        PeerConfig::new(65002, "10.77.0.2".parse().unwrap())
            .neighbor(Neighbor::new(ip("10.77.0.1"), 65001).graceful_restart(gr))
            .route(Route::parse("10.203.0.0/24").unwrap()),
    )
    .unwrap();
    let prefix = "10.203.0.0/24".parse().unwrap();
    assert!(!bird.wait_route(prefix, UP).unwrap().stale);

    gobgp.kill();
    bird.wait_for("the route marked stale", PROPAGATE, &|| {
        Ok(bird.paths(prefix)?.iter().any(|r| r.stale))
    })
    .unwrap();
    gobgp.restart().unwrap();
    bird.wait_established(ip("10.77.0.2"), UP).unwrap();
    // After End-of-RIB the refreshed route is no longer stale.
    bird.wait_for("the route refreshed", PROPAGATE, &|| {
        let paths = bird.paths(prefix)?;
        Ok(!paths.is_empty() && paths.iter().all(|r| !r.stale))
    })
    .unwrap();
}

#[test]
fn bird_reflects_between_gobgp_clients_with_originator_and_cluster_list() {
    let star = Star::new(2);
    let cluster: std::net::Ipv4Addr = "10.255.0.1".parse().unwrap();
    let mut rr = PeerConfig::new(65000, "10.78.0.1".parse().unwrap()).cluster_id(cluster);
    for i in 1..=2 {
        rr = rr.neighbor(Neighbor::new(Star::leaf_addr(i), 65000).rr_client());
    }
    let bird = Bird::start(&star.hub, rr).unwrap();
    let c1 = Gobgp::start(
        &star.leaves[0],
        Star::leaf_config(1, 65000, 65000)
            .route(Route::parse("10.204.0.0/24").unwrap().local_pref(150)),
    )
    .unwrap();
    let c2 = Gobgp::start(&star.leaves[1], Star::leaf_config(2, 65000, 65000)).unwrap();
    for i in 1..=2 {
        bird.wait_established(Star::leaf_addr(i), UP).unwrap();
    }
    let got = c2
        .wait_route("10.204.0.0/24".parse().unwrap(), PROPAGATE)
        .unwrap();
    assert_eq!(
        got.originator_id,
        Some("10.78.1.2".parse().unwrap()),
        "{got:?}"
    );
    assert_eq!(got.cluster_list, vec![cluster], "{got:?}");
    assert_eq!(got.local_pref, Some(150), "{got:?}");
    assert_eq!(got.next_hop, Some(Star::leaf_addr(1)), "{got:?}");
    let _ = c1;
}

/// `a` and `b` sign their IPv4 session with the same TCP-MD5 password and their IPv6 one with
/// different passwords: only the IPv4 session comes up.
fn tcp_md5_needs_matching_passwords(a: Start, b: Start) {
    let pair = Pair::new();
    let a = a(
        &pair.a,
        PeerConfig::new(65001, "10.77.0.1".parse().unwrap())
            .neighbor(Neighbor::new(ip("10.77.0.2"), 65002).password("s3cret"))
            .neighbor(Neighbor::new(ip("fd77::2"), 65002).password("s3cret")),
    );
    let b = b(
        &pair.b,
        PeerConfig::new(65002, "10.77.0.2".parse().unwrap())
            .neighbor(Neighbor::new(ip("10.77.0.1"), 65001).password("s3cret"))
            .neighbor(Neighbor::new(ip("fd77::1"), 65001).password("wrong")),
    );
    a.wait_established(ip("10.77.0.2"), UP).unwrap();
    // Give the mismatched session the time the matched one needed, and then some.
    std::thread::sleep(Duration::from_secs(5));
    assert!(!a.is_established(ip("fd77::2")).unwrap());
    assert!(!b.is_established(ip("fd77::1")).unwrap());
}

#[test]
fn tcp_md5_needs_matching_passwords_on_every_launcher() {
    tcp_md5_needs_matching_passwords(bird, frr);
    tcp_md5_needs_matching_passwords(gobgp, exabgp);
}

/// `a` — router namespace — `b`: the routers forward, and the peers talk eBGP between
/// addresses two hops apart, which needs multihop on both sides.
#[test]
fn ebgp_multihop_through_a_router_namespace() {
    let a = Netns::new("ma").unwrap();
    let r = Netns::new("mr").unwrap();
    let b = Netns::new("mb").unwrap();
    link(&a, "ma0", &["10.80.1.1/24"], &r, "mr0", &["10.80.1.2/24"]).unwrap();
    link(&r, "mr1", &["10.80.2.2/24"], &b, "mb0", &["10.80.2.1/24"]).unwrap();
    r.sysctl("net.ipv4.ip_forward", "1").unwrap();
    a.ip(&["route", "add", "10.80.2.0/24", "via", "10.80.1.2"])
        .unwrap();
    b.ip(&["route", "add", "10.80.1.0/24", "via", "10.80.2.2"])
        .unwrap();
    assert!(a.ping("10.80.2.1"));
    for (x, y) in [(bird as Start, gobgp as Start), (frr, bird)] {
        let x = x(
            &a,
            PeerConfig::new(65001, "10.80.1.1".parse().unwrap())
                .neighbor(Neighbor::new(ip("10.80.2.1"), 65002).multihop(2))
                .route(Route::parse("10.210.0.0/24").unwrap()),
        );
        let y = y(
            &b,
            PeerConfig::new(65002, "10.80.2.1".parse().unwrap())
                .neighbor(Neighbor::new(ip("10.80.1.1"), 65001).multihop(2)),
        );
        x.wait_established(ip("10.80.2.1"), UP).unwrap();
        let got = y
            .wait_route("10.210.0.0/24".parse().unwrap(), PROPAGATE)
            .unwrap();
        assert_eq!(got.next_hop, Some(ip("10.80.1.1")), "{got:?}");
    }
}

/// Starts one kind of peer; lets a scenario run with the daemons swapped.
type Start = fn(&Netns, PeerConfig) -> Box<dyn BgpPeer>;

fn bird(ns: &Netns, config: PeerConfig) -> Box<dyn BgpPeer> {
    Box::new(Bird::start(ns, config).unwrap())
}

fn gobgp(ns: &Netns, config: PeerConfig) -> Box<dyn BgpPeer> {
    Box::new(Gobgp::start(ns, config).unwrap())
}

fn frr(ns: &Netns, config: PeerConfig) -> Box<dyn BgpPeer> {
    Box::new(Frr::start(ns, config).unwrap())
}

fn exabgp(ns: &Netns, config: PeerConfig) -> Box<dyn BgpPeer> {
    Box::new(Exabgp::start(ns, config).unwrap())
}

/// Two upstreams (`leaf`, AS 65011 and 65012) announce the same prefix to `hub` (AS 65001),
/// which sends both paths over ADD-PATH to a third `leaf` (AS 65013) that receives them.
fn hub_sends_two_paths(hub: Start, leaf: Start) {
    let star = Star::new(3);
    let mut hub_config = PeerConfig::new(65001, "10.78.0.1".parse().unwrap());
    for (i, asn) in [(1, 65011), (2, 65012), (3, 65013)] {
        let n = Neighbor::new(Star::leaf_addr(i), asn);
        hub_config = hub_config.neighbor(if i == 3 { n.add_path(true, false) } else { n });
    }
    let hub = hub(&star.hub, hub_config);
    let prefix = Route::parse("10.205.0.0/24").unwrap();
    let _upstreams: Vec<Box<dyn BgpPeer>> = [(1, 65011), (2, 65012)]
        .iter()
        .map(|&(i, asn)| {
            leaf(
                &star.leaves[i - 1],
                Star::leaf_config(i, asn, 65001).route(prefix.clone()),
            )
        })
        .collect();
    let mut down = Star::leaf_config(3, 65013, 65001);
    down.neighbors[0].add_path = AddPath {
        send: false,
        receive: true,
    };
    let receiver = leaf(&star.leaves[2], down);
    for i in 1..=3 {
        hub.wait_established(Star::leaf_addr(i), UP).unwrap();
    }
    receiver
        .wait_for("two paths for 10.205.0.0/24", PROPAGATE, &|| {
            Ok(receiver.paths(prefix.prefix)?.len() == 2)
        })
        .unwrap();
    let mut origins: Vec<Vec<u32>> = receiver
        .paths(prefix.prefix)
        .unwrap()
        .into_iter()
        .map(|r| r.as_path)
        .collect();
    origins.sort();
    assert_eq!(origins, vec![vec![65001, 65011], vec![65001, 65012]]);
}

#[test]
fn bird_sends_two_paths_to_an_add_path_gobgp() {
    hub_sends_two_paths(bird, gobgp);
}

#[test]
fn gobgp_sends_two_paths_to_an_add_path_bird() {
    hub_sends_two_paths(gobgp, bird);
}

#[test]
fn gobgp_keeps_bird_routes_stale_across_birds_graceful_restart() {
    let pair = Pair::new();
    let gr = GracefulRestart::Enabled { restart_time: 60 };
    let mut bird = Bird::start(
        &pair.a,
        PeerConfig::new(65001, "10.77.0.1".parse().unwrap())
            .neighbor(Neighbor::new(ip("10.77.0.2"), 65002).graceful_restart(gr))
            .route(Route::parse("10.206.0.0/24").unwrap()),
    )
    .unwrap();
    // GoBGP only helps (`helper-only`).
    let gobgp = Gobgp::start(
        &pair.b,
        PeerConfig::new(65002, "10.77.0.2".parse().unwrap()).neighbor(
            Neighbor::new(ip("10.77.0.1"), 65001).graceful_restart(GracefulRestart::Helper),
        ),
    )
    .unwrap();
    let prefix = "10.206.0.0/24".parse().unwrap();
    assert!(!gobgp.wait_route(prefix, UP).unwrap().stale);

    bird.kill();
    gobgp
        .wait_for("the route marked stale", PROPAGATE, &|| {
            Ok(gobgp.paths(prefix)?.iter().any(|r| r.stale))
        })
        .unwrap();
    bird.restart().unwrap();
    gobgp.wait_established(ip("10.77.0.1"), UP).unwrap();
    gobgp
        .wait_for("the route refreshed", PROPAGATE, &|| {
            let paths = gobgp.paths(prefix)?;
            Ok(!paths.is_empty() && paths.iter().all(|r| !r.stale))
        })
        .unwrap();
}

#[test]
fn gobgp_reflects_between_bird_and_frr_clients() {
    let star = Star::new(2);
    let cluster: std::net::Ipv4Addr = "10.255.0.2".parse().unwrap();
    let mut rr = PeerConfig::new(65000, "10.78.0.1".parse().unwrap()).cluster_id(cluster);
    for i in 1..=2 {
        rr = rr.neighbor(Neighbor::new(Star::leaf_addr(i), 65000).rr_client());
    }
    let gobgp = Gobgp::start(&star.hub, rr).unwrap();
    let bird = Bird::start(
        &star.leaves[0],
        Star::leaf_config(1, 65000, 65000).route(
            Route::parse("10.207.0.0/24")
                .unwrap()
                .local_pref(170)
                .community(65000, 7),
        ),
    )
    .unwrap();
    let frr = Frr::start(
        &star.leaves[1],
        Star::leaf_config(2, 65000, 65000).route(Route::parse("10.212.0.0/24").unwrap()),
    )
    .unwrap();
    for i in 1..=2 {
        gobgp.wait_established(Star::leaf_addr(i), UP).unwrap();
    }
    // And the other way: what BIRD shows for a reflected route.
    let back = bird
        .wait_route("10.212.0.0/24".parse().unwrap(), PROPAGATE)
        .unwrap();
    assert_eq!(
        back.originator_id,
        Some("10.78.2.2".parse().unwrap()),
        "{back:?}"
    );
    assert_eq!(back.cluster_list, vec![cluster], "{back:?}");
    let got = frr
        .wait_route("10.207.0.0/24".parse().unwrap(), PROPAGATE)
        .unwrap();
    assert_eq!(got.from, Some(Star::hub_addr(2)), "{got:?}");
    assert_eq!(
        got.originator_id,
        Some("10.78.1.2".parse().unwrap()),
        "{got:?}"
    );
    assert_eq!(got.cluster_list, vec![cluster], "{got:?}");
    assert_eq!(got.local_pref, Some(170), "{got:?}");
    assert_eq!(got.communities, vec![Community::new(65000, 7)], "{got:?}");
    assert_eq!(got.as_path, Vec::<u32>::new(), "{got:?}");
}

#[test]
fn two_frr_instances_side_by_side_exchange_routes() {
    let pair = Pair::new();
    let mut a = Frr::start(&pair.a, ebgp(1, 65001, 65002)).unwrap();
    let mut b = Frr::start(&pair.b, ebgp(2, 65002, 65001)).unwrap();
    exchange(&mut a, &mut b);
}

#[test]
fn passive_peers_listen_on_other_ports() {
    let star = Star::new(2);
    // BIRD listens on 1790 for leaf 1 and never connects to it; it connects to leaf 2's FRR,
    // which listens on 1791 and never connects.
    let bird = Bird::start(
        &star.hub,
        PeerConfig::new(65001, "10.78.0.1".parse().unwrap())
            .listen_port(1790)
            .neighbor(Neighbor::new(Star::leaf_addr(1), 65011).passive())
            .neighbor(Neighbor::new(Star::leaf_addr(2), 65012).remote_port(1791)),
    )
    .unwrap();
    let gobgp = Gobgp::start(
        &star.leaves[0],
        PeerConfig::new(65011, "10.78.1.2".parse().unwrap())
            .listen_port(1792)
            .listen_address(Star::leaf_addr(1))
            .neighbor(Neighbor::new(Star::hub_addr(1), 65001).remote_port(1790)),
    )
    .unwrap();
    let frr = Frr::start(
        &star.leaves[1],
        PeerConfig::new(65012, "10.78.2.2".parse().unwrap())
            .listen_port(1791)
            .listen_address(Star::leaf_addr(2))
            .neighbor(Neighbor::new(Star::hub_addr(2), 65001).passive()),
    )
    .unwrap();
    bird.wait_established(Star::leaf_addr(1), UP).unwrap();
    bird.wait_established(Star::leaf_addr(2), UP).unwrap();
    gobgp.wait_established(Star::hub_addr(1), UP).unwrap();
    frr.wait_established(Star::hub_addr(2), UP).unwrap();
}

/// `subject` announces a route at runtime, is killed, and after `restart` announces it again
/// to `observer`: runtime changes survive a restart.
fn restart_keeps_runtime_routes(subject: Start, observer: Start) {
    let pair = Pair::new();
    let mut s = subject(&pair.a, ebgp(1, 65001, 65002));
    let o = observer(&pair.b, ebgp(2, 65002, 65001));
    s.wait_established(ip("10.77.0.2"), UP).unwrap();
    let prefix = "10.209.0.0/24".parse().unwrap();
    s.announce(Route::new(prefix).med(9)).unwrap();
    assert_eq!(o.wait_route(prefix, PROPAGATE).unwrap().med, Some(9));
    s.kill();
    o.wait_route_gone(prefix, UP).unwrap();
    s.restart().unwrap();
    s.wait_established(ip("10.77.0.2"), UP).unwrap();
    assert_eq!(o.wait_route(prefix, UP).unwrap().med, Some(9));
}

#[test]
fn every_launcher_restarts_with_its_runtime_routes() {
    restart_keeps_runtime_routes(bird, gobgp);
    restart_keeps_runtime_routes(frr, gobgp);
    restart_keeps_runtime_routes(exabgp, gobgp);
    restart_keeps_runtime_routes(gobgp, bird);
}

/// Announcing a prefix again with other attributes replaces the route at the neighbour.
fn reannounce_replaces_attributes(subject: Start, observer: Start) {
    let pair = Pair::new();
    let mut s = subject(&pair.a, ebgp(1, 65001, 65002));
    let o = observer(&pair.b, ebgp(2, 65002, 65001));
    s.wait_established(ip("10.77.0.2"), UP).unwrap();
    let prefix = "10.211.0.0/24".parse().unwrap();
    s.announce(Route::new(prefix).med(1).community(65001, 1))
        .unwrap();
    assert_eq!(o.wait_route(prefix, PROPAGATE).unwrap().med, Some(1));
    s.announce(Route::new(prefix).med(2)).unwrap();
    o.wait_for("MED 2 without the community", PROPAGATE, &|| {
        Ok(o.paths(prefix)?
            .iter()
            .any(|r| r.med == Some(2) && r.communities.is_empty()))
    })
    .unwrap();
}

#[test]
fn every_launcher_replaces_a_reannounced_route() {
    reannounce_replaces_attributes(bird, gobgp);
    reannounce_replaces_attributes(exabgp, gobgp);
    reannounce_replaces_attributes(gobgp, bird);
}

/// FRR re-announces through a new route-map (see the launcher on why).
#[test]
fn frr_replaces_a_reannounced_route() {
    reannounce_replaces_attributes(frr, gobgp);
}
