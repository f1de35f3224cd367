//! The daemon's lifecycle: reload by SIGHUP, kill -9 and restart, SIGTERM, hosts leaving.

mod common;

use std::io::Write;
use std::time::Duration;

use common::{
    PATIENCE, add_host, address, attach, block, block_on, client, lab, meshed_pair, peer,
    settled_peer, wait_established,
};
use serial_test::serial;
use testkit::fabric::ExplicitPeer;
use testkit::process::wait_until;

#[test]
#[serial]
fn sighup_adds_a_peer_and_leaves_the_other_session_alone() {
    let mut lab = lab();
    let a = add_host(&mut lab, true, |_| {});
    let b = add_host(&mut lab, true, |_| {});
    // c is not in the mesh; it peers with a by configuration only.
    let a_address = lab.hosts[a].config.address;
    let c = add_host(&mut lab, false, |c| {
        c.peers.push(ExplicitPeer {
            name: "a".into(),
            address: a_address.into(),
            asn: 64512,
        })
    });
    for i in [a, b, c] {
        lab.start(i).unwrap();
    }
    wait_established(&lab, a, 1);
    let before = settled_peer(&lab, a, &address(&lab, b));
    assert!(peer(&lab, a, &address(&lab, c)).is_none());

    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&lab.hosts[a].config_path)
        .unwrap();
    write!(
        file,
        "\n[[bgp.peers]]\nname = \"c\"\naddress = \"{}\"\nasn = 64512\n",
        address(&lab, c)
    )
    .unwrap();
    drop(file);
    lab.signal(a, libc::SIGHUP).unwrap();
    wait_established(&lab, a, 2);
    let c_peer = peer(&lab, a, &address(&lab, c)).unwrap();
    assert_eq!(c_peer.kind, bgpd_api::PeerKind::Configured);
    assert_eq!(c_peer.name, "c");
    let after = peer(&lab, a, &address(&lab, b)).unwrap();
    assert_eq!(after.state, "Established");
    assert_eq!(
        after.established_count, before.established_count,
        "the mesh session was reset"
    );
    assert!(after.uptime_secs >= before.uptime_secs);

    // Changing c's settings resets c's session alone. Counted from c's own count: when both
    // sides connect at once, collision resolution may already have established it twice.
    let c_before = peer(&lab, a, &address(&lab, c)).unwrap().established_count;
    let text = std::fs::read_to_string(&lab.hosts[a].config_path).unwrap();
    let changed = text.replace("name = \"c\"\n", "name = \"c\"\nhold_time = 30\n");
    assert_ne!(text, changed);
    std::fs::write(&lab.hosts[a].config_path, changed).unwrap();
    let report = block_on(client(&lab, a).reload()).unwrap();
    assert!(
        report.applied.iter().any(|l| l.contains("changed")),
        "{report:?}"
    );
    let reset = wait_until(PATIENCE, || {
        peer(&lab, a, &address(&lab, c))
            .is_some_and(|p| p.established_count > c_before && p.state == "Established")
    });
    assert!(reset, "{:?}", peer(&lab, a, &address(&lab, c)));
    // The reset was a's, with Cease 6/6 (Other Configuration Change). Read from a's log, not
    // from last_notification_sent: when both sides reconnect at once, the collision's 6/7 is
    // sent after it.
    let cease = format!(
        "sending NOTIFICATION 6/6 (Cease(OtherConfigurationChange)) peer={}",
        address(&lab, c)
    );
    assert!(
        lab.log(a).contains(&cease),
        "c's session was not reset by the change: {:?}\n{}",
        peer(&lab, a, &address(&lab, c)),
        lab.log_tail(a)
    );
    // (The negotiated hold time stays 9: the smaller of both offers.)
    let b_after = peer(&lab, a, &address(&lab, b)).unwrap();
    assert_eq!(
        b_after.established_count, before.established_count,
        "the mesh session was reset"
    );

    // A bad file on reload is refused and changes nothing.
    std::fs::write(&lab.hosts[a].config_path, "[node]\nasn = \"x\"\n").unwrap();
    let err = block_on(client(&lab, a).reload()).unwrap_err();
    assert!(err.to_string().contains(":2:"), "{err}");
    wait_established(&lab, a, 2);
}

