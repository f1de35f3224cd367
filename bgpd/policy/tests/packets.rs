//! Real packets through the compiled table, in a two-host fabric of namespaces.

mod fabric;

use std::net::SocketAddr;
use std::time::Duration;

use bgpd_policy::counters::CounterOwner;
use bgpd_policy::model::{Direction, Name};
use bgpd_policy::{Applied, Inputs, Nft, PolicyFile, compile};
use fabric::*;
use testkit::process::wait_until;
use testkit::traffic::{Held, tcp_echo, tcp_ok, udp_answer, udp_ask, udp_ok};

/// How long an allowed connection may take to get through on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(20);

/// On host b, cb1 (role=db) accepts tcp 5432, udp 53 and ping from role=web only, and tcp
/// 7000 from anyone. On host a, ca1 (role=web) may only send tcp 5432/5433, udp 53 and ICMP.
const B_DB_POLICY: &str = r#"
[[policy]]
name = "db"
order = 10
selector = 'role == "db"'

[[policy.ingress]]
action = "allow"
protocol = "tcp"
source = { selector = 'role == "web"' }
destination = { ports = [5432] }

[[policy.ingress]]
action = "allow"
protocol = "udp"
source = { selector = 'role == "web"' }
destination = { ports = [53] }

[[policy.ingress]]
action = "allow"
protocol = "icmp"
icmp = { type = 8 }
source = { selector = 'role == "web"' }

[[policy.ingress]]
action = "allow"
protocol = "tcp"
destination = { ports = [7000] }
"#;

const A_WEB_EGRESS: &str = r#"
[[policy]]
name = "web-egress"
selector = 'role == "web"'
types = ["egress"]

[[policy.egress]]
action = "allow"
protocol = "tcp"
destination = { ports = ["5432:5433"] }

[[policy.egress]]
action = "allow"
protocol = "udp"
destination = { ports = [53] }

[[policy.egress]]
action = "allow"
protocol = "icmp"
"#;

fn cb1_addr(port: u16) -> SocketAddr {
    at(CB1, port)
}

#[test]
#[serial_test::serial]
fn workload_policies_allow_and_deny_tcp_udp_icmp_between_hosts() {
    let f = Fabric::new();
    let _servers = [5432, 5433, 7000].map(|p| tcp_echo(&f.cb1, cb1_addr(p)).expect("tcp server"));
    let _dns = udp_answer(&f.cb1, cb1_addr(53)).expect("udp server");
    let _host_a = tcp_echo(&f.a, at(A_OUT, 8080)).expect("tcp server");

    // Without policy everything flows: the checks below can fail.
    assert!(tcp_ok(&f.ca1, at(A_OUT, 8080)));
    assert!(f.b.ping(CB1));
    assert!(tcp_ok(&f.ca2, cb1_addr(5432)));
    assert!(udp_ok(&f.ca2, cb1_addr(53)));
    assert!(f.ca2.ping(CB1));
    assert!(tcp_ok(&f.ca1, cb1_addr(7000)));

    let a_workloads = [
        workload("cali-a1", CA1, &[("role", "web")]),
        workload("cali-a2", CA2, &[("role", "batch")]),
    ];
    apply(&f.a, A_WEB_EGRESS, &a_workloads, &[], &[pool(false)]);
    apply(
        &f.b,
        B_DB_POLICY,
        &[workload("cali-b1", CB1, &[("role", "db")])],
        &[
            remote(CA1, &[("role", "web")]),
            remote(CA2, &[("role", "batch")]),
        ],
        &[pool(false)],
    );

    // ca1 is a web pod: b lets it in for 5432, udp 53 and ping …
    assert!(tcp_ok(&f.ca1, cb1_addr(5432)), "web → db tcp 5432");
    assert!(udp_ok(&f.ca1, cb1_addr(53)), "web → db udp 53");
    assert!(f.ca1.ping(CB1), "web → db ping");
    // … b's default deny drops 5433 (a's egress allows it) …
    assert!(!tcp_ok(&f.ca1, cb1_addr(5433)), "db ingress default deny");
    // … and a's egress policy stops 7000 although b would accept it.
    assert!(!tcp_ok(&f.ca1, cb1_addr(7000)), "web egress default deny");

    // ca2 is selected by no policy on a; on b only tcp 7000 is open to it.
    assert!(!tcp_ok(&f.ca2, cb1_addr(5432)), "batch → db tcp 5432");
    assert!(!udp_ok(&f.ca2, cb1_addr(53)), "batch → db udp 53");
    assert!(!f.ca2.ping(CB1), "batch → db ping");
    assert!(tcp_ok(&f.ca2, cb1_addr(7000)), "batch → db tcp 7000");

    // A workload's egress also governs traffic to its own host (input hook) …
    assert!(!tcp_ok(&f.ca1, at(A_OUT, 8080)), "web → own host tcp 8080");
    assert!(f.ca1.ping(A_OUT), "web → own host ping (icmp allowed)");
    // … and its ingress traffic from its own host (output hook).
    assert!(!f.b.ping(CB1), "host b → db ping");
    assert!(tcp_ok(&f.b, cb1_addr(7000)), "host b → db tcp 7000");

    // Counters name the rule that let the traffic in and the default deny that dropped it.
    let counters = Nft::in_netns(f.b.name())
        .counters(&Name::try_from("bgpd").unwrap())
        .unwrap();
    let packets = |owner: CounterOwner| {
        counters
            .iter()
            .find(|c| c.owner == owner)
            .map_or(0, |c| c.packets)
    };
    let rule = |index| CounterOwner::Rule {
        policy: "db".into(),
        direction: Direction::Ingress,
        index,
    };
    for index in 0..4 {
        assert!(packets(rule(index)) >= 1, "rule {index}: {counters:#?}");
    }
    assert!(
        packets(CounterOwner::DefaultDeny {
            endpoint: "workload cali-b1".into(),
            direction: Direction::Ingress,
        }) >= 3,
        "{counters:#?}"
    );
}

