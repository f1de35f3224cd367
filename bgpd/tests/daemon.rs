//! The daemon end to end: real etcd and real namespaces, the real `bgpd` binary, the control
//! socket, kernel routes and pings between containers on different hosts.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{
    PATIENCE, add_host, add_reflector, address, attach, attach_again, block, block_on, client, lab,
    meshed_pair, status, wait_established,
};
use serial_test::serial;
use testkit::fabric::{HostConfig, Pool, underlay_v6};
use testkit::netns::Netns;
use testkit::process::wait_until;

#[test]
#[serial]
fn a_bad_config_exits_non_zero_naming_the_place_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let ns = Netns::new("badcfg").unwrap();
    let socket = dir.path().join("bgpd.sock");
    let cases = [
        (
            "unknown.toml",
            format!(
                "[node]\nname = \"a\"\nasn = 64512\nbogus = 1\n[api]\nsocket = \"{}\"\n",
                socket.display()
            ),
            "unknown.toml:4:",
        ),
        (
            "malformed.toml",
            format!(
                "[node]\nname = \"a\"\nasn = = 64512\n[api]\nsocket = \"{}\"\n",
                socket.display()
            ),
            "malformed.toml:3:",
        ),
    ];
    for (file, text, place) in cases {
        let path = dir.path().join(file);
        std::fs::write(&path, text).unwrap();
        let before = ns.ip(&["route", "show", "table", "all"]).unwrap();
        let out = ns
            .cmd(env!("CARGO_BIN_EXE_bgpd"))
            .arg("--config")
            .arg(&path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(place), "{file}: {stderr}");
        assert_eq!(ns.ip(&["route", "show", "table", "all"]).unwrap(), before);
        assert!(!socket.exists(), "a socket was created");
    }
}

#[test]
#[serial]
fn one_host_registers_claims_blackholes_and_answers() {
    let mut lab = lab();
    let h = add_host(&mut lab, true, |_| {});
    lab.start(h).unwrap();
    let status = status(&lab, h);
    let name = lab.hosts[h].config.name.clone();
    assert_eq!(status.node, name);
    assert_eq!(status.asn, 64512);
    assert_eq!(status.blocks.len(), 1, "{status:?}");
    let block = status.blocks[0].cidr.to_string();
    assert!(
        block.starts_with("10.244.") && block.ends_with("/26"),
        "{block}"
    );
    // The node record is in etcd, without a lease (it is persistent); beside it the liveness
    // key, under one.
    let key = format!("/fabric/v1/nodes/{name}");
    let record = lab.etcdctl(&["get", &key, "--print-value-only"]).unwrap();
    let record: serde_json::Value = serde_json::from_str(record.trim()).unwrap();
    assert_eq!(record["address"], address(&lab, h));
    assert_eq!(record["role"], "host");
    let lease_of = |key: &str| {
        let reply = lab.etcdctl(&["get", key, "-w", "json"]).unwrap();
        let reply: serde_json::Value = serde_json::from_str(reply.trim()).unwrap();
        reply["kvs"][0]["lease"].as_i64().unwrap_or(0)
    };
    assert_eq!(lease_of(&key), 0, "the node record is under a lease");
    let alive = format!("/fabric/v1/alive/{name}");
    assert_ne!(lease_of(&alive), 0, "no liveness key under a lease");
    let ok = wait_until(PATIENCE, || {
        lab.bgpd_routes(h).contains(&format!("blackhole {block}"))
    });
    assert!(ok, "no blackhole for {block}: {}", lab.bgpd_routes(h));
    assert!(wait_until(PATIENCE, || common::status(&lab, h)
        .kernel
        .in_sync));
    // The socket is root-only and answers curl.
    let mode = std::fs::metadata(lab.hosts[h].config.control_socket()).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o600
    );
    let out = Command::new("curl")
        .args(["-s", "--unix-socket"])
        .arg(lab.hosts[h].config.control_socket())
        .arg("http://localhost/v1/status")
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["node"], name.as_str());
    // Errors come back as JSON bodies with a kind.
    let err = block_on(client(&lab, h).detach("bad/id", "eth0"));
    assert!(err.is_err());
}

