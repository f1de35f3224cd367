//! Concurrency and failure against a real etcd: many hosts at once, an outage, a member crash.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use ipam::{Family, IpamError};
use testkit::etcd::Etcd;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_hosts_two_hundred_ips_each() {
    let etcd = Etcd::single().unwrap();
    let admin = client(&etcd, opts()).await;
    pool(&admin, "default", "10.0.0.0/16", 26).await;
    let hosts: Vec<String> = (0..50).map(|i| format!("host-{i}")).collect();
    let names: Vec<&str> = hosts.iter().map(String::as_str).collect();
    nodes(&admin, &names).await;

    // Each host is its own daemon: its own client, assigning one address per container.
    let mut tasks = Vec::new();
    for h in hosts.clone() {
        let ipam = client(&etcd, opts()).await;
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for c in 0..200 {
                let a = ipam
                    .assign(&req(&format!("{h}-c{c}.eth0"), &h, 1, 0))
                    .await
                    .unwrap();
                assert_eq!(a.ips.len(), 1);
                assert!(!a.ips[0].borrowed, "plenty of blocks: nothing to borrow");
                got.push(a.ips[0].ip);
            }
            (h, got)
        }));
    }
    let mut all: HashMap<IpAddr, String> = HashMap::new();
    for t in tasks {
        let (h, ips) = t.await.unwrap();
        for ip in ips {
            if let Some(other) = all.insert(ip, h.clone()) {
                panic!("{ip} given to {other} and {h}");
            }
        }
    }
    assert_eq!(all.len(), 50 * 200);

    // No block is affine to two hosts, and every host's blocks hold exactly its 200.
    let mut owner = BTreeMap::new();
    for h in &hosts {
        let blocks = admin.blocks_of(&host(h)).await.unwrap();
        assert_eq!(blocks.iter().map(|b| b.used).sum::<u32>(), 200, "{h}");
        assert!(blocks.len() >= 4, "{h}: 200 addresses need four /26 blocks");
        for b in blocks {
            assert!(
                owner.insert(b.cidr, h.clone()).is_none(),
                "{} twice",
                b.cidr
            );
        }
    }
    let report = assert_clean(&admin).await;
    assert_eq!(report.assigned, 10_000);
    assert_eq!(report.handles, 10_000);
    assert_eq!(report.blocks, owner.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_clients_for_one_host_race_without_harm() {
    // A daemon, a restarted daemon and routectl acting for the same host at once: their
    // caches go stale under each other, and every stale write must be rejected and retried.
    let etcd = Etcd::single().unwrap();
    let admin = client(&etcd, opts()).await;
    // /28 blocks: 16 addresses each, so the clients also race to claim blocks.
    pool(&admin, "default", "10.0.0.0/20", 28).await;
    nodes(&admin, &["h1"]).await;
    let mut tasks = Vec::new();
    for k in 0..3 {
        let ipam = client(&etcd, opts()).await;
        tasks.push(tokio::spawn(async move {
            let mut ips = Vec::new();
            for c in 0..60 {
                let id = format!("k{k}-c{c}");
                ips.push(ipam.assign(&req(&id, "h1", 1, 0)).await.unwrap().ips[0]);
                if c % 4 == 3 {
                    let gone = format!("k{k}-c{}", c - 2);
                    assert_eq!(ipam.release(&handle(&gone)).await.unwrap().len(), 1);
                }
            }
            ips
        }));
    }
    for t in tasks {
        for ip in t.await.unwrap() {
            assert!(!ip.borrowed, "plenty of blocks: h1 never borrows");
        }
    }
    let report = assert_clean(&admin).await;
    assert_eq!(report.assigned, 3 * (60 - 15));
    assert_eq!(report.handles, 3 * (60 - 15));
    let held: u32 = admin
        .blocks_of(&host("h1"))
        .await
        .unwrap()
        .iter()
        .map(|b| b.used)
        .sum();
    assert_eq!(held as usize, report.assigned);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_outage_mid_assignments() {
    let mut etcd = Etcd::single().unwrap();
    let mut o = opts();
    o.retry.unavailable_budget = Duration::from_millis(1500);
    let ipam = Arc::new(client(&etcd, o).await);
    pool(&ipam, "default", "10.0.0.0/20", 26).await;
    nodes(&ipam, &["h1", "h2"]).await;

    let mut tasks = Vec::new();
    for h in ["h1", "h2"] {
        let ipam = ipam.clone();
        tasks.push(tokio::spawn(async move {
            let mut results = Vec::new();
            for c in 0..150 {
                let id = format!("{h}-c{c}");
                let r = ipam.assign(&req(&id, h, 1, 0)).await;
                results.push((id, r));
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (h, results)
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    etcd.stop();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    etcd.start().unwrap();

    let mut failed = Vec::new();
    let mut given: HashMap<IpAddr, String> = HashMap::new();
    for t in tasks {
        let (h, results) = t.await.unwrap();
        for (id, r) in results {
            match r {
                Ok(a) => {
                    // Completed: etcd holds exactly what the caller was told.
                    let stored = ipam.handle(&handle(&id)).await.unwrap().unwrap();
                    assert_eq!(stored, a);
                    for ip in a.ips {
                        assert!(given.insert(ip.ip, id.clone()).is_none(), "{ip:?} twice");
                    }
                }
                Err(IpamError::DatastoreUnavailable(msg)) => failed.push((h, id, msg)),
                Err(e) => panic!("{id}: expected success or DatastoreUnavailable, got {e}"),
            }
        }
    }
    assert!(
        !failed.is_empty(),
        "the outage should have failed some assignments"
    );
    // A failed assignment either never happened or did (the reply was lost); asking again
    // with the same handle completes it without a second address.
    for (h, id, _) in &failed {
        let before = ipam.handle(&handle(id)).await.unwrap();
        let a = ipam.assign(&req(id, h, 1, 0)).await.unwrap();
        if let Some(b) = before {
            assert_eq!(a, b, "retry of {id} must return what was stored");
        }
        for ip in &a.ips {
            assert!(given.insert(ip.ip, id.clone()).is_none(), "{ip:?} twice");
        }
    }
    assert_eq!(given.len(), 300);
    let report = assert_clean(&ipam).await;
    assert_eq!(report.assigned, 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_member_killed_during_assignments() {
    let mut etcd = Etcd::cluster(3).unwrap();
    let ipam = Arc::new(client(&etcd, opts()).await);
    pool(&ipam, "default", "10.0.0.0/20", 26).await;
    nodes(&ipam, &["h0", "h1", "h2", "h3"]).await;

    let mut tasks = Vec::new();
    for i in 0..4 {
        let ipam = ipam.clone();
        tasks.push(tokio::spawn(async move {
            let h = format!("h{i}");
            let mut ips = Vec::new();
            for c in 0..100 {
                let a = ipam.assign(&req(&format!("{h}-c{c}"), &h, 1, 0)).await;
                ips.push(a.map_err(|e| format!("{h}-c{c}: {e}"))?.ips[0].ip);
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
            Ok::<_, String>(ips)
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Kill the leader: the hardest member to lose (an election follows).
    let leader = leader_index(&etcd).await;
    etcd.kill_member(leader);
    let mut seen = BTreeSet::new();
    for t in tasks {
        for ip in t.await.unwrap().unwrap() {
            assert!(seen.insert(ip), "{ip} twice");
        }
    }
    assert_eq!(seen.len(), 400);
    let report = assert_clean(&ipam).await;
    assert_eq!(report.assigned, 400);
    // Block claims keep working on the two members left.
    ipam.claim(&host("h0"), Family::V4).await.unwrap();
}

/// Which member leads, asked of each member directly; asked again while an election is on
/// (with 50 ms heartbeats, a loaded machine can make the members elect a new leader).
async fn leader_index(etcd: &Etcd) -> usize {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        for (i, ep) in etcd.endpoints().iter().enumerate() {
            let mut c = etcd_client::Client::connect([ep], None).await.unwrap();
            let s = c.status().await.unwrap();
            if s.header().map(|h| h.member_id()) == Some(s.leader()) {
                return i;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no member says it leads"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
