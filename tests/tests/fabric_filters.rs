//! BGP filters and advertised communities against a real BIRD 2 as the top-of-rack switch
//! (eBGP): an import filter refuses one of BIRD's prefixes and takes another, communities set
//! on our block arrive at BIRD, an export filter keeps our block from BIRD, and every change
//! by SIGHUP takes effect without resetting the session; a block learned from another host
//! reaches BIRD only once the peer says `export_learned`; over an IPv6 session a `not-in`
//! import rule and a `prefix_length` export rule do what they say.

use std::time::Duration;

use ipnetwork::IpNetwork;
use serde_json::Value;
use testkit::fabric::{FABRIC_ASN, Fabric, Role};
use testkit::peers::bird::Bird;
use testkit::peers::{BgpPeer, Community, LargeCommunity, Neighbor, PeerConfig, Route};
use testkit::process::wait_until;

const CONVERGE: Duration = Duration::from_secs(60);
const TOR_ASN: u32 = 65100;
/// BIRD's address on the underlay (free: hosts are .11 …, reflectors .201 …).
const TOR_ADDRESS: &str = "10.99.0.5";
/// Two prefixes inside the pool BIRD announces, and one outside it.
const FIRST: &str = "10.244.200.0/24";
const SECOND: &str = "10.244.201.0/24";
const OUTSIDE: &str = "192.0.2.0/24";

/// Host 0's configuration: the fabric's, plus the ToR at `tor` with `rules` (TOML lines after
/// the peer) and `advertise` (`[[bgp.prefix_advertisements]]` and such).
fn write_config(fabric: &Fabric, tor: &str, rules: &str, advertise: &str) {
    let host = &fabric.hosts[0];
    let text = format!(
        "{}\n[[bgp.peers]]\nname = \"tor\"\naddress = \"{tor}\"\nasn = {TOR_ASN}\n{rules}\n{advertise}\n",
        host.config.render()
    );
    std::fs::write(&host.config_path, text).expect("config written");
}

/// Host 0's session with `address` as `routectl peers -o json` shows it.
fn session(fabric: &Fabric, address: &str) -> Value {
    let peers = fabric.routectl_json(0, &["peers"]).expect("peers json");
    peers
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["address"] == address).cloned())
        .unwrap_or(Value::Null)
}

/// The ToR session.
fn tor_session(fabric: &Fabric) -> Value {
    session(fabric, TOR_ADDRESS)
}

fn number(v: &Value, key: &str) -> u64 {
    key.split('.')
        .fold(v, |v, k| &v[k])
        .as_u64()
        .unwrap_or_default()
}

fn net(s: &str) -> IpNetwork {
    s.parse().expect("prefix")
}

/// Waits until host 0's kernel has a route for `prefix` via BIRD at `tor` (`present`) or none.
fn wait_kernel(fabric: &Fabric, tor: &str, prefix: &str, present: bool) {
    let ok = wait_until(CONVERGE, || {
        fabric
            .kernel_route(0, prefix)
            .contains(&format!("via {tor}"))
            == present
    });
    assert!(
        ok,
        "{prefix} {} in host 0's kernel: {:?}\n{}",
        if present { "never appeared" } else { "stayed" },
        fabric.kernel_route(0, prefix),
        fabric.log_tail(0)
    );
}

/// Waits until bgpd counts `received` prefixes from the ToR at `tor` and accepts `accepted`.
fn wait_counts(fabric: &Fabric, tor: &str, received: u64, accepted: u64) {
    let ok = wait_until(CONVERGE, || {
        let s = session(fabric, tor);
        number(&s, "prefixes_received") == received && number(&s, "prefixes_accepted") == accepted
    });
    assert!(
        ok,
        "expected {received} received / {accepted} accepted: {}",
        session(fabric, tor)
    );
}

