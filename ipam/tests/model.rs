//! Property test: the allocation logic against a plain model of who holds which address,
//! with two clients (stale caches) sharing one in-memory store.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ipam::store::{Entry, Outcome, Read, Store, StoreError, Txn};
use ipam::{
    AssignRequest, HandleId, HostName, Ipam, IpamError, IpamOptions, MemStore, NodeRecord, Pool,
    PoolName, RetryPolicy,
};
use proptest::prelude::*;

/// A store whose replies get lost: a transaction fails before it reaches the store, or is
/// applied and then its reply is lost (a crash or timeout right after the write). The client
/// must neither duplicate nor lose an address either way.
struct Lossy {
    inner: MemStore,
    /// xorshift state; 0 turns losses off.
    rng: AtomicU64,
}

impl Lossy {
    fn roll(&self) -> u64 {
        let mut x = self.rng.load(Ordering::Relaxed);
        if x == 0 {
            return u64::MAX;
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng.store(x, Ordering::Relaxed);
        x % 10
    }
}

impl Store for Lossy {
    fn read(
        &self,
        reads: Vec<Read>,
    ) -> impl Future<Output = Result<(Vec<Vec<Entry>>, i64), StoreError>> + Send {
        let lost = self.roll() == 0;
        let fut = self.inner.read(reads);
        async move {
            if lost {
                return Err(StoreError::Unavailable("read lost".into()));
            }
            fut.await
        }
    }

    fn txn(&self, txn: Txn) -> impl Future<Output = Result<Outcome, StoreError>> + Send {
        let roll = self.roll();
        let fut = self.inner.txn(txn);
        async move {
            match roll {
                0 => Err(StoreError::Unavailable("request lost".into())),
                1 => {
                    let _ = fut.await;
                    Err(StoreError::Unavailable("reply lost".into()))
                }
                _ => fut.await,
            }
        }
    }

    fn put_with_lease(
        &self,
        key: String,
        value: Vec<u8>,
        lease: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.inner.put_with_lease(key, value, lease)
    }
}

/// A small pool so exhaustion, borrowing and block claims all happen: 8 blocks of 4 (IPv4),
/// 4 blocks of 64 (IPv6).
const V4_SIZE: usize = 32;
const V6_SIZE: usize = 256;

#[derive(Debug, Clone)]
enum Op {
    Assign {
        client: usize,
        host: usize,
        handle: usize,
        v4: u32,
        v6: u32,
    },
    Release {
        client: usize,
        handle: usize,
    },
    ReleaseIp {
        client: usize,
        pick: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..2usize, 0..3usize, 0..24usize, 0..6u32, 0..3u32).prop_map(
            |(client, host, handle, v4, v6)| Op::Assign { client, host, handle, v4, v6 }
        ),
        2 => (0..2usize, 0..24usize).prop_map(|(client, handle)| Op::Release { client, handle }),
        1 => (0..2usize, any::<usize>()).prop_map(|(client, pick)| Op::ReleaseIp { client, pick }),
    ]
}

fn h(i: usize) -> HandleId {
    HandleId::new(format!("c{i}")).unwrap()
}

