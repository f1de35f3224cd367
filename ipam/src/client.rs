//! The IPAM client: connection, options, the retried read/txn primitives every operation
//! uses, the per-host cache cells, node records and settings, and read-only queries.
//! Assignments live in `assign`, releases in `release`, pools in `pools`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::assign::{Assignment, HostBlocks};
use crate::block::BlockCidr;
use crate::error::{IpamError, Result};
use crate::names::{HandleId, HostName};
use crate::record::{Handle, IpamConfig, Keys, NodeRecord, VERSION, decode, encode};
use crate::retry::{Retry, RetryPolicy};
use crate::snapshot::Snapshot;
use crate::store::{Entry, EtcdStore, Outcome, Read, Store, StoreError, StoreOptions, Txn, Write};

/// Settings of a client; the delays are short in tests and long in production.
#[derive(Debug, Clone)]
pub struct IpamOptions {
    /// Key root, `/fabric/v1` by default; tests use their own to share one etcd.
    pub root: String,
    /// Connection settings.
    pub store: StoreOptions,
    /// Retry budget.
    pub retry: RetryPolicy,
    /// An empty block keeps its host's affinity this long before GC releases it.
    pub empty_block_grace: Duration,
    /// A host must be seen gone (no node record) this long before GC reclaims its addresses.
    pub dead_host_delay: Duration,
}

impl Default for IpamOptions {
    fn default() -> Self {
        IpamOptions {
            root: "/fabric/v1".into(),
            store: StoreOptions::default(),
            retry: RetryPolicy::default(),
            empty_block_grace: Duration::from_secs(15 * 60),
            dead_host_delay: Duration::from_secs(5 * 60),
        }
    }
}

/// A block as `blocks_of` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlockInfo {
    /// The block.
    pub cidr: BlockCidr,
    /// Addresses assigned.
    pub used: u32,
    /// Addresses in the block.
    pub size: u32,
}

/// The IPAM client. Cheap to share (`Arc`); operations for one host are serialized inside
/// one client, so a daemon's concurrent container starts do not race each other.
pub struct Ipam<S: Store = EtcdStore> {
    pub(crate) store: S,
    pub(crate) keys: Keys,
    pub(crate) opts: IpamOptions,
    hosts: Mutex<HashMap<HostName, Arc<tokio::sync::Mutex<HostBlocks>>>>,
    pub(crate) gone_since: Mutex<HashMap<HostName, u64>>,
}

impl<S: Store> std::fmt::Debug for Ipam<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ipam").field("keys", &self.keys).finish()
    }
}

/// Unix time in milliseconds (record timestamps compare across hosts: keep clocks in sync).
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The entries of a single-key read, if the key exists.
pub(crate) fn first(entries: Option<&Vec<Entry>>) -> Option<&Entry> {
    entries.and_then(|v| v.first())
}

impl Ipam<EtcdStore> {
    /// Connects to etcd through all `endpoints` (e.g. `http://127.0.0.1:2379`, or `https://`
    /// with `opts.store.tls`); the client fails over between them.
    pub async fn connect(endpoints: &[String], opts: IpamOptions) -> Result<Ipam<EtcdStore>> {
        let store = EtcdStore::connect(endpoints, &opts.store)
            .await
            .map_err(|e| match e {
                StoreError::Tls(e) => IpamError::Tls(e),
                StoreError::Refused(e) => IpamError::DatastoreRefused(e),
                StoreError::Unavailable(e) => IpamError::DatastoreUnavailable(e),
            })?;
        Ok(Ipam::with_store(store, opts))
    }
}

impl<S: Store> Ipam<S> {
    /// A client over any store (the in-memory one in tests).
    pub fn with_store(store: S, opts: IpamOptions) -> Ipam<S> {
        Ipam {
            store,
            keys: Keys::new(&opts.root),
            opts,
            hosts: Mutex::new(HashMap::new()),
            gone_since: Mutex::new(HashMap::new()),
        }
    }

