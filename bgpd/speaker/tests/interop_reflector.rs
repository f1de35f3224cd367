//! Route reflection (RFC 4456) both ways: our speaker reflecting between a BIRD and a GoBGP
//! client, and BIRD reflecting between two of our speakers. The reflected routes must carry
//! ORIGINATOR_ID (the originating client's router id) and CLUSTER_LIST (the reflector's
//! cluster id) as the receiving client's RIB shows them.

mod support;

use std::net::Ipv4Addr;

use ipnetwork::IpNetwork;
use support::{OUR_AS, Ours, ROUTE, Star, UP, our_config, our_peer};
use testkit::peers::bird::Bird;
use testkit::peers::gobgp::Gobgp;
use testkit::peers::{BgpPeer, Neighbor, PeerConfig, Route};

fn net(s: &str) -> IpNetwork {
    s.parse().unwrap()
}

#[test]
#[serial_test::serial]
fn ours_reflects_between_bird_and_gobgp_clients() {
    let star = Star::new(2).unwrap();
    let cluster: Ipv4Addr = "10.78.255.255".parse().unwrap();
    let bird_id: Ipv4Addr = "10.78.1.2".parse().unwrap();
    let gobgp_id: Ipv4Addr = "10.78.2.2".parse().unwrap();
    let mut config = our_config(
        "10.78.1.1",
        &[],
        &[
            our_peer(Star::spoke_addr(1), OUR_AS, "rr_client = true"),
            our_peer(Star::spoke_addr(2), OUR_AS, "rr_client = true"),
        ],
    );
    config = config.replacen(
        "originate",
        &format!("cluster_id = \"{cluster}\"\noriginate"),
        1,
    );
    let ours = Ours::start(&star.hub, &config).unwrap();
    let bird = Bird::start(
        &star.spokes[0],
        PeerConfig::new(OUR_AS, bird_id)
            .neighbor(Neighbor::new(Star::hub_addr(1), OUR_AS).hold_time(support::HOLD))
            .route(Route::parse("10.31.0.0/24").unwrap()),
    )
    .unwrap();
    let gobgp = Gobgp::start(
        &star.spokes[1],
        PeerConfig::new(OUR_AS, gobgp_id)
            .neighbor(Neighbor::new(Star::hub_addr(2), OUR_AS).hold_time(support::HOLD))
            .route(Route::parse("10.32.0.0/24").unwrap()),
    )
    .unwrap();
    ours.wait_established(Star::spoke_addr(1));
    ours.wait_established(Star::spoke_addr(2));
    bird.wait_established(Star::hub_addr(1), UP).unwrap();
    gobgp.wait_established(Star::hub_addr(2), UP).unwrap();

    let at_gobgp = gobgp.wait_route(net("10.31.0.0/24"), ROUTE).unwrap();
    assert_eq!(at_gobgp.originator_id, Some(bird_id), "{at_gobgp:?}");
    assert_eq!(at_gobgp.cluster_list, vec![cluster], "{at_gobgp:?}");
    assert_eq!(
        at_gobgp.next_hop,
        Some(Star::spoke_addr(1)),
        "next hop unchanged by reflection"
    );
    let at_bird = bird.wait_route(net("10.32.0.0/24"), ROUTE).unwrap();
    assert_eq!(at_bird.originator_id, Some(gobgp_id), "{at_bird:?}");
    assert_eq!(at_bird.cluster_list, vec![cluster], "{at_bird:?}");
}

#[test]
#[serial_test::serial]
fn bird_reflects_between_our_speakers() {
    let star = Star::new(2).unwrap();
    let cluster: Ipv4Addr = "10.78.254.254".parse().unwrap();
    let _bird = Bird::start(
        &star.hub,
        PeerConfig::new(OUR_AS, "10.78.1.1".parse().unwrap())
            .cluster_id(cluster)
            .neighbor(
                Neighbor::new(Star::spoke_addr(1), OUR_AS)
                    .hold_time(support::HOLD)
                    .rr_client(),
            )
            .neighbor(
                Neighbor::new(Star::spoke_addr(2), OUR_AS)
                    .hold_time(support::HOLD)
                    .rr_client(),
            ),
    )
    .unwrap();
    let first = Ours::start(
        &star.spokes[0],
        &our_config(
            "10.78.1.2",
            &["10.41.0.0/24"],
            &[our_peer(Star::hub_addr(1), OUR_AS, "")],
        ),
    )
    .unwrap();
    let second = Ours::start(
        &star.spokes[1],
        &our_config("10.78.2.2", &[], &[our_peer(Star::hub_addr(2), OUR_AS, "")]),
    )
    .unwrap();
    first.wait_established(Star::hub_addr(1));
    second.wait_established(Star::hub_addr(2));
    let r = second.wait_route("10.41.0.0/24", Star::hub_addr(2));
    assert_eq!(r["originator_id"], "10.78.1.2", "{r}");
    assert_eq!(
        r["cluster_list"],
        serde_json::json!([cluster.to_string()]),
        "{r}"
    );
    assert_eq!(r["next_hop"], "10.78.1.2", "{r}");
}

/// The reflector admits its clients through a peer range (no per-client configuration), as a
/// BIRD `neighbor range` reflector would.
#[test]
#[serial_test::serial]
fn ours_reflects_for_clients_admitted_by_a_peer_range() {
    let star = Star::new(2).unwrap();
    let config = format!(
        "local_as = {OUR_AS}\nrouter_id = \"10.78.1.1\"\ncluster_id = \"10.78.1.1\"\n\n\
         [[peer_ranges]]\nprefix = \"10.78.0.0/16\"\nremote_as = {OUR_AS}\nrr_client = true\n\
         hold_time = {}\nfamilies = [\"ipv4\"]\n",
        support::HOLD
    );
    let ours = Ours::start(&star.hub, &config).unwrap();
    let client = |i: usize, prefix: &str| {
        PeerConfig::new(OUR_AS, Star::spoke_addr(i).to_string().parse().unwrap())
            .neighbor(Neighbor::new(Star::hub_addr(i), OUR_AS).hold_time(support::HOLD))
            .route(Route::parse(prefix).unwrap())
    };
    let bird = Bird::start(&star.spokes[0], client(1, "10.33.0.0/24")).unwrap();
    let gobgp = Gobgp::start(&star.spokes[1], client(2, "10.34.0.0/24")).unwrap();
    ours.wait_established(Star::spoke_addr(1));
    ours.wait_established(Star::spoke_addr(2));
    let at_gobgp = gobgp.wait_route(net("10.33.0.0/24"), ROUTE).unwrap();
    assert_eq!(
        at_gobgp.originator_id,
        Some("10.78.1.2".parse().unwrap()),
        "{at_gobgp:?}"
    );
    let at_bird = bird.wait_route(net("10.34.0.0/24"), ROUTE).unwrap();
    assert_eq!(
        at_bird.originator_id,
        Some("10.78.2.2".parse().unwrap()),
        "{at_bird:?}"
    );
}
