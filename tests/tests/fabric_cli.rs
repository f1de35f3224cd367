//! End to end: bgpd refuses bad configuration files with file:line and a non-zero exit
//! before touching the host, and every `routectl -o json` command prints JSON.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use testkit::fabric::{Binaries, Fabric, Role};
use testkit::netns::Netns;

/// What bgpd could change in a namespace: links, addresses, routes, rules, nftables.
fn snapshot(ns: &Netns) -> String {
    [
        ns.ip(&["-d", "link", "show"]),
        ns.ip(&["addr", "show"]),
        ns.ip(&["-4", "route", "show", "table", "all"]),
        ns.ip(&["-6", "route", "show", "table", "all"]),
        ns.ip(&["rule", "show"]),
        ns.exec("nft", &["list", "ruleset"]),
        ns.exec(
            "sysctl",
            &["net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"],
        ),
    ]
    .into_iter()
    .map(|r| r.unwrap_or_else(|e| e.to_string()))
    .collect::<Vec<_>>()
    .join("\n")
}

fn refused(bgpd: &Path, ns: &Netns, text: &str, line: usize, what: &str) {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("bgpd.toml");
    std::fs::write(&file, text).expect("write");
    let before = snapshot(ns);
    let out = ns
        .cmd(&bgpd.to_string_lossy())
        .arg("--config")
        .arg(&file)
        .output()
        .expect("run bgpd");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{what}: bgpd accepted it: {stderr}");
    let at = format!("{}:{line}:", file.display());
    assert!(stderr.contains(&at), "{what}: no {at} in: {stderr}");
    assert_eq!(before, snapshot(ns), "{what}: bgpd changed the host");
}

#[test]
fn bad_config_files_are_refused_with_their_location() {
    let bins = Binaries::locate().expect("binaries");
    let ns = Netns::new("cfg").expect("namespace");
    let good_head = "[node]\nname = \"h\"\nasn = 64512\naddress = { ip = \"10.99.0.11\" }\n";
    refused(
        &bins.bgpd,
        &ns,
        &format!("{good_head}\n[bgp\nmesh = true\n"),
        6,
        "malformed TOML",
    );
    refused(
        &bins.bgpd,
        &ns,
        &format!("{good_head}\n[bgp]\nmesh = true\nmesh_typo = false\n"),
        8,
        "unknown key",
    );
    // The same check without a daemon: `bgpd --check`.
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, format!("{good_head}colour = \"blue\"\n")).expect("write");
    let out = Command::new(&bins.bgpd)
        .args(["--check", "--config"])
        .arg(&file)
        .output()
        .expect("bgpd --check");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("{}:5:", file.display())));
}

#[test]
fn routectl_json_output_parses() {
    let mut fabric = Fabric::new().expect("fabric");
    for _ in 0..2 {
        fabric.add_host(Role::Host).expect("host");
    }
    fabric
        .wait_established(0, 1, Duration::from_secs(60))
        .expect("session");
    fabric.add_container(0).expect("container");
    let status = fabric.routectl_json(0, &["status"]).expect("status");
    assert_eq!(status["node"], "host-1");
    assert_eq!(status["asn"], 64512);
    assert!(
        status["blocks"].as_array().is_some_and(|b| !b.is_empty()),
        "{status}"
    );
    for args in [
        &["peers"][..],
        &["routes"],
        &["routes", "10.244.0.0/16"],
        &["nodes"],
        &["ipam", "show"],
        &["ipam", "pools"],
        &["endpoint", "list"],
    ] {
        let v = fabric
            .routectl_json(0, args)
            .unwrap_or_else(|e| panic!("routectl -o json {args:?}: {e}"));
        assert!(v.is_array() || v.is_object(), "{args:?}: {v}");
    }
    let peers = fabric.routectl_json(0, &["peers"]).expect("peers");
    assert_eq!(
        peers[0]["address"],
        fabric.hosts[1].config.address.to_string()
    );
    let endpoints = fabric
        .routectl_json(0, &["endpoint", "list"])
        .expect("endpoints");
    assert_eq!(endpoints[0]["container_id"], fabric.containers[0].id);

    // `endpoint del` reports what it released, and IPAM no longer holds it.
    let mut ips: Vec<String> = fabric.containers[0]
        .ips
        .iter()
        .map(|ip| ip.to_string())
        .collect();
    ips.sort();
    let printed = fabric.remove_container(0).expect("endpoint del");
    let report = printed.get(0).unwrap_or(&printed);
    assert_eq!(report["removed"], true, "{report}");
    let mut released: Vec<String> = report["released"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter_map(|ip| ip.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    released.sort();
    assert_eq!(released, ips, "{report}");
    let ipam = fabric
        .routectl_json(0, &["ipam", "show"])
        .expect("ipam show");
    for ip in &ips {
        let still = ipam["addresses"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x["ip"] == ip.as_str()));
        assert!(!still, "{ip} still assigned: {ipam}");
    }
}
