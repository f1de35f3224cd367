//! Loading real files: the shipped examples, defaults, and errors that point into the file.

use std::path::{Path, PathBuf};

use bgpd_config::filter::CommunityValue;
use bgpd_config::{AddressDetection, Config, ConfigError, Labels, LogFormat, RouteProto};
use bgpd_rib::{Outcome, Policy};
use bgpd_wire::{Community, LargeCommunity, PathAttrs, Prefix};

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
}

#[test]
fn every_shipped_example_loads() {
    let mesh = Config::load(&example("mesh-host.toml")).unwrap();
    assert_eq!(mesh.node.asn.get(), 64512);
    assert!(mesh.bgp.mesh);
    assert_eq!(mesh.ipam.pools[0].block_size(), 26);
    assert_eq!(
        mesh.ipam.pools[1].block_size(),
        122,
        "IPv6 default block size"
    );
    assert!(mesh.ipam.pools[0].node_selector.is_none());
    assert_eq!(mesh.ipam.dead_host_delay.get(), 300, "IPAM's default");
    let only_v6 = mesh.ipam.pools[1].node_selector.as_ref().unwrap();
    let labels = |pairs: &[(&str, &str)]| -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    assert!(only_v6.matches(&labels(&[("ipv6", ""), ("zone", "a")])));
    assert!(!only_v6.matches(&labels(&[("zone", "a")])));
    assert_eq!(only_v6.to_string(), "has(ipv6) && zone in {'a', 'b'}");
    assert_eq!(mesh.log.format, LogFormat::Json);
    match &mesh.node.address {
        AddressDetection::Interface(p) => {
            assert!(p.matches("eth0") && p.matches("enp3s0") && !p.matches("docker0"))
        }
        other => panic!("unexpected {other:?}"),
    }

    let rr = Config::load(&example("reflector.toml")).unwrap();
    assert!(rr.bgp.route_reflector && !rr.bgp.mesh);
    assert_eq!(rr.bgp.cluster_id.unwrap().get().to_string(), "10.0.0.2");

    let tor = Config::load(&example("tor-host.toml")).unwrap();
    let peer = &tor.bgp.peers[0];
    assert_eq!(
        (peer.asn.get(), peer.ttl_security, peer.port.get()),
        (65000, true, 179)
    );
    assert_eq!(tor.kernel.proto.get(), RouteProto::DEFAULT);
    assert_eq!(tor.api.socket, PathBuf::from("/run/bgpd/bgpd.sock"));
}

#[test]
fn the_tor_example_filters_and_tags_as_it_says() {
    let tor = Config::load(&example("tor-host.toml")).unwrap();
    let p = |s: &str| -> Prefix { s.parse().unwrap() };
    let policies = tor.bgp.peer_policies(&tor.bgp.peers[0]);
    let plain = PathAttrs::default();
    assert_eq!(
        policies.export.evaluate(p("10.244.3.7/32"), &plain),
        Outcome::Reject,
        "borrowed /32s stay inside"
    );
    let Outcome::Modified(block) = policies.export.evaluate(p("10.244.3.0/26"), &plain) else {
        panic!("a block goes out with MED 10")
    };
    assert_eq!(block.med, Some(10));
    let marked = PathAttrs {
        communities: [Community::new(65000, 666)].into_iter().collect(),
        ..PathAttrs::default()
    };
    assert_eq!(
        policies.import.evaluate(p("10.244.9.0/26"), &marked),
        Outcome::Reject
    );
    assert_eq!(
        policies.import.evaluate(p("10.244.9.0/26"), &plain),
        Outcome::Accept
    );
    assert_eq!(
        tor.bgp.advertised_communities(p("10.244.3.0/26")),
        vec![
            CommunityValue::Standard(Community::new(65000, 107)),
            CommunityValue::Large(LargeCommunity {
                global: 65000,
                local1: 1,
                local2: 107
            }),
        ]
    );
    assert!(tor.bgp.advertised_communities(p("fd00::/122")).is_empty());
    assert_eq!(
        tor.bgp.mesh_policies().export,
        Policy::accept_all(),
        "no mesh_filters: the mesh is not filtered"
    );
}

#[test]
fn a_missing_file_names_the_path() {
    let err = Config::load(Path::new("/nonexistent/bgpd.toml")).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }));
    assert!(
        err.to_string()
            .starts_with("/nonexistent/bgpd.toml: cannot read"),
        "{err}"
    );
}
