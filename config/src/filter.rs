//! BGP route filters: the rule syntax shared by bgpd's `[[bgp.filters]]` / `[[bgp.peers]]` and
//! the `bgp-speaker` binary's TOML, and its mapping onto the RIB's [`Policy`].
//!
//! A rule is Calico's BGPFilter rule (`cidr` + `match` = equal / not-equal / in / not-in +
//! `prefix_length`, `action`) with BIRD's extras: a community to match, and on accept
//! communities to add or remove, LOCAL_PREF and MED to set. Rules are tried in order; the first
//! that matches decides; a route no rule matches is accepted (as in Calico).

use std::fmt;

use bgpd_rib::{Action, Policy, PrefixRange, Statement, Verdict};
use bgpd_wire::{Community, LargeCommunity, Prefix};
use ipnetwork::IpNetwork;
use serde::Deserialize;
use serde::de::{self, Deserializer};

use crate::schema::{BgpConfig, FilterConfig, NodeName, PeerConfig};

/// What a matching rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FilterAction {
    /// The route passes (with the rule's changes).
    Accept,
    /// The route is refused.
    Reject,
}

/// How a rule's `cidr` is compared with a route's prefix (Calico's `matchOperator`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MatchOperator {
    /// The prefix is the cidr itself.
    Equal,
    /// The prefix is any other prefix of the cidr's family.
    NotEqual,
    /// The prefix is the cidr or lies inside it (BIRD's `net ~ [cidr+]`); the default.
    #[default]
    In,
    /// The prefix of the cidr's family does not lie inside the cidr.
    NotIn,
}

/// Bounds on the matched prefix's length (Calico's `prefixLength`), inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrefixLength {
    /// Shortest length that matches; the cidr's length (`in`) or 0 (`not-in`) when absent.
    pub min: Option<u8>,
    /// Longest length that matches; the family's width when absent.
    pub max: Option<u8>,
}

/// A network prefix written as a CIDR with zero host bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr(Prefix);

impl Cidr {
    /// The prefix.
    pub fn prefix(self) -> Prefix {
        self.0
    }

    /// Whether `p` is this prefix or lies inside it.
    pub fn covers(self, p: Prefix) -> bool {
        PrefixRange::orlonger(self.0).matches(p)
    }

    fn width(self) -> u8 {
        if self.0.addr().is_ipv4() { 32 } else { 128 }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let net: IpNetwork = s.parse().map_err(|_| {
            de::Error::custom(format!(
                "expected a CIDR like \"10.244.0.0/16\" or \"fd00::/56\", not {s:?}"
            ))
        })?;
        if net.network() != net.ip() {
            return Err(de::Error::custom(format!(
                "expected a network address with zero host bits, like {}/{}",
                net.network(),
                net.prefix()
            )));
        }
        Prefix::new(net.ip(), net.prefix())
            .map(Cidr)
            .map_err(|e| de::Error::custom(format!("{s}: {e}")))
    }
}

/// A standard community (RFC 1997): `"65000:100"` or a well-known name (`no-export`,
/// `no-advertise`, `no-export-subconfed`, `no-peer`, `blackhole`, `graceful-shutdown`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StandardCommunity(pub Community);

/// A standard or a large (RFC 8092, `"65000:1:2"`) community.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CommunityValue {
    /// `asn:value` or a well-known name.
    Standard(Community),
    /// `global:local1:local2`.
    Large(LargeCommunity),
}

const COMMUNITY_EXPECTED: &str = "a community like \"65000:100\" (two numbers up to 65535), \
     a large community like \"65000:1:2\" (three numbers up to 4294967295), or no-export, \
     no-advertise, no-export-subconfed, no-peer, blackhole, graceful-shutdown";

impl CommunityValue {
    /// Parses a community literal; `None` when `s` is not one.
    pub fn parse(s: &str) -> Option<CommunityValue> {
        let well_known = match s {
            "no-export" => Some(Community::NO_EXPORT),
            "no-advertise" => Some(Community::NO_ADVERTISE),
            "no-export-subconfed" => Some(Community::NO_EXPORT_SUBCONFED),
            "no-peer" => Some(Community::NO_PEER),
            "blackhole" => Some(Community::BLACKHOLE),
            "graceful-shutdown" => Some(Community::GRACEFUL_SHUTDOWN),
            _ => None,
        };
        if let Some(c) = well_known {
            return Some(CommunityValue::Standard(c));
        }
        let parts: Vec<&str> = s.split(':').collect();
        match parts[..] {
            [a, b] => Some(CommunityValue::Standard(Community::new(
                a.parse().ok()?,
                b.parse().ok()?,
            ))),
            [g, l1, l2] => Some(CommunityValue::Large(LargeCommunity {
                global: g.parse().ok()?,
                local1: l1.parse().ok()?,
                local2: l2.parse().ok()?,
            })),
            _ => None,
        }
    }

