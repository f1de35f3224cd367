//! The node registry in etcd: our record under a lease kept alive, and a live view of every
//! node's record (list, then watch) so mesh peers follow hosts joining and leaving.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, EventType, GetOptions, PutOptions, WatchOptions};
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
        .with_keep_alive_while_idle(true);
    let options = ipam::store::secure(options, endpoints, tls)?;
    Ok(Client::connect(endpoints, Some(options)).await?)
}

/// Follows `<root>/nodes/`: lists it, then watches from the next revision, publishing the whole
/// registry after each change. Starts over with a fresh list when the watch breaks. Runs as a
/// task.
pub async fn follow(
    mut client: Client,
    prefix: String,
    out: watch::Sender<Registry>,
    health: Arc<EtcdHealth>,
) {
    let mut backoff = Backoff::new();
    loop {
        let began = std::time::Instant::now();
        match follow_once(&mut client, &prefix, &out, &health).await {
            Ok(()) => backoff = Backoff::new(),
            Err(e) => {
                // A watch that ran a while broke on its own: retry soon, not after a long wait.
                if began.elapsed() > Duration::from_secs(10) {
                    backoff = Backoff::new();
                }
                health.failed(&e);
                tracing::warn!(
                    "watching node records failed: {e}; retrying in {}s",
                    backoff.next().as_secs()
                );
                backoff.wait().await;
            }
        }
    }
}

async fn follow_once(
    client: &mut Client,
    prefix: &str,
    out: &watch::Sender<Registry>,
    health: &EtcdHealth,
) -> Result<(), etcd_client::Error> {
    let listed = client
        .get(prefix, Some(GetOptions::new().with_prefix()))
        .await?;
    let revision = listed.header().map_or(0, |h| h.revision());
    let mut registry = Registry::new();
    for kv in listed.kvs() {
        insert(&mut registry, prefix, kv.key(), kv.value());
    }
    out.send_replace(registry.clone());
    health.ok();
    let mut stream = client
        .watch(
            prefix,
            Some(
                WatchOptions::new()
                    .with_prefix()
                    .with_start_revision(revision + 1),
            ),
        )
        .await?;
    while let Some(reply) = stream.message().await? {
        if reply.canceled() {
            return Err(etcd_client::Error::WatchError(format!(
                "watch canceled: {}",
                reply.cancel_reason()
            )));
        }
        for event in reply.events() {
            let Some(kv) = event.kv() else { continue };
            match event.event_type() {
                EventType::Put => insert(&mut registry, prefix, kv.key(), kv.value()),
                EventType::Delete => {
                    if let Some(name) = name_of(prefix, kv.key()) {
                        registry.remove(&name);
                    }
                }
            }
        }
        out.send_replace(registry.clone());
    }
    Err(etcd_client::Error::WatchError("watch stream ended".into()))
}

fn name_of(prefix: &str, key: &[u8]) -> Option<String> {
    let key = std::str::from_utf8(key).ok()?;
    let name = key.strip_prefix(prefix)?;
    (!name.is_empty() && !name.contains('/')).then(|| name.to_string())
}

/// Adds a record to the registry; a record that does not decode (another version, a record
/// written by IPAM tests with labels only) is skipped with a log line, never a panic.
fn insert(registry: &mut Registry, prefix: &str, key: &[u8], value: &[u8]) {
    let Some(name) = name_of(prefix, key) else {
        return;
    };
    match serde_json::from_slice::<NodeRecord>(value) {
        Ok(record) => {
            registry.insert(name, record);
        }
        Err(e) => {
            tracing::warn!(node = %name, "ignoring node record that does not decode: {e}");
            registry.remove(&name);
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
        let p = "/fabric/v1/nodes/";
        insert(
            &mut r,
            p,
            b"/fabric/v1/nodes/a",
            &serde_json::to_vec(&rec).unwrap(),
        );
        insert(
            &mut r,
            p,
            b"/fabric/v1/nodes/b",
            br#"{"version":1,"labels":{}}"#,
        );
        insert(&mut r, p, b"/fabric/v1/nodes/c", b"\xff\x00garbage");
        insert(
            &mut r,
            p,
            b"/fabric/v1/nodes/d/e",
            &serde_json::to_vec(&rec).unwrap(),
        );
        assert_eq!(r.keys().collect::<Vec<_>>(), vec!["a"]);
        assert_eq!(r["a"], rec);
    }
}