const EDGE: &str = r#"
[[host_endpoint]]
name = "uplink"
interface = "a-out"
labels = { role = "edge" }
"#;

#[test]
#[serial_test::serial]
fn host_endpoint_policy_from_outside() {
    let f = Fabric::new();
    let _servers = [8080, 8081].map(|p| tcp_echo(&f.a, at(A_OUT, p)).expect("tcp server"));
    let _udp = [5353, 5354].map(|p| udp_answer(&f.a, at(A_OUT, p)).expect("udp server"));
    assert!(f.out.ping(A_OUT));
    assert!(tcp_ok(&f.out, at(A_OUT, 8081)));

    let toml = format!(
        "{EDGE}
[[policy]]
name = \"edge\"
selector = 'role == \"edge\"'

[[policy.ingress]]
action = \"allow\"
protocol = \"tcp\"
destination = {{ ports = [8080] }}

[[policy.ingress]]
action = \"allow\"
protocol = \"udp\"
source = {{ nets = [\"172.31.0.0/24\"] }}
destination = {{ ports = [5353] }}
"
    );
    apply(&f.a, &toml, &[], &[], &[pool(false)]);
    assert!(tcp_ok(&f.out, at(A_OUT, 8080)), "tcp 8080 allowed");
    assert!(!tcp_ok(&f.out, at(A_OUT, 8081)), "tcp 8081 denied");
    assert!(udp_ok(&f.out, at(A_OUT, 5353)), "udp 5353 allowed");
    assert!(!udp_ok(&f.out, at(A_OUT, 5354)), "udp 5354 denied");
    assert!(!f.out.ping(A_OUT), "ping denied");
    // Only traffic to the host through that interface is governed: containers are not.
    assert!(f.ca1.ping(A_OUT));
}

#[test]
#[serial_test::serial]
fn host_endpoint_policy_over_ipv6_keeps_neighbour_discovery() {
    let f = Fabric::new();
    let _servers = [8080, 8081].map(|p| tcp_echo(&f.a, at(A_OUT6, p)).expect("tcp server"));
    assert!(f.out.ping(A_OUT6));
    let toml = format!(
        "{EDGE}
[[policy]]
name = \"edge\"
selector = 'role == \"edge\"'

[[policy.ingress]]
action = \"allow\"
protocol = \"tcp\"
source = {{ nets = [\"fd31::/64\"] }}
destination = {{ ports = [8080] }}

[[policy.ingress]]
action = \"allow\"
protocol = \"tcp\"
source = {{ nets = [\"fd99::/64\"] }}
destination = {{ ports = [8081] }}
"
    );
    apply(&f.a, &toml, &[], &[], &[pool(false)]);
    // Forget the neighbours, so the next packets need neighbour discovery through the policy.
    f.out.ip(&["-6", "neigh", "flush", "all"]).unwrap();
    f.a.ip(&["-6", "neigh", "flush", "all"]).unwrap();
    assert!(tcp_ok(&f.out, at(A_OUT6, 8080)), "tcp 8080 over IPv6");
    assert!(
        !tcp_ok(&f.out, at(A_OUT6, 8081)),
        "8081 only from fd99::/64"
    );
    assert!(!f.out.ping(A_OUT6), "ping6 denied");

    // The two literal rules became one verdict map; its element counters read back per rule.
    let counters = Nft::in_netns(f.a.name())
        .counters(&Name::try_from("bgpd").unwrap())
        .unwrap();
    let rule0 = counters
        .iter()
        .find(|c| {
            c.owner
                == CounterOwner::Rule {
                    policy: "edge".into(),
                    direction: Direction::Ingress,
                    index: 0,
                }
        })
        .unwrap_or_else(|| panic!("{counters:#?}"));
    assert_eq!((rule0.elements, rule0.handles.len()), (1, 0), "{rule0:?}");
    assert!(rule0.packets >= 1, "{rule0:?}");
}

#[test]
#[serial_test::serial]
fn first_match_wins_across_verdict_maps_and_policies() {
    let f = Fabric::new();
    let ports = [8085, 8091, 8092, 8093, 8094];
    let _servers = ports.map(|p| tcp_echo(&f.a, at(A_OUT, p)).expect("tcp server"));
    // Policy "first" (order 1): deny 8080-8090, then allow 8085 (shadowed), 8091 and 8092 —
    // the last three are one port-keyed map, cut where 8085 overlaps the deny. Policy
    // "second" (order 2) logs everything (and goes on), then allows 8093; 8094 falls to the
    // default deny.
    let rule = |action: &str, ports: &str| {
        format!(
            "[[policy.ingress]]\naction = \"{action}\"\nprotocol = \"tcp\"\n\
             destination = {{ ports = [{ports}] }}\n"
        )
    };
    let toml = format!(
        "{EDGE}\n[[policy]]\nname = \"second\"\norder = 2\nselector = 'role == \"edge\"'\n\
         [[policy.ingress]]\naction = \"log\"\n{}\
         [[policy]]\nname = \"first\"\norder = 1\nselector = 'role == \"edge\"'\n{}{}{}{}",
        rule("allow", "8093"),
        rule("deny", "\"8080:8090\""),
        rule("allow", "8085"),
        rule("allow", "8091"),
        rule("allow", "8092"),
    );
    apply(&f.a, &toml, &[], &[], &[pool(false)]);
    let open: Vec<u16> = ports
        .into_iter()
        .filter(|&p| tcp_ok(&f.out, at(A_OUT, p)))
        .collect();
    assert_eq!(open, vec![8091, 8092, 8093]);
    let counters = Nft::in_netns(f.a.name())
        .counters(&Name::try_from("bgpd").unwrap())
        .unwrap();
    let logged = |index| {
        counters
            .iter()
            .find(|c| {
                c.owner
                    == CounterOwner::Rule {
                        policy: "second".into(),
                        direction: Direction::Ingress,
                        index,
                    }
            })
            .map_or(0, |c| c.packets)
    };
    // 8093 and 8094 reached "second": both were logged, one was allowed after the log.
    assert!(logged(0) >= 2 && logged(1) >= 1, "{counters:#?}");
}

#[test]
#[serial_test::serial]
fn an_update_keeps_the_counters_of_the_rules_it_does_not_change() {
    let f = Fabric::new();
    let _servers =
        [8081, 8082, 8083, 8084].map(|p| tcp_echo(&f.a, at(A_OUT, p)).expect("tcp server"));
    // Three port rules (one verdict map) and an ICMP rule (a plain rule) in one policy.
    let toml = |third: u16| {
        let rule = |port: u16| {
            format!(
                "[[policy.ingress]]\naction = \"allow\"\nprotocol = \"tcp\"\n\
                 destination = {{ ports = [{port}] }}\n"
            )
        };
        format!(
            "{EDGE}\n[[policy]]\nname = \"edge\"\nselector = 'role == \"edge\"'\n{}{}{}\
             [[policy.ingress]]\naction = \"allow\"\nprotocol = \"icmp\"\n",
            rule(8081),
            rule(8082),
            rule(third)
        )
    };
    let ruleset = |third| {
        let file = PolicyFile::parse(&toml(third), "edge.toml").unwrap();
        compile(&Inputs {
            file: &file,
            workloads: &[],
            remote: &[],
            pools: &[pool(false)],
        })
        .unwrap()
    };
    let nft = Nft::in_netns(f.a.name());
    let table = Name::try_from("bgpd").unwrap();
    let counts = || {
        let all = nft.counters(&table).unwrap();
        (0..4)
            .map(|index| {
                let owner = CounterOwner::Rule {
                    policy: "edge".into(),
                    direction: Direction::Ingress,
                    index,
                };
                all.iter()
                    .find(|c| c.owner == owner)
                    .map_or((0, 0), |c| (c.packets, c.bytes))
            })
            .collect::<Vec<_>>()
    };
    let first = ruleset(8083);
    assert_eq!(nft.update(None, &first).unwrap(), Applied::Replaced);
    // Retried on a slow machine: extra tries only add to the counts read below.
    for port in [8081, 8082, 8083] {
        assert!(
            wait_until(PATIENCE, || tcp_ok(&f.out, at(A_OUT, port))),
            "{port} allowed"
        );
    }
    assert!(wait_until(PATIENCE, || f.out.ping(A_OUT)), "ping allowed");
    let before = counts();
    assert!(
        before.iter().all(|&(packets, _)| packets >= 1),
        "{before:?}"
    );

    // Rule 2 now opens 8084 instead of 8083: one map element changes, nothing else.
    let second = ruleset(8084);
    assert_eq!(nft.update(Some(&first), &second).unwrap(), Applied::InPlace);
    let after = counts();
    assert_eq!(after[0], before[0], "rule 0 kept its counter");
    assert_eq!(after[1], before[1], "rule 1 kept its counter");
    assert_eq!(after[3], before[3], "the ICMP rule kept its counter");
    assert_eq!(after[2], (0, 0), "the changed rule counts from zero");
    // The update is in force.
    assert!(
        wait_until(PATIENCE, || tcp_ok(&f.out, at(A_OUT, 8084))),
        "8084 allowed now"
    );
    assert!(!tcp_ok(&f.out, at(A_OUT, 8083)), "8083 denied now");
    assert_eq!(counts()[0], before[0]);
}

#[test]
#[serial_test::serial]
fn failsafe_ports_stay_open_under_deny_all() {
    let f = Fabric::new();
    let _servers = [22, 179, 2222, 8080].map(|p| tcp_echo(&f.a, at(A_OUT, p)).expect("tcp server"));
    let deny_all = format!(
        "{EDGE}
[[policy]]
name = \"deny-all\"
order = 1
selector = 'all()'
types = [\"ingress\", \"egress\"]

[[policy.ingress]]
action = \"deny\"

[[policy.egress]]
action = \"deny\"
"
    );
    apply(&f.a, &deny_all, &[], &[], &[pool(false)]);
    assert!(tcp_ok(&f.out, at(A_OUT, 22)), "ssh is failsafe");
    assert!(tcp_ok(&f.out, at(A_OUT, 179)), "bgp is failsafe");
    assert!(!tcp_ok(&f.out, at(A_OUT, 8080)), "8080 denied");
    assert!(!tcp_ok(&f.out, at(A_OUT, 2222)), "2222 denied");
    assert!(!f.out.ping(A_OUT), "ping denied");

    // The failsafe list is configurable: with only 2222 listed, 22 closes too.
    let custom = format!(
        "[settings]\nfailsafe_inbound = [{{ protocol = \"tcp\", port = 2222 }}]\n{deny_all}"
    );
    apply(&f.a, &custom, &[], &[], &[pool(false)]);
    assert!(tcp_ok(&f.out, at(A_OUT, 2222)), "2222 is failsafe now");
    assert!(!tcp_ok(&f.out, at(A_OUT, 22)), "22 no longer failsafe");
}

#[test]
#[serial_test::serial]
fn established_connection_survives_a_policy_update() {
    let f = Fabric::new();
    let _server = tcp_echo(&f.cb1, cb1_addr(7000)).expect("tcp server");
    let cb1 = [workload("cali-b1", CB1, &[("role", "db")])];
    apply(&f.b, B_DB_POLICY, &cb1, &[], &[pool(false)]);
    let mut held = Held::open(&f.ca1, cb1_addr(7000)).expect("7000 is open to all");
    assert_eq!(held.exchange("before").unwrap(), "before");

    let closed = r#"
[[policy]]
name = "db"
selector = 'role == "db"'

[[policy.ingress]]
action = "deny"
protocol = "tcp"
destination = { ports = [7000] }
"#;
    apply(&f.b, closed, &cb1, &[], &[pool(false)]);
    assert!(
        !tcp_ok(&f.ca1, cb1_addr(7000)),
        "new connections are refused"
    );
    assert_eq!(
        held.exchange("after").unwrap(),
        "after",
        "the connection made before the update still carries data"
    );
}

/// Before a host's first policy no conntrack runs in its namespace, so connections open then
/// have no entry: the first packet after the apply is picked up mid-stream (the kernel's
/// `nf_conntrack_tcp_loose`, on by default) as a new flow, which the policy judges.
#[test]
#[serial_test::serial]
fn a_connection_open_before_a_hosts_first_policy_survives_it_when_allowed() {
    let f = Fabric::new();
    let _servers = [5432, 7000].map(|p| tcp_echo(&f.cb1, cb1_addr(p)).expect("tcp server"));
    for h in [&f.a, &f.b] {
        let tables = h.exec("nft", &["list", "tables"]).unwrap();
        assert!(
            tables.trim().is_empty(),
            "{} has tables: {tables}",
            h.name()
        );
    }
    let mut held = Held::open(&f.ca1, cb1_addr(5432)).expect("no policy yet");
    assert_eq!(held.exchange("before").unwrap(), "before");

    // a: web may only send tcp 5432/5433, udp 53 and ICMP; b: the db takes 5432 from web.
    apply(
        &f.a,
        A_WEB_EGRESS,
        &[workload("cali-a1", CA1, &[("role", "web")])],
        &[],
        &[pool(false)],
    );
    apply(
        &f.b,
        B_DB_POLICY,
        &[workload("cali-b1", CB1, &[("role", "db")])],
        &[remote(CA1, &[("role", "web")])],
        &[pool(false)],
    );
    // The policies are in force: a new connection to 7000 is refused by a's egress.
    assert!(!tcp_ok(&f.ca1, cb1_addr(7000)), "web egress denies 7000");
    for text in ["after", "and again"] {
        assert_eq!(
            held.exchange(text).unwrap(),
            text,
            "a connection the first policies allow survives them"
        );
    }
    assert!(wait_until(PATIENCE, || tcp_ok(&f.ca1, cb1_addr(5432))));
}

#[test]
#[serial_test::serial]
fn nat_outgoing_masquerades_to_destinations_outside_the_pools() {
    let f = Fabric::new();
    let _out = tcp_echo(&f.out, at(OUT, 9000)).expect("tcp server");
    let _udp = udp_answer(&f.out, at(OUT, 9001)).expect("udp server");
    let _inside = tcp_echo(&f.cb1, cb1_addr(7000)).expect("tcp server");
    let workloads = [workload("cali-a1", CA1, &[("role", "web")])];

    // The outside knows no route to the pool: without NAT it cannot answer.
    apply(&f.a, "", &workloads, &[], &[pool(false)]);
    assert!(!tcp_ok(&f.ca1, at(OUT, 9000)), "no NAT, no answer");

    apply(&f.a, "", &workloads, &[], &[pool(true)]);
    let seen = Held::open(&f.ca1, at(OUT, 9000)).expect("masqueraded");
    assert_eq!(seen.peer_seen(), ip(A_OUT), "outside sees host a's address");
    assert_eq!(udp_ask(&f.ca1, at(OUT, 9001)), Some(ip(A_OUT)));
    // Inside the pools, addresses are kept.
    let inside = Held::open(&f.ca1, cb1_addr(7000)).expect("pool to pool");
    assert_eq!(inside.peer_seen(), ip(CA1));
}

#[test]
#[serial_test::serial]
fn invalid_policy_is_refused_and_the_old_ruleset_stays() {
    let f = Fabric::new();
    let _servers = [8080, 8081].map(|p| tcp_echo(&f.a, at(A_OUT, p)).expect("tcp server"));
    let nft = Nft::in_netns(f.a.name());
    // Somebody else's table must survive everything we do.
    f.a.exec(
        "nft",
        &["add table inet other; add chain inet other c; add rule inet other c counter"],
    )
    .unwrap();
    let good = format!(
        "{EDGE}
[[policy]]
name = \"edge\"
selector = 'role == \"edge\"'

[[policy.ingress]]
action = \"allow\"
protocol = \"tcp\"
destination = {{ ports = [8080] }}
"
    );
    apply(&f.a, &good, &[], &[], &[pool(false)]);
    let table = Name::try_from("bgpd").unwrap();
    let before = nft.show(&table).unwrap();

    let bad = good.replace("'role == \"edge\"'", "'role = \"edge\"'");
    let err = PolicyFile::parse(&bad, "edge.toml")
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("edge.toml:9:12: key `selector`: selector \"role = \\\"edge\\\"\": at column 6: expected `==`"),
        "{err}"
    );
    let unknown_pool = format!(
        "{good}\n[[policy.ingress]]\naction = \"allow\"\nsource = {{ pools = [\"nope\"] }}\n"
    );
    let file = PolicyFile::parse(&unknown_pool, "edge.toml").unwrap();
    let err = compile(&Inputs {
        file: &file,
        workloads: &[],
        remote: &[],
        pools: &[pool(false)],
    })
    .unwrap_err();
    assert!(err.to_string().contains("unknown pool \"nope\""), "{err}");

    assert_eq!(nft.show(&table).unwrap(), before, "our table is unchanged");
    assert!(tcp_ok(&f.out, at(A_OUT, 8080)));
    assert!(
        !tcp_ok(&f.out, at(A_OUT, 8081)),
        "old policy still enforced"
    );
    let other =
        f.a.exec("nft", &["list", "table", "inet", "other"])
            .unwrap();
    assert!(other.contains("counter"), "{other}");
}

#[test]
#[serial_test::serial]
fn check_validates_without_applying() {
    let ns = testkit::netns::Netns::new("chk").unwrap();
    let file = PolicyFile::parse(B_DB_POLICY, "db.toml").unwrap();
    let ruleset = compile(&Inputs {
        file: &file,
        workloads: &[workload("cali-b1", CB1, &[("role", "db")])],
        remote: &[],
        pools: &[pool(true)],
    })
    .unwrap();
    let nft = Nft::in_netns(ns.name());
    nft.check(&ruleset).unwrap();
    assert!(nft.show(ruleset.table()).is_err(), "check applies nothing");
    nft.apply(&ruleset).unwrap();
    assert!(
        nft.show(ruleset.table())
            .unwrap()
            .contains("chain pol-db-ingress")
    );
    nft.remove(ruleset.table()).unwrap();
    assert!(nft.show(ruleset.table()).is_err());
    nft.remove(ruleset.table()).unwrap();
}

/// Every shape the example file and the README use is accepted by the kernel as compiled:
/// selectors (v4 and v6), pools, ICMP, log, literal maps, host endpoints, NAT.
#[test]
#[serial_test::serial]
fn example_policies_are_accepted_by_nft() {
    let ns = testkit::netns::Netns::new("ex").unwrap();
    let readme = include_str!("../README.md");
    let block = readme
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .unwrap();
    let example = include_str!("../examples/policy.toml");
    let workloads = [
        workload("cali-db", "10.244.1.2", &[("role", "db"), ("env", "prod")]),
        workload("cali-web", "10.244.1.3", &[("role", "web")]),
    ];
    let remote = [bgpd_policy::RemoteEndpoint {
        ips: vec![
            "fd00:244::2".parse().unwrap(),
            "10.244.2.2".parse().unwrap(),
        ],
        labels: labels(&[("role", "web")]),
    }];
    let mut pools = vec![pool(true)];
    pools.push(bgpd_policy::Pool {
        name: "default".try_into().unwrap(),
        cidr: "fd00:244::/48".parse().unwrap(),
        nat_outgoing: true,
    });
    for (origin, text) in [("README.md", block), ("policy.toml", example)] {
        let file = PolicyFile::parse(text, origin).unwrap();
        let ruleset = compile(&Inputs {
            file: &file,
            workloads: &workloads,
            remote: &remote,
            pools: &pools,
        })
        .unwrap();
        let nft = Nft::in_netns(ns.name());
        nft.apply(&ruleset)
            .unwrap_or_else(|e| panic!("{origin}: {e}\n{ruleset}"));
        let listed = nft.show(ruleset.table()).unwrap();
        assert!(listed.contains("chain pol-db-ingress"), "{origin}");
    }
}