    /// The change that adds this community to a route.
    pub fn add(self) -> Action {
        match self {
            CommunityValue::Standard(c) => Action::AddCommunity(c),
            CommunityValue::Large(c) => Action::AddLargeCommunity(c),
        }
    }
}

impl<'de> Deserialize<'de> for CommunityValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        CommunityValue::parse(&s)
            .ok_or_else(|| de::Error::custom(format!("expected {COMMUNITY_EXPECTED}, not {s:?}")))
    }
}

impl<'de> Deserialize<'de> for StandardCommunity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match CommunityValue::parse(&s) {
            Some(CommunityValue::Standard(c)) => Ok(StandardCommunity(c)),
            _ => Err(de::Error::custom(format!(
                "expected a standard community like \"65000:100\" or a well-known name \
                 (large communities are only added, not matched or removed), not {s:?}"
            ))),
        }
    }
}

/// One filter rule.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterRule {
    /// What a matching route gets.
    pub action: FilterAction,
    /// The prefix to compare with; every prefix of both families when absent.
    pub cidr: Option<Cidr>,
    /// How `cidr` is compared (`in` when absent).
    #[serde(rename = "match")]
    pub operator: Option<MatchOperator>,
    /// Bounds on the prefix length, with `match = "in"` or `"not-in"`.
    pub prefix_length: Option<PrefixLength>,
    /// The route must carry this community.
    pub community: Option<StandardCommunity>,
    /// On accept: communities (standard or large) to add.
    #[serde(default)]
    pub add_communities: Vec<CommunityValue>,
    /// On accept: standard communities to remove.
    #[serde(default)]
    pub remove_communities: Vec<StandardCommunity>,
    /// On accept: LOCAL_PREF to set (kept on import and towards iBGP peers only).
    pub local_pref: Option<u32>,
    /// On accept: MULTI_EXIT_DISC to set.
    pub med: Option<u32>,
}

/// A rule that cannot mean anything: the key to fix (relative to the rule) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    /// The rule's key at fault (`prefix_length`, `match`, …).
    pub key: &'static str,
    /// What is wrong and what is expected.
    pub message: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

impl FilterRule {
    /// Rejects combinations of keys that cannot mean anything.
    pub fn check(&self) -> Result<(), RuleError> {
        let fail = |key, message: String| Err(RuleError { key, message });
        if self.action == FilterAction::Reject {
            let changes = [
                ("add_communities", !self.add_communities.is_empty()),
                ("remove_communities", !self.remove_communities.is_empty()),
                ("local_pref", self.local_pref.is_some()),
                ("med", self.med.is_some()),
            ];
            if let Some((key, _)) = changes.iter().find(|(_, set)| *set) {
                return fail(
                    key,
                    "only an accepted route is changed: use action = \"accept\" or drop this key"
                        .into(),
                );
            }
        }
        let Some(cidr) = self.cidr else {
            if self.operator.is_some() {
                return fail("match", "a match operator needs cidr".into());
            }
            if self.prefix_length.is_some() {
                return fail("prefix_length", "prefix_length needs cidr".into());
            }
            return Ok(());
        };
        let Some(len) = self.prefix_length else {
            return Ok(());
        };
        let operator = self.operator.unwrap_or_default();
        if matches!(operator, MatchOperator::Equal | MatchOperator::NotEqual) {
            return fail(
                "prefix_length",
                "prefix_length goes with match = \"in\" or \"not-in\"; equal and not-equal \
                 compare the one prefix"
                    .into(),
            );
        }
        let width = cidr.width();
        let floor = match operator {
            MatchOperator::In => cidr.prefix().length(),
            _ => 0,
        };
        let (min, max) = (len.min.unwrap_or(floor), len.max.unwrap_or(width));
        if min < floor || min > width {
            return fail(
                "prefix_length",
                format!("expected min from {floor} to {width} for {cidr}, not {min}"),
            );
        }
        if max > width || max < min {
            return fail(
                "prefix_length",
                format!("expected max from {min} to {width} for {cidr}, not {max}"),
            );
        }
        Ok(())
    }

