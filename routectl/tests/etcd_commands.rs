//! routectl's cluster-wide commands (`nodes`, `ipam check|release|pools`) against a real etcd
//! holding data written by the `ipam` crate and node records shaped as bgpd writes them.

use std::net::IpAddr;
use std::process::{Command, Output};

use ipam::store::{Store, Txn, Write};
use ipam::{AssignRequest, HandleId, HostName, Ipam, IpamOptions, Pool, PoolName};
use testkit::etcd::Etcd;
use testkit::process::stdout_of_success;

fn routectl(endpoints: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_routectl"))
        .args([
            "--config",
            "/nonexistent/bgpd.toml",
            "--etcd-endpoints",
            endpoints,
        ])
        .args(args)
        .env_remove("ETCD_ENDPOINTS")
        .env_remove("BGPD_ETCD_ROOT")
        .output()
        .expect("run routectl")
}

/// A node record as bgpd writes it (bgpd/src/node.rs): IPAM reads `version` and `labels`.
fn node_record(address: &str, router_id: &str) -> Vec<u8> {
    serde_json::json!({
        "version": 1, "labels": {"zone": "a"}, "address": address, "asn": 64512,
        "router_id": router_id, "role": "host", "mesh": true, "port": 179
    })
    .to_string()
    .into_bytes()
}

async fn seeded(etcd: &Etcd) -> Ipam {
    let ipam = Ipam::connect(&etcd.endpoints(), IpamOptions::default())
        .await
        .unwrap();
    let pool = Pool::new(
        PoolName::new("default").unwrap(),
        "10.244.0.0/16".parse().unwrap(),
    );
    ipam.add_pool(&pool).await.unwrap();
    for (host, addr) in [("host-a", "10.0.0.1"), ("host-b", "10.0.0.2")] {
        let key = ipam.keys().node(&HostName::new(host).unwrap());
        ipam.store()
            .put_with_lease(key, node_record(addr, addr), 0)
            .await
            .unwrap();
    }
    for (handle, host) in [
        ("c1.eth0", "host-a"),
        ("c2.eth0", "host-a"),
        ("c3.eth0", "host-b"),
    ] {
        ipam.assign(&AssignRequest {
            handle: HandleId::new(handle).unwrap(),
            host: HostName::new(host).unwrap(),
            v4: 1,
            v6: 0,
        })
        .await
        .unwrap();
    }
    ipam
}

