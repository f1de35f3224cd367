//! The IPAM client: pools, block claims, assignments and releases.
//!
//! The common assignment is one etcd transaction: the client keeps the host's blocks with
//! their mod_revision and writes the block and the handle optimistically, guarded on that
//! revision and on the handle not existing yet. A rejected transaction carries the current
//! values back, so the retry needs no extra read.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::alloc;
use crate::block::{BlockCidr, Family, block_at, ip_to_u128};
use crate::error::{IpamError, Result};
use crate::names::{HandleId, HostName, PoolName};
use crate::record::{
    Affinity, Block, Handle, HandleIp, IpamConfig, Keys, NodeRecord, Pool, VERSION, decode, encode,
};
use crate::retry::{Retry, RetryPolicy};
use crate::snapshot::Snapshot;
use crate::store::{Entry, EtcdStore, Guard, Outcome, Read, Store, StoreOptions, Txn, Write};

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

/// A request for addresses for one container attachment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssignRequest {
    /// Who owns the addresses; asking again with the same handle returns the same addresses.
    pub handle: HandleId,
    /// The host the container runs on.
    pub host: HostName,
    /// How many IPv4 addresses.
    pub v4: u32,
    /// How many IPv6 addresses.
    pub v6: u32,
}

/// One assigned address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AssignedIp {
    /// The address.
    pub ip: IpAddr,
    /// The block it is in.
    pub block: BlockCidr,
    /// True if the block is affine to another host: the daemon must advertise a /32 (/128)
    /// for it, or traffic would go to the block owner's blackhole route.
    pub borrowed: bool,
}

/// The addresses of a handle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Assignment {
    /// The handle.
    pub handle: HandleId,
    /// Its addresses, IPv4 first.
    pub ips: Vec<AssignedIp>,
}

