//! Prometheus metrics at `metrics.address` (`GET /metrics`), refreshed from the daemon's state
//! on each scrape.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use crate::daemon::Daemon;

/// Totals seen at the last scrape.
#[derive(Debug, Default)]
struct Seen {
    /// Per peer: UPDATEs (received, sent) of its current session.
    updates: HashMap<IpAddr, (u64, u64)>,
    /// Failed etcd requests.
    etcd_errors: u64,
}

/// The daemon's metrics.
pub struct Metrics {
    registry: Registry,
    peers: Gauge,
    peers_up: Gauge,
    prefixes_received: Gauge,
    prefixes_accepted: Gauge,
    prefixes_advertised: Gauge,
    updates_received: Counter,
    updates_sent: Counter,
    kernel_routes_wanted: Gauge,
    kernel_routes_installed: Gauge,
    kernel_in_sync: Gauge,
    ipam_blocks: Gauge,
    ipam_addresses: Gauge,
    ipam_borrowed: Gauge,
    etcd_errors: Counter,
    policy_cluster_in_force: Gauge,
    policy_cluster_refused: Gauge,
    policy_applied: Gauge,
    /// Counts last seen, to turn the daemon's totals into counter increments.
    seen: Mutex<Seen>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("bgpd");
        let m = Metrics {
            peers: Gauge::default(),
            peers_up: Gauge::default(),
            prefixes_received: Gauge::default(),
            prefixes_accepted: Gauge::default(),
            prefixes_advertised: Gauge::default(),
            updates_received: Counter::default(),
            updates_sent: Counter::default(),
            kernel_routes_wanted: Gauge::default(),
            kernel_routes_installed: Gauge::default(),
            kernel_in_sync: Gauge::default(),
            ipam_blocks: Gauge::default(),
            ipam_addresses: Gauge::default(),
            ipam_borrowed: Gauge::default(),
            etcd_errors: Counter::default(),
            policy_cluster_in_force: Gauge::default(),
            policy_cluster_refused: Gauge::default(),
            policy_applied: Gauge::default(),
            seen: Mutex::new(Seen::default()),
            registry: Registry::default(),
        };
        registry.register("peers", "BGP peers configured", m.peers.clone());
        registry.register("peers_up", "BGP peers Established", m.peers_up.clone());
        registry.register(
            "prefixes_received",
            "Prefixes received from all peers",
            m.prefixes_received.clone(),
        );
        registry.register(
            "prefixes_accepted",
            "Prefixes accepted from all peers",
            m.prefixes_accepted.clone(),
        );
        registry.register(
            "prefixes_advertised",
            "Prefixes advertised to all peers",
            m.prefixes_advertised.clone(),
        );
        registry.register(
            "updates_received",
            "BGP UPDATE messages received",
            m.updates_received.clone(),
        );
        registry.register(
            "updates_sent",
            "BGP UPDATE messages sent",
            m.updates_sent.clone(),
        );
        registry.register(
            "kernel_routes_wanted",
            "Routes wanted in the kernel",
            m.kernel_routes_wanted.clone(),
        );
        registry.register(
            "kernel_routes_installed",
            "Wanted routes installed in the kernel",
            m.kernel_routes_installed.clone(),
        );
        registry.register(
            "kernel_in_sync",
            "1 when the kernel holds every wanted route",
            m.kernel_in_sync.clone(),
        );
        registry.register(
            "ipam_blocks",
            "IPAM blocks held by this host",
            m.ipam_blocks.clone(),
        );
        registry.register(
            "ipam_addresses",
            "Container addresses assigned on this host",
            m.ipam_addresses.clone(),
        );
        registry.register(
            "ipam_borrowed_addresses",
            "Addresses borrowed from other hosts' blocks",
            m.ipam_borrowed.clone(),
        );
        registry.register("etcd_errors", "Failed etcd requests", m.etcd_errors.clone());
        registry.register(
            "policy_cluster_in_force",
            "Cluster policies from etcd in force on this host",
            m.policy_cluster_in_force.clone(),
        );
        registry.register(
            "policy_cluster_refused",
            "Cluster policies whose stored value is refused or that are left out on this host",
            m.policy_cluster_refused.clone(),
        );
        registry.register(
            "policy_applied",
            "1 when the last firewall apply succeeded (else the previous table stays)",
            m.policy_applied.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Refreshes every value from the daemon and encodes the exposition text.
    pub async fn render(&self, daemon: &Daemon) -> String {
        if let Ok(peers) = daemon.speaker.peers().await {
            let sum = |f: &dyn Fn(&bgpd_speaker::PeerStatus) -> u64| {
                peers.iter().map(f).sum::<u64>() as i64
            };
            self.peers.set(peers.len() as i64);
            self.peers_up
                .set(peers.iter().filter(|p| p.state == "Established").count() as i64);
            self.prefixes_received.set(sum(&|p| p.prefixes_received));
            self.prefixes_accepted.set(sum(&|p| p.prefixes_accepted));
            self.prefixes_advertised
                .set(sum(&|p| p.prefixes_advertised));
            if let Ok(mut seen) = self.seen.lock() {
                for p in &peers {
                    let last = seen.updates.entry(p.address).or_insert((0, 0));
                    // A reset session starts its counts again: count from zero then.
                    let delta =
                        |now: u64, before: u64| if now >= before { now - before } else { now };
                    self.updates_received
                        .inc_by(delta(p.received.update, last.0));
                    self.updates_sent.inc_by(delta(p.sent.update, last.1));
                    *last = (p.received.update, p.sent.update);
                }
                let errors = daemon.health.errors();
                self.etcd_errors
                    .inc_by(errors.saturating_sub(seen.etcd_errors));
                seen.etcd_errors = errors;
            }
        }
        let fib = daemon.fib.status();
        self.kernel_routes_wanted.set(fib.wanted as i64);
        self.kernel_routes_installed.set(fib.installed as i64);
        self.kernel_in_sync.set(i64::from(fib.in_sync));
        {
            let st = daemon.state.lock().await;
            let ips = || st.attached.values().flat_map(|a| &a.ips);
            self.ipam_blocks.set(st.blocks.len() as i64);
            self.ipam_addresses.set(ips().count() as i64);
            self.ipam_borrowed
                .set(ips().filter(|i| i.borrowed).count() as i64);
        }
        if let Ok(firewall) = daemon.firewall.lock() {
            let status = firewall.status();
            self.policy_cluster_in_force
                .set(status.cluster_in_force.len() as i64);
            self.policy_cluster_refused
                .set(status.cluster_refused.len() as i64);
            self.policy_applied
                .set(i64::from(status.last_error.is_none()));
        }
        let mut text = String::new();
        if let Err(e) = encode(&mut text, &self.registry) {
            tracing::warn!("encoding metrics: {e}");
        }
        text
    }
}

/// Serves `GET /metrics` (any path, in fact) on `address` forever.
pub async fn serve(address: SocketAddr, metrics: Arc<Metrics>, daemon: Arc<Daemon>) {
    let listener = match TcpListener::bind(address).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("metrics: cannot listen on {address}: {e}");
            return;
        }
    };
    tracing::info!("metrics at http://{address}/metrics");
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let (metrics, daemon) = (metrics.clone(), daemon.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |_req| {
                let (metrics, daemon) = (metrics.clone(), daemon.clone());
                async move {
                    let text = metrics.render(&daemon).await;
                    let mut response = Response::new(Full::new(Bytes::from(text)));
                    *response.status_mut() = StatusCode::OK;
                    response.headers_mut().insert(
                        hyper::header::CONTENT_TYPE,
                        hyper::header::HeaderValue::from_static(
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        ),
                    );
                    Ok::<_, Infallible>(response)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
