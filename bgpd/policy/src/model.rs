//! The policy model as written in TOML: policies, rules, host endpoints and settings.
//!
//! Everything that can be checked without knowing the endpoints is checked while the file is
//! read, so a bad file is refused with `file:line:column` before anything is compiled or applied.

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;

use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};

use crate::selector::{Labels, Selector};

/// A policy file: settings, host endpoints and policies.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// Table name, failsafe ports.
    #[serde(default)]
    pub settings: Settings,
    /// The host's own interfaces that policies may select.
    #[serde(default, rename = "host_endpoint")]
    pub host_endpoints: Vec<HostEndpoint>,
    /// The policies, in any order (`order` decides).
    #[serde(default, rename = "policy")]
    pub policies: Vec<Policy>,
}

/// Why a policy file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a valid policy file.
    #[error("{origin}:{line}:{column}: {key}{message}")]
    Invalid {
        /// File name (or `<input>`).
        origin: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// "key `selector`: " when the problem is at a `key = value` line, else empty.
        key: String,
        /// What is wrong and what was expected.
        message: String,
    },
}

impl PolicyFile {
    /// Reads and validates a policy file.
    pub fn load(path: &Path) -> Result<PolicyFile, ModelError> {
        let text = std::fs::read_to_string(path).map_err(|source| ModelError::Read {
            path: path.display().to_string(),
            source,
        })?;
        PolicyFile::parse(&text, &path.display().to_string())
    }

    /// Parses and validates policy TOML; `origin` names the input in errors.
    pub fn parse(text: &str, origin: &str) -> Result<PolicyFile, ModelError> {
        let file: PolicyFile = from_toml(text, origin)?;
        file.check_names().map_err(|(name, message)| {
            invalid(text, origin, second_name_line(text, &name), &message)
        })?;
        Ok(file)
    }

