//! The plugin binary as a runtime runs it: CNI_* environment, network config on stdin, one
//! JSON document on stdout. bgpd is a control socket serving recorded contract JSON.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{Value, json};
use testkit::control_socket::{Answer, ControlSocket};

const ENDPOINT: &str = r#"{"container_id":"c0ffee","ifname":"eth0","host_ifname":"bgpd3f2a91c0",
  "host_ifindex":12,"mac":"02:42:0a:f4:03:41","mtu":1500,
  "ips":[{"address":"10.244.3.65/32","gateway":"169.254.1.1","borrowed":false},
         {"address":"fd00:244::41/128","gateway":"fe80::1","borrowed":false}]}"#;

/// Runs the plugin; returns (exit code, stdout JSON).
fn plugin(env: &[(&str, &str)], stdin: &str) -> (i32, Value) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_bgpd-cni"))
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn plugin");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("plugin output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let doc = if stdout.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("stdout not JSON ({e}): {stdout}"))
    };
    (out.status.code().unwrap_or(-1), doc)
}

/// CNI_* variables of one run.
type Env<'a> = Vec<(&'a str, &'a str)>;

fn conf(version: &str, socket: &Path) -> String {
    json!({"cniVersion": version, "name": "bgpd", "type": "bgpd-cni",
           "socket": socket, "dns": {"nameservers": ["10.96.0.10"]}})
    .to_string()
}

fn env<'a>(command: &'a str, netns: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("CNI_COMMAND", command),
        ("CNI_CONTAINERID", "c0ffee"),
        ("CNI_NETNS", netns),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/opt/cni/bin"),
        (
            "CNI_ARGS",
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web",
        ),
    ]
}

#[test]
fn version_lists_what_we_speak() {
    let (code, doc) = plugin(&[("CNI_COMMAND", "VERSION")], r#"{"cniVersion":"0.4.0"}"#);
    assert_eq!(code, 0);
    assert_eq!(
        doc,
        json!({"cniVersion": "0.4.0", "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0"]})
    );
    let (code, doc) = plugin(&[("CNI_COMMAND", "VERSION")], "");
    assert_eq!(code, 0);
    assert_eq!(doc["cniVersion"], "1.0.0");
}

#[test]
fn add_attaches_through_bgpd_and_prints_the_result() {
    let bgpd = ControlSocket::serve(vec![("POST", "/v1/endpoints", Answer::ok(ENDPOINT))]).unwrap();
    let netns = "/var/run/netns/cni-5ba2d8e1";
    let mut e = env("ADD", netns);
    e[5].1 = "IgnoreUnknown=1;IP=10.244.3.65;K8S_POD_NAMESPACE=prod;K8S_POD_NAME=web-0";
    let mut stdin: Value = serde_json::from_str(&conf("1.0.0", &bgpd.path())).unwrap();
    stdin["args"] = json!({"cni": {"labels": [
        {"key": "role", "value": "web"},
        {"key": "fabric.io/namespace", "value": "overridden-by-cni-args"}
    ]}});
    let (code, doc) = plugin(&e, &stdin.to_string());
    assert_eq!(code, 0, "{doc}");
    assert_eq!(
        doc,
        json!({
            "cniVersion": "1.0.0",
            "interfaces": [
                {"name": "bgpd3f2a91c0"},
                {"name": "eth0", "mac": "02:42:0a:f4:03:41", "sandbox": netns}
            ],
            "ips": [
                {"address": "10.244.3.65/32", "gateway": "169.254.1.1", "interface": 1},
                {"address": "fd00:244::41/128", "gateway": "fe80::1", "interface": 1}
            ],
            "routes": [
                {"dst": "0.0.0.0/0", "gw": "169.254.1.1"},
                {"dst": "::/0", "gw": "fe80::1"}
            ],
            "dns": {"nameservers": ["10.96.0.10"]}
        })
    );
    let sent = bgpd.received();
    assert_eq!(sent.len(), 1);
    let body: Value = serde_json::from_str(&sent[0].body).unwrap();
    assert_eq!(
        body,
        json!({"container_id": "c0ffee", "ifname": "eth0", "netns": netns,
               "ips": ["10.244.3.65"], "mtu": null,
               "labels": {"role": "web", "fabric.io/namespace": "prod", "fabric.io/pod": "web-0"}})
    );
}

