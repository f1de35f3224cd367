//! In-place updates (`Nft::update`) against real nftables: after every kind of change, the
//! running table is the one a whole-table apply of the new ruleset gives.

mod fabric;

use std::collections::BTreeMap;

use bgpd_policy::{Applied, Inputs, Nft, PolicyFile, Pool, Ruleset, WorkloadEndpoint, compile};
use fabric::{pool, remote, workload};
use testkit::netns::Netns;

/// A listing reduced to what it means: per object its declaration and rules in order, and
/// its elements sorted (the kernel lists hash elements in its own order).
fn normalized(listing: &str) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    let mut current: Option<(String, Vec<String>)> = None;
    let mut elements: Option<String> = None;
    for line in listing.lines().map(str::trim) {
        if let Some(acc) = elements.as_mut() {
            acc.push(' ');
            acc.push_str(line);
        } else if let Some(first) = line.strip_prefix("elements = { ") {
            elements = Some(first.to_string());
        } else if ["set ", "map ", "chain "]
            .iter()
            .any(|k| line.starts_with(k))
        {
            current = Some((line.to_string(), Vec::new()));
            continue;
        } else if line == "}" {
            if let Some((head, body)) = current.take() {
                out.insert(head, body);
            }
            continue;
        } else {
            if let Some((_, body)) = current.as_mut() {
                body.push(line.to_string());
            }
            continue;
        }
        // Inside `elements = { … }`: done once the closing brace came.
        let Some(acc) = elements.as_ref().filter(|a| a.ends_with('}')) else {
            continue;
        };
        let mut all: Vec<String> = acc
            .trim_end_matches('}')
            .split(',')
            .map(|e| format!("element {}", e.trim()))
            .collect();
        all.sort();
        if let Some((_, body)) = current.as_mut() {
            body.extend(all);
        }
        elements = None;
    }
    out
}

const DB: &str = r#"
[[policy]]
name = "db"
selector = 'role == "db"'

[[policy.ingress]]
action = "allow"
protocol = "tcp"
source = { nets = ["10.1.0.1/32"] }
destination = { ports = [8001] }

[[policy.ingress]]
action = "deny"
protocol = "tcp"
source = { nets = ["10.1.0.2/32"] }
destination = { ports = [8002] }

[[policy.ingress]]
action = "allow"
protocol = "tcp"
source = { nets = ["10.1.0.3/32"] }
destination = { ports = [8003] }

[[policy.ingress]]
action = "allow"
protocol = "icmp"
source = { selector = 'role == "web"' }
"#;

struct Step {
    what: &'static str,
    toml: String,
    workloads: Vec<WorkloadEndpoint>,
    pools: Vec<Pool>,
}

fn compiled(step: &Step) -> Ruleset {
    let file = PolicyFile::parse(&step.toml, "update.toml").unwrap_or_else(|e| panic!("{e}"));
    compile(&Inputs {
        file: &file,
        workloads: &step.workloads,
        remote: &[remote("10.244.2.3", &[("role", "web")])],
        pools: &step.pools,
    })
    .unwrap_or_else(|e| panic!("{}: {e}", step.what))
}

