//! Model + endpoints → one nftables table (inet family), as an `nft -f` script.
//!
//! Shape of the table (see the README for an example):
//! - base chains `forward-egress` (priority -1) and `forward-ingress` (0) for traffic between
//!   workloads and the network, `input` and `output` for traffic to and from the host itself,
//!   and `nat-outgoing` (postrouting, srcnat). Each filter base chain accepts
//!   established/related first;
//! - dispatch verdict maps keyed by interface (`iifname vmap @…`) jump to one chain per endpoint
//!   and direction; that chain drops invalid packets, jumps to the chains of the policies
//!   selecting the endpoint, in order, and ends in a counted drop (default deny);
//! - a policy chain holds the policy's rules in order: allow is `accept`, deny is `drop`, log
//!   logs and goes on. Because `accept` ends only the current base chain, a workload's egress
//!   (forward-egress) and the destination's ingress (forward-ingress) are both enforced;
//! - runs of rules that differ only in literal addresses and ports become one interval verdict
//!   map lookup with a counter and comment per element (see the `group` module).

use std::collections::BTreeSet;

use ipnetwork::IpNetwork;

use crate::clause::{Literals, Numbered, clauses_of, cluster_families, render_matches, verdict};
use crate::endpoint::{Pool, RemoteEndpoint, WorkloadEndpoint};
use crate::group::{Element, KeyIndex, Shape, any_overlap, elements, shape};
use crate::model::{Direction, IfName, IpVersion, Name, Policy, PolicyFile, Protocol};
use crate::selector::Labels;
use crate::sets::{AddressSets, fam_of, fam_suffix};
pub use crate::table::Ruleset;
use crate::table::{Element as Entry, Kind, Object};

/// Everything the compiler needs.
#[derive(Clone, Copy, Debug)]
pub struct Inputs<'a> {
    /// Settings, host endpoints and policies.
    pub file: &'a PolicyFile,
    /// Containers on this host.
    pub workloads: &'a [WorkloadEndpoint],
    /// Containers on other hosts (their addresses fill rule selectors).
    pub remote: &'a [RemoteEndpoint],
    /// IP pools (rule `pools` and NAT-outgoing).
    pub pools: &'a [Pool],
}

/// Why the inputs cannot be compiled.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    /// A rule names a pool that does not exist.
    #[error(
        "policy {policy}: {direction} rule {rule}: unknown pool \"{pool}\": expected one of [{known}]"
    )]
    UnknownPool {
        /// The policy.
        policy: Name,
        /// "ingress" or "egress".
        direction: &'static str,
        /// Index of the rule in its list.
        rule: usize,
        /// The unknown pool.
        pool: Name,
        /// The pools there are.
        known: String,
    },
    /// Two endpoints claim one interface.
    #[error("interface {0} belongs to two endpoints: expected one endpoint per interface")]
    DuplicateInterface(IfName),
}

impl CompileError {
    /// Rule `rule` of `policy` in `dir` names `pool`, which is not among `pools`.
    pub(crate) fn unknown_pool(
        policy: &Policy,
        dir: Direction,
        rule: usize,
        pool: Name,
        pools: &[Pool],
    ) -> CompileError {
        CompileError::UnknownPool {
            policy: policy.name.clone(),
            direction: dir.as_str(),
            rule,
            pool,
            known: pools
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}

/// Checks that every pool a rule names is among `pools`, for every policy whether or not it
/// selects an endpoint here (`compile` only looks at the policies in use): the check routectl
/// makes before writing cluster policies, which every host will compile.
pub fn check_pools(policies: &[Policy], pools: &[Pool]) -> Result<(), CompileError> {
    for p in policies {
        for dir in Direction::ALL {
            for (index, rule) in p.rules(dir).iter().enumerate() {
                let mut named = rule.source.pools.iter().chain(&rule.destination.pools);
                if let Some(pool) = named.find(|n| !pools.iter().any(|x| &x.name == *n)) {
                    return Err(CompileError::unknown_pool(
                        p,
                        dir,
                        index,
                        pool.clone(),
                        pools,
                    ));
                }
            }
        }
    }
    Ok(())
}

/// What a counter comment names; [`crate::counters`] parses these back.
pub(crate) mod comment {
    use crate::model::Direction;

    /// A policy rule.
    pub fn rule(policy: &str, dir: Direction, index: usize) -> String {
        format!("policy {policy} {} rule {index}", dir.as_str())
    }

    /// An endpoint's default deny.
    pub fn default_deny(endpoint: &str, dir: Direction) -> String {
        format!("{endpoint} {} default deny", dir.as_str())
    }
}

/// The policies governing one endpoint in one direction, in the order they are evaluated.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct EndpointPlan {
    /// `workload <interface>` or `host <name>`.
    pub endpoint: String,
    /// The endpoint's interface.
    pub interface: IfName,
    /// Ingress or egress.
    pub direction: Direction,
    /// Policy names, first evaluated first; a packet no rule decides is dropped after them.
    pub policies: Vec<Name>,
}

/// Which policies govern which local endpoint, in evaluation order (for `routectl policy show`:
/// ordering surprises are easier to see here than in the ruleset). Endpoints and directions
/// no policy selects are left out: their traffic is allowed.
pub fn plan(inputs: &Inputs<'_>) -> Result<Vec<EndpointPlan>, CompileError> {
    let (policies, selections) = select(inputs)?;
    Ok(selections
        .into_iter()
        .map(|(ep, direction, selected)| EndpointPlan {
            endpoint: ep.label,
            interface: ep.iface.clone(),
            direction,
            policies: selected.iter().map(|&i| policies[i].name.clone()).collect(),
        })
        .collect())
}

/// Policies in evaluation order, and for each local endpoint and direction some policy
/// selects, the indices (into that order) of the selecting policies.
type Selection<'a> = (Vec<&'a Policy>, Vec<(Local<'a>, Direction, Vec<usize>)>);

fn select<'a>(inputs: &Inputs<'a>) -> Result<Selection<'a>, CompileError> {
    let mut policies: Vec<&Policy> = inputs.file.policies.iter().collect();
    // Lower order first, no order last, name breaks ties: Calico's order.
    policies.sort_by(|a, b| {
        let key = |p: &Policy| p.order.unwrap_or(f64::INFINITY);
        key(a).total_cmp(&key(b)).then_with(|| a.name.cmp(&b.name))
    });
    let mut selections = Vec::new();
    for ep in local_endpoints(inputs)? {
        for dir in Direction::ALL {
            let selected: Vec<usize> = policies
                .iter()
                .enumerate()
                .filter(|(_, p)| p.types.contains(&dir) && p.selector.matches(ep.labels))
                .map(|(i, _)| i)
                .collect();
            if !selected.is_empty() {
                selections.push((ep.clone(), dir, selected));
            }
        }
    }
    Ok((policies, selections))
}

