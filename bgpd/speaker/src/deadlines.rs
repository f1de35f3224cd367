//! The actor's timers: one heap of deadlines instead of a task per timer. The hold timer is
//! pushed back on every message, so moving a deadline later costs no heap entry: the entry
//! already in the heap is re-queued for the new time when it surfaces. Moving it earlier (or
//! re-arming a disarmed timer) pushes a new entry; the old one is recognised as stale by its
//! generation.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::Hash;

use tokio::time::Instant;

/// Deadlines keyed by `K`, each armed at most once at a time.
#[derive(Debug)]
pub struct Deadlines<K> {
    heap: BinaryHeap<Reverse<(Instant, u64, K)>>,
    /// Armed keys: the generation of their heap entry and their current deadline.
    armed: HashMap<K, (u64, Instant)>,
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
        if let Some((_, due)) = self.armed.get_mut(&key)
            && *due <= at
        {
            // Later than the queued entry: it will be re-queued when it surfaces.
            *due = at;
            return;
        }
        self.push(key, at);
    }

    fn push(&mut self, key: K, at: Instant) {
        self.next_gen += 1;
        self.armed.insert(key.clone(), (self.next_gen, at));
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

    /// The earliest time anything may be due (an extended entry may only be re-queued then).
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
            let Some(Reverse((_, _, key))) = self.heap.pop() else {
                break;
            };
            match self.armed.get(&key).map(|(_, due)| *due) {
                Some(due) if due > now => self.push(key, due),
                _ => {
                    self.armed.remove(&key);
                    out.push(key);
                }
            }
        }
        out
    }

    fn drop_stale(&mut self) {
        while let Some(Reverse((_, generation, key))) = self.heap.peek() {
            if self.armed.get(key).map(|(g, _)| g) == Some(generation) {
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
        let s = Duration::from_secs;
        let mut d = Deadlines::default();
        d.arm("hold", t0 + s(1));
        d.arm("hold", t0 + s(5));
        d.arm("keepalive", t0 + s(2));
        d.arm("retry", t0 + s(3));
        d.disarm(&"retry");
        assert_eq!(d.expired(t0 + s(4)), vec!["keepalive"]);
        assert!(d.is_armed(&"hold"));
        assert_eq!(d.expired(t0 + s(5)), vec!["hold"]);
        assert_eq!(d.earliest(), None);
    }

    #[test]
    fn extending_a_deadline_adds_no_heap_entry() {
        let t0 = Instant::now();
        let mut d = Deadlines::default();
        for i in 1..=1000 {
            d.arm("hold", t0 + Duration::from_millis(i));
        }
        assert_eq!(d.heap.len(), 1);
        assert!(d.expired(t0 + Duration::from_millis(999)).is_empty());
        assert_eq!(d.expired(t0 + Duration::from_millis(1000)), vec!["hold"]);
    }

    #[test]
    fn moving_a_deadline_earlier_fires_at_the_earlier_time() {
        let t0 = Instant::now();
        let mut d = Deadlines::default();
        d.arm("t", t0 + Duration::from_secs(10));
        d.arm("t", t0 + Duration::from_secs(1));
        assert_eq!(d.expired(t0 + Duration::from_secs(1)), vec!["t"]);
        assert!(d.expired(t0 + Duration::from_secs(10)).is_empty());
    }
}