    /// The prefixes this rule matches, as ranges (empty: any prefix).
    fn ranges(&self) -> Vec<PrefixRange> {
        let Some(cidr) = self.cidr else {
            return Vec::new();
        };
        let c = cidr.prefix();
        let width = cidr.width();
        let (min, max) = self.prefix_length.map_or((None, None), |l| (l.min, l.max));
        match self.operator.unwrap_or_default() {
            MatchOperator::Equal => vec![PrefixRange::exact(c)],
            MatchOperator::NotEqual => PrefixRange::exact(c).complement(),
            MatchOperator::In => vec![PrefixRange::lengths(
                c,
                min.unwrap_or(c.length()),
                max.unwrap_or(width),
            )],
            MatchOperator::NotIn => {
                let lengths = PrefixRange::any_of_family(c, min.unwrap_or(0), max.unwrap_or(width));
                PrefixRange::orlonger(c)
                    .complement()
                    .iter()
                    .filter_map(|r| r.intersection(&lengths))
                    .collect()
            }
        }
    }

    /// This rule as one RIB policy statement.
    pub fn statement(&self) -> Statement {
        let mut set: Vec<Action> = self.add_communities.iter().map(|c| c.add()).collect();
        set.extend(
            self.remove_communities
                .iter()
                .map(|c| Action::RemoveCommunity(c.0)),
        );
        set.extend(self.local_pref.map(Action::LocalPref));
        set.extend(self.med.map(Action::Med));
        Statement {
            prefixes: self.ranges(),
            communities: self.community.iter().map(|c| c.0).collect(),
            verdict: match self.action {
                FilterAction::Accept => Verdict::Accept,
                FilterAction::Reject => Verdict::Reject,
            },
            set,
        }
    }
}

/// The policy of `rules` in order: the first matching rule decides; no match accepts.
pub fn policy<'a>(rules: impl IntoIterator<Item = &'a FilterRule>) -> Policy {
    let statements: Vec<Statement> = rules.into_iter().map(FilterRule::statement).collect();
    if statements.is_empty() {
        return Policy::accept_all();
    }
    Policy {
        statements,
        default: Verdict::Accept,
    }
}

/// A session's filter policies, before bgpd's own guard narrows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policies {
    /// For routes learned from the peer.
    pub import: Policy,
    /// For routes sent to the peer.
    pub export: Policy,
}

impl BgpConfig {
    /// A configured peer's policies: its own rules, then those of its named filters in order.
    pub fn peer_policies(&self, peer: &PeerConfig) -> Policies {
        self.policies(&peer.import, &peer.export, &peer.filters)
    }

    /// The policies of the sessions bgpd makes by itself: the `mesh_filters`.
    pub fn mesh_policies(&self) -> Policies {
        self.policies(&[], &[], &self.mesh_filters)
    }

    fn policies(
        &self,
        import: &[FilterRule],
        export: &[FilterRule],
        names: &[NodeName],
    ) -> Policies {
        let named: Vec<&FilterConfig> = names
            .iter()
            .filter_map(|n| self.filters.iter().find(|f| f.name == *n))
            .collect();
        Policies {
            import: policy(import.iter().chain(named.iter().flat_map(|f| &f.import))),
            export: policy(export.iter().chain(named.iter().flat_map(|f| &f.export))),
        }
    }
}

