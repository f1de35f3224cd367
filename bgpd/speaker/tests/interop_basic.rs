//! Our speaker against BIRD 2, FRR and GoBGP over eBGP: sessions come up for IPv4 and IPv6,
//! routes flow both ways with the right next hop and AS path, withdrawals propagate, a frozen
//! peer is caught by the hold timer, and a wrong peer AS is refused with OPEN error 2/2.

mod support;

use std::time::Duration;

use ipnetwork::IpNetwork;
use support::{HOLD, OUR_AS, Ours, Pair, ROUTE, THEIR_AS, UP, our_config, our_peer};
use testkit::netns::Netns;
use testkit::peers::bird::Bird;
use testkit::peers::frr::Frr;
use testkit::peers::gobgp::Gobgp;
use testkit::peers::{BgpPeer, Neighbor, PeerConfig, Result, Route};

fn net(s: &str) -> IpNetwork {
    s.parse().unwrap()
}

fn their_config(pair: &Pair, our_as: u32) -> PeerConfig {
    PeerConfig::new(THEIR_AS, "10.77.0.2".parse().unwrap())
        .neighbor(Neighbor::new(pair.our_v4, our_as).hold_time(HOLD))
        .neighbor(Neighbor::new(pair.our_v6, our_as).hold_time(HOLD))
        .route(Route::parse("10.22.0.0/24").unwrap())
        .route(Route::parse("fd22::/64").unwrap())
}

fn ours_config(pair: &Pair, their_as: u32, originate: &[&str]) -> String {
    our_config(
        "10.77.0.1",
        originate,
        &[
            our_peer(pair.their_v4, their_as, ""),
            our_peer(pair.their_v6, their_as, "next_hop_v4 = \"10.77.0.1\""),
        ],
    )
}

/// Sessions, routes both ways, withdrawals both ways, hold timer expiry.
fn sessions_routes_withdrawals_hold<P: BgpPeer>(start: impl Fn(&Netns, PeerConfig) -> Result<P>) {
    let pair = Pair::new().unwrap();
    let mut them = start(&pair.them, their_config(&pair, OUR_AS)).unwrap();
    let ours = Ours::start(
        &pair.us,
        &ours_config(&pair, THEIR_AS, &["10.11.0.0/24", "fd11::/64"]),
    )
    .unwrap();
    let name = them.name();

    for addr in [pair.their_v4, pair.their_v6] {
        ours.wait_established(addr);
    }
    for addr in [pair.our_v4, pair.our_v6] {
        them.wait_established(addr, UP).unwrap();
    }

    // Ours at theirs: next hop is our address on the session, AS path is our AS.
    let v4 = them.wait_route(net("10.11.0.0/24"), ROUTE).unwrap();
    assert_eq!(
        (v4.next_hop, v4.as_path.clone()),
        (Some(pair.our_v4), vec![OUR_AS]),
        "{name}: {v4:?}"
    );
    let v6 = them.wait_route(net("fd11::/64"), ROUTE).unwrap();
    assert_eq!(
        (v6.next_hop, v6.as_path.clone()),
        (Some(pair.our_v6), vec![OUR_AS]),
        "{name}: {v6:?}"
    );

    // Theirs at ours.
    let r = ours.wait_route("10.22.0.0/24", pair.their_v4);
    assert_eq!(
        (r["next_hop"].as_str(), r["best"].as_bool()),
        (Some("10.77.0.2"), Some(true)),
        "{name}: {r}"
    );
    assert_eq!(r["as_path"], serde_json::json!([THEIR_AS]));
    let r = ours.wait_route("fd22::/64", pair.their_v6);
    assert_eq!(r["next_hop"].as_str(), Some("fd77::2"), "{name}: {r}");

    // Introspection: prefix and message counters, uptime, the peer's identifier. FRR sends our
    // own route back (AS path 65002 65001): received, but refused by loop detection.
    ours.wait("counters", ROUTE, |o| {
        let p = o.peer(pair.their_v4);
        p["prefixes_received"].as_u64() >= Some(1)
            && p["prefixes_accepted"] == 1
            && p["prefixes_advertised"] == 1
    });
    let p = ours.peer(pair.their_v4);
    assert!(
        p["received"]["update"].as_u64() >= Some(1) && p["sent"]["update"].as_u64() >= Some(1),
        "{name}: {p}"
    );
    assert_eq!(
        (p["received"]["open"].as_u64(), p["peer_id"].as_str()),
        (Some(1), Some("10.77.0.2")),
        "{name}: {p}"
    );
    assert!(p["uptime_secs"].is_u64(), "{name}: {p}");

    // Withdrawals, both ways and both families.
    them.withdraw(net("10.22.0.0/24")).unwrap();
    them.withdraw(net("fd22::/64")).unwrap();
    ours.wait_route_gone("10.22.0.0/24");
    ours.wait_route_gone("fd22::/64");
    ours.reload(&ours_config(&pair, THEIR_AS, &[])).unwrap();
    them.wait_route_gone(net("10.11.0.0/24"), ROUTE).unwrap();
    them.wait_route_gone(net("fd11::/64"), ROUTE).unwrap();

    // A frozen peer sends no keepalives: our hold timer expires and we say so (4/0).
    them.freeze().unwrap();
    ours.wait(
        "hold timer expiry",
        Duration::from_secs(u64::from(HOLD) + 5),
        |o| {
            o.peer(pair.their_v4)["last_notification_sent"]
                .as_str()
                .is_some_and(|n| n.starts_with("NOTIFICATION 4/0"))
        },
    );
    assert_ne!(ours.peer(pair.their_v4)["state"], "Established");
    them.thaw().unwrap();
    ours.wait_established(pair.their_v4);
}

