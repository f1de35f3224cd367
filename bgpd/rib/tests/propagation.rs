//! The RIB end to end: routes in from one peer, bytes out to the others, decoded as the peers
//! would decode them.

mod common;

use bgpd_rib::{
    Action, AddPathSend, Down, PeerConfig, Policy, PrefixRange, RibSettings, RouteSource, Signal,
    Statement, Verdict,
};
use bgpd_wire::{
    AfiSafi, AsPath, Asn, AttrAction, AttrError, Community, Malformed, NextHop, Nlri, PathAttrs,
    SessionContext, Update,
};
use common::*;

#[test]
fn reflector_follows_rfc4456_rules() {
    let mut lab = Lab::reflector("10.0.0.1", "10.0.0.100");
    let client_a = lab.peer("10.0.0.11", 65000, |c, _| c.rr_client = true);
    let client_b = lab.peer("10.0.0.12", 65000, |c, _| c.rr_client = true);
    let non_client_c = lab.peer("10.0.0.13", 65000, |_, _| {});
    let non_client_d = lab.peer("10.0.0.14", 65000, |_, _| {});
    let ebgp = lab.peer("10.0.0.21", 65100, |_, _| {});
    lab.drain();

    let mut a = route(&[], "10.0.0.11");
    a.local_pref = Some(150);
    lab.announce(client_a, &a, &["10.1.0.0/24"]);
    let c = route(&[], "10.0.0.13");
    lab.announce(non_client_c, &c, &["10.3.0.0/24"]);
    lab.drain();

    // Client route: to every other client and non-client, with ORIGINATOR_ID and CLUSTER_LIST.
    for peer in [client_b, non_client_c, non_client_d] {
        let got = lab
            .got(peer, "10.1.0.0/24")
            .unwrap_or_else(|| panic!("{peer} lacks the client route"));
        assert_eq!(got.originator_id, Some(ip("10.0.0.11")));
        assert_eq!(got.cluster_list, vec![ip("10.0.0.100")]);
        assert_eq!(
            got.next_hop,
            Some(NextHop::V4(ip("10.0.0.11"))),
            "reflection keeps the next hop"
        );
        assert_eq!(got.local_pref, Some(150));
    }
    assert!(
        lab.got(client_a, "10.1.0.0/24").is_none(),
        "never back to its source"
    );

    // Non-client route: to clients only.
    assert!(lab.got(client_a, "10.3.0.0/24").is_some());
    assert!(lab.got(client_b, "10.3.0.0/24").is_some());
    assert!(
        lab.got(non_client_d, "10.3.0.0/24").is_none(),
        "non-client to non-client is not reflected"
    );

    // eBGP gets both, as an external route: own AS prepended, next hop self, no iBGP attributes.
    let got = lab.got(ebgp, "10.1.0.0/24").unwrap();
    assert_eq!(got.as_path, Some(AsPath::sequence([LOCAL_AS])));
    assert_eq!(got.next_hop, Some(NextHop::V4(ip("192.0.2.254"))));
    assert_eq!(
        (got.local_pref, got.originator_id, got.cluster_list.len()),
        (None, None, 0)
    );
    assert!(lab.got(ebgp, "10.3.0.0/24").is_some());

    // An existing ORIGINATOR_ID is kept, the cluster prepended.
    let mut reflected = route(&[], "10.0.0.11");
    reflected.originator_id = Some(ip("10.9.9.9"));
    reflected.cluster_list = vec![ip("10.0.0.200")];
    lab.announce(client_a, &reflected, &["10.4.0.0/24"]);
    lab.drain();
    let got = lab.got(client_b, "10.4.0.0/24").unwrap();
    assert_eq!(got.originator_id, Some(ip("10.9.9.9")));
    assert_eq!(got.cluster_list, vec![ip("10.0.0.100"), ip("10.0.0.200")]);

    // Withdrawal propagates to everyone who had it.
    lab.withdraw(client_a, &["10.1.0.0/24"]);
    lab.drain();
    for peer in [client_b, non_client_c, non_client_d, ebgp] {
        assert!(
            lab.got(peer, "10.1.0.0/24").is_none(),
            "{peer} still has a withdrawn route"
        );
    }
}

#[test]
fn no_ibgp_readvertisement_without_reflection() {
    let mut lab = Lab::host("10.0.0.1");
    let a = lab.peer("10.0.0.11", 65000, |c, _| c.rr_client = true);
    let b = lab.peer("10.0.0.12", 65000, |_, _| {});
    let e = lab.peer("10.0.0.21", 65100, |_, _| {});
    lab.drain();
    lab.announce(a, &route(&[], "10.0.0.11"), &["10.1.0.0/24"]);
    lab.announce(e, &route(&[65100], "10.0.0.21"), &["10.2.0.0/24"]);
    lab.drain();
    assert!(
        lab.got(b, "10.1.0.0/24").is_none(),
        "iBGP to iBGP without a cluster id"
    );
    assert!(lab.got(e, "10.1.0.0/24").is_some(), "iBGP to eBGP is fine");
    let got = lab.got(b, "10.2.0.0/24").expect("eBGP to iBGP");
    assert_eq!(got.local_pref, Some(100), "LOCAL_PREF default on iBGP");
    assert_eq!(
        got.next_hop,
        Some(NextHop::V4(ip("10.0.0.21"))),
        "next hop unchanged to iBGP"
    );
}

