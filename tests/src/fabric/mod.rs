//! A container fabric on one machine: an etcd, bgpd hosts and containers, each in a network
//! namespace of its own, on one underlay L2 (a bridge inside a switch namespace).
//!
//! Everything lives in namespaces this module creates, so nothing touches the root namespace's
//! interfaces or addresses; dropping the [`Fabric`] kills every process and deletes every
//! namespace, also when a test panics. The binaries are the real `bgpd` and `routectl`,
//! found by [`Binaries::locate`].

pub mod api;
pub mod config;
pub mod containerd;
mod outage;
pub mod ping;

use std::fs::File;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

use crate::netns::{Netns, link};
use crate::peers::bird::Bird;
use crate::peers::{Neighbor, PeerConfig};
use crate::process::{ChildGuard, run, wait_until};

pub use config::{ExplicitPeer, FABRIC_ASN, HostConfig, POOL_V4, POOL_V6, Pool, Role};

/// The underlay subnet every host, etcd and extra peer sits on.
pub const UNDERLAY_PREFIX_LEN: u8 = 24;
/// The underlay's default gateway (the switch namespace's bridge; it forwards nothing).
pub const UNDERLAY_GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
/// etcd's underlay address.
pub const ETCD_ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);
/// etcd's client URL, reachable from every namespace on the underlay.
pub fn etcd_url() -> String {
    format!("http://{ETCD_ADDRESS}:2379")
}

/// BIRD's underlay address when it is the fabric's route reflector.
pub const BIRD_ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 3);

/// The underlay address of the `i`-th (0-based) node with `role`: hosts `host-1`, `host-2` …
/// are 10.99.0.11, .12 …; reflectors `rr-1` … are 10.99.0.201 ….
pub fn node_address(role: Role, i: usize) -> Ipv4Addr {
    let base = match role {
        Role::Host => 11,
        Role::Reflector => 201,
    };
    assert!(
        i < 50,
        "the underlay plan has room for 50 nodes of each role"
    );
    Ipv4Addr::new(10, 99, 0, base + i as u8)
}

/// The configuration of the `i`-th (0-based) node with `role` in a fabric whose control
/// sockets and state directories go to `socket_dir` (`None`: bgpd's defaults): meshing,
/// graceful restart 120 s, no explicit peers. `labs/configs/` holds these for the containerlab topologies.
pub fn node_config(role: Role, i: usize, socket_dir: Option<&Path>) -> HostConfig {
    let name = match role {
        Role::Host => format!("host-{}", i + 1),
        Role::Reflector => format!("rr-{}", i + 1),
    };
    HostConfig {
        socket: socket_dir.map(|d| d.join(format!("{name}.sock"))),
        state_dir: socket_dir.map(|d| d.join(format!("{name}-state"))),
        name,
        role,
        address: node_address(role, i),
        etcd: etcd_url(),
        mesh: true,
        peers: Vec::new(),
        graceful_restart: Some(120),
        policy: None,
        pools: match role {
            Role::Host => Pool::defaults(),
            Role::Reflector => Vec::new(),
        },
        keep_routes_on_exit: true,
        metrics: None,
    }
}

/// The nodes of the containerlab topologies (`labs/*.clab.yml`): three hosts and a reflector,
/// with bgpd's default control socket. `labs/configs/<name>.toml` are these, rendered.
pub fn lab_configs() -> Vec<HostConfig> {
    let mut nodes: Vec<HostConfig> = (0..3).map(|i| node_config(Role::Host, i, None)).collect();
    nodes.push(node_config(Role::Reflector, 0, None));
    nodes
}

/// Where the `bgpd`, `routectl` and `bgpd-cni` executables are: the one way tests find them.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// The daemon.
    pub bgpd: PathBuf,
    /// The CLI (checked when used: `bgpd`'s own tests run without it).
    pub routectl: PathBuf,
    dir: PathBuf,
}

