//! Outbound prefixes waiting to be encoded, partitioned so that each partition becomes UPDATEs
//! with one attribute set (or withdrawals) for one set of peers of one update group.

use bytes::Bytes;
use hashbrown::HashMap;

use bgpd_wire::{AfiSafi, Nlri};

use crate::peer::PeerId;

/// Encoded UPDATEs for a set of peers.
#[derive(Debug, Clone)]
pub struct Outbound {
    /// Who gets them.
    pub peers: Vec<PeerId>,
    /// Whole BGP messages, back to back, to write to each peer's socket as they are.
    pub messages: Bytes,
}

/// Which members of an update group a partition goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Audience {
    /// Members in sync (getting changes), but not `except` (the route's own source).
    Synced { except: Option<PeerId> },
    /// Members being sent the whole table that are at the same point of it as `lead` (itself
    /// included), but not `except`.
    Walking {
        lead: PeerId,
        except: Option<PeerId>,
    },
    /// One member only.
    One(PeerId),
}

/// A partition: group, family, audience, and the exported attribute set (`None`: withdrawals).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct PartKey {
    pub(crate) group: usize,
    pub(crate) family: AfiSafi,
    pub(crate) audience: Audience,
    pub(crate) exported: Option<u32>,
}

/// Prefixes a partition collects before it is encoded: a few full UPDATEs' worth, so memory
/// stays bounded however large the drain.
const BATCH: usize = 4096;

/// The partitions of one drain.
#[derive(Default)]
pub(crate) struct Outbox {
    index: HashMap<PartKey, usize>,
    parts: Vec<(PartKey, Vec<Nlri>)>,
    last: Option<(PartKey, usize)>,
}

impl Outbox {
    /// Adds `nlri` to partition `key`; returns a full batch to encode now.
    pub(crate) fn push(&mut self, key: PartKey, nlri: Nlri) -> Option<(PartKey, Vec<Nlri>)> {
        let i = match self.last {
            Some((k, i)) if k == key => i,
            _ => {
                let parts = &mut self.parts;
                let i = *self.index.entry(key).or_insert_with(|| {
                    parts.push((key, Vec::new()));
                    parts.len() - 1
                });
                self.last = Some((key, i));
                i
            }
        };
        let v = &mut self.parts[i].1;
        v.push(nlri);
        (v.len() >= BATCH).then(|| (key, std::mem::take(v)))
    }

    /// Every partition still holding prefixes, in creation order.
    pub(crate) fn take_all(&mut self) -> Vec<(PartKey, Vec<Nlri>)> {
        self.index.clear();
        self.last = None;
        std::mem::take(&mut self.parts)
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .collect()
    }
}
