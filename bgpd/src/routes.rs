//! The routes we want in the kernel, computed from what we know (pure), the difference
//! between two such sets as updates for the kernel's reconcile task, and the attributes we
//! advertise our own prefixes with.

use std::collections::BTreeMap;
use std::net::IpAddr;

use bgpd_api::FibSource;
use bgpd_config::BgpConfig;
use bgpd_config::filter::CommunityValue;
use bgpd_kernel::{Ifindex, NextHop, NextHops, Prefix, Route, RouteKind, WantedUpdate};
use bgpd_wire::PathAttrs;

/// A wanted route and why.
pub type Wanted = BTreeMap<Prefix, (Route, FibSource)>;

/// What the wanted set is made of.
#[derive(Debug, Clone, Copy)]
pub struct RouteInputs<'a> {
    /// Our blocks: blackholed, so unassigned addresses never leak to a default route.
    pub blocks: &'a [Prefix],
    /// Local container addresses and the host-side veth they live behind.
    pub endpoints: &'a [(IpAddr, Ifindex)],
    /// Best paths from BGP: prefix → next hops (several: ECMP).
    pub learned: &'a BTreeMap<Prefix, Vec<IpAddr>>,
    /// Learned routes found in the kernel at startup, kept until BGP has them again.
    pub kept: &'a BTreeMap<Prefix, Route>,
}

/// The wanted set. Precedence for one prefix: a local endpoint, then our block, then a learned
/// route, then a kept one.
pub fn wanted(inputs: &RouteInputs<'_>) -> Wanted {
    let mut out = Wanted::new();
    for (prefix, route) in inputs.kept {
        out.insert(*prefix, (route.clone(), FibSource::Kept));
    }
    for (prefix, hops) in inputs.learned {
        let hops = NextHops::new(hops.iter().map(|h| NextHop::via(*h)));
        // A next hop of the other family than the prefix cannot be programmed; skip it.
        if let Ok(route) = hops.and_then(|h| Route::via(*prefix, h)) {
            out.insert(*prefix, (route, FibSource::Learned));
        } else {
            out.remove(prefix);
        }
    }
    for block in inputs.blocks {
        out.insert(*block, (Route::blackhole(*block), FibSource::Block));
    }
    for (address, ifindex) in inputs.endpoints {
        let route = Route::host(*address, *ifindex);
        out.insert(route.prefix(), (route, FibSource::Endpoint));
    }
    out
}

/// The updates that turn `old` into `new`.
pub fn diff(old: &Wanted, new: &Wanted) -> Vec<WantedUpdate> {
    let mut updates = Vec::new();
    for prefix in old.keys() {
        if !new.contains_key(prefix) {
            updates.push(WantedUpdate::Withdraw(*prefix));
        }
    }
    for (prefix, (route, _)) in new {
        if old.get(prefix).map(|(r, _)| r) != Some(route) {
            updates.push(WantedUpdate::Upsert(route.clone()));
        }
    }
    updates
}

/// The attributes an own prefix (a block, a borrowed address) is originated with: the
/// communities of the `[[bgp.prefix_advertisements]]` that cover it.
pub fn advertised(prefix: bgpd_wire::Prefix, bgp: &BgpConfig) -> PathAttrs {
    let mut attrs = PathAttrs::default();
    for c in bgp.advertised_communities(prefix) {
        match c {
            CommunityValue::Standard(c) => attrs.communities.push(c),
            CommunityValue::Large(c) => attrs.large_communities.push(c),
        }
    }
    attrs
}

