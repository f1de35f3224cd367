//! A small fabric for the daemon's own tests: a switch namespace with a bridge (the underlay,
//! which also holds the hosts' default gateway so proxy ARP answers), etcd in a namespace on it,
//! and bgpd hosts in namespaces. Everything is dropped (processes killed, namespaces deleted)
//! when the `Lab` goes, also on panic. The fuller demo fabric is `testkit::fabric`.

#![allow(dead_code)] // each test binary uses a part

use std::fs::File;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use bgpd_api::{AttachRequest, Client, Endpoint, Status};
use tempfile::TempDir;
use testkit::netns::Netns;
use testkit::process::{ChildGuard, wait_until};

pub const ETCD_ADDRESS: &str = "10.98.0.2";
pub const GATEWAY: &str = "10.98.0.1";

pub fn host_address(i: usize) -> String {
    format!("10.98.0.{}", 11 + i)
}

pub fn host_address_v6(i: usize) -> String {
    format!("fd98::{}", 11 + i)
}

pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

pub struct Host {
    pub name: String,
    pub address: String,
    pub config: PathBuf,
    pub socket: PathBuf,
    pub log: PathBuf,
    pub daemon: Option<ChildGuard>,
    pub ns: Netns,
}

pub struct Lab {
    pub hosts: Vec<Host>,
    pub containers: Vec<Netns>,
    etcd: ChildGuard,
    etcd_ns: Netns,
    pub switch: Netns,
    pub dir: TempDir,
    ports: usize,
    /// The IPv4 pool written into hosts' configs added from now on.
    pub pool: String,
    /// Block size of the IPv4 pool, when not the default.
    pub block_size: Option<u8>,
    /// An IPv6 pool too, when set.
    pub pool_v6: Option<String>,
}

impl Lab {
    pub fn new() -> Lab {
        let dir = tempfile::Builder::new()
            .prefix("bgpd-lab-")
            .tempdir()
            .unwrap();
        let switch = Netns::new("sw").unwrap();
        switch
            .ip(&["link", "add", "br0", "type", "bridge"])
            .unwrap();
        switch
            .ip(&["addr", "add", &format!("{GATEWAY}/24"), "dev", "br0"])
            .unwrap();
        switch.ip(&["link", "set", "br0", "up"]).unwrap();
        let etcd_ns = Netns::new("etcd").unwrap();
        plug(&switch, 0, &etcd_ns, ETCD_ADDRESS);
        let etcd = start_etcd(&etcd_ns, &dir);
        Lab {
            hosts: Vec::new(),
            containers: Vec::new(),
            etcd,
            etcd_ns,
            switch,
            dir,
            ports: 1,
            pool: "10.244.0.0/16".to_string(),
            pool_v6: None,
            block_size: None,
        }
    }

    pub fn etcdctl(&self, args: &[&str]) -> String {
        let url = format!("http://{ETCD_ADDRESS}:2379");
        let mut all = vec!["--endpoints", &url];
        all.extend_from_slice(args);
        self.etcd_ns.exec("etcdctl", &all).unwrap_or_default()
    }

    /// Adds a host whose config is the standard one plus `extra` TOML (appended, so it may
    /// add `[[bgp.peers]]` tables).
    pub fn add_host(&mut self, mesh: bool, extra: &str) -> usize {
        self.add_node(&format!("mesh = {mesh}"), extra)
    }

    /// Adds a route reflector (no mesh of its own; hosts find it in etcd).
    pub fn add_reflector(&mut self) -> usize {
        self.add_node("mesh = false\nroute_reflector = true", "")
    }

    fn add_node(&mut self, bgp: &str, extra: &str) -> usize {
        let i = self.hosts.len();
        let ns = Netns::new(&format!("h{i}")).unwrap();
        let address = host_address(i);
        plug(&self.switch, self.ports, &ns, &address);
        ns.ip(&[
            "addr",
            "add",
            &format!("{}/64", host_address_v6(i)),
            "dev",
            "up0",
            "nodad",
        ])
        .unwrap();
        self.ports += 1;
        let name = format!("host-{i}");
        let socket = self.dir.path().join(format!("{name}.sock"));
        let config = self.dir.path().join(format!("{name}.toml"));
        let text = format!(
            r#"[node]
name = "{name}"
asn = 64512
address = {{ ip = "{address}" }}

[etcd]
endpoints = ["http://{ETCD_ADDRESS}:2379"]

[[ipam.pools]]
name = "pool4"
cidr = "{pool}"
{block_size}{pool_v6}
[bgp]
{bgp}
hold_time = 9
connect_retry = 1

[log]
level = "debug"

[api]
socket = "{}"
{extra}"#,
            socket.display(),
            pool = self.pool,
            block_size = self
                .block_size
                .map(|b| format!("block_size = {b}\n"))
                .unwrap_or_default(),
            pool_v6 = self
                .pool_v6
                .as_ref()
                .map(|p| format!("\n[[ipam.pools]]\nname = \"pool6\"\ncidr = \"{p}\"\n"))
                .unwrap_or_default(),
        );
        std::fs::write(&config, text).unwrap();
        self.hosts.push(Host {
            log: self.dir.path().join(format!("{name}.log")),
            name,
            address,
            config,
            socket,
            daemon: None,
            ns,
        });
        i
    }

    pub fn start(&mut self, i: usize) {
        self.start_with_env(i, &[]);
    }

