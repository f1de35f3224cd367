//! A rule as clauses — one per address family it can match — and their nft text.

use std::collections::BTreeMap;

use ipnetwork::IpNetwork;

use crate::compile::CompileError;
use crate::model::{
    Action, Direction, EntityMatch, IcmpMatch, IpVersion, Policy, PortRange, Protocol, Rule,
};
use crate::sets::{AddressSets, fam_of, fam_suffix};

/// One end of a clause, for one address family.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Side {
    /// Positive literal networks (`None`: no literal list given).
    pub(crate) nets: Option<Vec<IpNetwork>>,
    pub(crate) not_nets: Vec<IpNetwork>,
    /// Named sets the address must be in (all of them).
    pub(crate) sets: Vec<String>,
    pub(crate) not_sets: Vec<String>,
    pub(crate) ports: Vec<PortRange>,
    pub(crate) not_ports: Vec<PortRange>,
}

/// A rule restricted to one address family (or to none): a conjunction of matches.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Clause {
    pub(crate) family: Option<IpVersion>,
    pub(crate) protocol: Option<Protocol>,
    pub(crate) icmp: Option<IcmpMatch>,
    pub(crate) src: Side,
    pub(crate) dst: Side,
}

/// A clause with the index and action of the rule it came from.
pub(crate) struct Numbered {
    pub(crate) index: usize,
    pub(crate) action: Action,
    pub(crate) clause: Clause,
}

fn has_addresses(m: &EntityMatch) -> bool {
    !m.nets.is_empty()
        || !m.not_nets.is_empty()
        || m.selector.is_some()
        || m.not_selector.is_some()
        || !m.pools.is_empty()
}

/// Splits a rule by address family; a family no positive match can hit is left out.
pub(crate) fn clauses_of(
    rule: &Rule,
    sets: &mut AddressSets<'_>,
    policy: &Policy,
    dir: Direction,
    index: usize,
) -> Result<Vec<Clause>, CompileError> {
    let families: Vec<Option<IpVersion>> = match rule.ip_version {
        Some(v) => vec![Some(v)],
        None if has_addresses(&rule.source) || has_addresses(&rule.destination) => {
            vec![Some(IpVersion::V4), Some(IpVersion::V6)]
        }
        None => vec![None],
    };
    let mut out = Vec::new();
    'family: for family in families {
        let mut sides = [Side::default(), Side::default()];
        for (side, m) in sides.iter_mut().zip([&rule.source, &rule.destination]) {
            side.ports = m.ports.clone();
            side.not_ports = m.not_ports.clone();
            let Some(fam) = family else { continue };
            let in_fam = |nets: &[IpNetwork]| -> Vec<IpNetwork> {
                nets.iter().filter(|n| fam_of(n) == fam).copied().collect()
            };
            if !m.nets.is_empty() {
                let nets = in_fam(&m.nets);
                if nets.is_empty() {
                    continue 'family;
                }
                side.nets = Some(nets);
            }
            side.not_nets = in_fam(&m.not_nets);
            if !m.pools.is_empty() {
                let (base, fams) = sets.pools(&m.pools).map_err(|pool| {
                    CompileError::unknown_pool(policy, dir, index, pool, sets.inputs.pools)
                })?;
                if !fams.has(fam) {
                    continue 'family;
                }
                side.sets.push(format!("{base}_{}", fam_suffix(fam)));
            }
            if let Some(s) = &m.selector {
                let (base, fams) = sets.selector(s);
                if !fams.has(fam) {
                    continue 'family;
                }
                side.sets.push(format!("{base}_{}", fam_suffix(fam)));
            }
            if let Some(s) = &m.not_selector {
                let (base, fams) = sets.selector(s);
                // Not being in an empty set is always true: nothing to match.
                if fams.has(fam) {
                    side.not_sets.push(format!("{base}_{}", fam_suffix(fam)));
                }
            }
        }
        let [src, dst] = sides;
        out.push(Clause {
            family,
            protocol: rule.protocol,
            icmp: rule.icmp,
            src,
            dst,
        });
    }
    Ok(out)
}

/// Clauses of one family can be reordered past clauses of the other (no packet matches both),
/// so v4 and v6 clauses between family-free clauses are brought together for longer groups.
pub(crate) fn cluster_families(clauses: Vec<Numbered>) -> Vec<Numbered> {
    let mut out = Vec::with_capacity(clauses.len());
    let mut v6 = Vec::new();
    for c in clauses {
        match c.clause.family {
            Some(IpVersion::V4) => out.push(c),
            Some(IpVersion::V6) => v6.push(c),
            None => {
                out.append(&mut v6);
                out.push(c);
            }
        }
    }
    out.append(&mut v6);
    out
}

/// Literal lists (networks, ports) of plain rules. A list used once is written inline; one
/// used again becomes a named set shared by its users, since every set (inline ones too) costs
/// nft and the kernel far more than a rule does.
#[derive(Default)]
pub(crate) struct Literals {
    uses: BTreeMap<LiteralKey, usize>,
    pub(crate) named: BTreeMap<LiteralKey, String>,
}

