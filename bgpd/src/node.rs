//! The node registry in etcd: our record under a lease kept alive, and a live view of every
//! node's record (list, then watch) so mesh peers follow hosts joining and leaving.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, PutOptions};
use tokio::sync::watch;

use crate::health::EtcdHealth;

/// Seconds our node record outlives us: peers drop a dead host after at most this long.
pub const LEASE_TTL: i64 = 15;

pub use bgpd_api::{NodeRecord, RECORD_VERSION};

/// Every node's record by name, as last seen.
pub type Registry = BTreeMap<String, NodeRecord>;

/// Delay between attempts while etcd is unreachable: 1 s doubling to 30 s.
pub struct Backoff(Duration);

impl Backoff {
    /// The first delay.
    pub fn new() -> Backoff {
        Backoff(Duration::from_secs(1))
    }

    /// Waits the current delay and doubles it.
    pub async fn wait(&mut self) {
        tokio::time::sleep(self.0).await;
        self.0 = (self.0 * 2).min(Duration::from_secs(30));
    }

    /// The delay the next `wait` takes.
    pub fn next(&self) -> Duration {
        self.0
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new()
    }
}

/// Keeps our record in etcd: grants a lease, writes the record, keeps the lease alive, and
/// starts over (new lease, record rewritten) whenever the lease is lost.
pub struct Registration {
    client: Client,
    key: String,
    record: NodeRecord,
    health: Arc<EtcdHealth>,
}

impl Registration {
    /// Registration of `record` at `key`.
    pub fn new(client: Client, key: String, record: NodeRecord, health: Arc<EtcdHealth>) -> Self {
        Registration {
            client,
            key,
            record,
            health,
        }
    }

    /// Writes the record under a fresh lease, retrying with backoff (and a log line per try)
    /// until etcd answers. Returns the lease id.
    pub async fn register(&mut self, endpoints: &str) -> i64 {
        let mut backoff = Backoff::new();
        loop {
            match self.try_register().await {
                Ok(lease) => {
                    self.health.ok();
                    return lease;
                }
                Err(e) => {
                    self.health.failed(&e);
                    tracing::warn!(
                        "etcd unreachable at {endpoints}: {e}; retrying in {}s",
                        backoff.next().as_secs()
                    );
                    backoff.wait().await;
                }
            }
        }
    }

    async fn try_register(&mut self) -> Result<i64, etcd_client::Error> {
        let lease = self.client.lease_grant(LEASE_TTL, None).await?.id();
        let value = serde_json::to_vec(&self.record).unwrap_or_default();
        self.client
            .put(
                self.key.as_str(),
                value,
                Some(PutOptions::new().with_lease(lease)),
            )
            .await?;
        Ok(lease)
    }

    /// Keeps `lease` alive forever; re-registers when it is lost (etcd down longer than the
    /// TTL). Runs as a task.
    pub async fn keep_alive(mut self, mut lease: i64, endpoints: String) {
        let period = Duration::from_secs((LEASE_TTL as u64 / 3).max(1));
        loop {
            match self.keep_alive_once(lease, period).await {
                Ok(()) => {}
                Err(e) => {
                    self.health.failed(&e);
                    tracing::warn!("etcd lease keep-alive failed: {e}; registering again");
                    lease = self.register(&endpoints).await;
                    tracing::info!(lease, "node record written again");
                }
            }
        }
    }

    /// One keep-alive stream until it fails or reports the lease gone.
    async fn keep_alive_once(
        &mut self,
        lease: i64,
        period: Duration,
    ) -> Result<(), etcd_client::Error> {
        let (mut keeper, mut replies) = self.client.lease_keep_alive(lease).await?;
        loop {
            keeper.keep_alive().await?;
            match tokio::time::timeout(Duration::from_secs(5), replies.message()).await {
                Ok(Ok(Some(reply))) if reply.ttl() > 0 => self.health.ok(),
                Ok(Ok(Some(_))) => {
                    return Err(etcd_client::Error::LeaseKeepAliveError(
                        "lease expired".into(),
                    ));
                }
                Ok(Ok(None)) => {
                    return Err(etcd_client::Error::LeaseKeepAliveError(
                        "keep-alive stream closed".into(),
                    ));
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => {
                    return Err(etcd_client::Error::LeaseKeepAliveError(
                        "no keep-alive answer in 5s".into(),
                    ));
                }
            }
            tokio::time::sleep(period).await;
        }
    }
}

/// Why a client for etcd could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The TLS settings do not fit the endpoints.
    #[error(transparent)]
    Tls(#[from] ipam::TlsError),
    /// The client refused its arguments.
    #[error(transparent)]
    Etcd(#[from] etcd_client::Error),
}

/// A client for long-lived streams (lease keep-alive, watch): unlike IPAM's, it has no
/// per-request deadline (which would cut a stream after that long) and pings etcd no more
/// often than etcd allows. With `tls`, every endpoint is `https://`.
pub async fn stream_client(
    endpoints: &[String],
    tls: Option<&ipam::EtcdTls>,
) -> Result<Client, ConnectError> {
    let options = etcd_client::ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(2))
        // etcd refuses pings more often than its --grpc-keepalive-min-time (5 s by default)
        // with GOAWAY "too_many_pings", which would break the streams.
        .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5))
        .with_keep_alive_while_idle(true)
        // A member cut off from the others must end its watches ("no leader") rather than
        // keep them open and silent while the rest of the cluster moves on.
        .with_require_leader(true);
    let options = ipam::store::secure(options, endpoints, tls)?;
    Ok(Client::connect(endpoints, Some(options)).await?)
}

