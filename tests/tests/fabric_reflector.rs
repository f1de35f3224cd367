//! End to end, route reflection: a bgpd reflector with four hosts, and BIRD as the reflector
//! of three hosts. Real etcd, real bgpd and BIRD processes, real pings.

use std::net::IpAddr;
use std::time::Duration;

use testkit::fabric::{Container, Fabric, Role};

const CONVERGE: Duration = Duration::from_secs(60);

fn assert_all_pairs_v4(fabric: &Fabric) {
    let cells = fabric.ping_matrix(Container::ipv4);
    assert!(!cells.is_empty());
    assert!(
        cells.iter().all(|c| c.ok),
        "{}\n{}",
        fabric.matrix_table(&cells),
        fabric.logs()
    );
}

/// Hosts peer only with the reflector they find in etcd; the reflector reflects every block
/// with ORIGINATOR_ID and CLUSTER_LIST; all containers reach each other.
#[test]
fn bgpd_reflector_serves_four_hosts() {
    let mut fabric = Fabric::new().expect("fabric");
    let rr = fabric.add_host(Role::Reflector).expect("reflector");
    for _ in 0..4 {
        fabric.add_host(Role::Host).expect("host");
    }
    fabric
        .wait_established(rr, 4, CONVERGE)
        .expect("reflector sessions");
    let rr_address = IpAddr::V4(fabric.hosts[rr].config.address);
    for i in 1..5 {
        fabric
            .wait_established(i, 1, CONVERGE)
            .expect("host session");
        assert_eq!(
            fabric.established(i),
            vec![rr_address.to_string()],
            "hosts peer only with the reflector"
        );
        fabric.add_container(i).expect("container");
    }
    fabric.wait_converged(1, false, CONVERGE).expect("routes");
    assert_all_pairs_v4(&fabric);

    // Host 1 learned host 2's block from the reflector, carrying the reflection attributes.
    let block = fabric.blocks(2).expect("blocks")[0].clone();
    let routes = fabric
        .routectl_json(1, &["routes", &block])
        .expect("routes json");
    let rib = routes["rib"].as_array().cloned().unwrap_or_default();
    let reflected = rib
        .iter()
        .find(|r| r["prefix"] == block.as_str() && r["best"] == true)
        .unwrap_or_else(|| panic!("no best path for {block}: {routes}"));
    assert_eq!(reflected["from"], rr_address.to_string());
    assert_eq!(
        reflected["next_hop"],
        fabric.hosts[2].config.address.to_string()
    );
    assert_eq!(
        reflected["originator_id"],
        fabric.hosts[2].config.address.to_string()
    );
    assert_eq!(reflected["cluster_list"][0], rr_address.to_string());
}

/// BIRD reflects for three bgpd hosts configured with it as their only (explicit) peer.
#[test]
fn bird_reflector_serves_three_hosts() {
    let mut fabric = Fabric::new().expect("fabric");
    let bird = fabric.start_bird_reflector(3).expect("bird");
    for _ in 0..3 {
        let host = fabric.bird_client_config();
        fabric.add_host_with(host).expect("host");
    }
    for i in 0..3 {
        fabric
            .wait_established(i, 1, CONVERGE)
            .expect("session with BIRD");
        fabric.add_container(i).expect("container");
    }
    let converged = fabric.wait_converged(0, false, CONVERGE);
    let bird_routes = bird.birdc(&["show", "route", "all"]).unwrap_or_default();
    converged.unwrap_or_else(|e| panic!("{e}\nBIRD:\n{bird_routes}"));
    assert_all_pairs_v4(&fabric);
}