    /// Starts host `i`'s daemon with extra environment variables.
    pub fn start_with_env(&mut self, i: usize, env: &[(&str, &str)]) {
        let h = &mut self.hosts[i];
        let log = File::options()
            .create(true)
            .append(true)
            .open(&h.log)
            .unwrap();
        let mut cmd = h.ns.cmd(env!("CARGO_BIN_EXE_bgpd"));
        cmd.arg("--config")
            .arg(&h.config)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log);
        h.daemon = Some(ChildGuard::spawn(&mut cmd, "bgpd").unwrap());
        let client = self.client(i);
        let up = wait_until(Duration::from_secs(30), || {
            block_on(client.status()).is_ok()
        });
        assert!(
            up,
            "bgpd {i} did not answer on its socket:\n{}",
            self.log_tail(i)
        );
    }

    pub fn kill(&mut self, i: usize) {
        if let Some(mut d) = self.hosts[i].daemon.take() {
            d.kill();
        }
    }

    pub fn signal(&self, i: usize, signal: i32) {
        if let Some(d) = &self.hosts[i].daemon {
            d.signal(signal).unwrap();
        }
    }

    pub fn client(&self, i: usize) -> Client {
        Client::new(&self.hosts[i].socket)
    }

    pub fn status(&self, i: usize) -> Status {
        block_on(self.client(i).status()).unwrap()
    }

    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(&self.hosts[i].log).unwrap_or_default()
    }

    pub fn log_tail(&self, i: usize) -> String {
        let text = std::fs::read_to_string(&self.hosts[i].log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    pub fn routes(&self, i: usize) -> String {
        self.hosts[i]
            .ns
            .ip(&["route", "show", "proto", "98"])
            .unwrap_or_default()
    }

    /// Waits until host `i` has `n` Established peers.
    pub fn wait_established(&self, i: usize, n: usize) {
        let ok = wait_until(Duration::from_secs(40), || {
            block_on(self.client(i).peers())
                .map(|p| p.iter().filter(|p| p.state == "Established").count() >= n)
                .unwrap_or(false)
        });
        assert!(
            ok,
            "host {i}: fewer than {n} sessions up:\n{}",
            self.log_tail(i)
        );
    }

    pub fn block(&self, i: usize) -> String {
        self.status(i).blocks[0].cidr.to_string()
    }

    /// A container namespace attached on host `i` over the control socket.
    pub fn container(&mut self, i: usize, id: &str) -> (usize, Endpoint) {
        let ns = Netns::new(&format!("c{id}")).unwrap();
        let request = AttachRequest {
            container_id: id.to_string(),
            ifname: "eth0".into(),
            netns: ns.path().display().to_string(),
            ips: Vec::new(),
            mtu: None,
        };
        let endpoint = block_on(self.client(i).attach(&request))
            .unwrap_or_else(|e| panic!("attach {id}: {e}\n{}", self.log_tail(i)));
        self.containers.push(ns);
        (self.containers.len() - 1, endpoint)
    }

    /// Attaches container `c` (already attached as `id` on host `i`) once more.
    pub fn container_again(&self, i: usize, id: &str, c: usize) -> Endpoint {
        let request = AttachRequest {
            container_id: id.to_string(),
            ifname: "eth0".into(),
            netns: self.containers[c].path().display().to_string(),
            ips: Vec::new(),
            mtu: None,
        };
        block_on(self.client(i).attach(&request)).unwrap()
    }
}

fn plug(switch: &Netns, index: usize, ns: &Netns, address: &str) {
    let port = format!("p{index}");
    switch
        .ip(&[
            "link",
            "add",
            &port,
            "type",
            "veth",
            "peer",
            "name",
            "up0",
            "netns",
            ns.name(),
        ])
        .unwrap();
    switch
        .ip(&["link", "set", &port, "master", "br0", "up"])
        .unwrap();
    ns.ip(&["addr", "add", &format!("{address}/24"), "dev", "up0"])
        .unwrap();
    ns.ip(&["link", "set", "up0", "up"]).unwrap();
    ns.ip(&["route", "add", "default", "via", GATEWAY]).unwrap();
}

fn start_etcd(ns: &Netns, dir: &TempDir) -> ChildGuard {
    let url = format!("http://{ETCD_ADDRESS}:2379");
    let log = File::create(dir.path().join("etcd.log")).unwrap();
    let mut cmd = ns.cmd("etcd");
    cmd.args(["--name", "m0", "--data-dir"])
        .arg(dir.path().join("etcd"))
        .args([
            "--listen-client-urls",
            &url,
            "--advertise-client-urls",
            &url,
        ])
        .args(["--listen-peer-urls", "http://127.0.0.1:2380"])
        .args(["--initial-advertise-peer-urls", "http://127.0.0.1:2380"])
        .args(["--initial-cluster", "m0=http://127.0.0.1:2380"])
        .stdout(Stdio::null())
        .stderr(log);
    let etcd = ChildGuard::spawn(&mut cmd, "etcd").unwrap();
    let healthy = wait_until(Duration::from_secs(20), || {
        ns.exec("etcdctl", &["--endpoints", &url, "endpoint", "health"])
            .is_ok()
    });
    assert!(healthy, "etcd did not start");
    etcd
}

impl Drop for Lab {
    fn drop(&mut self) {
        for h in &mut self.hosts {
            h.daemon = None;
        }
    }
}
