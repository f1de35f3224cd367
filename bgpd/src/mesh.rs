//! Which BGP peers this node should have: the node-to-node mesh or the reflectors found in
//! etcd, plus the peers from the configuration. A pure function of its inputs, so both ends
//! of every automatic session reach the same answer from the same registry.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use bgpd_api::{PeerKind, Role};
use bgpd_config::BgpConfig;
use bgpd_rib::{Policy, PrefixRange};
use bgpd_speaker::PeerSettings;
use bgpd_wire::{Asn, Prefix};

use crate::node::{NodeRecord, Registry};

/// A peer we want, with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerPlan {
    /// Node name or configured name.
    pub name: String,
    /// Why we peer.
    pub kind: PeerKind,
    /// The session's settings.
    pub settings: PeerSettings,
}

/// Everything the peer set depends on.
#[derive(Debug, Clone, Copy)]
pub struct MeshInputs<'a> {
    /// Our node name.
    pub me: &'a str,
    /// Our own record (role, mesh).
    pub my_record: &'a NodeRecord,
    /// Every node's record, ours included or not.
    pub registry: &'a Registry,
    /// `[bgp]`.
    pub bgp: &'a BgpConfig,
    /// Pools' CIDRs: what we accept from peers (everything when empty).
    pub pools: &'a [Prefix],
    /// What we originate: our blocks and borrowed host routes (exported to configured peers).
    pub own: &'a [Prefix],
}

/// Whether two nodes peer automatically. Symmetric, so both ends agree: a reflector peers with
/// every node that peers automatically; hosts peer with each other only while no reflector is
/// registered.
fn automatic(a: &NodeRecord, b: &NodeRecord, reflectors_exist: bool) -> bool {
    let auto = |n: &NodeRecord| n.mesh || n.role == Role::Reflector;
    match (a.role, b.role) {
        (Role::Host, Role::Host) => a.mesh && b.mesh && !reflectors_exist,
        _ => auto(a) && auto(b),
    }
}

/// The peers this node wants, by address. A configured peer wins over an automatic one at the
/// same address.
pub fn desired_peers(inputs: &MeshInputs<'_>) -> BTreeMap<IpAddr, PeerPlan> {
    let bgp = inputs.bgp;
    // The guards: a host takes only prefixes inside the pools (everything when there are none
    // yet) and sends configured peers only what it originates. A filter narrows them, never
    // widens them.
    let pools: Vec<PrefixRange> = inputs
        .pools
        .iter()
        .map(|p| PrefixRange::orlonger(*p))
        .collect();
    let import = |policy: &Policy| {
        if pools.is_empty() {
            policy.clone()
        } else {
            policy.within(&pools)
        }
    };
    let own: Vec<PrefixRange> = inputs.own.iter().map(|p| PrefixRange::exact(*p)).collect();
    let mesh = bgp.mesh_policies();
    let mut peers = BTreeMap::new();
    let reflectors_exist = inputs.registry.values().any(|n| n.role == Role::Reflector);
    let mine = inputs.my_record;
    for (name, node) in inputs.registry {
        if name == inputs.me
            || node.address == mine.address
            || !automatic(mine, node, reflectors_exist)
        {
            continue;
        }
        let kind = match (mine.role, node.role) {
            (Role::Reflector, Role::Host) => PeerKind::ReflectorClient,
            (Role::Host, Role::Reflector) => PeerKind::Reflector,
            _ => PeerKind::Mesh,
        };
        let mut settings = PeerSettings::new(node.address, Asn(node.asn));
        settings.port = node.port;
        settings.hold_time = bgp.hold_time.get();
        settings.connect_retry = u64::from(bgp.connect_retry);
        settings.send_hold_time = bgp.send_hold_time.map(|t| t.get());
        settings.rr_client = kind == PeerKind::ReflectorClient;
        // Host to host, only the higher address connects (as Calico's mesh): when both ends
        // connect at once, one can resolve the collision after the other already took its
        // connection as Established, which resets a fresh session, or ends a graceful restart
        // the other end was still helping with.
        settings.passive =
            mine.role == Role::Host && node.role == Role::Host && node.address > mine.address;
        settings.next_hop_v6 = mine.address_v6;
        settings.import = import(&mesh.import);
        settings.export = mesh.export.clone();
        peers.insert(
            node.address,
            PeerPlan {
                name: name.clone(),
                kind,
                settings,
            },
        );
    }
    for p in &bgp.peers {
        let policies = bgp.peer_policies(p);
        let mut settings = PeerSettings::new(p.address, Asn(p.asn.get()));
        settings.port = p.port.get();
        settings.local_address = p.local_address;
        settings.passive = p.passive;
        settings.hold_time = p.hold_time.unwrap_or(bgp.hold_time).get();
        settings.send_hold_time = p.send_hold_time.or(bgp.send_hold_time).map(|t| t.get());
        settings.connect_retry = u64::from(bgp.connect_retry);
        settings.password = p.password.clone();
        if p.ttl_security {
            settings.ttl_security = Some(p.multihop.map_or(1, |h| h.get()));
        } else {
            settings.multihop = p.multihop.map(|h| h.get());
        }
        settings.rr_client = p.route_reflector_client;
        settings.next_hop_self = p.next_hop_self;
        settings.max_prefix = p.max_prefixes;
        if let Some(restart) = p.max_prefixes_restart {
            settings.max_prefix_restart = u64::from(restart.get());
        }
        settings.next_hop_v6 = mine.address_v6;
        settings.import = import(&policies.import);
        // A host tells its configured peers (a ToR) only about its own addresses, or with
        // export_learned also about the pool routes it learned; a reflector passes on what it
        // reflects.
        settings.export = match mine.role {
            Role::Host if p.export_learned => {
                let guard: Vec<PrefixRange> = own.iter().chain(&pools).copied().collect();
                policies.export.within(&guard)
            }
            Role::Host => policies.export.within(&own),
            Role::Reflector => policies.export,
        };
        peers.insert(
            p.address,
            PeerPlan {
                name: p.name.clone().unwrap_or_else(|| p.address.to_string()),
                kind: PeerKind::Configured,
                settings,
            },
        );
    }
    peers
}

