//! ADD-PATH (RFC 7911): several paths for one prefix, sent by us to GoBGP and received by us
//! from BIRD.

mod support;

use std::collections::HashSet;

use ipnetwork::IpNetwork;
use support::{OUR_AS, Ours, ROUTE, Star, UP, our_config, our_peer};
use testkit::peers::bird::Bird;
use testkit::peers::gobgp::Gobgp;
use testkit::peers::{BgpPeer, Neighbor, PeerConfig, Route};

const PREFIX: &str = "10.71.0.0/24";

fn net() -> IpNetwork {
    PREFIX.parse().unwrap()
}

/// Two eBGP spokes announce one prefix to us; we send both paths to a third spoke (GoBGP).
#[test]
#[serial_test::serial]
fn we_send_several_paths_to_gobgp() {
    let star = Star::new(3).unwrap();
    let ours = Ours::start(
        &star.hub,
        &our_config(
            "10.78.1.1",
            &[],
            &[
                our_peer(Star::spoke_addr(1), 65002, ""),
                our_peer(Star::spoke_addr(2), 65003, ""),
                our_peer(Star::spoke_addr(3), 65004, "add_path = \"send\""),
            ],
        ),
    )
    .unwrap();
    let origin = |i: usize, asn: u32| {
        PeerConfig::new(asn, Star::spoke_addr(i).to_string().parse().unwrap())
            .neighbor(Neighbor::new(Star::hub_addr(i), OUR_AS).hold_time(support::HOLD))
            .route(Route::parse(PREFIX).unwrap())
    };
    let _a = Gobgp::start(&star.spokes[0], origin(1, 65002)).unwrap();
    let _b = Bird::start(&star.spokes[1], origin(2, 65003)).unwrap();
    let receiver = Gobgp::start(
        &star.spokes[2],
        PeerConfig::new(65004, "10.78.3.2".parse().unwrap()).neighbor(
            Neighbor::new(Star::hub_addr(3), OUR_AS)
                .hold_time(support::HOLD)
                .add_path(false, true),
        ),
    )
    .unwrap();
    for i in 1..=3 {
        ours.wait_established(Star::spoke_addr(i));
    }
    receiver.wait_established(Star::hub_addr(3), UP).unwrap();
    receiver
        .wait_for("two paths", ROUTE, &|| {
            Ok(receiver
                .paths(net())?
                .iter()
                .filter(|r| r.from.is_some())
                .count()
                == 2)
        })
        .unwrap();
    let paths = receiver.paths(net()).unwrap();
    let second_hops: HashSet<u32> = paths
        .iter()
        .filter_map(|r| r.as_path.get(1).copied())
        .collect();
    assert_eq!(second_hops, HashSet::from([65002, 65003]), "{paths:?}");
}

/// BIRD learns one prefix from two spokes and sends us both paths; we keep both, each with
/// its own path id.
#[test]
#[serial_test::serial]
fn we_receive_several_paths_from_bird() {
    let star = Star::new(3).unwrap();
    let _bird = Bird::start(
        &star.hub,
        PeerConfig::new(65010, "10.78.1.1".parse().unwrap())
            .neighbor(Neighbor::new(Star::spoke_addr(1), 65011).hold_time(support::HOLD))
            .neighbor(Neighbor::new(Star::spoke_addr(2), 65012).hold_time(support::HOLD))
            .neighbor(
                Neighbor::new(Star::spoke_addr(3), OUR_AS)
                    .hold_time(support::HOLD)
                    .add_path(true, false),
            ),
    )
    .unwrap();
    let origin = |i: usize, asn: u32| {
        PeerConfig::new(asn, Star::spoke_addr(i).to_string().parse().unwrap())
            .neighbor(Neighbor::new(Star::hub_addr(i), 65010).hold_time(support::HOLD))
            .route(Route::parse(PREFIX).unwrap())
    };
    let _a = Gobgp::start(&star.spokes[0], origin(1, 65011)).unwrap();
    let _b = Gobgp::start(&star.spokes[1], origin(2, 65012)).unwrap();
    let ours = Ours::start(
        &star.spokes[2],
        &our_config(
            "10.78.3.2",
            &[],
            &[our_peer(Star::hub_addr(3), 65010, "add_path = \"receive\"")],
        ),
    )
    .unwrap();
    ours.wait_established(Star::hub_addr(3));
    ours.wait("two paths from BIRD", ROUTE, |o| {
        o.routes_for(PREFIX).len() == 2
    });
    let routes = ours.routes_for(PREFIX);
    let ids: HashSet<u64> = routes
        .iter()
        .filter_map(|r| r["path_id"].as_u64())
        .collect();
    assert_eq!(ids.len(), 2, "{routes:#?}");
    let second: HashSet<u64> = routes
        .iter()
        .filter_map(|r| r["as_path"][1].as_u64())
        .collect();
    assert_eq!(second, HashSet::from([65011, 65012]), "{routes:#?}");
}
