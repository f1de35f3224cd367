//! The per-family route table: every candidate route of every prefix in one hash map.
//!
//! It is the Adj-RIB-In of every peer and the Loc-RIB at once (as BIRD keeps one table of
//! candidates per prefix): a prefix maps to an eight-octet slot holding its only route inline,
//! or, when several peers announce it, the index of a small vector in an overflow arena (two
//! routes fit it inline, so the common two-path prefix costs no allocation). A route
//! is (attribute handle, source id, flags) in eight octets, so a table of one million IPv4
//! prefixes with one route each needs 16 octets per hash bucket.
//!
//! A prefix changed since the last drain is "dirty": its routes as they were before the first
//! change are kept in a snapshot, so the drain can tell what was best and what was advertised
//! without an Adj-RIB-Out per peer.

use std::hash::Hash;

use bgpd_wire::{Ipv4Prefix, Ipv6Prefix, Prefix};
use hashbrown::HashMap;
use smallvec::{SmallVec, smallvec};

use crate::intern::AttrId;
use crate::sources::SrcId;

/// Route flags (low four bits of the flag octet).
pub(crate) mod flag {
    /// Kept for a gracefully restarting peer (RFC 4724); flushed at its End-of-RIB.
    pub(crate) const STALE: u8 = 0x01;
    /// Not accepted: import policy or loop detection refused it. Kept for counting only.
    pub(crate) const REJECTED: u8 = 0x02;
    /// The best route of its prefix.
    pub(crate) const BEST: u8 = 0x04;
    /// In the multipath (ECMP) set of its prefix; the best route is too.
    pub(crate) const MULTIPATH: u8 = 0x08;
}

const ROUTE_FLAGS: u8 = 0x0f;
/// Slot flags, in the flag octet of a slot's inline route.
const EMPTY: u8 = 0x20;
const MANY: u8 = 0x40;
const DIRTY: u8 = 0x80;
const SRC_MASK: u32 = 0x00ff_ffff;

/// Most route sources the table can tell apart (24 bits of a route).
pub(crate) const MAX_SOURCES: u32 = SRC_MASK + 1;

/// One candidate route: its attribute set, where it came from, and flags.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Route {
    attrs: u32,
    /// Source id in the low 24 bits, flags in the high 8.
    tag: u32,
}

impl Route {
    /// A route with `attrs` from `src`; `src` must be below [`MAX_SOURCES`].
    pub(crate) fn new(attrs: AttrId, src: SrcId, flags: u8) -> Route {
        Route {
            attrs: attrs.0,
            tag: (src.0 & SRC_MASK) | (u32::from(flags & ROUTE_FLAGS) << 24),
        }
    }

    /// Its attribute set.
    pub(crate) fn attrs(self) -> AttrId {
        AttrId(self.attrs)
    }

    /// Where it came from.
    pub(crate) fn src(self) -> SrcId {
        SrcId(self.tag & SRC_MASK)
    }

    fn octet(self) -> u8 {
        (self.tag >> 24) as u8
    }

    fn set_octet(&mut self, v: u8) {
        self.tag = (self.tag & SRC_MASK) | (u32::from(v) << 24);
    }

    /// Whether route flag `f` is set.
    pub(crate) fn is(self, f: u8) -> bool {
        self.octet() & f & ROUTE_FLAGS != 0
    }

    /// Sets or clears route flag `f`.
    pub(crate) fn set(&mut self, f: u8, on: bool) {
        let f = f & ROUTE_FLAGS;
        let o = self.octet();
        self.set_octet(if on { o | f } else { o & !f });
    }

    /// The route alone, without slot flags.
    fn bare(mut self) -> Route {
        let o = self.octet();
        self.set_octet(o & ROUTE_FLAGS);
        self
    }
}

/// A table key: a prefix of one family, hashed as one integer.
pub(crate) trait Key: Copy + Eq + Hash + Ord {
    /// The key of `p`, if it is of this family.
    fn of(p: Prefix) -> Option<Self>;
    /// The prefix back.
    fn prefix(self) -> Prefix;
}