#[tokio::test(flavor = "multi_thread")]
async fn nodes_pools_release_and_check_against_real_etcd() {
    let etcd = Etcd::single().expect("etcd");
    let ep = etcd.endpoint();
    let ipam = seeded(&etcd).await;

    // nodes: the daemon's record and each node's blocks with usage.
    let out = stdout_of_success(&routectl(&ep, &["nodes"]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        [
            "NAME", "ALIVE", "ADDRESS", "ASN", "ROUTER", "ID", "ROLE", "BLOCKS", "LABELS"
        ]
    );
    assert!(
        lines[1].starts_with("host-a  no     10.0.0.1  64512  10.0.0.1   host  10.244."),
        "{out}"
    );
    assert!(
        lines[1].contains("(2/64)") && lines[1].ends_with("zone=a"),
        "{out}"
    );
    assert!(lines[2].contains("(1/64)"), "{out}");
    let json: serde_json::Value =
        serde_json::from_str(&stdout_of_success(&routectl(&ep, &["nodes", "-o", "json"])))
            .expect("nodes -o json parses");
    assert_eq!(json[1]["name"], "host-b");
    assert_eq!(json[1]["record"]["asn"], 64512);
    assert_eq!(json[1]["blocks"][0]["used"], 1);

    // pools: list, add (with flags), refuse an overlap, delete.
    let out = stdout_of_success(&routectl(&ep, &["ipam", "pools"]));
    assert!(
        out.contains("default  10.244.0.0/16  /26         no            no        all()"),
        "{out}"
    );
    let out = stdout_of_success(&routectl(
        &ep,
        &[
            "ipam",
            "pools",
            "add",
            "v6",
            "fd00:244::/48",
            "--block-size",
            "120",
            "--nat-outgoing",
            "--node-selector",
            "zone == 'a'",
        ],
    ));
    assert!(
        out.contains("v6       fd00:244::/48  /120        yes           no        zone == 'a'"),
        "{out}"
    );
    let overlap = routectl(&ep, &["ipam", "pools", "add", "dup", "10.244.128.0/17"]);
    assert_eq!(overlap.status.code(), Some(1));
    assert!(!String::from_utf8_lossy(&overlap.stderr).is_empty());
    let in_use = routectl(&ep, &["ipam", "pools", "delete", "default"]);
    assert_eq!(
        in_use.status.code(),
        Some(1),
        "a pool in use is not deleted"
    );
    let out = stdout_of_success(&routectl(&ep, &["ipam", "pools", "delete", "v6"]));
    assert!(
        out.starts_with("deleted pool v6: 0 blocks, 0 addresses released\n"),
        "{out}"
    );
    let pools: Vec<serde_json::Value> = serde_json::from_str(&stdout_of_success(&routectl(
        &ep,
        &["ipam", "pools", "-o", "json"],
    )))
    .unwrap();
    assert_eq!(pools.len(), 1);

    // release by handle and by address.
    let c1 = ipam
        .handle(&HandleId::new("c1.eth0").unwrap())
        .await
        .unwrap()
        .unwrap();
    let out = stdout_of_success(&routectl(&ep, &["ipam", "release", "c1.eth0"]));
    assert_eq!(out, format!("released {}\n", c1.ips[0].ip));
    let out = stdout_of_success(&routectl(&ep, &["ipam", "release", "c1.eth0"]));
    assert_eq!(
        out, "c1.eth0: nothing was assigned\n",
        "release is idempotent"
    );
    let c3 = ipam
        .handle(&HandleId::new("c3.eth0").unwrap())
        .await
        .unwrap()
        .unwrap();
    let ip = c3.ips[0].ip.to_string();
    let out = stdout_of_success(&routectl(&ep, &["ipam", "release", &ip, "-o", "json"]));
    let released: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(released["released"][0].as_str(), Some(ip.as_str()));
    assert!(
        ipam.handle(&HandleId::new("c3.eth0").unwrap())
            .await
            .unwrap()
            .is_none()
    );

    // check: clean, then a leak (a handle deleted behind IPAM's back) is exit 5 until repaired.
    let out = stdout_of_success(&routectl(&ep, &["ipam", "check"]));
    assert!(out.ends_with("no problems found\n"), "{out}");
    let c2 = HandleId::new("c2.eth0").unwrap();
    let leaked: IpAddr = ipam.handle(&c2).await.unwrap().unwrap().ips[0].ip;
    ipam.store()
        .txn(Txn {
            writes: vec![Write::Delete(ipam.keys().handle(&c2))],
            ..Txn::default()
        })
        .await
        .unwrap();
    let o = routectl(&ep, &["ipam", "check"]);
    assert_eq!(o.status.code(), Some(5));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains(&format!("problem (repairable): {leaked} in ")),
        "{out}"
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("1 problem(s) found"));
    let report: serde_json::Value =
        serde_json::from_slice(&routectl(&ep, &["ipam", "check", "-o", "json"]).stdout).unwrap();
    assert_eq!(report["findings"][0]["kind"], "ip_without_handle");
    let out = stdout_of_success(&routectl(&ep, &["ipam", "check", "--repair"]));
    assert!(out.starts_with("fixed: "), "{out}");
    assert!(out.ends_with("no problems found\n"), "{out}");
    stdout_of_success(&routectl(&ep, &["ipam", "check"]));
}

