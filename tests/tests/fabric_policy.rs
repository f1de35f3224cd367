//! End to end: cluster-wide policies written to etcd with `routectl policy apply --cluster`
//! change what TCP and ICMP get through on two hosts without restarting bgpd; deleting one
//! restores the traffic; a garbage value written with etcdctl leaves the old ruleset in force
//! and bgpd running; an established connection survives an update; a bad file is refused
//! whole with file:line:column and writes nothing; a host's own policy file wins a name clash.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use testkit::fabric::{Fabric, Role};
use testkit::process::wait_until;
use testkit::traffic::{Held, Server, tcp_echo, tcp_ok};

/// How long a policy change may take to reach every host on a loaded CI machine. One look at
/// the traffic ([`reach`]) waits a second for each blocked probe, so a short bound would allow
/// only two or three looks.
const SPREAD: Duration = Duration::from_secs(45);

const OPEN: u16 = 8080;
const CLOSED: u16 = 9090;

/// Workloads on every host accept TCP 8080 and 9090: ping hits the default deny.
const TWO_PORTS: &str = r#"
[[policy]]
name = "only-8080"
order = 10
selector = 'all()'

[[policy.ingress]]
action = "allow"
protocol = "tcp"
destination = { ports = [8080, 9090] }
"#;

/// The update of [`TWO_PORTS`]: TCP 8080 only, 9090 hits the default deny.
const ONLY_8080: &str = r#"
[[policy]]
name = "only-8080"
order = 10
selector = 'all()'

[[policy.ingress]]
action = "allow"
protocol = "tcp"
destination = { ports = [8080] }
"#;

/// Refused at line 8 (a selector that does not parse), so nothing of the file may land.
const BAD: &str = r#"
[[policy]]
name = "fine"
selector = 'all()'

[[policy]]
name = "broken"
selector = 'role = "db"'
"#;

/// TCP echo servers on both test ports in container `c`.
fn serve(f: &Fabric, c: usize) -> [Server; 2] {
    [OPEN, CLOSED].map(|port| {
        tcp_echo(&f.containers[c].ns, (Ipv4Addr::UNSPECIFIED, port)).expect("tcp server")
    })
}

/// What gets through between containers a (host 1) and b (host 2), both ways.
#[derive(Debug, PartialEq, Eq)]
struct Reach {
    open: (bool, bool),
    closed: (bool, bool),
    ping: (bool, bool),
}

fn reach(f: &Fabric) -> Reach {
    let (a, b) = (&f.containers[0], &f.containers[1]);
    let (ip_a, ip_b) = (a.ipv4().expect("a has IPv4"), b.ipv4().expect("b has IPv4"));
    Reach {
        open: (tcp_ok(&a.ns, (ip_b, OPEN)), tcp_ok(&b.ns, (ip_a, OPEN))),
        closed: (tcp_ok(&a.ns, (ip_b, CLOSED)), tcp_ok(&b.ns, (ip_a, CLOSED))),
        ping: (a.ns.ping(&ip_b.to_string()), b.ns.ping(&ip_a.to_string())),
    }
}

const ALL_OPEN: Reach = Reach {
    open: (true, true),
    closed: (true, true),
    ping: (true, true),
};
const TWO_OPEN: Reach = Reach {
    open: (true, true),
    closed: (true, true),
    ping: (false, false),
};
const ONLY_OPEN: Reach = Reach {
    open: (true, true),
    closed: (false, false),
    ping: (false, false),
};

fn wait_for(f: &Fabric, want: &Reach, what: &str) {
    let mut last = reach(f);
    let ok = *want == last
        || wait_until(SPREAD, || {
            last = reach(f);
            last == *want
        });
    assert!(ok, "{what}: got {last:?}, want {want:?}\n{}", f.logs());
}

/// A host's policy status from `routectl status -o json`.
fn policy_status(f: &Fabric, host: usize) -> serde_json::Value {
    f.routectl_json(host, &["status"])
        .map(|s| s["policy"].clone())
        .unwrap_or_default()
}

/// etcd stopped (SIGSTOP: clients see an etcd that does not answer) until dropped.
struct Paused(libc::pid_t);