/// A literal list as a set key: its nft element type and its elements' text.
type LiteralKey = (&'static str, Vec<String>);

/// Networks of one clause share a family (clauses are split by family).
fn nets_key(nets: &[IpNetwork]) -> LiteralKey {
    let ty = if nets.first().is_some_and(IpNetwork::is_ipv6) {
        "ipv6_addr"
    } else {
        "ipv4_addr"
    };
    (ty, nets.iter().map(IpNetwork::to_string).collect())
}

fn ports_key(ports: &[PortRange]) -> LiteralKey {
    (
        "inet_service",
        ports.iter().map(PortRange::to_string).collect(),
    )
}

impl Literals {
    pub(crate) fn count<'a>(clauses: impl Iterator<Item = &'a Numbered>) -> Literals {
        let mut l = Literals::default();
        for n in clauses {
            for side in [&n.clause.src, &n.clause.dst] {
                let nets = side.nets.iter().chain([&side.not_nets]);
                let ports = [&side.ports, &side.not_ports];
                let keys = nets
                    .filter(|v| v.len() > 1)
                    .map(|v| nets_key(v))
                    .chain(ports.iter().filter(|v| v.len() > 1).map(|v| ports_key(v)));
                for k in keys {
                    *l.uses.entry(k).or_default() += 1;
                }
            }
        }
        l
    }

    /// `x`, `{ x, y }` or `@litN`.
    pub(crate) fn list(&mut self, key: LiteralKey) -> String {
        if let [one] = key.1.as_slice() {
            return one.clone();
        }
        if self.uses.get(&key).copied().unwrap_or(0) < 2 {
            return format!("{{ {} }}", key.1.join(", "));
        }
        let next = format!("lit{}", self.named.len());
        format!("@{}", self.named.entry(key).or_insert(next))
    }
}

pub(crate) fn verdict(action: Action, policy: &Policy, dir: Direction, index: usize) -> String {
    match action {
        Action::Allow => "accept".to_string(),
        Action::Deny => "drop".to_string(),
        Action::Log => format!("log prefix \"{} {} {index}: \"", policy.name, dir.as_str()),
    }
}

fn protocol_match(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "meta l4proto tcp",
        Protocol::Udp => "meta l4proto udp",
        Protocol::Sctp => "meta l4proto sctp",
        Protocol::Icmp => "meta l4proto icmp",
        Protocol::Icmpv6 => "meta l4proto ipv6-icmp",
    }
}

/// The match part of a plain (non-map) rule.
pub(crate) fn render_matches(c: &Clause, lits: &mut Literals) -> Vec<String> {
    let mut parts = Vec::new();
    let ip = match c.family {
        Some(IpVersion::V4) => "ip",
        Some(IpVersion::V6) => "ip6",
        None => "",
    };
    let has_address = [&c.src, &c.dst].iter().any(|s| {
        s.nets.is_some() || !s.not_nets.is_empty() || !s.sets.is_empty() || !s.not_sets.is_empty()
    });
    if let Some(fam) = c.family
        && !has_address
        && c.icmp.is_none()
    {
        parts.push(format!(
            "meta nfproto ipv{}",
            if fam == IpVersion::V4 { 4 } else { 6 }
        ));
    }
    if let Some(p) = c.protocol {
        parts.push(protocol_match(p).to_string());
    }
    for (side, field) in [(&c.src, "saddr"), (&c.dst, "daddr")] {
        if let Some(nets) = &side.nets {
            parts.push(format!("{ip} {field} {}", lits.list(nets_key(nets))));
        }
        if !side.not_nets.is_empty() {
            parts.push(format!(
                "{ip} {field} != {}",
                lits.list(nets_key(&side.not_nets))
            ));
        }
        for s in &side.sets {
            parts.push(format!("{ip} {field} @{s}"));
        }
        for s in &side.not_sets {
            parts.push(format!("{ip} {field} != @{s}"));
        }
    }
    if let Some(proto) = c.protocol.and_then(Protocol::with_ports) {
        for (side, field) in [(&c.src, "sport"), (&c.dst, "dport")] {
            if !side.ports.is_empty() {
                parts.push(format!(
                    "{} {field} {}",
                    proto.as_str(),
                    lits.list(ports_key(&side.ports))
                ));
            }
            if !side.not_ports.is_empty() {
                parts.push(format!(
                    "{} {field} != {}",
                    proto.as_str(),
                    lits.list(ports_key(&side.not_ports))
                ));
            }
        }
    }
    if let Some(icmp) = c.icmp {
        let kw = if c.protocol == Some(Protocol::Icmpv6) {
            "icmpv6"
        } else {
            "icmp"
        };
        parts.push(format!("{kw} type {}", icmp.icmp_type));
        if let Some(code) = icmp.code {
            parts.push(format!("{kw} code {code}"));
        }
    }
    parts
}
