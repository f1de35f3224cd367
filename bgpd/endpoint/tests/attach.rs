//! Attach and detach against real namespaces: one plays the host (the library runs inside it),
//! others the containers. Forwarding is checked with real packets.

use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use bgpd_endpoint::{
    Attachment, ContainerId, Detach, EndpointSpec, Endpoints, Error, IfName, Mtu, NetnsRef,
    RouteTag, Side, host_ifname,
};
use testkit::netns::Netns;

/// A protocol number no test machine uses; the kernel crate owns the real default.
const TAG: RouteTag = RouteTag {
    protocol: 201,
    table: 254,
};

/// Runs `work` on a thread inside `ns`; the test thread itself never changes namespace.
fn in_ns<T: Send>(ns: &Netns, work: impl FnOnce() -> T + Send) -> T {
    testkit::traffic::in_ns(ns, work).expect("enter namespace")
}

/// Runs `body` with an [`Endpoints`] living in the host namespace `host`.
fn on_host<T: Send>(host: &Netns, body: impl AsyncFnOnce(&Endpoints) -> T + Send) -> T {
    in_ns(host, move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let endpoints = Endpoints::new(TAG).expect("netlink connection");
            body(&endpoints).await
        })
    })
}

/// A host namespace with an uplink (a veth pair with both ends inside: nothing leaves the
/// namespace) carrying the host's addresses and default routes, with forwarding on as the
/// daemon sets it. The default route matters: proxy ARP answers only for addresses the host
/// routes elsewhere (see the README).
fn host_ns() -> Netns {
    let host = Netns::new("host").expect("host namespace");
    for args in [
        &[
            "link", "add", "uplink0", "type", "veth", "peer", "name", "uplink1",
        ][..],
        &["link", "set", "uplink0", "up"],
        &["link", "set", "uplink1", "up"],
        &["addr", "add", "10.200.0.1/24", "dev", "uplink0"],
        &["addr", "add", "fd00:200::1/64", "dev", "uplink0", "nodad"],
        &["route", "add", "default", "dev", "uplink0"],
        &["-6", "route", "add", "default", "dev", "uplink0"],
    ] {
        host.ip(args).expect("set up host uplink");
    }
    host.sysctl("net.ipv4.ip_forward", "1").expect("ip_forward");
    host.sysctl("net.ipv6.conf.all.forwarding", "1")
        .expect("ipv6 forwarding");
    host
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn spec(ns: &Netns, id: &str, addrs: &[&str], mtu: u32) -> EndpointSpec {
    EndpointSpec::new(
        NetnsRef::Name(ns.name().to_string()),
        ContainerId::new(id).expect("container id"),
        IfName::default(),
        addrs.iter().map(|a| ip(a)).collect(),
        Mtu::new(mtu).expect("mtu"),
    )
    .expect("valid spec")
}

fn id(s: &str) -> ContainerId {
    ContainerId::new(s).expect("container id")
}

/// Whether a TCP connection from `client` to `server_addr` (a listener inside `server`) works.
fn tcp_connects(server: &Netns, client: &Netns, server_addr: SocketAddr) -> bool {
    let listener = in_ns(server, || TcpListener::bind(server_addr)).expect("listen");
    let accept = std::thread::spawn(move || listener.accept().map(|_| ()));
    let connected = in_ns(client, || {
        TcpStream::connect_timeout(&server_addr, Duration::from_secs(2)).is_ok()
    });
    // Without a connection the accept never returns: leave that thread blocked (it ends with
    // the test binary) rather than hang the test.
    connected && accept.join().is_ok_and(|r| r.is_ok())
}

fn proto_routes(host: &Netns, family: &str) -> String {
    host.ip(&[family, "route", "show", "proto", "201"])
        .expect("ip route")
}

#[test]
#[serial_test::serial]
fn two_containers_reach_each_other_and_the_host_over_v4_and_v6() {
    let host = host_ns();
    let (a, b) = (Netns::new("ca").unwrap(), Netns::new("cb").unwrap());
    let (att_a, att_b) = on_host(&host, async |eps: &Endpoints| {
        let att_a = eps
            .attach(&spec(&a, "ctr-a", &["10.244.1.2", "fd00:244::2"], 1500))
            .await
            .expect("attach a");
        let att_b = eps
            .attach(&spec(&b, "ctr-b", &["10.244.1.3", "fd00:244::3"], 1500))
            .await
            .expect("attach b");
        (att_a, att_b)
    });
    assert_eq!(att_a.container_ifname.as_str(), "eth0");
    assert_ne!(att_a.host_ifname, att_b.host_ifname);

    // The container has host addresses only and routes everything via the link-local gateway.
    let routes = a.ip(&["route"]).unwrap();
    assert_eq!(
        routes.trim(),
        "default via 169.254.1.1 dev eth0 onlink",
        "{routes}"
    );
    let routes6 = a.ip(&["-6", "route"]).unwrap();
    assert!(
        routes6.contains("default via fe80::1 dev eth0"),
        "{routes6}"
    );
    let addrs = a.ip(&["addr", "show", "eth0"]).unwrap();
    assert!(addrs.contains("inet 10.244.1.2/32"), "{addrs}");
    assert!(addrs.contains("inet6 fd00:244::2/128"), "{addrs}");

    for (from, to) in [
        (&a, "10.244.1.3"),
        (&b, "10.244.1.2"),
        (&a, "fd00:244::3"),
        (&b, "fd00:244::2"),
        (&a, "10.200.0.1"),
        (&a, "fd00:200::1"),
        (&host, "10.244.1.2"),
        (&host, "fd00:244::2"),
    ] {
        assert!(from.ping(to), "ping {to} from {}", from.name());
    }
    // The gateway was resolved by proxy ARP: to the host-side veth's own MAC.
    let host_mac = host
        .ip(&["link", "show", att_a.host_ifname.as_str()])
        .unwrap();
    let neigh = a.ip(&["neigh", "show", "169.254.1.1"]).unwrap();
    let gw_mac = neigh
        .split_whitespace()
        .skip_while(|w| *w != "lladdr")
        .nth(1)
        .expect("gateway neighbour entry");
    assert!(host_mac.contains(gw_mac), "{neigh} vs {host_mac}");

    assert!(tcp_connects(&b, &a, "10.244.1.3:7001".parse().unwrap()));
    assert!(tcp_connects(&b, &a, "[fd00:244::3]:7002".parse().unwrap()));
    assert!(tcp_connects(&a, &b, "10.244.1.2:7003".parse().unwrap()));
}

#[test]
#[serial_test::serial]
fn attach_is_idempotent_and_detach_removes_everything() {
    let host = host_ns();
    let c = Netns::new("c").unwrap();
    let s = spec(&c, "ctr-idem", &["10.244.2.2", "fd00:244::22"], 1500);
    let (first, second): (Attachment, Attachment) = on_host(&host, async |eps: &Endpoints| {
        let first = eps.attach(&s).await.expect("attach");
        let second = eps.attach(&s).await.expect("attach again");
        (first, second)
    });
    // Same interfaces (not recreated), same routes, one of each.
    assert_eq!(first, second);
    let v4 = proto_routes(&host, "-4");
    let v6 = proto_routes(&host, "-6");
    assert_eq!(v4.lines().count(), 1, "{v4}");
    assert_eq!(v6.lines().count(), 1, "{v6}");
    assert!(
        v4.contains(&format!("10.244.2.2 dev {} scope link", first.host_ifname)),
        "{v4}"
    );
    assert!(c.ping("10.200.0.1"));

    let (listed, gone, again, listed_after) = on_host(&host, async |eps: &Endpoints| {
        let listed = eps.list().await.expect("list");
        let gone = eps
            .detach(s.container_id(), s.ifname())
            .await
            .expect("detach");
        let again = eps
            .detach(s.container_id(), s.ifname())
            .await
            .expect("detach again");
        (listed, gone, again, eps.list().await.expect("list"))
    });
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].container_id, *s.container_id());
    assert_eq!(listed[0].host_ifindex, first.host_ifindex);
    assert!(listed_after.is_empty(), "{listed_after:?}");
    assert_eq!((gone, again), (Detach::Removed, Detach::Absent));
    assert!(
        host.ip(&["link", "show", first.host_ifname.as_str()])
            .is_err()
    );
    assert!(c.ip(&["link", "show", "eth0"]).is_err());
    assert_eq!(proto_routes(&host, "-4"), "");
    assert_eq!(proto_routes(&host, "-6"), "");
}

