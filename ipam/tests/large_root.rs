//! IPAM's whole-datastore reads (check, repair, GC, pool deletion) against a real etcd whose
//! root holds more than one 4 MiB reply: 6,000 cluster policies of 1 KiB beside the pools.

mod common;

use ipam::store::{Outcome, Read, Store, Txn, Write};
use ipam::{Pool, PoolName};
use testkit::etcd::Etcd;

#[tokio::test]
async fn check_and_gc_read_a_root_larger_than_one_reply() {
    let etcd = Etcd::single().unwrap();
    let ipam = common::client(&etcd, common::opts()).await;
    ipam.add_pool(&Pool::new(
        PoolName::new("default").unwrap(),
        "10.244.0.0/16".parse().unwrap(),
    ))
    .await
    .unwrap();
    let value = vec![b'x'; 1024];
    for batch in 0..60 {
        let writes = (0..100)
            .map(|i| {
                let key = format!("/fabric/v1/policies/p{:05}", batch * 100 + i);
                Write::Put(key, value.clone())
            })
            .collect();
        let txn = Txn {
            writes,
            ..Txn::default()
        };
        assert!(matches!(
            ipam.store().txn(txn).await,
            Ok(Outcome::Applied(_))
        ));
    }

    let (read, revision) = ipam
        .store()
        .read(vec![
            Read::Prefix("/fabric/v1/".into()),
            Read::Key("/fabric/v1/policies/p00000".into()),
        ])
        .await
        .expect("a read larger than one reply");
    assert_eq!(read[0].len(), 6001, "every policy and the pool");
    assert_eq!(read[1].len(), 1);
    let last_write = read[0].iter().map(|e| e.mod_revision).max().unwrap();
    assert_eq!(revision, last_write, "all read at one revision");

    let report = ipam.check().await.expect("check");
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    ipam.gc().await.expect("gc");
}
