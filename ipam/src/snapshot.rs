//! One consistent view of everything IPAM stores, parsed, for check, repair and GC; and the
//! bookkeeping that lets several guarded transactions be built from one view.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use crate::block::BlockCidr;
use crate::names::{HandleId, HostName};
use crate::record::{
    Affinity, Block, Handle, IpamConfig, Keys, NodeRecord, Pool, VERSION, decode, decode_block,
    decode_pool, encode,
};
use crate::store::{Entry, Guard, Txn, Write};

/// Everything under the root at one revision.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    /// The revision it was read at.
    pub rev: i64,
    pub pools: Vec<Pool>,
    pub config: IpamConfig,
    pub blocks: BTreeMap<BlockCidr, Block>,
    pub handles: BTreeMap<HandleId, Handle>,
    /// (host, block) of every affinity key.
    pub affinities: BTreeMap<(HostName, BlockCidr), ()>,
    pub nodes: BTreeMap<HostName, NodeRecord>,
    /// Keys whose value or name could not be read, and why.
    pub corrupt: Vec<(String, String)>,
    /// Handles whose key exists but cannot be read: their addresses are not free.
    pub unreadable_handles: BTreeSet<HandleId>,
    /// Blocks whose key exists but cannot be read: nothing in them can be checked.
    pub unreadable_blocks: BTreeSet<BlockCidr>,
    /// mod_revision of every key; -1 marks a key whose write was rejected (stale view).
    revs: HashMap<String, i64>,
}

impl Snapshot {
    /// Parses every entry under `keys.root()`.
    pub fn parse(keys: &Keys, entries: Vec<Entry>, rev: i64) -> Snapshot {
        let mut s = Snapshot {
            rev,
            ..Snapshot::default()
        };
        for e in entries {
            s.revs.insert(e.key.clone(), e.mod_revision);
            if let Err(reason) = s.add(keys, &e) {
                s.corrupt.push((e.key.clone(), reason));
            }
        }
        s
    }

    fn add(&mut self, keys: &Keys, e: &Entry) -> Result<(), String> {
        let k = e.key.as_str();
        let err = |x: crate::IpamError| x.to_string();
        if k == keys.config() {
            self.config = decode(k, &e.value).map_err(err)?;
        } else if k.starts_with(&keys.pools()) {
            self.pools.push(decode_pool(k, &e.value).map_err(err)?);
        } else if let Some(seg) = k.strip_prefix(&keys.blocks()) {
            let cidr = BlockCidr::from_key_segment(seg).map_err(err)?;
            self.unreadable_blocks.insert(cidr);
            let b: Block = decode_block(k, &e.value).map_err(err)?;
            self.unreadable_blocks.remove(&cidr);
            self.blocks.insert(cidr, b);
        } else if let Some(rest) = k.strip_prefix(&keys.affinities()) {
            let (host, seg) = rest
                .split_once('/')
                .ok_or_else(|| "affinity key without block".to_string())?;
            let host = HostName::new(host).map_err(err)?;
            let cidr = BlockCidr::from_key_segment(seg).map_err(err)?;
            let _: Affinity = decode(k, &e.value).map_err(err)?;
            self.affinities.insert((host, cidr), ());
        } else if let Some(id) = k.strip_prefix(&keys.handles()) {
            let id = HandleId::new(id).map_err(err)?;
            match decode::<Handle>(k, &e.value) {
                Ok(h) => {
                    self.handles.insert(id, h);
                }
                Err(x) => {
                    self.unreadable_handles.insert(id);
                    return Err(x.to_string());
                }
            }
        } else if let Some(host) = k.strip_prefix(&keys.nodes()) {
            let host = HostName::new(host).map_err(err)?;
            // A node record that does not parse still proves the host is alive.
            let rec = decode(k, &e.value).unwrap_or_default();
            self.nodes.insert(host, rec);
        }
        Ok(())
    }

    /// The key's revision as a guard: what we saw, or "absent".
    pub fn guard(&self, key: &str) -> Guard {
        Guard::Revision(key.to_string(), self.revs.get(key).copied().unwrap_or(0))
    }

    /// Records the effect of a transaction on the view: applied writes get the new revision,
    /// rejected ones poison their keys so later transactions on them are rejected too.
    pub fn settle(&mut self, writes: &[Write], applied: Option<i64>) {
        for w in writes {
            match (w, applied) {
                (Write::Put(k, _), Some(rev)) => {
                    self.revs.insert(k.clone(), rev);
                }
                (Write::Delete(k), Some(_)) => {
                    self.revs.remove(k);
                }
                (Write::Put(k, _) | Write::Delete(k), None) => {
                    self.revs.insert(k.clone(), -1);
                }
            }
        }
    }

    /// The pool whose CIDR holds the block.
    pub fn pool_of(&self, b: &BlockCidr) -> Option<&Pool> {
        self.pools.iter().find(|p| b.within(&p.cidr))
    }
}

/// Transactions built from the view. Each changes the view's records as if applied and
/// guards every key its decision rests on, so a stale view can only be rejected.
impl Snapshot {
    fn put_block(&self, keys: &Keys, cidr: &BlockCidr, t: &mut Txn) {
        if let Some(b) = self.blocks.get(cidr) {
            t.writes.push(Write::Put(keys.block(cidr), encode(b)));
        }
    }