#[test]
#[serial_test::serial]
fn reattach_converges_addresses_and_mtu_on_both_ends() {
    let host = host_ns();
    let c = Netns::new("c").unwrap();
    let att = on_host(&host, async |eps: &Endpoints| {
        eps.attach(&spec(&c, "ctr-mtu", &["10.244.3.2"], 1500))
            .await
            .expect("attach");
        eps.attach(&spec(&c, "ctr-mtu", &["10.244.3.3", "fd00:244::33"], 1400))
            .await
            .expect("reattach")
    });
    let host_link = host
        .ip(&["link", "show", att.host_ifname.as_str()])
        .unwrap();
    let container_link = c.ip(&["link", "show", "eth0"]).unwrap();
    assert!(host_link.contains("mtu 1400"), "{host_link}");
    assert!(container_link.contains("mtu 1400"), "{container_link}");

    let v4 = proto_routes(&host, "-4");
    assert!(!v4.contains("10.244.3.2"), "stale route stays: {v4}");
    assert!(v4.contains("10.244.3.3"), "{v4}");
    let addrs = c.ip(&["addr", "show", "eth0"]).unwrap();
    assert!(
        !addrs.contains("10.244.3.2"),
        "stale address stays: {addrs}"
    );
    assert!(addrs.contains("inet 10.244.3.3/32"), "{addrs}");
    assert!(c.ping("10.200.0.1"));
    assert!(c.ping("fd00:200::1"));
    // A full-size packet passes at the new MTU and not beyond.
    assert!(
        c.exec(
            "ping",
            &["-c1", "-W1", "-M", "do", "-s", "1372", "10.200.0.1"]
        )
        .is_ok()
    );
    assert!(
        c.exec(
            "ping",
            &["-c1", "-W1", "-M", "do", "-s", "1373", "10.200.0.1"]
        )
        .is_err()
    );
}

