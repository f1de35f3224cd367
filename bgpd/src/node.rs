//! The node registry in etcd: our record (persistent, kept as it should be), the key that says
//! we run (under a lease kept alive), and a live view of every node's record (list, then watch)
//! so mesh peers follow hosts joining and being deleted.
//!
//! The record is not lease-bound, as Calico's Node resources are not: a host cut off from etcd
//! or whose bgpd is down stays a member (peered with, its IPAM addresses kept, its routes held
//! by graceful restart) until `routectl node delete` removes it. Only the liveness key lapses.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, Compare, CompareOp, PutOptions, Txn, TxnOp};
use ipam::{HostName, Keys};
use tokio::sync::watch;

use crate::health::EtcdHealth;

/// Seconds our liveness key outlives us: `routectl nodes` shows a host dead at most this long
/// after its daemon stopped or lost etcd. Nothing else depends on it.
pub const ALIVE_TTL: i64 = 15;

/// How often a running daemon checks that its record is still as it should be (written back
/// when deleted or changed behind its back).
const RECORD_CHECK: Duration = Duration::from_secs(30);

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

/// What a record check did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RecordCheck {
    /// The record was as it should be.
    Kept,
    /// It was missing, different or attached to a lease, and is written now.
    Written,
    /// Another running daemon holds our name's liveness key: left alone (see `ensure_record`).
    Clash,
}

/// What [`Registration::until_answered`] retries.
#[derive(Debug, Clone, Copy)]
enum Attempt {
    /// Liveness key and node record, at start.
    Register,
    /// The liveness key alone, after its lease was lost.
    RenewAlive,
}

/// Keeps our node membership in etcd: the persistent record (written at start, written back
/// whenever it is missing or differs) and the liveness key under a lease kept alive, renewed
/// under a fresh lease whenever the lease is lost.
pub struct Registration {
    client: Client,
    record_key: String,
    alive_key: String,
    record: NodeRecord,
    health: Arc<EtcdHealth>,
    check_every: Duration,
}

impl Registration {
    /// Registration of `host` with `record`, at its keys under `keys`.
    pub fn new(
        client: Client,
        keys: &Keys,
        host: &HostName,
        record: NodeRecord,
        health: Arc<EtcdHealth>,
    ) -> Self {
        Registration {
            client,
            record_key: keys.node(host),
            alive_key: bgpd_api::alive_key(&keys.root(), host.as_str()),
            record,
            health,
            check_every: RECORD_CHECK,
        }
    }

    /// Writes the liveness key under a fresh lease and our record (reclaiming it from an
    /// earlier run, or writing it for the first time), retrying with backoff (and a log line
    /// per try) until etcd answers. Returns the lease id.
    pub async fn register(&mut self, endpoints: &str) -> i64 {
        self.until_answered(endpoints, Attempt::Register).await
    }

