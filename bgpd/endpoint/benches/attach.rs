//! Time to attach and detach container endpoints: ours against the same plumbing done with
//! `ip` and `sysctl` commands (what a shell CNI plugin does), in the same run.
//!
//! `cargo bench -p bgpd-endpoint --bench attach` as root; `BENCH_ENDPOINTS` sets how many
//! containers (default 40). Namespaces are made by testkit and removed at the end.

use std::time::{Duration, Instant};

use bgpd_endpoint::{
    ContainerId, EndpointSpec, Endpoints, IfName, Mtu, NetnsRef, RouteTag, host_ifname,
};
use testkit::netns::Netns;

const TAG: RouteTag = RouteTag {
    protocol: 201,
    table: 254,
};

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn address(i: usize) -> String {
    format!("10.244.{}.{}", i / 200, i % 200 + 2)
}

/// Attach, reattach (a no-op) and detach of every container with the library, from a thread
/// inside the host namespace; per-call durations.
fn ours(host: &Netns, containers: &[Netns]) -> [Vec<Duration>; 3] {
    testkit::traffic::in_ns(host, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let endpoints = Endpoints::new(TAG).expect("netlink");
            let specs: Vec<EndpointSpec> = containers
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    EndpointSpec::new(
                        NetnsRef::Name(c.name().to_string()),
                        ContainerId::new(&format!("ours-{i}")).expect("id"),
                        IfName::default(),
                        vec![address(i).parse().expect("address")],
                        Mtu::default(),
                    )
                    .expect("spec")
                })
                .collect();
            let mut phases = [Vec::new(), Vec::new(), Vec::new()];
            for (phase, samples) in phases.iter_mut().enumerate() {
                for spec in &specs {
                    let start = Instant::now();
                    if phase < 2 {
                        endpoints.attach(spec).await.expect("attach");
                    } else {
                        endpoints
                            .detach(spec.container_id(), spec.ifname())
                            .await
                            .expect("detach");
                    }
                    samples.push(start.elapsed());
                }
            }
            phases
        })
    })
    .expect("enter host namespace")
}

/// The same IPv4 plumbing as `ip`/`sysctl` commands; attach and detach durations.
fn ip_commands(host: &Netns, containers: &[Netns]) -> [Vec<Duration>; 2] {
    let mut attach = Vec::new();
    let mut detach = Vec::new();
    for (i, c) in containers.iter().enumerate() {
        let h = host_ifname(
            &ContainerId::new(&format!("ip-{i}")).expect("id"),
            &IfName::default(),
        );
        let h = h.as_str();
        let addr = address(i);
        let host_addr = format!("{addr}/32");
        let start = Instant::now();
        #[rustfmt::skip]
        let steps: [(&Netns, &[&str]); 6] = [
            (host, &["link", "add", h, "mtu", "1500", "type", "veth", "peer", "name", "eth0",
                     "mtu", "1500", "netns", c.name()]),
            (host, &["link", "set", h, "up"]),
            (host, &["route", "replace", &host_addr, "dev", h, "scope", "link", "proto", "201"]),
            (c, &["link", "set", "eth0", "up"]),
            (c, &["addr", "add", &host_addr, "dev", "eth0"]),
            (c, &["route", "replace", "default", "via", "169.254.1.1", "dev", "eth0", "onlink"]),
        ];
        for (ns, args) in steps {
            ns.ip(args).expect("ip");
        }
        host.exec(
            "sysctl",
            &[
                "-qw",
                &format!("net.ipv4.conf.{h}.forwarding=1"),
                &format!("net.ipv4.conf.{h}.proxy_arp=1"),
                &format!("net.ipv4.neigh.{h}.proxy_delay=0"),
            ],
        )
        .expect("sysctl");
        c.ip(&["link", "set", "lo", "up"]).expect("lo");
        attach.push(start.elapsed());
        let start = Instant::now();
        host.ip(&["link", "del", h]).expect("ip link del");
        detach.push(start.elapsed());
    }
    [attach, detach]
}

fn main() {
    // `cargo bench` passes --bench; this harness takes no arguments.
    let n: usize = std::env::var("BENCH_ENDPOINTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let host = Netns::new("bhost").expect("host namespace");
    host.sysctl("net.ipv4.ip_forward", "1").expect("forwarding");
    let containers: Vec<Netns> = (0..n)
        .map(|i| Netns::new(&format!("b{i}")).expect("container namespace"))
        .collect();

    let [attach, reattach, detach] = ours(&host, &containers);
    let [ip_attach, ip_detach] = ip_commands(&host, &containers);
    let ratio = |theirs: Duration, ours: Duration| theirs.as_secs_f64() / ours.as_secs_f64();

    println!("{n} containers, IPv4, median per endpoint");
    println!("| operation | bgpd-endpoint | ip + sysctl commands | ratio |");
    println!("| --- | --- | --- | --- |");
    let (a, ia) = (median(attach), median(ip_attach));
    println!("| attach | {} | {} | {:.1}x |", ms(a), ms(ia), ratio(ia, a));
    println!(
        "| attach again (no change) | {} | — | — |",
        ms(median(reattach))
    );
    let (d, id) = (median(detach), median(ip_detach));
    println!("| detach | {} | {} | {:.1}x |", ms(d), ms(id), ratio(id, d));
}