impl Paused {
    /// Pauses the fabric's etcd, found by its pid in [`Fabric::describe`].
    fn etcd(f: &Fabric) -> Paused {
        let described = f.describe();
        let pid = described
            .lines()
            .find(|l| l.starts_with("etcd"))
            .and_then(|l| l.split("(pid ").nth(1)?.trim_end_matches(')').parse().ok())
            .unwrap_or_else(|| panic!("no etcd pid in:\n{described}"));
        // SAFETY: a plain kill(2) of the etcd this test's fabric started.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0, "SIGSTOP etcd");
        Paused(pid)
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        // SAFETY: as above.
        unsafe { libc::kill(self.0, libc::SIGCONT) };
    }
}

/// Writes `toml` to `path` and applies it cluster-wide with host 1's routectl; its output.
fn apply_cluster(f: &Fabric, path: &Path, toml: &str) -> String {
    std::fs::write(path, toml).expect("write");
    f.routectl(
        0,
        &["policy", "apply", "--cluster", &path.to_string_lossy()],
    )
    .expect("apply --cluster")
}

#[test]
#[serial_test::serial]
fn cluster_policies_change_traffic_on_every_host_without_a_restart() {
    let mut f = Fabric::new().expect("fabric");
    for _ in 0..2 {
        f.add_host(Role::Host).expect("host");
    }
    f.wait_converged(0, false, Duration::from_secs(60))
        .expect("converged");
    let a = f.add_container(0).expect("container on host 1");
    let b = f.add_container(1).expect("container on host 2");
    let _servers = [a, b].map(|c| serve(&f, c));
    let pids: Vec<Option<u32>> = f.hosts.iter().map(|h| h.pid()).collect();
    wait_for(&f, &ALL_OPEN, "no policy: everything flows");

    let dir = tempfile::tempdir().expect("dir");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, BAD).expect("write");
    let refused = f
        .routectl(0, &["policy", "apply", "--cluster", &bad.to_string_lossy()])
        .expect_err("a bad file is refused");
    let at = format!("{}:8:", bad.display());
    assert!(refused.to_string().contains(&at), "no {at} in: {refused}");
    let listed = f
        .routectl_json(0, &["policy", "show", "--cluster"])
        .expect("show --cluster");
    assert_eq!(
        listed,
        serde_json::json!([]),
        "nothing of a refused file lands"
    );

    let out = apply_cluster(&f, &dir.path().join("two-ports.toml"), TWO_PORTS);
    assert!(out.contains("only-8080: created"), "{out}");
    wait_for(
        &f,
        &TWO_OPEN,
        "cluster policy: tcp 8080 and 9090, on both hosts",
    );

    // An established connection on the port the update closes.
    let (ip_b, a_ns) = (f.containers[b].ipv4().expect("ip"), &f.containers[a].ns);
    let mut held = Held::open(a_ns, (ip_b, CLOSED)).expect("9090 open before the update");

    let good = dir.path().join("only-8080.toml");
    let out = apply_cluster(&f, &good, ONLY_8080);
    assert!(out.contains("only-8080: updated"), "{out}");
    wait_for(
        &f,
        &ONLY_OPEN,
        "updated cluster policy: tcp 8080 only, on both hosts",
    );
    assert_eq!(
        held.exchange("still here").expect("held connection"),
        "still here",
        "the connection made before the update still carries data"
    );
    let listed = f
        .routectl_json(1, &["policy", "show", "--cluster"])
        .expect("show --cluster");
    assert_eq!(listed[0]["name"], "only-8080", "{listed}");
    assert_eq!(listed[0]["error"], serde_json::Value::Null, "{listed}");
    for host in 0..2 {
        assert_eq!(
            policy_status(&f, host)["cluster_in_force"],
            serde_json::json!(["only-8080"])
        );
    }
    let dry = f.routectl(1, &["policy", "dry-run"]).expect("dry-run");
    assert!(dry.contains("chain pol-only-8080-ingress"), "{dry}");

    // Garbage over the policy, and a new key with a selector that does not parse: both are
    // refused, the last good version stays, bgpd keeps running.
    f.etcdctl(&["put", "/fabric/v1/policies/only-8080", "{ not toml"])
        .expect("etcdctl");
    f.etcdctl(&[
        "put",
        "/fabric/v1/policies/junk",
        "name = \"junk\"\nselector = 'nope nope'\n",
    ])
    .expect("etcdctl");
    let both_refused = wait_until(SPREAD, || {
        (0..2).all(|h| {
            let refused = policy_status(&f, h)["cluster_refused"].to_string();
            refused.contains("only-8080") && refused.contains("junk")
        })
    });
    assert!(both_refused, "refusals reported in status\n{}", f.logs());
    assert_eq!(reach(&f), ONLY_OPEN, "the old ruleset stays in force");
    assert_eq!(
        f.hosts.iter().map(|h| h.pid()).collect::<Vec<_>>(),
        pids,
        "bgpd was not restarted"
    );
    let log = std::fs::read_to_string(&f.hosts[0].log_path).unwrap_or_default();
    assert!(
        log.contains("cluster policy refused, its last good version stays"),
        "{log}"
    );
    assert!(!log.contains("panicked"), "{log}");

    // etcd unreachable: the last applied table stays and bgpd runs on.
    {
        let _paused = Paused::etcd(&f);
        std::thread::sleep(Duration::from_secs(4));
        assert_eq!(reach(&f), ONLY_OPEN, "etcd down: the table stays");
    }
    assert_eq!(
        f.hosts.iter().map(|h| h.pid()).collect::<Vec<_>>(),
        pids,
        "bgpd survives an etcd outage"
    );

    // A good value again (the watch is back), then deleting it, restores the traffic; the junk
    // key changes nothing.
    apply_cluster(&f, &good, ONLY_8080);
    let out = f
        .routectl(1, &["policy", "delete", "--cluster", "only-8080"])
        .expect("delete");
    assert!(out.contains("only-8080: deleted"), "{out}");
    wait_for(&f, &ALL_OPEN, "policy deleted: everything flows again");
    assert!(
        f.routectl(1, &["policy", "delete", "--cluster", "only-8080"])
            .is_err(),
        "deleting what is not there fails"
    );
    assert_eq!(
        f.hosts.iter().map(|h| h.pid()).collect::<Vec<_>>(),
        pids,
        "bgpd was never restarted"
    );
}

