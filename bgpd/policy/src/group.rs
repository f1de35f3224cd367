//! Verdict-map groups: which consecutive rules can share one map, their elements, and the
//! overlap check that keeps first-match order.
//!
//! Consecutive rules that differ only in their literal addresses and ports (their other
//! matches rendered alike: the [`Shape`]) become elements of one interval verdict map: one
//! lookup instead of a linear walk. That keeps first-match order only if no two elements of a
//! group can match the same packet, so a group is closed as soon as a new rule's element
//! overlaps one already in it. The first key component is indexed as prefixes (an address
//! prefix, or a port range cut into aligned power-of-two blocks); prefixes either nest or are
//! disjoint, which makes the check a few map lookups.

use std::collections::BTreeMap;

use ipnetwork::IpNetwork;

use crate::clause::{Clause, Literals, Numbered, render_matches};
use crate::model::{Action, IpVersion};

/// An inclusive interval of one key component (an address or a port).
pub type Span = (u128, u128);

/// A prefix of a `width`-bit space: an address prefix, or an aligned block of ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lead {
    start: u128,
    len: u8,
    width: u8,
}

impl Lead {
    /// The prefix a network is.
    pub fn net(net: &IpNetwork) -> Lead {
        let (start, _) = span(net);
        Lead {
            start,
            len: net.prefix(),
            width: if net.is_ipv4() { 32 } else { 128 },
        }
    }

    /// The aligned blocks that exactly cover the ports `first..=last`.
    pub fn ports(first: u16, last: u16) -> Vec<Lead> {
        let (mut at, end) = (u32::from(first), u32::from(last));
        let mut blocks = Vec::new();
        while at <= end {
            // The largest block aligned at `at` that does not pass `end`.
            let mut bits = at.trailing_zeros().min(16);
            while at + (1 << bits) - 1 > end {
                bits -= 1;
            }
            blocks.push(Lead {
                start: u128::from(at),
                len: 16 - bits as u8,
                width: 16,
            });
            at += 1 << bits;
        }
        blocks
    }

    fn host_mask(len: u8, width: u8) -> u128 {
        let host_bits = u32::from(width - len.min(width));
        u128::MAX.checked_shr(128 - host_bits).unwrap_or(0)
    }

    fn end(&self) -> u128 {
        self.start | Lead::host_mask(self.len, self.width)
    }
}

/// The prefix length of a single address of the network's family.
fn max_prefix(net: &IpNetwork) -> u8 {
    if net.is_ipv4() { 32 } else { 128 }
}

/// The inclusive interval a network covers.
pub fn span(net: &IpNetwork) -> Span {
    match net {
        IpNetwork::V4(n) => (
            u128::from(u32::from(n.network())),
            u128::from(u32::from(n.broadcast())),
        ),
        IpNetwork::V6(n) => {
            let lo = u128::from(n.network());
            (lo, lo | Lead::host_mask(n.prefix(), 128))
        }
    }
}

/// One map element's key: its first component as prefixes, the others as intervals.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Key {
    /// The first component (one prefix, or the blocks of a port range).
    pub leads: Vec<Lead>,
    /// Further components (addresses or ports), as intervals.
    pub rest: Vec<Span>,
}

fn overlaps(a: &[Span], b: &[Span]) -> bool {
    a.iter().zip(b).all(|(x, y)| x.0 <= y.1 && y.0 <= x.1)
}

/// The keys already in one group, indexed by the start of their leading prefixes.
#[derive(Debug, Default)]
pub struct KeyIndex {
    by_start: BTreeMap<u128, Vec<(u8, usize)>>,
    rests: Vec<Vec<Span>>,
}

impl KeyIndex {
    /// Whether `key` overlaps any key in the index.
    pub fn conflicts(&self, key: &Key) -> bool {
        key.leads
            .iter()
            .any(|lead| self.lead_conflicts(lead, &key.rest))
    }

    fn lead_conflicts(&self, lead: &Lead, rest: &[Span]) -> bool {
        let clash = |idx: &usize| self.rests.get(*idx).is_some_and(|r| overlaps(r, rest));
        // Prefixes inside (or equal to) this one start within its interval.
        if self
            .by_start
            .range(lead.start..=lead.end())
            .any(|(_, v)| v.iter().any(|(_, i)| clash(i)))
        {
            return true;
        }
        // Prefixes containing this one start at its start masked to a shorter length.
        (0..lead.len).any(|len| {
            let start = lead.start & !Lead::host_mask(len, lead.width);
            self.by_start
                .get(&start)
                .is_some_and(|v| v.iter().any(|(l, i)| *l == len && clash(i)))
        })
    }