#[test]
#[serial_test::serial]
fn missing_namespace_is_a_clear_error() {
    let host = host_ns();
    let errors = on_host(&host, async |eps: &Endpoints| {
        let mut errors = Vec::new();
        let not_a_namespace = std::env::current_exe().expect("test binary path");
        // A FIFO would block a plain open(2) forever.
        let fifo = std::env::temp_dir().join(format!("fab{}-fifo", std::process::id()));
        let _ = std::fs::remove_file(&fifo);
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRUSR).expect("mkfifo");
        for ns in [
            NetnsRef::parse("fab-no-such-namespace").unwrap(),
            NetnsRef::parse("/proc/2147483646/ns/net").unwrap(),
            NetnsRef::Path(not_a_namespace),
            NetnsRef::parse("/proc/self/ns/mnt").unwrap(),
            NetnsRef::Path(fifo.clone()),
        ] {
            let s = EndpointSpec::new(
                ns,
                id("ctr-missing"),
                IfName::default(),
                vec![ip("10.244.4.2")],
                Mtu::default(),
            )
            .unwrap();
            errors.push(eps.attach(&s).await.expect_err("attach must fail"));
        }
        let _ = std::fs::remove_file(&fifo);
        errors
    });
    assert!(
        matches!(&errors[0], Error::NamespaceNotFound { path }
            if path.to_str() == Some("/run/netns/fab-no-such-namespace")),
        "{:?}",
        errors[0]
    );
    assert_eq!(
        errors[1].to_string(),
        "network namespace /proc/2147483646/ns/net does not exist"
    );
    for err in &errors[2..] {
        assert!(matches!(err, Error::NotANamespace { .. }), "{err:?}");
    }
    // Nothing was created on the host.
    let links = host.ip(&["link"]).unwrap();
    assert!(!links.contains("bgpd"), "{links}");
}

#[test]
#[serial_test::serial]
fn a_default_route_of_someone_else_is_never_replaced() {
    let host = host_ns();
    let c = Netns::new("c").unwrap();
    // A namespace that already routes IPv4 elsewhere: a wrong namespace given by mistake, or
    // a runtime that set up its own network.
    testkit::netns::link(&c, "other0", &["10.250.0.10/24"], &host, "other1", &[]).unwrap();
    c.ip(&["route", "add", "default", "via", "10.250.0.1"])
        .unwrap();
    let err = on_host(&host, async |eps: &Endpoints| {
        eps.attach(&spec(&c, "ctr-default", &["10.244.10.2"], 1500))
            .await
            .expect_err("attach must not replace the default route")
    });
    assert!(
        matches!(&err, Error::DefaultRouteTaken { family: "IPv4", .. }),
        "{err:?}"
    );
    let routes = c.ip(&["route"]).unwrap();
    assert!(
        routes.contains("default via 10.250.0.1 dev other0"),
        "{routes}"
    );
    // Checked before anything was made.
    assert!(c.ip(&["link", "show", "eth0"]).is_err());
    let other = host_ifname(&id("ctr-default"), &IfName::default());
    assert!(host.ip(&["link", "show", other.as_str()]).is_err());
}

