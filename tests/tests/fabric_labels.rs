//! End to end, workload labels across hosts: a policy on host A lets only containers labelled
//! `role=web` reach its `role=db` container on TCP 5432, and the `web` container is on host B,
//! so the rule's source selector can only match through B's endpoint records in etcd. Then:
//! relabelling on B changes A's firewall, labels survive restarts of both daemons, a bad label
//! is a 400 naming it, B's records keep counting after B's daemon stops (its node record stays
//! and its containers still run), and stop counting once B is deleted and IPAM reclaims its
//! blocks. Real
//! etcd, real bgpd processes in namespaces, real TCP connections.

use std::net::Ipv4Addr;
use std::time::Duration;

use testkit::fabric::{Fabric, Role};
use testkit::process::wait_until;
use testkit::traffic::{Server, tcp_echo, tcp_ok};

const CONVERGE: Duration = Duration::from_secs(60);
/// How long a label change may take to reach the other host's firewall.
const PROPAGATE: Duration = Duration::from_secs(20);
/// How long a stopped host's containers must keep matching (its node record stays).
const STALE_KEPT: Duration = Duration::from_secs(10);
const PORT: u16 = 5432;

const POLICY: &str = r#"
[[policy]]
name = "db"
selector = 'role == "db"'

[[policy.ingress]]
action = "allow"
protocol = "tcp"
source = { selector = 'role == "web"' }
destination = { ports = [5432] }
"#;

/// Whether a TCP connection from container `from` to container `to` on [`PORT`] is accepted
/// within [`testkit::traffic::BLOCKED_WAIT`] and carries data.
fn connects(fabric: &Fabric, from: usize, to: usize) -> bool {
    let target = fabric.containers[to].ipv4().expect("IPv4 address");
    tcp_ok(&fabric.containers[from].ns, (target, PORT))
}

/// A TCP echo server on [`PORT`] in container `c`.
fn listen(fabric: &Fabric, c: usize) -> Server {
    tcp_echo(&fabric.containers[c].ns, (Ipv4Addr::UNSPECIFIED, PORT)).expect("tcp server")
}

fn labels_of(fabric: &Fabric, host: usize, id: &str) -> serde_json::Value {
    let list = fabric
        .routectl_json(host, &["endpoint", "list"])
        .expect("endpoint list");
    list.as_array()
        .and_then(|l| l.iter().find(|e| e["container_id"] == id))
        .map(|e| e["labels"].clone())
        .unwrap_or_default()
}