#[test]
fn loops_are_kept_but_not_accepted() {
    let mut lab = Lab::reflector("10.0.0.1", "10.0.0.100");
    let ebgp = lab.peer("10.0.0.21", 65100, |_, _| {});
    let ibgp = lab.peer("10.0.0.11", 65000, |c, _| c.rr_client = true);
    let other = lab.peer("10.0.0.12", 65000, |c, _| c.rr_client = true);
    lab.drain();
    lab.announce(
        ebgp,
        &route(&[65100, 65000, 65200], "10.0.0.21"),
        &["10.1.0.0/24"],
    );
    let mut by_originator = route(&[], "10.0.0.11");
    by_originator.originator_id = Some(ip("10.0.0.1"));
    lab.announce(ibgp, &by_originator, &["10.2.0.0/24"]);
    let mut by_cluster = route(&[], "10.0.0.11");
    by_cluster.cluster_list = vec![ip("10.0.0.50"), ip("10.0.0.100")];
    lab.announce(ibgp, &by_cluster, &["10.3.0.0/24"]);
    lab.announce(ibgp, &route(&[], "10.0.0.11"), &["10.4.0.0/24"]);
    lab.drain();
    assert_eq!(
        lab.seen(other).len(),
        1,
        "only the loop-free route is reflected: {:?}",
        lab.seen(other)
    );
    let counts = lab.rib.peer_counts(ibgp).unwrap();
    assert_eq!((counts.received, counts.accepted), (3, 1));
    let counts = lab.rib.peer_counts(ebgp).unwrap();
    assert_eq!((counts.received, counts.accepted), (1, 0));
    let views = lab.rib.routes_for(p("10.1.0.0/24"));
    assert!(!views[0].accepted && !views[0].best);
    let mut streamed = 0;
    lab.rib.for_each_route(|_| streamed += 1);
    assert_eq!((streamed, lab.rib.routes().len()), (4, 4));
}

#[test]
fn ebgp_edge_rules_and_med() {
    let mut lab = Lab::host("10.0.0.1");
    let from = lab.peer("10.0.0.21", 65100, |_, _| {});
    let plain = lab.peer("10.0.0.22", 65200, |_, _| {});
    let with_med = lab.peer("10.0.0.23", 65300, |c, _| c.send_med = true);
    let ibgp = lab.peer("10.0.0.11", 65000, |c, _| c.next_hop_self = true);
    lab.drain();
    let mut a = route(&[65100], "10.0.0.21");
    a.med = Some(50);
    a.local_pref = Some(300); // from eBGP: ignored
    lab.announce(from, &a, &["10.1.0.0/24"]);
    lab.drain();
    let got = lab.got(plain, "10.1.0.0/24").unwrap();
    assert_eq!(got.as_path, Some(AsPath::sequence([LOCAL_AS, Asn(65100)])));
    assert_eq!((got.med, got.local_pref), (None, None));
    assert_eq!(lab.got(with_med, "10.1.0.0/24").unwrap().med, Some(50));
    let got = lab.got(ibgp, "10.1.0.0/24").unwrap();
    assert_eq!(
        got.local_pref,
        Some(100),
        "received LOCAL_PREF from eBGP is not used"
    );
    assert_eq!(got.med, Some(50), "MED kept inside the AS");
    assert_eq!(
        got.next_hop,
        Some(NextHop::V4(ip("192.0.2.254"))),
        "next-hop-self"
    );
    assert_eq!(
        got.as_path,
        Some(AsPath::sequence([Asn(65100)])),
        "no prepend to iBGP"
    );
}

#[test]
fn local_routes_and_well_known_communities() {
    let mut lab = Lab::host("10.0.0.1");
    let ibgp = lab.peer("10.0.0.11", 65000, |_, _| {});
    let ebgp = lab.peer("10.0.0.21", 65100, |_, _| {});
    lab.rib.originate(p("10.244.1.0/26"), PathAttrs::default());
    lab.rib.originate(
        p("10.244.2.0/26"),
        PathAttrs {
            communities: smallvec::smallvec![Community::NO_EXPORT],
            ..PathAttrs::default()
        },
    );
    lab.rib.originate(
        p("10.244.3.0/26"),
        PathAttrs {
            communities: smallvec::smallvec![Community::NO_ADVERTISE],
            ..PathAttrs::default()
        },
    );
    lab.drain();
    let got = lab.got(ibgp, "10.244.1.0/26").unwrap();
    assert_eq!(
        got.next_hop,
        Some(NextHop::V4(ip("192.0.2.254"))),
        "own routes: next hop self"
    );
    assert_eq!(got.as_path, Some(AsPath::default()));
    assert!(lab.got(ibgp, "10.244.2.0/26").is_some());
    assert!(
        lab.got(ebgp, "10.244.2.0/26").is_none(),
        "NO_EXPORT stays inside"
    );
    assert!(lab.got(ibgp, "10.244.3.0/26").is_none() && lab.got(ebgp, "10.244.3.0/26").is_none());
    assert!(
        lab.fib.is_empty(),
        "own blocks are not FIB changes: {:?}",
        lab.fib
    );
    assert_eq!(lab.seen[&ibgp].end_of_rib, vec![AfiSafi::IPV4_UNICAST]);
    lab.rib.withdraw_local(p("10.244.1.0/26"));
    lab.drain();
    assert!(lab.got(ibgp, "10.244.1.0/26").is_none());
}