/// An IPv4 prefix (eight octets), hashed as `address << 8 | length`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct V4(Ipv4Prefix);

impl Hash for V4 {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        h.write_u64((u64::from(u32::from(self.0.addr())) << 8) | u64::from(self.0.length()));
    }
}

impl Key for V4 {
    fn of(p: Prefix) -> Option<V4> {
        match p {
            Prefix::V4(p) => Some(V4(p)),
            Prefix::V6(_) => None,
        }
    }

    fn prefix(self) -> Prefix {
        Prefix::V4(self.0)
    }
}

/// An IPv6 prefix, hashed as its address and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct V6(Ipv6Prefix);

impl Hash for V6 {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        h.write_u128(u128::from(self.0.addr()));
        h.write_u8(self.0.length());
    }
}

impl Key for V6 {
    fn of(p: Prefix) -> Option<V6> {
        match p {
            Prefix::V6(p) => Some(V6(p)),
            Prefix::V4(_) => None,
        }
    }

    fn prefix(self) -> Prefix {
        Prefix::V6(self.0)
    }
}

/// A map value: an inline route, or an overflow index (`MANY`), or nothing (`EMPTY`, kept only
/// while the prefix is dirty).
#[derive(Debug, Clone, Copy)]
struct Slot(Route);

impl Slot {
    const EMPTY: Slot = Slot(Route {
        attrs: 0,
        tag: (EMPTY as u32) << 24,
    });

    fn has(self, f: u8) -> bool {
        self.0.octet() & f != 0
    }

    fn mark(&mut self, f: u8, on: bool) {
        let o = self.0.octet();
        self.0.set_octet(if on { o | f } else { o & !f });
    }

    /// A slot holding `r` alone, keeping this slot's dirty mark.
    fn one(self, r: Route) -> Slot {
        let mut s = Slot(r.bare());
        s.mark(DIRTY, self.has(DIRTY));
        s
    }

    /// A slot pointing at overflow vector `i`, keeping this slot's dirty mark.
    fn many(self, i: u32) -> Slot {
        let mut s = Slot(Route { attrs: i, tag: 0 });
        s.mark(MANY, true);
        s.mark(DIRTY, self.has(DIRTY));
        s
    }

    fn empty(self) -> Slot {
        let mut s = Slot::EMPTY;
        s.mark(DIRTY, self.has(DIRTY));
        s
    }
}

/// The routes of a prefix with more than one.
type Many = SmallVec<[Route; 2]>;

/// The prefixes changed since the last drain, each with its routes as they were before its
/// first change. An entry is a key and a slot-shaped snapshot (sixteen octets for IPv4: a
/// million changed prefixes, as when a full-table peer goes down, cost 16 MB, not 32); the
/// routes of prefixes that had several are kept aside.
pub(crate) struct Dirty<K> {
    entries: Vec<(K, Slot)>,
    many: Vec<Many>,
}

impl<K> Default for Dirty<K> {
    fn default() -> Self {
        Dirty {
            entries: Vec::new(),
            many: Vec::new(),
        }
    }
}

impl<K: Copy> Dirty<K> {
    fn push(&mut self, key: K, slot: &Slot, overflow: &[Many]) {
        let snapshot = match routes_of(slot, overflow) {
            [] => Slot::EMPTY,
            [r] => Slot(r.bare()),
            v => {
                self.many.push(v.iter().map(|r| r.bare()).collect());
                // Fewer than 2^32 prefixes change in one drain.
                let mut s = Slot(Route {
                    attrs: (self.many.len() - 1) as u32,
                    tag: 0,
                });
                s.mark(MANY, true);
                s
            }
        };
        self.entries.push((key, snapshot));
    }

    /// Number of prefixes.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Each prefix with its routes before the change.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (K, &[Route])> {
        self.entries
            .iter()
            .map(|(k, s)| (*k, routes_of(s, &self.many)))
    }
}

/// The routes of one family.
pub(crate) struct Table<K> {
    slots: HashMap<K, Slot>,
    overflow: Vec<Many>,
    free: Vec<u32>,
    dirty: Dirty<K>,
}

