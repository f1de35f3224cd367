//! End to end: IP pools changed at runtime. Every bgpd follows the pools in etcd, so a pool
//! added while hosts run is routed by all of them and usable at once, and a disabled pool's
//! running containers stay routed, also across a restart (Calico's pool migration).

use std::time::Duration;

use testkit::fabric::{Fabric, Role};
use testkit::process::wait_until;

const CONVERGE: Duration = Duration::from_secs(60);

#[test]
fn a_pool_added_at_runtime_is_routed_by_running_hosts() {
    let mut fabric = Fabric::new().expect("fabric");
    fabric
        .add_meshed_hosts_with_a_container(2, CONVERGE)
        .expect("two meshed hosts with a container each");
    // Sorted before the default pools, so the new host's block comes from it.
    fabric
        .routectl(0, &["ipam", "pools", "add", "aaa-extra", "10.245.0.0/16"])
        .expect("pool add");
    let h3 = fabric.add_host(Role::Host).expect("host-3");
    for i in 0..3 {
        fabric.wait_established(i, 2, CONVERGE).expect("mesh of 3");
    }
    let c = fabric.add_container(h3).expect("container on host-3");
    let target = fabric.containers[c].ipv4().expect("an IPv4 address");
    assert!(
        target.to_string().starts_with("10.245."),
        "host-3's container {target} is not in the new pool: {:?}",
        fabric.blocks(h3)
    );
    let reached = wait_until(CONVERGE, || {
        fabric.containers[0].ns.ping(&target.to_string())
    });
    assert!(
        reached,
        "host-1's container cannot reach {target} in the new pool; host-1 routes:\n{}",
        fabric.bgpd_routes(0)
    );
}

#[test]
fn a_disabled_pool_is_still_routed_after_a_restart() {
    let mut fabric = Fabric::new().expect("fabric");
    fabric
        .add_meshed_hosts_with_a_container(2, CONVERGE)
        .expect("two meshed hosts with a container each");
    let target = fabric.containers[1].ipv4().expect("v4").to_string();
    assert!(wait_until(CONVERGE, || fabric.containers[0]
        .ns
        .ping(&target)));
    let key = "/fabric/v1/pools/default-ipv4";
    let value = fabric
        .etcdctl(&["get", key, "--print-value-only"])
        .expect("pool");
    let disabled = value
        .trim()
        .replace("\"disabled\":false", "\"disabled\":true");
    assert_ne!(
        disabled,
        value.trim(),
        "the pool record has a disabled field"
    );
    fabric.etcdctl(&["put", key, &disabled]).expect("put");

    fabric.stop(0);
    fabric.start(0).expect("restart host-1");
    fabric.wait_established(0, 1, CONVERGE).expect("session");
    // Host-1 must import host-2's block from the disabled pool again (not only keep the
    // kernel route from before its restart) and route to it.
    let block = fabric.blocks(1).expect("host-2's blocks");
    let block = block
        .iter()
        .find(|b| b.starts_with("10.244."))
        .expect("host-2 holds an IPv4 block");
    let imported = wait_until(CONVERGE, || {
        let routes = fabric.routectl_json(0, &["routes"]).unwrap_or_default();
        routes["rib"].as_array().is_some_and(|rib| {
            rib.iter().any(|r| {
                r["prefix"] == block.as_str() && r["accepted"] == true && r["best"] == true
            })
        })
    });
    assert!(
        imported,
        "host-1 did not accept host-2's block {block} from the disabled pool: {}",
        fabric.routectl(0, &["routes"]).unwrap_or_default()
    );
    let routed = wait_until(CONVERGE, || fabric.containers[0].ns.ping(&target));
    assert!(
        routed,
        "host-1's container cannot reach {target} in the disabled pool after host-1 restarted; \
         host-1 routes:\n{}\nhost-2 routes:\n{}\n{}",
        fabric.bgpd_routes(0),
        fabric.bgpd_routes(1),
        fabric.log_tail(0)
    );
    // The disabled pool gives out no new addresses: a new container gets only IPv6.
    let c = fabric
        .add_container(0)
        .expect("a container from the IPv6 pool");
    assert_eq!(
        fabric.containers[c].ipv4(),
        None,
        "a new container got an address from the disabled pool"
    );
}

#[test]
fn a_pool_added_after_start_can_be_used_for_containers() {
    let mut fabric = Fabric::new().expect("fabric");
    let mut config = fabric.next_host_config(Role::Host);
    config.pools = Vec::new();
    let h = fabric.add_host_with(config).expect("host without pools");
    fabric
        .routectl(
            h,
            &["ipam", "pools", "add", "default-ipv4", "10.244.0.0/16"],
        )
        .expect("pool add");
    // bgpd learns the pool from its watch; until then an attach is refused, so retry.
    let mut added = None;
    let ok = wait_until(CONVERGE, || {
        added = fabric.add_container(h).ok();
        added.is_some()
    });
    assert!(ok, "no container could be added: {}", fabric.log_tail(h));
    let c = added.expect("added");
    let ip = fabric.containers[c].ipv4().expect("an IPv4 address");
    assert!(
        ip.to_string().starts_with("10.244."),
        "{ip} is not from the new pool"
    );
}
