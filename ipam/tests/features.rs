//! Each IPAM feature against a real etcd.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use common::*;
use ipam::{Family, Finding, IpamConfig, IpamError, NodeRecord, PoolName};
use testkit::etcd::Etcd;

#[tokio::test]
async fn borrowing_strict_affinity_exhaustion_and_release() {
    let etcd = Etcd::single().unwrap();
    let ipam = client(&etcd, opts()).await;
    // Two /26 blocks in all.
    pool(&ipam, "small", "10.1.0.0/25", 26).await;
    nodes(&ipam, &["a", "b", "c"]).await;

    let a1 = ipam.assign(&req("a1", "a", 64, 0)).await.unwrap();
    assert_eq!(a1.ips.len(), 64);
    let b1 = ipam.assign(&req("b1", "b", 10, 0)).await.unwrap();
    assert!(a1.ips[0].block != b1.ips[0].block);

    // a's block is full and no block is free: a borrows from b's block, and says so.
    let a2 = ipam.assign(&req("a2", "a", 1, 0)).await.unwrap();
    assert!(a2.ips[0].borrowed);
    assert_eq!(a2.ips[0].block, b1.ips[0].block);
    assert!(a1.ips.iter().chain(&b1.ips).all(|i| i.ip != a2.ips[0].ip));
    assert!(a2.ips[0].block.network().contains(a2.ips[0].ip));

    // Strict affinity: no borrowing, so a is out of addresses.
    let strict = IpamConfig {
        strict_affinity: true,
        ..IpamConfig::default()
    };
    ipam.set_config(&strict).await.unwrap();
    match ipam.assign(&req("a3", "a", 1, 0)).await {
        Err(IpamError::PoolExhausted { host, family }) => {
            assert_eq!(host.as_str(), "a");
            assert_eq!(family, "IPv4");
        }
        other => panic!("strict affinity must refuse to borrow: {other:?}"),
    }
    // b still gets addresses from its own block.
    assert!(!ipam.assign(&req("b2", "b", 1, 0)).await.unwrap().ips[0].borrowed);
    ipam.set_config(&IpamConfig::default()).await.unwrap();

    // Fill everything: then the pool is exhausted for everyone.
    ipam.assign(&req("b3", "b", 52, 0)).await.unwrap();
    assert!(matches!(
        ipam.assign(&req("c1", "c", 1, 0)).await,
        Err(IpamError::PoolExhausted { .. })
    ));
    assert!(ipam.handle(&handle("c1")).await.unwrap().is_none());

    // Release by IP (a's borrowed address) and by handle.
    ipam.release_ip(a2.ips[0].ip).await.unwrap();
    assert!(ipam.handle(&handle("a2")).await.unwrap().is_none());
    assert!(matches!(
        ipam.release_ip(a2.ips[0].ip).await,
        Err(IpamError::NotFound(_))
    ));
    let freed = ipam.release(&handle("a1")).await.unwrap();
    assert_eq!(freed.len(), 64);
    assert_eq!(
        ipam.release(&handle("a1")).await.unwrap(),
        Vec::<IpAddr>::new()
    );
    // Freed addresses are usable again.
    let c1 = ipam.assign(&req("c1", "c", 1, 0)).await.unwrap();
    assert!(freed.contains(&c1.ips[0].ip) || c1.ips[0].ip == a2.ips[0].ip);
    let report = assert_clean(&ipam).await;
    assert_eq!(report.assigned, 10 + 1 + 52 + 1);
}