#[test]
fn import_and_export_policies() {
    let mut lab = Lab::host("10.0.0.1");
    let pool = PrefixRange::orlonger(p("10.244.0.0/16"));
    let tag = Community::new(65000, 7);
    let from = lab.peer("10.0.0.21", 65100, |c, _| c.import = Policy::only([pool]));
    let to = lab.peer("10.0.0.22", 65200, |c, _| {
        c.export = Policy {
            statements: vec![Statement {
                prefixes: vec![PrefixRange {
                    prefix: p("10.244.0.0/16"),
                    ge: Some(24),
                    le: Some(24),
                }],
                communities: vec![],
                verdict: Verdict::Accept,
                set: vec![Action::AddCommunity(tag), Action::LocalPref(50)],
            }],
            default: Verdict::Reject,
        }
    });
    lab.drain();
    lab.announce(
        from,
        &route(&[65100], "10.0.0.21"),
        &["10.244.5.0/24", "10.244.6.0/26", "192.168.0.0/24"],
    );
    lab.drain();
    let counts = lab.rib.peer_counts(from).unwrap();
    assert_eq!(
        (counts.received, counts.accepted),
        (3, 2),
        "outside the pools is refused"
    );
    assert_eq!(
        lab.seen(to).len(),
        1,
        "only the /24 passes export: {:?}",
        lab.seen(to)
    );
    assert_eq!(lab.got(to, "10.244.5.0/24").unwrap().communities[..], [tag]);
    assert_eq!(
        lab.got(to, "10.244.5.0/24").unwrap().local_pref,
        None,
        "never LOCAL_PREF to eBGP"
    );
    assert_eq!(lab.rib.peer_counts(to).unwrap().advertised, 1);
}

#[test]
fn max_prefix_signals_cease() {
    let mut lab = Lab::host("10.0.0.1");
    let from = lab.peer("10.0.0.21", 65100, |c, _| c.max_prefix = Some(2));
    lab.drain();
    lab.announce(
        from,
        &route(&[65100], "10.0.0.21"),
        &["10.1.0.0/24", "10.2.0.0/24"],
    );
    lab.drain();
    assert!(lab.signals.is_empty());
    lab.announce(from, &route(&[65100], "10.0.0.21"), &["10.3.0.0/24"]);
    lab.drain();
    assert_eq!(
        lab.signals,
        vec![Signal::MaxPrefix {
            peer: from,
            limit: 2,
            family: AfiSafi::IPV4_UNICAST
        }]
    );
    lab.rib.peer_down(from, Down::Hard).unwrap();
    lab.drain();
    assert_eq!(lab.rib.prefix_count(), 0);
}

#[test]
fn treat_as_withdraw_withdraws_and_propagates() {
    let mut lab = Lab::host("10.0.0.1");
    let from = lab.peer("10.0.0.21", 65100, |_, _| {});
    let to = lab.peer("10.0.0.11", 65000, |_, _| {});
    lab.drain();
    let nlri = vec![Nlri::new(p("10.1.0.0/24"))];
    let good = Update {
        attrs: route(&[65100], "10.0.0.21"),
        nlri: nlri.clone(),
        ..Update::default()
    };
    lab.rib.apply_update(from, &good).unwrap();
    lab.drain();
    assert!(lab.got(to, "10.1.0.0/24").is_some());
    let bad = Update {
        errors: vec![AttrError {
            type_code: 1,
            reason: Malformed::Origin(9),
            action: AttrAction::TreatAsWithdraw,
        }],
        ..good.clone()
    };
    lab.rib.apply_update(from, &bad).unwrap();
    lab.drain();
    assert!(
        lab.got(to, "10.1.0.0/24").is_none(),
        "treat-as-withdraw reached the other peer"
    );
    assert!(lab.fib.last().unwrap().next_hops.is_empty());
}

