//! End to end: SIGHUP applies only the difference. A peer added to the file comes up; the
//! mesh sessions keep running (same uptime origin, no new establishment).

use std::time::Duration;

use serde_json::Value;
use testkit::fabric::{ExplicitPeer, FABRIC_ASN, Fabric, Role};
use testkit::peers::bird::Bird;
use testkit::peers::{BgpPeer, Neighbor, PeerConfig};

const CONVERGE: Duration = Duration::from_secs(60);

/// (address, established_count, uptime_secs) of every peer of host `i`.
fn sessions(fabric: &Fabric, i: usize) -> Vec<(String, u64, u64)> {
    let peers = fabric.routectl_json(i, &["peers"]).expect("peers json");
    peers
        .as_array()
        .map(|ps| {
            ps.iter()
                .map(|p: &Value| {
                    (
                        p["address"].as_str().unwrap_or_default().to_string(),
                        p["established_count"].as_u64().unwrap_or_default(),
                        p["uptime_secs"].as_u64().unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn sighup_adds_a_peer_and_keeps_the_others() {
    let mut fabric = Fabric::new().expect("fabric");
    for _ in 0..3 {
        fabric.add_host(Role::Host).expect("host");
    }
    for i in 0..3 {
        fabric.wait_established(i, 2, CONVERGE).expect("mesh");
    }
    let bird_address = "10.99.0.3".parse().expect("address");
    let host = fabric.hosts[0].config.address;
    let bird_ns = fabric
        .attach_namespace("bird", bird_address)
        .expect("namespace");
    let bird = Bird::start(
        bird_ns,
        PeerConfig::new(FABRIC_ASN, bird_address)
            .neighbor(Neighbor::new(host.into(), FABRIC_ASN).hold_time(9)),
    )
    .expect("bird");
    // The baseline waits for settled sessions: a mesh that just came up can reset one once.
    fabric
        .wait_sessions_settled(0, CONVERGE)
        .expect("host 0's mesh sessions settle");
    let before = sessions(&fabric, 0);
    assert_eq!(before.len(), 2, "{before:?}");

    fabric.hosts[0].config.peers.push(ExplicitPeer {
        name: "bird".into(),
        address: bird_address.into(),
        asn: FABRIC_ASN,
    });
    fabric.write_config(0).expect("config");
    fabric.signal(0, libc::SIGHUP).expect("SIGHUP");
    fabric
        .wait_established(0, 3, CONVERGE)
        .expect("the added peer comes up");
    bird.wait_established(host.into(), CONVERGE)
        .expect("BIRD sees the session");

    let after = sessions(&fabric, 0);
    for (address, count, uptime) in &before {
        let (_, count_after, uptime_after) = after
            .iter()
            .find(|(a, _, _)| a == address)
            .unwrap_or_else(|| panic!("{address} is gone after reload: {after:?}"));
        assert_eq!(
            count, count_after,
            "{address} was re-established by the reload"
        );
        assert!(
            uptime_after >= uptime,
            "{address} uptime went back: {uptime} → {uptime_after}"
        );
    }
}