impl Binaries {
    /// `$BGPD_BIN` for the daemon, the others in `$FABRIC_BIN_DIR`; else all in the cargo
    /// profile dir this executable was built into (`target/debug` for tests and for the
    /// `labs` runner), which `cargo build -p bgpd -p routectl` (or `cargo test --workspace`)
    /// fills. The daemon must be there.
    pub fn locate() -> io::Result<Binaries> {
        let dir = match std::env::var_os("FABRIC_BIN_DIR") {
            Some(d) => PathBuf::from(d),
            None => {
                let exe = std::env::current_exe()?;
                let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
                if dir.ends_with("deps") {
                    dir.pop();
                }
                dir
            }
        };
        let bgpd = std::env::var_os("BGPD_BIN").map_or_else(|| dir.join("bgpd"), PathBuf::from);
        check_built(&bgpd, "bgpd")?;
        Ok(Binaries {
            bgpd,
            routectl: dir.join("routectl"),
            dir,
        })
    }

    /// The daemon at `bgpd` (a test's `env!("CARGO_BIN_EXE_bgpd")`), the others beside it.
    pub fn beside(bgpd: impl Into<PathBuf>) -> io::Result<Binaries> {
        let bgpd = bgpd.into();
        check_built(&bgpd, "bgpd")?;
        let dir = bgpd.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok(Binaries {
            routectl: dir.join("routectl"),
            bgpd,
            dir,
        })
    }

    /// The CLI, if it is built.
    pub fn routectl(&self) -> io::Result<&Path> {
        check_built(&self.routectl, "routectl")?;
        Ok(&self.routectl)
    }

    /// The CNI plugin `bgpd-cni` next to the others (`cargo build -p bgpd-cni`).
    pub fn cni_plugin(&self) -> io::Result<PathBuf> {
        let plugin = self.dir.join("bgpd-cni");
        check_built(&plugin, "bgpd-cni")?;
        Ok(plugin)
    }
}

/// An error saying how to build `package` unless `path` is a file.
fn check_built(path: &Path, package: &str) -> io::Result<()> {
    if path.is_file() {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "{} is missing: build it first (cargo build -p {package}) or set FABRIC_BIN_DIR",
                path.display()
            ),
        ))
    }
}

/// A container: a namespace wired to its host by bgpd, with the addresses IPAM gave it.
#[derive(Debug)]
pub struct Container {
    /// The container id given to bgpd.
    pub id: String,
    /// The host it runs on (index into the fabric's hosts).
    pub host: usize,
    /// Its addresses (without prefix length).
    pub ips: Vec<IpAddr>,
    /// Its namespace.
    pub ns: Netns,
}

impl Container {
    /// Its first IPv4 address.
    pub fn ipv4(&self) -> Option<IpAddr> {
        self.ips.iter().copied().find(IpAddr::is_ipv4)
    }

    /// Its first IPv6 address.
    pub fn ipv6(&self) -> Option<IpAddr> {
        self.ips.iter().copied().find(IpAddr::is_ipv6)
    }
}

/// One bgpd node: its namespace, configuration and (while running) process.
#[derive(Debug)]
pub struct Host {
    /// Its configuration; [`Fabric::write_config`] puts it on disk.
    pub config: HostConfig,
    /// Where the configuration file is.
    pub config_path: PathBuf,
    /// bgpd's stdout and stderr.
    pub log_path: PathBuf,
    /// The namespace.
    pub ns: Netns,
    bgpd: Option<ChildGuard>,
}

impl Host {
    /// bgpd's pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.bgpd.as_ref().map(ChildGuard::pid)
    }

    /// Whether its bgpd was started and has exited since (reaping it).
    pub fn exited(&mut self) -> bool {
        self.bgpd.as_mut().is_some_and(ChildGuard::has_exited)
    }
}

/// The fabric: switch, etcd, hosts, containers. Fields drop in order: containers and hosts
/// (with their processes) first, the switch last.
#[derive(Debug)]
pub struct Fabric {
    /// Containers, in the order they were added.
    pub containers: Vec<Container>,
    /// bgpd nodes, in the order they were added.
    pub hosts: Vec<Host>,
    extra: Vec<Netns>,
    etcd: ChildGuard,
    etcd_ns: Netns,
    switch: Netns,
    bins: Binaries,
    dir: TempDir,
    next_port: usize,
}