    /// Policy and host-endpoint names must be unique: they name chains and counters.
    fn check_names(&self) -> Result<(), (String, String)> {
        unique_policy_names(&self.policies)?;
        let mut seen = BTreeSet::new();
        for h in &self.host_endpoints {
            if !seen.insert(h.name.as_str()) {
                return Err((
                    h.name.to_string(),
                    format!(
                        "duplicate host endpoint name {:?}: expected unique names",
                        h.name.0
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Deserializes TOML, turning the parser's error into `origin:line:column: key …`.
pub(crate) fn from_toml<T: serde::de::DeserializeOwned>(
    text: &str,
    origin: &str,
) -> Result<T, ModelError> {
    toml::from_str(text).map_err(|e| {
        let offset = e.span().map_or(0, |s| s.start);
        invalid(text, origin, offset, e.message().trim_end())
    })
}

/// Checks that no two policies share a name; else the name and the message.
pub(crate) fn unique_policy_names(policies: &[Policy]) -> Result<(), (String, String)> {
    let mut seen = BTreeSet::new();
    for p in policies {
        if !seen.insert(p.name.as_str()) {
            return Err((
                p.name.to_string(),
                format!(
                    "duplicate policy name {:?}: expected unique names",
                    p.name.0
                ),
            ));
        }
    }
    Ok(())
}

/// Offset of the value in the second `name = "<name>"` line: where a duplicate is declared.
pub(crate) fn second_name_line(text: &str, name: &str) -> usize {
    let mut offset = 0;
    let mut hits = 0;
    for line in text.split_inclusive('\n') {
        if let Some((k, v)) = line.split_once('=')
            && k.trim() == "name"
            && v.trim().trim_matches(['"', '\'']) == name
        {
            hits += 1;
            if hits == 2 {
                return offset + k.len() + 1 + (v.len() - v.trim_start().len());
            }
        }
        offset += line.len();
    }
    0
}

pub(crate) fn invalid(text: &str, origin: &str, offset: usize, message: &str) -> ModelError {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |p| p + 1);
    let column = text[line_start..offset].chars().count() + 1;
    let line_text = text[line_start..].lines().next().unwrap_or("");
    // The key is whatever stands before `=` on the line the error points into.
    let key = line_text
        .split_once('=')
        .map(|(k, _)| k.trim())
        .filter(|k| !k.is_empty() && !k.starts_with('[') && offset - line_start > k.len())
        .map(|k| format!("key `{k}`: "))
        .unwrap_or_default();
    ModelError::Invalid {
        origin: origin.to_string(),
        line,
        column,
        key,
        message: message.to_string(),
    }
}

/// Table name and failsafe ports.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Our nftables table (family inet); nothing else is touched.
    pub table: Name,
    /// Ports the host always accepts on host endpoints, whatever the policies say.
    pub failsafe_inbound: Vec<Failsafe>,
    /// Ports the host may always reach through host endpoints.
    pub failsafe_outbound: Vec<Failsafe>,
}

impl Default for Settings {
    fn default() -> Self {
        let tcp = |port| Failsafe {
            protocol: PortProtocol::Tcp,
            port,
        };
        let udp = |port| Failsafe {
            protocol: PortProtocol::Udp,
            port,
        };
        Settings {
            table: Name("bgpd".to_string()),
            // SSH, DHCP client, BGP, etcd client and peer (Calico's defaults, minus its own).
            failsafe_inbound: vec![tcp(22), udp(68), tcp(179), tcp(2379), tcp(2380)],
            // DNS, DHCP server, BGP, etcd.
            failsafe_outbound: vec![udp(53), udp(67), tcp(179), tcp(2379), tcp(2380)],
        }
    }
}

/// One failsafe: a protocol and a destination port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Failsafe {
    /// tcp, udp or sctp.
    pub protocol: PortProtocol,
    /// Destination port.
    pub port: u16,
}

/// A name usable in nftables chain names and comments: `[A-Za-z0-9_.-]`, 1 to 64 bytes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, serde::Serialize)]
#[serde(try_from = "String")]
pub struct Name(String);

impl Name {
    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Name {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if (1..=64).contains(&s.len())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        {
            Ok(Name(s))
        } else {
            Err(format!(
                "invalid name {s:?}: expected 1 to 64 characters of A-Z a-z 0-9 _ . -"
            ))
        }
    }
}

impl TryFrom<&str> for Name {
    type Error = String;
    fn try_from(s: &str) -> Result<Self, String> {
        Name::try_from(s.to_string())
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A Linux interface name: 1 to 15 bytes of `[A-Za-z0-9_.-]` (they also name nft chains).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, serde::Serialize)]
#[serde(try_from = "String")]
pub struct IfName(String);

impl IfName {
    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for IfName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if (1..=15).contains(&s.len())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        {
            Ok(IfName(s))
        } else {
            Err(format!(
                "invalid interface name {s:?}: expected 1 to 15 characters of A-Z a-z 0-9 _ . -"
            ))
        }
    }
}

impl TryFrom<&str> for IfName {
    type Error = String;
    fn try_from(s: &str) -> Result<Self, String> {
        IfName::try_from(s.to_string())
    }
}

impl fmt::Display for IfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One of the host's own interfaces, selectable by its labels.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostEndpoint {
    /// Names its chains and counters.
    pub name: Name,
    /// The interface.
    pub interface: IfName,
    /// Labels that policy selectors match.
    #[serde(default)]
    pub labels: Labels,
    /// The interface's addresses, so rule selectors can match traffic from this host.
    #[serde(default)]
    pub ips: Vec<std::net::IpAddr>,
}

/// A policy: which endpoints it applies to, in which order, and its rules.
///
/// Serializes to the same form it is read from (`types` written out), so a policy written
/// back as TOML or JSON reads in as the same policy.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, try_from = "RawPolicy")]
pub struct Policy {
    /// Unique name; appears in chain names and rule comments.
    pub name: Name,
    /// Lower orders are evaluated first; `None` comes after every order (like Calico).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order: Option<f64>,
    /// The endpoints (workload or host) this policy applies to.
    pub selector: Selector,
    /// Directions this policy governs; a selected endpoint is default-deny in each.
    pub types: BTreeSet<Direction>,
    /// Rules for traffic to the endpoint.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<Rule>,
    /// Rules for traffic from the endpoint.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<Rule>,
}

impl Policy {
    /// Parses one policy written as TOML on its own: the keys of one `[[policy]]` table, its
    /// rules as `[[ingress]]` / `[[egress]]` (the cluster-wide form stored in etcd). `origin`
    /// names the input in errors, which give line, column and key as for a file.
    pub fn parse(text: &str, origin: &str) -> Result<Policy, ModelError> {
        from_toml(text, origin)
    }

    /// The policy as TOML in the form [`Policy::parse`] reads.
    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        toml::to_string(self)
    }

    /// The rules for one direction.
    pub fn rules(&self, direction: Direction) -> &[Rule] {
        match direction {
            Direction::Ingress => &self.ingress,
            Direction::Egress => &self.egress,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    name: Name,
    order: Option<f64>,
    #[serde(deserialize_with = "selector")]
    selector: Selector,
    types: Option<BTreeSet<Direction>>,
    #[serde(default)]
    ingress: Vec<Rule>,
    #[serde(default)]
    egress: Vec<Rule>,
}

impl TryFrom<RawPolicy> for Policy {
    type Error = String;
    fn try_from(raw: RawPolicy) -> Result<Self, String> {
        if raw.order.is_some_and(|o| !o.is_finite()) {
            return Err(format!(
                "policy {}: order must be a finite number",
                raw.name
            ));
        }
        // Calico's defaults: egress only when there are egress rules and no ingress rules.
        let types =
            raw.types
                .unwrap_or_else(|| match (raw.ingress.is_empty(), raw.egress.is_empty()) {
                    (true, false) => [Direction::Egress].into(),
                    (false, false) => [Direction::Ingress, Direction::Egress].into(),
                    _ => [Direction::Ingress].into(),
                });
        Ok(Policy {
            name: raw.name,
            order: raw.order,
            selector: raw.selector,
            types,
            ingress: raw.ingress,
            egress: raw.egress,
        })
    }
}

fn selector<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Selector, D::Error> {
    let text = String::deserialize(d)?;
    Selector::parse(&text).map_err(serde::de::Error::custom)
}

fn opt_selector<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Selector>, D::Error> {
    selector(d).map(Some)
}

/// Traffic direction relative to the endpoint.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// To the endpoint.
    Ingress,
    /// From the endpoint.
    Egress,
}

impl Direction {
    /// Both directions.
    pub const ALL: [Direction; 2] = [Direction::Ingress, Direction::Egress];

    /// "ingress" or "egress".
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }
}

/// What a matching rule does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Accept; no later rule or policy is consulted for this endpoint and direction.
    Allow,
    /// Drop; no later rule or policy is consulted.
    Deny,
    /// Log the packet and go on with the next rule.
    Log,
}

