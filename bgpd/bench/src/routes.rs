//! The test routes: a run of equal-length IPv4 prefixes numbered from a base, and a bitmap of
//! which of them a receiver holds, so counting a million receptions allocates nothing per route.

use std::net::Ipv4Addr;

use bgpd_wire::{Ipv4Prefix, Nlri, Prefix};

/// `count` consecutive prefixes of length `len`, the first at `base`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrefixRange {
    base: u32,
    len: u8,
    count: u32,
}

/// Why a prefix range cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RangeError {
    /// The length is not 1–32.
    #[error("prefix length {0} is not within 1..=32")]
    Length(u8),
    /// The base has host bits set for the length.
    #[error("{base} is not the start of a /{len}")]
    Unaligned {
        /// The base given.
        base: Ipv4Addr,
        /// The length given.
        len: u8,
    },
    /// The prefixes would run past 255.255.255.255.
    #[error("{count} /{len} prefixes from {base} run past the end of the IPv4 space")]
    TooMany {
        /// The base given.
        base: Ipv4Addr,
        /// The length given.
        len: u8,
        /// How many were asked for.
        count: u32,
    },
}

impl PrefixRange {
    /// Checks that the range is aligned and fits the address space.
    pub fn new(base: Ipv4Addr, len: u8, count: u32) -> Result<PrefixRange, RangeError> {
        if !(1..=32).contains(&len) {
            return Err(RangeError::Length(len));
        }
        let step = 1u64 << (32 - len);
        let start = u64::from(u32::from(base));
        if start % step != 0 {
            return Err(RangeError::Unaligned { base, len });
        }
        if start + step * u64::from(count) > 1 << 32 {
            return Err(RangeError::TooMany { base, len, count });
        }
        Ok(PrefixRange {
            base: u32::from(base),
            len,
            count,
        })
    }

    /// How many prefixes.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The `i`-th prefix, if `i < count`.
    pub fn nth(&self, i: u32) -> Option<Ipv4Prefix> {
        if i >= self.count {
            return None;
        }
        let addr = self.base + (u64::from(i) << (32 - self.len)) as u32;
        Ipv4Prefix::new(Ipv4Addr::from(addr), self.len).ok()
    }

    /// Every prefix as an NLRI without path id, in order.
    pub fn nlri(&self) -> Vec<Nlri> {
        (0..self.count)
            .filter_map(|i| self.nth(i))
            .map(Nlri::new)
            .collect()
    }

    /// The index of `prefix` in the range, if it is one of ours.
    pub fn index_of(&self, prefix: &Prefix) -> Option<u32> {
        let Prefix::V4(p) = prefix else { return None };
        if p.length() != self.len {
            return None;
        }
        let offset = u32::from(p.addr()).checked_sub(self.base)?;
        let i = u64::from(offset) >> (32 - self.len);
        (i < u64::from(self.count)).then_some(i as u32)
    }
}

/// Which indices of a range a receiver holds now.
#[derive(Debug, Clone)]
pub struct Held {
    bits: Vec<u64>,
    count: u32,
    held: u32,
}

impl Held {
    /// Nothing held out of `count`.
    pub fn new(count: u32) -> Held {
        Held {
            bits: vec![0; (count as usize).div_ceil(64)],
            count,
            held: 0,
        }
    }

    /// Marks `i` held; false if it already was (a replacement, not a new route).
    pub fn insert(&mut self, i: u32) -> bool {
        let Some((w, bit)) = self.slot(i) else {
            return false;
        };
        let new = *w & bit == 0;
        *w |= bit;
        self.held += u32::from(new);
        new
    }

    /// Marks `i` not held; false if it was not.
    pub fn remove(&mut self, i: u32) -> bool {
        let Some((w, bit)) = self.slot(i) else {
            return false;
        };
        let was = *w & bit != 0;
        *w &= !bit;
        self.held -= u32::from(was);
        was
    }

    /// The word and bit of index `i`, if it is below the count.
    fn slot(&mut self, i: u32) -> Option<(&mut u64, u64)> {
        if i >= self.count {
            return None;
        }
        Some((self.bits.get_mut((i / 64) as usize)?, 1u64 << (i % 64)))
    }

    /// How many are held.
    pub fn len(&self) -> u32 {
        self.held
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.held == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(text: &str) -> Prefix {
        text.parse().expect("prefix")
    }

    #[test]
    fn numbers_prefixes_both_ways() {
        let r = PrefixRange::new("100.64.0.0".parse().unwrap(), 24, 1000).unwrap();
        assert_eq!(
            r.nth(0).map(|p| p.addr()),
            Some("100.64.0.0".parse().unwrap())
        );
        assert_eq!(
            r.nth(999).map(|p| p.addr()),
            Some("100.67.231.0".parse().unwrap())
        );
        assert_eq!(r.nth(1000), None);
        assert_eq!(r.index_of(&v4("100.67.231.0/24")), Some(999));
        assert_eq!(r.index_of(&v4("100.67.232.0/24")), None);
        assert_eq!(r.index_of(&v4("100.64.1.0/25")), None);
        assert_eq!(r.index_of(&v4("100.63.255.0/24")), None);
        assert_eq!(r.nlri().len(), 1000);
    }

    #[test]
    fn refuses_bad_ranges() {
        let a: Ipv4Addr = "100.64.0.1".parse().unwrap();
        assert!(matches!(
            PrefixRange::new(a, 24, 1),
            Err(RangeError::Unaligned { .. })
        ));
        assert_eq!(PrefixRange::new(a, 33, 1), Err(RangeError::Length(33)));
        let top: Ipv4Addr = "255.255.255.0".parse().unwrap();
        assert!(PrefixRange::new(top, 24, 1).is_ok());
        assert!(matches!(
            PrefixRange::new(top, 24, 2),
            Err(RangeError::TooMany { .. })
        ));
    }

    #[test]
    fn held_counts_new_routes_once() {
        let mut h = Held::new(130);
        assert!(h.insert(129));
        assert!(!h.insert(129));
        assert!(h.insert(0));
        assert_eq!(h.len(), 2);
        assert!(h.remove(0));
        assert!(!h.remove(0));
        assert!(!h.insert(130));
        assert_eq!(h.len(), 1);
    }
}
