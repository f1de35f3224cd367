//! End to end, iBGP full mesh: real etcd, real bgpd processes in namespaces, real pings.
//! Needs root and the `bgpd` and `routectl` binaries (see `testkit::fabric::Binaries`).

use std::net::IpAddr;
use std::time::Duration;

use testkit::fabric::{Container, Fabric, Role};

const CONVERGE: Duration = Duration::from_secs(60);

fn assert_all_pairs(fabric: &Fabric, family: &str, pick: fn(&Container) -> Option<IpAddr>) {
    let cells = fabric.ping_matrix(pick);
    assert!(!cells.is_empty(), "containers have no {family} addresses");
    let failed: Vec<_> = cells.iter().filter(|c| !c.ok).collect();
    assert!(
        failed.is_empty(),
        "{family} pairs that do not reach each other: {failed:?}\n{}\n{}",
        fabric.matrix_table(&cells),
        fabric.logs()
    );
}

/// Adds and starts a host whose peers keep its routes for 3 s when its bgpd stops (its
/// graceful-restart time), so a stopped host's routes go quickly.
fn add_host(fabric: &mut Fabric) -> usize {
    let mut config = fabric.next_host_config(Role::Host);
    config.graceful_restart = Some(3);
    fabric.add_host_with(config).expect("host")
}

/// Three hosts, two containers each: all pairs ping. A fourth host joins and every host learns
/// its block without a restart. A host is stopped and, after its graceful-restart time, its
/// blocks leave every other host's kernel (it stays a member until `routectl node delete`).
#[test]
fn mesh_converges_grows_and_shrinks_without_restarts() {
    let mut fabric = Fabric::new().expect("fabric");
    for _ in 0..3 {
        add_host(&mut fabric);
    }
    for i in 0..3 {
        fabric
            .wait_established(i, 2, CONVERGE)
            .expect("mesh sessions");
    }
    for host in 0..3 {
        for _ in 0..2 {
            fabric.add_container(host).expect("container");
        }
    }
    fabric.wait_converged(0, false, CONVERGE).expect("routes");
    assert_all_pairs(&fabric, "IPv4", Container::ipv4);
    for i in 0..3 {
        let status = fabric.routectl_json(i, &["status"]).expect("status");
        assert_eq!(status["kernel"]["in_sync"], true, "{status}");
    }
    let pids: Vec<_> = fabric.hosts.iter().map(|h| h.pid()).collect();

    // A fourth host joins: the others learn it from the etcd watch, no restart.
    let fourth = add_host(&mut fabric);
    for i in 0..4 {
        fabric
            .wait_established(i, 3, CONVERGE)
            .expect("mesh of four");
    }
    fabric
        .add_container(fourth)
        .expect("container on the fourth host");
    fabric
        .wait_converged(0, false, CONVERGE)
        .expect("routes to the fourth host");
    let pids_after: Vec<_> = fabric.hosts[..3].iter().map(|h| h.pid()).collect();
    assert_eq!(pids, pids_after, "no bgpd was restarted");
    assert_all_pairs(&fabric, "IPv4", Container::ipv4);

    // Host 2 stops: its sessions go down, and once its graceful-restart time has passed its
    // blocks go from every other host's kernel.
    let gone = fabric.blocks(1).expect("host-2 blocks");
    assert!(!gone.is_empty());
    let gone_address = fabric.hosts[1].config.address;
    fabric.stop(1);
    let cleared = testkit::process::wait_until(CONVERGE, || {
        [0, 2, 3].iter().all(|&i| {
            gone.iter().all(|b| fabric.kernel_route(i, b).is_empty())
                && fabric.established(i).len() == 2
        })
    });
    let leftovers: Vec<String> = [0, 2, 3]
        .iter()
        .flat_map(|&i| gone.iter().map(move |b| (i, b)))
        .map(|(i, b)| {
            format!(
                "{}: {b}: {:?}",
                fabric.hosts[i].config.name,
                fabric.kernel_route(i, b)
            )
        })
        .collect();
    assert!(
        cleared,
        "routes of stopped host {gone_address} remain: {leftovers:?}\n{}",
        fabric.logs()
    );
}

/// Containers get an IPv6 address from the fd00:244::/56 pool on every host; the hosts'
/// IPv6 blocks must be routed between them like the IPv4 ones.
#[test]
fn mesh_routes_ipv6_between_hosts() {
    let mut fabric = Fabric::new().expect("fabric");
    fabric
        .add_meshed_hosts_with_a_container(2, CONVERGE)
        .expect("two meshed hosts with a container each");
    fabric
        .wait_converged(0, true, CONVERGE)
        .expect("IPv6 blocks routed");
    assert_all_pairs(&fabric, "IPv6", Container::ipv6);
}
