//! Import and export policies: prefix lists (prefix, ge, le) and community match/set, as small
//! data types with a pure evaluation, and the set algebra on prefix ranges (intersection,
//! complement) that lets a policy be confined to a guard and a negated match be written as
//! ranges.

use std::net::IpAddr;

use bgpd_wire::{Community, LargeCommunity, PathAttrs, Prefix};

/// A prefix-list entry: prefixes inside `prefix` whose length lies in the range `ge..=le`.
/// Without `ge` and `le` only `prefix` itself matches; with `ge` alone the range runs to the
/// address width; with `le` alone it starts at `prefix`'s length (as in IOS and BIRD).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PrefixRange {
    /// The covering prefix.
    pub prefix: Prefix,
    /// Shortest length that matches.
    pub ge: Option<u8>,
    /// Longest length that matches.
    pub le: Option<u8>,
}

impl PrefixRange {
    /// `prefix` itself only.
    pub fn exact(prefix: Prefix) -> Self {
        PrefixRange {
            prefix,
            ge: None,
            le: None,
        }
    }

    /// `prefix` and every more specific prefix inside it.
    pub fn orlonger(prefix: Prefix) -> Self {
        PrefixRange {
            prefix,
            ge: None,
            le: Some(width(prefix)),
        }
    }

    /// `prefix` and the prefixes inside it whose length lies in `lo..=hi`.
    pub fn lengths(prefix: Prefix, lo: u8, hi: u8) -> Self {
        PrefixRange {
            prefix,
            ge: Some(lo),
            le: Some(hi),
        }
    }

    /// Every prefix of `prefix`'s family whose length lies in `lo..=hi`.
    pub fn any_of_family(prefix: Prefix, lo: u8, hi: u8) -> Self {
        let zero = match prefix {
            Prefix::V4(_) => Prefix::new(IpAddr::from([0u8; 4]), 0),
            Prefix::V6(_) => Prefix::new(IpAddr::from([0u8; 16]), 0),
        };
        PrefixRange::lengths(zero.unwrap_or(prefix), lo, hi)
    }

    /// Whether `p` matches.
    pub fn matches(&self, p: Prefix) -> bool {
        let (lo, hi) = self.bounds();
        inside(self.prefix, p) && (lo..=hi).contains(&p.length())
    }

    /// The lengths that match, as an inclusive range (empty when `lo > hi`); never shorter
    /// than the covering prefix.
    fn bounds(&self) -> (u8, u8) {
        let lo = self.ge.unwrap_or(self.prefix.length());
        let hi = self.le.unwrap_or(if self.ge.is_some() {
            width(self.prefix)
        } else {
            self.prefix.length()
        });
        (lo.max(self.prefix.length()), hi.min(width(self.prefix)))
    }

    /// Whether no prefix at all matches.
    pub fn is_empty(&self) -> bool {
        let (lo, hi) = self.bounds();
        lo > hi
    }

    /// The prefixes both ranges match, when there are any. Two covering prefixes are either
    /// nested or disjoint, so the intersection is again one range.
    pub fn intersection(&self, other: &PrefixRange) -> Option<PrefixRange> {
        let prefix = if inside(self.prefix, other.prefix) {
            other.prefix
        } else if inside(other.prefix, self.prefix) {
            self.prefix
        } else {
            return None;
        };
        let (a_lo, a_hi) = self.bounds();
        let (b_lo, b_hi) = other.bounds();
        let r = PrefixRange::lengths(prefix, a_lo.max(b_lo), a_hi.min(b_hi));
        (!r.is_empty()).then_some(r)
    }

    /// Every prefix of the same family this range does not match, as ranges: the prefixes
    /// shorter than the covering one, those inside each sibling along its path, and those
    /// inside it with a length outside the range.
    pub fn complement(&self) -> Vec<PrefixRange> {
        let n = self.prefix.length();
        let w = width(self.prefix);
        let (lo, hi) = self.bounds();
        let mut out = Vec::new();
        if n > 0 {
            out.push(PrefixRange::any_of_family(self.prefix, 0, n - 1));
        }
        out.extend((0..n).filter_map(|i| sibling(self.prefix, i).map(PrefixRange::orlonger)));
        if lo > hi {
            out.push(PrefixRange::lengths(self.prefix, n, w));
            return out;
        }
        if lo > n {
            out.push(PrefixRange::lengths(self.prefix, n, lo - 1));
        }
        if hi < w {
            out.push(PrefixRange::lengths(self.prefix, hi + 1, w));
        }
        out
    }
}