#[test]
fn filters_and_communities_with_bird_as_tor() {
    let mut fabric = Fabric::new().expect("fabric");
    let config = fabric.next_host_config(Role::Host);
    let host = config.address;
    fabric.add_host_stopped(config).expect("host");
    let tor_address = TOR_ADDRESS.parse().expect("address");
    let tor_ns = fabric
        .attach_namespace("tor", tor_address)
        .expect("namespace");
    let bird = Bird::start(
        tor_ns,
        PeerConfig::new(TOR_ASN, tor_address)
            .neighbor(Neighbor::new(host.into(), FABRIC_ASN).hold_time(9))
            .route(Route::parse(FIRST).expect("route"))
            .route(Route::parse(SECOND).expect("route"))
            .route(Route::parse(OUTSIDE).expect("route")),
    )
    .expect("bird");

    // 1. Import: the second prefix is refused by the filter, the one outside the pool by the
    //    guard (the filter's default would accept it). Export: MED and communities.
    let import_refuses = |prefix: &str| {
        format!(
            "[[bgp.peers.import]]\naction = \"reject\"\ncidr = \"{prefix}\"\nmatch = \"equal\"\n"
        )
    };
    let export_med =
        "[[bgp.peers.export]]\naction = \"accept\"\ncidr = \"10.244.0.0/16\"\nmed = 42\n";
    let tags = |standard: &str| {
        format!(
            "[[bgp.communities]]\nname = \"rack\"\nvalue = \"64512:7:8\"\n\
             [[bgp.prefix_advertisements]]\ncidr = \"10.244.0.0/16\"\ncommunities = [\"{standard}\", \"rack\"]\n"
        )
    };
    write_config(
        &fabric,
        TOR_ADDRESS,
        &format!(
            "{}[[bgp.peers.import]]\naction = \"accept\"\ncidr = \"{FIRST}\"\nmatch = \"equal\"\nlocal_pref = 300\n{export_med}",
            import_refuses(SECOND)
        ),
        &tags("64512:100"),
    );
    fabric.start(0).expect("bgpd starts");
    bird.wait_established(host.into(), CONVERGE)
        .expect("BIRD sees the session");
    wait_kernel(&fabric, TOR_ADDRESS, FIRST, true);
    wait_counts(&fabric, TOR_ADDRESS, 3, 1);
    assert_eq!(fabric.kernel_route(0, SECOND), "", "the filter refused it");
    assert_eq!(fabric.kernel_route(0, OUTSIDE), "", "the guard refused it");
    let routes = fabric.routectl_json(0, &["routes"]).expect("routes json");
    let first = routes["rib"]
        .as_array()
        .and_then(|rib| {
            rib.iter()
                .find(|r| r["prefix"] == FIRST && r["from"] == TOR_ADDRESS)
        })
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(
        first["local_pref"], 300,
        "the import rule sets LOCAL_PREF: {first}"
    );

    let block = own_block(&fabric, 0, false);
    let seen = bird
        .wait_route(net(&block), CONVERGE)
        .expect("BIRD learns our block");
    assert!(
        seen.communities.contains(&Community::new(64512, 100)),
        "{seen:?}"
    );
    assert!(
        seen.large_communities
            .contains(&LargeCommunity::new(64512, 7, 8)),
        "{seen:?}"
    );
    assert_eq!(seen.med, Some(42), "{seen:?}");
    let birdc = bird
        .birdc(&["show", "route", "all", &block])
        .expect("birdc");
    assert!(
        birdc.contains("(64512,100)") && birdc.contains("(64512, 7, 8)"),
        "birdc show route all: {birdc}"
    );

    // A session that just came up may still reset once (a connection collision): the
    // baseline waits until it has been up a while.
    fabric
        .wait_sessions_settled(0, CONVERGE)
        .expect("host 0's sessions settle");
    let before = tor_session(&fabric);
    let established = number(&before, "established_count");
    let refreshes = number(&before, "sent.route_refresh");

    // 2. SIGHUP: the import filter now refuses the first prefix and takes the second (BIRD is
    //    asked again with ROUTE-REFRESH); the export filter keeps our block from BIRD.
    let export_keeps = format!(
        "[[bgp.peers.export]]\naction = \"reject\"\ncidr = \"{block}\"\nmatch = \"equal\"\n"
    );
    write_config(
        &fabric,
        TOR_ADDRESS,
        &format!("{}{export_keeps}{export_med}", import_refuses(FIRST)),
        &tags("64512:100"),
    );
    fabric.signal(0, libc::SIGHUP).expect("SIGHUP");
    wait_kernel(&fabric, TOR_ADDRESS, SECOND, true);
    wait_kernel(&fabric, TOR_ADDRESS, FIRST, false);
    bird.wait_route_gone(net(&block), CONVERGE)
        .expect("the export filter withdraws our block");
    let after = tor_session(&fabric);
    assert!(
        number(&after, "sent.route_refresh") > refreshes,
        "an import change asks with ROUTE-REFRESH: {after}"
    );

    // 3. SIGHUP: the block goes out again, with another community.
    write_config(
        &fabric,
        TOR_ADDRESS,
        &format!("{}{export_med}", import_refuses(FIRST)),
        &tags("64512:300"),
    );
    fabric.signal(0, libc::SIGHUP).expect("SIGHUP");
    let retagged = wait_until(CONVERGE, || {
        bird.paths(net(&block)).is_ok_and(|paths| {
            paths.iter().any(|r| {
                r.from.is_some()
                    && r.communities.contains(&Community::new(64512, 300))
                    && !r.communities.contains(&Community::new(64512, 100))
            })
        })
    });
    assert!(
        retagged,
        "BIRD has {block} with 64512:300 only: {:?}",
        bird.paths(net(&block))
    );

    let last = tor_session(&fabric);
    assert_eq!(
        number(&last, "established_count"),
        established,
        "a filter change reset the session: {last}"
    );
    assert!(
        number(&last, "uptime_secs") >= number(&before, "uptime_secs"),
        "uptime went back: {before} → {last}"
    );
    assert!(bird.is_established(host.into()).expect("BIRD state"));
}