/// Both directions of a wrong AS: the NOTIFICATION we send and the one we receive, decoded.
fn wrong_peer_as<P: BgpPeer>(start: impl Fn(&Netns, PeerConfig) -> Result<P>) {
    let pair = Pair::new().unwrap();
    // We expect AS 65099 but they are 65002: we refuse their OPEN with 2/2.
    let them = start(&pair.them, their_config(&pair, OUR_AS)).unwrap();
    let ours = Ours::start(&pair.us, &ours_config(&pair, 65099, &[])).unwrap();
    ours.wait("Bad Peer AS sent", UP, |o| {
        o.peer(pair.their_v4)["last_notification_sent"]
            .as_str()
            .is_some_and(|n| n.contains("2/2") && n.contains("BadPeerAs"))
    });
    assert!(!them.is_established(pair.our_v4).unwrap());
    drop(ours);
    drop(them);

    // They expect AS 65099 but we are 65001: they refuse ours with 2/2, and we report it.
    let pair = Pair::new().unwrap();
    let _them = start(&pair.them, their_config(&pair, 65099)).unwrap();
    let ours = Ours::start(&pair.us, &ours_config(&pair, THEIR_AS, &[])).unwrap();
    ours.wait("Bad Peer AS received", UP, |o| {
        o.peer(pair.their_v4)["last_notification_received"]
            .as_str()
            .is_some_and(|n| n.contains("2/2"))
    });
}

#[test]
#[serial_test::serial]
fn bird_sessions_routes_withdrawals_hold_timer() {
    sessions_routes_withdrawals_hold(Bird::start);
}

#[test]
#[serial_test::serial]
fn gobgp_sessions_routes_withdrawals_hold_timer() {
    sessions_routes_withdrawals_hold(Gobgp::start);
}

#[test]
#[serial_test::serial]
fn frr_sessions_routes_withdrawals_hold_timer() {
    sessions_routes_withdrawals_hold(Frr::start);
}

#[test]
#[serial_test::serial]
fn bird_wrong_peer_as() {
    wrong_peer_as(Bird::start);
}

#[test]
#[serial_test::serial]
fn gobgp_wrong_peer_as() {
    wrong_peer_as(Gobgp::start);
}

#[test]
#[serial_test::serial]
fn frr_wrong_peer_as() {
    wrong_peer_as(Frr::start);
}

/// A four-octet AS (RFC 6793) on our side: the peer sees it whole in the AS path, and its
/// routes reach us with its AS.
fn four_octet_as<P: BgpPeer>(start: impl Fn(&Netns, PeerConfig) -> Result<P>) {
    const BIG: u32 = 4_200_000_001;
    let pair = Pair::new().unwrap();
    let them = start(&pair.them, their_config(&pair, BIG)).unwrap();
    let config = ours_config(&pair, THEIR_AS, &["10.12.0.0/24"]).replace(
        &format!("local_as = {OUR_AS}"),
        &format!("local_as = {BIG}"),
    );
    let ours = Ours::start(&pair.us, &config).unwrap();
    ours.wait_established(pair.their_v4);
    let r = them.wait_route(net("10.12.0.0/24"), ROUTE).unwrap();
    assert_eq!(r.as_path, vec![BIG], "{}: {r:?}", them.name());
    let r = ours.wait_route("10.22.0.0/24", pair.their_v4);
    assert_eq!(r["as_path"], serde_json::json!([THEIR_AS]), "{r}");
}

#[test]
#[serial_test::serial]
fn bird_four_octet_as() {
    four_octet_as(Bird::start);
}

#[test]
#[serial_test::serial]
fn gobgp_four_octet_as() {
    four_octet_as(Gobgp::start);
}