#[test]
#[serial_test::serial]
fn a_host_without_a_default_route_is_told_proxy_arp_cannot_answer() {
    let bare = Netns::new("bare").unwrap();
    let c = Netns::new("c").unwrap();
    let answerable = on_host(&bare, async |eps: &Endpoints| {
        eps.attach(&spec(&c, "ctr-bare", &["10.244.11.2"], 1500))
            .await
            .expect("attach works; only the gateway does not answer");
        eps.ipv4_gateway_answerable().await.expect("route lookup")
    });
    assert!(!answerable);
    // The check tells the truth: the container's ARP for the gateway goes unanswered.
    assert!(!c.ping("10.200.0.1"));
    let neigh = c.ip(&["neigh", "show", "169.254.1.1"]).unwrap();
    assert!(!neigh.contains("lladdr"), "{neigh}");

    let host = host_ns();
    assert!(on_host(&host, async |eps: &Endpoints| {
        eps.ipv4_gateway_answerable().await.expect("route lookup")
    }));
}

#[test]
#[serial_test::serial]
fn the_hosts_own_namespace_is_refused() {
    let host = host_ns();
    let err = on_host(&host, async |eps: &Endpoints| {
        let s = spec(&host, "ctr-self", &["10.244.5.2"], 1500);
        eps.attach(&s).await.expect_err("attach to self must fail")
    });
    assert!(
        matches!(
            err,
            Error::Invalid(bgpd_endpoint::InvalidSpec::HostNamespace(_))
        ),
        "{err:?}"
    );
}

#[test]
#[serial_test::serial]
fn interfaces_that_are_not_ours_are_never_touched() {
    let host = host_ns();
    let c = Netns::new("c").unwrap();
    let squatter = host_ifname(&id("ctr-clash"), &IfName::default());
    host.ip(&["link", "add", squatter.as_str(), "type", "bridge"])
        .unwrap();
    let (attach_err, detach_err) = on_host(&host, async |eps: &Endpoints| {
        let s = spec(&c, "ctr-clash", &["10.244.6.2"], 1500);
        (
            eps.attach(&s).await.expect_err("host-side clash"),
            eps.detach(s.container_id(), s.ifname())
                .await
                .expect_err("detach must not delete a foreign interface"),
        )
    });
    for err in [&attach_err, &detach_err] {
        assert!(
            matches!(err, Error::NameClash { side: Side::Host, ifname, .. }
                if *ifname == squatter.as_str()),
            "{err:?}"
        );
    }
    assert!(host.ip(&["link", "show", squatter.as_str()]).is_ok());

    // Container side: an eth0 that is not our veth's peer.
    let d = Netns::new("d").unwrap();
    d.ip(&["link", "add", "eth0", "type", "bridge"]).unwrap();
    let err = on_host(&host, async |eps: &Endpoints| {
        eps.attach(&spec(&d, "ctr-clash2", &["10.244.6.3"], 1500))
            .await
            .expect_err("container-side clash")
    });
    assert!(
        matches!(&err, Error::NameClash { side: Side::Container, ifname, .. } if ifname == "eth0"),
        "{err:?}"
    );
    assert!(err.to_string().contains("bridge"), "{err}");
    let other = host_ifname(&id("ctr-clash2"), &IfName::default());
    assert!(host.ip(&["link", "show", other.as_str()]).is_err());
}

#[test]
#[serial_test::serial]
fn a_stale_host_veth_is_replaced() {
    let host = host_ns();
    let (old, new) = (Netns::new("old").unwrap(), Netns::new("new").unwrap());
    // The same container id attached into another namespace first (a restarted sandbox whose
    // old namespace is still held somewhere): the pair must move, not clash.
    let att = on_host(&host, async |eps: &Endpoints| {
        eps.attach(&spec(&old, "ctr-move", &["10.244.7.2"], 1500))
            .await
            .expect("attach old");
        eps.attach(&spec(&new, "ctr-move", &["10.244.7.2"], 1500))
            .await
            .expect("attach new")
    });
    assert!(old.ip(&["link", "show", "eth0"]).is_err());
    assert!(new.ip(&["link", "show", "eth0"]).is_ok());
    assert!(
        proto_routes(&host, "-4").contains(att.host_ifname.as_str()),
        "route follows the new veth"
    );
    assert!(new.ping("10.200.0.1"));
}