/// Our cluster id as a reflector: configured, or the router id.
pub fn cluster_id(bgp: &BgpConfig, router_id: Ipv4Addr) -> Option<Ipv4Addr> {
    bgp.route_reflector
        .then(|| bgp.cluster_id.map_or(router_id, |c| c.get()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(addr: &str, role: Role, mesh: bool) -> NodeRecord {
        NodeRecord {
            version: crate::node::RECORD_VERSION,
            labels: BTreeMap::new(),
            address: addr.parse().unwrap(),
            address_v6: None,
            asn: 64512,
            router_id: "10.0.0.1".parse().unwrap(),
            role,
            mesh,
            port: 179,
        }
    }

    fn bgp(toml_text: &str) -> BgpConfig {
        let text = format!("[node]\nasn = 64512\n[bgp]\n{toml_text}");
        bgpd_config::Config::parse(&text, std::path::Path::new("t.toml"))
            .unwrap()
            .bgp
    }

    /// The peers `me` wants, with no pools and nothing of its own.
    fn plans(me: &str, registry: &Registry, bgp: &BgpConfig) -> BTreeMap<IpAddr, PeerPlan> {
        desired_peers(&MeshInputs {
            me,
            my_record: &registry[me],
            registry,
            bgp,
            pools: &[],
            own: &[],
        })
    }

    fn peers_of(me: &str, registry: &Registry, bgp: &BgpConfig) -> Vec<(String, PeerKind, bool)> {
        plans(me, registry, bgp)
            .values()
            .map(|p| (p.name.clone(), p.kind, p.settings.rr_client))
            .collect()
    }

    #[test]
    fn full_mesh_without_reflectors() {
        let mut reg = Registry::new();
        reg.insert("a".into(), node("10.0.0.1", Role::Host, true));
        reg.insert("b".into(), node("10.0.0.2", Role::Host, true));
        reg.insert("c".into(), node("10.0.0.3", Role::Host, true));
        reg.insert("d".into(), node("10.0.0.4", Role::Host, false));
        let b = bgp("mesh = true");
        assert_eq!(
            peers_of("a", &reg, &b),
            vec![
                ("b".into(), PeerKind::Mesh, false),
                ("c".into(), PeerKind::Mesh, false)
            ]
        );
        assert_eq!(peers_of("d", &reg, &b), vec![]);
    }

    #[test]
    fn between_hosts_only_the_higher_address_connects() {
        let mut reg = Registry::new();
        reg.insert("a".into(), node("10.0.0.1", Role::Host, true));
        reg.insert("b".into(), node("10.0.0.2", Role::Host, true));
        reg.insert("c".into(), node("10.0.0.3", Role::Host, true));
        let b = bgp("mesh = true");
        let passive = |me: &str, reg: &Registry| -> Vec<(String, bool)> {
            plans(me, reg, &b)
                .values()
                .map(|p| (p.name.clone(), p.settings.passive))
                .collect()
        };
        assert_eq!(passive("a", &reg), [("b".into(), true), ("c".into(), true)]);
        assert_eq!(
            passive("b", &reg),
            [("a".into(), false), ("c".into(), true)]
        );
        assert_eq!(
            passive("c", &reg),
            [("a".into(), false), ("b".into(), false)]
        );
        // Reflector sessions stay active on both ends (a reflector may be another speaker).
        reg.insert("rr".into(), node("10.0.0.9", Role::Reflector, false));
        assert_eq!(passive("a", &reg), [("rr".into(), false)]);
        assert_eq!(
            passive("rr", &reg),
            [
                ("a".into(), false),
                ("b".into(), false),
                ("c".into(), false)
            ]
        );
    }

    #[test]
    fn reflectors_replace_the_mesh() {
        let mut reg = Registry::new();
        reg.insert("a".into(), node("10.0.0.1", Role::Host, true));
        reg.insert("b".into(), node("10.0.0.2", Role::Host, true));
        reg.insert("rr1".into(), node("10.0.0.9", Role::Reflector, false));
        reg.insert("rr2".into(), node("10.0.0.10", Role::Reflector, false));
        reg.insert("x".into(), node("10.0.0.5", Role::Host, false));
        let b = bgp("mesh = true");
        assert_eq!(
            peers_of("a", &reg, &b),
            vec![
                ("rr1".into(), PeerKind::Reflector, false),
                ("rr2".into(), PeerKind::Reflector, false)
            ]
        );
        assert_eq!(
            peers_of("rr1", &reg, &b),
            vec![
                ("a".into(), PeerKind::ReflectorClient, true),
                ("b".into(), PeerKind::ReflectorClient, true),
                ("rr2".into(), PeerKind::Mesh, false),
            ]
        );
    }

    #[test]
    fn sessions_are_symmetric() {
        let roles = [
            (Role::Host, true),
            (Role::Host, false),
            (Role::Reflector, false),
            (Role::Reflector, true),
        ];
        for with_rr in [false, true] {
            for (ra, ma) in roles {
                for (rb, mb) in roles {
                    let (a, b) = (node("10.0.0.1", ra, ma), node("10.0.0.2", rb, mb));
                    assert_eq!(automatic(&a, &b, with_rr), automatic(&b, &a, with_rr));
                }
            }
        }
    }

    #[test]
    fn configured_peers_win_and_carry_their_options() {
        let mut reg = Registry::new();
        reg.insert("a".into(), node("10.0.0.1", Role::Host, true));
        reg.insert("b".into(), node("10.0.0.2", Role::Host, true));
        let b = bgp(
            "mesh = true\n[[bgp.peers]]\nname = \"tor\"\naddress = \"10.0.0.2\"\nasn = 65000\npassword = \"pw\"\nttl_security = true\n",
        );
        let own: Vec<Prefix> = vec!["10.244.0.0/26".parse().unwrap()];
        let inputs = MeshInputs {
            me: "a",
            my_record: &reg["a"],
            registry: &reg,
            bgp: &b,
            pools: &[],
            own: &own,
        };
        let peers = desired_peers(&inputs);
        let tor = &peers[&"10.0.0.2".parse::<IpAddr>().unwrap()];
        assert_eq!((tor.name.as_str(), tor.kind), ("tor", PeerKind::Configured));
        assert_eq!(tor.settings.remote_as, Asn(65000));
        assert_eq!(tor.settings.ttl_security, Some(1));
        assert_eq!(tor.settings.password.as_deref(), Some("pw"));
        assert_eq!(tor.settings.max_prefix_restart, 60, "the speaker's default");
        assert_eq!(
            tor.settings.export,
            Policy::only([PrefixRange::exact(own[0])])
        );
    }

    #[test]
    fn max_prefixes_and_its_restart_interval_reach_the_speaker() {
        let mut reg = Registry::new();
        reg.insert("a".into(), node("10.0.0.1", Role::Host, true));
        let b = bgp(
            "[[bgp.peers]]\naddress = \"10.0.0.9\"\nasn = 65000\nmax_prefixes = 100\nmax_prefixes_restart = 300\n",
        );
        let peers = plans("a", &reg, &b);
        let tor = &peers[&"10.0.0.9".parse::<IpAddr>().unwrap()].settings;
        assert_eq!((tor.max_prefix, tor.max_prefix_restart), (Some(100), 300));
    }

    #[test]
    fn send_hold_time_comes_from_the_peer_or_from_bgp() {
        let mut reg = Registry::new();
        reg.insert("a".into(), node("10.0.0.1", Role::Host, true));
        reg.insert("b".into(), node("10.0.0.2", Role::Host, true));
        let send_hold = |b: &BgpConfig| {
            plans("a", &reg, b)
                .values()
                .map(|p| (p.name.clone(), p.settings.send_hold_time))
                .collect::<Vec<_>>()
        };
        let peers = concat!(
            "[[bgp.peers]]\nname = \"tor1\"\naddress = \"10.0.0.8\"\nasn = 65000\nsend_hold_time = 30\n",
            "[[bgp.peers]]\nname = \"tor2\"\naddress = \"10.0.0.9\"\nasn = 65000\n",
        );
        assert_eq!(
            send_hold(&bgp(&format!("send_hold_time = 600\n{peers}"))),
            vec![
                ("b".into(), Some(600)),
                ("tor1".into(), Some(30)),
                ("tor2".into(), Some(600))
            ]
        );
        // Absent everywhere: the speaker's default, max(480 s, 2 × hold time).
        assert_eq!(
            send_hold(&bgp(peers)),
            vec![
                ("b".into(), None),
                ("tor1".into(), Some(30)),
                ("tor2".into(), None)
            ]
        );
    }

    #[test]
    fn filters_narrow_the_host_guards_and_never_widen_them() {
        use bgpd_rib::Outcome;
        use bgpd_wire::PathAttrs;

        let mut reg = Registry::new();
        reg.insert("a".into(), node("10.0.0.1", Role::Host, true));
        reg.insert("b".into(), node("10.0.0.2", Role::Host, true));
        let b = bgp(concat!(
            "mesh_filters = [\"mesh\"]\n",
            "[[bgp.peers]]\nname = \"tor\"\naddress = \"10.0.0.9\"\nasn = 65000\n",
            "[[bgp.peers.export]]\naction = \"reject\"\ncidr = \"10.244.0.0/26\"\nmatch = \"equal\"\n",
            "[[bgp.peers.export]]\naction = \"accept\"\ncidr = \"0.0.0.0/0\"\n",
            "[[bgp.peers.import]]\naction = \"reject\"\ncidr = \"10.244.5.0/24\"\nmatch = \"equal\"\n",
            "[[bgp.filters]]\nname = \"mesh\"\n",
            "[[bgp.filters.import]]\naction = \"reject\"\ncidr = \"10.244.6.0/24\"\n",
        ));
        let pools: Vec<Prefix> = vec!["10.244.0.0/16".parse().unwrap()];
        let own: Vec<Prefix> = vec![
            "10.244.0.0/26".parse().unwrap(),
            "10.244.0.64/26".parse().unwrap(),
        ];
        let plan = |own: &[Prefix]| {
            desired_peers(&MeshInputs {
                me: "a",
                my_record: &reg["a"],
                registry: &reg,
                bgp: &b,
                pools: &pools,
                own,
            })
        };
        let peers = plan(&own);
        let verdict = |policy: &Policy, prefix: &str| {
            policy.evaluate(prefix.parse().unwrap(), &PathAttrs::default()) != Outcome::Reject
        };
        let tor = &peers[&"10.0.0.9".parse::<IpAddr>().unwrap()].settings;
        assert!(
            !verdict(&tor.export, "10.244.0.0/26"),
            "the filter keeps it"
        );
        assert!(verdict(&tor.export, "10.244.0.64/26"), "own block passes");
        assert!(
            !verdict(&tor.export, "10.244.1.0/26"),
            "a learned block stays inside though the filter accepts 0.0.0.0/0 in"
        );
        assert!(
            !verdict(&tor.import, "10.244.5.0/24"),
            "the filter refuses it"
        );
        assert!(verdict(&tor.import, "10.244.5.0/25"), "equal is exact");
        assert!(!verdict(&tor.import, "192.0.2.0/24"), "outside the pools");
        let mesh = &peers[&"10.0.0.2".parse::<IpAddr>().unwrap()].settings;
        assert!(
            !verdict(&mesh.import, "10.244.6.0/26"),
            "mesh_filters apply"
        );
        assert!(
            verdict(&mesh.import, "10.244.5.0/24"),
            "the ToR's rules do not"
        );
        assert!(
            verdict(&mesh.export, "10.244.1.0/26"),
            "the mesh export is not guarded"
        );
        let mut learning = b.clone();
        learning.peers[0].export_learned = true;
        let peers = desired_peers(&MeshInputs {
            me: "a",
            my_record: &reg["a"],
            registry: &reg,
            bgp: &learning,
            pools: &pools,
            own: &own,
        });
        let tor = &peers[&"10.0.0.9".parse::<IpAddr>().unwrap()].settings;
        assert!(
            verdict(&tor.export, "10.244.1.0/26"),
            "export_learned sends it"
        );
        assert!(
            !verdict(&tor.export, "10.244.0.0/26"),
            "the filter still keeps it"
        );
        assert!(!verdict(&tor.export, "192.0.2.0/24"), "outside the pools");
        let nothing = plan(&[]);
        let tor = &nothing[&"10.0.0.9".parse::<IpAddr>().unwrap()].settings;
        assert!(
            !verdict(&tor.export, "10.244.0.0/26"),
            "a host with nothing of its own sends nothing"
        );
    }
}