/// An IP protocol a rule can match.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP (ports allowed).
    Tcp,
    /// UDP (ports allowed).
    Udp,
    /// SCTP (ports allowed).
    Sctp,
    /// ICMP for IPv4 (types allowed).
    Icmp,
    /// ICMP for IPv6 (types allowed).
    Icmpv6,
}

impl Protocol {
    /// The protocol with ports, if it has them.
    pub fn with_ports(self) -> Option<PortProtocol> {
        match self {
            Protocol::Tcp => Some(PortProtocol::Tcp),
            Protocol::Udp => Some(PortProtocol::Udp),
            Protocol::Sctp => Some(PortProtocol::Sctp),
            Protocol::Icmp | Protocol::Icmpv6 => None,
        }
    }
}

/// A protocol with ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PortProtocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl PortProtocol {
    /// The nftables keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            PortProtocol::Tcp => "tcp",
            PortProtocol::Udp => "udp",
            PortProtocol::Sctp => "sctp",
        }
    }
}

/// IP version restriction of a rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IpVersion {
    /// IPv4 only.
    V4,
    /// IPv6 only.
    V6,
}

impl Serialize for IpVersion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(match self {
            IpVersion::V4 => 4,
            IpVersion::V6 => 6,
        })
    }
}

impl<'de> Deserialize<'de> for IpVersion {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match u8::deserialize(d)? {
            4 => Ok(IpVersion::V4),
            6 => Ok(IpVersion::V6),
            n => Err(serde::de::Error::custom(format!(
                "ip_version {n}: expected 4 or 6"
            ))),
        }
    }
}

