//! CNI with a real runtime: containerd + runc run a busybox container with `ctr run --cni`,
//! our `bgpd-cni` plugin asks the host's bgpd for the network. The container gets an address
//! from this host's block, reaches a container on another host over BGP-learned routes, and
//! its address is released when the container is deleted.
//!
//! Needs root, containerd, runc, busybox-static, and `cargo build -p bgpd -p routectl
//! -p bgpd-cni`. Writes into /opt/cni/bin and /etc/cni/net.d (where `ctr` looks) and removes
//! what it wrote; refuses to run if another CNI config is there.

use std::net::IpAddr;
use std::time::Duration;

use ipnetwork::IpNetwork;
use serde_json::Value;
use testkit::fabric::containerd::{CniInstall, Containerd};
use testkit::fabric::{Binaries, Fabric, Role};
use testkit::process::wait_until;

const CONVERGE: Duration = Duration::from_secs(60);

/// The IPv4 address of the endpoint bgpd on host `i` has for `container_id`, if any.
fn endpoint_ipv4(fabric: &Fabric, i: usize, container_id: &str) -> Option<IpAddr> {
    let list = fabric.routectl_json(i, &["endpoint", "list"]).ok()?;
    let ep = list
        .as_array()?
        .iter()
        .find(|e| e["container_id"] == container_id)?;
    ep["ips"]
        .as_array()?
        .iter()
        .filter_map(|ip| ip["address"].as_str()?.split('/').next()?.parse().ok())
        .find(IpAddr::is_ipv4)
}

/// Whether IPAM on host `i` lists `ip` as assigned.
fn assigned(fabric: &Fabric, i: usize, ip: IpAddr) -> bool {
    let view: Value = fabric
        .routectl_json(i, &["ipam", "show"])
        .unwrap_or_default();
    view["addresses"]
        .as_array()
        .is_some_and(|a| a.iter().any(|x| x["ip"] == ip.to_string()))
}

#[test]
fn ctr_run_cni_attaches_through_bgpd_and_reaches_another_host() {
    let bins = Binaries::locate().expect("binaries");
    let plugin = bins.cni_plugin().expect("bgpd-cni");
    let mut fabric = Fabric::new().expect("fabric");
    for _ in 0..2 {
        fabric.add_host(Role::Host).expect("host");
    }
    fabric.wait_established(0, 1, CONVERGE).expect("session");
    let peer = fabric.add_container(1).expect("container on host-2");
    let target = fabric.containers[peer].ipv4().expect("IPv4");
    fabric.wait_converged(0, false, CONVERGE).expect("routes");

    let socket = fabric.hosts[0].config.socket.clone().expect("socket path");
    let conflist = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "bgpd",
        "plugins": [{ "type": "bgpd-cni", "socket": socket }],
    });
    let _cni = CniInstall::new(&plugin, &conflist.to_string()).expect("install the plugin");
    let mut containerd = Containerd::start().expect("containerd");
    containerd.import_busybox().expect("import busybox");

    let id = format!("cni{}", std::process::id());
    let cni_id = format!("default-{id}"); // ctr names CNI containers <namespace>-<id>
    let mut ctr_run = containerd
        .run_with_cni(&id, &["sleep", "300"])
        .expect("ctr run");
    let running = wait_until(Duration::from_secs(30), || {
        containerd.task_pid(&id).is_some()
    });
    assert!(running, "task not running: {}", containerd.run_log(&id));

    // The plugin asked bgpd on host-1: an address from host-1's block.
    let mut ip = None;
    wait_until(CONVERGE, || {
        ip = endpoint_ipv4(&fabric, 0, &cni_id);
        ip.is_some()
    });
    let ip = ip.unwrap_or_else(|| {
        panic!(
            "bgpd has no endpoint {cni_id}: {}\n{}",
            containerd.run_log(&id),
            fabric.logs()
        )
    });
    let blocks = fabric.blocks(0).expect("blocks");
    assert!(
        blocks
            .iter()
            .filter_map(|b| b.parse::<IpNetwork>().ok())
            .any(|b| b.contains(ip)),
        "{ip} is not in host-1's blocks {blocks:?}"
    );
    assert!(assigned(&fabric, 0, ip), "{ip} not assigned in IPAM");
    let addrs = containerd
        .exec(&id, "addr", &["ip", "-4", "addr", "show", "eth0"])
        .expect("ip addr in the container");
    assert!(addrs.contains(&format!("{ip}/32")), "{addrs}");

    // It reaches the container on host-2 (routes learned over BGP).
    let ping = containerd.exec(
        &id,
        "ping",
        &["ping", "-c", "3", "-W", "2", &target.to_string()],
    );
    assert!(ping.is_ok(), "{ip} → {target}: {ping:?}\n{}", fabric.logs());

    // Deleting the container: ctr runs CNI DEL, bgpd detaches and releases the address.
    containerd
        .ctr(&["tasks", "kill", "--signal", "SIGKILL", &id])
        .expect("kill the task");
    assert!(
        wait_until(Duration::from_secs(30), || ctr_run.has_exited()),
        "ctr run did not finish: {}",
        containerd.run_log(&id)
    );
    let released = wait_until(CONVERGE, || {
        endpoint_ipv4(&fabric, 0, &cni_id).is_none() && !assigned(&fabric, 0, ip)
    });
    assert!(
        released,
        "{ip} still held after the container was deleted: {}\n{}",
        containerd.run_log(&id),
        fabric.logs()
    );
}