impl Fabric {
    /// Starts the switch and etcd; no hosts yet. The binaries are [`Binaries::locate`]'s.
    pub fn new() -> io::Result<Fabric> {
        Fabric::with_binaries(Binaries::locate()?)
    }

    /// Like [`Fabric::new`], running `bins`.
    pub fn with_binaries(bins: Binaries) -> io::Result<Fabric> {
        let dir = tempfile::Builder::new().prefix("fabric-").tempdir()?;
        let switch = Netns::new("sw")?;
        switch.ip(&["link", "add", "br0", "type", "bridge"])?;
        switch.ip(&["link", "set", "br0", "up"])?;
        // The underlay's "router": hosts' default route points here, as on a real network
        // (bgpd's proxy-ARP gateway needs one); it forwards nothing.
        switch.ip(&[
            "addr",
            "add",
            &format!("{UNDERLAY_GATEWAY}/{UNDERLAY_PREFIX_LEN}"),
            "dev",
            "br0",
        ])?;
        let etcd_ns = Netns::new("etcd")?;
        plug(&switch, 0, &etcd_ns, ETCD_ADDRESS)?;
        let etcd = start_etcd(&etcd_ns, &etcd_url(), dir.path())?;
        Ok(Fabric {
            containers: Vec::new(),
            hosts: Vec::new(),
            extra: Vec::new(),
            etcd,
            etcd_ns,
            switch,
            bins,
            dir,
            next_port: 1,
        })
    }

    /// The configuration the next node added with `role` gets by default ([`node_config`]).
    pub fn next_host_config(&self, role: Role) -> HostConfig {
        let i = self.hosts.iter().filter(|h| h.config.role == role).count();
        node_config(role, i, Some(self.dir.path()))
    }

    /// Adds `hosts` meshed hosts, waits until each has its sessions to all the others, and
    /// attaches one container to each: the usual start of a cross-host test.
    pub fn add_meshed_hosts_with_a_container(
        &mut self,
        hosts: usize,
        timeout: Duration,
    ) -> io::Result<()> {
        let first = self.hosts.len();
        for _ in 0..hosts {
            self.add_host(Role::Host)?;
        }
        for i in first..first + hosts {
            self.wait_established(i, hosts - 1, timeout)?;
            self.add_container(i)?;
        }
        Ok(())
    }

    /// Adds a node with the default configuration for `role` and starts its bgpd.
    pub fn add_host(&mut self, role: Role) -> io::Result<usize> {
        let config = self.next_host_config(role);
        self.add_host_with(config)
    }

    /// Adds a node with `config` (a free underlay address, a socket path) and starts its
    /// bgpd; returns its index.
    pub fn add_host_with(&mut self, config: HostConfig) -> io::Result<usize> {
        let i = self.add_host_stopped(config)?;
        self.start(i)?;
        Ok(i)
    }

    /// Adds a node with `config` and writes its configuration file, but does not start its
    /// bgpd ([`Fabric::start`] does); returns its index.
    pub fn add_host_stopped(&mut self, config: HostConfig) -> io::Result<usize> {
        let i = self.hosts.len();
        let ns = Netns::new(&config.name)?;
        let port = self.take_port();
        plug(&self.switch, port, &ns, config.address)?;
        ns.ip(&[
            "route",
            "add",
            "default",
            "via",
            &UNDERLAY_GATEWAY.to_string(),
        ])?;
        let host = Host {
            config_path: self.dir.path().join(format!("{}.toml", config.name)),
            log_path: self.dir.path().join(format!("{}.log", config.name)),
            config,
            ns,
            bgpd: None,
        };
        self.hosts.push(host);
        self.write_config(i)?;
        Ok(i)
    }