#[test]
#[serial_test::serial]
fn a_host_policy_file_wins_a_name_clash_with_a_cluster_policy() {
    let dir = tempfile::tempdir().expect("dir");
    // Host 2's own file: a policy named like the cluster's, opening 9090 as well.
    let local = dir.path().join("host-2-policy.toml");
    std::fs::write(&local, TWO_PORTS).expect("write");
    let mut f = Fabric::new().expect("fabric");
    f.add_host(Role::Host).expect("host 1");
    let mut config = f.next_host_config(Role::Host);
    config.policy = Some(local);
    config.metrics = Some("127.0.0.1:9179".parse().expect("address"));
    f.add_host_with(config).expect("host 2 with a policy file");
    f.wait_converged(0, false, Duration::from_secs(60))
        .expect("converged");
    let a = f.add_container(0).expect("container on host 1");
    let b = f.add_container(1).expect("container on host 2");
    let _servers = [a, b].map(|c| serve(&f, c));

    apply_cluster(&f, &dir.path().join("only-8080.toml"), ONLY_8080);
    // Host 1 enforces the cluster's version (9090 closed to b), host 2 its own (9090 open to a).
    let want = Reach {
        open: (true, true),
        closed: (true, false),
        ping: (false, false),
    };
    wait_for(&f, &want, "each host enforces its own winner");
    assert_eq!(
        policy_status(&f, 0)["cluster_in_force"],
        serde_json::json!(["only-8080"])
    );
    let host_2 = policy_status(&f, 1);
    assert_eq!(
        host_2["cluster_in_force"],
        serde_json::json!([]),
        "{host_2}"
    );
    assert_eq!(
        host_2["cluster_refused"][0]["name"], "only-8080",
        "{host_2}"
    );
    let reason = host_2["cluster_refused"][0]["reason"].to_string();
    assert!(reason.contains("the file wins"), "{reason}");
    let log = std::fs::read_to_string(&f.hosts[1].log_path).unwrap_or_default();
    assert!(
        log.contains("cluster policy left out on this host"),
        "{log}"
    );
    let metrics = f.hosts[1]
        .ns
        .exec("curl", &["-s", "http://127.0.0.1:9179/metrics"])
        .expect("metrics");
    for line in [
        "bgpd_policy_cluster_in_force 0",
        "bgpd_policy_cluster_refused 1",
        "bgpd_policy_applied 1",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "no {line:?} in:\n{metrics}"
        );
    }
}
