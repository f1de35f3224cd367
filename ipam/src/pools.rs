//! Pools: add (no overlap), list, delete (refused while in use unless forced).

use serde::Serialize;

use crate::block::BlockCidr;
use crate::client::Ipam;
use crate::error::{IpamError, Result};
use crate::names::PoolName;
use crate::record::{Pool, decode_pool, encode};
use crate::retry::Retry;
use crate::snapshot::Snapshot;
use crate::store::{Guard, Outcome, Read, Store, Txn, Write};

/// What a forced pool delete removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PoolDeletion {
    /// Blocks deleted.
    pub blocks: usize,
    /// Addresses that were still assigned and were released.
    pub released_ips: usize,
}

impl<S: Store> Ipam<S> {
    /// Adds a pool; refused if its CIDR overlaps another pool or the name exists.
    pub async fn add_pool(&self, pool: &Pool) -> Result<()> {
        pool.validate()?;
        let mut retry = Retry::new(&self.opts.retry, "add_pool");
        loop {
            let (r, rev) = self
                .read(vec![Read::Prefix(self.keys.pools())], &mut retry)
                .await?;
            for e in r.iter().flatten() {
                let p = decode_pool(&e.key, &e.value)?;
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
            .map(|e| decode_pool(&e.key, &e.value))
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
}

/// Whether the snapshot holds no block of `pool` (the delete just applied was the last step).
fn blocks_gone(snap: &Snapshot, pool: &Pool) -> bool {
    !snap.blocks.keys().any(|c| c.within(&pool.cidr))
}
