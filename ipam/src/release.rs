//! Releases: by handle and by address, each one guarded transaction.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crate::block::BlockCidr;
use crate::client::{Ipam, first, now_ms};
use crate::error::{IpamError, Result};
use crate::names::HandleId;
use crate::record::{Block, Handle, decode, decode_block, encode};
use crate::retry::Retry;
use crate::store::{Guard, Outcome, Read, Store, Txn, Write};

impl<S: Store> Ipam<S> {
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
                        let b: Block = decode_block(&e.key, &e.value)?;
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
            let mut block: Block = decode_block(&e.key, &e.value)?;
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
    pub(crate) async fn cache_blocks(&self, blocks: impl IntoIterator<Item = (Block, i64)>) {
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
}