    /// Adds `key` (the caller has checked it does not conflict).
    pub fn insert(&mut self, key: Key) {
        let idx = self.rests.len();
        for lead in &key.leads {
            self.by_start
                .entry(lead.start)
                .or_default()
                .push((lead.len, idx));
        }
        self.rests.push(key.rest);
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

/// A clause that can be a verdict-map element: what its map and lookup rule must look like.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Shape {
    pub(crate) family: Option<IpVersion>,
    pub(crate) saddr: bool,
    pub(crate) daddr: bool,
    pub(crate) sport: bool,
    pub(crate) dport: bool,
    /// The matches outside the key (protocol, selector and pool sets, exclusions), rendered:
    /// the same for every rule of a run, and the start of the lookup rule.
    pub(crate) prefix: String,
}

/// Most elements one rule may expand to (networks × ports) before it stays a plain rule.
pub(crate) const MAX_ELEMENTS_PER_RULE: usize = 1024;

pub(crate) fn shape(n: &Numbered, lits: &mut Literals) -> Option<Shape> {
    let c = &n.clause;
    let (saddr, daddr) = (c.src.nets.is_some(), c.dst.nets.is_some());
    let (sport, dport) = (!c.src.ports.is_empty(), !c.dst.ports.is_empty());
    let count = [&c.src, &c.dst]
        .iter()
        .map(|s| s.nets.as_ref().map_or(1, Vec::len) * s.ports.len().max(1))
        .product::<usize>();
    if n.action == Action::Log
        || c.icmp.is_some()
        || !(saddr || daddr || sport || dport)
        || count > MAX_ELEMENTS_PER_RULE
    {
        return None;
    }
    let mut rest = c.clone();
    rest.src.nets = None;
    rest.dst.nets = None;
    rest.src.ports.clear();
    rest.dst.ports.clear();
    let mut parts = render_matches(&rest, lits);
    if saddr || daddr {
        // The key's `ip saddr`/`ip6 saddr` already restricts the family.
        parts.retain(|p| !p.starts_with("meta nfproto"));
    }
    Some(Shape {
        family: c.family,
        saddr,
        daddr,
        sport,
        dport,
        prefix: parts.join(" "),
    })
}

/// One map element: its key (for overlap checks) and its text.
pub(crate) struct Element {
    pub(crate) key: Key,
    pub(crate) text: String,
    /// Every component is one address or one port: a hash lookup will do.
    pub(crate) exact: bool,
}

/// One value of one key component.
pub(crate) struct KeyPart {
    pub(crate) text: String,
    pub(crate) span: Span,
    /// The value as prefixes, used when it is the first component.
    pub(crate) leads: Vec<Lead>,
}

/// The elements of a clause: networks × ports, in key order saddr.daddr.sport.dport.
pub(crate) fn elements(c: &Clause) -> Vec<Element> {
    // Each dimension: one value per choice; absent dimensions are skipped.
    let mut dims: Vec<Vec<KeyPart>> = Vec::new();
    for nets in [&c.src.nets, &c.dst.nets].into_iter().flatten() {
        dims.push(
            nets.iter()
                .map(|n| KeyPart {
                    // A host address is written bare: exact maps take no prefixes.
                    text: if n.prefix() == max_prefix(n) {
                        n.ip().to_string()
                    } else {
                        n.to_string()
                    },
                    span: span(n),
                    leads: vec![Lead::net(n)],
                })
                .collect(),
        );
    }
    for ports in [&c.src.ports, &c.dst.ports] {
        if !ports.is_empty() {
            dims.push(
                ports
                    .iter()
                    .map(|p| KeyPart {
                        text: p.to_string(),
                        span: (u128::from(p.first), u128::from(p.last)),
                        leads: Lead::ports(p.first, p.last),
                    })
                    .collect(),
            );
        }
    }
    let mut combos: Vec<Vec<usize>> = vec![Vec::new()];
    for d in &dims {
        combos = combos
            .into_iter()
            .flat_map(|combo| {
                (0..d.len()).map(move |i| {
                    let mut next = combo.clone();
                    next.push(i);
                    next
                })
            })
            .collect();
    }
    combos
        .into_iter()
        .filter_map(|combo| {
            let picked: Vec<&KeyPart> = combo.iter().zip(&dims).map(|(&i, d)| &d[i]).collect();
            let leads = picked.first()?.leads.clone();
            let exact = picked.iter().all(|p| p.span.0 == p.span.1);
            Some(Element {
                exact,
                key: Key {
                    leads,
                    rest: picked.iter().skip(1).map(|p| p.span).collect(),
                },
                text: picked
                    .iter()
                    .map(|p| p.text.as_str())
                    .collect::<Vec<_>>()
                    .join(" . "),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net_key(net: &str, ports: &[Span]) -> Key {
        Key {
            leads: vec![Lead::net(&net.parse().unwrap())],
            rest: ports.to_vec(),
        }
    }

    fn port_key(first: u16, last: u16) -> Key {
        Key {
            leads: Lead::ports(first, last),
            rest: Vec::new(),
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
            let keys: Vec<Key> = keys.iter().map(|(n, p)| net_key(n, p)).collect();
            assert_eq!(any_overlap(&keys), *want, "{keys:?}");
        }
    }

    #[test]
    fn port_ranges_as_blocks() {
        let cases: &[(&[(u16, u16)], bool)] = &[
            (&[(80, 80), (443, 443)], false),
            (&[(80, 80), (80, 80)], true),
            (&[(1000, 2000), (1999, 1999)], true),
            (&[(1000, 2000), (2001, 3000)], false),
            (&[(0, 65535), (22, 22)], true),
            (&[(3, 5), (6, 6), (0, 2)], false),
            (&[(3, 5), (2, 3)], true),
        ];
        for (ranges, want) in cases {
            let keys: Vec<Key> = ranges.iter().map(|(a, b)| port_key(*a, *b)).collect();
            assert_eq!(any_overlap(&keys), *want, "{ranges:?}");
        }
        // Blocks cover the range exactly.
        for (a, b) in [(0, 65535), (1, 1), (3, 17), (1000, 2000), (65535, 65535)] {
            let blocks = Lead::ports(a, b);
            let covered: u128 = blocks.iter().map(|l| l.end() - l.start + 1).sum();
            assert_eq!(covered, u128::from(b - a) + 1, "{a}-{b}");
            assert_eq!(blocks.first().map(|l| l.start), Some(u128::from(a)));
            assert_eq!(blocks.last().map(Lead::end), Some(u128::from(b)));
        }
    }

    proptest::proptest! {
        /// The index agrees with comparing every pair of keys as plain intervals.
        #[test]
        fn index_agrees_with_brute_force(
            keys in proptest::collection::vec(
                (any_net(), 0u16..64, 0u16..8, 0u16..64, 0u16..8, proptest::bool::ANY),
                1..24,
            )
        ) {
            let keys: Vec<(Key, Vec<Span>)> = keys
                .into_iter()
                .map(|(net, p, plen, q, qlen, port_lead)| {
                    let ports = (u128::from(p), u128::from(p + plen));
                    let other = (u128::from(q), u128::from(q + qlen));
                    if port_lead {
                        let key = Key { leads: Lead::ports(p, p + plen), rest: vec![other] };
                        (key, vec![ports, other])
                    } else {
                        let key = Key { leads: vec![Lead::net(&net)], rest: vec![ports] };
                        (key, vec![span(&net), ports])
                    }
                })
                .collect();
            // Keys of one group always have the same kind of lead: check each kind alone.
            for want_port_lead in [false, true] {
                let group: Vec<&(Key, Vec<Span>)> = keys
                    .iter()
                    .filter(|(k, _)| k.leads.first().is_some_and(|l| (l.width == 16) == want_port_lead))
                    .collect();
                let mut index = KeyIndex::default();
                for (i, (key, spans)) in group.iter().enumerate() {
                    let brute = group[..i].iter().any(|(_, s)| overlaps(s, spans));
                    proptest::prop_assert_eq!(index.conflicts(key), brute, "{:?}", key);
                    index.insert(key.clone());
                }
            }
        }
    }

    fn any_net() -> impl proptest::strategy::Strategy<Value = IpNetwork> {
        use proptest::strategy::Strategy;
        // A small space (10.0.0.0/28 and around) so that nesting and overlap happen often.
        (0u32..32, 24u8..=32).prop_map(|(host, len)| {
            let addr = std::net::Ipv4Addr::from(0x0a00_0000 | host);
            let net = ipnetwork::Ipv4Network::new(addr, len).expect("valid prefix length");
            IpNetwork::V4(
                ipnetwork::Ipv4Network::new(net.network(), len).expect("valid prefix length"),
            )
        })
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