impl<K> Default for Table<K> {
    fn default() -> Self {
        Table {
            slots: HashMap::new(),
            overflow: Vec::new(),
            free: Vec::new(),
            dirty: Dirty::default(),
        }
    }
}

fn routes_of<'a>(slot: &'a Slot, overflow: &'a [Many]) -> &'a [Route] {
    if slot.has(EMPTY) {
        &[]
    } else if slot.has(MANY) {
        overflow
            .get(slot.0.attrs as usize)
            .map(Many::as_slice)
            .unwrap_or(&[])
    } else {
        std::slice::from_ref(&slot.0)
    }
}

impl<K: Key> Table<K> {
    /// The routes of `key` (empty if none).
    pub(crate) fn get(&self, key: K) -> &[Route] {
        self.slots
            .get(&key)
            .map(|s| routes_of(s, &self.overflow))
            .unwrap_or(&[])
    }

    /// Number of prefixes with at least one route (dirty empty ones included until drained).
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    fn touch(slot: &mut Slot, key: K, overflow: &[Many], dirty: &mut Dirty<K>) {
        if !slot.has(DIRTY) {
            dirty.push(key, slot, overflow);
            slot.mark(DIRTY, true);
        }
    }

    /// Adds `route`, replacing the route of the same source; returns the replaced one.
    pub(crate) fn upsert(&mut self, key: K, route: Route) -> Option<Route> {
        let slot = self.slots.entry(key).or_insert(Slot::EMPTY);
        Self::touch(slot, key, &self.overflow, &mut self.dirty);
        let route = route.bare();
        if slot.has(EMPTY) {
            *slot = slot.one(route);
            return None;
        }
        if !slot.has(MANY) {
            let old = slot.0.bare();
            if old.src() == route.src() {
                *slot = slot.one(route);
                return Some(old);
            }
            let v: Many = smallvec![old, route];
            let i = match self.free.pop() {
                Some(i) => {
                    self.overflow[i as usize] = v;
                    i
                }
                None => {
                    self.overflow.push(v);
                    (self.overflow.len() - 1) as u32
                }
            };
            *slot = slot.many(i);
            return None;
        }
        let v = self.overflow.get_mut(slot.0.attrs as usize)?;
        match v.iter_mut().find(|r| r.src() == route.src()) {
            Some(r) => Some(std::mem::replace(r, route)),
            None => {
                v.push(route);
                None
            }
        }
    }

    /// Removes the route of `src` for `key`; returns it.
    pub(crate) fn remove(&mut self, key: K, src: SrcId) -> Option<Route> {
        let slot = self.slots.get_mut(&key)?;
        if slot.has(EMPTY) {
            return None;
        }
        if !slot.has(MANY) {
            if slot.0.src() != src {
                return None;
            }
            Self::touch(slot, key, &self.overflow, &mut self.dirty);
            let old = slot.0.bare();
            *slot = slot.empty();
            return Some(old);
        }
        let i = slot.0.attrs;
        let v = self.overflow.get(i as usize)?;
        let at = v.iter().position(|r| r.src() == src)?;
        Self::touch(slot, key, &self.overflow, &mut self.dirty);
        let v = &mut self.overflow[i as usize];
        let old = v.swap_remove(at);
        if let [last] = v.as_slice() {
            *slot = slot.one(*last);
            self.overflow[i as usize] = Many::new();
            self.free.push(i);
        }
        Some(old)
    }

    /// Removes every route `doomed` picks, in one pass and without a list of them (a
    /// full-table peer leaving has a million); calls `removed` with each.
    pub(crate) fn remove_where(
        &mut self,
        mut doomed: impl FnMut(Route) -> bool,
        mut removed: impl FnMut(Route),
    ) {
        let Table {
            slots,
            overflow,
            free,
            dirty,
        } = self;
        for (k, slot) in slots.iter_mut() {
            if slot.has(EMPTY) {
                continue;
            }
            if !slot.has(MANY) {
                if doomed(slot.0.bare()) {
                    Self::touch(slot, *k, overflow, dirty);
                    removed(slot.0.bare());
                    *slot = slot.empty();
                }
                continue;
            }
            let i = slot.0.attrs as usize;
            let Some(v) = overflow.get(i) else { continue };
            if !v.iter().any(|r| doomed(*r)) {
                continue;
            }
            Self::touch(slot, *k, overflow, dirty);
            let v = &mut overflow[i];
            v.retain(|r| {
                let gone = doomed(*r);
                if gone {
                    removed(*r);
                }
                !gone
            });
            match v.as_slice() {
                [] => {
                    *slot = slot.empty();
                    overflow[i] = Many::new();
                    free.push(i as u32);
                }
                [last] => {
                    *slot = slot.one(*last);
                    overflow[i] = Many::new();
                    free.push(i as u32);
                }
                _ => {}
            }
        }
    }