/// Compiles the inputs to one table. Pure: no I/O.
pub fn compile(inputs: &Inputs<'_>) -> Result<Ruleset, CompileError> {
    let (policies, selections) = select(inputs)?;
    let mut sets = AddressSets::new(inputs);
    let mut out = Script::new(inputs.file.settings.table.clone());

    // Endpoint chains and the dispatch entries that lead to them.
    let mut used: BTreeSet<(usize, Direction)> = BTreeSet::new();
    let mut dispatch = Dispatch::default();
    let mut endpoint_chains = Vec::new();
    for (ep, dir, selected) in &selections {
        let chain = format!("{}-{}", ep.chain, dir.as_str());
        // Invalid packets are dropped only for governed endpoints: traffic the host merely
        // routes (asymmetric paths in a BGP fabric) is not ours to judge.
        let mut body = vec!["ct state invalid counter drop comment \"invalid\"".to_string()];
        for &i in selected {
            used.insert((i, *dir));
            body.push(format!("jump {}", policy_chain(policies[i], *dir)));
        }
        body.push(format!(
            "counter drop comment \"{}\"",
            comment::default_deny(&ep.label, *dir)
        ));
        endpoint_chains.push(Object::chain(&chain, None, body));
        dispatch.add(ep, *dir, &chain);
    }

    let mut chains = Vec::new();
    for (i, dir) in used {
        let p = policies[i];
        let mut clauses = Vec::new();
        for (index, rule) in p.rules(dir).iter().enumerate() {
            for clause in clauses_of(rule, &mut sets, p, dir, index)? {
                clauses.push(Numbered {
                    index,
                    action: rule.action,
                    clause,
                });
            }
        }
        chains.push((p, dir, clauses));
    }
    let mut literals = Literals::count(chains.iter().flat_map(|(_, _, c)| c));
    let mut policy_chains = Vec::new();
    for (p, dir, clauses) in chains {
        let body = out.policy_body(p, dir, clauses, &mut literals);
        policy_chains.push(Object::chain(&policy_chain(p, dir), None, body));
    }

    out.literal_sets(&literals);
    out.sets(&sets, inputs);
    out.objects.extend(policy_chains);
    out.objects.extend(endpoint_chains);
    out.maps(&dispatch);
    out.base_chains(inputs.pools.iter().any(|p| p.nat_outgoing));
    Ok(out.finish())
}

fn policy_chain(p: &Policy, dir: Direction) -> String {
    format!("pol-{}-{}", p.name, dir.as_str())
}

/// A workload or host endpoint on this host.
#[derive(Clone)]
struct Local<'a> {
    workload: bool,
    iface: &'a IfName,
    labels: &'a Labels,
    /// Chain name stem: `wl-<interface>` or `he-<name>`.
    chain: String,
    /// Name in comments: `workload <interface>` or `host <name>`.
    label: String,
}