#[test]
#[serial_test::serial]
fn every_kind_of_change_applied_in_place_equals_a_whole_table_apply() {
    let db = workload("cali-db", "10.244.1.2", &[("role", "db")]);
    let web = workload("cali-web", "10.244.1.3", &[("role", "web")]);
    let db2 = workload("cali-db2", "10.244.1.4", &[("role", "db")]);
    let step = |what, toml: String, workloads: &[&WorkloadEndpoint], nat| Step {
        what,
        toml,
        workloads: workloads.iter().map(|w| (*w).clone()).collect(),
        pools: vec![pool(nat)],
    };
    let steps = [
        step("start", DB.to_string(), &[&db, &web], false),
        step(
            "one map element changes",
            DB.replace("[8003]", "[8004]"),
            &[&db, &web],
            false,
        ),
        step(
            "a map element is added, a plain rule goes",
            DB.replace("protocol = \"icmp\"", "protocol = \"tcp\"")
                .replace(
                    "source = { selector = 'role == \"web\"' }",
                    "source = { nets = [\"10.1.0.5/32\"] }\ndestination = { ports = [8005] }",
                ),
            &[&db, &web],
            false,
        ),
        step(
            "the map turns from exact to interval",
            DB.replace("10.1.0.1/32", "10.1.0.0/24"),
            &[&db, &web],
            false,
        ),
        step(
            "one element of an interval map changes",
            DB.replace("10.1.0.1/32", "10.1.0.0/24")
                .replace("[8003]", "[\"8003:8009\"]"),
            &[&db, &web],
            false,
        ),
        step(
            "a workload arrives, NAT is switched on",
            DB.to_string(),
            &[&db, &web, &db2],
            true,
        ),
        step(
            "a workload leaves, NAT is off",
            DB.to_string(),
            &[&web, &db2],
            false,
        ),
        step("no policy at all", String::new(), &[&web, &db2], false),
        step("back to the start", DB.to_string(), &[&db, &web], false),
    ];
    let running = Netns::new("upd").unwrap();
    let nft = Nft::in_netns(running.name());
    let mut previous: Option<Ruleset> = None;
    for s in &steps {
        let ruleset = compiled(s);
        let how = nft.update(previous.as_ref(), &ruleset).unwrap();
        let want = if previous.is_some() {
            Applied::InPlace
        } else {
            Applied::Replaced
        };
        assert_eq!(how, want, "{}", s.what);
        let fresh = Netns::new("updf").unwrap();
        let whole = Nft::in_netns(fresh.name());
        whole.apply(&ruleset).unwrap();
        let (got, expected) = (
            nft.show(ruleset.table()).unwrap(),
            whole.show(ruleset.table()).unwrap(),
        );
        // Both listings were read: base chains, dispatch maps, failsafe and pool sets at least.
        assert!(normalized(&expected).len() >= 15, "{expected}");
        assert_eq!(
            normalized(&got),
            normalized(&expected),
            "{}: in place:\n{got}\nwhole table:\n{expected}",
            s.what
        );
        previous = Some(ruleset);
    }
}

#[test]
#[serial_test::serial]
fn a_table_replaced_behind_our_back_is_rebuilt_whole_not_patched() {
    let ns = Netns::new("updother").unwrap();
    let nft = Nft::in_netns(ns.name());
    let db = || vec![workload("cali-db", "10.244.1.2", &[("role", "db")])];
    let applied = compiled(&Step {
        what: "applied",
        toml: DB.to_string(),
        workloads: db(),
        pools: vec![pool(false)],
    });
    nft.update(None, &applied).unwrap();
    // Somebody applies another ruleset for the same table (`routectl policy apply --file`):
    // its chain for cali-other would survive changes computed from `applied`.
    let other = compiled(&Step {
        what: "other",
        toml: DB.replace("role == \"db\"", "all()"),
        workloads: vec![workload("cali-other", "10.244.1.9", &[])],
        pools: vec![pool(false)],
    });
    nft.apply(&other).unwrap();
    let next = compiled(&Step {
        what: "next",
        toml: DB.replace("[8003]", "[8004]"),
        workloads: db(),
        pools: vec![pool(false)],
    });
    assert_eq!(
        nft.update(Some(&applied), &next).unwrap(),
        Applied::Replaced
    );
    let fresh = Netns::new("updotherf").unwrap();
    let whole = Nft::in_netns(fresh.name());
    whole.apply(&next).unwrap();
    let (got, want) = (
        nft.show(next.table()).unwrap(),
        whole.show(next.table()).unwrap(),
    );
    assert!(!got.contains("cali-other"), "{got}");
    assert_eq!(normalized(&got), normalized(&want));
}

#[test]
#[serial_test::serial]
fn a_table_removed_behind_our_back_is_rebuilt_whole() {
    let ns = Netns::new("updgone").unwrap();
    let nft = Nft::in_netns(ns.name());
    let step = Step {
        what: "db",
        toml: DB.to_string(),
        workloads: vec![workload("cali-db", "10.244.1.2", &[("role", "db")])],
        pools: vec![pool(false)],
    };
    let first = compiled(&step);
    assert_eq!(nft.update(None, &first).unwrap(), Applied::Replaced);
    nft.remove(first.table()).unwrap();
    let next = compiled(&Step {
        toml: DB.replace("[8003]", "[8004]"),
        ..step
    });
    // In place would only add the changed element to a table that is gone.
    assert_eq!(nft.update(Some(&first), &next).unwrap(), Applied::Replaced);
    assert!(
        nft.show(next.table())
            .unwrap()
            .contains("chain pol-db-ingress")
    );
}