#[test]
#[serial_test::serial]
fn without_privileges_the_error_says_so() {
    let host = host_ns();
    let c = Netns::new("c").unwrap();
    let s = spec(&c, "ctr-unpriv", &["10.244.8.2"], 1500);
    let err = on_host(&host, async |eps: &Endpoints| {
        // Drop root on this thread only (the raw syscall, unlike libc's wrapper, does not
        // broadcast to the other threads); the thread ends with the test body.
        // SAFETY: setresuid(2) takes plain integers and touches no memory of ours.
        let rc = unsafe { libc::syscall(libc::SYS_setresuid, 65534, 65534, 65534) };
        assert_eq!(rc, 0, "drop to nobody");
        eps.attach(&s)
            .await
            .expect_err("unprivileged attach must fail")
    });
    assert!(matches!(err, Error::PermissionDenied { .. }), "{err:?}");
}

#[test]
#[serial_test::serial]
fn a_namespace_given_as_a_process_path_works() {
    let host = host_ns();
    let c = Netns::new("c").unwrap();
    // What a container runtime hands a CNI plugin when the namespace is not bind-mounted.
    let sleeper = c.spawn("sleep", &["30"]).expect("process in the container");
    let path = format!("/proc/{}/ns/net", sleeper.pid());
    // `ip netns exec` enters the namespace after it started: until then the path names the
    // test's own namespace, which must never be attached to.
    let inode = |p: &str| std::fs::metadata(p).map(|m| std::os::unix::fs::MetadataExt::ino(&m));
    let container_ns = c.path();
    assert!(
        testkit::process::wait_until(Duration::from_secs(5), || {
            inode(&path).ok() == inode(container_ns.to_str().unwrap()).ok()
        }),
        "the process never entered the container namespace"
    );
    let s = EndpointSpec::new(
        NetnsRef::parse(&path).unwrap(),
        id("ctr-proc"),
        IfName::new("net1").unwrap(),
        vec![ip("10.244.9.2")],
        Mtu::default(),
    )
    .unwrap();
    let att = on_host(&host, async |eps: &Endpoints| {
        eps.attach(&s).await.expect("attach by /proc path")
    });
    assert_eq!(att.container_ifname.as_str(), "net1");
    assert!(c.ip(&["link", "show", "net1"]).is_ok());
    assert!(c.ping("10.200.0.1"));
}

#[test]
#[serial_test::serial]
fn concurrent_attaches_of_different_endpoints_all_work() {
    let host = host_ns();
    let containers: Vec<Netns> = (0..6)
        .map(|i| Netns::new(&format!("cc{i}")).unwrap())
        .collect();
    let specs: Vec<EndpointSpec> = containers
        .iter()
        .enumerate()
        .map(|(i, c)| {
            // Every other one IPv6-only, so single-family endpoints are covered too.
            let v4 = format!("10.244.12.{}", i + 2);
            let v6 = format!("fd00:244::12:{}", i + 2);
            let addrs: Vec<&str> = if i % 2 == 0 {
                vec![&v4, &v6]
            } else {
                vec![&v6]
            };
            spec(c, &format!("ctr-conc-{i}"), &addrs, 1500)
        })
        .collect();
    let attachments = on_host(&host, async |eps: &Endpoints| {
        futures::future::join_all(specs.iter().map(|s| eps.attach(s))).await
    });
    for (c, att) in containers.iter().zip(&attachments) {
        let att = att.as_ref().expect("attach");
        assert!(c.ping("fd00:200::1"), "{}", att.host_ifname);
    }
    assert!(containers[0].ping("10.244.12.4"));
    assert!(containers[0].ping("fd00:244::12:3"));
    // The IPv6-only container has no IPv4 default route.
    assert_eq!(containers[1].ip(&["route"]).unwrap(), "");
}

#[test]
#[serial_test::serial]
fn reattach_restores_what_an_admin_down_of_the_host_end_removed() {
    let host = host_ns();
    let c = Netns::new("c").unwrap();
    let s = spec(&c, "ctr-flap", &["10.244.13.2", "fd00:244::13:2"], 1500);
    let first = on_host(&host, async |eps: &Endpoints| {
        eps.attach(&s).await.expect("attach")
    });
    let h = first.host_ifname.as_str();
    host.ip(&["link", "set", h, "down"]).unwrap();
    host.ip(&["link", "set", h, "up"]).unwrap();
    // The kernel dropped the host routes and the link-local gateway address with the link.
    assert_eq!(proto_routes(&host, "-4"), "");
    let addrs = host.ip(&["-6", "addr", "show", "dev", h]).unwrap();
    assert!(!addrs.contains("fe80::1/64"), "{addrs}");

    let second = on_host(&host, async |eps: &Endpoints| {
        eps.attach(&s).await.expect("reattach")
    });
    assert_eq!(first, second);
    assert!(proto_routes(&host, "-4").contains("10.244.13.2"));
    assert!(c.ping("10.200.0.1"));
    assert!(c.ping("fd00:200::1"));
}