#[test]
fn graceful_restart_helper_keeps_then_flushes() {
    let mut lab = Lab::host("10.0.0.1");
    let restarting = lab.peer("10.0.0.21", 65100, |_, _| {});
    let other = lab.peer("10.0.0.11", 65000, |_, _| {});
    lab.drain();
    lab.announce(
        restarting,
        &route(&[65100], "10.0.0.21"),
        &["10.1.0.0/24", "10.2.0.0/24", "10.3.0.0/24"],
    );
    lab.drain();
    let fib_before = lab.fib.len();
    let withdrawals = lab.seen[&other].withdrawals;

    lab.rib.peer_down(restarting, Down::Graceful).unwrap();
    lab.drain();
    assert_eq!(lab.seen(other).len(), 3, "stale routes stay advertised");
    assert_eq!(lab.fib.len(), fib_before, "and in the kernel");
    assert!(lab.rib.routes().iter().all(|r| r.stale && r.best));

    lab.up(
        restarting,
        bgpd_rib::Session::ipv4(ip("10.0.0.21"), ip("192.0.2.254")),
    );
    lab.announce(restarting, &route(&[65100], "10.0.0.21"), &["10.1.0.0/24"]);
    lab.drain();
    assert_eq!(
        lab.seen[&other].withdrawals, withdrawals,
        "nothing withdrawn before End-of-RIB"
    );
    let update = Update::end_of_rib(AfiSafi::IPV4_UNICAST);
    lab.rib.apply_update(restarting, &update).unwrap();
    lab.drain();
    assert_eq!(
        lab.seen(other).keys().map(|k| k.1).collect::<Vec<_>>(),
        vec![p("10.1.0.0/24")]
    );
    assert!(!lab.rib.routes()[0].stale, "re-announced route is fresh");

    // The stale timer flushes too.
    lab.announce(restarting, &route(&[65100], "10.0.0.21"), &["10.5.0.0/24"]);
    lab.drain();
    lab.rib.peer_down(restarting, Down::Graceful).unwrap();
    lab.rib.stale_timer_expired(restarting).unwrap();
    lab.drain();
    assert!(lab.seen(other).is_empty());
    assert_eq!(lab.rib.prefix_count(), 0);
}

#[test]
fn add_path_receive_and_send() {
    let mut settings = RibSettings::new(LOCAL_AS, ip("10.0.0.1"));
    settings.cluster_id = Some(ip("10.0.0.1"));
    settings.max_paths = 4;
    let mut lab = Lab::new(settings);
    let from = lab.peer("10.0.0.11", 65000, |c, s| {
        c.rr_client = true;
        s.add_path_rx = vec![AfiSafi::IPV4_UNICAST];
    });
    let all = lab.peer("10.0.0.12", 65000, |c, s| {
        c.rr_client = true;
        c.add_path_send = AddPathSend::All;
        s.add_path_tx = vec![AfiSafi::IPV4_UNICAST];
    });
    let plain = lab.peer("10.0.0.13", 65000, |c, _| c.rr_client = true);
    lab.drain();
    let prefix = p("10.1.0.0/24");
    let one = route(&[], "10.0.0.31");
    let mut two = route(&[], "10.0.0.32");
    two.local_pref = Some(200);
    lab.rib
        .announce(
            from,
            AfiSafi::IPV4_UNICAST,
            &one,
            &[Nlri::with_path_id(prefix, 1)],
        )
        .unwrap();
    lab.rib
        .announce(
            from,
            AfiSafi::IPV4_UNICAST,
            &two,
            &[Nlri::with_path_id(prefix, 2)],
        )
        .unwrap();
    lab.drain();
    assert_eq!(
        lab.rib.routes_for(prefix).len(),
        2,
        "two paths from one peer"
    );
    let sent: Vec<_> = lab
        .seen(all)
        .iter()
        .map(|((id, _), a)| (id.is_some(), a.next_hop))
        .collect();
    assert_eq!(sent.len(), 2, "every path to the ADD-PATH peer: {sent:?}");
    assert!(sent.iter().all(|(has_id, _)| *has_id));
    let best = lab.got(plain, "10.1.0.0/24").unwrap();
    assert_eq!(
        best.next_hop,
        Some(NextHop::V4(ip("10.0.0.32"))),
        "the best path to the others"
    );

    lab.rib
        .withdraw(
            from,
            AfiSafi::IPV4_UNICAST,
            &[Nlri::with_path_id(prefix, 2)],
        )
        .unwrap();
    lab.drain();
    assert_eq!(
        lab.seen(all).len(),
        1,
        "the withdrawn path is withdrawn by path id"
    );
    assert_eq!(
        lab.got(plain, "10.1.0.0/24").unwrap().next_hop,
        Some(NextHop::V4(ip("10.0.0.31")))
    );
}