#[test]
#[serial]
fn two_hosts_mesh_and_their_containers_ping() {
    let mut lab = lab();
    let (a, b) = meshed_pair(&mut lab, |_| {});
    wait_established(&lab, b, 1);
    let (block_a, block_b) = (block(&lab, a), block(&lab, b));
    let learned = wait_until(PATIENCE, || {
        lab.bgpd_routes(a)
            .contains(&format!("{block_b} via {}", address(&lab, b)))
            && lab
                .bgpd_routes(b)
                .contains(&format!("{block_a} via {}", address(&lab, a)))
    });
    assert!(
        learned,
        "a: {}\nb: {}",
        lab.bgpd_routes(a),
        lab.bgpd_routes(b)
    );

    let (ca, ea) = attach(&mut lab, a, "ctr-a");
    let (cb, eb) = attach(&mut lab, b, "ctr-b");
    let ip_a = ea.ips[0].address.ip();
    let ip_b = eb.ips[0].address.ip();
    assert!(ea.ips[0].address.to_string().ends_with("/32"));
    let net_a: ipnetwork::IpNetwork = block_a.parse().unwrap();
    assert!(net_a.contains(ip_a), "{ip_a} not in {block_a}");
    assert_eq!(ea.ips[0].gateway.to_string(), "169.254.1.1");
    assert!(
        lab.bgpd_routes(a)
            .contains(&format!("{ip_a} dev {}", ea.host_ifname))
    );
    let ping = wait_until(PATIENCE, || {
        lab.containers[ca].ns.ping(&ip_b.to_string())
            && lab.containers[cb].ns.ping(&ip_a.to_string())
    });
    assert!(ping, "containers cannot reach each other");
    // Same request again: same address (idempotent).
    let again = attach_again(&lab, a, "ctr-a", ca);
    assert_eq!(again.ips, ea.ips);
    // The listing and IPAM view show it.
    let listed = block_on(client(&lab, a).endpoints()).unwrap();
    assert_eq!(listed.len(), 1);
    let ipam = block_on(client(&lab, a).ipam()).unwrap();
    assert_eq!(ipam.addresses[0].ip, ip_a);
    // Detach releases the address and removes the host route.
    let report = block_on(client(&lab, a).detach("ctr-a", "eth0")).unwrap();
    assert!(report.removed);
    assert_eq!(report.released, vec![ip_a]);
    assert!(wait_until(PATIENCE, || !lab
        .bgpd_routes(a)
        .contains(&format!("{ip_a} dev"))));
    let report = block_on(client(&lab, a).detach("ctr-a", "eth0")).unwrap();
    assert!(!report.removed && report.released.is_empty());
}

#[test]
#[serial]
fn hosts_peer_only_with_a_reflector_found_in_etcd() {
    let mut lab = lab();
    let rr = add_reflector(&mut lab);
    let hosts: Vec<usize> = (0..3).map(|_| add_host(&mut lab, true, |_| {})).collect();
    lab.start(rr).unwrap();
    for &h in &hosts {
        lab.start(h).unwrap();
    }
    wait_established(&lab, rr, 3);
    let status = status(&lab, rr);
    assert_eq!(status.role, bgpd_api::Role::Reflector);
    assert!(status.blocks.is_empty(), "a reflector claims no block");
    assert!(
        status
            .peers
            .iter()
            .all(|p| p.kind == bgpd_api::PeerKind::ReflectorClient)
    );
    for &h in &hosts {
        wait_established(&lab, h, 1);
        let peers = block_on(client(&lab, h).peers()).unwrap();
        assert_eq!(
            peers.len(),
            1,
            "host {h} peers with more than the reflector"
        );
        assert_eq!(peers[0].kind, bgpd_api::PeerKind::Reflector);
        assert_eq!(peers[0].address.to_string(), address(&lab, rr));
    }
    // Every host learns every other host's block with the originator's next hop, and the
    // reflected routes carry ORIGINATOR_ID and CLUSTER_LIST.
    for &h in &hosts {
        for &o in &hosts {
            if h == o {
                continue;
            }
            let want = format!("{} via {}", block(&lab, o), address(&lab, o));
            assert!(
                wait_until(PATIENCE, || lab.bgpd_routes(h).contains(&want)),
                "host {h} lacks {want}: {}",
                lab.bgpd_routes(h)
            );
        }
    }
    let routes = block_on(client(&lab, hosts[0]).routes(Some("10.244.0.0/16"))).unwrap();
    let reflected: Vec<_> = routes.rib.iter().filter(|r| r.from.is_some()).collect();
    assert_eq!(reflected.len(), 2, "{routes:?}");
    assert!(
        reflected
            .iter()
            .all(|r| r.originator_id.is_some() && r.cluster_list.len() == 1)
    );
    // Containers on two hosts reach each other through routes learned from the reflector.
    let (c1, _) = attach(&mut lab, hosts[0], "r1");
    let (_, e2) = attach(&mut lab, hosts[2], "r2");
    let target = e2.ips[0].address.ip().to_string();
    assert!(wait_until(PATIENCE, || lab.containers[c1].ns.ping(&target)));
}