async fn run(ops: Vec<Op>, seed: u64) {
    let store = Arc::new(Lossy {
        inner: MemStore::new(),
        rng: AtomicU64::new(0),
    });
    let opts = IpamOptions {
        retry: RetryPolicy {
            backoff_base: Duration::from_micros(10),
            backoff_max: Duration::from_micros(100),
            ..RetryPolicy::default()
        },
        ..IpamOptions::default()
    };
    let clients: Vec<Ipam<Arc<Lossy>>> = (0..2)
        .map(|_| Ipam::with_store(store.clone(), opts.clone()))
        .collect();
    let mut pool4 = Pool::new(PoolName::new("v4").unwrap(), "10.0.0.0/27".parse().unwrap());
    pool4.block_prefix_len = 30;
    clients[0].add_pool(&pool4).await.unwrap();
    let pool6 = Pool::new(PoolName::new("v6").unwrap(), "fd00::/120".parse().unwrap());
    clients[0].add_pool(&pool6).await.unwrap();
    let hosts: Vec<HostName> = (0..3)
        .map(|i| HostName::new(format!("h{i}")).unwrap())
        .collect();
    for host in &hosts {
        clients[0]
            .register_node(host, &NodeRecord::default(), 0)
            .await
            .unwrap();
    }

    // Setup done; from here on about one request or reply in five is lost.
    store.rng.store(seed | 1, Ordering::Relaxed);
    // The model: handle → its addresses.
    let mut model: BTreeMap<HandleId, Vec<IpAddr>> = BTreeMap::new();
    for op in ops {
        match op {
            Op::Assign {
                client,
                host,
                handle,
                v4,
                v6,
            } => {
                let req = AssignRequest {
                    handle: h(handle),
                    host: hosts[host].clone(),
                    v4,
                    v6,
                };
                let got = clients[client].assign(&req).await;
                let used = |v6: bool| {
                    model
                        .values()
                        .flatten()
                        .filter(|ip| ip.is_ipv6() == v6)
                        .count()
                };
                match (got, model.get(&req.handle)) {
                    (Err(IpamError::Invalid(_)), _) => assert_eq!(v4 + v6, 0),
                    (Ok(a), Some(before)) => {
                        let ips: Vec<IpAddr> = a.ips.iter().map(|i| i.ip).collect();
                        assert_eq!(&ips, before, "same handle, same addresses");
                    }
                    (Ok(a), None) => {
                        let ips: Vec<IpAddr> = a.ips.iter().map(|i| i.ip).collect();
                        assert_eq!(ips.iter().filter(|i| i.is_ipv4()).count(), v4 as usize);
                        assert_eq!(ips.iter().filter(|i| i.is_ipv6()).count(), v6 as usize);
                        let taken: BTreeSet<&IpAddr> = model.values().flatten().collect();
                        for ip in &ips {
                            assert!(!taken.contains(ip), "{ip} given twice");
                            let p = if ip.is_ipv4() {
                                &pool4.cidr
                            } else {
                                &pool6.cidr
                            };
                            assert!(p.contains(*ip));
                        }
                        for i in &a.ips {
                            assert!(i.block.network().contains(i.ip));
                        }
                        model.insert(req.handle.clone(), ips);
                    }
                    (Err(IpamError::PoolExhausted { family, .. }), None) => {
                        // All-or-nothing: refused only if the free space really is short.
                        let short4 = used(false) + v4 as usize > V4_SIZE;
                        let short6 = used(true) + v6 as usize > V6_SIZE;
                        if !(short4 || short6) {
                            let mut dbg = String::new();
                            for hh in &hosts {
                                dbg += &format!("{hh}: {:?}\n", clients[0].blocks_of(hh).await);
                            }
                            panic!(
                                "{family} exhausted with room left: {req:?} model {model:?}\n{dbg}"
                            );
                        }
                    }
                    (r, m) => panic!("unexpected {r:?} with model {m:?}"),
                }
            }
            Op::Release { client, handle } => {
                let freed = clients[client].release(&h(handle)).await.unwrap();
                let want = model.remove(&h(handle)).unwrap_or_default();
                assert_eq!(freed, want);
            }
            Op::ReleaseIp { client, pick } => {
                let all: Vec<(HandleId, IpAddr)> = model
                    .iter()
                    .flat_map(|(k, v)| v.iter().map(move |ip| (k.clone(), *ip)))
                    .collect();
                if all.is_empty() {
                    continue;
                }
                let (owner, ip) = all[pick % all.len()].clone();
                clients[client].release_ip(ip).await.unwrap();
                let left = model.entry(owner.clone()).or_default();
                left.retain(|x| *x != ip);
                if left.is_empty() {
                    model.remove(&owner);
                }
            }
        }
        let report = check_without_losses(&store, &clients[0]).await;
        assert!(report.is_clean(), "{:#?}", report.findings);
        assert_eq!(report.assigned, model.values().map(Vec::len).sum::<usize>());
        assert_eq!(report.handles, model.len());
    }
}

/// Checks with losses paused, so the check itself always completes.
async fn check_without_losses(store: &Lossy, ipam: &Ipam<Arc<Lossy>>) -> ipam::Report {
    let seed = store.rng.swap(0, Ordering::Relaxed);
    let report = ipam.check().await.unwrap();
    store.rng.store(seed, Ordering::Relaxed);
    report
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]
    #[test]
    fn allocation_matches_model(ops in proptest::collection::vec(op(), 1..60), seed: u64) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(run(ops, seed));
    }
}