#[test]
fn updates_are_packed_and_encoded_once_per_group() {
    let mut lab = Lab::reflector("10.0.0.1", "10.0.0.1");
    let source = lab.peer("10.0.0.11", 65000, |c, _| c.rr_client = true);
    let clients: Vec<_> = (12..15)
        .map(|i| lab.peer(&format!("10.0.0.{i}"), 65000, |c, _| c.rr_client = true))
        .collect();
    lab.drain();
    let prefixes: Vec<String> = (0..2000)
        .map(|i| format!("10.{}.{}.0/24", i / 256, i % 256))
        .collect();
    let refs: Vec<&str> = prefixes.iter().map(String::as_str).collect();
    lab.announce(source, &route(&[], "10.0.0.11"), &refs);
    lab.withdraw(source, &[]);
    lab.drain();
    assert_eq!(
        lab.last.outbound.len(),
        1,
        "one encoding for the whole group"
    );
    let mut to = lab.last.outbound[0].peers.clone();
    to.sort();
    assert_eq!(to, clients, "all clients but the source");
    for c in &clients {
        assert_eq!(lab.seen(*c).len(), 2000);
        // 2000 /24s take 8000 octets of NLRI: two 4096-octet UPDATEs.
        assert_eq!(lab.seen[c].messages, 1 + 2, "End-of-RIB plus two UPDATEs");
    }
    // Withdrawals are batched as well.
    lab.withdraw(source, &refs);
    lab.drain();
    assert_eq!(lab.last.outbound.len(), 1);
    assert!(lab.seen(clients[0]).is_empty());
    // 2000 withdrawn /24s: 8000 octets, two UPDATEs.
    assert_eq!(lab.seen[&clients[0]].messages, 3 + 2);
}

#[test]
fn late_joiner_gets_the_table_then_changes() {
    let mut lab = Lab::host("10.0.0.1");
    let from = lab.peer("10.0.0.21", 65100, |_, _| {});
    lab.drain();
    lab.announce(
        from,
        &route(&[65100], "10.0.0.21"),
        &["10.1.0.0/24", "10.2.0.0/24"],
    );
    lab.drain();
    let late = lab.peer("10.0.0.11", 65000, |_, _| {});
    lab.announce(from, &route(&[65100], "10.0.0.21"), &["10.3.0.0/24"]);
    lab.drain();
    assert_eq!(lab.seen(late).len(), 3);
    assert_eq!(lab.seen[&late].end_of_rib, vec![AfiSafi::IPV4_UNICAST]);
    assert_eq!(lab.rib.peer_counts(late).unwrap().advertised, 3);
    assert_eq!(
        lab.rib.peer_counts(from).unwrap().advertised,
        0,
        "its own routes are not sent back"
    );
    lab.withdraw(from, &["10.1.0.0/24"]);
    lab.drain();
    assert_eq!(lab.seen(late).len(), 2);
    assert_eq!(lab.rib.peer_counts(late).unwrap().advertised, 2);

    // A held table (we restart) goes out only when released.
    let held = lab.peer("10.0.0.12", 65000, |_, s| s.hold_initial = true);
    lab.drain();
    assert!(lab.seen(held).is_empty());
    lab.rib.release_initial(held).unwrap();
    lab.drain();
    assert_eq!(lab.seen(held).len(), 2);

    // Route refresh re-sends.
    let before = lab.seen[&late].messages;
    lab.rib.route_refresh(late, AfiSafi::IPV4_UNICAST).unwrap();
    lab.drain();
    assert!(lab.seen[&late].messages > before);
    assert_eq!(lab.seen(late).len(), 2);
}

#[test]
fn export_change_withdraws_what_is_no_longer_exported() {
    let mut lab = Lab::host("10.0.0.1");
    let from = lab.peer("10.0.0.21", 65100, |_, _| {});
    let to = lab.peer("10.0.0.11", 65000, |_, _| {});
    lab.drain();
    lab.announce(
        from,
        &route(&[65100], "10.0.0.21"),
        &["10.1.0.0/24", "10.2.0.0/24"],
    );
    lab.drain();
    assert_eq!(lab.seen(to).len(), 2);
    let mut config = PeerConfig::new("10.0.0.11".parse().unwrap(), LOCAL_AS);
    config.export = Policy::only([PrefixRange::exact(p("10.2.0.0/24"))]);
    lab.rib.reconfigure_peer(to, config).unwrap();
    lab.drain();
    assert_eq!(
        lab.seen(to).keys().map(|k| k.1).collect::<Vec<_>>(),
        vec![p("10.2.0.0/24")]
    );
    assert!(lab.signals.is_empty());
}

#[test]
fn multipath_feeds_the_kernel() {
    let mut settings = RibSettings::new(LOCAL_AS, ip("10.0.0.1"));
    settings.max_paths = 4;
    let mut lab = Lab::new(settings);
    let tor_a = lab.peer("10.0.0.21", 65100, |_, _| {});
    let tor_b = lab.peer("10.0.0.22", 65100, |_, _| {});
    let tor_c = lab.peer("10.0.0.23", 65100, |_, _| {});
    lab.drain();
    lab.announce(tor_a, &route(&[65100], "10.0.0.21"), &["0.0.0.0/0"]);
    lab.announce(tor_b, &route(&[65100], "10.0.0.22"), &["0.0.0.0/0"]);
    lab.announce(tor_c, &route(&[65100, 65300], "10.0.0.23"), &["0.0.0.0/0"]);
    lab.drain();
    let change = lab.fib.last().unwrap();
    assert_eq!(
        change.next_hops,
        vec![
            "10.0.0.21".parse::<std::net::IpAddr>().unwrap(),
            "10.0.0.22".parse().unwrap()
        ]
    );
    lab.rib.set_igp_cost("10.0.0.22".parse().unwrap(), None);
    lab.drain();
    assert_eq!(
        lab.fib.last().unwrap().next_hops,
        vec!["10.0.0.21".parse::<std::net::IpAddr>().unwrap()]
    );
    lab.rib.peer_down(tor_a, Down::Hard).unwrap();
    lab.drain();
    assert_eq!(
        lab.fib.last().unwrap().next_hops,
        vec!["10.0.0.23".parse::<std::net::IpAddr>().unwrap()]
    );
    let views = lab.rib.routes_for(p("0.0.0.0/0"));
    assert!(views[0].best && views[0].source == RouteSource::Peer(tor_c));
}

