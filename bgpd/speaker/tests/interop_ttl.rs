//! TTL handling between two of our speakers two hops apart (a forwarding namespace between
//! them): GTSM (RFC 5082) refuses a peer farther than configured and accepts it within range;
//! plain eBGP (TTL 1) cannot cross the router while eBGP multihop can.

mod support;

use std::time::Duration;

use support::{OUR_AS, Ours, Star, our_config, our_peer};

/// How long a session that must not come up is given.
const REFUSED: Duration = Duration::from_secs(6);

/// Starts our speakers on both spokes, each with `extra` in its peer table; returns them.
fn two_hops_apart(star: &Star, extra: &str) -> (Ours, Ours) {
    let first = Ours::start(
        &star.spokes[0],
        &our_config(
            "10.78.1.2",
            &[],
            &[our_peer(Star::spoke_addr(2), 65002, extra)],
        ),
    )
    .unwrap();
    let second_config = our_config(
        "10.78.2.2",
        &[],
        &[our_peer(Star::spoke_addr(1), OUR_AS, extra)],
    )
    .replace(&format!("local_as = {OUR_AS}"), "local_as = 65002");
    let second = Ours::start(&star.spokes[1], &second_config).unwrap();
    (first, second)
}

fn assert_refused(first: &Ours) {
    std::thread::sleep(REFUSED);
    let status = first.peer(Star::spoke_addr(2));
    assert_ne!(status["state"], "Established", "{status}");
    assert_eq!(status["received"]["open"], 0, "{status}");
}

#[test]
#[serial_test::serial]
fn gtsm_refuses_a_peer_beyond_the_configured_hops() {
    let star = Star::new(2).unwrap();
    let (first, _second) = two_hops_apart(&star, "ttl_security = 1");
    assert_refused(&first);
    drop((first, _second));
    let (first, second) = two_hops_apart(&star, "ttl_security = 2");
    first.wait_established(Star::spoke_addr(2));
    second.wait_established(Star::spoke_addr(1));
}

#[test]
#[serial_test::serial]
fn ebgp_needs_multihop_to_cross_a_router() {
    let star = Star::new(2).unwrap();
    let (first, _second) = two_hops_apart(&star, "");
    assert_refused(&first);
    drop((first, _second));
    let (first, second) = two_hops_apart(&star, "multihop = 2");
    first.wait_established(Star::spoke_addr(2));
    second.wait_established(Star::spoke_addr(1));
}
