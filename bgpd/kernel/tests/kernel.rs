//! bgpd-kernel against the real kernel, in network namespaces.

mod common;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use bgpd_kernel::{
    Change, Error, Fib, FibConfig, FibMonitor, FibStatus, Ifindex, NextHop, NextHops, Prefix,
    ReconcileOptions, Refusal, Route, RouteSet, TableId, WantedUpdate, spawn,
};
use common::{IpMonitor, block_on_in_netns, in_netns, ip_route, ip_routes, ip_run};
use serde_json::Value;
use testkit::netns::{Netns, link};
use testkit::process::wait_until;

const PROTO: &str = "98";

/// How soon the reconcile task must repair a route changed behind its back or write an update:
/// well below its 60 s resync, so only the route monitor's event can have done it, and loose
/// enough for a loaded CI machine (it takes milliseconds on an idle one).
const REPAIR: Duration = Duration::from_secs(10);
/// How long a status change or the task's end may take to show.
const SETTLE: Duration = Duration::from_secs(20);

fn p(s: &str) -> Prefix {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn via(prefix: &str, gateways: &[&str]) -> Route {
    let hops = NextHops::new(gateways.iter().map(|g| NextHop::via(ip(g)))).unwrap();
    Route::via(p(prefix), hops).unwrap()
}

fn install(routes: &[Route]) -> Vec<Change> {
    routes.iter().cloned().map(Change::Replace).collect()
}

/// A namespace with an up interface `d0` (a veth whose peer `d0p` is up too, so it has carrier;
/// this kernel has no dummy driver) holding 192.168.10.1/24 and fd00:a::1/64, so gateways
/// .2/.3/.4 and fd00:a::2/3/4 are on-link.
fn host_with_link(tag: &str) -> Netns {
    let ns = Netns::new(tag).unwrap();
    ip_run(&ns, "link add d0 type veth peer name d0p");
    ip_run(&ns, "link set d0p up");
    ip_run(&ns, "addr add 192.168.10.1/24 dev d0");
    ip_run(&ns, "addr add fd00:a::1/64 dev d0 nodad");
    ip_run(&ns, "link set d0 up");
    ns
}

fn ifindex(ns: &Netns, name: &str) -> Ifindex {
    in_netns(ns, || Ifindex::by_name(name)).unwrap()
}

fn gateways(route: &Value) -> BTreeSet<String> {
    route["nexthops"]
        .as_array()
        .map(|hops| {
            hops.iter()
                .filter_map(|h| h["gateway"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn reconcile_writes_only_the_difference_and_never_touches_foreign_routes() {
    let ns = host_with_link("rec");
    let d0 = ifindex(&ns, "d0");
    // Already as wanted, from an earlier run.
    ip_run(&ns, "route add blackhole 10.10.0.0/26 proto 98");
    // Ours, no longer wanted.
    ip_run(&ns, "route add 10.30.0.0/24 dev d0 proto 98");
    ip_run(&ns, "-6 route add fd00:30::/64 dev d0 proto 98");
    // Another protocol's route, and our protocol in another table: both stay.
    ip_run(&ns, "route add 10.50.0.0/16 dev d0 proto static");
    // Another protocol's route exactly where we want one: reported, not overwritten.
    ip_run(&ns, "route add 10.10.0.64/26 dev d0 proto static");
    ip_run(&ns, "route add 10.60.0.0/16 dev d0 table 100 proto 98");
    let wanted: RouteSet = [
        Route::blackhole(p("10.10.0.0/26")),
        Route::host(ip("10.10.0.5"), d0),
        Route::blackhole(p("fd00:10::/122")),
        Route::host(ip("fd00:10::5"), d0),
        Route::blackhole(p("10.10.0.64/26")),
    ]
    .into_iter()
    .collect();

    let mut monitor = IpMonitor::start(&ns);
    let mark = monitor.mark();
    let done = in_netns(&ns, || Fib::open(FibConfig::default())?.reconcile(&wanted)).unwrap();
    let events = monitor.since(&mark);

    assert_eq!(done.in_place, 1);
    assert_eq!(done.applied.written, 5, "3 installs and 2 removals");
    assert!(
        done.applied.failures.is_empty(),
        "{:?}",
        done.applied.failures
    );
    assert_eq!(done.conflicts, [Route::blackhole(p("10.10.0.64/26"))]);
    let deleted: Vec<_> = events.iter().filter(|l| l.starts_with("Deleted")).collect();
    let added: Vec<_> = events
        .iter()
        .filter(|l| !l.starts_with("Deleted"))
        .collect();
    assert_eq!(deleted.len(), 2, "{events:#?}");
    assert!(
        deleted.iter().any(|l| l.contains("10.30.0.0/24")),
        "{events:#?}"
    );
    assert!(
        deleted.iter().any(|l| l.contains("fd00:30::/64")),
        "{events:#?}"
    );
    assert_eq!(added.len(), 3, "{events:#?}");
    assert!(
        !events.iter().any(|l| l.contains("10.10.0.0/26")),
        "the route already in place was written: {events:#?}"
    );

    let block = ip_route(&ns, "10.10.0.0/26").expect("blackhole kept");
    assert_eq!(block["type"], "blackhole");
    let host = ip_route(&ns, "10.10.0.5/32").expect("host route installed");
    assert_eq!(host["dev"], "d0");
    assert_eq!(host["protocol"].to_string().trim_matches('"'), PROTO);
    assert_eq!(
        ip_route(&ns, "fd00:10::/122").expect("v6 blackhole")["type"],
        "blackhole"
    );
    assert_eq!(
        ip_route(&ns, "fd00:10::5/128").expect("v6 host route")["dev"],
        "d0"
    );
    assert!(ip_route(&ns, "10.30.0.0/24").is_none());
    assert!(ip_route(&ns, "fd00:30::/64").is_none());
    assert_eq!(
        ip_route(&ns, "10.50.0.0/16").expect("foreign route")["protocol"],
        "static"
    );
    let slot = ip_route(&ns, "10.10.0.64/26").expect("foreign route in our slot");
    assert_eq!(slot["protocol"], "static");
    assert_eq!(
        ip_routes(&ns, false, &["table", "100"]).len(),
        1,
        "other table untouched"
    );

    // A restart: a new socket finds everything in place and writes nothing.
    let mark = monitor.mark();
    let (again, writes) = in_netns(&ns, || {
        let mut fib = Fib::open(FibConfig::default())?;
        let done = fib.reconcile(&wanted)?;
        Ok::<_, Error>((done, fib.writes()))
    })
    .unwrap();
    assert_eq!(writes, 0);
    assert_eq!(again.in_place, 4);
    assert_eq!(again.conflicts.len(), 1);
    assert!(
        monitor.since(&mark).is_empty(),
        "a reconcile with nothing to do wrote"
    );
}

#[test]
fn ecmp_routes_are_multipath_and_replaced_in_place() {
    let ns = host_with_link("ecmp");
    let first = [
        via("10.20.0.0/24", &["192.168.10.2", "192.168.10.3"]),
        via("fd00:20::/64", &["fd00:a::2", "fd00:a::3"]),
    ];
    let applied = in_netns(&ns, || {
        Fib::open(FibConfig::default())?.apply(&install(&first))
    })
    .unwrap();
    assert!(applied.failures.is_empty(), "{:?}", applied.failures);
    let v4 = ip_route(&ns, "10.20.0.0/24").expect("v4 ECMP route");
    assert_eq!(
        gateways(&v4),
        BTreeSet::from(["192.168.10.2".into(), "192.168.10.3".into()])
    );
    let v6 = ip_route(&ns, "fd00:20::/64").expect("v6 ECMP route");
    assert_eq!(
        gateways(&v6),
        BTreeSet::from(["fd00:a::2".into(), "fd00:a::3".into()])
    );

    // One next hop changes: one replace per route, no delete of the v4 route.
    let mut monitor = IpMonitor::start(&ns);
    let mark = monitor.mark();
    let second = [
        via("10.20.0.0/24", &["192.168.10.2", "192.168.10.4"]),
        via("fd00:20::/64", &["fd00:a::2", "fd00:a::4"]),
    ];
    let applied = in_netns(&ns, || {
        Fib::open(FibConfig::default())?.apply(&install(&second))
    })
    .unwrap();
    assert_eq!(applied.written, 2);
    assert!(applied.failures.is_empty(), "{:?}", applied.failures);
    let events = monitor.since(&mark);
    assert!(
        !events
            .iter()
            .any(|l| l.starts_with("Deleted") && l.contains("10.20.0.0/24")),
        "{events:#?}"
    );
    let v4 = ip_route(&ns, "10.20.0.0/24").unwrap();
    assert_eq!(
        gateways(&v4),
        BTreeSet::from(["192.168.10.2".into(), "192.168.10.4".into()])
    );
    let v6 = ip_routes(&ns, true, &["exact", "fd00:20::/64"]);
    assert_eq!(v6.len(), 1, "one v6 route, not leftover siblings: {v6:#?}");
    assert_eq!(
        gateways(&v6[0]),
        BTreeSet::from(["fd00:a::2".into(), "fd00:a::4".into()])
    );

    // Link-local IPv6 next hops need their interface, per hop.
    let d0 = ifindex(&ns, "d0");
    let link_local = NextHops::new(["fe80::2", "fe80::3"].map(|g| NextHop {
        gateway: ip(g),
        ifindex: Some(d0),
    }))
    .unwrap();
    let unnumbered = Route::via(p("fd00:21::/64"), link_local).unwrap();
    let applied = in_netns(&ns, || {
        Fib::open(FibConfig::default())?.apply(&[Change::Create(unnumbered.clone())])
    })
    .unwrap();
    assert!(applied.failures.is_empty(), "{:?}", applied.failures);
    let ll = ip_route(&ns, "fd00:21::/64").expect("link-local ECMP route");
    assert_eq!(
        gateways(&ll),
        BTreeSet::from(["fe80::2".into(), "fe80::3".into()])
    );

    // Listed back, the multipath routes are what we want: nothing to write.
    let wanted: RouteSet = second.iter().cloned().chain([unnumbered]).collect();
    let (idle, installed) = in_netns(&ns, || {
        let mut fib = Fib::open(FibConfig::default())?;
        Ok::<_, Error>((fib.reconcile(&wanted)?, fib.installed()?))
    })
    .unwrap();
    assert_eq!((idle.in_place, idle.applied.written), (3, 0));
    // What is installed carries the interfaces the kernel resolved; it does what we want.
    assert_eq!(installed.len(), wanted.len());
    assert!(wanted.iter().all(|w| {
        installed
            .get(&w.prefix())
            .is_some_and(|have| w.kind().is_satisfied_by(have))
    }));

    // Back to a single next hop, in place as well.
    let third = [via("fd00:20::/64", &["fd00:a::3"])];
    in_netns(&ns, || {
        Fib::open(FibConfig::default())?.apply(&install(&third))
    })
    .unwrap();
    let v6 = ip_routes(&ns, true, &["exact", "fd00:20::/64"]);
    assert_eq!(v6.len(), 1, "{v6:#?}");
    assert_eq!(v6[0]["gateway"], "fd00:a::3");
    assert!(v6[0].get("nexthops").is_none());

    // Removing a v6 multipath route takes all its siblings.
    in_netns(&ns, || {
        let mut fib = Fib::open(FibConfig::default())?;
        fib.apply(&install(&second))?;
        fib.reconcile(&RouteSet::new())
    })
    .unwrap();
    assert!(ip_routes(&ns, true, &["proto", PROTO]).is_empty());
    assert!(ip_routes(&ns, false, &["proto", PROTO]).is_empty());
}

#[test]
fn routes_go_to_the_configured_table_even_before_it_exists() {
    let ns = host_with_link("tbl");
    let config = FibConfig {
        table: TableId::new(1234).unwrap(),
        ..FibConfig::default()
    };
    let wanted: RouteSet = [Route::blackhole(p("10.10.0.0/26"))].into_iter().collect();
    let done = in_netns(&ns, || {
        let mut fib = Fib::open(config)?;
        assert!(
            fib.dump()?.is_empty(),
            "a table that does not exist lists as empty"
        );
        fib.reconcile(&wanted)
    })
    .unwrap();
    assert_eq!(done.applied.written, 1);
    assert_eq!(ip_routes(&ns, false, &["table", "1234"]).len(), 1);
    assert!(ip_route(&ns, "10.10.0.0/26").is_none(), "nothing in main");
}

#[test]
fn refusals_name_the_route_and_the_reason() {
    let ns = host_with_link("err");
    ip_run(&ns, "route add 10.10.1.0/26 dev d0 proto static");
    let mut changes = install(&[
        Route::host(ip("10.10.0.9"), Ifindex::new(9999).unwrap()),
        via("10.99.0.0/24", &["203.0.113.1"]),
        Route::blackhole(p("10.10.0.0/26")),
    ]);
    // An add never overwrites what appeared in its slot.
    changes.push(Change::Create(Route::blackhole(p("10.10.1.0/26"))));
    let applied = in_netns(&ns, || Fib::open(FibConfig::default())?.apply(&changes)).unwrap();
    assert_eq!(applied.written, 4);
    let got: Vec<(String, Refusal)> = applied
        .failures
        .iter()
        .map(|f| (f.change.prefix().to_string(), f.cause.clone()))
        .collect();
    assert_eq!(
        got,
        [
            ("10.10.0.9/32".to_string(), Refusal::NoSuchInterface),
            ("10.99.0.0/24".to_string(), Refusal::GatewayUnreachable),
            ("10.10.1.0/26".to_string(), Refusal::Occupied),
        ]
    );
    assert_eq!(ip_route(&ns, "10.10.1.0/26").unwrap()["protocol"], "static");
    assert!(applied.failures[0].to_string().contains("10.10.0.9/32"));
    assert!(
        ip_route(&ns, "10.10.0.0/26").is_some(),
        "the good route of the batch went in"
    );
    assert!(matches!(
        in_netns(&ns, || Ifindex::by_name("nope0")),
        Err(Error::InterfaceNotFound(name)) if name == "nope0"
    ));
}

#[test]
fn writes_without_cap_net_admin_fail_with_permission_denied() {
    let ns = host_with_link("cap");
    let result = in_netns(&ns, || {
        drop_all_capabilities_of_this_thread();
        Fib::open(FibConfig::default())?.apply(&install(&[Route::blackhole(p("10.10.0.0/26"))]))
    });
    assert!(matches!(result, Err(Error::PermissionDenied)), "{result:?}");
    assert!(ip_route(&ns, "10.10.0.0/26").is_none());
}

/// capset(2) on the calling thread only (the raw syscall, unlike libc wrappers, does not
/// propagate to other threads); sockets opened afterwards carry no capabilities.
fn drop_all_capabilities_of_this_thread() {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let header = Header {
        version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
        pid: 0,
    };
    let data = [Data {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: both pointers refer to live, correctly laid out structs for the call's duration.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) };
    assert_eq!(rc, 0, "capset: {}", std::io::Error::last_os_error());
}

async fn wait_status(
    status: &mut tokio::sync::watch::Receiver<FibStatus>,
    what: &str,
    ok: impl FnMut(&FibStatus) -> bool,
) -> FibStatus {
    let found = tokio::time::timeout(SETTLE, status.wait_for(ok))
        .await
        .ok()
        .and_then(Result::ok)
        .map(|s| s.clone());
    found.unwrap_or_else(|| panic!("status never became {what}: {:?}", *status.borrow()))
}

async fn wait_route(ns: &Netns, prefix: &str, present: bool, within: Duration) -> Duration {
    let start = Instant::now();
    while ip_route(ns, prefix).is_some() != present {
        assert!(
            start.elapsed() < within,
            "{prefix} not {} within {within:?}",
            if present { "present" } else { "gone" }
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    start.elapsed()
}

#[test]
fn the_reconcile_task_repairs_routes_and_follows_links_and_updates() {
    let ns = host_with_link("task");
    let d0 = ifindex(&ns, "d0");
    let wanted: RouteSet = [
        Route::blackhole(p("10.10.0.0/26")),
        Route::host(ip("10.10.0.5"), d0),
        Route::host(ip("fd00:10::5"), d0),
        via("10.20.0.0/24", &["192.168.10.2", "192.168.10.3"]),
    ]
    .into_iter()
    .collect();
    let wanted_again = wanted.clone();
    block_on_in_netns(&ns, || async {
        let fib = Fib::open(FibConfig::default()).unwrap();
        let monitor = FibMonitor::open().unwrap();
        let (handle, task) = spawn(fib, monitor, wanted, ReconcileOptions::default());
        let mut status = handle.watch();
        let synced = wait_status(&mut status, "in sync", |s| s.in_sync).await;
        assert_eq!((synced.wanted, synced.installed, synced.writes), (4, 4, 4));

        // Deleted by hand: back at once (the monitor's event, not the resync).
        for prefix in ["10.10.0.5/32", "fd00:10::5/128", "10.20.0.0/24"] {
            ns.ip(&["route", "del", prefix]).unwrap();
            let took = wait_route(&ns, prefix, true, REPAIR).await;
            eprintln!("{prefix} restored after {took:?}");
        }
        // Replaced by hand with something else of ours: put back too.
        ip_run(&ns, "route replace 10.10.0.5/32 via 192.168.10.9 proto 98");
        let start = Instant::now();
        while ip_route(&ns, "10.10.0.5/32").is_none_or(|r| r["dev"] != "d0") {
            assert!(start.elapsed() < REPAIR, "altered route not repaired");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        // The link goes down: its routes leave the kernel and are reported, not lost.
        ip_run(&ns, "link set d0 down");
        let down = wait_status(&mut status, "reporting the down link", |s| {
            s.failures.iter().any(|f| f.cause == Refusal::LinkDown)
        })
        .await;
        assert!(!down.in_sync);
        assert!(
            down.failures
                .iter()
                .any(|f| f.change.prefix() == p("10.10.0.5/32") && f.cause.is_unresolvable()),
            "{down:?}"
        );
        assert!(ip_route(&ns, "10.10.0.5/32").is_none());
        // ... and come back when it is up again.
        ip_run(&ns, "link set d0 up");
        wait_status(&mut status, "in sync after link up", |s| s.in_sync).await;
        wait_route(&ns, "10.10.0.5/32", true, REPAIR).await;
        assert_eq!(gateways(&ip_route(&ns, "10.20.0.0/24").unwrap()).len(), 2);

        // Updates are written through, and only what they change.
        let before = handle.status().writes;
        let block = Route::blackhole(p("10.10.1.0/26"));
        handle
            .update(WantedUpdate::Upsert(block.clone()))
            .await
            .unwrap();
        wait_route(&ns, "10.10.1.0/26", true, REPAIR).await;
        handle.update(WantedUpdate::Upsert(block)).await.unwrap();
        handle
            .update(WantedUpdate::Withdraw(p("10.10.1.0/26")))
            .await
            .unwrap();
        wait_route(&ns, "10.10.1.0/26", false, REPAIR).await;
        let after = wait_status(&mut status, "4 wanted, in sync", |s| {
            s.wanted == 4 && s.in_sync
        })
        .await;
        assert_eq!(
            after.writes - before,
            2,
            "the repeated upsert wrote nothing"
        );

        // Another protocol's route in the slot: the upsert waits as a conflict.
        ip_run(&ns, "route add 10.10.2.0/26 dev d0 proto static");
        tokio::time::sleep(Duration::from_millis(100)).await;
        let held = Route::blackhole(p("10.10.2.0/26"));
        handle
            .update(WantedUpdate::Upsert(held.clone()))
            .await
            .unwrap();
        let conflicted =
            wait_status(&mut status, "conflicted", |s| s.conflicts.contains(&held)).await;
        assert!(!conflicted.in_sync);
        assert_eq!(ip_route(&ns, "10.10.2.0/26").unwrap()["protocol"], "static");
        handle
            .update(WantedUpdate::Withdraw(held.prefix()))
            .await
            .unwrap();
        wait_status(&mut status, "in sync again", |s| s.in_sync).await;

        // Dropping the handle ends the task and leaves the routes for the next start...
        drop(status);
        drop(handle);
        tokio::time::timeout(SETTLE, task).await.unwrap().unwrap();
        assert!(ip_route(&ns, "10.10.0.5/32").is_some());

        // ... which finds them in place and writes nothing.
        let fib = Fib::open(FibConfig::default()).unwrap();
        let monitor = FibMonitor::open().unwrap();
        let (handle, _task) = spawn(fib, monitor, wanted_again, ReconcileOptions::default());
        let restarted = wait_status(&mut handle.watch(), "in sync", |s| s.in_sync).await;
        assert_eq!((restarted.installed, restarted.writes), (4, 0));
        assert!(restarted.last_reconcile.is_some());
    });
}

/// a ── r ── b: `r` forwards; `b` holds 10.9.9.9 and fd00:9::9 on its loopback like a
/// container behind a host. Only the routes we program in `r` make `a` reach them.
#[test]
fn programmed_routes_carry_real_packets() {
    let a = Netns::new("fwa").unwrap();
    let r = Netns::new("fwr").unwrap();
    let b = Netns::new("fwb").unwrap();
    link(
        &a,
        "a-r",
        &["10.0.1.2/24", "fd00:1::2/64"],
        &r,
        "r-a",
        &["10.0.1.1/24", "fd00:1::1/64"],
    )
    .unwrap();
    link(
        &r,
        "r-b",
        &["10.0.2.1/24", "fd00:2::1/64"],
        &b,
        "b-r",
        &["10.0.2.2/24", "fd00:2::2/64"],
    )
    .unwrap();
    ip_run(&b, "addr add 10.9.9.9/32 dev lo");
    ip_run(&b, "addr add fd00:9::9/128 dev lo");
    for (ns, gw4, gw6) in [(&a, "10.0.1.1", "fd00:1::1"), (&b, "10.0.2.1", "fd00:2::1")] {
        ns.ip(&["route", "add", "default", "via", gw4]).unwrap();
        ns.ip(&["-6", "route", "add", "default", "via", gw6])
            .unwrap();
    }
    r.sysctl("net.ipv4.ip_forward", "1").unwrap();
    r.sysctl("net.ipv6.conf.all.forwarding", "1").unwrap();
    let r_b = ifindex(&r, "r-b");
    let program = |routes: &[Route]| {
        let applied = in_netns(&r, || {
            Fib::open(FibConfig::default())?.apply(&install(routes))
        })
        .unwrap();
        assert!(applied.failures.is_empty(), "{:?}", applied.failures);
    };

    assert!(
        !a.ping("10.9.9.9"),
        "reachable before any route was programmed"
    );
    program(&[
        via("10.9.9.0/24", &["10.0.2.2"]),
        via("fd00:9::/64", &["fd00:2::2"]),
    ]);
    assert!(reaches(&a, "10.9.9.9"), "learned route does not forward");
    assert!(
        reaches(&a, "fd00:9::9"),
        "learned v6 route does not forward"
    );

    // The block becomes a blackhole in place: packets die in r.
    program(&[
        Route::blackhole(p("10.9.9.0/24")),
        Route::blackhole(p("fd00:9::/64")),
    ]);
    assert!(!a.ping("10.9.9.9"), "blackhole forwards");
    assert!(!a.ping("fd00:9::9"), "v6 blackhole forwards");

    // A host route to the veth punches through the block's blackhole.
    program(&[Route::host(ip("10.9.9.9"), r_b)]);
    assert!(
        reaches(&a, "10.9.9.9"),
        "host route to the veth does not forward"
    );
}

/// Pings until answered (first packets can wait a second on neighbour discovery).
fn reaches(from: &Netns, addr: &str) -> bool {
    wait_until(SETTLE, || from.ping(addr))
}

/// Our own 20,000 writes notify our own monitor 20,000 times (more than its buffer holds): the
/// task must settle without writing anything twice.
#[test]
fn the_task_settles_after_a_large_initial_set() {
    let ns = host_with_link("big");
    let wanted: RouteSet = (0..20_000u32)
        .map(|i| Route::blackhole(Prefix::host(IpAddr::V4(Ipv4Addr::from(0x0a64_0000 + i)))))
        .collect();
    block_on_in_netns(&ns, || async {
        let fib = Fib::open(FibConfig::default()).unwrap();
        let monitor = FibMonitor::open().unwrap();
        let (handle, _task) = spawn(fib, monitor, wanted, ReconcileOptions::default());
        let mut status = handle.watch();
        wait_status(&mut status, "in sync", |s| {
            s.in_sync && s.installed == 20_000
        })
        .await;
        // Let every notification of our own writes arrive and be judged.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let settled = handle.status();
        eprintln!("settled after {} reconciles", settled.reconciles);
        assert!(settled.in_sync, "{settled:?}");
        assert_eq!(settled.writes, 20_000, "something was written twice");
        assert!(settled.reconciles <= 3, "{} reconciles", settled.reconciles);
    });
    assert_eq!(ip_routes(&ns, false, &["proto", PROTO]).len(), 20_000);
}
