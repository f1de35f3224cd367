//! A peer whose writer is full gets no UPDATEs; once writable it is sent, a batch per drain,
//! the current state of every prefix that changed meanwhile, and ends up holding exactly what a
//! peer that was never held back holds. Whole tables (a first table, a refresh, an export
//! change) go the same way: a batch per drain, paused while the writer is full.

mod common;

use std::collections::BTreeSet;

use bgpd_rib::policy::{Policy, PrefixRange};
use bgpd_rib::{AddPathSend, PeerConfig, PeerId, RibSettings};
use bgpd_wire::{AfiSafi, Nlri};
use common::*;

fn prefixes(range: std::ops::Range<u32>) -> Vec<String> {
    range
        .map(|i| format!("10.{}.{}.0/24", i / 256, i % 256))
        .collect()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn a_blocked_peer_catches_up_in_batches_to_the_same_table() {
    let mut lab = Lab::reflector("10.0.0.1", "10.0.0.1");
    let source = lab.peer("10.0.0.11", 65000, |c, _| c.rr_client = true);
    let slow = lab.peer("10.0.0.12", 65000, |c, _| c.rr_client = true);
    let fast = lab.peer("10.0.0.13", 65000, |c, _| c.rr_client = true);
    lab.drain();
    let first = prefixes(0..2000);
    lab.announce(source, &route(&[], "10.0.0.21"), &strs(&first));
    lab.drain();
    assert_eq!(lab.seen(slow).len(), 2000);

    lab.rib.peer_blocked(slow).unwrap();
    let before = lab.seen[&slow].messages;
    // While it is blocked: 20,000 new prefixes, half the old ones withdrawn, the other half
    // changed, and some prefixes that come and go without the slow peer ever seeing them.
    let new = prefixes(2000..22000);
    lab.announce(source, &route(&[], "10.0.0.22"), &strs(&new));
    lab.drain();
    lab.withdraw(source, &strs(&first[..1000]));
    lab.announce(source, &route(&[], "10.0.0.23"), &strs(&first[1000..]));
    lab.drain();
    let passing = prefixes(30000..30100);
    lab.announce(source, &route(&[], "10.0.0.24"), &strs(&passing));
    lab.drain();
    lab.withdraw(source, &strs(&passing));
    lab.drain();
    assert_eq!(
        lab.seen[&slow].messages, before,
        "nothing sent while blocked"
    );
    assert!(!lab.rib.catching_up());
    assert_eq!(lab.seen(fast).len(), 21000);

    lab.rib.peer_writable(slow).unwrap();
    assert!(lab.rib.catching_up());
    lab.drain();
    assert!(
        lab.rib.catching_up(),
        "one drain sends a batch, not the whole backlog"
    );
    let partial = lab.seen(slow).len();
    // Full again: catching up pauses, and changes keep going to the backlog.
    lab.rib.peer_blocked(slow).unwrap();
    assert!(!lab.rib.catching_up());
    lab.withdraw(source, &strs(&new[..10]));
    lab.drain();
    assert_eq!(lab.seen(slow).len(), partial);
    lab.rib.peer_writable(slow).unwrap();
    let mut drains = 0;
    while lab.rib.catching_up() {
        lab.drain();
        drains += 1;
        assert!(drains < 100, "catching up does not end");
    }
    assert_eq!(lab.seen(slow), lab.seen(fast));
    assert_eq!(lab.seen(slow).len(), 20990);
    assert_eq!(
        lab.got(slow, &first[1500]).unwrap().next_hop,
        lab.got(fast, &first[1500]).unwrap().next_hop
    );

    // In sync again: changes flow directly.
    lab.withdraw(source, &strs(&new[10..20]));
    lab.drain();
    assert_eq!(lab.seen(slow).len(), 20980);
    assert_eq!(lab.seen(slow), lab.seen(fast));
}

#[test]
fn add_path_paths_gone_while_blocked_are_withdrawn() {
    let mut settings = RibSettings::new(LOCAL_AS, ip("10.0.0.1"));
    settings.cluster_id = Some(ip("10.0.0.1"));
    settings.max_paths = 4;
    let mut lab = Lab::new(settings);
    let source = lab.peer("10.0.0.11", 65000, |c, s| {
        c.rr_client = true;
        s.add_path_rx = vec![AfiSafi::IPV4_UNICAST];
    });
    let all = |c: &mut bgpd_rib::PeerConfig, s: &mut bgpd_rib::Session| {
        c.rr_client = true;
        c.add_path_send = AddPathSend::All;
        s.add_path_tx = vec![AfiSafi::IPV4_UNICAST];
    };
    let slow = lab.peer("10.0.0.12", 65000, all);
    let fast = lab.peer("10.0.0.13", 65000, all);
    lab.drain();
    let list = prefixes(0..50);
    let paths =
        |id: u32| -> Vec<Nlri> { list.iter().map(|s| Nlri::with_path_id(p(s), id)).collect() };
    let family = AfiSafi::IPV4_UNICAST;
    lab.rib
        .announce(source, family, &route(&[], "10.0.0.21"), &paths(1))
        .unwrap();
    lab.rib
        .announce(source, family, &route(&[], "10.0.0.22"), &paths(2))
        .unwrap();
    lab.drain();
    assert_eq!(lab.seen(slow).len(), 100);

    lab.rib.peer_blocked(slow).unwrap();
    lab.rib.withdraw(source, family, &paths(2)).unwrap();
    lab.rib
        .announce(source, family, &route(&[], "10.0.0.23"), &paths(3))
        .unwrap();
    lab.drain();
    assert_eq!(lab.seen(slow).len(), 100, "blocked: still the old paths");

    lab.rib.peer_writable(slow).unwrap();
    while lab.rib.catching_up() {
        lab.drain();
    }
    assert_eq!(lab.seen(slow).len(), 100);
    assert_eq!(lab.seen(slow), lab.seen(fast));
}

#[test]
fn refreshes_asked_while_blocked_are_answered_once_when_writable() {
    let mut lab = Lab::reflector("10.0.0.1", "10.0.0.1");
    let source = lab.peer("10.0.0.11", 65000, |c, _| c.rr_client = true);
    let slow = lab.peer("10.0.0.12", 65000, |c, _| c.rr_client = true);
    let fast = lab.peer("10.0.0.13", 65000, |c, _| c.rr_client = true);
    lab.drain();
    let table = prefixes(0..1000);
    lab.announce(source, &route(&[], "10.0.0.21"), &strs(&table));
    lab.drain();

    lab.rib.peer_blocked(slow).unwrap();
    let before = lab.seen[&slow].messages;
    for _ in 0..5 {
        lab.rib.route_refresh(slow, AfiSafi::IPV4_UNICAST).unwrap();
        lab.drain();
        assert!(lab.last.resent.is_empty(), "no table re-sent while blocked");
    }
    lab.withdraw(source, &strs(&table[..10]));
    lab.drain();
    assert_eq!(
        lab.seen[&slow].messages, before,
        "nothing sent while blocked"
    );

    lab.rib.peer_writable(slow).unwrap();
    lab.drain();
    assert_eq!(
        lab.last.resent,
        vec![(slow, AfiSafi::IPV4_UNICAST)],
        "five refreshes, one table"
    );
    // The table, not five: 1,000 prefixes with one attribute set pack into a few UPDATEs.
    assert!(lab.seen[&slow].messages - before < 10);
    while lab.rib.catching_up() {
        lab.drain();
    }
    assert_eq!(lab.seen(slow), lab.seen(fast));
    assert_eq!(lab.seen(slow).len(), 990);
    lab.drain();
    assert!(lab.last.resent.is_empty(), "the refresh is answered once");
}

/// Most prefixes one drain sends a peer of a whole table (the RIB's batch).
const BATCH: usize = 8192;

/// The prefixes `peer` holds, as the strings [`prefixes`] makes.
fn held(lab: &Lab, peer: PeerId) -> Vec<String> {
    lab.seen(peer).keys().map(|k| k.1.to_string()).collect()
}

#[test]
fn a_large_first_table_goes_a_batch_per_drain_pauses_while_blocked_and_ends_in_sync() {
    let mut lab = Lab::reflector("10.0.0.1", "10.0.0.1");
    let source = lab.peer("10.0.0.11", 65000, |c, _| c.rr_client = true);
    let fast = lab.peer("10.0.0.13", 65000, |c, _| c.rr_client = true);
    lab.drain();
    let table = prefixes(0..20000);
    lab.announce(source, &route(&[], "10.0.0.21"), &strs(&table));
    lab.drain();

    let late = lab.peer("10.0.0.12", 65000, |c, _| c.rr_client = true);
    lab.drain();
    let sent = held(&lab, late);
    assert!(
        !sent.is_empty() && sent.len() <= BATCH,
        "one batch, not the table: {}",
        sent.len()
    );
    assert!(
        lab.seen[&late].end_of_rib.is_empty(),
        "End-of-RIB after the table"
    );
    assert!(lab.rib.catching_up());

    // Full: the table pauses; meanwhile prefixes it was sent and prefixes it was not go,
    // change or come.
    lab.rib.peer_blocked(late).unwrap();
    assert!(!lab.rib.catching_up());
    let unsent: Vec<String> = table
        .iter()
        .filter(|t| !sent.contains(t))
        .cloned()
        .collect();
    let gone: Vec<String> = sent[..50].iter().chain(&unsent[..50]).cloned().collect();
    let changed: Vec<String> = sent[50..100]
        .iter()
        .chain(&unsent[50..100])
        .cloned()
        .collect();
    lab.withdraw(source, &strs(&gone));
    lab.announce(source, &route(&[], "10.0.0.22"), &strs(&changed));
    lab.announce(
        source,
        &route(&[], "10.0.0.23"),
        &strs(&prefixes(30000..30100)),
    );
    lab.drain();
    assert!(held(&lab, late) == sent, "nothing sent while blocked");

    lab.rib.peer_writable(late).unwrap();
    let mut drains = 0;
    while lab.rib.catching_up() {
        let before = lab.seen(late).len();
        lab.drain();
        assert!(lab.seen(late).len() <= before + BATCH, "one batch a drain");
        drains += 1;
        assert!(drains < 100, "the table is never done");
    }
    assert!(drains >= 2, "20,000 prefixes in {drains} drains");
    assert_eq!(lab.seen(late), lab.seen(fast));
    assert_eq!(lab.seen(late).len(), 20000);
    assert_eq!(
        lab.got(late, &changed[0]).unwrap().next_hop,
        lab.got(fast, &changed[0]).unwrap().next_hop
    );
    assert_eq!(lab.seen[&late].end_of_rib, vec![AfiSafi::IPV4_UNICAST]);
}

#[test]
fn an_export_change_sent_over_several_drains_withdraws_what_the_new_policy_refuses() {
    let mut lab = Lab::reflector("10.0.0.1", "10.0.0.1");
    let source = lab.peer("10.0.0.11", 65000, |c, _| c.rr_client = true);
    let to = lab.peer("10.0.0.12", 65000, |c, _| c.rr_client = true);
    lab.drain();
    let table = prefixes(0..20000);
    lab.announce(source, &route(&[], "10.0.0.21"), &strs(&table));
    lab.drain();
    assert_eq!(lab.seen(to).len(), 20000);

    // From now on only 10.0.0.0/10: the first 16,384 prefixes (second octet below 64).
    let mut config = PeerConfig::new("10.0.0.12".parse().unwrap(), LOCAL_AS);
    config.rr_client = true;
    config.export = Policy::only([PrefixRange::orlonger(p("10.0.0.0/10"))]);
    let allowed = |s: &String| s.split('.').nth(1).and_then(|o| o.parse::<u32>().ok()) < Some(64);
    lab.rib.reconfigure_peer(to, config).unwrap();
    lab.drain();
    assert!(
        lab.rib.catching_up(),
        "the table is re-sent over several drains"
    );
    // Prefixes the new policy refuses, still held by the peer, go while the walk is under way:
    // the peer must lose them even where the walk has not reached them.
    let stale: Vec<String> = held(&lab, to)
        .into_iter()
        .filter(|s| !allowed(s))
        .take(200)
        .collect();
    assert_eq!(stale.len(), 200);
    lab.withdraw(source, &strs(&stale));
    let mut drains = 0;
    while lab.rib.catching_up() {
        lab.drain();
        drains += 1;
        assert!(drains < 100, "the table is never done");
    }
    let want: BTreeSet<String> = table.iter().filter(|s| allowed(s)).cloned().collect();
    let got: BTreeSet<String> = held(&lab, to).into_iter().collect();
    let extra: Vec<&String> = got.difference(&want).take(5).collect();
    let missing: Vec<&String> = want.difference(&got).take(5).collect();
    assert!(
        extra.is_empty() && missing.is_empty(),
        "held but refused: {extra:?}; allowed but missing: {missing:?}"
    );
    assert_eq!(
        lab.rib.peer_counts(to).unwrap().advertised,
        want.len() as u64
    );
}

#[test]
fn an_export_change_during_a_first_table_still_ends_it_with_end_of_rib() {
    let mut lab = Lab::reflector("10.0.0.1", "10.0.0.1");
    let source = lab.peer("10.0.0.11", 65000, |c, _| c.rr_client = true);
    lab.drain();
    let table = prefixes(0..20000);
    lab.announce(source, &route(&[], "10.0.0.21"), &strs(&table));
    lab.drain();
    let late = lab.peer("10.0.0.12", 65000, |c, _| c.rr_client = true);
    lab.drain();
    assert!(lab.rib.catching_up(), "the first table is under way");
    let mut config = PeerConfig::new("10.0.0.12".parse().unwrap(), LOCAL_AS);
    config.rr_client = true;
    config.export = Policy::only([PrefixRange::orlonger(p("10.0.0.0/10"))]);
    lab.rib.reconfigure_peer(late, config).unwrap();
    let mut drains = 0;
    while lab.rib.catching_up() {
        lab.drain();
        drains += 1;
        assert!(drains < 100, "the table is never done");
    }
    assert_eq!(lab.seen[&late].end_of_rib, vec![AfiSafi::IPV4_UNICAST]);
    assert_eq!(lab.seen(late).len(), 16384, "the first 16,384 prefixes");
}
