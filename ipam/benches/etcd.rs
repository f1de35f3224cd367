//! IPAM throughput and latency on one real etcd, beside the raw etcd txn floor measured in
//! the same run. Run by `bash ipam/bench/run.sh`; prints a Markdown table of medians.

use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{Compare, CompareOp, TxnOp};
use ipam::{AssignRequest, Family, HandleId, HostName, Ipam, IpamOptions, Pool, PoolName};
use testkit::etcd::Etcd;

const ROUNDS: usize = 5;

/// Latencies of one measured batch and its wall time.
struct Batch {
    lat: Vec<Duration>,
    wall: Duration,
}

impl Batch {
    fn pct(&mut self, p: f64) -> Duration {
        self.lat.sort();
        let i = ((self.lat.len() as f64 - 1.0) * p).round() as usize;
        self.lat.get(i).copied().unwrap_or_default()
    }
    fn rate(&self) -> f64 {
        self.lat.len() as f64 / self.wall.as_secs_f64()
    }
}

/// `clients` tasks each running `per` operations back to back.
async fn measure<F, Fut>(clients: usize, per: usize, op: F) -> Batch
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    let start = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let op = op.clone();
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(per);
                for i in 0..per {
                    let t = Instant::now();
                    op(c, i).await;
                    lat.push(t.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.expect("bench task"));
    }
    Batch {
        lat,
        wall: start.elapsed(),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[derive(Default)]
struct Stats {
    p50: Vec<f64>,
    p99: Vec<f64>,
    rate: Vec<f64>,
}

impl Stats {
    fn add(&mut self, mut b: Batch) {
        self.p50.push(ms(b.pct(0.5)));
        self.p99.push(ms(b.pct(0.99)));
        self.rate.push(b.rate());
    }
    fn med(&self) -> (f64, f64, f64) {
        (
            median(self.p50.clone()),
            median(self.p99.clone()),
            median(self.rate.clone()),
        )
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let etcd = Etcd::single().expect("start etcd");
    let eps = etcd.endpoints();
    let opts = IpamOptions::default();
    let admin = Ipam::connect(&eps, opts.clone()).await.expect("connect");
    admin
        .add_pool(&Pool::new(
            PoolName::new("bench").expect("name"),
            "10.0.0.0/8".parse().expect("cidr"),
        ))
        .await
        .expect("pool");
    let block_like = vec![b'x'; 600];
    let handle_like = vec![b'y'; 150];

    println!(
        "| clients | raw txn p50 / p99 (ms) | raw txn/s | assign p50 / p99 (ms) | assign/s | p50 ratio | p99 ratio | claim p50 / p99 (ms) | claims/s |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for (clients, per) in [(1usize, 300usize), (10, 100), (100, 20)] {
        let (mut raw_s, mut asg_s, mut clm_s) =
            (Stats::default(), Stats::default(), Stats::default());
        // The floor's clients connect like the IPAM ones: one connection per client.
        let mut raws = Vec::new();
        for _ in 0..clients {
            raws.push(
                etcd_client::Client::connect(&eps, None)
                    .await
                    .expect("raw client"),
            );
        }
        let raws = Arc::new(raws);
        for round in 0..ROUNDS {
            // The floor: one guarded txn writing a block-sized and a handle-sized value.
            let (r, b, h) = (raws.clone(), block_like.clone(), handle_like.clone());
            raw_s.add(
                measure(clients, per, move |c, i| {
                    let mut kv = r[c].kv_client();
                    let (b, h) = (b.clone(), h.clone());
                    async move {
                        let key = format!("/raw/{round}/{c}");
                        let txn = etcd_client::Txn::new()
                            .when([Compare::mod_revision(key.as_str(), CompareOp::Greater, -1)])
                            .and_then([
                                TxnOp::put(key.as_str(), b, None),
                                TxnOp::put(format!("{key}/{i}"), h, None),
                            ]);
                        kv.txn(txn).await.expect("raw txn");
                    }
                })
                .await,
            );
            // Assignments: each client is one host's daemon with its first block claimed.
            let mut ipams = Vec::new();
            for c in 0..clients {
                let ipam = Ipam::connect(&eps, opts.clone()).await.expect("connect");
                let host = HostName::new(format!("a{clients}-{round}-{c}")).expect("host");
                ipam.claim(&host, Family::V4).await.expect("claim");
                ipams.push((ipam, host));
            }
            let ipams = Arc::new(ipams);
            let list = ipams.clone();
            asg_s.add(
                measure(clients, per, move |c, i| {
                    let list = list.clone();
                    async move {
                        let (ipam, host) = &list[c];
                        let req = AssignRequest {
                            handle: HandleId::new(format!("{host}-{i}")).expect("handle"),
                            host: host.clone(),
                            v4: 1,
                            v6: 0,
                        };
                        ipam.assign(&req).await.expect("assign");
                    }
                })
                .await,
            );
            // Block claims by distinct hosts.
            let list = ipams.clone();
            clm_s.add(
                measure(clients, per.min(50), move |c, _| {
                    let list = list.clone();
                    async move {
                        let (ipam, host) = &list[c];
                        ipam.claim(host, Family::V4).await.expect("claim");
                    }
                })
                .await,
            );
        }
        let (r50, r99, rr) = raw_s.med();
        let (a50, a99, ar) = asg_s.med();
        let (c50, c99, cr) = clm_s.med();
        println!(
            "| {clients} | {r50:.2} / {r99:.2} | {rr:.0} | {a50:.2} / {a99:.2} | {ar:.0} | {:.2} | {:.2} | {c50:.2} / {c99:.2} | {cr:.0} |",
            a50 / r50,
            a99 / r99
        );
    }

    // 100 containers starting at once on one host (one client, its first block claimed).
    let mut walls = Vec::new();
    for round in 0..ROUNDS {
        let ipam = Arc::new(Ipam::connect(&eps, opts.clone()).await.expect("connect"));
        let host = HostName::new(format!("burst-{round}")).expect("host");
        ipam.claim(&host, Family::V4).await.expect("claim");
        let start = Instant::now();
        let tasks: Vec<_> = (0..100)
            .map(|i| {
                let (ipam, host) = (ipam.clone(), host.clone());
                tokio::spawn(async move {
                    let req = AssignRequest {
                        handle: HandleId::new(format!("{host}-{i}")).expect("handle"),
                        host,
                        v4: 1,
                        v6: 0,
                    };
                    ipam.assign(&req).await.expect("assign");
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("task");
        }
        walls.push(ms(start.elapsed()));
    }
    println!();
    println!(
        "100 containers on one host, all at once: median {:.0} ms (of {ROUNDS} runs)",
        median(walls)
    );
}
