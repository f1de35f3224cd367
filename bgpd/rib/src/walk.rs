//! Where a whole-table send of one family to one peer stands: its first table, a ROUTE-REFRESH
//! answered, the table again after an export change. Such a send is not encoded in one drain
//! (a million routes would be tens of MiB queued for one peer); it walks the keys the table
//! had when it started, a batch per drain while the peer's writer has room. Prefixes that
//! change meanwhile reach the peer as changes (or through its backlog), so a prefix added
//! after the start is not missed and one removed is simply not found.

use std::sync::Arc;

/// The progress of one peer through one family's table.
pub(crate) enum Walk<K> {
    /// Nothing to send in full.
    Idle,
    /// To start at the next drain in which the peer can take it; the keys are taken then, so
    /// a peer that cannot read holds no copy.
    Pending,
    /// Sending `keys` (the table's, when it started; shared by every peer starting in that
    /// drain); `next` is the first not sent yet.
    At { keys: Arc<[K]>, next: usize },
}

impl<K> Walk<K> {
    /// Which keys and how far: peers at the same position can be sent the same bytes.
    pub(crate) fn position(&self) -> Option<(usize, usize)> {
        match self {
            Walk::At { keys, next } => Some((Arc::as_ptr(keys).cast::<()>().addr(), *next)),
            Walk::Idle | Walk::Pending => None,
        }
    }

    /// The next `n` keys to send.
    pub(crate) fn batch(&self, n: usize) -> Option<(Arc<[K]>, std::ops::Range<usize>)> {
        match self {
            Walk::At { keys, next } => {
                let end = next.saturating_add(n).min(keys.len());
                Some((Arc::clone(keys), *next..end))
            }
            Walk::Idle | Walk::Pending => None,
        }
    }

    /// Past the next `n` keys; idle once every key is sent.
    pub(crate) fn advance(&mut self, n: usize) {
        if let Walk::At { keys, next } = self {
            *next = next.saturating_add(n).min(keys.len());
            if *next == keys.len() {
                *self = Walk::Idle;
            }
        }
    }

    /// Whether the whole table has been sent (or none was asked for).
    pub(crate) fn is_idle(&self) -> bool {
        matches!(self, Walk::Idle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_walk_goes_through_its_keys_in_batches_and_ends_idle() {
        let keys: Arc<[u32]> = (0..10).collect();
        let mut w = Walk::At {
            keys: Arc::clone(&keys),
            next: 0,
        };
        let mut seen = Vec::new();
        while let Some((k, range)) = w.batch(4) {
            seen.extend_from_slice(&k[range]);
            w.advance(4);
        }
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
        assert!(w.is_idle());
        let other = Walk::At { keys, next: 0 };
        let empty: Walk<u32> = Walk::At {
            keys: Arc::from(Vec::new()),
            next: 0,
        };
        assert_ne!(
            other.position(),
            empty.position(),
            "told apart by their keys"
        );
        let mut empty = empty;
        empty.advance(4);
        assert!(empty.is_idle(), "an empty table is sent at once");
    }
}