/// Whether `inner` lies inside `outer` (same family, at least as long, same leading bits).
fn inside(outer: Prefix, inner: Prefix) -> bool {
    match (outer, inner) {
        (Prefix::V4(r), Prefix::V4(q)) => q.length() >= r.length() && r.contains(q.addr()),
        (Prefix::V6(r), Prefix::V6(q)) => q.length() >= r.length() && r.contains(q.addr()),
        _ => false,
    }
}

/// The prefix of length `bit + 1` that shares `p`'s first `bit` bits and differs in the next.
fn sibling(p: Prefix, bit: u8) -> Option<Prefix> {
    let addr = match p.addr() {
        IpAddr::V4(a) => IpAddr::V4((u32::from(a) ^ (1u32 << (31 - bit))).into()),
        IpAddr::V6(a) => IpAddr::V6((u128::from(a) ^ (1u128 << (127 - bit))).into()),
    };
    Prefix::new(addr, bit + 1).ok()
}

fn width(p: Prefix) -> u8 {
    match p {
        Prefix::V4(_) => 32,
        Prefix::V6(_) => 128,
    }
}

/// Accept or reject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// The route passes.
    Accept,
    /// The route is refused.
    Reject,
}

/// A change to an accepted route's attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Add a community (once).
    AddCommunity(Community),
    /// Add a large community (once).
    AddLargeCommunity(LargeCommunity),
    /// Remove a community.
    RemoveCommunity(Community),
    /// Set LOCAL_PREF (meaningful on import and towards iBGP).
    LocalPref(u32),
    /// Set MULTI_EXIT_DISC.
    Med(u32),
}

/// One rule: when the route matches, `verdict` (and `set` when accepted) decides.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Statement {
    /// The prefix must match one of these (empty: any prefix).
    pub prefixes: Vec<PrefixRange>,
    /// The route must carry one of these communities (empty: no condition).
    pub communities: Vec<Community>,
    /// What happens to a matching route.
    pub verdict: Verdict,
    /// Changes applied to a matching accepted route.
    pub set: Vec<Action>,
}

impl Statement {
    fn matches(&self, prefix: Prefix, attrs: &PathAttrs) -> bool {
        (self.prefixes.is_empty() || self.prefixes.iter().any(|r| r.matches(prefix)))
            && (self.communities.is_empty()
                || self
                    .communities
                    .iter()
                    .any(|c| attrs.communities.contains(c)))
    }
}

/// A policy: the first matching statement decides; `default` decides when none matches.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Policy {
    /// The rules, in order.
    pub statements: Vec<Statement>,
    /// The verdict when no statement matches.
    pub default: Verdict,
}

/// The result of evaluating a policy on one route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Refused.
    Reject,
    /// Accepted unchanged.
    Accept,
    /// Accepted with these attributes.
    Modified(Box<PathAttrs>),
}

impl Policy {
    /// Accepts every route unchanged.
    pub fn accept_all() -> Self {
        Policy {
            statements: Vec::new(),
            default: Verdict::Accept,
        }
    }

    /// Refuses every route.
    pub fn reject_all() -> Self {
        Policy {
            statements: Vec::new(),
            default: Verdict::Reject,
        }
    }

    /// Accepts prefixes matching one of `ranges` and refuses the rest (all of them when there
    /// are no ranges): the safe host defaults (export only own blocks and borrowed /32s, import
    /// only prefixes inside the pools).
    pub fn only(ranges: impl IntoIterator<Item = PrefixRange>) -> Self {
        let prefixes: Vec<PrefixRange> = ranges.into_iter().collect();
        if prefixes.is_empty() {
            // A statement without prefixes would match every prefix.
            return Policy::reject_all();
        }
        Policy {
            statements: vec![Statement {
                prefixes,
                communities: Vec::new(),
                verdict: Verdict::Accept,
                set: Vec::new(),
            }],
            default: Verdict::Reject,
        }
    }

