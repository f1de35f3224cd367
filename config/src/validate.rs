//! Rules that relate several keys; each violation names the key to fix.

use std::collections::HashMap;

use ipnetwork::IpNetwork;

use crate::filter::FilterRule;
use crate::location::KeyPath;
use crate::schema::{BgpConfig, Config, NodeName};

/// A rule broken at `key`.
#[derive(Debug)]
pub(crate) struct Violation {
    pub(crate) key: KeyPath,
    pub(crate) message: String,
}

fn violation(key: KeyPath, message: impl Into<String>) -> Result<(), Violation> {
    Err(Violation {
        key,
        message: message.into(),
    })
}

/// The first broken rule, in file order of the sections.
pub(crate) fn check(c: &Config) -> Result<(), Violation> {
    check_node(c)?;
    check_etcd(c)?;
    check_ipam(c)?;
    check_bgp(c)?;
    check_state(c)
}

fn check_state(c: &Config) -> Result<(), Violation> {
    if !c.state.dir.is_absolute() {
        return violation(
            KeyPath::of(&["state", "dir"]),
            format!(
                "expected an absolute path, not {:?} (bgpd's working directory is not fixed)",
                c.state.dir.display().to_string()
            ),
        );
    }
    Ok(())
}

fn check_node(c: &Config) -> Result<(), Violation> {
    for (key, value) in &c.node.labels {
        if let Err(e) = bgpd_api::check_label(key, value) {
            // The same rules as endpoint labels, so a selector can name every label.
            return violation(KeyPath::of(&["node", "labels", key]), e.reason);
        }
    }
    Ok(())
}

fn check_etcd(c: &Config) -> Result<(), Violation> {
    let at = KeyPath::of(&["etcd"]);
    if c.etcd.endpoints.is_empty() {
        return violation(at.key("endpoints"), "expected at least one etcd URL");
    }
    if let Some(i) = c.etcd.endpoints.iter().position(|e| e.is_https()) {
        if c.etcd.tls.is_none() {
            return violation(
                at.key("endpoints").index(i),
                "an https endpoint needs [etcd.tls] with ca_file",
            );
        }
    }
    if let Some(tls) = &c.etcd.tls {
        if let Some(i) = c.etcd.endpoints.iter().position(|e| !e.is_https()) {
            return violation(
                at.key("endpoints").index(i),
                "[etcd.tls] is set, so every endpoint must be https://",
            );
        }
        if tls.cert_file.is_some() != tls.key_file.is_some() {
            return violation(
                at.key("tls"),
                "expected cert_file and key_file together, or neither",
            );
        }
    }
    Ok(())
}

fn check_ipam(c: &Config) -> Result<(), Violation> {
    let at = KeyPath::of(&["ipam", "pools"]);
    let mut names = HashMap::new();
    for (i, pool) in c.ipam.pools.iter().enumerate() {
        let here = at.index(i);
        if let Some(first) = names.insert(pool.name.as_str(), i) {
            return violation(
                here.key("name"),
                format!(
                    "pool name {} is already used by ipam.pools[{first}]",
                    pool.name
                ),
            );
        }
        if pool.cidr.network() != pool.cidr.ip() {
            return violation(
                here.key("cidr"),
                format!(
                    "expected a network address with zero host bits, like {}/{}",
                    pool.cidr.network(),
                    pool.cidr.prefix()
                ),
            );
        }
        let size = pool.block_size();
        let key = if pool.block_size.is_some() {
            here.key("block_size")
        } else {
            here.key("cidr")
        };
        let lens = pool.block_lens();
        let max = *lens.end();
        if size < pool.cidr.prefix() || size > max {
            return violation(
                key,
                format!(
                    "block size /{size} must lie between the pool's /{} and /{max}",
                    pool.cidr.prefix()
                ),
            );
        }
        if !lens.contains(&size) {
            let family = if pool.cidr.is_ipv4() { "IPv4" } else { "IPv6" };
            return violation(
                key,
                format!(
                    "expected an {family} block size from /{} to /{max}, not /{size} \
                     (IPAM's blocks hold at most 4096 addresses)",
                    lens.start()
                ),
            );
        }
        if let Some((j, other)) = c.ipam.pools[..i]
            .iter()
            .enumerate()
            .find(|(_, p)| overlaps(p.cidr, pool.cidr))
        {
            return violation(
                here.key("cidr"),
                format!("{} overlaps ipam.pools[{j}] ({})", pool.cidr, other.cidr),
            );
        }
    }
    Ok(())
}

fn overlaps(a: IpNetwork, b: IpNetwork) -> bool {
    a.contains(b.network()) || b.contains(a.network())
}

