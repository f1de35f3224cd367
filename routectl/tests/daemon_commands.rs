//! routectl against a control socket serving recorded JSON of the contract types (the fake is
//! at the edge: the same HTTP over a unix socket the daemon serves), checking tables, JSON
//! output, errors and exit codes.

use std::path::Path;
use std::process::{Command, Output};

use bgpd_api::{Endpoint, IpamView, Peer, Routes, Status};
use testkit::control_socket::{Answer, ControlSocket};
use testkit::process::stdout_of_success;

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn daemon() -> ControlSocket {
    ControlSocket::serve(vec![
        ("GET", "/v1/status", Answer::ok(fixture("status.json"))),
        ("GET", "/v1/peers", Answer::ok(fixture("peers.json"))),
        ("GET", "/v1/routes", Answer::ok(fixture("routes.json"))),
        ("GET", "/v1/ipam", Answer::ok(fixture("ipam.json"))),
        (
            "GET",
            "/v1/endpoints",
            Answer::ok(format!("[{}]", fixture("endpoint.json"))),
        ),
        (
            "POST",
            "/v1/endpoints",
            Answer::ok(fixture("endpoint.json")),
        ),
        (
            "PUT",
            "/v1/endpoints/c0ffee/eth0/labels",
            Answer::ok(fixture("endpoint.json")),
        ),
        (
            "DELETE",
            "/v1/endpoints/c0ffee/eth0",
            Answer::ok(r#"{"removed":true,"released":["10.244.3.65","fd00:244::41"]}"#),
        ),
        (
            "DELETE",
            "/v1/endpoints/",
            Answer::ok(r#"{"removed":false,"released":[]}"#),
        ),
    ])
    .expect("fake control socket")
}

/// Runs routectl with no config file and only the given socket, so the host's own settings
/// never leak in.
fn routectl(socket: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_routectl"))
        .args(["--config", "/nonexistent/bgpd.toml", "--socket"])
        .arg(socket)
        .args(args)
        .env_remove("BGPD_SOCKET")
        .env_remove("BGPD_CONFIG")
        .env_remove("ETCD_ENDPOINTS")
        .output()
        .expect("run routectl")
}

#[test]
fn status_is_one_screen() {
    let d = daemon();
    let out = stdout_of_success(&routectl(&d.path(), &["status"]));
    let expected = "\
node     host-a (host), AS 64512, router id 10.0.0.1, address 10.0.0.1
bgpd     0.1.0, up 2h05m
kernel   NOT in sync, 3/4 routes installed (table 254, proto 196)
         refused: 10.244.9.0/26 via 10.0.0.9: Network is unreachable
etcd     reachable

BLOCK             USED  SIZE  USE
10.244.3.64/26    3     64    4%
fd00:244::40/122  1     64    1%

PEER       NAME    KIND        ASN    STATE        SINCE  RECEIVED  ACCEPTED  ADVERTISED
10.0.0.2   host-b  mesh        64512  Established  2h03m  1         1         2
192.0.2.1  tor-1   configured  65000  Active       -      0         0         0
";
    assert_eq!(out, expected, "got:\n{out}");
}

#[test]
fn json_output_is_the_api_types() {
    let d = daemon();
    let parse = |args: &[&str]| -> String { stdout_of_success(&routectl(&d.path(), args)) };
    let status: Status = serde_json::from_str(&parse(&["-o", "json", "status"])).unwrap();
    assert_eq!(status.node, "host-a");
    let peers: Vec<Peer> = serde_json::from_str(&parse(&["peers", "-o", "json"])).unwrap();
    assert_eq!(peers.len(), 2);
    let peer: Peer = serde_json::from_str(&parse(&["peer", "10.0.0.2", "-o", "json"])).unwrap();
    assert_eq!(peer.received.keepalive, 300);
    let routes: Routes = serde_json::from_str(&parse(&["routes", "-o", "json"])).unwrap();
    assert_eq!(routes.rib.len(), 3);
    let ipam: IpamView = serde_json::from_str(&parse(&["ipam", "show", "-o", "json"])).unwrap();
    assert!(ipam.addresses[1].borrowed);
    let eps: Vec<Endpoint> =
        serde_json::from_str(&parse(&["endpoint", "list", "-o", "json"])).unwrap();
    assert_eq!(eps[0].host_ifindex, 12);
    assert_eq!(eps[0].labels["role"], "db");
    // Each JSON document is the daemon's own, re-serialized unchanged.
    let recorded: Status = serde_json::from_str(&fixture("status.json")).unwrap();
    assert_eq!(status, recorded);
}

#[test]
fn peer_detail_shows_counters_and_notifications() {
    let d = daemon();
    let out = stdout_of_success(&routectl(&d.path(), &["peer", "10.0.0.2"]));
    for want in [
        "BGP peer 10.0.0.2",
        "families          ipv4-unicast, ipv6-unicast",
        "established       2 time(s)",
        "ignored           3 prefixes of families not negotiated, 4 attributes discarded",
        "received  2     5       1             300        0",
        "sent      2     4       0             301        1",
        "last notification received: Cease/Administrative Reset",
        "last notification sent:     -",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    let missing = routectl(&d.path(), &["peer", "10.9.9.9"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("bgpd has no peer 10.9.9.9"));
}

#[test]
fn routes_mark_best_multipath_stale_and_show_the_fib() {
    let d = daemon();
    let out = stdout_of_success(&routectl(&d.path(), &["routes", "10.244.0.0/16"]));
    assert!(out.starts_with("RIB (* best, = multipath, s stale, ! not accepted)\n"));
    let lines: Vec<&str> = out.lines().collect();
    let row = |prefix_and_from: &str| {
        lines
            .iter()
            .find(|l| l.contains(prefix_and_from))
            .unwrap_or_else(|| panic!("no row {prefix_and_from:?} in:\n{out}"))
            .to_string()
    };
    assert!(row("local").starts_with('*'));
    assert!(
        row("10.0.0.2  ").starts_with("*  "),
        "best and multipath shows as best"
    );
    let third = row("10.0.0.3 (path 7)");
    assert!(third.starts_with("=s"), "{third}");
    assert!(third.contains("65000 65001"));
    assert!(
        out.contains("10.244.7.0/26   via        10.0.0.2, 10.0.0.3   learned"),
        "{out}"
    );
    assert!(
        out.contains("10.244.3.65/32  device     dev bgpd3c1e0f7a2b9  endpoint"),
        "{out}"
    );
    // The prefix reached the daemon as the contract's query parameter.
    let asked = d.received();
    assert_eq!(asked[0].path, "/v1/routes?prefix=10.244.0.0%2F16");
}

#[test]
fn endpoints_add_list_delete() {
    let d = daemon();
    let out = stdout_of_success(&routectl(
        &d.path(),
        &[
            "endpoint",
            "add",
            "c0ffee",
            "--netns",
            "/run/netns/c1",
            "--ip",
            "10.244.3.65",
            "--mtu",
            "1400",
            "--label",
            "role=db",
            "--label",
            "fabric.io/namespace=prod",
        ],
    ));
    assert!(out.contains("c0ffee"), "{out}");
    assert!(out.contains("fabric.io/namespace=prod, role=db"), "{out}");
    assert!(out.contains("10.244.3.65/32, fd00:244::41/128"), "{out}");
    let post = d
        .received()
        .into_iter()
        .find(|r| r.method == "POST")
        .expect("POST sent");
    let body: serde_json::Value = serde_json::from_str(&post.body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"container_id":"c0ffee","ifname":"eth0","netns":"/run/netns/c1",
                           "ips":["10.244.3.65"],"mtu":1400,
                           "labels":{"role":"db","fabric.io/namespace":"prod"}})
    );
    let out = stdout_of_success(&routectl(
        &d.path(),
        &["endpoint", "label", "c0ffee", "--label", "role=db"],
    ));
    assert!(out.contains("role=db"), "{out}");
    let put = d
        .received()
        .into_iter()
        .find(|r| r.method == "PUT")
        .expect("PUT sent");
    assert_eq!(put.path, "/v1/endpoints/c0ffee/eth0/labels");
    let body: serde_json::Value = serde_json::from_str(&put.body).unwrap();
    assert_eq!(body, serde_json::json!({"labels": {"role": "db"}}));
    let out = stdout_of_success(&routectl(&d.path(), &["endpoint", "del", "c0ffee"]));
    assert_eq!(
        out,
        "c0ffee/eth0: removed, released 10.244.3.65, fd00:244::41\n"
    );
    let out = stdout_of_success(&routectl(
        &d.path(),
        &["endpoint", "del", "gone", "--ifname", "net1"],
    ));
    assert_eq!(out, "gone/net1: nothing to remove\n");
    let out = stdout_of_success(&routectl(&d.path(), &["ipam", "show"]));
    assert!(
        out.contains("10.244.9.2   beef.eth0    10.244.9.0/26   yes"),
        "{out}"
    );
}

#[test]
fn a_missing_daemon_is_exit_3_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("bgpd.sock");
    for args in [
        &["status"][..],
        &["peers"],
        &["routes"],
        &["endpoint", "list"],
    ] {
        let o = routectl(&socket, args);
        assert_eq!(o.status.code(), Some(3), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.starts_with(&format!(
                "routectl: bgpd is not running at {}: ",
                socket.display()
            )),
            "{err}"
        );
    }
}

#[test]
fn daemon_errors_are_exit_1_with_its_words() {
    let d = ControlSocket::serve(vec![(
        "POST",
        "/v1/endpoints",
        Answer::error(
            409,
            "conflict",
            "address 10.244.3.65 is already assigned to handle x.eth0",
        ),
    )])
    .unwrap();
    let o = routectl(
        &d.path(),
        &[
            "endpoint",
            "add",
            "c1",
            "--netns",
            "x",
            "--ip",
            "10.244.3.65",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "routectl: bgpd: address 10.244.3.65 is already assigned to handle x.eth0 (HTTP 409)\n"
    );
    // Something that is not the contract's JSON is an error, not a panic.
    let garbage =
        ControlSocket::serve(vec![("GET", "/v1/status", Answer::ok("{\"node\": 1}"))]).unwrap();
    let o = routectl(&garbage.path(), &["status"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unexpected answer from bgpd"));
}

/// bgpd assigns at most one requested address, so `--ip` is taken once: a second one is a usage
/// error here, not a request bgpd refuses after the fact.
#[test]
fn one_requested_address() {
    let d = daemon();
    let args = [
        "endpoint",
        "add",
        "c0ffee",
        "--netns",
        "/proc/1/ns/net",
        "--ip",
        "10.244.3.65",
    ];
    let twice = [&args[..], &["--ip", "fd00:244::41"]].concat();
    let o = routectl(&d.path(), &twice);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("--ip"), "{err}");
    assert!(d.received().is_empty(), "bgpd was not asked");
    stdout_of_success(&routectl(&d.path(), &args));
    let sent: serde_json::Value = serde_json::from_str(&d.received()[0].body).unwrap();
    assert_eq!(sent["ips"], serde_json::json!(["10.244.3.65"]));
}

#[test]
fn odd_arguments_are_usage_errors_not_panics() {
    let d = daemon();
    let cases: [&[&str]; 15] = [
        &[],
        &["frobnicate"],
        &["peer"],
        &["peer", "not-an-ip"],
        &["peer", "10.0.0.256"],
        &["routes", "10.0.0.0/33"],
        &["routes", "10.0.0.0/8", "extra"],
        &["-o", "yaml", "status"],
        &["endpoint", "add", "c1"],
        &["endpoint", "add", "c1", "--netns", "x", "--mtu", "-5"],
        &["endpoint", "add", "c1", "--netns", "x", "--label", "role"],
        &[
            "endpoint", "add", "c1", "--netns", "x", "--label", "ro le=db",
        ],
        &["endpoint", "label", "c1", "--label", "role=-db"],
        &[
            "ipam",
            "pools",
            "add",
            "p",
            "10.0.0.0/8",
            "--block-size",
            "999",
        ],
        &["completion", "tcsh"],
    ];
    for args in cases {
        let o = routectl(&d.path(), args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    // Non-UTF-8 arguments too.
    use std::os::unix::ffi::OsStrExt;
    let o = Command::new(env!("CARGO_BIN_EXE_routectl"))
        .arg("peer")
        .arg(std::ffi::OsStr::from_bytes(b"\xff\xfe"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(!String::from_utf8_lossy(&o.stderr).contains("panicked"));
}

#[test]
fn completions_for_every_shell() {
    let d = daemon();
    for (shell, marker) in [
        ("bash", "_routectl()"),
        ("zsh", "#compdef routectl"),
        ("fish", "complete -c routectl"),
    ] {
        let out = stdout_of_success(&routectl(&d.path(), &["completion", shell]));
        assert!(out.contains(marker), "{shell}");
        assert!(out.contains("status"), "{shell}");
    }
    // Completions ask nothing of the daemon.
    assert!(d.received().is_empty());
}

#[test]
fn the_socket_comes_from_the_config_file() {
    let d = daemon();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bgpd.toml");
    std::fs::write(
        &config,
        format!(
            "[node]\nasn = 64512\n\n[api]\nsocket = \"{}\"\n",
            d.path().display()
        ),
    )
    .unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_routectl"))
        .arg("--config")
        .arg(&config)
        .args(["-o", "json", "status"])
        .env_remove("BGPD_SOCKET")
        .output()
        .unwrap();
    let out = stdout_of_success(&o);
    assert!(out.contains("\"node\": \"host-a\""));
    // A config file that does not load is an error naming it, not silently skipped.
    std::fs::write(&config, "[node]\nasn = \"x\"\n").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_routectl"))
        .arg("--config")
        .arg(&config)
        .arg("status")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("bgpd.toml:2"));
}