    /// The store, for what IPAM does not wrap.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The key layout in use.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    pub(crate) fn host_cell(&self, host: &HostName) -> Arc<tokio::sync::Mutex<HostBlocks>> {
        let mut m = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        m.entry(host.clone()).or_default().clone()
    }

    pub(crate) async fn read(
        &self,
        reads: Vec<Read>,
        retry: &mut Retry<'_>,
    ) -> Result<(Vec<Vec<Entry>>, i64)> {
        loop {
            match self.store.read(reads.clone()).await {
                Ok(r) => return Ok(r),
                Err(e) => retry.unavailable(e).await?,
            }
        }
    }

    /// Runs a transaction, retrying while etcd is unreachable. Resending is safe: every
    /// write is guarded, so a transaction that did apply is rejected the second time.
    pub(crate) async fn txn(&self, txn: Txn, retry: &mut Retry<'_>) -> Result<Outcome> {
        loop {
            match self.store.txn(txn.clone()).await {
                Ok(o) => return Ok(o),
                Err(e) => retry.unavailable(e).await?,
            }
        }
    }

    pub(crate) async fn snapshot(&self, retry: &mut Retry<'_>) -> Result<Snapshot> {
        let (mut r, rev) = self
            .read(vec![Read::Prefix(self.keys.root())], retry)
            .await?;
        Ok(Snapshot::parse(
            &self.keys,
            r.pop().unwrap_or_default(),
            rev,
        ))
    }

    /// The blocks affine to `host`, read from etcd.
    pub async fn blocks_of(&self, host: &HostName) -> Result<Vec<BlockInfo>> {
        let mut retry = Retry::new(&self.opts.retry, "blocks_of");
        let mut own = HostBlocks::default();
        self.load_host(host, &mut own, &mut retry).await?;
        Ok(own
            .blocks
            .values()
            .map(|(b, _)| BlockInfo {
                cidr: b.cidr,
                used: b.allocations.len() as u32,
                size: b.cidr.size(),
            })
            .collect())
    }

    /// The addresses of a handle, if it exists.
    pub async fn handle(&self, id: &HandleId) -> Result<Option<Assignment>> {
        let mut retry = Retry::new(&self.opts.retry, "handle");
        let (r, _) = self
            .read(vec![Read::Key(self.keys.handle(id))], &mut retry)
            .await?;
        match first(r.first()) {
            Some(e) => Ok(Some(Assignment::from_handle(
                id.clone(),
                &decode(&e.key, &e.value)?,
            ))),
            None => Ok(None),
        }
    }

    /// Every handle of `host`, so its daemon can release those whose container is gone
    /// (IPAM cannot know which containers run; a dead host's handles are GC's).
    pub async fn handles_of(&self, host: &HostName) -> Result<Vec<Assignment>> {
        let mut retry = Retry::new(&self.opts.retry, "handles_of");
        let (r, _) = self
            .read(vec![Read::Prefix(self.keys.handles())], &mut retry)
            .await?;
        let prefix = self.keys.handles();
        let mut out = Vec::new();
        for e in r.iter().flatten() {
            let h: Handle = decode(&e.key, &e.value)?;
            if &h.host == host {
                let id = HandleId::new(e.key.strip_prefix(&prefix).unwrap_or_default())?;
                out.push(Assignment::from_handle(id, &h));
            }
        }
        Ok(out)
    }

    /// Runs a transaction built from a snapshot and records its effect there.
    pub(crate) async fn apply(
        &self,
        snap: &mut Snapshot,
        txn: Txn,
        retry: &mut Retry<'_>,
    ) -> Result<bool> {
        let writes = txn.writes.clone();
        let applied = match self.txn(txn, retry).await? {
            Outcome::Applied(rev) => Some(rev),
            Outcome::Rejected(_) => None,
        };
        snap.settle(&writes, applied);
        Ok(applied.is_some())
    }

    /// Drops every cached block, after bulk changes (GC, repair, pool delete).
    pub(crate) fn forget_cache(&self) {
        let mut m = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        m.clear();
    }

    /// Writes the cluster-wide IPAM settings.
    pub async fn set_config(&self, config: &IpamConfig) -> Result<()> {
        let mut c = config.clone();
        c.version = VERSION;
        self.put(self.keys.config(), encode(&c), 0).await
    }

    /// Writes the node record of `host`, attached to `lease` (0: none, as the daemon writes
    /// it: a record under a lease vanishes, and GC reclaims the host, when the lease expires).
    pub async fn register_node(
        &self,
        host: &HostName,
        node: &NodeRecord,
        lease: i64,
    ) -> Result<()> {
        let mut n = node.clone();
        n.version = VERSION;
        self.put(self.keys.node(host), encode(&n), lease).await
    }

    /// Deletes the node record of `host` (a host leaving the cluster for good).
    pub async fn remove_node(&self, host: &HostName) -> Result<()> {
        let mut retry = Retry::new(&self.opts.retry, "remove_node");
        let txn = Txn {
            writes: vec![Write::Delete(self.keys.node(host))],
            ..Txn::default()
        };
        self.txn(txn, &mut retry).await.map(|_| ())
    }

    async fn put(&self, key: String, value: Vec<u8>, lease: i64) -> Result<()> {
        let mut retry = Retry::new(&self.opts.retry, "put");
        loop {
            match self
                .store
                .put_with_lease(key.clone(), value.clone(), lease)
                .await
            {
                Ok(()) => return Ok(()),
                Err(e) => retry.unavailable(e).await?,
            }
        }
    }
}