/// Host `i`'s block of the family (IPv6 when `v6`), once it has one.
fn own_block(fabric: &Fabric, i: usize, v6: bool) -> String {
    let mut block = None;
    let found = wait_until(CONVERGE, || {
        block = fabric
            .blocks(i)
            .ok()
            .and_then(|b| b.into_iter().find(|b| b.contains(':') == v6));
        block.is_some()
    });
    assert!(
        found,
        "host {i} claimed no block (IPv6: {v6}): {}",
        fabric.log_tail(i)
    );
    block.unwrap_or_default()
}

#[test]
fn learned_routes_reach_the_tor_only_when_the_config_says_so() {
    let mut fabric = Fabric::new().expect("fabric");
    let config = fabric.next_host_config(Role::Host);
    let host = config.address;
    fabric.add_host_stopped(config).expect("host 0");
    write_config(&fabric, TOR_ADDRESS, "", "");
    fabric.start(0).expect("bgpd 0 starts");
    fabric.add_host(Role::Host).expect("host 1");
    let (own, learned) = (own_block(&fabric, 0, false), own_block(&fabric, 1, false));
    assert!(
        wait_until(CONVERGE, || fabric.routes_via(0, &learned, 1)),
        "host 0 never learned {learned} from host 1: {}",
        fabric.kernel_route(0, &learned)
    );

    // The ToR comes up after host 0 has learned host 1's block, so its first table would
    // carry that block if the guard let it out.
    let tor_address = TOR_ADDRESS.parse().expect("address");
    let tor_ns = fabric
        .attach_namespace("tor", tor_address)
        .expect("namespace");
    let bird = Bird::start(
        tor_ns,
        PeerConfig::new(TOR_ASN, tor_address)
            .neighbor(Neighbor::new(host.into(), FABRIC_ASN).hold_time(9)),
    )
    .expect("bird");
    bird.wait_route(net(&own), CONVERGE)
        .expect("BIRD learns host 0's own block");
    assert_eq!(
        number(&tor_session(&fabric), "prefixes_advertised"),
        1,
        "only the own block goes out: {}",
        tor_session(&fabric)
    );
    let leaked: Vec<_> = bird
        .paths(net(&learned))
        .expect("BIRD routes")
        .into_iter()
        .filter(|r| r.from.is_some())
        .collect();
    assert!(
        leaked.is_empty(),
        "a learned block went to the ToR: {leaked:?}"
    );
    fabric
        .wait_sessions_settled(0, CONVERGE)
        .expect("host 0's sessions settle");
    let before = tor_session(&fabric);
    let mesh_peer = fabric.hosts[1].config.address.to_string();
    let mesh_before = session(&fabric, &mesh_peer);

    write_config(&fabric, TOR_ADDRESS, "export_learned = true\n", "");
    fabric.signal(0, libc::SIGHUP).expect("SIGHUP");
    let seen = bird
        .wait_route(net(&learned), CONVERGE)
        .expect("with export_learned BIRD learns host 1's block from host 0");
    assert_eq!(seen.as_path, vec![FABRIC_ASN], "{seen:?}");
    let after = tor_session(&fabric);
    assert_eq!(
        number(&after, "established_count"),
        number(&before, "established_count"),
        "the change reset the session: {after}"
    );
    let mesh_after = session(&fabric, &mesh_peer);
    assert_eq!(
        number(&mesh_after, "established_count"),
        number(&mesh_before, "established_count"),
        "the mesh session was touched: {mesh_after}"
    );
}