#[tokio::test]
async fn idempotent_assignment_and_given_address() {
    let etcd = Etcd::single().unwrap();
    let ipam = client(&etcd, opts()).await;
    pool(&ipam, "default", "10.2.0.0/16", 26).await;
    nodes(&ipam, &["a", "b"]).await;
    let first = ipam.assign(&req("c1.eth0", "a", 2, 0)).await.unwrap();
    assert_eq!(
        ipam.handles_of(&host("a")).await.unwrap(),
        vec![first.clone()]
    );
    assert!(ipam.handles_of(&host("b")).await.unwrap().is_empty());
    // A second client (a restarted daemon with an empty cache) asks again.
    let other = client(&etcd, opts()).await;
    let again = other.assign(&req("c1.eth0", "a", 2, 0)).await.unwrap();
    assert_eq!(first, again);
    assert_eq!(
        ipam.assign(&req("c1.eth0", "a", 2, 0)).await.unwrap(),
        first
    );

    // One given address: claims its block for the host if free, borrows it otherwise.
    let ip: IpAddr = "10.2.200.7".parse().unwrap();
    let g = ipam
        .assign_ip(&handle("fixed"), &host("a"), ip)
        .await
        .unwrap();
    assert_eq!((g.ips[0].ip, g.ips[0].borrowed), (ip, false));
    assert_eq!(
        ipam.assign_ip(&handle("fixed"), &host("a"), ip)
            .await
            .unwrap(),
        g
    );
    match ipam.assign_ip(&handle("other"), &host("b"), ip).await {
        Err(IpamError::AddressInUse { handle: h, .. }) => assert_eq!(h.as_str(), "fixed"),
        r => panic!("{r:?}"),
    }
    let near: IpAddr = "10.2.200.8".parse().unwrap();
    let b = ipam
        .assign_ip(&handle("near"), &host("b"), near)
        .await
        .unwrap();
    assert!(b.ips[0].borrowed, "b takes an address in a's block");
    assert!(matches!(
        ipam.assign_ip(&handle("x"), &host("a"), "192.0.2.1".parse().unwrap())
            .await,
        Err(IpamError::NotFound(_))
    ));
    assert_clean(&ipam).await;
}

#[tokio::test]
async fn ipv6_and_dual_stack() {
    let etcd = Etcd::single().unwrap();
    let ipam = client(&etcd, opts()).await;
    pool(&ipam, "v4", "10.3.0.0/16", 26).await;
    let mut v6 = ipam::Pool::new(
        PoolName::new("v6").unwrap(),
        "fd00:10::/112".parse().unwrap(),
    );
    assert_eq!(v6.block_prefix_len, 122, "IPv6 default block is /122");
    v6.nat_outgoing = true;
    ipam.add_pool(&v6).await.unwrap();
    nodes(&ipam, &["a"]).await;
    let a = ipam.assign(&req("c1", "a", 1, 2)).await.unwrap();
    assert_eq!(a.ips.len(), 3);
    assert!(a.ips[0].ip.is_ipv4());
    for i in &a.ips[1..] {
        assert!(i.ip.is_ipv6());
        assert_eq!(i.block.network().prefix(), 122);
        assert!(v6.cidr.contains(i.ip));
    }
    let blocks = ipam.blocks_of(&host("a")).await.unwrap();
    assert_eq!(blocks.len(), 2);
    let only6 = ipam.assign(&req("c2", "a", 0, 1)).await.unwrap();
    assert_eq!(only6.ips[0].block, a.ips[1].block);
    let b6 = ipam.claim(&host("a"), Family::V6).await.unwrap();
    assert_eq!(b6.size(), 64);
    assert_eq!(ipam.release(&handle("c1")).await.unwrap().len(), 3);
    assert_clean(&ipam).await;
    let listed = ipam.list_pools().await.unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().any(|p| p == &v6));
}

#[tokio::test]
async fn block_limit_per_host() {
    let etcd = Etcd::single().unwrap();
    let ipam = client(&etcd, opts()).await;
    pool(&ipam, "default", "10.4.0.0/24", 26).await;
    nodes(&ipam, &["a", "b"]).await;
    ipam.assign(&req("b1", "b", 1, 0)).await.unwrap();
    let limit = IpamConfig {
        max_blocks_per_host: Some(1),
        ..IpamConfig::default()
    };
    ipam.set_config(&limit).await.unwrap();
    ipam.assign(&req("a1", "a", 64, 0)).await.unwrap();
    // At its limit, a borrows instead of claiming a second block...
    let a2 = ipam.assign(&req("a2", "a", 1, 0)).await.unwrap();
    assert!(a2.ips[0].borrowed);
    assert_eq!(ipam.blocks_of(&host("a")).await.unwrap().len(), 1);
    assert!(matches!(
        ipam.claim(&host("a"), Family::V4).await,
        Err(IpamError::BlockLimitReached { limit: 1, .. })
    ));
    // ...and with strict affinity it is refused.
    let strict = IpamConfig {
        strict_affinity: true,
        max_blocks_per_host: Some(1),
        ..IpamConfig::default()
    };
    ipam.set_config(&strict).await.unwrap();
    assert!(matches!(
        ipam.assign(&req("a3", "a", 1, 0)).await,
        Err(IpamError::BlockLimitReached { limit: 1, .. })
    ));
    assert_clean(&ipam).await;
}