fn local_endpoints<'a>(inputs: &Inputs<'a>) -> Result<Vec<Local<'a>>, CompileError> {
    let mut out: Vec<Local<'a>> = Vec::new();
    for w in inputs.workloads {
        out.push(Local {
            workload: true,
            iface: &w.interface,
            labels: &w.labels,
            chain: format!("wl-{}", w.interface),
            label: format!("workload {}", w.interface),
        });
    }
    for h in &inputs.file.host_endpoints {
        out.push(Local {
            workload: false,
            iface: &h.interface,
            labels: &h.labels,
            chain: format!("he-{}", h.name),
            label: format!("host {}", h.name),
        });
    }
    let mut seen = BTreeSet::new();
    for ep in &out {
        if !seen.insert(ep.iface) {
            return Err(CompileError::DuplicateInterface(ep.iface.clone()));
        }
    }
    Ok(out)
}

/// Interface → endpoint chain, per hook.
#[derive(Default)]
struct Dispatch {
    /// forward, by input interface: workload egress.
    from_workload: Vec<(String, String)>,
    /// forward, by output interface: workload ingress.
    to_workload: Vec<(String, String)>,
    /// input, by input interface: workload egress and host ingress.
    input: Vec<(String, String)>,
    /// output, by output interface: workload ingress and host egress.
    output: Vec<(String, String)>,
}

impl Dispatch {
    fn add(&mut self, ep: &Local<'_>, dir: Direction, chain: &str) {
        let entry = (ep.iface.to_string(), chain.to_string());
        match (ep.workload, dir) {
            (true, Direction::Egress) => {
                self.from_workload.push(entry.clone());
                self.input.push(entry);
            }
            (true, Direction::Ingress) => {
                self.to_workload.push(entry.clone());
                self.output.push(entry);
            }
            (false, Direction::Ingress) => self.input.push(entry),
            (false, Direction::Egress) => self.output.push(entry),
        }
    }
}

/// The table being written: its objects in declaration order.
struct Script {
    table: Name,
    objects: Vec<Object>,
    maps: usize,
}

/// `text` as an nft comment: printable ASCII without quotes or backslashes, at most 120 bytes.
fn comment_text(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '"' => '\'',
            '\\' => '/',
            c if c == ' ' || c.is_ascii_graphic() => c,
            _ => '?',
        })
        .take(120)
        .collect()
}

/// A set of `kind` with declaration lines `flags` (maybe none); an element's key is its text.
fn set_object(name: &str, kind: &str, flags: &[&str], elements: Vec<String>) -> Object {
    let head = std::iter::once(format!("type {kind}"))
        .chain(flags.iter().map(|f| f.to_string()))
        .collect();
    let elements = elements
        .into_iter()
        .map(|text| Entry {
            key: text.clone(),
            text,
        })
        .collect();
    Object::collection(Kind::Set, name, head, elements)
}

impl Script {
    fn new(table: Name) -> Script {
        Script {
            table,
            objects: Vec::new(),
            maps: 0,
        }
    }

    /// The rules of one policy chain: plain rules, and verdict maps for literal runs.
    fn policy_body(
        &mut self,
        p: &Policy,
        dir: Direction,
        clauses: Vec<Numbered>,
        lits: &mut Literals,
    ) -> Vec<String> {
        let mut body = Vec::new();
        let mut run: Vec<(Numbered, Vec<Element>)> = Vec::new();
        let mut run_shape: Option<Shape> = None;
        let mut index = KeyIndex::default();
        for n in cluster_families(clauses) {
            let grouped = shape(&n, lits).and_then(|s| {
                let els = elements(&n.clause);
                // A rule whose own elements overlap cannot be a set of disjoint keys.
                let disjoint = els.len() < 2
                    || !any_overlap(&els.iter().map(|e| e.key.clone()).collect::<Vec<_>>());
                disjoint.then_some((s, els))
            });
            match grouped {
                Some((s, els)) => {
                    let fits = run_shape.as_ref() == Some(&s)
                        && !els.iter().any(|e| index.conflicts(&e.key));
                    if !fits {
                        self.flush(&mut body, &mut run, run_shape, p, dir, lits);
                        index = KeyIndex::default();
                        run_shape = Some(s);
                    }
                    for e in &els {
                        index.insert(e.key.clone());
                    }
                    run.push((n, els));
                }
                None => {
                    self.flush(&mut body, &mut run, run_shape, p, dir, lits);
                    index = KeyIndex::default();
                    run_shape = None;
                    body.push(self.plain(&n, p, dir, lits));
                }
            }
        }
        self.flush(&mut body, &mut run, run_shape, p, dir, lits);
        body
    }

    fn plain(&self, n: &Numbered, p: &Policy, dir: Direction, lits: &mut Literals) -> String {
        let mut parts = render_matches(&n.clause, lits);
        parts.push("counter".to_string());
        parts.push(verdict(n.action, p, dir, n.index));
        parts.push(format!(
            "comment \"{}\"",
            comment::rule(p.name.as_str(), dir, n.index)
        ));
        parts.join(" ")
    }