/// Learned routes among the kernel's routes of ours: what graceful restart keeps.
pub fn keepable(installed: impl Iterator<Item = Route>) -> BTreeMap<Prefix, Route> {
    installed
        .filter(|r| matches!(r.kind(), RouteKind::Via(_)))
        .map(|r| (r.prefix(), r))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Prefix {
        let n: ipnetwork::IpNetwork = s.parse().unwrap();
        Prefix::new(n.ip(), n.prefix()).unwrap()
    }
    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn precedence_and_kinds() {
        let blocks = [p("10.244.0.0/26")];
        let eth = Ifindex::new(7).unwrap();
        let endpoints = [(ip("10.244.0.5"), eth)];
        let mut learned = BTreeMap::new();
        learned.insert(p("10.244.0.64/26"), vec![ip("10.0.0.2"), ip("10.0.0.3")]);
        learned.insert(p("10.244.0.0/26"), vec![ip("10.0.0.9")]); // someone else claims ours
        learned.insert(p("10.244.9.0/26"), vec![ip("fd00::1")]); // wrong family: skipped
        let mut kept = BTreeMap::new();
        let old = Route::via(
            p("10.244.0.128/26"),
            NextHops::new([NextHop::via(ip("10.0.0.4"))]).unwrap(),
        )
        .unwrap();
        kept.insert(old.prefix(), old.clone());
        let stale = Route::via(
            p("10.244.0.64/26"),
            NextHops::new([NextHop::via(ip("10.0.0.8"))]).unwrap(),
        )
        .unwrap();
        kept.insert(stale.prefix(), stale);
        let w = wanted(&RouteInputs {
            blocks: &blocks,
            endpoints: &endpoints,
            learned: &learned,
            kept: &kept,
        });
        let sources: Vec<(String, FibSource)> =
            w.iter().map(|(k, (_, s))| (k.to_string(), *s)).collect();
        assert_eq!(
            sources,
            vec![
                ("10.244.0.0/26".to_string(), FibSource::Block),
                ("10.244.0.5/32".to_string(), FibSource::Endpoint),
                ("10.244.0.64/26".to_string(), FibSource::Learned),
                ("10.244.0.128/26".to_string(), FibSource::Kept),
            ]
        );
        let ecmp = &w[&p("10.244.0.64/26")].0;
        assert!(matches!(ecmp.kind(), RouteKind::Via(h) if h.is_multipath()));
        assert_eq!(
            w[&p("10.244.0.0/26")].0,
            Route::blackhole(p("10.244.0.0/26"))
        );
    }

    #[test]
    fn own_prefixes_carry_the_communities_of_their_advertisements() {
        let text = concat!(
            "[node]\nasn = 64512\n",
            "[[bgp.prefix_advertisements]]\ncidr = \"0.0.0.0/0\"\ncommunities = [\"64512:1\"]\n",
            "[[bgp.prefix_advertisements]]\ncidr = \"10.244.0.0/16\"\ncommunities = [\"64512:2\", \"64512:1\", \"64512:3:4\"]\n",
        );
        let bgp = bgpd_config::Config::parse(text, std::path::Path::new("t.toml"))
            .unwrap()
            .bgp;
        let block = advertised("10.244.0.64/26".parse().unwrap(), &bgp);
        let tags: Vec<String> = block.communities.iter().map(|c| c.to_string()).collect();
        assert_eq!(tags, ["64512:1", "64512:2"], "in order, once each");
        assert_eq!(block.large_communities.len(), 1);
        let other = advertised("192.0.2.0/26".parse().unwrap(), &bgp);
        assert_eq!(other.communities.len(), 1);
        assert!(advertised("fd00::/122".parse().unwrap(), &bgp) == PathAttrs::default());
    }

    #[test]
    fn diff_is_minimal() {
        let a = p("10.244.0.0/26");
        let b = p("10.244.0.64/26");
        let c = p("10.244.0.128/26");
        let mut old = Wanted::new();
        old.insert(a, (Route::blackhole(a), FibSource::Block));
        old.insert(b, (Route::blackhole(b), FibSource::Block));
        let mut new = old.clone();
        new.remove(&a);
        new.insert(c, (Route::blackhole(c), FibSource::Block));
        // Same route, other reason: nothing to write.
        new.insert(b, (Route::blackhole(b), FibSource::Kept));
        assert_eq!(
            diff(&old, &new),
            vec![
                WantedUpdate::Withdraw(a),
                WantedUpdate::Upsert(Route::blackhole(c))
            ]
        );
        assert!(diff(&new, &new).is_empty());
    }
}
