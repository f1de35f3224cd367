//! `routectl policy show|apply --cluster` against a real etcd at sizes past etcd's and gRPC's
//! per-request limits: a listing larger than one 4 MiB reply, a file of more policies than one
//! etcd transaction takes.

use std::process::{Command, Output};

use ipam::store::{Outcome, Read, Store, Txn, Write};
use ipam::{EtcdStore, StoreOptions};
use testkit::etcd::Etcd;

const PREFIX: &str = "/fabric/v1/policies/";

fn routectl(etcd: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_routectl"))
        .args([
            "--config",
            "/nonexistent/bgpd.toml",
            "--etcd-endpoints",
            etcd,
            "--socket",
            "/nonexistent/bgpd.sock",
        ])
        .args(args)
        .output()
        .expect("run routectl")
}

async fn store(etcd: &Etcd) -> EtcdStore {
    EtcdStore::connect(&etcd.endpoints(), &StoreOptions::default())
        .await
        .expect("connect")
}

/// How many cluster policies etcd holds.
async fn held(store: &EtcdStore) -> usize {
    let (keys, _) = store
        .read(vec![Read::PrefixKeys(PREFIX.into())])
        .await
        .expect("read");
    keys.iter().map(Vec::len).sum()
}

/// A valid cluster policy padded with a comment to about 1 KiB.
fn policy_value(name: &str) -> String {
    format!(
        "name = \"{name}\"\nselector = 'all()'\n# {}\n",
        "x".repeat(1000)
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn show_lists_more_policies_than_one_reply_holds() {
    let etcd = Etcd::single().expect("etcd");
    let store = store(&etcd).await;
    for batch in 0..60 {
        let writes = (0..100)
            .map(|i| {
                let name = format!("p{:05}", batch * 100 + i);
                Write::Put(format!("{PREFIX}{name}"), policy_value(&name).into_bytes())
            })
            .collect();
        let txn = Txn {
            writes,
            ..Txn::default()
        };
        assert!(matches!(store.txn(txn).await, Ok(Outcome::Applied(_))));
    }
    let (stored, _) = store.read(vec![Read::Prefix(PREFIX.into())]).await.unwrap();
    let bytes: usize = stored[0].iter().map(|e| e.key.len() + e.value.len()).sum();
    assert!(
        bytes > 4 << 20,
        "more than one 4 MiB reply holds: {bytes} bytes"
    );

    let out = routectl(
        &etcd.endpoint(),
        &["policy", "show", "--cluster", "-o", "json"],
    );
    assert!(
        out.status.success(),
        "show --cluster failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed.len(), 6000);
    assert_eq!(listed[0]["name"], "p00000");
    assert_eq!(listed[5999]["name"], "p05999");
    assert!(
        listed.iter().all(|p| p["error"].is_null()),
        "a value was refused"
    );
}

fn policy_file(n: usize) -> String {
    (0..n)
        .map(|i| format!("[[policy]]\nname = \"q{i:03}\"\nselector = 'all()'\n\n"))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_says_a_file_is_larger_than_one_transaction_and_writes_nothing() {
    let etcd = Etcd::single().expect("etcd");
    let dir = tempfile::tempdir().unwrap();
    let too_many = dir.path().join("too-many.toml");
    std::fs::write(&too_many, policy_file(129)).unwrap();

    let out = routectl(
        &etcd.endpoint(),
        &["policy", "apply", "--cluster", &too_many.to_string_lossy()],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    // A refusal, not an unreachable etcd (exit 4).
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(stderr.contains("129 policies"), "stderr: {stderr}");
    assert!(stderr.contains("--max-txn-ops"), "stderr: {stderr}");
    assert!(!stderr.contains("unreachable"), "stderr: {stderr}");
    let store = store(&etcd).await;
    assert_eq!(
        held(&store).await,
        0,
        "nothing is written when the file is refused"
    );

    // At the limit, the file is written whole.
    let at_limit = dir.path().join("at-limit.toml");
    std::fs::write(&at_limit, policy_file(128)).unwrap();
    let out = routectl(
        &etcd.endpoint(),
        &["policy", "apply", "--cluster", &at_limit.to_string_lossy()],
    );
    assert!(
        out.status.success(),
        "apply of 128 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(held(&store).await, 128);
}
