//! Assignments and block claims: the fast path (one txn against the cached blocks of a host)
//! and the slow path (claim a new block, or borrow), each ending in one guarded transaction.
//!
//! The common assignment is one etcd transaction: the client keeps the host's blocks with
//! their mod_revision and writes the block and the handle optimistically, guarded on that
//! revision and on the handle not existing yet. A rejected transaction carries the current
//! values back, so the retry needs no extra read.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde::Serialize;

use crate::alloc;
use crate::block::{BlockCidr, Family, block_at, ip_to_u128};
use crate::client::{Ipam, first, now_ms};
use crate::error::{IpamError, Result};
use crate::names::{HandleId, HostName};
use crate::record::{
    Affinity, Block, Handle, HandleIp, IpamConfig, Keys, NodeRecord, Pool, VERSION, decode,
    decode_block, decode_pool, encode,
};
use crate::retry::Retry;
use crate::store::{Entry, Guard, Outcome, Read, Store, Txn, Write};

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
    pub(crate) fn from_handle(id: HandleId, h: &Handle) -> Assignment {
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

/// The blocks one host holds, as last seen, with their mod_revision.
#[derive(Debug, Default)]
pub(crate) struct HostBlocks {
    pub(crate) loaded: bool,
    /// The blocks named by the host's affinity keys when last loaded or claimed.
    pub(crate) affinity_keys: BTreeSet<BlockCidr>,
    /// The last view of pools, config and taken blocks, reused so that claiming a block is
    /// one transaction too; every input it rests on is guarded, so a stale view is rejected.
    world: Option<World>,
    pub(crate) blocks: BTreeMap<BlockCidr, (Block, i64)>,
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

impl<S: Store> Ipam<S> {
    /// Loads the host's blocks: its affinity keys, then those blocks.
    pub(crate) async fn load_host(
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
            match decode_block(&e.key, &e.value) {
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
                let b: Block = decode_block(&e.key, &e.value).ok()?;
                (b.affinity.as_ref() == Some(host)).then_some((b.cidr, (b, e.mod_revision)))
            })
            .collect();
        let mut pools = Vec::new();
        for e in r.first().into_iter().flatten() {
            match decode_pool(&e.key, &e.value) {
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
            let Ok(b) = decode_block(&e.key, &e.value) else {
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
                    decode_pool(&e.key, &e.value)
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
                Some(e) => (decode_block(&e.key, &e.value)?, e.mod_revision),
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
}

/// After a rejection: the blocks read back replace the cached ones (or drop them if they
/// are gone or no longer this host's).
fn refresh(own: &mut HostBlocks, host: &HostName, plan: &Plan<'_>, reads: &[Vec<Entry>]) {
    let existing = plan.blocks.iter().filter(|(_, (_, rev, _))| *rev != 0);
    for ((cidr, _), read) in existing.zip(reads) {
        match read.first().map(|e| (decode_block(&e.key, &e.value), e)) {
            Some((Ok(b), e)) if b.affinity.as_ref() == Some(host) => {
                own.blocks.insert(*cidr, (b, e.mod_revision));
            }
            _ => {
                own.blocks.remove(cidr);
            }
        }
    }
}