/// A port or an inclusive port range: `80` or `"8000:8080"` (Calico's form) or `"8000-8080"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortRange {
    /// First port.
    pub first: u16,
    /// Last port (≥ first).
    pub last: u16,
}

impl PortRange {
    /// A single port.
    pub fn single(port: u16) -> PortRange {
        PortRange {
            first: port,
            last: port,
        }
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

impl std::str::FromStr for PortRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("invalid port {s:?}: expected a port or a range \"first:last\"");
        let port = |p: &str| p.trim().parse::<u16>().map_err(|_| bad());
        match s.split_once([':', '-']) {
            Some((a, b)) => {
                let (first, last) = (port(a)?, port(b)?);
                if first > last {
                    return Err(format!("invalid port range {s:?}: first is above last"));
                }
                Ok(PortRange { first, last })
            }
            None => port(s).map(PortRange::single),
        }
    }
}

/// A single port as a number, a range as Calico's `"first:last"`.
impl Serialize for PortRange {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.first == self.last {
            s.serialize_u16(self.first)
        } else {
            s.collect_str(&format_args!("{}:{}", self.first, self.last))
        }
    }
}

impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = PortRange;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a port number or a range \"first:last\"")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<PortRange, E> {
                u16::try_from(v)
                    .map(PortRange::single)
                    .map_err(|_| E::custom(format!("port {v}: expected 0 to 65535")))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<PortRange, E> {
                u16::try_from(v)
                    .map(PortRange::single)
                    .map_err(|_| E::custom(format!("port {v}: expected 0 to 65535")))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<PortRange, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// An ICMP type and optional code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IcmpMatch {
    /// ICMP (or ICMPv6) type, e.g. 8 for echo request.
    #[serde(rename = "type")]
    pub icmp_type: u8,
    /// Code, if it matters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<u8>,
}

/// One end of a rule (source or destination). All given fields must match.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EntityMatch {
    /// Addresses in any of these networks.
    #[serde(
        default,
        deserialize_with = "networks",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub nets: Vec<IpNetwork>,
    /// Addresses in none of these networks.
    #[serde(
        default,
        deserialize_with = "networks",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub not_nets: Vec<IpNetwork>,
    /// Addresses of endpoints (workload or host) whose labels match.
    #[serde(
        default,
        deserialize_with = "opt_selector",
        skip_serializing_if = "Option::is_none"
    )]
    pub selector: Option<Selector>,
    /// Addresses of no endpoint whose labels match.
    #[serde(
        default,
        deserialize_with = "opt_selector",
        skip_serializing_if = "Option::is_none"
    )]
    pub not_selector: Option<Selector>,
    /// Addresses inside any of these IP pools (by name).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pools: Vec<Name>,
    /// Ports (needs a protocol with ports).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortRange>,
    /// Ports excluded (needs a protocol with ports).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_ports: Vec<PortRange>,
}

/// Networks with host bits cleared, so `10.0.0.1/24` means `10.0.0.0/24` as in the kernel.
fn networks<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<IpNetwork>, D::Error> {
    let nets = Vec::<IpNetwork>::deserialize(d)?;
    nets.into_iter()
        .map(|n| IpNetwork::new(n.network(), n.prefix()).map_err(serde::de::Error::custom))
        .collect()
}