#[test]
fn two_octet_peers_get_as_trans_and_as4_path() {
    let mut lab = Lab::host("10.0.0.1");
    let from = lab.peer("10.0.0.21", 4_200_000_001, |_, _| {});
    let old = lab.peer("10.0.0.22", 65200, |_, s| s.four_octet_as = false);
    lab.drain();
    lab.announce(
        from,
        &route(&[4_200_000_001], "10.0.0.21"),
        &["10.1.0.0/24"],
    );
    lab.drain();
    // The lab decodes with the two-octet context, merging AS4_PATH back (RFC 6793 §4.2.3).
    let got = lab.got(old, "10.1.0.0/24").unwrap();
    assert_eq!(
        got.as_path,
        Some(AsPath::sequence([LOCAL_AS, Asn(4_200_000_001)]))
    );
    assert_eq!(
        lab.ctx[&old],
        SessionContext {
            four_octet_as: false,
            ..SessionContext::default()
        }
    );
}

#[test]
fn removed_peer_routes_are_withdrawn() {
    let mut lab = Lab::host("10.0.0.1");
    let from = lab.peer("10.0.0.21", 65100, |_, _| {});
    let to = lab.peer("10.0.0.11", 65000, |_, _| {});
    lab.drain();
    lab.announce(from, &route(&[65100], "10.0.0.21"), &["10.1.0.0/24"]);
    lab.drain();
    lab.rib.remove_peer(from).unwrap();
    lab.drain();
    assert!(lab.seen(to).is_empty());
    assert!(lab.rib.peer_counts(from).is_none());
    assert_eq!(
        lab.rib.attr_sets(),
        0,
        "attribute sets are dropped with their last route"
    );
}

#[test]
fn ipv6_routes_travel_in_mp_reach() {
    let mut lab = Lab::host("10.0.0.1");
    let dual = |_: &mut PeerConfig, s: &mut bgpd_rib::Session| {
        s.families = vec![AfiSafi::IPV4_UNICAST, AfiSafi::IPV6_UNICAST];
        s.local_v6 = Some("2001:db8::254".parse().unwrap());
    };
    let from = lab.peer("10.0.0.21", 65100, dual);
    let ibgp = lab.peer("10.0.0.11", 65000, dual);
    let ebgp = lab.peer("10.0.0.22", 65200, dual);
    lab.drain();
    let nh = NextHop::V6 {
        global: "2001:db8::21".parse().unwrap(),
        link_local: None,
    };
    let attrs = PathAttrs {
        next_hop: Some(nh),
        ..route(&[65100], "10.0.0.21")
    };
    lab.rib
        .announce(
            from,
            AfiSafi::IPV6_UNICAST,
            &attrs,
            &[Nlri::new(p("2001:db8:100::/48"))],
        )
        .unwrap();
    lab.drain();
    assert_eq!(
        lab.got(ibgp, "2001:db8:100::/48").unwrap().next_hop,
        Some(nh)
    );
    let self_v6 = NextHop::V6 {
        global: "2001:db8::254".parse().unwrap(),
        link_local: None,
    };
    assert_eq!(
        lab.got(ebgp, "2001:db8:100::/48").unwrap().next_hop,
        Some(self_v6)
    );
    assert_eq!(
        lab.fib.last().unwrap().next_hops,
        vec!["2001:db8::21".parse::<std::net::IpAddr>().unwrap()]
    );
    assert_eq!(
        lab.seen[&ibgp].end_of_rib,
        vec![AfiSafi::IPV4_UNICAST, AfiSafi::IPV6_UNICAST]
    );
    lab.rib
        .withdraw(
            from,
            AfiSafi::IPV6_UNICAST,
            &[Nlri::new(p("2001:db8:100::/48"))],
        )
        .unwrap();
    lab.drain();
    assert!(
        lab.got(ibgp, "2001:db8:100::/48").is_none()
            && lab.got(ebgp, "2001:db8:100::/48").is_none()
    );
}