#[test]
#[serial]
fn kill_9_and_restart_keeps_forwarding_and_sigterm_keeps_routes() {
    let mut lab = lab();
    let (a, b) = meshed_pair(&mut lab, |_| {});
    let (ca, _) = attach(&mut lab, a, "ka");
    let (_, eb) = attach(&mut lab, b, "kb");
    let target = eb.ips[0].address.ip().to_string();
    assert!(wait_until(PATIENCE, || lab.containers[ca].ns.ping(&target)));
    let block_b = block(&lab, b);
    let block_a = block(&lab, a);
    let routes_a = lab.bgpd_routes(a);

    // 10 pings a second for 8 seconds, across the kill and the restart.
    let pinger = lab.containers[ca]
        .ns
        .cmd("ping")
        .args(["-i", "0.1", "-c", "80", "-W", "1", &target])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    lab.kill(a);
    std::thread::sleep(Duration::from_secs(2));
    // While a is down: its kernel routes stay, and b keeps a's block (graceful restart helper).
    assert!(
        lab.bgpd_routes(a).contains(&format!("{block_b} via")),
        "{}",
        lab.bgpd_routes(a)
    );
    assert!(
        lab.bgpd_routes(b).contains(&format!("{block_a} via")),
        "{}",
        lab.bgpd_routes(b)
    );
    lab.start(a).unwrap();
    wait_established(&lab, a, 1);
    let out = pinger.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let received: u32 = text
        .split(',')
        .find_map(|part| part.trim().strip_suffix(" received"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    assert!(received >= 70, "lost more than a second of pings: {text}");
    // The restart changed nothing in the kernel.
    assert!(
        wait_until(PATIENCE, || lab.bgpd_routes(a) == routes_a),
        "{}\nvs\n{}",
        lab.bgpd_routes(a),
        routes_a
    );

    // SIGTERM keeps the routes (keep_routes_on_exit defaults to true).
    lab.signal(a, libc::SIGTERM).unwrap();
    let exited = wait_until(PATIENCE, || lab.hosts[a].exited());
    assert!(exited);
    assert_eq!(lab.bgpd_routes(a), routes_a);
}

#[test]
#[serial]
fn a_host_joining_is_learned_and_a_host_leaving_is_forgotten() {
    let mut lab = lab();
    let a = add_host(&mut lab, true, |_| {});
    let b = add_host(&mut lab, true, |c| c.keep_routes_on_exit = false);
    lab.start(a).unwrap();
    lab.start(b).unwrap();
    wait_established(&lab, a, 1);
    let block_b = block(&lab, b);
    assert!(wait_until(PATIENCE, || lab
        .bgpd_routes(a)
        .contains(&block_b)));
    // A third host joins: a learns its block without a restart.
    let c = add_host(&mut lab, true, |_| {});
    lab.start(c).unwrap();
    wait_established(&lab, a, 2);
    let block_c = block(&lab, c);
    assert!(wait_until(PATIENCE, || lab
        .bgpd_routes(a)
        .contains(&block_c)));
    // b stops for good (routes not kept): its routes go everywhere, its own kernel is clean.
    lab.signal(b, libc::SIGTERM).unwrap();
    assert!(
        wait_until(PATIENCE, || !lab.bgpd_routes(a).contains(&block_b)
            && !lab.bgpd_routes(c).contains(&block_b)),
        "{}",
        lab.bgpd_routes(a)
    );
    assert!(
        wait_until(PATIENCE, || lab.bgpd_routes(b).is_empty()),
        "{}",
        lab.bgpd_routes(b)
    );
    assert!(wait_until(PATIENCE, || peer(&lab, a, &address(&lab, b)).is_none()));
}

/// Appends `[ipam] dead_host_delay = <secs>` to host `i`'s configuration file (testkit's
/// host configuration has no field for it).
fn set_dead_host_delay(lab: &testkit::fabric::Fabric, i: usize, secs: u32) {
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&lab.hosts[i].config_path)
        .unwrap();
    write!(file, "\n[ipam]\ndead_host_delay = {secs}\n").unwrap();
}

/// A killed host stays a member: its node record outlives it, its peer keeps the session
/// configured and holds its routes for the graceful-restart time only (short here), then they
/// leave the kernel. Deleting its record (what `routectl node delete` does) drops the peer,
/// and IPAM's garbage collection then reclaims its block.
#[test]
#[serial]
fn a_killed_host_stays_a_member_until_its_record_is_deleted() {
    let mut lab = lab();
    let short_restart = |c: &mut testkit::fabric::HostConfig| c.graceful_restart = Some(3);
    let a = add_host(&mut lab, true, short_restart);
    let b = add_host(&mut lab, true, short_restart);
    set_dead_host_delay(&lab, a, 1);
    lab.start(a).unwrap();
    lab.start(b).unwrap();
    wait_established(&lab, a, 1);
    let block_b = block(&lab, b);
    assert!(wait_until(PATIENCE, || lab
        .bgpd_routes(a)
        .contains(&block_b)));
    lab.kill(b);
    // Graceful restart keeps b's routes for b's restart time (3 s), then they go.
    assert!(
        wait_until(PATIENCE, || !lab.bgpd_routes(a).contains(&block_b)),
        "{}",
        lab.bgpd_routes(a)
    );
    let key = format!("/fabric/v1/nodes/{}", lab.hosts[b].config.name);
    let record = || {
        lab.etcdctl(&["get", &key, "--print-value-only"])
            .unwrap()
            .trim()
            .to_string()
    };
    assert!(!record().is_empty(), "b's node record went with its daemon");
    let b_peer = peer(&lab, a, &address(&lab, b)).expect("a still has b as a peer");
    assert_ne!(b_peer.state, "Established");

    // Deleted: a drops the peer, and its GC reclaims b's block (after 1 s, on a 30 s period).
    lab.etcdctl(&["del", &key]).unwrap();
    assert!(wait_until(PATIENCE, || peer(&lab, a, &address(&lab, b)).is_none()));
    let affinities = format!("/fabric/v1/affinities/{}/", lab.hosts[b].config.name);
    let reclaimed = wait_until(Duration::from_secs(60) + PATIENCE, || {
        lab.etcdctl(&["get", "--prefix", "--keys-only", &affinities])
            .is_ok_and(|out| out.trim().is_empty())
    });
    assert!(
        reclaimed,
        "b's block was not reclaimed:\n{}",
        lab.log_tail(a)
    );
    assert_eq!(record(), "");
}