#[test]
fn ipv6_rules_with_not_in_and_prefix_length() {
    const TOR_V6: &str = "fd99::5";
    const INSIDE: &str = "fd00:244:0:f0::/64";
    const BESIDE: &str = "fd00:244:0:f1::/64";
    let mut fabric = Fabric::new().expect("fabric");
    let config = fabric.next_host_config(Role::Host);
    let host_v6 = testkit::fabric::underlay_v6(config.address);
    fabric.add_host_stopped(config).expect("host");
    let tor_address = TOR_ADDRESS.parse().expect("address");
    let tor_ns = fabric
        .attach_namespace("tor", tor_address)
        .expect("namespace");
    let bird = Bird::start(
        tor_ns,
        PeerConfig::new(TOR_ASN, tor_address)
            .neighbor(Neighbor::new(host_v6.into(), FABRIC_ASN).hold_time(9))
            .route(Route::parse(INSIDE).expect("route"))
            .route(Route::parse(BESIDE).expect("route")),
    )
    .expect("bird");
    // Import: refuse everything not inside INSIDE. Export: blocks of exactly /122 inside the
    // IPv6 pool get one more community on top of the advertised one.
    let rules = concat!(
        "[[bgp.peers.import]]\naction = \"reject\"\ncidr = \"fd00:244:0:f0::/64\"\nmatch = \"not-in\"\n",
        "[[bgp.peers.export]]\naction = \"accept\"\ncidr = \"fd00:244::/56\"\n",
        "prefix_length = { min = 122, max = 122 }\nadd_communities = [\"64512:600\"]\n",
    );
    let advertise = "[[bgp.prefix_advertisements]]\ncidr = \"::/0\"\ncommunities = [\"64512:100\", \"64512:9:9\"]\n";
    write_config(&fabric, TOR_V6, rules, advertise);
    fabric.start(0).expect("bgpd starts");
    bird.wait_established(host_v6.into(), CONVERGE)
        .expect("BIRD sees the IPv6 session");
    wait_kernel(&fabric, TOR_V6, INSIDE, true);
    wait_counts(&fabric, TOR_V6, 2, 1);
    assert_eq!(fabric.kernel_route(0, BESIDE), "", "not-in refused it");

    let block = own_block(&fabric, 0, true);
    let seen = bird
        .wait_route(net(&block), CONVERGE)
        .expect("BIRD learns our IPv6 block");
    for tag in [Community::new(64512, 100), Community::new(64512, 600)] {
        assert!(seen.communities.contains(&tag), "{tag} missing: {seen:?}");
    }
    assert!(
        seen.large_communities
            .contains(&LargeCommunity::new(64512, 9, 9)),
        "{seen:?}"
    );
}
