//! Import and export policies: prefix lists (prefix, ge, le) and community match/set, as small
//! data types with a pure evaluation.

use bgpd_wire::{Community, PathAttrs, Prefix};

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

    /// Whether `p` matches.
    pub fn matches(&self, p: Prefix) -> bool {
        let inside = match (self.prefix, p) {
            (Prefix::V4(r), Prefix::V4(q)) => q.length() >= r.length() && r.contains(q.addr()),
            (Prefix::V6(r), Prefix::V6(q)) => q.length() >= r.length() && r.contains(q.addr()),
            _ => false,
        };
        let lo = self.ge.unwrap_or(self.prefix.length());
        let hi = self.le.unwrap_or(if self.ge.is_some() {
            width(self.prefix)
        } else {
            self.prefix.length()
        });
        inside && (lo..=hi).contains(&p.length())
    }
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

    /// Accepts prefixes matching one of `ranges` and refuses the rest: the safe host defaults
    /// (export only own blocks and borrowed /32s, import only prefixes inside the pools).
    pub fn only(ranges: impl IntoIterator<Item = PrefixRange>) -> Self {
        let prefixes: Vec<PrefixRange> = ranges.into_iter().collect();
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
    }
}