#[test]
fn add_path_send_multipath_and_best() {
    let mut settings = RibSettings::new(LOCAL_AS, ip("10.0.0.1"));
    settings.cluster_id = Some(ip("10.0.0.1"));
    settings.max_paths = 2;
    let mut lab = Lab::new(settings);
    let client = |c: &mut PeerConfig, _: &mut bgpd_rib::Session| c.rr_client = true;
    let a = lab.peer("10.0.0.11", 65000, client);
    let b = lab.peer("10.0.0.12", 65000, client);
    let worse = lab.peer("10.0.0.13", 65000, client);
    let multipath = lab.peer("10.0.0.14", 65000, |c, s| {
        c.rr_client = true;
        c.add_path_send = AddPathSend::Multipath;
        s.add_path_tx = vec![AfiSafi::IPV4_UNICAST];
    });
    let best = lab.peer("10.0.0.15", 65000, |c, s| {
        c.rr_client = true;
        s.add_path_tx = vec![AfiSafi::IPV4_UNICAST];
    });
    lab.drain();
    lab.announce(a, &route(&[65100], "10.0.0.11"), &["10.1.0.0/24"]);
    lab.announce(b, &route(&[65100], "10.0.0.12"), &["10.1.0.0/24"]);
    lab.announce(
        worse,
        &route(&[65100, 65200], "10.0.0.13"),
        &["10.1.0.0/24"],
    );
    lab.drain();
    assert_eq!(
        lab.seen(multipath).len(),
        2,
        "the multipath set, not the longer path"
    );
    assert_eq!(lab.seen(best).len(), 1);
    let (id, attrs) = lab.seen(best).iter().next().unwrap();
    assert!(id.0.is_some(), "a path id even for the best path alone");
    assert_eq!(
        attrs.next_hop,
        Some(NextHop::V4(ip("10.0.0.11"))),
        "lower router id wins"
    );
    lab.withdraw(a, &["10.1.0.0/24"]);
    lab.drain();
    let next_hops = |peer| {
        lab.seen(peer)
            .values()
            .map(|a| a.next_hop)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        next_hops(multipath),
        vec![Some(NextHop::V4(ip("10.0.0.12")))]
    );
    assert_eq!(
        next_hops(best),
        vec![Some(NextHop::V4(ip("10.0.0.12")))],
        "old best's path id withdrawn"
    );
}

#[test]
fn rib_can_move_into_an_actor_task() {
    fn send<T: Send + 'static>(_: &T) {}
    send(&Lab::host("10.0.0.1").rib);
}

#[test]
fn session_from_negotiated_opens() {
    use bgpd_wire::{AddPathFamily, AddPathMode, Capability, Open, negotiate};
    let caps = |mode| {
        vec![
            Capability::Multiprotocol(AfiSafi::IPV4_UNICAST),
            Capability::AddPath(vec![AddPathFamily {
                afi_safi: AfiSafi::IPV4_UNICAST,
                mode,
            }]),
            Capability::ExtendedMessage,
        ]
    };
    let ours = Open::new(LOCAL_AS, 90, ip("10.0.0.1"), caps(AddPathMode::Send));
    let theirs = Open::new(LOCAL_AS, 90, ip("10.0.0.2"), caps(AddPathMode::Receive));
    let s = bgpd_rib::Session::negotiated(
        &negotiate(&ours, &theirs),
        ip("10.0.0.2"),
        Some(ip("10.0.0.1")),
        None,
    );
    assert_eq!(s.families, vec![AfiSafi::IPV4_UNICAST]);
    assert!(s.four_octet_as && s.extended_message);
    assert_eq!(
        (s.add_path_tx, s.add_path_rx),
        (vec![AfiSafi::IPV4_UNICAST], vec![])
    );
}

#[test]
fn reconfiguration_asks_for_refresh_or_reset() {
    let mut lab = Lab::host("10.0.0.1");
    let peer = lab.peer("10.0.0.21", 65100, |_, _| {});
    lab.drain();
    let mut config = PeerConfig::new("10.0.0.21".parse().unwrap(), Asn(65100));
    config.import = Policy::reject_all();
    lab.rib.reconfigure_peer(peer, config.clone()).unwrap();
    config.remote_as = Asn(65101);
    lab.rib.reconfigure_peer(peer, config).unwrap();
    lab.drain();
    assert_eq!(
        lab.signals,
        vec![Signal::RefreshNeeded { peer }, Signal::ResetNeeded { peer }]
    );
    assert!(
        lab.rib
            .reconfigure_peer(
                bgpd_rib::PeerId(99),
                PeerConfig::new("10.9.9.9".parse().unwrap(), Asn(1))
            )
            .is_err()
    );
}

#[test]
fn own_block_beats_a_peer_announcing_it_back() {
    let mut lab = Lab::host("10.0.0.1");
    let peer = lab.peer("10.0.0.11", 65000, |_, _| {});
    lab.drain();
    lab.rib.originate(p("10.244.1.0/26"), PathAttrs::default());
    let mut echo = route(&[], "10.0.0.11");
    echo.local_pref = Some(1000);
    lab.announce(peer, &echo, &["10.244.1.0/26"]);
    lab.drain();
    let views = lab.rib.routes_for(p("10.244.1.0/26"));
    assert!(views[0].best && views[0].source == RouteSource::Local);
    assert!(
        lab.fib.is_empty(),
        "no kernel route towards the peer: {:?}",
        lab.fib
    );
}