    /// Deletes a block and its affinity keys; addresses in it are dropped from their handles.
    pub fn drop_block(&mut self, keys: &Keys, cidr: &BlockCidr, guards: Vec<Guard>) -> Txn {
        let mut t = Txn {
            guards,
            ..Txn::default()
        };
        let bkey = keys.block(cidr);
        t.guards.push(self.guard(&bkey));
        t.writes.push(Write::Delete(bkey));
        let hosts: Vec<HostName> = self
            .affinities
            .keys()
            .filter(|(_, c)| c == cidr)
            .map(|(h, _)| h.clone())
            .collect();
        for h in hosts {
            let akey = keys.affinity(&h, cidr);
            t.guards.push(self.guard(&akey));
            t.writes.push(Write::Delete(akey));
            self.affinities.remove(&(h, *cidr));
        }
        if let Some(b) = self.blocks.remove(cidr) {
            let holders: BTreeSet<HandleId> = b.allocations.values().cloned().collect();
            for id in holders {
                let hkey = keys.handle(&id);
                t.guards.push(self.guard(&hkey));
                if let Some(h) = self.handles.get_mut(&id) {
                    h.ips.retain(|i| i.block != *cidr);
                    if h.ips.is_empty() {
                        self.handles.remove(&id);
                        t.writes.push(Write::Delete(hkey));
                    } else {
                        t.writes.push(Write::Put(hkey, encode(&*h)));
                    }
                }
            }
        }
        t
    }

    /// Releases every address of a handle and deletes it.
    pub fn release_handle(
        &mut self,
        keys: &Keys,
        id: &HandleId,
        guards: Vec<Guard>,
        now: u64,
    ) -> Txn {
        let mut t = Txn {
            guards,
            ..Txn::default()
        };
        let hkey = keys.handle(id);
        t.guards.push(self.guard(&hkey));
        t.writes.push(Write::Delete(hkey));
        let Some(h) = self.handles.remove(id) else {
            return t;
        };
        let cidrs: BTreeSet<BlockCidr> = h.ips.iter().map(|i| i.block).collect();
        for i in &h.ips {
            if let Some(b) = self.blocks.get_mut(&i.block) {
                b.release(i.ip, id, now);
            }
        }
        for c in &cidrs {
            t.guards.push(self.guard(&keys.block(c)));
            self.put_block(keys, c, &mut t);
        }
        t
    }

    /// Takes a block's affinity away (its host is gone) but keeps it for its borrowers.
    pub fn orphan_block(&mut self, keys: &Keys, cidr: &BlockCidr, guards: Vec<Guard>) -> Txn {
        let mut t = Txn {
            guards,
            ..Txn::default()
        };
        t.guards.push(self.guard(&keys.block(cidr)));
        if let Some(b) = self.blocks.get_mut(cidr) {
            if let Some(h) = b.affinity.take() {
                let akey = keys.affinity(&h, cidr);
                t.guards.push(self.guard(&akey));
                t.writes.push(Write::Delete(akey));
                self.affinities.remove(&(h, *cidr));
            }
        }
        self.put_block(keys, cidr, &mut t);
        t
    }

    /// Frees one address in a block, whoever the block says holds it.
    pub fn free_ip(&mut self, keys: &Keys, ip: IpAddr, now: u64) -> Txn {
        let mut t = Txn::default();
        let Some(cidr) = self
            .blocks
            .keys()
            .find(|c| c.offset_of(ip).is_some())
            .copied()
        else {
            return t;
        };
        t.guards.push(self.guard(&keys.block(&cidr)));
        let holder = self
            .blocks
            .get(&cidr)
            .and_then(|b| cidr.offset_of(ip).and_then(|o| b.allocations.get(&o)))
            .cloned();
        if let Some(holder) = holder {
            t.guards.push(self.guard(&keys.handle(&holder)));
            if let Some(b) = self.blocks.get_mut(&cidr) {
                b.release(ip, &holder, now);
            }
        }
        self.put_block(keys, &cidr, &mut t);
        t
    }

    /// Drops one address from a handle's list (deleting the handle if it becomes empty).
    pub fn strip_handle_ip(&mut self, keys: &Keys, id: &HandleId, ip: IpAddr) -> Txn {
        let mut t = Txn::default();
        let hkey = keys.handle(id);
        t.guards.push(self.guard(&hkey));
        if let Some(block) = self.blocks.keys().find(|c| c.offset_of(ip).is_some()) {
            t.guards.push(self.guard(&keys.block(block)));
        }
        let Some(h) = self.handles.get_mut(id) else {
            return t;
        };
        h.ips.retain(|i| i.ip != ip);
        if h.ips.is_empty() {
            self.handles.remove(id);
            t.writes.push(Write::Delete(hkey));
        } else {
            t.writes.push(Write::Put(hkey, encode(&*h)));
        }
        t
    }

    /// Deletes an affinity key that names no block of that host.
    pub fn drop_affinity(&mut self, keys: &Keys, host: &HostName, cidr: &BlockCidr) -> Txn {
        let akey = keys.affinity(host, cidr);
        self.affinities.remove(&(host.clone(), *cidr));
        Txn {
            guards: vec![self.guard(&akey), self.guard(&keys.block(cidr))],
            writes: vec![Write::Delete(akey)],
            on_reject: Vec::new(),
        }
    }

    /// Writes the affinity key a block's record names but that is missing.
    pub fn restore_affinity(&mut self, keys: &Keys, host: &HostName, cidr: &BlockCidr) -> Txn {
        let akey = keys.affinity(host, cidr);
        self.affinities.insert((host.clone(), *cidr), ());
        let aff = Affinity {
            version: VERSION,
            block: *cidr,
        };
        Txn {
            guards: vec![self.guard(&akey), self.guard(&keys.block(cidr))],
            writes: vec![Write::Put(akey, encode(&aff))],
            on_reject: Vec::new(),
        }
    }
}