    /// This policy confined to `guard`: it accepts a route only when this policy accepts it
    /// and its prefix matches one of `guard`'s ranges (with this policy's changes). Each
    /// accepting statement is narrowed to its intersection with the guard, so a route outside
    /// the guard falls through to the (also narrowed) later statements and is finally refused.
    pub fn within(&self, guard: &[PrefixRange]) -> Policy {
        let narrow = |prefixes: &[PrefixRange]| -> Vec<PrefixRange> {
            if prefixes.is_empty() {
                return guard.to_vec();
            }
            prefixes
                .iter()
                .flat_map(|p| guard.iter().filter_map(move |g| p.intersection(g)))
                .collect()
        };
        let mut statements: Vec<Statement> = Vec::with_capacity(self.statements.len() + 1);
        for st in &self.statements {
            match st.verdict {
                Verdict::Reject => statements.push(st.clone()),
                Verdict::Accept => {
                    let prefixes = narrow(&st.prefixes);
                    // Nothing inside the guard matches: the statement can only accept routes
                    // the guard refuses anyway.
                    if !prefixes.is_empty() {
                        statements.push(Statement {
                            prefixes,
                            ..st.clone()
                        });
                    }
                }
            }
        }
        if self.default == Verdict::Accept && !guard.is_empty() {
            statements.push(Statement {
                prefixes: guard.to_vec(),
                communities: Vec::new(),
                verdict: Verdict::Accept,
                set: Vec::new(),
            });
        }
        Policy {
            statements,
            default: Verdict::Reject,
        }
    }

    /// Whether this policy accepts everything unchanged (lets callers skip evaluation).
    pub fn is_accept_all(&self) -> bool {
        self.default == Verdict::Accept
            && self
                .statements
                .iter()
                .all(|s| s.verdict == Verdict::Accept && s.set.is_empty())
    }