#[test]
fn results_before_1_0_carry_ip_versions() {
    let bgpd = ControlSocket::serve(vec![("POST", "/v1/endpoints", Answer::ok(ENDPOINT))]).unwrap();
    let (code, doc) = plugin(&env("ADD", "/proc/1/ns/net"), &conf("0.4.0", &bgpd.path()));
    assert_eq!(code, 0, "{doc}");
    assert_eq!(doc["cniVersion"], "0.4.0");
    assert_eq!(doc["ips"][0]["version"], "4");
    assert_eq!(doc["ips"][1]["version"], "6");
}

#[test]
fn del_is_idempotent_and_needs_no_netns() {
    let bgpd = ControlSocket::serve(vec![(
        "DELETE",
        "/v1/endpoints/c0ffee/eth0",
        Answer::ok(r#"{"removed":false,"released":[]}"#),
    )])
    .unwrap();
    let mut e = env("DEL", "");
    e.retain(|(k, _)| *k != "CNI_NETNS");
    for _ in 0..2 {
        let (code, doc) = plugin(&e, &conf("1.0.0", &bgpd.path()));
        assert_eq!((code, doc), (0, Value::Null));
    }
    assert_eq!(bgpd.received().len(), 2);
}

/// DEL and CHECK need no CNI_ARGS: arguments that ADD refuses (an unknown key, a bad `IP=`,
/// text that is not KEY=VALUE) must not make the DEL after that failed ADD fail forever.
#[test]
fn del_and_check_ignore_the_cni_args_they_do_not_need() {
    let bgpd = ControlSocket::serve(vec![
        (
            "DELETE",
            "/v1/endpoints/c0ffee/eth0",
            Answer::ok(r#"{"removed":false,"released":[]}"#),
        ),
        ("GET", "/v1/endpoints", Answer::ok(format!("[{ENDPOINT}]"))),
    ])
    .unwrap();
    for args in ["FOO=bar", "IP=10.0.0.300", "IP=10.0.0.1,nope", "justtext"] {
        let mut add = env("ADD", "/proc/1/ns/net");
        add[5].1 = args;
        let (code, doc) = plugin(&add, &conf("1.0.0", &bgpd.path()));
        assert_eq!(
            (code, doc["code"].clone()),
            (1, json!(4)),
            "ADD {args}: {doc}"
        );
        for command in ["DEL", "CHECK"] {
            let mut e = env(command, "/proc/1/ns/net");
            e[5].1 = args;
            let (code, doc) = plugin(&e, &conf("1.0.0", &bgpd.path()));
            assert_eq!((code, doc), (0, Value::Null), "{command} {args}");
        }
    }
    let asked: Vec<String> = bgpd
        .received()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(
        asked,
        ["DELETE /v1/endpoints/c0ffee/eth0", "GET /v1/endpoints"].repeat(4),
        "ADD never reached bgpd; each DEL and CHECK did"
    );
}

#[test]
fn check_compares_bgpd_with_the_previous_result() {
    let bgpd = ControlSocket::serve(vec![(
        "GET",
        "/v1/endpoints",
        Answer::ok(format!("[{ENDPOINT}]")),
    )])
    .unwrap();
    let with_prev = |ips: Value| {
        let mut c: Value = serde_json::from_str(&conf("1.0.0", &bgpd.path())).unwrap();
        c["prevResult"] = json!({"cniVersion": "1.0.0", "interfaces": [], "ips": ips,
                                 "routes": [], "dns": {}});
        c.to_string()
    };
    let same = json!([{"address": "10.244.3.65/32"}, {"address": "fd00:244::41/128"}]);
    let (code, doc) = plugin(&env("CHECK", "/proc/1/ns/net"), &with_prev(same));
    assert_eq!((code, doc), (0, Value::Null));
    let other = json!([{"address": "10.244.3.66/32"}]);
    let (code, doc) = plugin(&env("CHECK", "/proc/1/ns/net"), &with_prev(other));
    assert_eq!(code, 1);
    assert_eq!(doc["code"], 101, "{doc}");
    let mut unknown = env("CHECK", "/proc/1/ns/net");
    unknown[1].1 = "feed";
    let (code, doc) = plugin(&unknown, &conf("1.0.0", &bgpd.path()));
    assert_eq!(code, 1);
    assert_eq!(doc["code"], 3, "{doc}");
    let (_, doc) = plugin(
        &env("CHECK", "/proc/1/ns/net"),
        &conf("0.3.1", &bgpd.path()),
    );
    assert_eq!(doc["code"], 1, "CHECK does not exist before 0.4.0: {doc}");
}

#[test]
fn errors_carry_the_spec_codes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("bgpd.sock");
    let good = conf("1.0.0", &missing);
    let mut no_id = env("ADD", "/proc/1/ns/net");
    no_id.retain(|(k, _)| *k != "CNI_CONTAINERID");
    let mut bad_args = env("ADD", "/proc/1/ns/net");
    bad_args[5].1 = "FOO=bar";
    let mut bad_namespace = env("ADD", "/proc/1/ns/net");
    bad_namespace[5].1 = "K8S_POD_NAMESPACE=-bad-";
    let mut bad_label: Value = serde_json::from_str(&good).unwrap();
    bad_label["args"] = json!({"cni": {"labels": [{"key": "role", "value": "d b"}]}});
    let mut bad_label_shape = bad_label.clone();
    bad_label_shape["args"] = json!({"cni": {"labels": {"role": "db"}}});
    let cases: Vec<(Env, String, u64)> = vec![
        (
            env("ADD", "/proc/1/ns/net"),
            r#"{"cniVersion":"2.0.0","name":"n","type":"bgpd-cni"}"#.into(),
            1,
        ),
        (
            env("ADD", "/proc/1/ns/net"),
            r#"{"cniVersion":"1.0.0","name":"n","type":"bgpd-cni","ipam":{"type":"host-local"}}"#
                .into(),
            2,
        ),
        (no_id, good.clone(), 4),
        (bad_args, good.clone(), 4),
        (bad_namespace, good.clone(), 4),
        (env("ADD", "/proc/1/ns/net"), bad_label.to_string(), 7),
        (env("ADD", "/proc/1/ns/net"), bad_label_shape.to_string(), 7),
        (env("NOPE", "/proc/1/ns/net"), good.clone(), 4),
        (vec![], good.clone(), 4),
        (env("ADD", "/proc/1/ns/net"), "not json".into(), 6),
        (
            env("ADD", "/proc/1/ns/net"),
            r#"{"cniVersion":"1.0.0"}"#.into(),
            7,
        ),
        // bgpd not running: the runtime should try again later.
        (env("ADD", "/proc/1/ns/net"), good.clone(), 11),
        (env("DEL", "/proc/1/ns/net"), good.clone(), 11),
    ];
    for (e, stdin, want) in cases {
        let (code, doc) = plugin(&e, &stdin);
        assert_eq!(code, 1, "{e:?} {stdin}: {doc}");
        assert_eq!(doc["code"], want, "{e:?} {stdin}: {doc}");
        assert!(doc["msg"].as_str().is_some_and(|m| !m.is_empty()), "{doc}");
        assert!(doc["cniVersion"].is_string(), "{doc}");
    }
    let (_, doc) = plugin(&env("ADD", "/proc/1/ns/net"), &good);
    assert!(
        doc["details"]
            .as_str()
            .is_some_and(|d| d.starts_with("bgpd is not running at ")),
        "{doc}"
    );
}

#[test]
fn bgpd_refusals_and_outages_map_to_codes() {
    let bgpd = ControlSocket::serve(vec![
        (
            "POST",
            "/v1/endpoints",
            Answer::error(409, "conflict", "address 10.244.3.65 is already assigned"),
        ),
        (
            "DELETE",
            "/v1/endpoints/",
            Answer::error(503, "unavailable", "etcd unavailable"),
        ),
    ])
    .unwrap();
    let (code, doc) = plugin(&env("ADD", "/proc/1/ns/net"), &conf("1.0.0", &bgpd.path()));
    assert_eq!((code, doc["code"].clone()), (1, json!(100)), "{doc}");
    assert!(
        doc["details"]
            .as_str()
            .unwrap_or_default()
            .contains("already assigned")
    );
    let (code, doc) = plugin(&env("DEL", "/proc/1/ns/net"), &conf("1.0.0", &bgpd.path()));
    assert_eq!((code, doc["code"].clone()), (1, json!(11)), "{doc}");
}