    /// Emits the pending run: one rule alone stays plain, more become a verdict map.
    fn flush(
        &mut self,
        body: &mut Vec<String>,
        run: &mut Vec<(Numbered, Vec<Element>)>,
        shape: Option<Shape>,
        p: &Policy,
        dir: Direction,
        lits: &mut Literals,
    ) {
        let (Some(s), true) = (shape, run.len() > 1) else {
            for (n, _) in run.drain(..) {
                body.push(self.plain(&n, p, dir, lits));
            }
            return;
        };
        let name = format!("rules{}", self.maps);
        self.maps += 1;
        let (ip, addr_type) = match s.family {
            Some(IpVersion::V6) => ("ip6", "ipv6_addr"),
            _ => ("ip", "ipv4_addr"),
        };
        // One protocol for the whole run: it is part of the shared prefix.
        let proto = run
            .first()
            .and_then(|(n, _)| n.clause.protocol)
            .and_then(Protocol::with_ports)
            .map(|p| p.as_str());
        let mut types = Vec::new();
        let mut selectors = Vec::new();
        for (present, what, ty) in [
            (s.saddr, format!("{ip} saddr"), addr_type),
            (s.daddr, format!("{ip} daddr"), addr_type),
            (
                s.sport,
                format!("{} sport", proto.unwrap_or("th")),
                "inet_service",
            ),
            (
                s.dport,
                format!("{} dport", proto.unwrap_or("th")),
                "inet_service",
            ),
        ] {
            if present {
                types.push(ty);
                selectors.push(what);
            }
        }
        // Only single addresses and ports: a hash map, cheaper to load and to look up.
        let exact = run.iter().all(|(_, els)| els.iter().all(|e| e.exact));
        let mut head = vec![format!("type {} : verdict", types.join(" . "))];
        if !exact {
            head.push("flags interval".to_string());
        }
        // Every element gets its own counter.
        head.push("counter".to_string());
        let elements: Vec<Entry> = run
            .drain(..)
            .flat_map(|(n, els)| {
                let c = comment::rule(p.name.as_str(), dir, n.index);
                let v = verdict(n.action, p, dir, n.index);
                els.into_iter().map(move |e| Entry {
                    text: format!("{} comment \"{c}\" : {v}", e.text),
                    key: e.text,
                })
            })
            .collect();
        self.objects
            .push(Object::collection(Kind::Map, &name, head, elements));
        let lookup = format!("{} vmap @{name}", selectors.join(" . "));
        body.push(if s.prefix.is_empty() {
            lookup
        } else {
            format!("{} {lookup}", s.prefix)
        });
    }

    /// Address sets, interface sets and failsafe sets.
    fn sets(&mut self, sets: &AddressSets<'_>, inputs: &Inputs<'_>) {
        let address_set =
            |out: &mut Vec<Object>, base: &str, what: &str, members: &BTreeSet<IpNetwork>| {
                // The comment says what the set stands for, e.g. which selector.
                let comment = format!("comment \"{}\"", comment_text(what));
                let flags = ["flags interval", "auto-merge", comment.as_str()];
                for (fam, ty) in [(IpVersion::V4, "ipv4_addr"), (IpVersion::V6, "ipv6_addr")] {
                    let elements: Vec<String> = members
                        .iter()
                        .filter(|n| fam_of(n) == fam)
                        .map(IpNetwork::to_string)
                        .collect();
                    // auto-merge: overlapping members (nested pools) are one interval.
                    out.push(set_object(
                        &format!("{base}_{}", fam_suffix(fam)),
                        ty,
                        &flags,
                        elements,
                    ));
                }
            };
        for (base, what, members) in &sets.defs {
            address_set(&mut self.objects, base, what, members);
        }
        let all: BTreeSet<IpNetwork> = inputs.pools.iter().map(|p| p.cidr).collect();
        let nat: BTreeSet<IpNetwork> = inputs
            .pools
            .iter()
            .filter(|p| p.nat_outgoing)
            .map(|p| p.cidr)
            .collect();
        address_set(&mut self.objects, "pools_all", "all pools", &all);
        address_set(&mut self.objects, "pools_nat", "nat-outgoing pools", &nat);
        let hosts: Vec<String> = inputs
            .file
            .host_endpoints
            .iter()
            .map(|h| format!("\"{}\"", h.interface))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        self.objects
            .push(set_object("host_interfaces", "ifname", &[], hosts));
        let settings = &inputs.file.settings;
        for (name, list) in [
            ("failsafe_inbound", &settings.failsafe_inbound),
            ("failsafe_outbound", &settings.failsafe_outbound),
        ] {
            let elements: Vec<String> = list
                .iter()
                .map(|f| format!("{} . {}", f.protocol.as_str(), f.port))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            self.objects
                .push(set_object(name, "inet_proto . inet_service", &[], elements));
        }
    }

