//! Interned attribute sets: one `Arc<PathAttrs>` per distinct set, shared by every route that
//! carries it and addressed by a four-octet handle, so a route pays four octets for its
//! attributes. Sets whose last route went away are freed at the end of a drain, not at once,
//! so handles held in change snapshots stay valid until the changes are sent.

use std::sync::Arc;

use bgpd_wire::PathAttrs;
use hashbrown::HashMap;

/// Handle of an interned attribute set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct AttrId(pub(crate) u32);

struct Entry {
    attrs: Option<Arc<PathAttrs>>,
    refs: u32,
}

/// The interning store.
#[derive(Default)]
pub(crate) struct AttrStore {
    entries: Vec<Entry>,
    free: Vec<u32>,
    index: HashMap<Arc<PathAttrs>, u32>,
    /// Handles whose count reached zero since the last `collect`.
    unused: Vec<u32>,
}

impl AttrStore {
    /// The handle of `attrs`, adding it if new. The caller takes references with `retain`.
    pub(crate) fn intern(&mut self, attrs: &PathAttrs) -> AttrId {
        if let Some(&id) = self.index.get(attrs) {
            return AttrId(id);
        }
        let arc = Arc::new(attrs.clone());
        let entry = Entry {
            attrs: Some(Arc::clone(&arc)),
            refs: 0,
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.entries[id as usize] = entry;
                id
            }
            None => {
                // Four thousand million distinct sets cannot fit in memory first.
                let id = u32::try_from(self.entries.len()).unwrap_or(u32::MAX);
                self.entries.push(entry);
                id
            }
        };
        self.index.insert(arc, id);
        // Freed by the next collect unless a route takes it.
        self.unused.push(id);
        AttrId(id)
    }

    /// Adds a reference (a route now carries the set).
    pub(crate) fn retain(&mut self, id: AttrId) {
        if let Some(e) = self.entries.get_mut(id.0 as usize) {
            e.refs = e.refs.saturating_add(1);
        }
    }

    /// Drops a reference.
    pub(crate) fn release(&mut self, id: AttrId) {
        if let Some(e) = self.entries.get_mut(id.0 as usize) {
            e.refs = e.refs.saturating_sub(1);
            if e.refs == 0 {
                self.unused.push(id.0);
            }
        }
    }

    /// The attribute set behind `id`.
    pub(crate) fn get(&self, id: AttrId) -> &Arc<PathAttrs> {
        static EMPTY: std::sync::LazyLock<Arc<PathAttrs>> = std::sync::LazyLock::new(Arc::default);
        self.entries
            .get(id.0 as usize)
            .and_then(|e| e.attrs.as_ref())
            .unwrap_or(&EMPTY)
    }

    /// Frees the sets no route carries any more.
    pub(crate) fn collect(&mut self) {
        for id in std::mem::take(&mut self.unused) {
            let Some(e) = self.entries.get_mut(id as usize) else {
                continue;
            };
            if e.refs == 0 {
                if let Some(arc) = e.attrs.take() {
                    self.index.remove(&*arc);
                    self.free.push(id);
                }
            }
        }
    }

    /// How many sets are alive.
    pub(crate) fn len(&self) -> usize {
        self.index.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_sets_share_a_handle_and_unused_ones_are_freed() {
        let mut s = AttrStore::default();
        let a = PathAttrs {
            med: Some(1),
            ..PathAttrs::default()
        };
        let b = PathAttrs {
            med: Some(2),
            ..PathAttrs::default()
        };
        let ia = s.intern(&a);
        assert_eq!(s.intern(&a), ia);
        s.retain(ia);
        let ib = s.intern(&b);
        assert_ne!(ia, ib);
        s.collect();
        assert_eq!(s.len(), 1, "b has no route");
        assert_eq!(**s.get(ia), a);
        s.release(ia);
        assert_eq!(s.len(), 1, "freed only at collect");
        s.collect();
        assert_eq!(s.len(), 0);
    }
}