/// `node delete`: refused while the host's liveness key is there (unless --force), refused for
/// a node that does not exist; a deleted node's record and liveness key are gone, and IPAM's
/// GC then reclaims its addresses.
#[tokio::test(flavor = "multi_thread")]
async fn node_delete_refuses_a_live_host_and_decommissions_a_dead_one() {
    let etcd = Etcd::single().expect("etcd");
    let ep = etcd.endpoint();
    let ipam = seeded(&etcd).await;
    // host-a's bgpd runs: its liveness key is there (bgpd keeps it under a lease).
    let alive_a = bgpd_api::alive_key(&ipam.keys().root(), "host-a");
    ipam.store()
        .put_with_lease(alive_a.clone(), b"10.0.0.1".to_vec(), 0)
        .await
        .unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&stdout_of_success(&routectl(&ep, &["nodes", "-o", "json"]))).unwrap();
    assert_eq!(
        (json[0]["alive"].as_bool(), json[1]["alive"].as_bool()),
        (Some(true), Some(false))
    );

    let refused = routectl(&ep, &["node", "delete", "host-a"]);
    assert_eq!(refused.status.code(), Some(1));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("node host-a is alive"), "{err}");
    let missing = routectl(&ep, &["node", "delete", "host-z"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no node host-z"));

    let out = stdout_of_success(&routectl(&ep, &["node", "delete", "host-b"]));
    assert!(out.starts_with("node host-b deleted: "), "{out}");
    let out = stdout_of_success(&routectl(&ep, &["nodes"]));
    assert!(out.contains("host-a") && !out.contains("host-b"), "{out}");
    // host-b's addresses go to IPAM's GC, after its dead-host delay (none here).
    let gc = Ipam::connect(
        &etcd.endpoints(),
        IpamOptions {
            dead_host_delay: std::time::Duration::ZERO,
            ..IpamOptions::default()
        },
    )
    .await
    .unwrap();
    let report = gc.gc().await.unwrap();
    assert_eq!(report.released_handles, [HandleId::new("c3.eth0").unwrap()]);

    let out = stdout_of_success(&routectl(
        &ep,
        &["node", "delete", "host-a", "--force", "-o", "json"],
    ));
    let done: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (done["deleted"].as_str(), done["was_alive"].as_bool()),
        (Some("host-a"), Some(true))
    );
    let (left, _) = ipam
        .store()
        .read(vec![
            ipam::store::Read::Key(alive_a),
            ipam::store::Read::Prefix(ipam.keys().nodes()),
        ])
        .await
        .unwrap();
    assert!(left.iter().all(Vec::is_empty), "{left:?}");
}

#[test]
fn an_unreachable_etcd_is_exit_4_with_a_clear_message() {
    let port = testkit::free_port();
    let ep = format!("http://127.0.0.1:{port}");
    for args in [
        &["nodes"][..],
        &["ipam", "check"],
        &["ipam", "pools"],
        &["ipam", "release", "x.eth0"],
    ] {
        let started = std::time::Instant::now();
        let o = routectl(&ep, args);
        assert_eq!(o.status.code(), Some(4), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.starts_with(&format!("routectl: etcd at {ep} unreachable: ")),
            "{err}"
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "{args:?} gave up late"
        );
    }
}

/// A pool name follows the rule of bgpd's config (lowercase DNS name): a pool routectl makes
/// is one a config can name, and IPAM refuses the rest whoever asks.
#[test]
fn pool_names_follow_the_config_rule() {
    let etcd = Etcd::single().expect("etcd");
    let ep = etcd.endpoint();
    for name in ["BadPool", "Bad Pool", ".pool", "pool_1"] {
        let o = routectl(&ep, &["ipam", "pools", "add", name, "10.0.0.0/16"]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{name}: {err}");
        assert!(
            err.contains("lowercase letters, digits, '-' and '.'"),
            "{name}: {err}"
        );
    }
    stdout_of_success(&routectl(
        &ep,
        &["ipam", "pools", "add", "rack-1.v4", "10.0.0.0/16"],
    ));
    let pools: Vec<serde_json::Value> = serde_json::from_str(&stdout_of_success(&routectl(
        &ep,
        &["ipam", "pools", "-o", "json"],
    )))
    .unwrap();
    let names: Vec<&str> = pools.iter().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(names, ["rack-1.v4"]);
    // The library refuses it too, so nothing else writes such a pool into etcd.
    assert!(PoolName::new("BadPool").is_err());
}

#[test]
fn bad_names_are_refused_before_etcd() {
    let etcd = Etcd::single().expect("etcd");
    for args in [
        &["ipam", "pools", "add", "Bad Name", "10.0.0.0/8"][..],
        &["ipam", "pools", "add", "p", "10.0.0.1/8"],
        &[
            "ipam",
            "pools",
            "add",
            "p",
            "10.0.0.0/8",
            "--node-selector",
            "zone =",
        ],
        &["ipam", "release", "not/a handle"],
    ] {
        let o = routectl(&etcd.endpoint(), args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("invalid input"), "{args:?}: {err}");
    }
}
