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
use testkit::peers::{BgpPeer, Community, LargeCommunity, Neighbor, PeerConfig, Route};

const UP: Duration = Duration::from_secs(30);
const PROPAGATE: Duration = Duration::from_secs(15);

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
}