#[test]
#[serial_test::serial]
fn rule_selectors_match_labels_of_containers_on_other_hosts() {
    let mut fabric = Fabric::new().expect("fabric");
    let dir = tempfile::tempdir().expect("temp dir");
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, POLICY).expect("policy file");
    for _ in 0..2 {
        let mut config = fabric.next_host_config(Role::Host);
        config.policy = Some(policy.clone());
        fabric.add_host_with(config).expect("host");
    }
    for i in 0..2 {
        fabric.wait_established(i, 1, CONVERGE).expect("session");
    }
    let db = fabric
        .add_labelled_container(0, &["role=db", "fabric.io/namespace=prod"])
        .expect("db on host A");
    let web = fabric
        .add_labelled_container(1, &["role=web"])
        .expect("web on host B");
    let other = fabric
        .add_labelled_container(1, &["role=other"])
        .expect("other on host B");
    fabric.wait_converged(0, false, CONVERGE).expect("routes");
    let _server = listen(&fabric, db);
    assert_eq!(
        labels_of(&fabric, 0, &fabric.containers[db].id),
        serde_json::json!({"role": "db", "fabric.io/namespace": "prod"})
    );

    // web on B reaches db on A once A has B's endpoint records; other is refused.
    assert!(
        wait_until(PROPAGATE, || connects(&fabric, web, db)),
        "role=web on host B cannot reach role=db on host A\n{}",
        fabric.logs()
    );
    assert!(
        !connects(&fabric, other, db),
        "role=other on host B reached role=db"
    );

    // Relabelling on B changes A's firewall: other becomes web, web becomes other.
    let other_id = fabric.containers[other].id.clone();
    let web_id = fabric.containers[web].id.clone();
    fabric
        .routectl(1, &["endpoint", "label", &other_id, "--label", "role=web"])
        .expect("relabel other");
    fabric
        .routectl(1, &["endpoint", "label", &web_id, "--label", "role=other"])
        .expect("relabel web");
    assert!(
        wait_until(PROPAGATE, || connects(&fabric, other, db)
            && !connects(&fabric, web, db)),
        "relabelling on host B did not change host A's firewall\n{}",
        fabric.logs()
    );

    // Restarts: labels come back from etcd on both hosts, and the firewall still holds.
    for host in [0, 1] {
        fabric.stop(host);
        fabric.start(host).expect("bgpd restarts");
    }
    assert_eq!(
        labels_of(&fabric, 0, &fabric.containers[db].id)["role"],
        "db"
    );
    assert_eq!(labels_of(&fabric, 1, &other_id)["role"], "web");
    assert!(
        wait_until(PROPAGATE, || connects(&fabric, other, db)),
        "after restarts, role=web cannot reach role=db\n{}",
        fabric.logs()
    );
    assert!(
        !connects(&fabric, web, db),
        "after restarts, role=other reached role=db"
    );

    // A bad label is refused by the daemon with a 400 naming it, and nothing changes.
    let socket = fabric.hosts[1].config.socket.clone().expect("socket path");
    let answer = fabric.hosts[1]
        .ns
        .exec(
            "curl",
            &[
                "-s",
                "-w",
                "\n%{http_code}",
                "--unix-socket",
                &socket.to_string_lossy(),
                "-X",
                "PUT",
                "-d",
                r#"{"labels":{"role":"we b"}}"#,
                &format!("http://localhost/v1/endpoints/{other_id}/eth0/labels"),
            ],
        )
        .expect("curl");
    assert!(answer.ends_with("\n400"), "{answer}");
    assert!(
        answer.contains(r#"label \"role\": value \"we b\""#),
        "{answer}"
    );
    assert_eq!(labels_of(&fabric, 1, &other_id)["role"], "web");

    // B's daemon stops: its node record stays (it is persistent), its containers keep running
    // and routed (A holds B's routes for B's graceful-restart time) and its blocks stay affine
    // to it, so A keeps matching them by label.
    let other_ip = fabric.containers[other].ipv4().expect("IPv4").to_string();
    assert!(
        in_ruleset(&fabric, &other_ip),
        "host A's ruleset lacks B's role=web container {other_ip}"
    );
    fabric.stop(1);
    let b = fabric.hosts[1].config.name.clone();
    let node_key = format!("/fabric/v1/nodes/{b}");
    let kept_until = std::time::Instant::now() + STALE_KEPT;
    while std::time::Instant::now() < kept_until {
        assert!(
            connects(&fabric, other, db),
            "host B's daemon is stopped, and its role=web container no longer matches on host A\n{}",
            fabric.logs()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let record = fabric
        .etcdctl(&["get", "--keys-only", &node_key])
        .expect("etcdctl get");
    assert!(
        !record.trim().is_empty(),
        "host B's node record went with its daemon"
    );
    // B is decommissioned (`routectl node delete` deletes its node record) and IPAM reclaims
    // its blocks (GC does after its dead-host delay; here B's affinities are deleted as GC's
    // transaction does): B's addresses may go to others, so its records stop counting.
    fabric
        .etcdctl(&["del", &node_key])
        .expect("delete host B's node record");
    fabric
        .etcdctl(&["del", "--prefix", &format!("/fabric/v1/affinities/{b}/")])
        .expect("delete host B's affinities");
    assert!(
        wait_until(PROPAGATE, || !in_ruleset(&fabric, &other_ip)),
        "host B is deleted and its blocks reclaimed, yet its container still matches role=web on host A\n{}",
        fabric.logs()
    );
}

/// Whether host A's nftables ruleset names `ip` (a remote endpoint matched by a selector).
fn in_ruleset(fabric: &Fabric, ip: &str) -> bool {
    fabric.hosts[0]
        .ns
        .exec("nft", &["list", "ruleset"])
        .is_ok_and(|rules| rules.contains(ip))
}