/// Deserializes a list of rules as their policy, checking each (for the `bgp-speaker` TOML,
/// whose errors are serde's; bgpd's own file reports rule errors at their key instead).
pub fn deserialize_policy<'de, D: Deserializer<'de>>(d: D) -> Result<Policy, D::Error> {
    let rules = Vec::<FilterRule>::deserialize(d)?;
    for (i, rule) in rules.iter().enumerate() {
        rule.check()
            .map_err(|e| de::Error::custom(format!("rule {i}: {e}")))?;
    }
    Ok(policy(&rules))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bgpd_rib::Outcome;
    use bgpd_wire::PathAttrs;

    fn rule(text: &str) -> FilterRule {
        toml::from_str(text).unwrap()
    }

    fn p(s: &str) -> Prefix {
        s.parse().unwrap()
    }

    fn verdicts(r: &FilterRule, prefixes: &[&str]) -> Vec<bool> {
        let st = r.statement();
        let policy = Policy {
            statements: vec![st],
            default: Verdict::Reject,
        };
        prefixes
            .iter()
            .map(|q| policy.evaluate(p(q), &PathAttrs::default()) != Outcome::Reject)
            .collect()
    }

    #[test]
    fn match_operators_follow_calico() {
        let probes = [
            "10.244.0.0/16",
            "10.244.1.0/26",
            "10.244.1.5/32",
            "10.0.0.0/8",
            "192.0.2.0/24",
            "fd00::/64",
        ];
        let cases = [
            (
                "action = \"accept\"\ncidr = \"10.244.0.0/16\"\nmatch = \"equal\"",
                [true, false, false, false, false, false],
            ),
            (
                "action = \"accept\"\ncidr = \"10.244.0.0/16\"\nmatch = \"not-equal\"",
                [false, true, true, true, true, false],
            ),
            (
                "action = \"accept\"\ncidr = \"10.244.0.0/16\"",
                [true, true, true, false, false, false],
            ),
            (
                "action = \"accept\"\ncidr = \"10.244.0.0/16\"\nmatch = \"in\"\nprefix_length = { min = 26, max = 26 }",
                [false, true, false, false, false, false],
            ),
            (
                "action = \"accept\"\ncidr = \"10.244.0.0/16\"\nmatch = \"not-in\"",
                [false, false, false, true, true, false],
            ),
            (
                "action = \"accept\"\ncidr = \"10.244.0.0/16\"\nmatch = \"not-in\"\nprefix_length = { max = 16 }",
                [false, false, false, true, false, false],
            ),
            ("action = \"accept\"", [true, true, true, true, true, true]),
        ];
        for (text, want) in cases {
            assert_eq!(verdicts(&rule(text), &probes), want, "{text}");
        }
    }

    #[test]
    fn rules_map_onto_statements_with_their_changes() {
        let r = rule(
            "action = \"accept\"\ncommunity = \"65000:1\"\nadd_communities = [\"65000:2\", \"65000:3:4\", \"no-export\"]\nremove_communities = [\"65000:1\"]\nlocal_pref = 200\nmed = 7",
        );
        let st = r.statement();
        assert_eq!(st.communities, vec![Community::new(65000, 1)]);
        assert_eq!(
            st.set,
            vec![
                Action::AddCommunity(Community::new(65000, 2)),
                Action::AddLargeCommunity(LargeCommunity {
                    global: 65000,
                    local1: 3,
                    local2: 4
                }),
                Action::AddCommunity(Community::NO_EXPORT),
                Action::RemoveCommunity(Community::new(65000, 1)),
                Action::LocalPref(200),
                Action::Med(7),
            ]
        );
        assert_eq!(policy([]), Policy::accept_all());
        let reject = rule("action = \"reject\"\ncidr = \"10.0.0.0/8\"");
        let pol = policy([&reject]);
        assert_eq!(pol.default, Verdict::Accept, "no match accepts, as Calico");
        assert_eq!(
            pol.evaluate(p("10.1.0.0/16"), &PathAttrs::default()),
            Outcome::Reject
        );
    }

    #[test]
    fn meaningless_rules_are_refused_at_their_key() {
        let cases = [
            ("action = \"reject\"\nlocal_pref = 5", "local_pref"),
            (
                "action = \"reject\"\nadd_communities = [\"1:1\"]",
                "add_communities",
            ),
            ("action = \"accept\"\nmatch = \"in\"", "match"),
            (
                "action = \"accept\"\nprefix_length = { min = 24 }",
                "prefix_length",
            ),
            (
                "action = \"accept\"\ncidr = \"10.0.0.0/8\"\nmatch = \"equal\"\nprefix_length = { min = 24 }",
                "prefix_length",
            ),
            (
                "action = \"accept\"\ncidr = \"10.0.0.0/8\"\nprefix_length = { min = 4 }",
                "prefix_length",
            ),
            (
                "action = \"accept\"\ncidr = \"10.0.0.0/8\"\nprefix_length = { min = 24, max = 20 }",
                "prefix_length",
            ),
            (
                "action = \"accept\"\ncidr = \"10.0.0.0/8\"\nprefix_length = { max = 33 }",
                "prefix_length",
            ),
        ];
        for (text, key) in cases {
            let err = rule(text).check().unwrap_err();
            assert_eq!(err.key, key, "{text}: {err}");
        }
        assert!(rule("action = \"accept\"\ncidr = \"10.0.0.0/8\"\nmatch = \"not-in\"\nprefix_length = { min = 4 }").check().is_ok());
    }

    #[test]
    fn values_are_checked_by_their_types() {
        for bad in [
            "action = \"drop\"",
            "action = \"accept\"\ncidr = \"10.0.0.1/8\"",
            "action = \"accept\"\ncidr = \"ten\"",
            "action = \"accept\"\nmatch = \"within\"",
            "action = \"accept\"\ncommunity = \"65000:1:1\"",
            "action = \"accept\"\ncommunity = \"70000:1\"",
            "action = \"accept\"\nadd_communities = [\"1:2:3:4\"]",
            "action = \"accept\"\ncolour = \"red\"",
        ] {
            assert!(toml::from_str::<FilterRule>(bad).is_err(), "{bad}");
        }
    }
}