/// RFC 7606 §7.9/§7.10: ORIGINATOR_ID and CLUSTER_LIST from an external neighbour are discarded
/// (attribute discard, counted). Kept, they would reach iBGP, where a host whose router id an
/// eBGP peer chose as ORIGINATOR_ID would drop the route as a reflection loop (RFC 4456 §8).
#[test]
fn originator_id_and_cluster_list_from_ebgp_are_discarded() {
    let mut lab = Lab::host("10.0.0.1");
    let ibgp = lab.peer("10.0.0.12", 65000, |_, _| {});
    let ebgp = lab.peer("10.0.0.21", 65100, |_, _| {});
    lab.drain();
    let mut r = route(&[65100], "10.0.0.21");
    r.originator_id = Some(ip("10.0.0.12"));
    r.cluster_list = vec![ip("10.0.0.12"), ip("10.0.0.1")];
    lab.announce(ebgp, &r, &["10.2.0.0/24"]);
    lab.drain();
    let got = lab
        .got(ibgp, "10.2.0.0/24")
        .expect("eBGP route passed on to iBGP");
    assert_eq!((got.originator_id, got.cluster_list.len()), (None, 0));
    let views = lab.rib.routes_for(p("10.2.0.0/24"));
    assert!(views[0].accepted, "not taken for a reflection loop");
    let counts = lab.rib.peer_counts(ebgp).unwrap();
    assert_eq!(counts.attributes_discarded, 2);
    // From iBGP both are kept: they are how reflection loops are found.
    let mut reflected = route(&[65100], "10.0.0.21");
    reflected.originator_id = Some(ip("10.0.0.33"));
    reflected.cluster_list = vec![ip("10.0.0.44")];
    lab.announce(ibgp, &reflected, &["10.3.0.0/24"]);
    let views = lab.rib.routes_for(p("10.3.0.0/24"));
    assert_eq!(views[0].attrs.originator_id, Some(ip("10.0.0.33")));
    assert_eq!(lab.rib.peer_counts(ibgp).unwrap().attributes_discarded, 0);
}

/// RFC 4760 §6: routes and withdrawals of a family the session did not negotiate are ignored and
/// counted, as BIRD, FRR and GoBGP do; the speaker is told once per session (to log it). This
/// holds for IPv4 in the classic UPDATE fields too, on a session without IPv4 unicast.
#[test]
fn routes_of_a_family_not_negotiated_are_ignored() {
    use bgpd_wire::MpReach;
    let mut lab = Lab::host("10.0.0.1");
    let v4_only = lab.peer("10.0.0.21", 65100, |_, _| {});
    let v6_only = lab.peer("10.0.0.22", 65100, |_, s| {
        s.families = vec![AfiSafi::IPV6_UNICAST];
    });
    lab.drain();
    let v6_route = Update {
        attrs: route(&[65100], "10.0.0.21"),
        mp_reach: Some(MpReach {
            afi_safi: AfiSafi::IPV6_UNICAST,
            next_hop: NextHop::V6 {
                global: "2001:db8::21".parse().unwrap(),
                link_local: None,
            },
            nlri: vec![Nlri::new(p("2001:db8:97::/48"))],
        }),
        ..Update::default()
    };
    let v4_route = Update {
        attrs: route(&[65100], "10.0.0.22"),
        nlri: vec![Nlri::new(p("10.98.0.0/24"))],
        withdrawn: vec![Nlri::new(p("10.99.0.0/24"))],
        ..Update::default()
    };
    lab.rib.apply_update(v4_only, &v6_route).unwrap();
    lab.rib.apply_update(v6_only, &v4_route).unwrap();
    lab.rib.apply_update(v6_only, &v4_route).unwrap();
    lab.drain();
    assert!(lab.rib.routes_for(p("2001:db8:97::/48")).is_empty());
    assert!(lab.rib.routes_for(p("10.98.0.0/24")).is_empty());
    let counts = |peer| lab.rib.peer_counts(peer).unwrap();
    assert_eq!((counts(v4_only).received, counts(v4_only).ignored), (0, 1));
    assert_eq!((counts(v6_only).received, counts(v6_only).ignored), (0, 4));
    let told = |peer, family| Signal::FamilyNotNegotiated { peer, family };
    assert_eq!(
        lab.signals,
        vec![
            told(v4_only, AfiSafi::IPV6_UNICAST),
            told(v6_only, AfiSafi::IPV4_UNICAST)
        ]
    );
    // A new session is told again.
    lab.rib.peer_down(v6_only, Down::Hard).unwrap();
    lab.up(v6_only, {
        let mut s = bgpd_rib::Session::ipv4("10.0.0.22".parse().unwrap(), ip("192.0.2.254"));
        s.families = vec![AfiSafi::IPV6_UNICAST];
        s
    });
    lab.rib.apply_update(v6_only, &v4_route).unwrap();
    lab.drain();
    assert_eq!(
        lab.signals.last(),
        Some(&told(v6_only, AfiSafi::IPV4_UNICAST))
    );
    assert_eq!(lab.signals.len(), 3);
    // The negotiated family still works.
    lab.rib.apply_update(v4_only, &v4_route).unwrap();
    assert_eq!(lab.rib.routes_for(p("10.98.0.0/24")).len(), 1);
}