    /// Named sets for literal lists used by more than one rule.
    fn literal_sets(&mut self, lits: &Literals) {
        for ((ty, elements), name) in &lits.named {
            self.objects.push(set_object(
                name,
                ty,
                &["flags interval", "auto-merge"],
                elements.clone(),
            ));
        }
    }

    /// The interface dispatch maps.
    fn maps(&mut self, d: &Dispatch) {
        for (name, entries) in [
            ("from_workload", &d.from_workload),
            ("to_workload", &d.to_workload),
            ("input_dispatch", &d.input),
            ("output_dispatch", &d.output),
        ] {
            let elements = entries
                .iter()
                .map(|(iface, chain)| Entry {
                    key: format!("\"{iface}\""),
                    text: format!("\"{iface}\" : jump {chain}"),
                })
                .collect();
            self.objects.push(Object::collection(
                Kind::Map,
                name,
                vec!["type ifname : verdict".to_string()],
                elements,
            ));
        }
    }

    fn base_chains(&mut self, nat: bool) {
        let conntrack =
            ["ct state established,related counter accept comment \"established\"".to_string()];
        let with = |extra: &[&str]| -> Vec<String> {
            conntrack
                .iter()
                .cloned()
                .chain(extra.iter().map(|s| s.to_string()))
                .collect()
        };
        // IPv6 neighbour discovery must survive a default deny, as ARP does for IPv4.
        let nd = "icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit, nd-router-advert } accept";
        let chains: [(&str, &str, Vec<String>); 4] = [
            (
                "forward-egress",
                "type filter hook forward priority -1; policy accept;",
                with(&["iifname vmap @from_workload"]),
            ),
            (
                "forward-ingress",
                "type filter hook forward priority 0; policy accept;",
                with(&["oifname vmap @to_workload"]),
            ),
            (
                "input",
                "type filter hook input priority 0; policy accept;",
                with(&[
                    "iifname @host_interfaces meta l4proto . th dport @failsafe_inbound counter accept comment \"failsafe inbound\"",
                    nd,
                    "iifname vmap @input_dispatch",
                ]),
            ),
            (
                "output",
                "type filter hook output priority 0; policy accept;",
                with(&[
                    "oifname @host_interfaces meta l4proto . th dport @failsafe_outbound counter accept comment \"failsafe outbound\"",
                    nd,
                    "oifname vmap @output_dispatch",
                ]),
            ),
        ];
        for (name, header, body) in chains {
            self.objects.push(Object::chain(name, Some(header), body));
        }
        // A NAT hook costs every new flow a lookup: only when some pool asks for it.
        if nat {
            self.objects.push(Object::chain(
                "nat-outgoing",
                Some("type nat hook postrouting priority srcnat; policy accept;"),
                vec![
                    "ip saddr @pools_nat_v4 ip daddr != @pools_all_v4 counter masquerade comment \"nat-outgoing\"".to_string(),
                    "ip6 saddr @pools_nat_v6 ip6 daddr != @pools_all_v6 counter masquerade comment \"nat-outgoing\"".to_string(),
                ],
            ));
        }
    }