impl Assignment {
    fn from_handle(id: HandleId, h: &Handle) -> Assignment {
        Assignment {
            handle: id,
            ips: h
                .ips
                .iter()
                .map(|i| AssignedIp {
                    ip: i.ip,
                    block: i.block,
                    borrowed: i.borrowed,
                })
                .collect(),
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

/// What a forced pool delete removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PoolDeletion {
    /// Blocks deleted.
    pub blocks: usize,
    /// Addresses that were still assigned and were released.
    pub released_ips: usize,
}

/// The blocks one host holds, as last seen, with their mod_revision.
#[derive(Debug, Default)]
pub(crate) struct HostBlocks {
    loaded: bool,
    /// The blocks named by the host's affinity keys when last loaded or claimed.
    affinity_keys: BTreeSet<BlockCidr>,
    /// The last view of pools, config and taken blocks, reused so that claiming a block is
    /// one transaction too; every input it rests on is guarded, so a stale view is rejected.
    world: Option<World>,
    blocks: BTreeMap<BlockCidr, (Block, i64)>,
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

/// What a claim found.
enum Claim {
    Claimed(BlockCidr),
    LimitReached(u32),
    NoneFree,
}

/// What the slow path knows about the cluster, read at one revision.
#[derive(Debug)]
struct World {
    rev: i64,
    pools: Vec<(Pool, i64)>,
    config: IpamConfig,
    config_rev: i64,
    labels: BTreeMap<String, String>,
    node_rev: i64,
    taken: Vec<BlockCidr>,
    host_blocks: BTreeSet<BlockCidr>,
    /// The handle, if it already exists (the request is then answered from it).
    existing: Option<Handle>,
    /// The current values of the blocks the caller had cached, with their mod_revision.
    own: BTreeMap<BlockCidr, (Block, i64)>,
}

impl World {
    /// After our own claims applied: the view stays usable for the next claim.
    fn note_claims(&mut self, claimed: &[BlockCidr]) {
        for c in claimed {
            let i = self.taken.partition_point(|t| t < c);
            self.taken.insert(i, *c);
        }
        self.host_blocks.extend(claimed);
        self.existing = None;
        self.own.clear();
    }
}

/// The writes one assignment or claim will make, built before its single transaction.
struct Plan<'a> {
    handle: Option<&'a HandleId>,
    host: &'a HostName,
    now: u64,
    /// Block → (new value, expected mod_revision with 0 for a new block, borrowed).
    blocks: BTreeMap<BlockCidr, (Block, i64, bool)>,
    guards: Vec<Guard>,
    ips: Vec<AssignedIp>,
}

impl<'a> Plan<'a> {
    fn new(handle: Option<&'a HandleId>, host: &'a HostName) -> Plan<'a> {
        Plan {
            handle,
            host,
            now: now_ms(),
            blocks: BTreeMap::new(),
            guards: Vec::new(),
            ips: Vec::new(),
        }
    }

    /// Takes up to `n` addresses from `block`; returns how many it got.
    fn take(&mut self, block: &Block, rev: i64, borrowed: bool, n: u32) -> u32 {
        let Some(handle) = self.handle else {
            return 0;
        };
        let e = self
            .blocks
            .entry(block.cidr)
            .or_insert_with(|| (block.clone(), rev, borrowed));
        let got = alloc::take(&mut e.0, handle, n);
        let cidr = block.cidr;
        self.ips.extend(got.iter().map(|&ip| AssignedIp {
            ip,
            block: cidr,
            borrowed,
        }));
        got.len() as u32
    }

    /// Takes from the host's own blocks of `family`; returns how many are still missing.
    fn take_own(&mut self, own: &HostBlocks, family: Family, mut n: u32) -> u32 {
        for (b, rev) in own.blocks.values() {
            if n == 0 {
                break;
            }
            if b.cidr.family() == family && b.free() > 0 {
                n -= self.take(b, *rev, false, n);
            }
        }
        n
    }

    fn new_blocks(&self) -> impl Iterator<Item = &BlockCidr> {
        self.blocks
            .iter()
            .filter(|(_, (_, rev, _))| *rev == 0)
            .map(|(c, _)| c)
    }

    fn guard_once(&mut self, g: Guard) {
        if !self.guards.contains(&g) {
            self.guards.push(g);
        }
    }

    fn txn(&self, keys: &Keys) -> Txn {
        let mut t = Txn {
            guards: self.guards.clone(),
            ..Txn::default()
        };
        if let Some(h) = self.handle {
            t.guards.push(Guard::Revision(keys.handle(h), 0));
            t.on_reject.push(Read::Key(keys.handle(h)));
        }
        for (cidr, (block, rev, _)) in &self.blocks {
            let key = keys.block(cidr);
            t.guards.push(Guard::Revision(key.clone(), *rev));
            t.writes.push(Write::Put(key.clone(), encode(block)));
            if *rev == 0 {
                let aff = Affinity {
                    version: VERSION,
                    block: *cidr,
                };
                t.writes
                    .push(Write::Put(keys.affinity(self.host, cidr), encode(&aff)));
            } else {
                t.on_reject.push(Read::Key(key));
            }
        }
        if let Some(h) = self.handle {
            let rec = Handle {
                version: VERSION,
                host: self.host.clone(),
                ips: self
                    .ips
                    .iter()
                    .map(|a| HandleIp {
                        ip: a.ip,
                        block: a.block,
                        borrowed: a.borrowed,
                    })
                    .collect(),
            };
            t.writes.push(Write::Put(keys.handle(h), encode(&rec)));
        }
        t
    }

    /// After the transaction applied: the host's own blocks are cached at the new revision.
    fn settle(self, own: &mut HostBlocks, rev: i64) -> Vec<AssignedIp> {
        for (cidr, (block, old_rev, borrowed)) in self.blocks {
            if old_rev == 0 {
                own.affinity_keys.insert(cidr);
            }
            if !borrowed {
                own.blocks.insert(cidr, (block, rev));
            }
        }
        self.ips
    }
}

/// The entries of a single-key read, if the key exists.
fn first(entries: Option<&Vec<Entry>>) -> Option<&Entry> {
    entries.and_then(|v| v.first())
}

impl Ipam<EtcdStore> {
    /// Connects to etcd through all `endpoints` (e.g. `http://127.0.0.1:2379`); the client
    /// fails over between them.
    pub async fn connect(endpoints: &[String], opts: IpamOptions) -> Result<Ipam<EtcdStore>> {
        let store = EtcdStore::connect(endpoints, &opts.store)
            .await
            .map_err(|e| IpamError::DatastoreUnavailable(e.to_string()))?;
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

    fn host_cell(&self, host: &HostName) -> Arc<tokio::sync::Mutex<HostBlocks>> {
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

    /// Loads the host's blocks: its affinity keys, then those blocks.
    async fn load_host(
        &self,
        host: &HostName,
        own: &mut HostBlocks,
        retry: &mut Retry<'_>,
    ) -> Result<()> {
        let (r, _) = self
            .read(vec![Read::PrefixKeys(self.keys.affinities_of(host))], retry)
            .await?;
        let prefix = self.keys.affinities_of(host);
        let cidrs: Vec<BlockCidr> = r
            .iter()
            .flatten()
            .filter_map(|e| e.key.strip_prefix(&prefix))
            .filter_map(|seg| BlockCidr::from_key_segment(seg).ok())
            .collect();
        let reads = cidrs
            .iter()
            .map(|c| Read::Key(self.keys.block(c)))
            .collect();
        let (r, _) = self.read(reads, retry).await?;
        own.blocks.clear();
        own.affinity_keys = cidrs.iter().copied().collect();
        for e in r.iter().flatten() {
            match decode::<Block>(&e.key, &e.value) {
                Ok(b) if b.affinity.as_ref() == Some(host) => {
                    own.blocks.insert(b.cidr, (b, e.mod_revision));
                }
                Ok(_) => {}
                Err(err) => tracing::warn!(%err, "skipping unreadable block"),
            }
        }
        own.loaded = true;
        Ok(())
    }

    async fn read_world(
        &self,
        host: &HostName,
        handle: Option<&HandleId>,
        cached: &BTreeSet<BlockCidr>,
        retry: &mut Retry<'_>,
    ) -> Result<World> {
        let k = &self.keys;
        let handle_key = handle.map_or_else(|| k.config(), |h| k.handle(h));
        let mut reads = vec![
            Read::Prefix(k.pools()),
            Read::Key(k.config()),
            Read::Key(k.node(host)),
            Read::PrefixKeys(k.blocks()),
            Read::PrefixKeys(k.affinities_of(host)),
            Read::Key(handle_key),
        ];
        reads.extend(cached.iter().map(|c| Read::Key(k.block(c))));
        let (r, rev) = self.read(reads, retry).await?;
        let own = r
            .iter()
            .skip(6)
            .flatten()
            .filter_map(|e| {
                let b: Block = decode(&e.key, &e.value).ok()?;
                (b.affinity.as_ref() == Some(host)).then_some((b.cidr, (b, e.mod_revision)))
            })
            .collect();
        let mut pools = Vec::new();
        for e in r.first().into_iter().flatten() {
            match decode::<Pool>(&e.key, &e.value) {
                Ok(p) => pools.push((p, e.mod_revision)),
                Err(err) => tracing::warn!(%err, "skipping unreadable pool"),
            }
        }
        let (config, config_rev) = match first(r.get(1)) {
            Some(e) => (decode(&e.key, &e.value)?, e.mod_revision),
            None => (IpamConfig::default(), 0),
        };
        let node = first(r.get(2));
        let node_rev = node.map_or(0, |e| e.mod_revision);
        let labels = node
            .and_then(|e| decode::<NodeRecord>(&e.key, &e.value).ok())
            .map(|n| n.labels)
            .unwrap_or_default();
        let blocks_prefix = k.blocks();
        let mut taken: Vec<BlockCidr> = r
            .get(3)
            .into_iter()
            .flatten()
            .filter_map(|e| e.key.strip_prefix(&blocks_prefix))
            .filter_map(|seg| BlockCidr::from_key_segment(seg).ok())
            .collect();
        taken.sort();
        let aff_prefix = k.affinities_of(host);
        let host_blocks = r
            .get(4)
            .into_iter()
            .flatten()
            .filter_map(|e| e.key.strip_prefix(&aff_prefix))
            .filter_map(|seg| BlockCidr::from_key_segment(seg).ok())
            .collect();
        let existing = match (handle, first(r.get(5))) {
            (Some(_), Some(e)) => Some(decode(&e.key, &e.value)?),
            _ => None,
        };
        Ok(World {
            rev,
            pools,
            config,
            config_rev,
            labels,
            node_rev,
            taken,
            host_blocks,
            existing,
            own,
        })
    }

    /// Adds a new block of `family` to the plan, if the host may and one is free.
    fn claim_new(&self, world: &World, plan: &mut Plan<'_>, family: Family) -> Claim {
        let held = world.host_blocks.len() + plan.new_blocks().count();
        if let Some(limit) = world.config.max_blocks_per_host {
            if held >= limit as usize {
                return Claim::LimitReached(limit);
            }
            plan.guard_once(Guard::PrefixUnchangedSince(
                self.keys.affinities_of(plan.host),
                world.rev,
            ));
        }
        // The settings and the node's labels decided this claim: they must still hold.
        plan.guard_once(Guard::Revision(self.keys.config(), world.config_rev));
        plan.guard_once(Guard::Revision(self.keys.node(plan.host), world.node_rev));
        // Blocks this plan already claims count as taken; usually there are none, so the
        // (large) list of every block is only copied when needed.
        let with_new;
        let taken = if plan.new_blocks().next().is_none() {
            &world.taken
        } else {
            let mut t = world.taken.clone();
            t.extend(plan.new_blocks().copied());
            t.sort();
            with_new = t;
            &with_new
        };
        let pools: Vec<Pool> = world.pools.iter().map(|(p, _)| p.clone()).collect();
        for pool in alloc::usable_pools(&pools, family, &world.labels) {
            if let Some(cidr) = alloc::choose_block(pool, taken, plan.host) {
                let rev = world
                    .pools
                    .iter()
                    .find(|(p, _)| p.name == pool.name)
                    .map_or(0, |(_, r)| *r);
                // The pool must still exist as read: no block is created in a deleted pool.
                plan.guard_once(Guard::Revision(self.keys.pool(&pool.name), rev));
                let block = Block::new(cidr, plan.host.clone(), plan.now);
                plan.blocks.insert(cidr, (block, 0, false));
                return Claim::Claimed(cidr);
            }
        }
        Claim::NoneFree
    }

    /// Finds `n` more addresses of `family`: new blocks first, then borrowing.
    async fn plan_more(
        &self,
        world: &World,
        plan: &mut Plan<'_>,
        family: Family,
        mut n: u32,
        retry: &mut Retry<'_>,
    ) -> Result<()> {
        let mut limit = None;
        while n > 0 {
            match self.claim_new(world, plan, family) {
                Claim::Claimed(cidr) => {
                    let Some((block, _, _)) = plan.blocks.get(&cidr).cloned() else {
                        break;
                    };
                    n -= plan.take(&block, 0, false, n);
                }
                Claim::LimitReached(l) => {
                    limit = Some(l);
                    break;
                }
                Claim::NoneFree => break,
            }
        }
        if n > 0 && !world.config.strict_affinity {
            n = self.plan_borrow(world, plan, family, n, retry).await?;
        }
        if n == 0 {
            return Ok(());
        }
        Err(match limit {
            Some(limit) if world.config.strict_affinity => IpamError::BlockLimitReached {
                host: plan.host.clone(),
                limit,
            },
            _ => IpamError::PoolExhausted {
                host: plan.host.clone(),
                family: family.name(),
            },
        })
    }

    /// Borrows from other hosts' blocks in pools this host may use; returns what is missing.
    async fn plan_borrow(
        &self,
        world: &World,
        plan: &mut Plan<'_>,
        family: Family,
        mut n: u32,
        retry: &mut Retry<'_>,
    ) -> Result<u32> {
        let (r, _) = self
            .read(vec![Read::Prefix(self.keys.blocks())], retry)
            .await?;
        let pools: Vec<Pool> = world.pools.iter().map(|(p, _)| p.clone()).collect();
        let usable = alloc::usable_pools(&pools, family, &world.labels);
        for e in r.iter().flatten() {
            if n == 0 {
                break;
            }
            let Ok(b) = decode::<Block>(&e.key, &e.value) else {
                continue;
            };
            let mine = b.affinity.as_ref() == Some(plan.host);
            let in_pool = usable.iter().any(|p| b.cidr.within(&p.cidr));
            if !mine && in_pool && b.free() > 0 && !plan.blocks.contains_key(&b.cidr) {
                n -= plan.take(&b, e.mod_revision, true, n);
            }
        }
        Ok(n)
    }

    /// Assigns addresses to a handle; the same handle again returns the same addresses.
    pub async fn assign(&self, req: &AssignRequest) -> Result<Assignment> {
        if req.v4 == 0 && req.v6 == 0 {
            return Err(IpamError::Invalid("assign asks for no address".into()));
        }
        let cell = self.host_cell(&req.host);
        let mut own = cell.lock().await;
        let mut retry = Retry::new(&self.opts.retry, "assign");
        let mut fresh_world = false;
        loop {
            if !own.loaded {
                self.load_host(&req.host, &mut own, &mut retry).await?;
            }
            let mut plan = Plan::new(Some(&req.handle), &req.host);
            let mut used_world = None;
            let short: Vec<(Family, u32)> = [(Family::V4, req.v4), (Family::V6, req.v6)]
                .into_iter()
                .map(|(f, n)| (f, plan.take_own(&own, f, n)))
                .filter(|(_, left)| *left > 0)
                .collect();
            if !short.is_empty() {
                let cached_world = if fresh_world { None } else { own.world.take() };
                let from_cache = cached_world.is_some();
                let world = match cached_world {
                    Some(w) => w,
                    None => {
                        let world = self
                            .read_world(
                                &req.host,
                                Some(&req.handle),
                                &own.affinity_keys,
                                &mut retry,
                            )
                            .await?;
                        if let Some(h) = &world.existing {
                            return Ok(Assignment::from_handle(req.handle.clone(), h));
                        }
                        let cached: BTreeMap<&BlockCidr, i64> =
                            own.blocks.iter().map(|(c, (_, rev))| (c, *rev)).collect();
                        let fresh: BTreeMap<&BlockCidr, i64> =
                            world.own.iter().map(|(c, (_, rev))| (c, *rev)).collect();
                        if world.host_blocks != own.affinity_keys || cached != fresh {
                            // Another client changed this host's blocks (a release, GC, a
                            // claim): plan again from the fresh view before claiming.
                            own.blocks = world.own;
                            if world.host_blocks != own.affinity_keys {
                                own.loaded = false;
                            }
                            retry.conflict().await?;
                            continue;
                        }
                        world
                    }
                };
                let mut planned = Ok(());
                for (family, n) in short {
                    planned = self
                        .plan_more(&world, &mut plan, family, n, &mut retry)
                        .await;
                    if planned.is_err() {
                        break;
                    }
                }
                match planned {
                    // A refusal is only final when decided on a fresh view.
                    Err(_) if from_cache => {
                        fresh_world = true;
                        continue;
                    }
                    Err(e) => return Err(e),
                    Ok(()) => used_world = Some(world),
                }
            }
            match self.txn(plan.txn(&self.keys), &mut retry).await? {
                Outcome::Applied(rev) => {
                    if let Some(mut w) = used_world {
                        let claimed: Vec<BlockCidr> = plan.new_blocks().copied().collect();
                        w.note_claims(&claimed);
                        // With a block limit the view's guard needs its own revision: re-read.
                        if w.config.max_blocks_per_host.is_none() {
                            own.world = Some(w);
                        }
                    }
                    let ips = plan.settle(&mut own, rev);
                    return Ok(Assignment {
                        handle: req.handle.clone(),
                        ips,
                    });
                }
                Outcome::Rejected(reads) => {
                    if let Some(e) = first(reads.first()) {
                        let h: Handle = decode(&e.key, &e.value)?;
                        return Ok(Assignment::from_handle(req.handle.clone(), &h));
                    }
                    refresh(&mut own, &req.host, &plan, reads.get(1..).unwrap_or(&[]));
                    retry.conflict().await?;
                }
            }
        }
    }

    /// Assigns one given address to a handle. Its block is claimed for `host` if nobody
    /// holds it; if another host holds it the address is borrowed.
    pub async fn assign_ip(
        &self,
        handle: &HandleId,
        host: &HostName,
        ip: IpAddr,
    ) -> Result<Assignment> {
        let cell = self.host_cell(host);
        let mut own = cell.lock().await;
        let mut retry = Retry::new(&self.opts.retry, "assign_ip");
        loop {
            let k = &self.keys;
            let (r, _) = self
                .read(
                    vec![Read::Key(k.handle(handle)), Read::Prefix(k.pools())],
                    &mut retry,
                )
                .await?;
            if let Some(e) = first(r.first()) {
                let h: Handle = decode(&e.key, &e.value)?;
                if h.ips.iter().any(|i| i.ip == ip) {
                    return Ok(Assignment::from_handle(handle.clone(), &h));
                }
                return Err(IpamError::Invalid(format!(
                    "handle {handle} already holds other addresses"
                )));
            }
            let pool = r
                .get(1)
                .into_iter()
                .flatten()
                .filter_map(|e| {
                    decode::<Pool>(&e.key, &e.value)
                        .ok()
                        .map(|p| (p, e.mod_revision))
                })
                .find(|(p, _)| p.cidr.contains(ip) && p.cidr.is_ipv4() == ip.is_ipv4());
            let Some((pool, pool_rev)) = pool else {
                return Err(IpamError::NotFound(format!("pool holding {ip}")));
            };
            if pool.disabled {
                return Err(IpamError::Invalid(format!(
                    "pool {} is disabled",
                    pool.name
                )));
            }
            let bits = if ip.is_ipv4() { 32 } else { 128 };
            let index = (ip_to_u128(ip) - ip_to_u128(pool.cidr.network()))
                >> (bits - u32::from(pool.block_prefix_len));
            let cidr = block_at(&pool.cidr, pool.block_prefix_len, index)?;
            let (r, _) = self
                .read(vec![Read::Key(k.block(&cidr))], &mut retry)
                .await?;
            let mut plan = Plan::new(Some(handle), host);
            let (mut block, rev) = match first(r.first()) {
                Some(e) => (decode::<Block>(&e.key, &e.value)?, e.mod_revision),
                None => {
                    plan.guard_once(Guard::Revision(k.pool(&pool.name), pool_rev));
                    (Block::new(cidr, host.clone(), plan.now), 0)
                }
            };
            let Some(off) = cidr.offset_of(ip) else {
                return Err(IpamError::Invalid(format!("{ip} not in {cidr}")));
            };
            if let Some(holder) = block.allocations.get(&off) {
                return Err(IpamError::AddressInUse {
                    ip,
                    handle: holder.clone(),
                });
            }
            // Put the cursor on the wanted address so `take` picks exactly it.
            let cursor = block.cursor;
            block.cursor = off;
            let borrowed = block.affinity.as_ref() != Some(host);
            plan.take(&block, rev, borrowed, 1);
            if let Some(e) = plan.blocks.get_mut(&cidr) {
                e.0.cursor = cursor;
            }
            match self.txn(plan.txn(k), &mut retry).await? {
                Outcome::Applied(rev) => {
                    let ips = plan.settle(&mut own, rev);
                    return Ok(Assignment {
                        handle: handle.clone(),
                        ips,
                    });
                }
                Outcome::Rejected(_) => {
                    own.loaded = false;
                    retry.conflict().await?;
                }
            }
        }
    }

    /// Claims one more block for `host` (a daemon's first block, or ahead of demand).
    pub async fn claim(&self, host: &HostName, family: Family) -> Result<BlockCidr> {
        let cell = self.host_cell(host);
        let mut own = cell.lock().await;
        let mut retry = Retry::new(&self.opts.retry, "claim");
        let mut fresh_world = false;
        loop {
            let cached_world = if fresh_world { None } else { own.world.take() };
            let from_cache = cached_world.is_some();
            let mut world = match cached_world {
                Some(w) => w,
                None => {
                    self.read_world(host, None, &BTreeSet::new(), &mut retry)
                        .await?
                }
            };
            let mut plan = Plan::new(None, host);
            let cidr = match self.claim_new(&world, &mut plan, family) {
                Claim::Claimed(c) => c,
                Claim::LimitReached(_) | Claim::NoneFree if from_cache => {
                    fresh_world = true;
                    continue;
                }
                Claim::LimitReached(limit) => {
                    return Err(IpamError::BlockLimitReached {
                        host: host.clone(),
                        limit,
                    });
                }
                Claim::NoneFree => {
                    return Err(IpamError::PoolExhausted {
                        host: host.clone(),
                        family: family.name(),
                    });
                }
            };
            match self.txn(plan.txn(&self.keys), &mut retry).await? {
                Outcome::Applied(rev) => {
                    world.note_claims(&[cidr]);
                    if world.config.max_blocks_per_host.is_none() {
                        own.world = Some(world);
                    }
                    if own.loaded {
                        plan.settle(&mut own, rev);
                    }
                    return Ok(cidr);
                }
                Outcome::Rejected(_) => retry.conflict().await?,
            }
        }
    }

    /// Releases every address of a handle; a handle already gone releases nothing.
    pub async fn release(&self, handle: &HandleId) -> Result<Vec<IpAddr>> {
        let mut retry = Retry::new(&self.opts.retry, "release");
        // Addresses of a release whose reply was lost: if the handle is gone now, they were
        // released (by us, or by someone else meanwhile).
        let mut maybe_released = Vec::new();
        loop {
            let k = &self.keys;
            let (r, _) = self
                .read(vec![Read::Key(k.handle(handle))], &mut retry)
                .await?;
            let Some(e) = first(r.first()) else {
                return Ok(maybe_released);
            };
            let h: Handle = decode(&e.key, &e.value)?;
            let handle_rev = e.mod_revision;
            let cells: BTreeSet<BlockCidr> = h.ips.iter().map(|i| i.block).collect();
            let reads = cells.iter().map(|c| Read::Key(k.block(c))).collect();
            let (r, _) = self.read(reads, &mut retry).await?;
            let now = now_ms();
            let mut txn = Txn {
                guards: vec![Guard::Revision(k.handle(handle), handle_rev)],
                writes: vec![Write::Delete(k.handle(handle))],
                on_reject: Vec::new(),
            };
            let mut blocks = BTreeMap::new();
            for (cidr, found) in cells.iter().zip(&r) {
                match found.first() {
                    Some(e) => {
                        let b: Block = decode(&e.key, &e.value)?;
                        blocks.insert(*cidr, (b, e.mod_revision));
                    }
                    None => txn.guards.push(Guard::Revision(k.block(cidr), 0)),
                }
            }
            for i in &h.ips {
                if let Some((b, _)) = blocks.get_mut(&i.block) {
                    b.release(i.ip, handle, now);
                }
            }
            for (cidr, (b, rev)) in &blocks {
                txn.guards.push(Guard::Revision(k.block(cidr), *rev));
                txn.writes.push(Write::Put(k.block(cidr), encode(b)));
            }
            let outages = retry.outages();
            match self.txn(txn, &mut retry).await? {
                Outcome::Applied(rev) => {
                    self.cache_blocks(blocks.into_values().map(|(b, _)| (b, rev)))
                        .await;
                    return Ok(h.ips.iter().map(|i| i.ip).collect());
                }
                Outcome::Rejected(_) => {
                    if retry.outages() > outages {
                        maybe_released = h.ips.iter().map(|i| i.ip).collect();
                    }
                    retry.conflict().await?
                }
            }
        }
    }

    /// Releases one address, whoever holds it; the holder's handle drops it.
    pub async fn release_ip(&self, ip: IpAddr) -> Result<()> {
        let mut retry = Retry::new(&self.opts.retry, "release_ip");
        // Set when a release was sent across an outage: it may have applied.
        let mut maybe_released = false;
        loop {
            let k = &self.keys;
            let (r, _) = self
                .read(vec![Read::PrefixKeys(k.blocks())], &mut retry)
                .await?;
            let prefix = k.blocks();
            let cidr = r
                .iter()
                .flatten()
                .filter_map(|e| e.key.strip_prefix(&prefix))
                .filter_map(|s| BlockCidr::from_key_segment(s).ok())
                .find(|c| c.offset_of(ip).is_some())
                .ok_or_else(|| IpamError::NotFound(format!("block holding {ip}")))?;
            let (r, _) = self
                .read(vec![Read::Key(k.block(&cidr))], &mut retry)
                .await?;
            let Some(e) = first(r.first()) else {
                retry.conflict().await?;
                continue;
            };
            let mut block: Block = decode(&e.key, &e.value)?;
            let block_rev = e.mod_revision;
            let Some(holder) = cidr
                .offset_of(ip)
                .and_then(|o| block.allocations.get(&o).cloned())
            else {
                if maybe_released {
                    return Ok(());
                }
                return Err(IpamError::NotFound(format!("assignment of {ip}")));
            };
            let (r, _) = self
                .read(vec![Read::Key(k.handle(&holder))], &mut retry)
                .await?;
            let hkey = k.handle(&holder);
            let mut txn = Txn::default();
            match first(r.first()) {
                Some(e) => {
                    let mut h: Handle = decode(&e.key, &e.value)?;
                    txn.guards
                        .push(Guard::Revision(hkey.clone(), e.mod_revision));
                    h.ips.retain(|i| i.ip != ip);
                    txn.writes.push(if h.ips.is_empty() {
                        Write::Delete(hkey)
                    } else {
                        Write::Put(hkey, encode(&h))
                    });
                }
                None => txn.guards.push(Guard::Revision(hkey, 0)),
            }
            block.release(ip, &holder, now_ms());
            txn.guards.push(Guard::Revision(k.block(&cidr), block_rev));
            txn.writes.push(Write::Put(k.block(&cidr), encode(&block)));
            let outages = retry.outages();
            match self.txn(txn, &mut retry).await? {
                Outcome::Applied(rev) => {
                    self.cache_blocks([(block, rev)]).await;
                    return Ok(());
                }
                Outcome::Rejected(_) => {
                    maybe_released |= retry.outages() > outages;
                    retry.conflict().await?
                }
            }
        }
    }

    /// Updates cached blocks of their hosts after a write outside an assignment.
    async fn cache_blocks(&self, blocks: impl IntoIterator<Item = (Block, i64)>) {
        for (b, rev) in blocks {
            let Some(host) = b.affinity.clone() else {
                continue;
            };
            let cell = self.host_cell(&host);
            let mut own = cell.lock().await;
            let newer = own.blocks.get(&b.cidr).is_none_or(|(_, r)| *r < rev);
            if own.loaded && newer {
                own.blocks.insert(b.cidr, (b, rev));
            }
        }
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

    /// Adds a pool; refused if its CIDR overlaps another pool or the name exists.
    pub async fn add_pool(&self, pool: &Pool) -> Result<()> {
        pool.validate()?;
        let mut retry = Retry::new(&self.opts.retry, "add_pool");
        loop {
            let (r, rev) = self
                .read(vec![Read::Prefix(self.keys.pools())], &mut retry)
                .await?;
            for e in r.iter().flatten() {
                let p: Pool = decode(&e.key, &e.value)?;
                if p.name == pool.name {
                    return Err(IpamError::Invalid(format!("pool {} exists", p.name)));
                }
                let overlap = p.cidr.is_ipv4() == pool.cidr.is_ipv4()
                    && (p.cidr.contains(pool.cidr.network())
                        || pool.cidr.contains(p.cidr.network()));
                if overlap {
                    return Err(IpamError::Invalid(format!(
                        "pool {} ({}) overlaps pool {} ({})",
                        pool.name, pool.cidr, p.name, p.cidr
                    )));
                }
            }
            let txn = Txn {
                guards: vec![Guard::PrefixUnchangedSince(self.keys.pools(), rev)],
                writes: vec![Write::Put(self.keys.pool(&pool.name), encode(pool))],
                on_reject: Vec::new(),
            };
            match self.txn(txn, &mut retry).await? {
                Outcome::Applied(_) => return Ok(()),
                Outcome::Rejected(_) => retry.conflict().await?,
            }
        }
    }

    /// Every pool, by name.
    pub async fn list_pools(&self) -> Result<Vec<Pool>> {
        let mut retry = Retry::new(&self.opts.retry, "list_pools");
        let (r, _) = self
            .read(vec![Read::Prefix(self.keys.pools())], &mut retry)
            .await?;
        r.iter()
            .flatten()
            .map(|e| decode(&e.key, &e.value))
            .collect()
    }

    /// Deletes a pool. Refused while any of its addresses is assigned, unless `force`, which
    /// first disables the pool (no new blocks, no borrowing), then deletes its blocks and
    /// releases their addresses, then the pool. Each step is one guarded txn; after a crash
    /// the pool is still there (disabled) and deleting it again finishes the job.
    pub async fn delete_pool(&self, name: &PoolName, force: bool) -> Result<PoolDeletion> {
        let mut retry = Retry::new(&self.opts.retry, "delete_pool");
        let mut done = PoolDeletion::default();
        let key = self.keys.pool(name);
        loop {
            let mut snap = self.snapshot(&mut retry).await?;
            let Some(pool) = snap.pools.iter().find(|p| &p.name == name).cloned() else {
                return Err(IpamError::NotFound(format!("pool {name}")));
            };
            let blocks: Vec<BlockCidr> = snap
                .blocks
                .keys()
                .filter(|c| c.within(&pool.cidr))
                .copied()
                .collect();
            let in_use: usize = blocks
                .iter()
                .filter_map(|c| snap.blocks.get(c))
                .map(|b| b.allocations.len())
                .sum();
            if in_use > 0 && !force {
                return Err(IpamError::PoolInUse {
                    pool: name.clone(),
                    in_use,
                });
            }
            let txn = if blocks.is_empty() {
                // No block in it, and none may appear before the delete applies.
                Txn {
                    guards: vec![
                        snap.guard(&key),
                        Guard::PrefixUnchangedSince(self.keys.blocks(), snap.rev),
                    ],
                    writes: vec![Write::Delete(key.clone())],
                    on_reject: Vec::new(),
                }
            } else if force && !pool.disabled {
                let mut off = pool.clone();
                off.disabled = true;
                Txn {
                    guards: vec![snap.guard(&key)],
                    writes: vec![Write::Put(key.clone(), encode(&off))],
                    on_reject: Vec::new(),
                }
            } else {
                // Empty blocks (or, forced, every block) go first, each guarded as read.
                let mut lost = false;
                for cidr in blocks {
                    let used = snap.blocks.get(&cidr).map_or(0, |b| b.allocations.len());
                    let txn = snap.drop_block(&self.keys, &cidr, Vec::new());
                    if self.apply(&mut snap, txn, &mut retry).await? {
                        done.blocks += 1;
                        done.released_ips += used;
                    } else {
                        lost = true;
                    }
                }
                self.forget_cache();
                if lost {
                    retry.conflict().await?;
                }
                continue;
            };
            match self.txn(txn, &mut retry).await? {
                Outcome::Applied(_) if blocks_gone(&snap, &pool) => {
                    self.forget_cache();
                    return Ok(done);
                }
                Outcome::Applied(_) => {}
                Outcome::Rejected(_) => retry.conflict().await?,
            }
        }
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

    /// Writes the node record of `host`, attached to `lease` (0: none); the daemon keeps the
    /// lease alive, so the record vanishes when the daemon dies.
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

/// Whether the snapshot holds no block of `pool` (the delete just applied was the last step).
fn blocks_gone(snap: &Snapshot, pool: &Pool) -> bool {
    !snap.blocks.keys().any(|c| c.within(&pool.cidr))
}

/// After a rejection: the blocks read back replace the cached ones (or drop them if they
/// are gone or no longer this host's).
fn refresh(own: &mut HostBlocks, host: &HostName, plan: &Plan<'_>, reads: &[Vec<Entry>]) {
    let existing = plan.blocks.iter().filter(|(_, (_, rev, _))| *rev != 0);
    for ((cidr, _), read) in existing.zip(reads) {
        match read.first().map(|e| (decode::<Block>(&e.key, &e.value), e)) {
            Some((Ok(b), e)) if b.affinity.as_ref() == Some(host) => {
                own.blocks.insert(*cidr, (b, e.mod_revision));
            }
            _ => {
                own.blocks.remove(cidr);
            }
        }
    }
}
