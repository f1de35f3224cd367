//! The harness itself works: namespaces talk over veth, etcd serves and survives a restart.

use testkit::etcd::Etcd;
use testkit::netns::{Netns, link};

#[test]
fn two_namespaces_ping_over_veth_and_vanish_on_drop() {
    let a = Netns::new("a").unwrap();
    let b = Netns::new("b").unwrap();
    link(
        &a,
        "va",
        &["10.99.0.1/30", "fd99::1/64"],
        &b,
        "vb",
        &["10.99.0.2/30", "fd99::2/64"],
    )
    .unwrap();
    assert!(a.ping("10.99.0.2"));
    assert!(b.ping("fd99::1"));
    assert!(
        !a.ping("10.99.0.3"),
        "an address nobody holds must not answer"
    );
    let path = a.path();
    drop(a);
    assert!(!path.exists(), "namespace file removed on drop");
}

#[test]
fn etcd_serves_and_comes_back_after_a_kill() {
    let mut etcd = Etcd::single().unwrap();
    let ep = etcd.endpoint();
    let put = std::process::Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", &ep, "put", "/k", "v"])
        .output()
        .unwrap();
    assert!(put.status.success(), "{put:?}");
    etcd.stop();
    etcd.start().unwrap();
    let get = std::process::Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", &ep, "get", "--print-value-only", "/k"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&get.stdout).trim(), "v");
}