    /// A bare namespace on the underlay at `address` (for BIRD, GoBGP, …); lives as long as
    /// the fabric.
    pub fn attach_namespace(&mut self, tag: &str, address: Ipv4Addr) -> io::Result<&Netns> {
        let ns = Netns::new(tag)?;
        let port = self.take_port();
        plug(&self.switch, port, &ns, address)?;
        self.extra.push(ns);
        Ok(&self.extra[self.extra.len() - 1])
    }

    /// Starts BIRD at [`BIRD_ADDRESS`] as the route reflector of the first `hosts` hosts (by
    /// [`node_address`]); add those hosts with [`Fabric::bird_client_config`].
    pub fn start_bird_reflector(&mut self, hosts: usize) -> crate::peers::Result<Bird> {
        let mut config = PeerConfig::new(FABRIC_ASN, BIRD_ADDRESS).cluster_id(BIRD_ADDRESS);
        for i in 0..hosts {
            config = config.neighbor(
                Neighbor::new(node_address(Role::Host, i).into(), FABRIC_ASN)
                    .rr_client()
                    .hold_time(9),
            );
        }
        let ns = self.attach_namespace("bird", BIRD_ADDRESS)?;
        Bird::start(ns, config)
    }

    /// The next host's configuration for a BIRD-reflected fabric: no mesh, BIRD as its one
    /// explicit peer.
    pub fn bird_client_config(&self) -> HostConfig {
        let mut config = self.next_host_config(Role::Host);
        config.mesh = false;
        config.peers = vec![ExplicitPeer {
            name: "bird-rr".into(),
            address: BIRD_ADDRESS.into(),
            asn: FABRIC_ASN,
        }];
        config
    }

    fn take_port(&mut self) -> usize {
        self.next_port += 1;
        self.next_port
    }

    /// Writes host `i`'s configuration file from `hosts[i].config`.
    pub fn write_config(&self, i: usize) -> io::Result<()> {
        let h = &self.hosts[i];
        std::fs::write(&h.config_path, h.config.render())
    }

    /// Starts host `i`'s bgpd (if not running) and waits until its control socket answers.
    pub fn start(&mut self, i: usize) -> io::Result<()> {
        self.start_with_env(i, &[])
    }

