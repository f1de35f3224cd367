//! What a peer whose writer fell behind must still be told. Instead of queueing encoded
//! UPDATEs without limit for a slow peer, the RIB stops sending it changes and notes which
//! prefixes changed (as BIRD's export table does); once its writer has room, the current state
//! of those prefixes is sent a batch at a time. The note is one entry per changed prefix (and,
//! with ADD-PATH, per path it may have been sent), so it is bounded by the table, not by how
//! long the peer stalls or how often a prefix changes.

use std::hash::Hash;

use hashbrown::HashSet;

/// Path id standing for "the prefix": re-send its current state. The path ids we send are
/// source ids plus one, so never zero.
pub(crate) const CURRENT: u32 = 0;

/// Prefixes of one family a peer has not been told about since it fell behind.
pub(crate) struct Backlog<K> {
    /// `(prefix, CURRENT)`: send its current state; `(prefix, path id)`: that path may have
    /// been sent, withdraw it unless it is still exported.
    entries: HashSet<(K, u32)>,
}

impl<K> Default for Backlog<K> {
    fn default() -> Self {
        Backlog {
            entries: HashSet::new(),
        }
    }
}

impl<K: Copy + Eq + Hash> Backlog<K> {
    /// Notes that `key` changed; `paths` are the path ids it had before (ADD-PATH only).
    pub(crate) fn record(&mut self, key: K, paths: impl IntoIterator<Item = u32>) {
        self.entries.insert((key, CURRENT));
        for p in paths {
            self.entries.insert((key, p));
        }
    }

    /// Takes up to `n` entries.
    pub(crate) fn take(&mut self, n: usize) -> Vec<(K, u32)> {
        let batch: Vec<(K, u32)> = self.entries.extract_if(|_| true).take(n).collect();
        if self.entries.is_empty() {
            // A backlog of a million prefixes should not keep its table once it is worked off.
            self.entries = HashSet::new();
        }
        batch
    }

    /// Whether nothing is left.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Forgets everything (the session ended or starts over with a full table).
    pub(crate) fn clear(&mut self) {
        self.entries = HashSet::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_taken_once_and_memory_is_returned() {
        let mut b = Backlog::<u32>::default();
        for k in 0..100 {
            b.record(k, [7]);
            b.record(k, []);
        }
        let mut seen = Vec::new();
        while !b.is_empty() {
            let batch = b.take(30);
            assert!(batch.len() <= 30);
            seen.extend(batch);
        }
        seen.sort();
        assert_eq!(seen.len(), 200, "one CURRENT and one path entry per prefix");
        assert!(seen.iter().all(|&(_, p)| p == CURRENT || p == 7));
        assert_eq!(b.entries.capacity(), 0);
    }
}