#[test]
#[serial]
fn policy_file_governs_containers_and_metrics_are_served() {
    let mut lab = lab();
    let policy = lab.dir().join("policy.toml");
    std::fs::write(
        &policy,
        r#"
[[policy]]
name = "web-only"
selector = "all()"
types = ["ingress"]

[[policy.ingress]]
action = "allow"
protocol = "tcp"
destination = { ports = [80] }
"#,
    )
    .unwrap();
    let a = add_host(&mut lab, true, |c| {
        c.policy = Some(policy.clone());
        c.metrics = Some("127.0.0.1:9179".parse().unwrap());
    });
    let b = add_host(&mut lab, true, |_| {});
    lab.start(a).unwrap();
    lab.start(b).unwrap();
    wait_established(&lab, a, 1);
    let (ca, ea) = attach(&mut lab, a, "pa");
    let (cb, eb) = attach(&mut lab, b, "pb");
    let (ip_a, ip_b) = (
        ea.ips[0].address.ip().to_string(),
        eb.ips[0].address.ip().to_string(),
    );
    // Egress from a's container is not governed: it reaches b's, and the reply comes back.
    assert!(wait_until(PATIENCE, || lab.containers[ca].ns.ping(&ip_b)));
    // Ingress to a's container allows only TCP 80: b's ping is dropped.
    assert!(
        !lab.containers[cb].ns.ping(&ip_a),
        "the policy did not stop ICMP"
    );
    let table = lab.hosts[a].ns.exec("nft", &["list", "tables"]).unwrap();
    assert!(table.contains("inet"), "{table}");

    let metrics = lab.hosts[a]
        .ns
        .exec("curl", &["-s", "http://127.0.0.1:9179/metrics"])
        .unwrap();
    for name in [
        "bgpd_peers_up 1",
        "bgpd_ipam_blocks 1",
        "bgpd_ipam_addresses 1",
        "bgpd_kernel_routes_wanted",
        "bgpd_updates_received_total",
        "bgpd_etcd_errors_total",
    ] {
        assert!(metrics.contains(name), "{name} missing:\n{metrics}");
    }
}

#[test]
#[serial]
fn a_borrowed_address_is_advertised_as_a_host_route() {
    let mut lab = lab();
    // One /26 block in the whole pool: the second host must borrow from the first.
    let pool = |c: &mut HostConfig| c.pools[0].cidr = "10.244.0.0/26".to_string();
    let (a, b) = meshed_pair(&mut lab, pool);
    assert_eq!(status(&lab, a).blocks.len(), 1);
    assert!(status(&lab, b).blocks.is_empty());
    let (ca, ea) = attach(&mut lab, a, "own");
    let (_, eb) = attach(&mut lab, b, "borrower");
    assert!(!ea.ips[0].borrowed);
    assert!(eb.ips[0].borrowed, "{eb:?}");
    let ip_b = eb.ips[0].address.ip();
    // a routes the borrowed /32 to b instead of blackholing it with its block.
    let want = format!("{ip_b} via {}", address(&lab, b));
    assert!(
        wait_until(PATIENCE, || lab.bgpd_routes(a).contains(&want)),
        "{}",
        lab.bgpd_routes(a)
    );
    assert!(wait_until(PATIENCE, || lab.containers[ca]
        .ns
        .ping(&ip_b.to_string())));
}

#[test]
#[serial]
fn sd_notify_ready_is_sent() {
    let mut lab = lab();
    let h = add_host(&mut lab, true, |_| {});
    let path = lab.dir().join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    lab.start_with_env(
        h,
        &[
            ("NOTIFY_SOCKET", path.to_str().unwrap()),
            ("WATCHDOG_USEC", "1000000"),
        ],
    )
    .unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 512];
    while !(seen.contains("READY=1") && seen.contains("WATCHDOG=1")) {
        let n = socket.recv(&mut buf).unwrap_or_else(|e| {
            panic!(
                "no sd_notify message ({e}); got {seen:?}\n{}",
                lab.log_tail(h)
            )
        });
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        seen.push('\n');
    }
    // The lease is kept alive and the registry watch holds, rather than breaking and being
    // set up again.
    std::thread::sleep(Duration::from_secs(6));
    let log = lab.log(h);
    assert!(!log.contains("keep-alive failed"), "{log}");
    assert!(!log.contains("watching node records failed"), "{log}");
}

