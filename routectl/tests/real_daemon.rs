//! routectl against the real bgpd (and its etcd) in a namespace: every command's table and
//! JSON, and a container attached and detached through `routectl endpoint`.
//! Needs the bgpd binary: `cargo build -p bgpd` first (or `BGPD_BIN`).

use std::process::Output;

use bgpd_api::{Endpoint, FibSource, IpamView, Peer, Routes, Status};
use testkit::netns::Netns;
use testkit::single_host::{ADDRESS, SingleHost};

/// A configured peer's address, on the host's underlay, where nobody answers.
const TOR: &str = "10.97.0.99";

/// routectl reading the host's own config file (socket and etcd), run inside its namespace so
/// etcd (on the namespace's loopback) is reachable too.
fn routectl(host: &SingleHost, args: &[&str]) -> Output {
    host.ns()
        .cmd(env!("CARGO_BIN_EXE_routectl"))
        .arg("--config")
        .arg(host.config())
        .args(args)
        .env_remove("BGPD_SOCKET")
        .env_remove("ETCD_ENDPOINTS")
        .output()
        .expect("run routectl")
}

fn ok(host: &SingleHost, args: &[&str]) -> String {
    let o = routectl(host, args);
    assert!(
        o.status.success(),
        "routectl {args:?}: exit {:?}: {}\nbgpd log:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr),
        host.log()
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn json<T: serde::de::DeserializeOwned>(host: &SingleHost, args: &[&str]) -> T {
    let mut all = vec!["-o", "json"];
    all.extend_from_slice(args);
    let out = ok(host, &all);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("routectl {args:?}: {e}: {out}"))
}

#[test]
#[serial_test::serial]
fn every_command_against_the_real_daemon() {
    // A configured peer nobody answers for (inside the namespace, nothing leaves it).
    let host = SingleHost::start_with(&format!(
        "\n[[bgp.peers]]\nname = \"tor-1\"\naddress = \"{TOR}\"\nasn = 65000\n"
    ))
    .expect("bgpd host");

    let status: Status = json(&host, &["status"]);
    assert_eq!(status.node, "host-a");
    assert_eq!(status.address.to_string(), ADDRESS);
    assert!(status.etcd.reachable);
    let block = status.blocks[0].cidr;
    let screen = ok(&host, &["status"]);
    assert!(
        screen.starts_with(&format!(
            "node     host-a (host), AS 64512, router id {ADDRESS}, address {ADDRESS}\n"
        )),
        "{screen}"
    );
    assert!(screen.contains(&block.to_string()), "{screen}");
    assert!(screen.contains("etcd     reachable"), "{screen}");

    let peers: Vec<Peer> = json(&host, &["peers"]);
    assert_eq!(peers.len(), 1, "{peers:?}");
    assert_eq!(peers[0].address.to_string(), TOR);
    assert_ne!(peers[0].state, "Established");
    let table = ok(&host, &["peers"]);
    let row = table.lines().nth(1).unwrap_or_default().to_string();
    assert!(
        row.starts_with(&format!("{TOR}  tor-1  configured  65000  ")),
        "{table}"
    );
    let detail = ok(&host, &["peer", TOR]);
    assert!(
        detail.starts_with(&format!("BGP peer {TOR}\n  name              tor-1\n")),
        "{detail}"
    );
    assert!(detail.contains("last notification received: -"), "{detail}");
    let one: Peer = json(&host, &["peer", TOR]);
    assert_eq!(one.established_count, 0);

    // A container through routectl: addresses from this host's block, a host route in the FIB.
    let container = Netns::new("ctr").expect("container netns");
    let netns = container.path();
    let endpoints: Vec<Endpoint> = json(
        &host,
        &[
            "endpoint",
            "add",
            "c0ffee",
            "--netns",
            &netns.to_string_lossy(),
        ],
    );
    let ip = endpoints[0].ips[0].address.ip();
    assert!(block.contains(ip), "{ip} not in {block}");
    assert!(
        container
            .exec("ip", &["-4", "addr", "show", "dev", "eth0"])
            .unwrap()
            .contains(&ip.to_string())
    );
    let listed: Vec<Endpoint> = json(&host, &["endpoint", "list"]);
    assert_eq!(listed.len(), 1);
    let routes: Routes = json(&host, &["routes"]);
    assert!(
        routes
            .fib
            .iter()
            .any(|f| f.source == FibSource::Endpoint && f.prefix.ip() == ip),
        "{routes:?}"
    );
    assert!(
        routes.rib.iter().any(|r| r.prefix == block && r.best),
        "{routes:?}"
    );
    let table = ok(&host, &["routes", &block.to_string()]);
    assert!(table.contains(&format!("{ip}/32")), "{table}");
    let ipam: IpamView = json(&host, &["ipam", "show"]);
    assert!(
        ipam.addresses
            .iter()
            .any(|a| a.ip == ip && a.handle.starts_with("c0ffee"))
    );

    // etcd's view of the same: the node record bgpd keeps, the pool, a clean check.
    let nodes = ok(&host, &["nodes"]);
    assert!(
        nodes.contains(&format!("host-a  yes    {ADDRESS}  64512")),
        "{nodes}"
    );
    assert!(nodes.contains(&format!("{block} (1/")), "{nodes}");
    let pools = ok(&host, &["ipam", "pools"]);
    assert!(pools.contains("pool4"), "{pools}");
    let check = ok(&host, &["ipam", "check"]);
    assert!(check.ends_with("no problems found\n"), "{check}");

    // Detach: the addresses go back, twice is fine.
    let out = ok(&host, &["endpoint", "del", "c0ffee"]);
    assert_eq!(out, format!("c0ffee/eth0: removed, released {ip}\n"));
    let out = ok(&host, &["endpoint", "del", "c0ffee"]);
    assert_eq!(out, "c0ffee/eth0: nothing to remove\n");
    assert_eq!(ok(&host, &["endpoint", "list"]), "no endpoints\n");
}

#[test]
#[serial_test::serial]
fn policy_apply_goes_through_the_daemons_reload() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policy.toml");
    let allow = "[[policy]]\nname = \"web\"\nselector = \"all()\"\n\n[[policy.ingress]]\naction = \"allow\"\nprotocol = \"tcp\"\ndestination = { ports = [80] }\n";
    std::fs::write(&file, allow).unwrap();
    let host = SingleHost::start_with(&format!("\n[policy]\nfile = \"{}\"\n", file.display()))
        .expect("bgpd host");
    let container = Netns::new("pctr").expect("container netns");
    ok(
        &host,
        &[
            "endpoint",
            "add",
            "p1",
            "--netns",
            &container.path().to_string_lossy(),
        ],
    );

    // bgpd applied its policy; routectl shows who governs the endpoint and reads the counters.
    let show = ok(&host, &["policy", "show"]);
    assert!(show.contains("ingress    web → default deny"), "{show}");
    let counters = ok(&host, &["policy", "counters"]);
    assert!(counters.contains("policy web ingress rule 0"), "{counters}");

    // A new rule in the file: apply checks it, bgpd reloads and applies it.
    std::fs::write(
        &file,
        format!("{allow}\n[[policy.ingress]]\naction = \"allow\"\nprotocol = \"tcp\"\ndestination = {{ ports = [443] }}\n"),
    )
    .unwrap();
    let out = ok(&host, &["policy", "apply"]);
    assert!(
        out.contains("applied: policy file re-read and applied"),
        "{out}\n{}",
        host.log()
    );
    let counters = ok(&host, &["policy", "counters"]);
    assert!(counters.contains("policy web ingress rule 1"), "{counters}");

    // A broken file is refused by routectl before bgpd is asked; the running table stays.
    std::fs::write(&file, "[[policy]]\nname = 5\n").unwrap();
    let o = routectl(&host, &["policy", "apply"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("policy.toml:2"));
    let counters = ok(&host, &["policy", "counters"]);
    assert!(counters.contains("policy web ingress rule 1"), "{counters}");
}