impl EntityMatch {
    /// True when it matches anything (no field given).
    pub fn is_empty(&self) -> bool {
        *self == EntityMatch::default()
    }

    fn has_ports(&self) -> bool {
        !self.ports.is_empty() || !self.not_ports.is_empty()
    }
}

/// One rule: match fields and an action.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, try_from = "RawRule")]
pub struct Rule {
    /// What a match does.
    pub action: Action,
    /// IP protocol; required for ports and ICMP types.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    /// Restrict to IPv4 or IPv6.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_version: Option<IpVersion>,
    /// ICMP type/code (needs protocol icmp or icmpv6).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icmp: Option<IcmpMatch>,
    /// Source match.
    #[serde(skip_serializing_if = "EntityMatch::is_empty")]
    pub source: EntityMatch,
    /// Destination match.
    #[serde(skip_serializing_if = "EntityMatch::is_empty")]
    pub destination: EntityMatch,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    action: Action,
    protocol: Option<Protocol>,
    ip_version: Option<IpVersion>,
    icmp: Option<IcmpMatch>,
    #[serde(default)]
    source: EntityMatch,
    #[serde(default)]
    destination: EntityMatch,
}

impl TryFrom<RawRule> for Rule {
    type Error = String;
    fn try_from(r: RawRule) -> Result<Self, String> {
        let has_ports = r.source.has_ports() || r.destination.has_ports();
        if has_ports && r.protocol.and_then(Protocol::with_ports).is_none() {
            return Err("ports need protocol = \"tcp\", \"udp\" or \"sctp\"".to_string());
        }
        if r.icmp.is_some() && !matches!(r.protocol, Some(Protocol::Icmp | Protocol::Icmpv6)) {
            return Err("icmp needs protocol = \"icmp\" or \"icmpv6\"".to_string());
        }
        let version = match r.protocol {
            Some(Protocol::Icmp) => Some(IpVersion::V4),
            Some(Protocol::Icmpv6) => Some(IpVersion::V6),
            _ => None,
        };
        if let (Some(implied), Some(given)) = (version, r.ip_version)
            && implied != given
        {
            return Err(format!(
                "protocol {:?} contradicts ip_version {given:?}",
                r.protocol
            ));
        }
        let ip_version = r.ip_version.or(version);
        if let Some(v) = ip_version {
            for (end, m) in [("source", &r.source), ("destination", &r.destination)] {
                let fits = |n: &IpNetwork| n.is_ipv4() == (v == IpVersion::V4);
                if !m.nets.is_empty() && !m.nets.iter().any(fits) {
                    return Err(format!(
                        "{end} nets hold no IPv{} network, so the rule could never match: \
                         expected at least one",
                        if v == IpVersion::V4 { 4 } else { 6 }
                    ));
                }
            }
        }
        Ok(Rule {
            action: r.action,
            protocol: r.protocol,
            ip_version,
            icmp: r.icmp,
            source: r.source,
            destination: r.destination,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
[settings]
table = "fabric"
failsafe_inbound = [{ protocol = "tcp", port = 22 }]

[[host_endpoint]]
name = "uplink"
interface = "eth0"
labels = { role = "gateway" }

[[policy]]
name = "db"
order = 10
selector = 'role == "db" && env in {"prod","stage"}'

[[policy.ingress]]
action = "allow"
protocol = "tcp"
source = { selector = 'role == "web"', nets = ["10.1.2.3/16"] }
destination = { ports = [5432, "6000:6010"] }

[[policy.egress]]
action = "deny"
protocol = "icmp"
icmp = { type = 8 }
"#;

    #[test]
    fn example_parses_with_defaults() {
        let f = PolicyFile::parse(EXAMPLE, "ex.toml").unwrap();
        assert_eq!(f.settings.table.as_str(), "fabric");
        assert!(f.settings.failsafe_outbound.contains(&Failsafe {
            protocol: PortProtocol::Tcp,
            port: 179
        }));
        let p = &f.policies[0];
        assert_eq!(p.types, [Direction::Ingress, Direction::Egress].into());
        let r = &p.ingress[0];
        assert_eq!(r.source.nets[0].to_string(), "10.1.0.0/16");
        assert_eq!(
            r.destination.ports,
            vec![
                PortRange::single(5432),
                PortRange {
                    first: 6000,
                    last: 6010
                }
            ]
        );
        assert_eq!(p.egress[0].ip_version, Some(IpVersion::V4));
    }

    #[test]
    fn readme_and_example_files_parse() {
        let readme = include_str!("../README.md");
        let block = readme
            .split("```toml\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .expect("README has a toml block");
        let f = PolicyFile::parse(block, "README.md").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(f.policies[0].ingress.len(), 2);
        PolicyFile::parse(include_str!("../examples/policy.toml"), "policy.toml")
            .unwrap_or_else(|e| panic!("{e}"));
    }

    #[test]
    fn errors_name_file_line_column_and_key() {
        let cases: &[(&str, &str)] = &[
            (
                "[[policy]]\nname = \"a\"\nselector = 'role = \"db\"'\n",
                "p.toml:3:12: key `selector`: selector \"role = \\\"db\\\"\": at column 6: expected `==`",
            ),
            (
                "# 😀 ünïcödé\n[[policy]]\nname = \"ü\"\nselector = 'all()'\n",
                "p.toml:3:8: key `name`: invalid name \"ü\"",
            ),
            (
                "[[policy]]\nname = \"a b\"\nselector = 'all()'\n",
                "p.toml:2:8: key `name`: invalid name \"a b\"",
            ),
            (
                "[[policy]]\nname = \"a\"\nselector = 'all()'\n[[policy.ingress]]\naction = \"accept\"\n",
                "p.toml:5:10: key `action`: unknown variant `accept`, expected one of `allow`, `deny`, `log`",
            ),
            (
                "[[policy]]\nname = \"a\"\nselector = 'all()'\n[[policy.ingress]]\naction = \"allow\"\ndestination = { ports = [80] }\n",
                "ports need protocol",
            ),
            (
                "[[policy]]\nname = \"a\"\nselector = 'all()'\n[[policy.ingress]]\naction = \"allow\"\nprotocol = \"tcp\"\ndestination = { ports = [\"90:80\"] }\n",
                "p.toml:7:26: key `destination`: invalid port range \"90:80\": first is above last",
            ),
            (
                "[[policy]]\nname = \"a\"\nselector = 'all()'\n[[policy.egress]]\naction = \"allow\"\nprotocol = \"icmpv6\"\ndestination = { nets = [\"10.0.0.0/8\"] }\n",
                "p.toml:4:1: destination nets hold no IPv6 network",
            ),
            (
                "[[policy]]\nname = \"a\"\nselector = 'all()'\n[[policy]]\nname = \"a\"\nselector = 'all()'\n",
                "p.toml:5:8: key `name`: duplicate policy name \"a\"",
            ),
            (
                "[[host_endpoint]]\nname = \"h\"\ninterface = \"an-interface-name-too-long\"\n",
                "p.toml:3:13: key `interface`: invalid interface name",
            ),
            (
                "[[policy]]\nname = \"a\"\nselectr = 'all()'\n",
                "p.toml:3:1: unknown field `selectr`, expected one of",
            ),
            (
                "[[policy]]\nname = \"a\"\nselector = 'all()'\n[[policy.ingress]]\naction = \"allow\"\nsource = { nets = [\"10.0.0.0/33\"] }\n",
                "p.toml:6:19: key `source`:",
            ),
        ];
        for (text, want) in cases {
            let e = PolicyFile::parse(text, "p.toml")
                .expect_err(text)
                .to_string();
            assert!(e.contains(want), "{text}\n got: {e}\nwant: {want}");
        }
    }
}