#[tokio::test]
async fn pool_delete_refused_while_in_use_unless_forced() {
    let etcd = Etcd::single().unwrap();
    let ipam = client(&etcd, opts()).await;
    pool(&ipam, "p1", "10.5.0.0/24", 26).await;
    pool(&ipam, "p2", "fd00:5::/120", 122).await;
    nodes(&ipam, &["a"]).await;
    assert!(matches!(
        ipam.add_pool(&ipam::Pool::new(
            PoolName::new("p3").unwrap(),
            "10.5.0.0/16".parse().unwrap()
        ))
        .await,
        Err(IpamError::Invalid(_))
    ));
    ipam.assign(&req("c1", "a", 2, 1)).await.unwrap();
    let p1 = PoolName::new("p1").unwrap();
    match ipam.delete_pool(&p1, false).await {
        Err(IpamError::PoolInUse { in_use, .. }) => assert_eq!(in_use, 2),
        r => panic!("{r:?}"),
    }
    let done = ipam.delete_pool(&p1, true).await.unwrap();
    assert_eq!((done.blocks, done.released_ips), (1, 2));
    // The handle keeps its IPv6 address only.
    let h = ipam.handle(&handle("c1")).await.unwrap().unwrap();
    assert_eq!(h.ips.len(), 1);
    assert!(h.ips[0].ip.is_ipv6());
    assert_clean(&ipam).await;
    // An unused pool goes without force; a missing one is NotFound.
    ipam.release(&handle("c1")).await.unwrap();
    let p2 = PoolName::new("p2").unwrap();
    ipam.delete_pool(&p2, false).await.unwrap();
    assert!(matches!(
        ipam.delete_pool(&p2, false).await,
        Err(IpamError::NotFound(_))
    ));
    assert!(ipam.list_pools().await.unwrap().is_empty());
    assert_clean(&ipam).await;

    // A forced delete that crashed after its first step (the pool disabled) leaves a
    // consistent state; deleting again finishes the job.
    let mut p4 = pool(&ipam, "p4", "10.55.0.0/24", 26).await;
    ipam.assign(&req("c4", "a", 3, 0)).await.unwrap();
    p4.disabled = true;
    let mut raw = ipam.store().client().clone();
    let p4_name = PoolName::new("p4").unwrap();
    raw.put(
        ipam.keys().pool(&p4_name),
        serde_json::to_vec(&p4).unwrap(),
        None,
    )
    .await
    .unwrap();
    assert_clean(&ipam).await;
    // A disabled pool gives no new block.
    assert!(matches!(
        ipam.claim(&host("a"), Family::V4).await,
        Err(IpamError::PoolExhausted { .. })
    ));
    let done = ipam.delete_pool(&p4_name, true).await.unwrap();
    assert_eq!((done.blocks, done.released_ips), (1, 3));
    assert!(ipam.handle(&handle("c4")).await.unwrap().is_none());
    assert_clean(&ipam).await;
}

#[tokio::test]
async fn oversized_transaction_is_refused_at_once() {
    let etcd = Etcd::single().unwrap();
    let ipam = client(&etcd, opts()).await;
    // /32 blocks: 70 addresses need 70 new blocks, 141 writes in one txn; etcd allows 128.
    pool(&ipam, "tiny", "10.11.0.0/24", 32).await;
    nodes(&ipam, &["a"]).await;
    let start = Instant::now();
    match ipam.assign(&req("many", "a", 70, 0)).await {
        Err(IpamError::DatastoreRefused(msg)) => assert!(msg.contains("too many"), "{msg}"),
        r => panic!("{r:?}"),
    }
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "no retrying a refusal"
    );
    assert!(ipam.handle(&handle("many")).await.unwrap().is_none());
    assert_eq!(
        ipam.assign(&req("few", "a", 20, 0))
            .await
            .unwrap()
            .ips
            .len(),
        20
    );
    assert_clean(&ipam).await;
}

