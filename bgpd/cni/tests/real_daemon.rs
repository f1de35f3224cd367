//! The plugin against the real bgpd: ADD wires a namespace with an address from the host's
//! block, CHECK agrees with the ADD result, DEL releases it, and DEL after the namespace is gone
//! still succeeds. Needs the bgpd binary: `cargo build -p bgpd` first (or `BGPD_BIN`).

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{Value, json};
use testkit::netns::Netns;
use testkit::single_host::{POOL, SingleHost};

fn plugin(command: &str, id: &str, netns: &str, stdin: &Value) -> (i32, Value) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_bgpd-cni"))
        .env_clear()
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", id)
        .env("CNI_NETNS", netns)
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", "/opt/cni/bin")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn plugin");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.to_string().as_bytes())
        .expect("stdin");
    let out = child.wait_with_output().expect("plugin");
    let text = String::from_utf8_lossy(&out.stdout);
    let doc = serde_json::from_str(&text).unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), doc)
}

#[test]
#[serial_test::serial]
fn add_check_del_against_the_real_daemon() {
    let host = SingleHost::start().expect("bgpd host");
    let container = Netns::new("cni").expect("container netns");
    // containerd passes a path like /var/run/netns/cni-…; ours is the same kind of bind mount.
    let netns = container.path().to_string_lossy().into_owned();
    let conf = json!({"cniVersion": "1.0.0", "name": "bgpd", "type": "bgpd-cni",
                      "socket": host.socket()});

    let (code, result) = plugin("ADD", "ctr1", &netns, &conf);
    assert_eq!(code, 0, "{result}\n{}", host.log());
    let address = result["ips"][0]["address"]
        .as_str()
        .expect("an address")
        .to_string();
    let ip = address.split('/').next().unwrap_or_default().to_string();
    let pool: ipnetwork::IpNetwork = POOL.parse().unwrap();
    assert!(pool.contains(ip.parse().unwrap()), "{ip}");
    assert_eq!(result["interfaces"][1]["sandbox"], netns.as_str());
    assert_eq!(result["routes"][0]["dst"], "0.0.0.0/0");
    let inside = container
        .exec("ip", &["-4", "addr", "show", "dev", "eth0"])
        .unwrap();
    assert!(inside.contains(&ip), "{inside}");
    let gw = result["ips"][0]["gateway"].as_str().unwrap_or_default();
    let default = container
        .exec("ip", &["-4", "route", "show", "default"])
        .unwrap();
    assert!(default.contains(gw), "{default}");

    // ADD again is idempotent in bgpd: the same address.
    let (code, again) = plugin("ADD", "ctr1", &netns, &conf);
    assert_eq!(code, 0, "{again}");
    assert_eq!(again["ips"], result["ips"]);

    let mut with_prev = conf.clone();
    with_prev["prevResult"] = result.clone();
    let (code, doc) = plugin("CHECK", "ctr1", &netns, &with_prev);
    assert_eq!((code, doc), (0, Value::Null));

    let (code, doc) = plugin("DEL", "ctr1", &netns, &with_prev);
    assert_eq!((code, doc), (0, Value::Null));
    let (code, doc) = plugin("CHECK", "ctr1", &netns, &with_prev);
    assert_eq!((code, doc["code"].clone()), (1, json!(3)));

    // A second container whose namespace is gone before DEL: DEL still succeeds, twice.
    let second = Netns::new("cni2").expect("netns");
    let second_path = second.path().to_string_lossy().into_owned();
    let (code, doc) = plugin("ADD", "ctr2", &second_path, &conf);
    assert_eq!(code, 0, "{doc}");
    drop(second);
    for _ in 0..2 {
        let (code, doc) = plugin("DEL", "ctr2", &second_path, &conf);
        assert_eq!((code, doc), (0, Value::Null), "{}", host.log());
    }
    // Both containers' addresses went back to IPAM.
    let view = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(bgpd_api::Client::new(host.socket()).ipam())
        .unwrap();
    assert!(view.addresses.is_empty(), "{view:?}");
}
