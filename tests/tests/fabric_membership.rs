//! End to end, node membership: a host's node record is persistent (Calico's model), so a host
//! cut off from etcd or whose bgpd is down stays routed and keeps its addresses; only
//! `routectl node delete` decommissions it. Real etcd, bgpd processes in namespaces, real
//! pings. Needs root and the `bgpd` and `routectl` binaries (see `testkit::fabric::Binaries`).

use std::io::Write;
use std::thread::sleep;
use std::time::Duration;

use testkit::fabric::ping::ContinuousPing;
use testkit::fabric::{ETCD_ADDRESS, Fabric, HostConfig, Role};
use testkit::netns::Netns;
use testkit::process::wait_until;

const CONVERGE: Duration = Duration::from_secs(60);

/// IPAM's GC runs every 30 s; a host gone for `DEAD_HOST_DELAY` is reclaimed by the first pass
/// after that, so two passes plus slack.
const GC_PASSES: Duration = Duration::from_secs(65);

/// The dead-host delay these fabrics run with, in seconds (5 min by default).
const DEAD_HOST_DELAY: u32 = 1;

/// Adds and starts a host with `edit` applied to its configuration and IPAM's dead-host delay
/// set to `DEAD_HOST_DELAY` (testkit's host configuration has no field for it).
fn add_host(fabric: &mut Fabric, edit: impl FnOnce(&mut HostConfig)) -> usize {
    let mut config = fabric.next_host_config(Role::Host);
    edit(&mut config);
    let i = fabric.add_host_stopped(config).expect("host");
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&fabric.hosts[i].config_path)
        .expect("config file");
    write!(file, "\n[ipam]\ndead_host_delay = {DEAD_HOST_DELAY}\n").expect("config file");
    fabric.start(i).expect("bgpd starts");
    i
}

/// Two meshed hosts (`edit` applied to both) with a container each, routes converged, and the
/// second host's container reaching the first's.
fn two_hosts(edit: impl Fn(&mut HostConfig)) -> Fabric {
    let mut fabric = Fabric::new().expect("fabric");
    for _ in 0..2 {
        add_host(&mut fabric, &edit);
    }
    for i in 0..2 {
        fabric.wait_established(i, 1, CONVERGE).expect("session");
        fabric.add_container(i).expect("container");
    }
    fabric.wait_converged(0, false, CONVERGE).expect("routes");
    let target = fabric.containers[0].ipv4().expect("IPv4").to_string();
    assert!(
        wait_until(CONVERGE, || fabric.containers[1].ns.ping(&target)),
        "{}",
        fabric.logs()
    );
    fabric
}

/// `/fabric/v1/alive/<host>`'s value, empty when the key is absent.
fn alive(fabric: &Fabric, host: usize) -> String {
    let key = format!("/fabric/v1/alive/{}", fabric.hosts[host].config.name);
    fabric
        .etcdctl(&["get", &key, "--print-value-only"])
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Drops everything host `i` sends to etcd's client port (BGP and forwarding untouched).
fn cut_from_etcd(fabric: &Fabric, i: usize) {
    let ns = &fabric.hosts[i].ns;
    ns.exec("nft", &["add", "table", "inet", "cut"]).unwrap();
    ns.exec(
        "nft",
        &["add chain inet cut out { type filter hook output priority 0 ; }"],
    )
    .unwrap();
    let rule = format!("add rule inet cut out ip daddr {ETCD_ADDRESS} tcp dport 2379 drop");
    ns.exec("nft", &[&rule]).unwrap();
}

/// One host loses etcd (only etcd) for longer than its liveness key lives and than IPAM's
/// dead-host delay plus two GC passes of the other host: its containers keep their traffic
/// (no ping lost beyond a second) and their addresses (the other host cannot take one), and it
/// keeps its blocks when etcd comes back.
#[test]
fn a_host_cut_from_etcd_keeps_its_traffic_and_its_addresses() {
    let fabric = two_hosts(|_| {});
    let target = fabric.containers[0].ipv4().expect("IPv4");
    let victim = target.to_string();
    let blocks = fabric.blocks(0).expect("host-1 blocks");
    let ping = ContinuousPing::start(&fabric.containers[1], target).expect("ping");

    cut_from_etcd(&fabric, 0);
    // The liveness key lapses: what used to take the node record, the peering and (after the
    // dead-host delay) the addresses with it.
    assert!(
        wait_until(CONVERGE, || alive(&fabric, 0).is_empty()),
        "host-1's liveness key outlived its lease"
    );
    sleep(GC_PASSES);
    let dup = Netns::new("dup").expect("namespace");
    let taken = fabric.routectl(
        1,
        &[
            "endpoint",
            "add",
            "dup",
            "--netns",
            dup.name(),
            "--ip",
            &victim,
        ],
    );
    let refused = taken
        .as_ref()
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        refused.contains("already assigned"),
        "host-2 assigned host-1's running container's address {victim}: {taken:?}\n{}",
        fabric.logs()
    );
    fabric.hosts[0]
        .ns
        .exec("nft", &["delete", "table", "inet", "cut"])
        .unwrap();
    assert!(
        wait_until(CONVERGE, || !alive(&fabric, 0).is_empty()),
        "host-1 did not come back:\n{}",
        fabric.log_tail(0)
    );
    let report = ping.finish().expect("ping report");
    eprintln!("pings to host-1's container across its etcd partition: {report:?}");
    assert!(report.received > 500, "too few replies: {report:?}");
    assert!(
        report.longest_gap <= Duration::from_secs(1),
        "pings lost for {:?} while host-1 could not reach etcd\n{}",
        report.longest_gap,
        fabric.logs()
    );
    assert_eq!(fabric.blocks(0).expect("host-1 blocks"), blocks);
    assert!(!fabric.kernel_route(0, &victim).is_empty());
}