#[test]
#[serial]
fn an_unreachable_etcd_is_retried_with_a_clear_log_and_sigterm_still_stops() {
    let dir = tempfile::tempdir().unwrap();
    let ns = Netns::new("noetcd").unwrap();
    let config = dir.path().join("c.toml");
    let log = dir.path().join("bgpd.log");
    std::fs::write(
        &config,
        format!(
            "[node]\nname = \"lonely\"\nasn = 64512\naddress = {{ ip = \"10.97.0.1\" }}\n[etcd]\nendpoints = [\"http://127.0.0.1:1\"]\n[api]\nsocket = \"{}\"\n",
            dir.path().join("s.sock").display()
        ),
    )
    .unwrap();
    let mut cmd = ns.cmd(env!("CARGO_BIN_EXE_bgpd"));
    cmd.arg("--config")
        .arg(&config)
        .stderr(std::fs::File::create(&log).unwrap());
    let mut daemon = testkit::process::ChildGuard::spawn(&mut cmd, "bgpd").unwrap();
    let said = wait_until(PATIENCE, || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.matches("etcd unreachable at http://127.0.0.1:1")
            .count()
            >= 2
            && text.contains("retrying in 2s")
    });
    assert!(
        said,
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    daemon.signal(libc::SIGTERM).unwrap();
    assert!(wait_until(PATIENCE, || daemon.has_exited()));
    assert_eq!(ns.ip(&["route", "show", "proto", "98"]).unwrap(), "");
}

#[test]
#[serial]
fn dual_stack_containers_reach_each_other_over_an_ipv4_mesh() {
    let mut lab = lab();
    let v6 = |c: &mut HostConfig| c.pools.push(Pool::new("pool6", "fd00:244::/56"));
    let (a, b) = meshed_pair(&mut lab, v6);
    assert_eq!(
        status(&lab, a).blocks.len(),
        2,
        "{:?}",
        status(&lab, a).blocks
    );
    let (ca, ea) = attach(&mut lab, a, "d1");
    let (_, eb) = attach(&mut lab, b, "d2");
    assert_eq!(ea.ips.len(), 2, "{ea:?}");
    let v6_b = eb
        .ips
        .iter()
        .find(|i| i.address.is_ipv6())
        .unwrap()
        .address
        .ip();
    let v4_b = eb
        .ips
        .iter()
        .find(|i| i.address.is_ipv4())
        .unwrap()
        .address
        .ip();
    let v6_routes = || {
        lab.hosts[a]
            .ns
            .ip(&["-6", "route", "show", "proto", "98"])
            .unwrap_or_default()
    };
    assert!(
        wait_until(PATIENCE, || v6_routes().contains(&format!(
            "via {}",
            underlay_v6(lab.hosts[b].config.address)
        ))),
        "{}",
        v6_routes()
    );
    assert!(wait_until(PATIENCE, || lab.containers[ca]
        .ns
        .ping(&v4_b.to_string())));
    assert!(
        wait_until(PATIENCE, || lab.containers[ca].ns.ping(&v6_b.to_string())),
        "no IPv6 reach: {}",
        v6_routes()
    );
}

#[test]
#[serial]
fn a_block_claimed_when_the_first_is_full_is_blackholed_and_advertised() {
    let mut lab = lab();
    let small_blocks = |c: &mut HostConfig| {
        c.pools[0].cidr = "10.244.0.0/24".to_string();
        c.pools[0].block_size = Some(30);
    };
    let (a, b) = meshed_pair(&mut lab, small_blocks);
    let first = block(&lab, a);
    let mut last = None;
    for n in 0..5 {
        last = Some(attach(&mut lab, a, &format!("full{n}")));
    }
    let (_, e) = last.unwrap();
    let ip = e.ips[0].address.ip();
    let first_net: ipnetwork::IpNetwork = first.parse().unwrap();
    assert!(!first_net.contains(ip), "{ip} should be in a second block");
    let blocks = status(&lab, a).blocks;
    assert_eq!(blocks.len(), 2, "{blocks:?}");
    let second = blocks
        .iter()
        .find(|b| b.cidr.contains(ip))
        .unwrap()
        .cidr
        .to_string();
    assert!(wait_until(PATIENCE, || lab
        .bgpd_routes(a)
        .contains(&format!("blackhole {second}"))));
    assert!(
        wait_until(PATIENCE, || lab
            .bgpd_routes(b)
            .contains(&format!("{second} via {}", address(&lab, a)))),
        "{}",
        lab.bgpd_routes(b)
    );
    let (cb, _) = attach(&mut lab, b, "far");
    assert!(wait_until(PATIENCE, || lab.containers[cb]
        .ns
        .ping(&ip.to_string())));
}