    /// Calls `f` with every prefix and its routes, flags changeable in place.
    pub(crate) fn for_each_mut(&mut self, mut f: impl FnMut(K, &mut [Route])) {
        for (k, s) in self.slots.iter_mut() {
            if s.has(EMPTY) {
                continue;
            }
            if s.has(MANY) {
                if let Some(v) = self.overflow.get_mut(s.0.attrs as usize) {
                    f(*k, v);
                }
            } else {
                f(*k, std::slice::from_mut(&mut s.0));
            }
        }
    }

    /// Every prefix with its routes.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (K, &[Route])> {
        self.slots
            .iter()
            .filter(|(_, s)| !s.has(EMPTY))
            .map(|(k, s)| (*k, routes_of(s, &self.overflow)))
    }

    /// Marks every prefix dirty, so the next drain decides each again.
    pub(crate) fn touch_all(&mut self) {
        for (k, s) in self.slots.iter_mut() {
            Self::touch(s, *k, &self.overflow, &mut self.dirty);
        }
    }

    /// Takes the prefixes changed since the last call, with their snapshots. Call `settle` for
    /// each once its changes are handled.
    pub(crate) fn take_dirty(&mut self) -> Dirty<K> {
        std::mem::take(&mut self.dirty)
    }

    /// Orders `dirty` by where the keys sit in the map, so the drain walks the table's memory
    /// in one direction instead of jumping: at a million prefixes the table is far larger than
    /// the caches and a random probe costs a memory round trip.
    pub(crate) fn order_by_position(&self, dirty: &mut Dirty<K>) {
        use std::hash::BuildHasher;
        let buckets = (self.slots.capacity() / 7 * 8).next_power_of_two().max(1) as u64;
        let hasher = self.slots.hasher();
        // A four-octet sort key (and index) keeps the sort's scratch at eight octets a prefix.
        dirty.entries.sort_by_cached_key(|(k, _)| {
            u32::try_from(hasher.hash_one(k) & (buckets - 1)).unwrap_or(u32::MAX)
        });
    }

    /// Number of prefixes changed since the last drain.
    pub(crate) fn dirty_len(&self) -> usize {
        self.dirty.len()
    }

    /// Whether changes are waiting.
    pub(crate) fn has_dirty(&self) -> bool {
        !self.dirty.entries.is_empty()
    }

    /// Ends the dirty state of `key` after `f` has seen (and may have re-flagged) its routes;
    /// drops the prefix if it has no routes left.
    pub(crate) fn settle_with(&mut self, key: K, f: impl FnOnce(&mut [Route])) {
        let Some(s) = self.slots.get_mut(&key) else {
            return f(&mut []);
        };
        if s.has(EMPTY) {
            self.slots.remove(&key);
            return f(&mut []);
        }
        s.mark(DIRTY, false);
        if s.has(MANY) {
            let v = self
                .overflow
                .get_mut(s.0.attrs as usize)
                .map(Many::as_mut_slice)
                .unwrap_or(&mut []);
            f(v);
        } else {
            f(std::slice::from_mut(&mut s.0));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> V4 {
        V4::of(s.parse().unwrap()).unwrap()
    }

    fn route(attrs: u32, src: u32) -> Route {
        Route::new(AttrId(attrs), SrcId(src), 0)
    }

    #[test]
    fn slots_grow_to_many_and_shrink_back() {
        let mut t = Table::<V4>::default();
        let k = key("10.0.0.0/24");
        assert!(t.upsert(k, route(1, 1)).is_none());
        assert!(t.upsert(k, route(2, 2)).is_none());
        assert_eq!(t.get(k).len(), 2);
        let old = t.upsert(k, route(3, 2)).unwrap();
        assert_eq!(old.attrs(), AttrId(2));
        assert_eq!(t.remove(k, SrcId(1)).unwrap().attrs(), AttrId(1));
        assert_eq!(t.get(k).len(), 1);
        assert_eq!(t.get(k)[0].attrs(), AttrId(3));
        // One snapshot per prefix per drain, taken before the first change.
        let dirty = t.take_dirty();
        assert_eq!(dirty.len(), 1);
        assert!(dirty.iter().all(|(_, routes)| routes.is_empty()));
        t.settle_with(k, |_| {});
        assert!(t.remove(k, SrcId(2)).is_some());
        let dirty = t.take_dirty();
        assert_eq!(dirty.iter().map(|(_, r)| r.len()).collect::<Vec<_>>(), [1]);
        t.settle_with(k, |_| {});
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn snapshots_keep_several_routes_aside() {
        let mut t = Table::<V4>::default();
        let (k, other) = (key("10.0.0.0/24"), key("10.0.1.0/24"));
        t.upsert(k, route(1, 1));
        t.upsert(k, route(2, 2));
        t.upsert(other, route(3, 3));
        for (k, _) in t.take_dirty().iter() {
            t.settle_with(k, |_| {});
        }
        t.remove(k, SrcId(1));
        t.remove(other, SrcId(3));
        let dirty = t.take_dirty();
        let mut seen: Vec<(V4, Vec<u32>)> = dirty
            .iter()
            .map(|(k, r)| (k, r.iter().map(|r| r.attrs().0).collect()))
            .collect();
        seen.sort_by_key(|(k, _)| *k);
        assert_eq!(seen, [(k, vec![1, 2]), (other, vec![3])]);
    }

    #[test]
    fn remove_where_takes_routes_of_one_source_from_every_kind_of_slot() {
        let mut t = Table::<V4>::default();
        let (one, two, three) = (key("10.0.0.0/24"), key("10.0.1.0/24"), key("10.0.2.0/24"));
        t.upsert(one, route(1, 7));
        t.upsert(two, route(2, 7));
        t.upsert(two, route(3, 8));
        for src in [7, 8, 9] {
            t.upsert(three, route(src, src));
        }
        t.upsert(key("10.0.3.0/24"), route(4, 8));
        for (k, _) in t.take_dirty().iter() {
            t.settle_with(k, |_| {});
        }
        let mut gone = Vec::new();
        t.remove_where(|r| r.src() == SrcId(7), |r| gone.push(r.attrs().0));
        gone.sort();
        assert_eq!(gone, [1, 2, 7]);
        assert_eq!(t.take_dirty().len(), 3, "each changed prefix once");
        assert!(t.get(one).is_empty());
        assert_eq!(t.get(two).len(), 1, "back to one inline route");
        assert_eq!(t.get(two)[0].src(), SrcId(8));
        assert_eq!(t.get(three).len(), 2);
        assert_eq!(t.free.len(), 1, "the overflow vector of `two` is reusable");
    }

    #[test]
    fn flags_survive_slot_marks() {
        let mut t = Table::<V4>::default();
        let k = key("10.0.0.0/24");
        t.upsert(k, Route::new(AttrId(1), SrcId(7), flag::STALE));
        t.settle_with(k, |routes| routes[0].set(flag::BEST, true));
        let r = t.get(k)[0];
        assert!(r.is(flag::STALE) && r.is(flag::BEST) && !r.is(flag::REJECTED));
        assert_eq!(r.src(), SrcId(7));
    }

    #[test]
    fn route_is_eight_octets() {
        assert_eq!(std::mem::size_of::<Route>(), 8);
        assert_eq!(std::mem::size_of::<(V4, Slot)>(), 16);
        assert_eq!(
            std::mem::size_of::<Many>(),
            24,
            "two routes inline, no larger than a Vec"
        );
    }
}