fn check_rules(at: &KeyPath, rules: &[FilterRule]) -> Result<(), Violation> {
    for (i, rule) in rules.iter().enumerate() {
        if let Err(e) = rule.check() {
            return violation(at.index(i).key(e.key), e.message);
        }
    }
    Ok(())
}

fn check_filter_names(at: &KeyPath, names: &[NodeName], bgp: &BgpConfig) -> Result<(), Violation> {
    for (i, name) in names.iter().enumerate() {
        if !bgp.filters.iter().any(|f| f.name == *name) {
            let known: Vec<&str> = bgp.filters.iter().map(|f| f.name.as_str()).collect();
            return violation(
                at.index(i),
                format!(
                    "no [[bgp.filters]] is named {:?}; expected one of: {}",
                    name.as_str(),
                    if known.is_empty() {
                        "(none defined)".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            );
        }
    }
    Ok(())
}

fn check_filters(bgp: &BgpConfig) -> Result<(), Violation> {
    let at = KeyPath::of(&["bgp"]);
    let mut names = HashMap::new();
    for (i, f) in bgp.filters.iter().enumerate() {
        let here = at.key("filters").index(i);
        if let Some(first) = names.insert(f.name.as_str(), i) {
            return violation(
                here.key("name"),
                format!(
                    "filter name {} is already used by bgp.filters[{first}]",
                    f.name
                ),
            );
        }
        check_rules(&here.key("import"), &f.import)?;
        check_rules(&here.key("export"), &f.export)?;
    }
    check_filter_names(&at.key("mesh_filters"), &bgp.mesh_filters, bgp)?;
    let mut names = HashMap::new();
    for (i, c) in bgp.communities.iter().enumerate() {
        if let Some(first) = names.insert(c.name.as_str(), i) {
            return violation(
                at.key("communities").index(i).key("name"),
                format!(
                    "community name {} is already used by bgp.communities[{first}]",
                    c.name
                ),
            );
        }
    }
    for (i, adv) in bgp.prefix_advertisements.iter().enumerate() {
        let here = at.key("prefix_advertisements").index(i).key("communities");
        if let Some(k) = adv
            .communities
            .iter()
            .position(|c| bgp.community(c).is_none())
        {
            return violation(
                here.index(k),
                format!(
                    "expected a community like \"65000:100\" or \"65000:1:2\", a well-known name, \
                     or a name from [[bgp.communities]], not {:?}",
                    adv.communities[k]
                ),
            );
        }
    }
    Ok(())
}

fn check_bgp(c: &Config) -> Result<(), Violation> {
    check_filters(&c.bgp)?;
    let at = KeyPath::of(&["bgp"]);
    if c.bgp.cluster_id.is_some() && !c.bgp.route_reflector {
        return violation(
            at.key("cluster_id"),
            "cluster_id is only used with route_reflector = true",
        );
    }
    let mut addresses = HashMap::new();
    for (i, peer) in c.bgp.peers.iter().enumerate() {
        let here = at.key("peers").index(i);
        if peer.address.is_unspecified() || peer.address.is_multicast() {
            return violation(here.key("address"), "expected a unicast peer address");
        }
        if let Some(first) = addresses.insert(peer.address, i) {
            return violation(
                here.key("address"),
                format!("{} is already bgp.peers[{first}]", peer.address),
            );
        }
        if peer
            .local_address
            .is_some_and(|l| l.is_ipv4() != peer.address.is_ipv4())
        {
            return violation(
                here.key("local_address"),
                "expected an address of the same family as the peer's",
            );
        }
        if let Some(pw) = &peer.password {
            if pw.is_empty() || pw.len() > 80 {
                return violation(
                    here.key("password"),
                    "expected a TCP-MD5 password of 1 to 80 bytes",
                );
            }
        }
        check_filter_names(&here.key("filters"), &peer.filters, &c.bgp)?;
        check_rules(&here.key("import"), &peer.import)?;
        check_rules(&here.key("export"), &peer.export)?;
        if peer.export_learned && c.bgp.route_reflector {
            return violation(
                here.key("export_learned"),
                "export_learned is for hosts: a route reflector already sends what it reflects",
            );
        }
        if peer.route_reflector_client {
            if !c.bgp.route_reflector {
                return violation(
                    here.key("route_reflector_client"),
                    "a route reflector client needs bgp.route_reflector = true",
                );
            }
            if peer.asn != c.node.asn {
                return violation(
                    here.key("route_reflector_client"),
                    format!(
                        "route reflector clients are iBGP: the peer's AS {} differs from node.asn {}",
                        peer.asn, c.node.asn
                    ),
                );
            }
        }
    }
    Ok(())
}
