//! Keeps the tester from rotting: `bgpbench` against BIRD as route reflector in namespaces,
//! small enough for CI. It must count every route, each correctly reflected.

use std::net::{IpAddr, Ipv4Addr};

use serde_json::Value;
use testkit::netns::{Netns, link};
use testkit::peers::bird::Bird;
use testkit::peers::{BgpPeer, Neighbor, PeerConfig};

const RR: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const INJECTOR: Ipv4Addr = Ipv4Addr::new(10, 77, 1, 1);
const MONITOR: Ipv4Addr = Ipv4Addr::new(10, 77, 1, 2);
const CLIENTS: u8 = 8;

fn client(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 77, 2, 1 + i)
}

/// BIRD reflecting for the injector, the monitor and the fan-out clients, all passive.
fn reflector(ns: &Netns) -> Bird {
    let sources = [INJECTOR, MONITOR]
        .into_iter()
        .chain((0..CLIENTS).map(client));
    let config = sources.fold(
        PeerConfig::new(65000, RR)
            .cluster_id(RR)
            .listen_address(IpAddr::V4(RR)),
        |c, addr| {
            c.neighbor(
                Neighbor::new(IpAddr::V4(addr), 65000)
                    .local_address(IpAddr::V4(RR))
                    .passive()
                    .rr_client(),
            )
        },
    );
    Bird::start(ns, config).expect("BIRD starts")
}

/// Runs `bgpbench args…` in the tester namespace; returns its JSON line.
fn bgpbench(ns: &Netns, bird: &Bird, args: &[&str]) -> Value {
    let pid = bird.daemon().pid().expect("BIRD runs").to_string();
    let mut all = args.to_vec();
    all.extend([
        "--pid",
        &pid,
        "--label",
        "bird",
        "--settle",
        "0.2",
        "--timeout",
        "20",
    ]);
    let out = ns
        .cmd(env!("CARGO_BIN_EXE_bgpbench"))
        .args(&all)
        .output()
        .expect("bgpbench runs");
    let line = String::from_utf8_lossy(&out.stdout);
    let run: Value = serde_json::from_str(line.trim()).unwrap_or_else(|e| {
        panic!(
            "bgpbench printed no JSON ({e}): {line}\n{}\n{}",
            String::from_utf8_lossy(&out.stderr),
            bird.daemon().logs()
        )
    });
    assert_eq!(run["ok"], true, "{run}\n{}", bird.daemon().logs());
    run
}

#[test]
#[serial_test::serial]
fn bird_reflects_every_route_with_originator_and_cluster_list() {
    let (rr_ns, tester_ns) = (Netns::new("rr").unwrap(), Netns::new("tst").unwrap());
    let mut tester_addrs: Vec<String> = [INJECTOR, MONITOR]
        .into_iter()
        .chain((0..CLIENTS).map(client))
        .map(|a| format!("{a}/16"))
        .collect();
    tester_addrs.sort();
    let tester_addrs: Vec<&str> = tester_addrs.iter().map(String::as_str).collect();
    let rr = format!("{RR}/16");
    link(&rr_ns, "vr", &[&rr], &tester_ns, "vt", &tester_addrs).unwrap();
    let bird = reflector(&rr_ns);

    let run = bgpbench(&tester_ns, &bird, &["propagation", "--prefixes", "2000"]);
    assert_eq!(run["received"], 2000);
    assert_eq!(run["tally"]["held"], 2000);
    assert_eq!(run["tally"]["bad_reflection"], 0);
    assert!(run["seconds"].as_f64().is_some_and(|s| s > 0.0));
    assert!(
        run["reflector_peak_rss_mib"]
            .as_f64()
            .is_some_and(|m| m > 0.0)
    );

    let clients = CLIENTS.to_string();
    let first = client(0).to_string();
    let run = bgpbench(
        &tester_ns,
        &bird,
        &["fanout", "--clients", &clients, "--first-client", &first],
    );
    let s = u64::from(CLIENTS);
    assert_eq!(run["received"], s * (s - 1));
    assert_eq!(run["tally"]["bad_reflection"], 0);
}