#[tokio::test]
async fn node_selector_and_disabled_pools() {
    let etcd = Etcd::single().unwrap();
    let ipam = client(&etcd, opts()).await;
    let mut rack = ipam::Pool::new(
        PoolName::new("rack1").unwrap(),
        "10.6.0.0/24".parse().unwrap(),
    );
    rack.node_selector = "rack == 'r1'".parse().unwrap();
    ipam.add_pool(&rack).await.unwrap();
    let mut off = ipam::Pool::new(
        PoolName::new("off").unwrap(),
        "10.7.0.0/24".parse().unwrap(),
    );
    off.disabled = true;
    ipam.add_pool(&off).await.unwrap();
    let labels = |r: &str| NodeRecord::new(BTreeMap::from([("rack".into(), r.into())]));
    ipam.register_node(&host("in-r1"), &labels("r1"), 0)
        .await
        .unwrap();
    ipam.register_node(&host("in-r2"), &labels("r2"), 0)
        .await
        .unwrap();
    let a = ipam.assign(&req("c1", "in-r1", 1, 0)).await.unwrap();
    assert!(rack.cidr.contains(a.ips[0].ip));
    assert!(matches!(
        ipam.assign(&req("c2", "in-r2", 1, 0)).await,
        Err(IpamError::PoolExhausted { .. })
    ));
    assert_clean(&ipam).await;
}

