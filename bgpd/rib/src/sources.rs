//! Route sources: who a route came from, as a small id a route can carry in 24 bits.
//!
//! A source is a peer (or this speaker) plus the ADD-PATH path id the peer gave the route, so
//! several paths of one peer for one prefix are told apart. The id doubles as the path id we
//! send with ADD-PATH (plus one, as zero reads oddly in captures): unique per prefix because it
//! is unique everywhere.

use hashbrown::HashMap;

use crate::error::RibError;
use crate::peer::PeerId;
use crate::table::MAX_SOURCES;

/// Id of a route source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct SrcId(pub(crate) u32);

impl SrcId {
    /// This speaker's own routes.
    pub(crate) const LOCAL: SrcId = SrcId(0);

    /// The path id we send for routes of this source.
    pub(crate) fn path_id(self) -> u32 {
        self.0 + 1
    }
}

/// Whose route it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Owner {
    /// Originated here.
    Local,
    /// Learned from a peer.
    Peer(PeerId),
}

#[derive(Debug, Clone, Copy)]
struct Source {
    owner: Owner,
    path_id: u32,
}

/// The source registry.
pub(crate) struct Sources {
    list: Vec<Option<Source>>,
    index: HashMap<(PeerId, u32), SrcId>,
    free: Vec<u32>,
    /// Ids of removed peers, reusable after the next drain.
    retired: Vec<u32>,
}

impl Default for Sources {
    fn default() -> Self {
        Sources {
            list: vec![Some(Source {
                owner: Owner::Local,
                path_id: 0,
            })],
            index: HashMap::new(),
            free: Vec::new(),
            retired: Vec::new(),
        }
    }
}

impl Sources {
    /// The source for `peer`'s path `path_id` (0 without ADD-PATH), added if new.
    pub(crate) fn get_or_add(&mut self, peer: PeerId, path_id: u32) -> Result<SrcId, RibError> {
        if let Some(&id) = self.index.get(&(peer, path_id)) {
            return Ok(id);
        }
        let src = Source {
            owner: Owner::Peer(peer),
            path_id,
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.list[id as usize] = Some(src);
                id
            }
            None => {
                let id = u32::try_from(self.list.len()).unwrap_or(u32::MAX);
                if id >= MAX_SOURCES {
                    return Err(RibError::TooManySources);
                }
                self.list.push(Some(src));
                id
            }
        };
        self.index.insert((peer, path_id), SrcId(id));
        Ok(SrcId(id))
    }

    /// The source for `peer`'s path `path_id`, if known.
    pub(crate) fn find(&self, peer: PeerId, path_id: u32) -> Option<SrcId> {
        self.index.get(&(peer, path_id)).copied()
    }

    /// Who owns `id`.
    pub(crate) fn owner(&self, id: SrcId) -> Owner {
        self.list
            .get(id.0 as usize)
            .copied()
            .flatten()
            .map_or(Owner::Local, |s| s.owner)
    }

    /// The path id the peer gave, if it uses ADD-PATH (0 otherwise).
    pub(crate) fn remote_path_id(&self, id: SrcId) -> u32 {
        self.list
            .get(id.0 as usize)
            .copied()
            .flatten()
            .map_or(0, |s| s.path_id)
    }

    /// Forgets every source of `peer` (its routes must be gone); ids are reused after `collect`.
    pub(crate) fn retire(&mut self, peer: PeerId) {
        let retired = &mut self.retired;
        self.index.retain(|(p, _), id| {
            if *p == peer {
                retired.push(id.0);
                false
            } else {
                true
            }
        });
    }

    /// Makes retired ids reusable; snapshots naming them have been handled.
    pub(crate) fn collect(&mut self) {
        for id in std::mem::take(&mut self.retired) {
            if let Some(s) = self.list.get_mut(id as usize) {
                *s = None;
                self.free.push(id);
            }
        }
    }
}