    /// Evaluates the policy on `prefix` with `attrs`.
    pub fn evaluate(&self, prefix: Prefix, attrs: &PathAttrs) -> Outcome {
        let Some(st) = self.statements.iter().find(|s| s.matches(prefix, attrs)) else {
            return match self.default {
                Verdict::Accept => Outcome::Accept,
                Verdict::Reject => Outcome::Reject,
            };
        };
        if st.verdict == Verdict::Reject {
            return Outcome::Reject;
        }
        if st.set.is_empty() {
            return Outcome::Accept;
        }
        let mut a = attrs.clone();
        for action in &st.set {
            match *action {
                Action::AddCommunity(c) => {
                    if !a.communities.contains(&c) {
                        a.communities.push(c);
                    }
                }
                Action::AddLargeCommunity(c) => {
                    if !a.large_communities.contains(&c) {
                        a.large_communities.push(c);
                    }
                }
                Action::RemoveCommunity(c) => a.communities.retain(|x| *x != c),
                Action::LocalPref(v) => a.local_pref = Some(v),
                Action::Med(v) => a.med = Some(v),
            }
        }
        if a == *attrs {
            Outcome::Accept
        } else {
            Outcome::Modified(Box::new(a))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Prefix {
        s.parse().unwrap()
    }

    #[test]
    fn prefix_ranges_follow_ge_le_rules() {
        let r = |s, ge, le| PrefixRange {
            prefix: p(s),
            ge,
            le,
        };
        let cases = [
            (r("10.0.0.0/8", None, None), "10.0.0.0/8", true),
            (r("10.0.0.0/8", None, None), "10.1.0.0/16", false),
            (r("10.0.0.0/8", Some(16), None), "10.1.0.0/16", true),
            (r("10.0.0.0/8", Some(16), None), "10.1.2.3/32", true),
            (r("10.0.0.0/8", Some(16), None), "10.0.0.0/8", false),
            (r("10.0.0.0/8", None, Some(24)), "10.0.0.0/8", true),
            (r("10.0.0.0/8", None, Some(24)), "10.1.1.0/24", true),
            (r("10.0.0.0/8", None, Some(24)), "10.1.1.0/25", false),
            (r("10.0.0.0/8", Some(24), Some(26)), "10.1.1.64/26", true),
            (r("10.0.0.0/8", Some(24), Some(26)), "10.1.0.0/23", false),
            (r("10.0.0.0/8", None, Some(32)), "11.0.0.0/24", false),
            (r("10.0.0.0/8", None, Some(32)), "2001:db8::/32", false),
            (r("2001:db8::/32", None, Some(128)), "2001:db8:1::/48", true),
            (r("0.0.0.0/0", None, Some(32)), "192.0.2.1/32", true),
        ];
        for (range, prefix, want) in cases {
            assert_eq!(range.matches(p(prefix)), want, "{range:?} vs {prefix}");
        }
    }

    #[test]
    fn first_matching_statement_decides_and_sets_attributes() {
        let tag = Community::new(65000, 1);
        let policy = Policy {
            statements: vec![
                Statement {
                    prefixes: vec![],
                    communities: vec![Community::NO_EXPORT],
                    verdict: Verdict::Reject,
                    set: vec![],
                },
                Statement {
                    prefixes: vec![PrefixRange::orlonger(p("10.0.0.0/8"))],
                    communities: vec![],
                    verdict: Verdict::Accept,
                    set: vec![
                        Action::AddCommunity(tag),
                        Action::LocalPref(200),
                        Action::Med(5),
                    ],
                },
            ],
            default: Verdict::Reject,
        };
        let plain = PathAttrs::default();
        let no_export = PathAttrs {
            communities: smallvec::smallvec![Community::NO_EXPORT],
            ..PathAttrs::default()
        };
        assert_eq!(
            policy.evaluate(p("10.1.0.0/16"), &no_export),
            Outcome::Reject
        );
        assert_eq!(policy.evaluate(p("11.0.0.0/16"), &plain), Outcome::Reject);
        let Outcome::Modified(a) = policy.evaluate(p("10.1.0.0/16"), &plain) else {
            panic!("expected a change")
        };
        assert_eq!(
            (&a.communities[..], a.local_pref, a.med),
            (&[tag][..], Some(200), Some(5))
        );
        let tagged = PathAttrs {
            communities: smallvec::smallvec![tag],
            local_pref: Some(200),
            med: Some(5),
            ..PathAttrs::default()
        };
        assert_eq!(
            policy.evaluate(p("10.1.0.0/16"), &tagged),
            Outcome::Accept,
            "no change is no modification"
        );
        let strip = Policy {
            statements: vec![Statement {
                prefixes: vec![],
                communities: vec![],
                verdict: Verdict::Accept,
                set: vec![Action::RemoveCommunity(tag)],
            }],
            default: Verdict::Reject,
        };
        let Outcome::Modified(a) = strip.evaluate(p("10.1.0.0/16"), &tagged) else {
            panic!("expected a change")
        };
        assert!(a.communities.is_empty());
    }

    /// Prefixes of every length over a few addresses that sit inside, beside and around the
    /// ranges the set-algebra tests use.
    fn sample() -> Vec<Prefix> {
        let v4 = [
            "10.1.2.3",
            "10.1.2.200",
            "10.0.0.0",
            "11.0.0.1",
            "0.0.0.0",
            "255.255.255.255",
        ];
        let v6 = ["2001:db8::1", "2001:db8:ffff::", "fd00::", "::"];
        let mut out = Vec::new();
        for a in v4 {
            out.extend((0..=32).filter_map(|l| Prefix::new(a.parse().unwrap(), l).ok()));
        }
        for a in v6 {
            out.extend((0..=128).filter_map(|l| Prefix::new(a.parse().unwrap(), l).ok()));
        }
        out
    }

    fn ranges() -> Vec<PrefixRange> {
        vec![
            PrefixRange::exact(p("10.1.2.0/24")),
            PrefixRange::orlonger(p("10.0.0.0/8")),
            PrefixRange::lengths(p("10.0.0.0/8"), 16, 24),
            PrefixRange::lengths(p("10.1.0.0/16"), 26, 32),
            PrefixRange::orlonger(p("0.0.0.0/0")),
            PrefixRange::exact(p("0.0.0.0/0")),
            PrefixRange::lengths(p("10.1.2.3/32"), 32, 32),
            PrefixRange::orlonger(p("2001:db8::/32")),
            PrefixRange::lengths(p("2001:db8::/32"), 48, 64),
        ]
    }

    #[test]
    fn complement_matches_exactly_what_the_range_does_not_in_its_family() {
        for r in ranges() {
            let c = r.complement();
            for q in sample() {
                let same_family = q.addr().is_ipv4() == r.prefix.addr().is_ipv4();
                let in_complement = c.iter().any(|x| x.matches(q));
                assert_eq!(
                    in_complement,
                    same_family && !r.matches(q),
                    "{r:?} complement vs {q}"
                );
            }
        }
    }

    #[test]
    fn intersection_matches_what_both_match() {
        for a in ranges() {
            for b in ranges() {
                let both = a.intersection(&b);
                for q in sample() {
                    let want = a.matches(q) && b.matches(q);
                    assert_eq!(
                        both.is_some_and(|x| x.matches(q)),
                        want,
                        "{a:?} ∩ {b:?} vs {q}"
                    );
                }
            }
        }
    }

    #[test]
    fn within_is_the_policy_then_the_guard() {
        let tag = Community::new(65000, 7);
        let user = Policy {
            statements: vec![
                Statement {
                    prefixes: vec![PrefixRange::exact(p("10.1.2.0/24"))],
                    communities: vec![],
                    verdict: Verdict::Reject,
                    set: vec![],
                },
                Statement {
                    prefixes: vec![PrefixRange::lengths(p("10.0.0.0/8"), 16, 32)],
                    communities: vec![],
                    verdict: Verdict::Accept,
                    set: vec![Action::AddCommunity(tag)],
                },
                Statement {
                    prefixes: vec![],
                    communities: vec![Community::NO_EXPORT],
                    verdict: Verdict::Accept,
                    set: vec![Action::Med(9)],
                },
            ],
            default: Verdict::Accept,
        };
        let guards = [
            vec![PrefixRange::orlonger(p("10.1.0.0/16"))],
            vec![
                PrefixRange::exact(p("10.1.2.0/26")),
                PrefixRange::exact(p("11.0.0.0/24")),
            ],
            vec![],
        ];
        let plain = PathAttrs::default();
        let tagged = PathAttrs {
            communities: smallvec::smallvec![Community::NO_EXPORT],
            ..PathAttrs::default()
        };
        for guard in &guards {
            let confined = user.within(guard);
            for q in sample() {
                for attrs in [&plain, &tagged] {
                    let guarded = guard.iter().any(|g| g.matches(q));
                    let want = if guarded {
                        user.evaluate(q, attrs)
                    } else {
                        Outcome::Reject
                    };
                    assert_eq!(confined.evaluate(q, attrs), want, "{guard:?} vs {q}");
                }
            }
        }
    }

    #[test]
    fn large_communities_are_added_once() {
        let big = LargeCommunity {
            global: 65000,
            local1: 1,
            local2: 2,
        };
        let policy = Policy {
            statements: vec![Statement {
                prefixes: vec![],
                communities: vec![],
                verdict: Verdict::Accept,
                set: vec![Action::AddLargeCommunity(big)],
            }],
            default: Verdict::Reject,
        };
        let Outcome::Modified(a) = policy.evaluate(p("10.0.0.0/8"), &PathAttrs::default()) else {
            panic!("expected a change")
        };
        assert_eq!(a.large_communities, vec![big]);
        assert_eq!(policy.evaluate(p("10.0.0.0/8"), &a), Outcome::Accept);
    }

    #[test]
    fn host_defaults() {
        let export = Policy::only([PrefixRange::orlonger(p("10.244.1.0/26"))]);
        assert_eq!(
            export.evaluate(p("10.244.1.0/26"), &PathAttrs::default()),
            Outcome::Accept
        );
        assert_eq!(
            export.evaluate(p("10.244.1.5/32"), &PathAttrs::default()),
            Outcome::Accept
        );
        assert_eq!(
            export.evaluate(p("0.0.0.0/0"), &PathAttrs::default()),
            Outcome::Reject
        );
        assert!(Policy::accept_all().is_accept_all());
        assert!(!export.is_accept_all());
        assert_eq!(
            Policy::only([]).evaluate(p("10.244.1.0/26"), &PathAttrs::default()),
            Outcome::Reject,
            "no ranges: nothing passes"
        );
    }
}
