//! The daemon's tests run on `testkit::fabric` (switch, etcd and hosts in namespaces, all
//! removed on drop). This adds only what is bgpd's own: this package's `bgpd` binary, the
//! IPv4-only host these tests start from, and the typed control-socket client of `bgpd-api`.

#![allow(dead_code)] // each test binary uses a part

use std::time::Duration;

use bgpd_api::{AttachRequest, Client, Endpoint, Peer, Status};
use testkit::fabric::{Binaries, Container, Fabric, HostConfig, POOL_V4, Pool, Role};
use testkit::netns::Netns;
use testkit::process::wait_until;

/// How long something the daemons do on their own (a route learned or removed, a ping through,
/// a log line, an exit) may take to show on a loaded CI machine; every wait ends as soon as it
/// shows, so this costs nothing when things are quick.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// A fabric running the `bgpd` built with these tests; no hosts yet.
pub fn lab() -> Fabric {
    let bins = Binaries::beside(env!("CARGO_BIN_EXE_bgpd")).unwrap();
    Fabric::with_binaries(bins).unwrap()
}

/// Adds a host (not started) meshing or not, with one IPv4 pool (the fabric's, with bgpd's
/// default block size) and whatever `edit` changes.
pub fn add_host(fabric: &mut Fabric, mesh: bool, edit: impl FnOnce(&mut HostConfig)) -> usize {
    let mut config = fabric.next_host_config(Role::Host);
    config.mesh = mesh;
    config.pools = vec![Pool::new("pool4", POOL_V4)];
    edit(&mut config);
    fabric.add_host_stopped(config).unwrap()
}

/// Two meshing hosts with the same `edit`, both started, the first with its session up.
pub fn meshed_pair(fabric: &mut Fabric, edit: impl Fn(&mut HostConfig)) -> (usize, usize) {
    let a = add_host(fabric, true, &edit);
    let b = add_host(fabric, true, &edit);
    fabric.start(a).unwrap();
    fabric.start(b).unwrap();
    wait_established(fabric, a, 1);
    (a, b)
}

/// Adds a route reflector (not started) that does not mesh; hosts find it in etcd. It has
/// the hosts' pool in its config too, which it must not claim from.
pub fn add_reflector(fabric: &mut Fabric) -> usize {
    let mut config = fabric.next_host_config(Role::Reflector);
    config.mesh = false;
    config.pools = vec![Pool::new("pool4", POOL_V4)];
    fabric.add_host_stopped(config).unwrap()
}

pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// Host `i`'s underlay address, as bgpd reports addresses.
pub fn address(fabric: &Fabric, i: usize) -> String {
    fabric.hosts[i].config.address.to_string()
}

pub fn client(fabric: &Fabric, i: usize) -> Client {
    Client::new(fabric.hosts[i].config.control_socket())
}

pub fn status(fabric: &Fabric, i: usize) -> Status {
    block_on(client(fabric, i).status()).unwrap()
}

/// Host `i`'s first block.
pub fn block(fabric: &Fabric, i: usize) -> String {
    status(fabric, i).blocks[0].cidr.to_string()
}

/// Host `i`'s peer at `address`, if it has one.
pub fn peer(fabric: &Fabric, i: usize, address: &str) -> Option<Peer> {
    block_on(client(fabric, i).peers())
        .ok()?
        .into_iter()
        .find(|p| p.address.to_string() == address)
}

/// Waits until host `i` has `n` Established peers.
pub fn wait_established(fabric: &Fabric, i: usize, n: usize) {
    let ok = wait_until(Duration::from_secs(40), || {
        block_on(client(fabric, i).peers())
            .map(|p| p.iter().filter(|p| p.state == "Established").count() >= n)
            .unwrap_or(false)
    });
    assert!(
        ok,
        "host {i}: fewer than {n} sessions up:\n{}",
        fabric.log_tail(i)
    );
}

/// Host `i`'s session to `address` once it has been Established for 3 s: the baseline for a
/// test about later resets. A mesh that just came up can still reset a session once: when
/// both hosts connect at once, one may resolve the collision after the other already took
/// the session as Established (seen about once in a dozen fresh three-host meshes).
pub fn settled_peer(fabric: &Fabric, i: usize, address: &str) -> Peer {
    let mut last = None;
    let settled = wait_until(PATIENCE, || {
        last = peer(fabric, i, address);
        last.as_ref()
            .is_some_and(|p| p.state == "Established" && p.uptime_secs.is_some_and(|u| u >= 3))
    });
    assert!(
        settled,
        "host {i}: session to {address} not up for 3 s: {last:?}\n{}",
        fabric.log_tail(i)
    );
    last.expect("a settled session was seen")
}

/// An attach request for `id`'s `eth0` in `ns`; the rest as bgpd defaults it.
fn attach_request(id: &str, ns: &Netns) -> AttachRequest {
    serde_json::from_value(serde_json::json!({
        "container_id": id,
        "ifname": "eth0",
        "netns": ns.path().display().to_string(),
    }))
    .unwrap()
}

/// A container namespace attached as `id` on host `i` over the control socket: its index in
/// the fabric's containers, and what bgpd answered.
pub fn attach(fabric: &mut Fabric, i: usize, id: &str) -> (usize, Endpoint) {
    let ns = Netns::new(&format!("c{id}")).unwrap();
    let endpoint = block_on(client(fabric, i).attach(&attach_request(id, &ns)))
        .unwrap_or_else(|e| panic!("attach {id}: {e}\n{}", fabric.log_tail(i)));
    fabric.containers.push(Container {
        id: id.to_string(),
        host: i,
        ips: endpoint.ips.iter().map(|ip| ip.address.ip()).collect(),
        ns,
    });
    (fabric.containers.len() - 1, endpoint)
}

/// Attaches container `c` (already attached as `id` on host `i`) once more.
pub fn attach_again(fabric: &Fabric, i: usize, id: &str, c: usize) -> Endpoint {
    let request = attach_request(id, &fabric.containers[c].ns);
    block_on(client(fabric, i).attach(&request)).unwrap()
}