/// Follows `<root>/nodes/`: lists it, then watches from the next revision, publishing the whole
/// registry after each change. Starts over with a fresh list when the watch breaks. Runs as a
/// task.
pub async fn follow(
    client: Client,
    prefix: String,
    out: watch::Sender<Registry>,
    health: Arc<EtcdHealth>,
) {
    crate::prefix_watch::follow(client, prefix, out, health, "node records", fold).await
}

/// Folds one change of `<root>/nodes/<name>` into the registry; a record that does not decode
/// (another version, a record written by IPAM tests with labels only) is skipped with a log
/// line, never a panic.
fn fold(registry: &mut Registry, name: &str, value: Option<&[u8]>) {
    if name.contains('/') {
        return;
    }
    let Some(value) = value else {
        registry.remove(name);
        return;
    };
    match serde_json::from_slice::<NodeRecord>(value) {
        Ok(record) => {
            registry.insert(name.to_string(), record);
        }
        Err(e) => {
            tracing::warn!(node = %name, "ignoring node record that does not decode: {e}");
            registry.remove(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bgpd_api::Role;

    #[test]
    fn records_decode_or_are_skipped() {
        let mut r = Registry::new();
        let rec = NodeRecord {
            version: RECORD_VERSION,
            labels: BTreeMap::new(),
            address: "10.0.0.1".parse().unwrap(),
            address_v6: None,
            asn: 64512,
            router_id: "10.0.0.1".parse().unwrap(),
            role: Role::Host,
            mesh: true,
            port: 179,
        };
        let good = serde_json::to_vec(&rec).unwrap();
        fold(&mut r, "a", Some(&good));
        fold(&mut r, "b", Some(br#"{"version":1,"labels":{}}"#));
        fold(&mut r, "c", Some(b"\xff\x00garbage"));
        fold(&mut r, "d/e", Some(&good));
        fold(&mut r, "f", Some(&good));
        fold(&mut r, "f", None);
        assert_eq!(r.keys().collect::<Vec<_>>(), vec!["a"]);
        assert_eq!(r["a"], rec);
    }

    /// A member cut off from the rest (here: the others killed) ends the watch on it, so the
    /// follower reports the failure and starts over instead of waiting for events forever.
    #[tokio::test]
    async fn a_watch_on_a_member_without_a_leader_ends() {
        let mut etcd = testkit::etcd::Etcd::cluster(3).unwrap();
        let client = stream_client(&[etcd.endpoint()], None).await.unwrap();
        let mut kv = client.kv_client();
        kv.put("/t/n/a", "1", None).await.unwrap();
        let (tx, mut rx) = watch::channel(0usize);
        let health = Arc::new(EtcdHealth::default());
        let task = tokio::spawn(crate::prefix_watch::follow(
            client.clone(),
            "/t/n/".to_string(),
            tx,
            health.clone(),
            "test keys",
            |n: &mut usize, _: &str, _: Option<&[u8]>| *n += 1,
        ));
        // Watching: a put after the list is seen.
        rx.wait_for(|&n| n == 1).await.unwrap();
        kv.put("/t/n/b", "2", None).await.unwrap();
        tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|&n| n == 2))
            .await
            .expect("the watch is live")
            .unwrap();
        assert_eq!(health.last_error(), None);

        etcd.kill_member(1);
        etcd.kill_member(2);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while health.last_error().is_none() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the watch on a member without a leader stayed open and silent"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        task.abort();
    }
}
