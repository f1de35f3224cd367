//! Garbage collection: addresses and blocks of hosts that are gone, and empty blocks.
//!
//! A host is gone when its node record is missing (the daemon keeps it without a lease; an
//! operator deletes it to decommission the host). It is reclaimed only after it has been seen
//! gone for `dead_host_delay` by this client, and every reclaiming transaction is guarded on
//! the node record still being absent, so a host that comes back in between is never touched.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::block::{BlockCidr, Family};
use crate::client::{Ipam, now_ms};
use crate::error::Result;
use crate::names::{HandleId, HostName};
use crate::retry::Retry;
use crate::store::{Guard, Store};

/// What one GC pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GcReport {
    /// Handles of gone hosts, released.
    pub released_handles: Vec<HandleId>,
    /// Blocks deleted (empty past the grace period, or of gone hosts).
    pub deleted_blocks: Vec<BlockCidr>,
    /// Blocks of gone hosts kept without affinity because other hosts borrow from them.
    pub orphaned_blocks: Vec<BlockCidr>,
    /// Hosts seen gone but still within the safety delay.
    pub waiting: Vec<HostName>,
    /// Transactions that lost a race; the next pass retries them.
    pub conflicts: usize,
}

impl<S: Store> Ipam<S> {
    /// One GC pass; run it periodically (any host or a controller may).
    pub async fn gc(&self) -> Result<GcReport> {
        let mut retry = Retry::new(&self.opts.retry, "gc");
        let mut snap = self.snapshot(&mut retry).await?;
        let now = now_ms();
        let mut report = GcReport::default();

        let mut referenced: BTreeSet<HostName> = snap
            .blocks
            .values()
            .filter_map(|b| b.affinity.clone())
            .collect();
        referenced.extend(snap.handles.values().map(|h| h.host.clone()));
        referenced.extend(snap.affinities.keys().map(|(h, _)| h.clone()));
        let gone: BTreeSet<HostName> = referenced
            .into_iter()
            .filter(|h| !snap.nodes.contains_key(h))
            .collect();
        let delay = self.opts.dead_host_delay.as_millis() as u64;
        let reclaim: Vec<HostName> = {
            let mut since = self.gone_since.lock().unwrap_or_else(|p| p.into_inner());
            since.retain(|h, _| gone.contains(h));
            gone.iter()
                .filter(|h| {
                    let first = *since.entry((*h).clone()).or_insert(now);
                    let due = now.saturating_sub(first) >= delay;
                    if !due {
                        report.waiting.push((*h).clone());
                    }
                    due
                })
                .cloned()
                .collect()
        };

        for host in &reclaim {
            let alive_guard = || vec![Guard::Revision(self.keys.node(host), 0)];
            let handles: Vec<HandleId> = snap
                .handles
                .iter()
                .filter(|(_, h)| &h.host == host)
                .map(|(id, _)| id.clone())
                .collect();
            for id in handles {
                let txn = snap.release_handle(&self.keys, &id, alive_guard(), now);
                if self.apply(&mut snap, txn, &mut retry).await? {
                    report.released_handles.push(id);
                } else {
                    report.conflicts += 1;
                }
            }
            let blocks: Vec<BlockCidr> = snap
                .blocks
                .values()
                .filter(|b| b.affinity.as_ref() == Some(host))
                .map(|b| b.cidr)
                .collect();
            for cidr in blocks {
                let empty = snap
                    .blocks
                    .get(&cidr)
                    .is_some_and(|b| b.allocations.is_empty());
                let txn = if empty {
                    snap.drop_block(&self.keys, &cidr, alive_guard())
                } else {
                    snap.orphan_block(&self.keys, &cidr, alive_guard())
                };
                match (self.apply(&mut snap, txn, &mut retry).await?, empty) {
                    (true, true) => report.deleted_blocks.push(cidr),
                    (true, false) => report.orphaned_blocks.push(cidr),
                    (false, _) => report.conflicts += 1,
                }
            }
        }

        // Empty blocks past their grace period lose their affinity (the block is deleted),
        // except a live host's last block of a family: the daemon advertises it.
        let grace = self.opts.empty_block_grace.as_millis() as u64;
        let mut held: BTreeMap<(HostName, Family), usize> = BTreeMap::new();
        for b in snap.blocks.values() {
            if let Some(h) = &b.affinity {
                *held.entry((h.clone(), b.cidr.family())).or_default() += 1;
            }
        }
        let expired: Vec<BlockCidr> = snap
            .blocks
            .values()
            .filter(|b| {
                b.allocations.is_empty()
                    && b.emptied_at_ms
                        .is_some_and(|t| now.saturating_sub(t) >= grace)
                    && b.affinity
                        .as_ref()
                        .is_none_or(|h| snap.nodes.contains_key(h))
            })
            .map(|b| b.cidr)
            .collect();
        for cidr in expired {
            let owner = snap.blocks.get(&cidr).and_then(|b| b.affinity.clone());
            if let Some(h) = &owner {
                let n = held.entry((h.clone(), cidr.family())).or_default();
                if *n <= 1 {
                    continue;
                }
                *n -= 1;
            }
            let txn = snap.drop_block(&self.keys, &cidr, Vec::new());
            if self.apply(&mut snap, txn, &mut retry).await? {
                report.deleted_blocks.push(cidr);
            } else {
                report.conflicts += 1;
            }
        }
        if !report.deleted_blocks.is_empty() || !report.released_handles.is_empty() {
            self.forget_cache();
        }
        Ok(report)
    }
}