    fn finish(self) -> Ruleset {
        Ruleset::new(self.table, self.objects)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Compiles `toml` against two local workloads, one remote endpoint and two pools.
    fn build(toml: &str) -> Result<String, CompileError> {
        let file = PolicyFile::parse(toml, "test.toml").unwrap_or_else(|e| panic!("{e}"));
        let workloads = [
            WorkloadEndpoint {
                interface: IfName::try_from("cali-db").unwrap(),
                ips: vec!["10.244.1.2".parse().unwrap()],
                labels: labels(&[("role", "db")]),
            },
            WorkloadEndpoint {
                interface: IfName::try_from("cali-web").unwrap(),
                ips: vec!["10.244.1.3".parse().unwrap(), "fd00::3".parse().unwrap()],
                labels: labels(&[("role", "web")]),
            },
        ];
        let remote = [RemoteEndpoint {
            ips: vec!["10.244.2.3".parse().unwrap()],
            labels: labels(&[("role", "web")]),
        }];
        let pools = [
            Pool {
                name: Name::try_from("blue").unwrap(),
                cidr: "10.244.0.0/16".parse().unwrap(),
                nat_outgoing: true,
            },
            Pool {
                name: Name::try_from("green").unwrap(),
                cidr: "10.250.0.0/16".parse().unwrap(),
                nat_outgoing: false,
            },
        ];
        compile(&Inputs {
            file: &file,
            workloads: &workloads,
            remote: &remote,
            pools: &pools,
        })
        .map(|r| r.script().to_string())
    }

    const DB_POLICY: &str = "[[policy]]\nname = \"db\"\nselector = 'role == \"db\"'\n";

    #[test]
    fn compiled_text_table() {
        // (what, policy file, lines that must appear in order, texts that must not appear)
        let cases: &[(&str, String, &[&str], &[&str])] = &[
            (
                "lower order first, no order last, name breaks ties",
                "[[policy]]\nname = \"z\"\norder = 1\nselector = 'all()'\n\
                 [[policy]]\nname = \"last\"\nselector = 'all()'\n\
                 [[policy]]\nname = \"b\"\norder = 5\nselector = 'all()'\n\
                 [[policy]]\nname = \"a\"\norder = 5\nselector = 'all()'\n"
                    .to_string(),
                &[
                    "chain wl-cali-db-ingress {",
                    "ct state invalid counter drop comment \"invalid\"",
                    "jump pol-z-ingress",
                    "jump pol-a-ingress",
                    "jump pol-b-ingress",
                    "jump pol-last-ingress",
                    "counter drop comment \"workload cali-db ingress default deny\"",
                ],
                &[],
            ),
            (
                "only selected endpoints get chains and dispatch entries",
                DB_POLICY.to_string(),
                &[
                    "chain wl-cali-db-ingress {",
                    "map to_workload {",
                    "\"cali-db\" : jump wl-cali-db-ingress",
                ],
                &["wl-cali-web", "wl-cali-db-egress"],
            ),
            (
                "egress rules alone make an egress-only policy",
                "[[policy]]\nname = \"out\"\nselector = 'role == \"db\"'\n\
                 [[policy.egress]]\naction = \"deny\"\n"
                    .to_string(),
                &[
                    "counter drop comment \"policy out egress rule 0\"",
                    "\"cali-db\" : jump wl-cali-db-egress",
                ],
                &["wl-cali-db-ingress"],
            ),
            (
                "literal runs become one verdict map with a counter per element",
                format!(
                    "{DB_POLICY}{}",
                    (0..3)
                        .map(|i| format!(
                            "[[policy.ingress]]\naction = \"{}\"\nprotocol = \"tcp\"\n\
                             source = {{ nets = [\"10.0.{i}.0/24\"] }}\n\
                             destination = {{ ports = [{}] }}\n",
                            if i == 1 { "deny" } else { "allow" },
                            8000 + i
                        ))
                        .collect::<String>()
                ),
                &[
                    "map rules0 {",
                    "type ipv4_addr . inet_service : verdict",
                    "10.0.0.0/24 . 8000 comment \"policy db ingress rule 0\" : accept",
                    "10.0.1.0/24 . 8001 comment \"policy db ingress rule 1\" : drop",
                    "10.0.2.0/24 . 8002 comment \"policy db ingress rule 2\" : accept",
                    "meta l4proto tcp ip saddr . tcp dport vmap @rules0",
                ],
                &["rules1"],
            ),
            (
                "single addresses and ports make an exact (hash) map",
                format!(
                    "{DB_POLICY}{}",
                    (1..=3)
                        .map(|i| format!(
                            "[[policy.ingress]]\naction = \"allow\"\nprotocol = \"udp\"\n\
                             source = {{ nets = [\"10.0.0.{i}/32\"] }}\n\
                             destination = {{ ports = [{i}] }}\n"
                        ))
                        .collect::<String>()
                ),
                &[
                    "map rules0 {\n\t\ttype ipv4_addr . inet_service : verdict\n\t\tcounter",
                    "10.0.0.1 . 1 comment \"policy db ingress rule 0\" : accept",
                    "meta l4proto udp ip saddr . udp dport vmap @rules0",
                ],
                &["flags interval\n\t\tcounter"],
            ),
            (
                "an overlapping rule closes the group: first match still wins",
                format!(
                    "{DB_POLICY}{}",
                    ["10.0.0.0/24", "10.0.1.0/24", "10.0.0.0/16", "10.1.0.0/16"]
                        .iter()
                        .map(|n| format!(
                            "[[policy.ingress]]\naction = \"allow\"\nsource = {{ nets = [\"{n}\"] }}\n"
                        ))
                        .collect::<String>()
                ),
                &[
                    "map rules0 {",
                    "10.0.0.0/24 comment \"policy db ingress rule 0\" : accept",
                    "10.0.1.0/24 comment \"policy db ingress rule 1\" : accept",
                    "map rules1 {",
                    "10.0.0.0/16 comment \"policy db ingress rule 2\" : accept",
                    "10.1.0.0/16 comment \"policy db ingress rule 3\" : accept",
                    "ip saddr vmap @rules0",
                    "ip saddr vmap @rules1",
                ],
                &[],
            ),
            (
                "a rule alone stays a plain rule; a list used twice becomes a shared named set",
                format!(
                    "{DB_POLICY}[[policy.ingress]]\naction = \"allow\"\nprotocol = \"udp\"\n\
                     source = {{ not_nets = [\"10.9.0.0/16\"] }}\n\
                     destination = {{ ports = [53, \"5000:5010\"], not_ports = [5005] }}\n\
                     [[policy.ingress]]\naction = \"allow\"\nprotocol = \"tcp\"\nip_version = 4\n\
                     destination = {{ ports = [80, 443] }}\n"
                ),
                &[
                    "set lit0 {\n\t\ttype inet_service\n\t\tflags interval\n\t\tauto-merge\n\t\telements = { 53,\n\t\t\t5000-5010 }",
                    "meta l4proto udp ip saddr != 10.9.0.0/16 udp dport @lit0 udp dport != 5005 counter accept comment \"policy db ingress rule 0\"",
                    "meta nfproto ipv4 meta l4proto tcp tcp dport { 80, 443 } counter accept comment \"policy db ingress rule 1\"",
                    // IPv6 packets are never in an IPv4 network: only the ports matter.
                    "meta nfproto ipv6 meta l4proto udp udp dport @lit0 udp dport != 5005 counter accept",
                ],
                &["map rules0", "ip6 saddr !="],
            ),
            (
                "rules sharing a selector and differing in ports are one port-keyed map",
                format!(
                    "{DB_POLICY}{}",
                    ["\"80:90\"", "85", "100", "\"101:102\""]
                        .iter()
                        .map(|p| format!(
                            "[[policy.ingress]]\naction = \"allow\"\nprotocol = \"tcp\"\n\
                             source = {{ selector = 'role == \"web\"' }}\n\
                             destination = {{ ports = [{p}] }}\n"
                        ))
                        .collect::<String>()
                ),
                &[
                    "map rules0 {\n\t\ttype inet_service : verdict",
                    "85 comment \"policy db ingress rule 1\" : accept",
                    "100 comment \"policy db ingress rule 2\" : accept",
                    "101-102 comment \"policy db ingress rule 3\" : accept",
                    // 85 lies inside 80-90: the first rule stays ahead, on its own.
                    "meta l4proto tcp ip saddr @sel0_v4 tcp dport 80-90 counter accept comment \"policy db ingress rule 0\"",
                    "meta l4proto tcp ip saddr @sel0_v4 tcp dport vmap @rules0",
                    "meta l4proto tcp ip6 saddr @sel0_v6 tcp dport 80-90 counter accept",
                    "meta l4proto tcp ip6 saddr @sel0_v6 tcp dport vmap @rules1",
                ],
                &["rules2"],
            ),
            (
                "selectors become named sets of every matching endpoint's addresses",
                format!(
                    "{DB_POLICY}[[policy.ingress]]\naction = \"allow\"\nsource = {{ selector = 'role == \"web\"' }}\n"
                ),
                &[
                    "set sel0_v4 {",
                    "comment \"selector role == 'web'\"",
                    "elements = { 10.244.1.3/32,\n\t\t\t10.244.2.3/32 }",
                    "set sel0_v6 {",
                    "elements = { fd00::3/128 }",
                    "ip saddr @sel0_v4 counter accept comment \"policy db ingress rule 0\"",
                    "ip6 saddr @sel0_v6 counter accept comment \"policy db ingress rule 0\"",
                ],
                &[],
            ),
            (
                "a rule naming pools matches their networks; NAT sets hold nat-outgoing pools",
                format!(
                    "{DB_POLICY}[[policy.ingress]]\naction = \"deny\"\nsource = {{ pools = [\"green\"] }}\n"
                ),
                &[
                    "set pools0_v4 {",
                    "elements = { 10.250.0.0/16 }",
                    "set pools_all_v4 {",
                    "elements = { 10.244.0.0/16,\n\t\t\t10.250.0.0/16 }",
                    "set pools_nat_v4 {",
                    "elements = { 10.244.0.0/16 }",
                    "ip saddr @pools0_v4 counter drop comment \"policy db ingress rule 0\"",
                    "ip saddr @pools_nat_v4 ip daddr != @pools_all_v4 counter masquerade",
                ],
                &["ip6 saddr @pools0_v6"],
            ),
            (
                "icmp types, log, ip_version",
                format!(
                    "{DB_POLICY}[[policy.ingress]]\naction = \"log\"\nip_version = 6\n\
                     [[policy.ingress]]\naction = \"allow\"\nprotocol = \"icmp\"\nicmp = {{ type = 8, code = 0 }}\n\
                     [[policy.ingress]]\naction = \"allow\"\nprotocol = \"icmpv6\"\nicmp = {{ type = 128 }}\n"
                ),
                &[
                    // IPv4 clauses come first: no packet is both, so order is kept per family.
                    "meta l4proto icmp icmp type 8 icmp code 0 counter accept",
                    "meta nfproto ipv6 counter log prefix \"db ingress 0: \" comment \"policy db ingress rule 0\"",
                    "meta l4proto ipv6-icmp icmpv6 type 128 counter accept",
                ],
                &[],
            ),
            (
                "established first, failsafes before dispatch, table replaced atomically",
                "[settings]\ntable = \"fw\"\nfailsafe_inbound = [{ protocol = \"tcp\", port = 2222 }]\n"
                    .to_string(),
                &[
                    "table inet fw\ndelete table inet fw\ntable inet fw {",
                    "elements = { tcp . 2222 }",
                    "chain input {",
                    "ct state established,related counter accept",
                    "meta l4proto . th dport @failsafe_inbound counter accept",
                    "iifname vmap @input_dispatch",
                    "chain nat-outgoing {",
                ],
                &["tcp . 22,"],
            ),
        ];
        for (what, toml, want, absent) in cases {
            let text = build(toml).unwrap_or_else(|e| panic!("{what}: {e}"));
            let mut from = 0;
            for line in *want {
                match text[from..].find(line) {
                    Some(at) => from += at + line.len(),
                    None => panic!("{what}: {line:?} missing (in order) from:\n{text}"),
                }
            }
            for line in *absent {
                assert!(!text.contains(line), "{what}: {line:?} present in:\n{text}");
            }
        }
    }

    #[test]
    fn comments_are_safe_nft_strings() {
        assert_eq!(comment_text("role == \"a\\b\" é\n"), "role == 'a/b' ??");
        assert_eq!(comment_text(&"x".repeat(500)).len(), 120);
    }

    #[test]
    fn plan_lists_governing_policies_in_order() {
        let toml = "[[policy]]\nname = \"late\"\nselector = 'all()'\n\
                    [[policy]]\nname = \"early\"\norder = 1\nselector = 'role == \"db\"'\n\
                    [[policy]]\nname = \"out\"\nselector = 'role == \"web\"'\ntypes = [\"egress\"]\n";
        let file = PolicyFile::parse(toml, "t.toml").unwrap();
        let workloads = [
            WorkloadEndpoint {
                interface: IfName::try_from("cali-db").unwrap(),
                ips: vec![],
                labels: labels(&[("role", "db")]),
            },
            WorkloadEndpoint {
                interface: IfName::try_from("cali-web").unwrap(),
                ips: vec![],
                labels: labels(&[("role", "web")]),
            },
        ];
        let inputs = Inputs {
            file: &file,
            workloads: &workloads,
            remote: &[],
            pools: &[],
        };
        let got: Vec<(String, Direction, Vec<String>)> = plan(&inputs)
            .unwrap()
            .into_iter()
            .map(|p| {
                let names = p.policies.iter().map(|n| n.to_string()).collect();
                (p.endpoint, p.direction, names)
            })
            .collect();
        let want = vec![
            (
                "workload cali-db".to_string(),
                Direction::Ingress,
                vec!["early".to_string(), "late".to_string()],
            ),
            (
                "workload cali-web".to_string(),
                Direction::Ingress,
                vec!["late".to_string()],
            ),
            (
                "workload cali-web".to_string(),
                Direction::Egress,
                vec!["out".to_string()],
            ),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn refusals() {
        let unknown = format!(
            "{DB_POLICY}[[policy.ingress]]\naction = \"allow\"\nsource = {{ pools = [\"red\"] }}\n"
        );
        let e = build(&unknown).unwrap_err().to_string();
        assert_eq!(
            e,
            "policy db: ingress rule 0: unknown pool \"red\": expected one of [blue, green]"
        );
        // check_pools finds it also in a policy that selects nothing here, where compile
        // does not look.
        let idle = PolicyFile::parse(
            &unknown.replace("role == \"db\"", "role == \"nobody\""),
            "t.toml",
        )
        .unwrap();
        assert!(build(&unknown.replace("role == \"db\"", "role == \"nobody\"")).is_ok());
        let blue = Pool {
            name: Name::try_from("blue").unwrap(),
            cidr: "10.244.0.0/16".parse().unwrap(),
            nat_outgoing: false,
        };
        let e = check_pools(&idle.policies, std::slice::from_ref(&blue)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "policy db: ingress rule 0: unknown pool \"red\": expected one of [blue]"
        );
        let file = PolicyFile::parse(DB_POLICY, "t.toml").unwrap();
        assert_eq!(check_pools(&file.policies, &[blue]), Ok(()));
        let twice = "[[host_endpoint]]\nname = \"h\"\ninterface = \"cali-db\"\n".to_string();
        assert_eq!(
            build(&twice),
            Err(CompileError::DuplicateInterface(
                IfName::try_from("cali-db").unwrap()
            ))
        );
    }

    #[test]
    fn ten_thousand_rules_compile_to_one_map() {
        let rules: String = (0..10_000)
            .map(|i| {
                format!(
                    "[[policy.ingress]]\naction = \"allow\"\nprotocol = \"tcp\"\n\
                     source = {{ nets = [\"10.{}.{}.0/24\"] }}\ndestination = {{ ports = [{}] }}\n",
                    100 + i / 256,
                    i % 256,
                    1000 + i
                )
            })
            .collect();
        let text = build(&format!("{DB_POLICY}{rules}")).unwrap();
        assert_eq!(text.matches(" vmap @rules").count(), 1);
        assert_eq!(text.matches(" : accept").count(), 10_000);
    }
}