    /// Like [`Fabric::start`], with extra environment variables for bgpd.
    pub fn start_with_env(&mut self, i: usize, env: &[(&str, &str)]) -> io::Result<()> {
        if self.hosts[i].bgpd.is_some() {
            return Ok(());
        }
        let h = &self.hosts[i];
        let log = File::options()
            .create(true)
            .append(true)
            .open(&h.log_path)?;
        let mut cmd = h.ns.cmd(&self.bins.bgpd.to_string_lossy());
        cmd.arg("--config")
            .arg(&h.config_path)
            .envs(env.iter().copied())
            .stdout(log.try_clone()?)
            .stderr(log);
        let child = ChildGuard::spawn(&mut cmd, "bgpd")?;
        self.hosts[i].bgpd = Some(child);
        let socket = self.hosts[i].config.control_socket();
        let up = wait_until(Duration::from_secs(30), || {
            !self.hosts[i].exited() && api::get(&socket, "/v1/status").is_some()
        });
        if up {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "bgpd on {} did not answer on its control socket: {}",
                self.hosts[i].config.name,
                self.log_tail(i)
            )))
        }
    }

    /// Stops host `i`'s bgpd with SIGTERM (SIGKILL after 10 s).
    pub fn stop(&mut self, i: usize) {
        if let Some(mut c) = self.hosts[i].bgpd.take() {
            c.terminate(Duration::from_secs(10));
        }
    }

    /// Kills host `i`'s bgpd with SIGKILL, as a crash.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.hosts[i].bgpd.take() {
            c.kill();
        }
    }

    /// Sends `signal` (e.g. `libc::SIGHUP`) to host `i`'s bgpd.
    pub fn signal(&self, i: usize, signal: i32) -> io::Result<()> {
        match &self.hosts[i].bgpd {
            Some(c) => c.signal(signal),
            None => Err(io::Error::other("bgpd is not running")),
        }
    }

    /// Host `i`'s bgpd log so far.
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(&self.hosts[i].log_path).unwrap_or_default()
    }

    /// The last lines of host `i`'s bgpd log, for error messages.
    pub fn log_tail(&self, i: usize) -> String {
        read_tail(&self.hosts[i].log_path)
    }

    /// The fabric's temp dir (configs, logs, sockets); a test may put its own files there.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `etcdctl args…` against the fabric's etcd; stdout.
    pub fn etcdctl(&self, args: &[&str]) -> io::Result<String> {
        let url = etcd_url();
        let mut all = vec!["--endpoints", &url];
        all.extend_from_slice(args);
        self.etcd_ns.exec("etcdctl", &all)
    }

    /// Every host's log tail, labelled, for a failing assertion's message.
    pub fn logs(&self) -> String {
        self.hosts
            .iter()
            .enumerate()
            .map(|(i, h)| format!("--- {} ---\n{}", h.config.name, self.log_tail(i)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Runs `routectl --config <host's file> args…` inside host `i`'s namespace; stdout.
    pub fn routectl(&self, i: usize, args: &[&str]) -> io::Result<String> {
        let h = &self.hosts[i];
        run(h
            .ns
            .cmd(&self.bins.routectl()?.to_string_lossy())
            .arg("--config")
            .arg(&h.config_path)
            .args(args))
    }

    /// `routectl -o json args…` on host `i`, parsed.
    pub fn routectl_json(&self, i: usize, args: &[&str]) -> io::Result<Value> {
        let mut all = vec!["-o", "json"];
        all.extend_from_slice(args);
        let out = self.routectl(i, &all)?;
        serde_json::from_str(&out).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("routectl {args:?} printed no JSON ({e}): {out}"),
            )
        })
    }

    /// Host `i`'s peers in state Established (their addresses).
    pub fn established(&self, i: usize) -> Vec<String> {
        let Ok(status) = self.routectl_json(i, &["status"]) else {
            return Vec::new();
        };
        status["peers"]
            .as_array()
            .map(|peers| {
                peers
                    .iter()
                    .filter(|p| p["state"] == "Established")
                    .filter_map(|p| p["address"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits until host `i` has `n` established sessions.
    pub fn wait_established(&self, i: usize, n: usize, timeout: Duration) -> io::Result<()> {
        if wait_until(timeout, || self.established(i).len() == n) {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "{} has {:?} established, wanted {n}; status: {}\n{}",
                self.hosts[i].config.name,
                self.established(i),
                self.routectl(i, &["status"])
                    .unwrap_or_else(|e| e.to_string()),
                self.logs()
            )))
        }
    }

    /// Waits until every session of host `i` is Established and has been for 3 s, and returns
    /// `routectl peers` then: a baseline for "this did not reset a session". A session that just
    /// came up can still reset once (both ends connect at once and one resolves the collision
    /// after the other already took the session as Established).
    pub fn wait_sessions_settled(&self, i: usize, timeout: Duration) -> io::Result<Value> {
        let mut last = Value::Null;
        let settled = wait_until(timeout, || {
            last = self.routectl_json(i, &["peers"]).unwrap_or_default();
            last.as_array().is_some_and(|ps| {
                !ps.is_empty()
                    && ps.iter().all(|p| {
                        p["state"] == "Established"
                            && p["uptime_secs"].as_u64().is_some_and(|u| u >= 3)
                    })
            })
        });
        if settled {
            Ok(last)
        } else {
            Err(io::Error::other(format!(
                "sessions of {} not up for 3 s: {last}\n{}",
                self.hosts[i].config.name,
                self.logs()
            )))
        }
    }

    /// Host `i`'s blocks (`status.blocks[].cidr`).
    pub fn blocks(&self, i: usize) -> io::Result<Vec<String>> {
        let status = self.routectl_json(i, &["status"])?;
        Ok(status["blocks"]
            .as_array()
            .map(|b| {
                b.iter()
                    .filter_map(|b| b["cidr"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Host `i`'s kernel routes that bgpd installed (`ip route show proto 98`, IPv4).
    pub fn bgpd_routes(&self, i: usize) -> String {
        self.hosts[i]
            .ns
            .ip(&["route", "show", "proto", "98"])
            .unwrap_or_default()
    }

    /// Host `i`'s kernel route for exactly `prefix` (`ip route show <prefix>` in its
    /// namespace, both families, every table); empty when there is none.
    pub fn kernel_route(&self, i: usize, prefix: &str) -> String {
        let family = if prefix.contains(':') { "-6" } else { "-4" };
        self.hosts[i]
            .ns
            .ip(&[family, "route", "show", "table", "all", "exact", prefix])
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    /// Host `via`'s underlay address in the family of `prefix`: the next hop its blocks carry.
    pub fn next_hop_of(&self, via: usize, prefix: &str) -> String {
        let address = self.hosts[via].config.address;
        if prefix.contains(':') {
            underlay_v6(address).to_string()
        } else {
            address.to_string()
        }
    }

    /// Whether host `i` routes `prefix` through host `via`'s underlay address.
    pub fn routes_via(&self, i: usize, prefix: &str, via: usize) -> bool {
        let gw = format!("via {}", self.next_hop_of(via, prefix));
        self.kernel_route(i, prefix).contains(&gw)
    }

    /// Waits until every host from index `first` on routes every other such host's IPv4
    /// blocks (and IPv6 blocks if `ipv6`) via that host's underlay address.
    pub fn wait_converged(&self, first: usize, ipv6: bool, timeout: Duration) -> io::Result<()> {
        let mut blocks = Vec::new();
        for i in first..self.hosts.len() {
            let mut own = self.blocks(i)?;
            own.retain(|b| ipv6 || !b.contains(':'));
            blocks.push((i, own));
        }
        let missing = || -> Vec<String> {
            let mut missing = Vec::new();
            for i in first..self.hosts.len() {
                for (owner, cidrs) in blocks.iter().filter(|(owner, _)| *owner != i) {
                    for cidr in cidrs.iter().filter(|c| !self.routes_via(i, c, *owner)) {
                        missing.push(format!(
                            "{} lacks {cidr} via {}",
                            self.hosts[i].config.name,
                            self.next_hop_of(*owner, cidr)
                        ));
                    }
                }
            }
            missing
        };
        if wait_until(timeout, || missing().is_empty()) {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "not converged: {:?}\n{}",
                missing(),
                self.logs()
            )))
        }
    }

    /// Adds a container on host `i` through `routectl endpoint add` and returns its index.
    pub fn add_container(&mut self, host: usize) -> io::Result<usize> {
        self.add_labelled_container(host, &[])
    }

    /// Adds a container with `labels` (`key=value`, `routectl endpoint add --label`) on host
    /// `i` and returns its index.
    pub fn add_labelled_container(&mut self, host: usize, labels: &[&str]) -> io::Result<usize> {
        let n = self.containers.len();
        let ns = Netns::new(&format!("c{n}"))?;
        let id = format!("ctr-{}-{n}", self.hosts[host].config.name);
        let mut args = vec!["endpoint", "add", &id, "--netns", ns.name()];
        for label in labels {
            args.extend(["--label", label]);
        }
        let printed = self.routectl_json(host, &args)?;
        // routectl prints a list of endpoints (one here) or the one endpoint.
        let ep = printed.get(0).unwrap_or(&printed);
        let ips = ep["ips"]
            .as_array()
            .map(|ips| {
                ips.iter()
                    .filter_map(|ip| ip["address"].as_str())
                    .filter_map(|a| a.split('/').next()?.parse().ok())
                    .collect::<Vec<IpAddr>>()
            })
            .unwrap_or_default();
        if ips.is_empty() {
            return Err(io::Error::other(format!(
                "endpoint add gave no addresses: {ep}"
            )));
        }
        self.containers.push(Container { id, host, ips, ns });
        Ok(n)
    }

    /// Removes container `c` through `routectl endpoint del`; returns the JSON report.
    pub fn remove_container(&mut self, c: usize) -> io::Result<Value> {
        let container = self.containers.remove(c);
        self.routectl_json(container.host, &["endpoint", "del", &container.id])
    }

    /// Which namespace, address and process is what, one line each, for people.
    pub fn describe(&self) -> String {
        let mut lines = vec![
            format!(
                "switch  {} (bridge br0, underlay 10.99.0.0/{UNDERLAY_PREFIX_LEN})",
                self.switch.name()
            ),
            format!(
                "etcd    {} {} (pid {})",
                self.etcd_ns.name(),
                etcd_url(),
                self.etcd.pid()
            ),
        ];
        for h in &self.hosts {
            lines.push(format!(
                "{:<7} {} {} (bgpd pid {})",
                h.config.name,
                h.ns.name(),
                h.config.address,
                h.pid().map_or("-".to_string(), |p| p.to_string())
            ));
        }
        for c in &self.containers {
            let ips: Vec<String> = c.ips.iter().map(IpAddr::to_string).collect();
            lines.push(format!(
                "  {} on {}: {} ({})",
                c.id,
                self.hosts[c.host].config.name,
                ips.join(", "),
                c.ns.name()
            ));
        }
        lines.join("\n")
    }
}

/// The IPv6 underlay address beside an IPv4 one: fd99::<last octet>/64. bgpd takes the global
/// IPv6 address on its node address's interface as the next hop of its IPv6 blocks, so a
/// dual-stack underlay is what lets containers reach each other over IPv6 across hosts.
pub fn underlay_v6(address: Ipv4Addr) -> std::net::Ipv6Addr {
    std::net::Ipv6Addr::new(0xfd99, 0, 0, 0, 0, 0, 0, u16::from(address.octets()[3]))
}

/// Connects `ns` to the switch bridge: `eth0` with `address`/24 and its [`underlay_v6`]/64
/// inside, `p<port>` on br0.
fn plug(switch: &Netns, port: usize, ns: &Netns, address: Ipv4Addr) -> io::Result<()> {
    let sw_if = format!("p{port}");
    let cidr = format!("{address}/{UNDERLAY_PREFIX_LEN}");
    let cidr_v6 = format!("{}/64", underlay_v6(address));
    link(switch, &sw_if, &[], ns, "eth0", &[&cidr, &cidr_v6])?;
    switch.ip(&["link", "set", &sw_if, "master", "br0"])?;
    Ok(())
}

/// Starts etcd in `ns` serving clients at `url` (its data and `etcd.log` in `dir`) and waits
/// until it is healthy.
pub fn start_etcd(ns: &Netns, url: &str, dir: &Path) -> io::Result<ChildGuard> {
    let log = File::create(dir.join("etcd.log"))?;
    let mut cmd = ns.cmd("etcd");
    cmd.arg("--name")
        .arg("fabric")
        .arg("--data-dir")
        .arg(dir.join("etcd"))
        .args(["--listen-client-urls", url, "--advertise-client-urls", url])
        .args(["--listen-peer-urls", "http://127.0.0.1:2380"])
        .args(["--initial-advertise-peer-urls", "http://127.0.0.1:2380"])
        .args(["--initial-cluster", "fabric=http://127.0.0.1:2380"])
        .stdout(Stdio::null())
        .stderr(log);
    let etcd = ChildGuard::spawn(&mut cmd, "etcd")?;
    let healthy = wait_until(Duration::from_secs(20), || {
        ns.exec("etcdctl", &["--endpoints", url, "endpoint", "health"])
            .is_ok()
    });
    if healthy {
        Ok(etcd)
    } else {
        Err(io::Error::other(format!(
            "etcd did not become healthy at {url}: {}",
            read_tail(&dir.join("etcd.log"))
        )))
    }
}

/// The last 40 lines of a log file.
fn read_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}
