//! The speed target: 100 containers starting at once on one host get addresses in under a
//! second. A test binary of its own, so no other test competes for the two cores.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use ipam::Family;
use testkit::etcd::Etcd;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_containers_on_one_host_in_under_a_second() {
    let etcd = Etcd::single().unwrap();
    let ipam = Arc::new(client(&etcd, opts()).await);
    pool(&ipam, "default", "10.0.0.0/16", 26).await;
    nodes(&ipam, &["h1"]).await;
    // The daemon's first block is claimed at start, before containers arrive.
    ipam.claim(&host("h1"), Family::V4).await.unwrap();
    let start = std::time::Instant::now();
    let tasks: Vec<_> = (0..100)
        .map(|c| {
            let ipam = ipam.clone();
            tokio::spawn(async move { ipam.assign(&req(&format!("c{c}"), "h1", 1, 0)).await })
        })
        .collect();
    let mut ips = BTreeSet::new();
    for t in tasks {
        ips.insert(t.await.unwrap().unwrap().ips[0].ip);
    }
    let took = start.elapsed();
    assert_eq!(ips.len(), 100);
    // Debug build on a shared 2-core machine: the release benchmark is far below this.
    assert!(
        took < Duration::from_secs(1),
        "100 containers took {took:?}"
    );
    assert_clean(&ipam).await;
}