/// bgpd is down for 30 s (an upgrade, a crash loop), well within graceful restart's 120 s: the
/// other host keeps its routes and no ping is lost beyond a second.
#[test]
fn a_bgpd_down_for_30s_keeps_its_traffic() {
    let mut fabric = two_hosts(|_| {});
    let target = fabric.containers[0].ipv4().expect("IPv4");
    let block = fabric.blocks(0).expect("host-1 blocks")[0].clone();
    let ping = ContinuousPing::start(&fabric.containers[1], target).expect("ping");
    fabric.kill(0);
    sleep(Duration::from_secs(30));
    assert!(
        !fabric.kernel_route(1, &block).is_empty(),
        "host-2 dropped host-1's block while its bgpd was down:\n{}",
        fabric.logs()
    );
    fabric.start(0).expect("restart");
    for i in 0..2 {
        fabric.wait_established(i, 1, CONVERGE).expect("session");
    }
    fabric.wait_converged(0, false, CONVERGE).expect("routes");
    // Pings on after the restart, so a loss it causes would show.
    sleep(Duration::from_secs(3));
    let report = ping.finish().expect("ping report");
    eprintln!("pings to host-1's container across a 30 s bgpd outage: {report:?}");
    assert!(report.received > 200, "too few replies: {report:?}");
    assert!(
        report.longest_gap <= Duration::from_secs(1),
        "pings lost for {:?}\n{}",
        report.longest_gap,
        fabric.logs()
    );
}

/// `routectl node delete` refuses a running host; a stopped one stays a member (its routes
/// leave the other kernels after its graceful-restart time, short here) until deleted, and
/// then its peer drops it and IPAM's GC reclaims its block and its container's address.
#[test]
fn a_stopped_host_stays_a_member_until_routectl_deletes_it() {
    let mut fabric = two_hosts(|c| c.graceful_restart = Some(3));
    let gone = fabric.blocks(1).expect("host-2 blocks");
    let refused = fabric.routectl(0, &["node", "delete", "host-2"]);
    let message = refused
        .as_ref()
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(message.contains("node host-2 is alive"), "{refused:?}");

    fabric.stop(1);
    let cleared = wait_until(CONVERGE, || {
        gone.iter().all(|b| fabric.kernel_route(0, b).is_empty())
    });
    assert!(
        cleared,
        "host-2's routes outlived its restart time:\n{}",
        fabric.logs()
    );
    let listed = |alive: bool| {
        fabric
            .routectl_json(0, &["nodes"])
            .ok()
            .and_then(|nodes| {
                let nodes = nodes.as_array()?.clone();
                nodes.into_iter().find(|n| n["name"] == "host-2")
            })
            .is_some_and(|n| n["alive"] == alive)
    };
    assert!(
        wait_until(CONVERGE, || listed(false)),
        "host-2 left the nodes or stayed alive"
    );
    let peer_listed = || {
        fabric
            .routectl_json(0, &["peers"])
            .ok()
            .and_then(|p| p.as_array().cloned())
            .is_some_and(|p| p.iter().any(|p| p["name"] == "host-2"))
    };
    assert!(peer_listed(), "host-1 dropped a host that was only stopped");

    let out = fabric
        .routectl(0, &["node", "delete", "host-2"])
        .expect("delete a stopped host");
    assert!(out.starts_with("node host-2 deleted"), "{out}");
    assert!(
        wait_until(CONVERGE, || !peer_listed()),
        "host-1 kept the deleted host's peer"
    );
    let handle = format!("/fabric/v1/handles/{}:eth0", fabric.containers[1].id);
    let reclaimed = wait_until(GC_PASSES + CONVERGE, || {
        let affinities = fabric.etcdctl(&[
            "get",
            "--prefix",
            "--keys-only",
            "/fabric/v1/affinities/host-2/",
        ]);
        let handles = fabric.etcdctl(&["get", "--keys-only", &handle]);
        matches!((affinities, handles), (Ok(a), Ok(h)) if a.trim().is_empty() && h.trim().is_empty())
    });
    assert!(
        reclaimed,
        "host-2's addresses were not reclaimed:\n{}",
        fabric.log_tail(0)
    );
}
