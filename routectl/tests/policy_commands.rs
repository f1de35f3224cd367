//! `routectl policy`: compiled with this host's endpoints (a recorded control socket) and the
//! pools in a real etcd, applied with the real nft inside a namespace the test made.

use std::path::Path;
use std::process::{Command, Output};

use ipam::{Ipam, IpamOptions, Pool, PoolName};
use testkit::control_socket::{Answer, ControlSocket};
use testkit::etcd::Etcd;
use testkit::netns::Netns;
use testkit::process::stdout_of_success;

const POLICY: &str = r#"
[[policy]]
name = "web"
selector = "all()"

[[policy.ingress]]
action = "allow"
protocol = "tcp"
destination = { ports = [80] }

[[policy.egress]]
action = "allow"
destination = { pools = ["default"] }
"#;

fn routectl(socket: &Path, etcd: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_routectl"))
        .args([
            "--config",
            "/nonexistent/bgpd.toml",
            "--etcd-endpoints",
            etcd,
            "--socket",
        ])
        .arg(socket)
        .args(args)
        .output()
        .expect("run routectl")
}

#[tokio::test(flavor = "multi_thread")]
#[serial_test::serial]
async fn dry_run_show_apply_and_counters() {
    let etcd = Etcd::single().expect("etcd");
    let ep = etcd.endpoint();
    let ipam = Ipam::connect(&etcd.endpoints(), IpamOptions::default())
        .await
        .unwrap();
    let mut pool = Pool::new(
        PoolName::new("default").unwrap(),
        "10.244.0.0/16".parse().unwrap(),
    );
    pool.nat_outgoing = true;
    ipam.add_pool(&pool).await.unwrap();
    let endpoint = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/endpoint.json"),
    )
    .unwrap();
    let bgpd = ControlSocket::serve(vec![(
        "GET",
        "/v1/endpoints",
        Answer::ok(format!("[{endpoint}]")),
    )])
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policy.toml");
    std::fs::write(&file, POLICY).unwrap();
    let f = file.to_str().unwrap();

    // dry-run: the endpoint from bgpd and the pool from etcd are in the ruleset.
    let script = stdout_of_success(&routectl(
        &bgpd.path(),
        &ep,
        &["policy", "dry-run", "--file", f],
    ));
    assert!(script.starts_with("table inet bgpd"), "{script}");
    assert!(script.contains("bgpd3f2a91c0"), "{script}");
    assert!(script.contains("10.244.0.0/16"), "{script}");
    assert!(script.contains("masquerade"), "{script}");

    // show: which policies govern the endpoint, as JSON too.
    let out = stdout_of_success(&routectl(
        &bgpd.path(),
        &ep,
        &["policy", "show", "--file", f],
    ));
    assert!(
        out.contains("workload bgpd3f2a91c0  bgpd3f2a91c0  ingress    web → default deny"),
        "{out}"
    );
    let plans: serde_json::Value = serde_json::from_str(&stdout_of_success(&routectl(
        &bgpd.path(),
        &ep,
        &["policy", "show", "--file", f, "-o", "json"],
    )))
    .unwrap();
    assert_eq!(plans[0]["policies"][0], "web");

    // apply directly inside a namespace, then read the counters there.
    let ns = Netns::new("pol").expect("netns");
    let out = stdout_of_success(&routectl(
        &bgpd.path(),
        &ep,
        &["policy", "apply", "--file", f, "--netns", ns.name()],
    ));
    assert!(out.starts_with("applied table inet bgpd ("), "{out}");
    let listed = ns.exec("nft", &["list", "table", "inet", "bgpd"]).unwrap();
    assert!(listed.contains("bgpd3f2a91c0"), "{listed}");
    let out = stdout_of_success(&routectl(
        &bgpd.path(),
        &ep,
        &["policy", "counters", "--netns", ns.name()],
    ));
    assert!(out.contains("policy web ingress rule 0"), "{out}");
    assert!(out.contains("nat-outgoing"), "{out}");
    let counters: serde_json::Value = serde_json::from_str(&stdout_of_success(&routectl(
        &bgpd.path(),
        &ep,
        &["policy", "counters", "--netns", ns.name(), "-o", "json"],
    )))
    .unwrap();
    assert!(counters.as_array().is_some_and(|c| !c.is_empty()));

    // A broken file is refused with its line, and the applied table stays.
    std::fs::write(&file, "[[policy]]\nname = 5\n").unwrap();
    let o = routectl(
        &bgpd.path(),
        &ep,
        &["policy", "apply", "--file", f, "--netns", ns.name()],
    );
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("policy.toml:2"), "{err}");
    let still = ns.exec("nft", &["list", "table", "inet", "bgpd"]).unwrap();
    assert_eq!(still, listed);
}

#[test]
fn without_a_policy_file_it_says_so() {
    let o = routectl(
        Path::new("/nonexistent.sock"),
        "http://127.0.0.1:1",
        &["policy", "dry-run"],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no policy file: give --file"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
