//! TCP-MD5 (RFC 2385) against BIRD and FRR: a matching password gives a session that carries
//! routes; a wrong one gives no session at all (the kernel drops unsigned or mis-signed
//! segments, so neither side ever sees an OPEN).

mod support;

use std::time::Duration;

use ipnetwork::IpNetwork;
use support::{OUR_AS, Ours, Pair, ROUTE, THEIR_AS, UP, our_config, our_peer};
use testkit::netns::Netns;
use testkit::peers::bird::Bird;
use testkit::peers::frr::Frr;
use testkit::peers::{BgpPeer, Neighbor, PeerConfig, Result};

fn md5<P: BgpPeer>(start: impl Fn(&Netns, PeerConfig) -> Result<P>) {
    for (ours_password, matching) in [("s3cret-md5", true), ("wrong", false)] {
        let pair = Pair::new().unwrap();
        let them = start(
            &pair.them,
            PeerConfig::new(THEIR_AS, "10.77.0.2".parse().unwrap()).neighbor(
                Neighbor::new(pair.our_v4, OUR_AS)
                    .hold_time(support::HOLD)
                    .password("s3cret-md5"),
            ),
        )
        .unwrap();
        let peer = our_peer(
            pair.their_v4,
            THEIR_AS,
            &format!("password = \"{ours_password}\""),
        );
        let ours = Ours::start(
            &pair.us,
            &our_config("10.77.0.1", &["10.81.0.0/24"], &[peer]),
        )
        .unwrap();
        if matching {
            ours.wait_established(pair.their_v4);
            them.wait_established(pair.our_v4, UP).unwrap();
            them.wait_route("10.81.0.0/24".parse::<IpNetwork>().unwrap(), ROUTE)
                .unwrap();
        } else {
            // Several connect retries on both sides; none may get through.
            std::thread::sleep(Duration::from_secs(8));
            let status = ours.peer(pair.their_v4);
            assert_ne!(status["state"], "Established", "{}: {status}", them.name());
            assert_eq!(
                status["received"]["open"],
                0,
                "{}: an OPEN got through: {status}",
                them.name()
            );
            assert!(!them.is_established(pair.our_v4).unwrap());
        }
    }
}

#[test]
#[serial_test::serial]
fn bird_md5_matching_and_mismatching() {
    md5(Bird::start);
}

#[test]
#[serial_test::serial]
fn frr_md5_matching_and_mismatching() {
    md5(Frr::start);
}