#[tokio::test]
async fn gc_reclaims_dead_host_after_delay_never_while_alive() {
    let etcd = Etcd::single().unwrap();
    let ipam = client(&etcd, opts()).await;
    pool(&ipam, "default", "10.8.0.0/25", 26).await;
    // Node records are persistent (bgpd keeps them without a lease): however long a host's
    // daemon is away, it stays a member until it is deleted below.
    nodes(&ipam, &["alive", "flaky", "dead"]).await;
    let d = ipam.assign(&req("d1", "dead", 3, 0)).await.unwrap();
    ipam.assign(&req("al1", "alive", 64, 0)).await.unwrap();
    // alive's block is full and the pool has no third block: it borrows from dead's block,
    // and so does flaky.
    let borrowed = ipam.assign(&req("al2", "alive", 1, 0)).await.unwrap();
    assert!(borrowed.ips[0].borrowed);
    assert_eq!(borrowed.ips[0].block, d.ips[0].block);
    ipam.assign(&req("fl1", "flaky", 1, 0)).await.unwrap();

    let r = ipam.gc().await.unwrap();
    assert!(
        r.released_handles.is_empty() && r.waiting.is_empty(),
        "{r:?}"
    );

    // "dead" is decommissioned (`routectl node delete`); flaky's record disappears too but
    // comes back within the delay.
    ipam.remove_node(&host("dead")).await.unwrap();
    ipam.remove_node(&host("flaky")).await.unwrap();
    let r = ipam.gc().await.unwrap();
    assert_eq!(
        r.waiting.iter().map(|h| h.as_str()).collect::<Vec<_>>(),
        ["dead", "flaky"]
    );
    assert!(r.released_handles.is_empty());
    let check = ipam.check().await.unwrap();
    assert!(
        check
            .findings
            .iter()
            .any(|f| matches!(f, Finding::BlockHostGone { host, .. } if host.as_str() == "dead"))
    );
    nodes(&ipam, &["flaky"]).await;

    tokio::time::sleep(Duration::from_millis(600)).await;
    let r = ipam.gc().await.unwrap();
    assert_eq!(r.released_handles, vec![handle("d1")]);
    // The block stays (alive borrows from it) but loses its affinity.
    assert_eq!(r.orphaned_blocks, vec![d.ips[0].block]);
    assert!(ipam.handle(&handle("fl1")).await.unwrap().is_some());
    assert!(ipam.blocks_of(&host("dead")).await.unwrap().is_empty());
    assert_clean(&ipam).await;

    // Once its borrowers leave, the orphan block is deleted after the grace period.
    ipam.release(&handle("al2")).await.unwrap();
    ipam.release(&handle("fl1")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let r = ipam.gc().await.unwrap();
    assert_eq!(r.deleted_blocks, vec![d.ips[0].block], "{r:?}");
    assert_clean(&ipam).await;
}

#[tokio::test]
async fn empty_blocks_lose_affinity_after_grace() {
    let etcd = Etcd::single().unwrap();
    let ipam = client(&etcd, opts()).await;
    pool(&ipam, "default", "10.9.0.0/16", 26).await;
    nodes(&ipam, &["a"]).await;
    // 70 addresses in one handle: two blocks, claimed and filled in one transaction.
    let a = ipam.assign(&req("big", "a", 70, 0)).await.unwrap();
    let blocks: BTreeSet<_> = a.ips.iter().map(|i| i.block).collect();
    assert_eq!(blocks.len(), 2);
    ipam.release(&handle("big")).await.unwrap();
    let r = ipam.gc().await.unwrap();
    assert!(r.deleted_blocks.is_empty(), "within grace: {r:?}");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let r = ipam.gc().await.unwrap();
    // One goes; the host keeps its last block (the daemon advertises it).
    assert_eq!(r.deleted_blocks.len(), 1);
    assert_eq!(ipam.blocks_of(&host("a")).await.unwrap().len(), 1);
    // The same client assigns again after GC removed a block it had cached.
    ipam.assign(&req("next", "a", 65, 0)).await.unwrap();
    assert_clean(&ipam).await;
}

#[tokio::test]
async fn check_finds_and_repair_fixes_inconsistencies() {
    let etcd = Etcd::single().unwrap();
    let ipam = client(&etcd, opts()).await;
    pool(&ipam, "default", "10.10.0.0/16", 26).await;
    nodes(&ipam, &["a", "b"]).await;
    let a = ipam.assign(&req("c1", "a", 2, 0)).await.unwrap();
    let b = ipam.assign(&req("c2", "b", 1, 0)).await.unwrap();
    assert_clean(&ipam).await;

    // Damage etcd by hand, as a buggy tool or a half-restored backup would.
    let keys = ipam.keys().clone();
    let mut raw = ipam.store().client().clone();
    raw.delete(keys.handle(&handle("c1")), None).await.unwrap();
    raw.delete(keys.affinity(&host("b"), &b.ips[0].block), None)
        .await
        .unwrap();
    let ghost: ipam::BlockCidr = "10.10.255.192/26".parse().unwrap();
    raw.put(
        keys.affinity(&host("a"), &ghost),
        r#"{"version":1,"block":"10.10.255.192/26"}"#,
        None,
    )
    .await
    .unwrap();
    let stray: ipam::BlockCidr = "10.99.0.0/26".parse().unwrap();
    raw.put(
        keys.block(&stray),
        r#"{"version":1,"cidr":"10.99.0.0/26","affinity":null}"#,
        None,
    )
    .await
    .unwrap();
    raw.put(keys.handle(&handle("bad")), "not json", None)
        .await
        .unwrap();
    raw.put(
        format!("{}fd99::-122", keys.blocks()),
        r#"{"version":7}"#,
        None,
    )
    .await
    .unwrap();

    let report = ipam.check().await.unwrap();
    let kinds: BTreeSet<String> = report
        .findings
        .iter()
        .map(|f| {
            format!("{f:?}")
                .split([' ', '{'])
                .next()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert_eq!(
        kinds,
        BTreeSet::from(
            [
                "AffinityWithoutBlock",
                "BlockAffinityMissing",
                "BlockOutsidePool",
                "Corrupt",
                "IpWithoutHandle"
            ]
            .map(String::from)
        ),
        "{report:#?}"
    );
    let leaks = report
        .findings
        .iter()
        .filter(|f| matches!(f, Finding::IpWithoutHandle { .. }))
        .count();
    assert_eq!(leaks, 2);
    // JSON for `routectl ipam check -o json`.
    let json = serde_json::to_string(&report).unwrap();
    assert!(json.contains("\"kind\":\"ip_without_handle\""));

    let repair = ipam.repair().await.unwrap();
    assert_eq!(repair.fixed.len(), 5, "{repair:#?}");
    // What is left needs a person: the two unreadable values.
    assert!(
        repair
            .after
            .findings
            .iter()
            .all(|f| matches!(f, Finding::Corrupt { .. })),
        "{repair:#?}"
    );
    assert_eq!(repair.after.findings.len(), 2);
    // The leaked addresses are free again, and the rest still works.
    let again = ipam.assign(&req("c3", "a", 64, 0)).await.unwrap();
    assert!(a.ips.iter().all(|i| again.ips.iter().any(|j| j.ip == i.ip)));
    assert_eq!(ipam.release(&handle("c2")).await.unwrap().len(), 1);
}