    /// Runs `attempt` until etcd answers, with backoff and a log line per failed try.
    async fn until_answered(&mut self, endpoints: &str, attempt: Attempt) -> i64 {
        let mut backoff = Backoff::new();
        loop {
            let result = match attempt {
                Attempt::Register => self.try_register().await,
                Attempt::RenewAlive => self.renew_alive().await,
            };
            match result {
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
        let lease = self.renew_alive().await?;
        // The liveness key is ours now (a daemon of the same name started earlier sees that
        // and stops writing the record), so the record is written whatever holds it.
        if self.ensure_record(lease).await? == RecordCheck::Written {
            tracing::info!(key = %self.record_key, "node record written");
        }
        Ok(lease)
    }

    /// A fresh lease with the liveness key under it.
    async fn renew_alive(&mut self) -> Result<i64, etcd_client::Error> {
        let lease = self.client.lease_grant(ALIVE_TTL, None).await?.id();
        let value = self.record.address.to_string();
        self.client
            .put(
                self.alive_key.as_str(),
                value,
                Some(PutOptions::new().with_lease(lease)),
            )
            .await?;
        Ok(lease)
    }

    /// Writes our record unless it is already as it should be (same value, no lease: a
    /// record an older bgpd left under its lease would vanish with it), in one transaction
    /// that only writes while the liveness key is ours (`lease`). Two running daemons
    /// configured with one name would otherwise overwrite each other's record forever: the
    /// one that registered last keeps the name, the other logs the clash.
    async fn ensure_record(&mut self, lease: i64) -> Result<RecordCheck, etcd_client::Error> {
        let value = serde_json::to_vec(&self.record).unwrap_or_default();
        let key = self.record_key.as_str();
        let current = self.client.get(key, None).await?;
        let as_should_be = current.kvs().first().is_some_and(|kv| {
            kv.lease() == 0
                && serde_json::from_slice::<NodeRecord>(kv.value())
                    .ok()
                    .as_ref()
                    == Some(&self.record)
        });
        if as_should_be {
            return Ok(RecordCheck::Kept);
        }
        let alive = self.alive_key.as_str();
        let txn = Txn::new()
            .when([Compare::lease(alive, CompareOp::Equal, lease)])
            .and_then([TxnOp::put(key, value.clone(), None)])
            .or_else([TxnOp::get(alive, None)]);
        let reply = self.client.txn(txn).await?;
        if reply.succeeded() {
            return Ok(RecordCheck::Written);
        }
        let alive_missing = reply
            .op_responses()
            .iter()
            .any(|r| matches!(r, etcd_client::TxnOpResponse::Get(g) if g.kvs().is_empty()));
        if !alive_missing {
            return Ok(RecordCheck::Clash);
        }
        // Deleted with the record (`routectl node delete --force` while we run): both back.
        let address = self.record.address.to_string();
        let with_lease = Some(PutOptions::new().with_lease(lease));
        self.client.put(alive, address, with_lease).await?;
        self.client.put(key, value, None).await?;
        Ok(RecordCheck::Written)
    }

    /// Keeps the liveness key alive forever, renewing it when its lease is lost (etcd away
    /// longer than the TTL), and checks our record every `RECORD_CHECK`. Runs as a task.
    pub async fn keep_alive(mut self, mut lease: i64, endpoints: String) {
        let period = Duration::from_secs((ALIVE_TTL as u64 / 3).max(1));
        loop {
            match self.keep_alive_once(lease, period).await {
                Ok(()) => {}
                Err(e) => {
                    self.health.failed(&e);
                    tracing::warn!("etcd lease keep-alive failed: {e}; registering again");
                    lease = self.until_answered(&endpoints, Attempt::RenewAlive).await;
                    tracing::info!(lease, "liveness key written again");
                }
            }
        }
    }

    /// One keep-alive stream until it fails or reports the lease gone; checks the record
    /// between keep-alives once `check_every` has passed.
    async fn keep_alive_once(
        &mut self,
        lease: i64,
        period: Duration,
    ) -> Result<(), etcd_client::Error> {
        let (mut keeper, mut replies) = self.client.lease_keep_alive(lease).await?;
        let mut checked = tokio::time::Instant::now();
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
            if checked.elapsed() >= self.check_every {
                checked = tokio::time::Instant::now();
                match self.ensure_record(lease).await? {
                    RecordCheck::Kept => {}
                    RecordCheck::Written => tracing::warn!(
                        key = %self.record_key,
                        "our node record was missing or changed; written back (stop bgpd before `routectl node delete`)"
                    ),
                    RecordCheck::Clash => tracing::error!(
                        key = %self.record_key,
                        "another running bgpd registered with our node name; give each host its own [node] name"
                    ),
                }
            }
            tokio::time::sleep(period.min(self.check_every)).await;
        }
    }
}

/// Leaves the fabric for good (a SIGTERM with `kernel.keep_routes_on_exit = false`): revokes
/// our liveness lease, then deletes our record as `routectl node delete` does. In that order,
/// so the record check (which writes back a record deleted under a live daemon) cannot
/// resurrect it before we exit.
pub async fn leave(
    client: &mut Client,
    keys: &Keys,
    host: &HostName,
) -> Result<(), etcd_client::Error> {
    let alive = bgpd_api::alive_key(&keys.root(), host.as_str());
    let reply = client.get(alive.as_str(), None).await?;
    if let Some(lease) = reply.kvs().first().map(|kv| kv.lease()).filter(|l| *l != 0) {
        client.lease_revoke(lease).await?;
    }
    client.delete(keys.node(host), None).await?;
    Ok(())
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

    fn record(address: &str) -> NodeRecord {
        NodeRecord {
            version: RECORD_VERSION,
            labels: BTreeMap::new(),
            address: address.parse().unwrap(),
            address_v6: None,
            asn: 64512,
            router_id: "10.0.0.1".parse().unwrap(),
            role: Role::Host,
            mesh: true,
            port: 179,
        }
    }

    /// The stored value and lease of `key`, if it exists.
    async fn stored(client: &mut Client, key: &str) -> Option<(Vec<u8>, i64)> {
        let reply = client.get(key, None).await.unwrap();
        reply
            .kvs()
            .first()
            .map(|kv| (kv.value().to_vec(), kv.lease()))
    }

    /// Polls `check` every 100 ms for at most 30 s.
    async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while !check().await {
            assert!(tokio::time::Instant::now() < deadline, "{what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A fresh etcd (kept while the guard lives), a stream client to it, keys under `/t` and
    /// the host `h1`.
    async fn host_h1() -> (testkit::etcd::Etcd, Client, Keys, HostName) {
        let etcd = testkit::etcd::Etcd::single().unwrap();
        let client = stream_client(&[etcd.endpoint()], None).await.unwrap();
        (etcd, client, Keys::new("/t"), HostName::new("h1").unwrap())
    }

    /// The record outlives the daemon (no lease; the liveness key has one), replaces one an
    /// older bgpd left under a lease, and a running daemon writes it back when it is deleted
    /// (with or without its liveness key) or changed.
    #[tokio::test]
    async fn the_record_is_persistent_and_kept_as_it_should_be() {
        let (_etcd, mut client, keys, host) = host_h1().await;
        let (record_key, alive_key) = (keys.node(&host), bgpd_api::alive_key(&keys.root(), "h1"));
        // What an older bgpd left: the same record under a lease that is about to expire.
        let old = client.lease_grant(60, None).await.unwrap().id();
        let value = serde_json::to_vec(&record("10.0.0.1")).unwrap();
        let with_old = Some(PutOptions::new().with_lease(old));
        client
            .put(record_key.as_str(), value.clone(), with_old)
            .await
            .unwrap();

        let health = Arc::new(EtcdHealth::default());
        let mut registration =
            Registration::new(client.clone(), &keys, &host, record("10.0.0.1"), health);
        registration.check_every = Duration::from_millis(200);
        let lease = registration.register("test").await;
        assert_eq!(
            stored(&mut client, &record_key).await,
            Some((value.clone(), 0))
        );
        let alive = stored(&mut client, &alive_key).await.expect("liveness key");
        assert_eq!(alive, (b"10.0.0.1".to_vec(), lease));
        client.lease_revoke(old).await.unwrap();
        assert!(
            stored(&mut client, &record_key).await.is_some(),
            "gone with the old lease"
        );

        let task = tokio::spawn(registration.keep_alive(lease, "test".into()));
        client.delete(record_key.as_str(), None).await.unwrap();
        eventually("the deleted record is written back", async || {
            stored(&mut client, &record_key).await == Some((value.clone(), 0))
        })
        .await;
        client.put(record_key.as_str(), "{}", None).await.unwrap();
        eventually("the changed record is written back", async || {
            stored(&mut client, &record_key).await == Some((value.clone(), 0))
        })
        .await;
        client.delete(record_key.as_str(), None).await.unwrap();
        client.delete(alive_key.as_str(), None).await.unwrap();
        eventually("both keys are written back", async || {
            stored(&mut client, &record_key).await == Some((value.clone(), 0))
                && stored(&mut client, &alive_key)
                    .await
                    .is_some_and(|(_, l)| l == lease)
        })
        .await;
        task.abort();
    }

    /// Leaving for good revokes the liveness lease and deletes the record; the running
    /// keep-alive task takes a fresh lease but does not write the record back before its next
    /// check (30 s), by when the daemon has exited.
    #[tokio::test]
    async fn leaving_deletes_the_record_and_the_liveness_key() {
        let (_etcd, mut client, keys, host) = host_h1().await;
        let health = Arc::new(EtcdHealth::default());
        let mut registration =
            Registration::new(client.clone(), &keys, &host, record("10.0.0.1"), health);
        let lease = registration.register("test").await;
        let task = tokio::spawn(registration.keep_alive(lease, "test".into()));
        leave(&mut client, &keys, &host).await.unwrap();
        let alive_key = bgpd_api::alive_key(&keys.root(), "h1");
        assert_eq!(stored(&mut client, &keys.node(&host)).await, None);
        assert!(
            stored(&mut client, &alive_key)
                .await
                .is_none_or(|(_, l)| l != lease),
            "the old lease still holds the liveness key"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(stored(&mut client, &keys.node(&host)).await, None);
        task.abort();
    }

    /// Two running daemons with one name: the one registered last keeps the record, the
    /// other does not write it back (they would overwrite each other forever).
    #[tokio::test]
    async fn a_second_daemon_with_our_name_keeps_it() {
        let (_etcd, mut client, keys, host) = host_h1().await;
        let health = Arc::new(EtcdHealth::default());
        let mut first = Registration::new(
            client.clone(),
            &keys,
            &host,
            record("10.0.0.1"),
            health.clone(),
        );
        let first_lease = first.register("test").await;
        let mut second =
            Registration::new(client.clone(), &keys, &host, record("10.0.0.2"), health);
        second.register("test").await;
        assert_eq!(
            first.ensure_record(first_lease).await.unwrap(),
            RecordCheck::Clash
        );
        let (value, lease) = stored(&mut client, &keys.node(&host)).await.unwrap();
        assert_eq!(lease, 0);
        assert_eq!(
            serde_json::from_slice::<NodeRecord>(&value).unwrap(),
            record("10.0.0.2")
        );
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
