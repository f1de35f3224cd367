//! The actor's timers: one heap of deadlines instead of a task per timer. Re-arming a timer
//! (the hold timer restarts on every UPDATE) is a push; the replaced entry is recognised as
//! stale by its generation when it surfaces.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::Hash;

use tokio::time::Instant;

/// Deadlines keyed by `K`, each armed at most once at a time.
#[derive(Debug)]
pub struct Deadlines<K> {
    heap: BinaryHeap<Reverse<(Instant, u64, K)>>,
    armed: HashMap<K, u64>,
    next_gen: u64,
}

impl<K: Clone + Eq + Hash + Ord> Default for Deadlines<K> {
    fn default() -> Self {
        Deadlines {
            heap: BinaryHeap::new(),
            armed: HashMap::new(),
            next_gen: 0,
        }
    }
}

impl<K: Clone + Eq + Hash + Ord> Deadlines<K> {
    /// Arms `key` to fire at `at`, replacing an earlier arming.
    pub fn arm(&mut self, key: K, at: Instant) {
        self.next_gen += 1;
        self.armed.insert(key.clone(), self.next_gen);
        self.heap.push(Reverse((at, self.next_gen, key)));
    }

    /// Disarms `key`.
    pub fn disarm(&mut self, key: &K) {
        self.armed.remove(key);
    }

    /// Whether `key` is armed.
    pub fn is_armed(&self, key: &K) -> bool {
        self.armed.contains_key(key)
    }

    /// The earliest live deadline.
    pub fn earliest(&mut self) -> Option<Instant> {
        self.drop_stale();
        self.heap.peek().map(|Reverse((at, _, _))| *at)
    }

    /// Removes and returns every key due at `now`.
    pub fn expired(&mut self, now: Instant) -> Vec<K> {
        let mut out = Vec::new();
        loop {
            self.drop_stale();
            match self.heap.peek() {
                Some(Reverse((at, _, _))) if *at <= now => {}
                _ => break,
            }
            if let Some(Reverse((_, _, key))) = self.heap.pop() {
                self.armed.remove(&key);
                out.push(key);
            }
        }
        out
    }

    fn drop_stale(&mut self) {
        while let Some(Reverse((_, generation, key))) = self.heap.peek() {
            if self.armed.get(key) == Some(generation) {
                break;
            }
            self.heap.pop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rearming_replaces_and_disarming_removes() {
        let t0 = Instant::now();
        let mut d = Deadlines::default();
        d.arm("hold", t0 + Duration::from_secs(1));
        d.arm("hold", t0 + Duration::from_secs(5));
        d.arm("keepalive", t0 + Duration::from_secs(2));
        d.arm("retry", t0 + Duration::from_secs(3));
        d.disarm(&"retry");
        assert_eq!(d.earliest(), Some(t0 + Duration::from_secs(2)));
        assert_eq!(d.expired(t0 + Duration::from_secs(4)), vec!["keepalive"]);
        assert!(d.is_armed(&"hold"));
        assert_eq!(d.expired(t0 + Duration::from_secs(5)), vec!["hold"]);
        assert_eq!(d.earliest(), None);
    }
}
