//! A two-host fabric in namespaces; tests send traffic through it with `testkit::traffic`.
//!
//! ```text
//!   ca1 10.244.1.2 ─ cali-a1 ┐                        ┌ cali-b1 ─ cb1 10.244.2.2
//!   ca2 10.244.1.3 ─ cali-a2 ┤ host a ── a-b ─ b-a ── │ host b
//!                            └ a-out 172.31.0.1 ─ out-a 172.31.0.2  out (outside)
//!                                    fd31::1        fd31::2
//! ```
//! Containers are wired as Calico does it: a /32 on the container side, a default route out
//! of eth0, proxy ARP and a /32 host route on the host side. Hosts route each other's blocks
//! over the a-b link. The outside namespace knows no route to the pools, so only
//! masqueraded traffic from a container can get an answer from it.

#![allow(dead_code)] // each test binary uses a different part

use std::net::{IpAddr, SocketAddr};

use bgpd_policy::{Inputs, Nft, PolicyFile, Pool, RemoteEndpoint, WorkloadEndpoint, compile};
use testkit::netns::{Netns, link};

/// The namespaces of the fabric.
pub struct Fabric {
    pub a: Netns,
    pub b: Netns,
    pub out: Netns,
    pub ca1: Netns,
    pub ca2: Netns,
    pub cb1: Netns,
}

pub const CA1: &str = "10.244.1.2";
pub const CA2: &str = "10.244.1.3";
pub const CB1: &str = "10.244.2.2";
pub const A_OUT: &str = "172.31.0.1";
pub const OUT: &str = "172.31.0.2";
pub const A_OUT6: &str = "fd31::1";

fn container(host: &Netns, tag: &str, host_if: &str, ip: &str) -> Netns {
    let c = Netns::new(tag).expect("container namespace");
    link(host, host_if, &[], &c, "eth0", &[&format!("{ip}/32")]).expect("container veth");
    c.ip(&["route", "add", "default", "dev", "eth0"])
        .expect("container default route");
    host.sysctl(&format!("net.ipv4.conf.{host_if}.proxy_arp"), "1")
        .expect("proxy_arp");
    host.sysctl(&format!("net.ipv4.neigh.{host_if}.proxy_delay"), "0")
        .expect("proxy_delay");
    host.ip(&["route", "add", &format!("{ip}/32"), "dev", host_if])
        .expect("host route to container");
    c
}

impl Fabric {
    /// Builds the topology; every namespace goes away when the fabric drops.
    pub fn new() -> Fabric {
        let a = Netns::new("ha").expect("host a");
        let b = Netns::new("hb").expect("host b");
        let out = Netns::new("out").expect("outside");
        for h in [&a, &b] {
            h.sysctl("net.ipv4.ip_forward", "1").expect("forwarding");
        }
        link(&a, "a-b", &["10.10.0.1/24"], &b, "b-a", &["10.10.0.2/24"]).expect("underlay");
        link(
            &a,
            "a-out",
            &["172.31.0.1/24", "fd31::1/64"],
            &out,
            "out-a",
            &["172.31.0.2/24", "fd31::2/64"],
        )
        .expect("outside link");
        a.ip(&["route", "add", "10.244.2.0/24", "via", "10.10.0.2"])
            .expect("route to b's block");
        b.ip(&["route", "add", "10.244.1.0/24", "via", "10.10.0.1"])
            .expect("route to a's block");
        let ca1 = container(&a, "ca1", "cali-a1", CA1);
        let ca2 = container(&a, "ca2", "cali-a2", CA2);
        let cb1 = container(&b, "cb1", "cali-b1", CB1);
        Fabric {
            a,
            b,
            out,
            ca1,
            ca2,
            cb1,
        }
    }
}

/// Labels from pairs.
pub fn labels(pairs: &[(&str, &str)]) -> bgpd_policy::selector::Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A workload endpoint.
pub fn workload(iface: &str, ip: &str, pairs: &[(&str, &str)]) -> WorkloadEndpoint {
    WorkloadEndpoint {
        interface: iface.try_into().expect("interface name"),
        ips: vec![ip.parse().expect("ip")],
        labels: labels(pairs),
    }
}

/// A container on another host.
pub fn remote(ip: &str, pairs: &[(&str, &str)]) -> RemoteEndpoint {
    RemoteEndpoint {
        ips: vec![ip.parse().expect("ip")],
        labels: labels(pairs),
    }
}

/// The fabric's pool, nat-outgoing or not.
pub fn pool(nat_outgoing: bool) -> Pool {
    Pool {
        name: "fabric".try_into().expect("pool name"),
        cidr: "10.244.0.0/16".parse().expect("cidr"),
        nat_outgoing,
    }
}

/// Parses `toml`, compiles it with the given endpoints and pools, and applies it in `host`.
pub fn apply(
    host: &Netns,
    toml: &str,
    workloads: &[WorkloadEndpoint],
    remote: &[RemoteEndpoint],
    pools: &[Pool],
) {
    let file = PolicyFile::parse(toml, "test.toml").unwrap_or_else(|e| panic!("{e}"));
    let ruleset = compile(&Inputs {
        file: &file,
        workloads,
        remote,
        pools,
    })
    .unwrap_or_else(|e| panic!("{e}"));
    Nft::in_netns(host.name())
        .apply(&ruleset)
        .unwrap_or_else(|e| panic!("{e}\n{ruleset}"));
}

/// One of the address constants above, parsed.
pub fn ip(text: &str) -> IpAddr {
    text.parse().expect("ip address")
}

/// `ip:port` as a socket address.
pub fn at(text: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip(text), port)
}
