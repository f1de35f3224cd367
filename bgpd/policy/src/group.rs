//! Overlap detection for verdict-map groups.
//!
//! Consecutive rules that differ only in their literal addresses and ports become elements of
//! one interval verdict map: one lookup instead of a linear walk. That keeps first-match order
//! only if no two elements of a group can match the same packet, so a group is closed as soon
//! as a new rule's element overlaps one already in it. The first key component is always an
//! address prefix; prefixes either nest or are disjoint, which makes the check cheap.

use std::collections::BTreeMap;

use ipnetwork::IpNetwork;

/// An inclusive interval of one key component (an address or a port).
pub type Span = (u128, u128);

/// One map element's key: a leading prefix and further components.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Key {
    /// The leading address prefix.
    pub lead: IpNetwork,
    /// Further components (addresses or ports), as intervals.
    pub rest: Vec<Span>,
}

/// The inclusive interval a prefix covers.
pub fn span(net: &IpNetwork) -> Span {
    match net {
        IpNetwork::V4(n) => (
            u128::from(u32::from(n.network())),
            u128::from(u32::from(n.broadcast())),
        ),
        IpNetwork::V6(n) => {
            let lo = u128::from(n.network());
            let host_bits = 128 - u32::from(n.prefix());
            (lo, lo | u128::MAX.checked_shr(128 - host_bits).unwrap_or(0))
        }
    }
}

fn overlaps(a: &[Span], b: &[Span]) -> bool {
    a.iter().zip(b).all(|(x, y)| x.0 <= y.1 && y.0 <= x.1)
}

/// The keys already in one group, indexed by the start of their leading prefix.
#[derive(Debug, Default)]
pub struct KeyIndex {
    by_start: BTreeMap<u128, Vec<(u8, usize)>>,
    keys: Vec<Key>,
}

impl KeyIndex {
    /// Whether `key` overlaps any key in the index.
    pub fn conflicts(&self, key: &Key) -> bool {
        let (lo, hi) = span(&key.lead);
        let clash = |idx: &usize| {
            self.keys
                .get(*idx)
                .is_some_and(|k| overlaps(&k.rest, &key.rest))
        };
        // Prefixes inside (or equal to) the new one start within its interval.
        if self
            .by_start
            .range(lo..=hi)
            .any(|(_, v)| v.iter().any(|(_, i)| clash(i)))
        {
            return true;
        }
        // Prefixes containing the new one start at its address masked to a shorter length.
        let width: u32 = if key.lead.is_ipv4() { 32 } else { 128 };
        (0..key.lead.prefix()).any(|len| {
            let host_bits = width - u32::from(len);
            let start = lo & !(u128::MAX.checked_shr(128 - host_bits).unwrap_or(0));
            self.by_start
                .get(&start)
                .is_some_and(|v| v.iter().any(|(l, i)| *l == len && clash(i)))
        })
    }

    /// Adds `key` (the caller has checked it does not conflict).
    pub fn insert(&mut self, key: Key) {
        let (lo, _) = span(&key.lead);
        self.by_start
            .entry(lo)
            .or_default()
            .push((key.lead.prefix(), self.keys.len()));
        self.keys.push(key);
    }

    /// Whether no key was added yet.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Whether some two of `keys` overlap.
pub fn any_overlap(keys: &[Key]) -> bool {
    let mut index = KeyIndex::default();
    for k in keys {
        if index.conflicts(k) {
            return true;
        }
        index.insert(k.clone());
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(net: &str, ports: &[Span]) -> Key {
        Key {
            lead: net.parse().unwrap(),
            rest: ports.to_vec(),
        }
    }

    #[test]
    fn overlap_table() {
        type Case<'a> = (&'a [(&'a str, &'a [Span])], bool);
        let cases: &[Case] = &[
            (&[("10.0.0.0/24", &[]), ("10.0.1.0/24", &[])], false),
            (&[("10.0.0.0/24", &[]), ("10.0.0.128/25", &[])], true),
            (&[("10.0.0.128/25", &[]), ("10.0.0.0/16", &[])], true),
            (
                &[("10.0.0.0/24", &[(80, 80)]), ("10.0.0.0/24", &[(443, 443)])],
                false,
            ),
            (
                &[("10.0.0.0/24", &[(80, 90)]), ("10.0.0.5/32", &[(85, 85)])],
                true,
            ),
            (&[("0.0.0.0/0", &[]), ("192.168.1.1/32", &[])], true),
            (&[("fd00::/64", &[]), ("fd00:0:0:1::/64", &[])], false),
            (&[("fd00::/48", &[]), ("fd00:0:0:1::/64", &[])], true),
            (&[("::/0", &[]), ("fd00::1/128", &[])], true),
        ];
        for (keys, want) in cases {
            let keys: Vec<Key> = keys.iter().map(|(n, p)| key(n, p)).collect();
            assert_eq!(any_overlap(&keys), *want, "{keys:?}");
        }
    }

    #[test]
    fn spans() {
        assert_eq!(
            span(&"10.0.0.0/8".parse().unwrap()),
            (0x0a00_0000, 0x0aff_ffff)
        );
        assert_eq!(span(&"::/0".parse().unwrap()), (0, u128::MAX));
        assert_eq!(span(&"::1/128".parse().unwrap()), (1, 1));
    }
}
