//! Graceful restart (RFC 4724) both ways. Our speaker is killed (-9) and restarted while BIRD
//! and GoBGP help: they keep our routes as stale through the restart time, and flush the ones
//! we no longer announce once our End-of-RIB arrives. And BIRD is killed and restarted with
//! graceful restart while we help: we keep its routes as stale and flush what it no longer
//! announces after its End-of-RIB.

mod support;

use std::time::Duration;

use ipnetwork::IpNetwork;
use support::{OUR_AS, Ours, Pair, ROUTE, Star, UP, our_config, our_peer, with_top};
use testkit::peers::bird::Bird;
use testkit::peers::gobgp::Gobgp;
use testkit::peers::{BgpPeer, GracefulRestart, Neighbor, PeerConfig, Route};

fn net(s: &str) -> IpNetwork {
    s.parse().unwrap()
}

/// Time we keep our routes at the helpers.
const RESTART_TIME: u16 = 30;

#[test]
#[serial_test::serial]
fn bird_and_gobgp_keep_our_routes_while_we_restart() {
    let star = Star::new(2).unwrap();
    let config = |originate: &[&str]| {
        with_top(
            &our_config(
                "10.78.1.1",
                originate,
                &[
                    our_peer(Star::spoke_addr(1), 65002, ""),
                    our_peer(Star::spoke_addr(2), 65003, ""),
                ],
            ),
            &format!("[graceful_restart]\nrestart_time = {RESTART_TIME}"),
        )
    };
    let mut ours = Ours::start(&star.hub, &config(&["10.51.0.0/24", "10.52.0.0/24"])).unwrap();
    let helper = |asn| Neighbor::new(Star::hub_addr(1), asn).hold_time(support::HOLD);
    let bird = Bird::start(
        &star.spokes[0],
        PeerConfig::new(65002, "10.78.1.2".parse().unwrap()).neighbor(
            helper(OUR_AS).graceful_restart(GracefulRestart::Enabled {
                restart_time: RESTART_TIME,
            }),
        ),
    )
    .unwrap();
    let gobgp = Gobgp::start(
        &star.spokes[1],
        PeerConfig::new(65003, "10.78.2.2".parse().unwrap()).neighbor(
            Neighbor::new(Star::hub_addr(2), OUR_AS)
                .hold_time(support::HOLD)
                .graceful_restart(GracefulRestart::Enabled {
                    restart_time: RESTART_TIME,
                }),
        ),
    )
    .unwrap();
    let helpers: [&dyn BgpPeer; 2] = [&bird, &gobgp];
    for (i, h) in helpers.iter().enumerate() {
        h.wait_established(Star::hub_addr(i + 1), UP).unwrap();
        for p in ["10.51.0.0/24", "10.52.0.0/24"] {
            h.wait_route(net(p), ROUTE).unwrap();
        }
    }

    ours.kill();
    // Within the restart time the helpers keep both routes (as stale).
    std::thread::sleep(Duration::from_secs(4));
    for (i, h) in helpers.iter().enumerate() {
        assert!(
            !h.is_established(Star::hub_addr(i + 1)).unwrap(),
            "{}: session survived a kill",
            h.name()
        );
        for p in ["10.51.0.0/24", "10.52.0.0/24"] {
            let paths = h.paths(net(p)).unwrap();
            assert!(
                paths.iter().any(|r| r.from.is_some()),
                "{}: {p} withdrawn during our restart: {paths:?}",
                h.name()
            );
        }
    }
    let at_bird = bird.paths(net("10.51.0.0/24")).unwrap();
    assert!(
        at_bird.iter().any(|r| r.stale),
        "bird does not mark our routes stale: {at_bird:?}"
    );

    // Back with only one of the two routes: the other is flushed after our End-of-RIB.
    ours.write_config(&config(&["10.51.0.0/24"])).unwrap();
    ours.restart(true).unwrap();
    for (i, h) in helpers.iter().enumerate() {
        h.wait_established(Star::hub_addr(i + 1), UP).unwrap();
        h.wait_route_gone(
            net("10.52.0.0/24"),
            Duration::from_secs(u64::from(RESTART_TIME)),
        )
        .unwrap();
        h.wait_for("10.51.0.0/24 fresh", ROUTE, &|| {
            Ok(h.paths(net("10.51.0.0/24"))?
                .iter()
                .any(|r| r.from.is_some() && !r.stale))
        })
        .unwrap();
    }
}

#[test]
#[serial_test::serial]
fn we_keep_birds_routes_while_it_restarts() {
    let pair = Pair::new().unwrap();
    let mut bird = Bird::start(
        &pair.them,
        PeerConfig::new(65002, "10.77.0.2".parse().unwrap())
            .neighbor(
                Neighbor::new(pair.our_v4, OUR_AS)
                    .hold_time(support::HOLD)
                    .graceful_restart(GracefulRestart::Enabled {
                        restart_time: RESTART_TIME,
                    }),
            )
            .route(Route::parse("10.61.0.0/24").unwrap())
            .route(Route::parse("10.62.0.0/24").unwrap()),
    )
    .unwrap();
    let ours = Ours::start(
        &pair.us,
        &our_config("10.77.0.1", &[], &[our_peer(pair.their_v4, 65002, "")]),
    )
    .unwrap();
    ours.wait_established(pair.their_v4);
    ours.wait_route("10.61.0.0/24", pair.their_v4);
    ours.wait_route("10.62.0.0/24", pair.their_v4);

    bird.kill();
    ours.wait("BIRD's routes marked stale", ROUTE, |o| {
        o.routes_for("10.61.0.0/24")
            .iter()
            .any(|r| r["stale"] == true)
    });
    std::thread::sleep(Duration::from_secs(3));
    for p in ["10.61.0.0/24", "10.62.0.0/24"] {
        assert!(
            ours.routes_for(p)
                .iter()
                .any(|r| r["stale"] == true && r["best"] == true),
            "{p} not kept: {:#}",
            ours.status()
        );
    }
    assert_eq!(ours.peer(pair.their_v4)["graceful_restart_stale"], true);

    // BIRD comes back (with -R) without 10.62: we flush it after BIRD's End-of-RIB.
    let _ = bird.withdraw(net("10.62.0.0/24")); // BIRD is down: this only edits its config
    bird.restart().unwrap();
    ours.wait_established(pair.their_v4);
    ours.wait_route_gone("10.62.0.0/24");
    ours.wait("10.61.0.0/24 fresh", ROUTE, |o| {
        o.routes_for("10.61.0.0/24")
            .iter()
            .any(|r| r["stale"] == false && r["best"] == true)
    });
}
