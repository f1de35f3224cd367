//! Our speaker as a process in a namespace (like testkit runs BIRD), and the two-namespace
//! topology the interop tests share.

#![allow(dead_code)] // each test binary uses part of this module

use std::io;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use testkit::netns::{Netns, link};
use testkit::process::{ChildGuard, wait_until};

/// Our side of every topology.
pub const OUR_AS: u32 = 65001;
/// The other daemon's AS (eBGP).
pub const THEIR_AS: u32 = 65002;
/// Hold time on both sides: short, so expiry tests are quick.
pub const HOLD: u16 = 6;
/// Long enough for any session to come up on a loaded two-core CI machine.
pub const UP: Duration = Duration::from_secs(40);
/// Long enough for a route change to propagate.
pub const ROUTE: Duration = Duration::from_secs(20);

/// Two namespaces joined by a veth pair, IPv4 and IPv6 on both ends.
pub struct Pair {
    /// Where our speaker runs.
    pub us: Netns,
    /// Where the other daemon runs.
    pub them: Netns,
    /// Our IPv4 / IPv6 address.
    pub our_v4: IpAddr,
    /// Our IPv6 address.
    pub our_v6: IpAddr,
    /// Their IPv4 address.
    pub their_v4: IpAddr,
    /// Their IPv6 address.
    pub their_v6: IpAddr,
}

impl Pair {
    /// Creates the namespaces and the link.
    pub fn new() -> io::Result<Pair> {
        let us = Netns::new("us")?;
        let them = Netns::new("them")?;
        link(
            &us,
            "v-us",
            &["10.77.0.1/24", "fd77::1/64"],
            &them,
            "v-them",
            &["10.77.0.2/24", "fd77::2/64"],
        )?;
        Ok(Pair {
            us,
            them,
            our_v4: "10.77.0.1".parse().unwrap(),
            our_v6: "fd77::1".parse().unwrap(),
            their_v4: "10.77.0.2".parse().unwrap(),
            their_v6: "fd77::2".parse().unwrap(),
        })
    }
}

/// The `bgp-speaker` binary of this package.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_bgp-speaker")
}

/// Our speaker running in a namespace, with its config and status files in a temp dir.
pub struct Ours {
    dir: tempfile::TempDir,
    netns: String,
    child: Option<ChildGuard>,
}

impl Ours {
    /// Starts `bgp-speaker` with `config` (TOML) inside `netns`.
    pub fn start(netns: &Netns, config: &str) -> io::Result<Ours> {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("speaker.toml"), config)?;
        let mut ours = Ours {
            dir,
            netns: netns.name().to_string(),
            child: None,
        };
        ours.launch(false)?;
        Ok(ours)
    }

    fn launch(&mut self, restarting: bool) -> io::Result<()> {
        let _ = std::fs::remove_file(self.status_path());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("speaker.log"))?;
        let mut cmd = std::process::Command::new("ip");
        cmd.args(["netns", "exec", &self.netns, binary(), "--routes", "-c"])
            .arg(self.dir.path().join("speaker.toml"))
            .arg("--status")
            .arg(self.status_path())
            .env("RUST_LOG", "info")
            .stderr(log);
        if restarting {
            cmd.arg("--restarting");
        }
        self.child = Some(ChildGuard::spawn(&mut cmd, "bgp-speaker")?);
        Ok(())
    }

    fn status_path(&self) -> PathBuf {
        self.dir.path().join("status.json")
    }

    /// The log so far, for failure messages.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("speaker.log")).unwrap_or_default()
    }

    /// Rewrites the config file (for the next start).
    pub fn write_config(&self, config: &str) -> io::Result<()> {
        std::fs::write(self.dir.path().join("speaker.toml"), config)
    }

    /// Rewrites the config and makes the speaker apply it (SIGHUP).
    pub fn reload(&self, config: &str) -> io::Result<()> {
        self.write_config(config)?;
        self.signal(libc::SIGHUP)
    }

    /// Sends `sig` to the speaker.
    pub fn signal(&self, sig: i32) -> io::Result<()> {
        let pid = self
            .pid()
            .ok_or_else(|| io::Error::other("speaker not running"))?;
        // SAFETY: kill(2) on a pid of our own child tree; no memory effects.
        if unsafe { libc::kill(pid, sig) } == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// The speaker's own pid (the child of `ip netns exec`, which execs it).
    fn pid(&self) -> Option<i32> {
        self.child.as_ref().map(|c| c.pid() as i32)
    }

    /// SIGKILL, as a crash.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill();
        }
    }

    /// Starts it again after [`kill`](Self::kill), announcing a graceful restart if `restarting`.
    pub fn restart(&mut self, restarting: bool) -> io::Result<()> {
        self.kill();
        self.launch(restarting)
    }

    /// The parsed status file (empty object until the first write).
    pub fn status(&self) -> Value {
        std::fs::read_to_string(self.status_path())
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Value::Null)
    }

    /// The status of the peer at `addr`.
    pub fn peer(&self, addr: IpAddr) -> Value {
        self.status()["peers"]
            .as_array()
            .and_then(|ps| {
                ps.iter()
                    .find(|p| p["address"] == addr.to_string())
                    .cloned()
            })
            .unwrap_or(Value::Null)
    }

    /// Every route whose prefix is `prefix`.
    pub fn routes_for(&self, prefix: &str) -> Vec<Value> {
        self.status()["routes"]
            .as_array()
            .map(|rs| {
                rs.iter()
                    .filter(|r| r["prefix"] == prefix)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Polls until `ready` holds on the status, or panics with the log after `timeout`.
    pub fn wait(&self, what: &str, timeout: Duration, ready: impl Fn(&Self) -> bool) {
        assert!(
            wait_until(timeout, || ready(self)),
            "ours: timed out waiting for {what}\nstatus: {:#}\nlog:\n{}",
            self.status(),
            self.logs()
        );
    }

    /// Waits for the session to `addr` to be Established.
    pub fn wait_established(&self, addr: IpAddr) {
        self.wait(&format!("{addr} Established"), UP, |o| {
            o.peer(addr)["state"] == "Established"
        });
    }

    /// Waits for a learned route to `prefix` from `from`; returns it.
    pub fn wait_route(&self, prefix: &str, from: IpAddr) -> Value {
        let has = |o: &Self| {
            o.routes_for(prefix)
                .into_iter()
                .find(|r| r["from"] == from.to_string())
        };
        self.wait(&format!("{prefix} from {from}"), ROUTE, |o| {
            has(o).is_some()
        });
        has(self).unwrap_or(Value::Null)
    }

    /// Waits until no learned route to `prefix` is left.
    pub fn wait_route_gone(&self, prefix: &str) {
        self.wait(&format!("{prefix} withdrawn"), ROUTE, |o| {
            o.routes_for(prefix).iter().all(|r| r["from"].is_null())
        });
    }
}

/// Our config: AS 65001, router id `id`, originating `originate`, with `peers` as TOML tables.
pub fn our_config(id: &str, originate: &[&str], peers: &[String]) -> String {
    let list = originate
        .iter()
        .map(|p| format!("\"{p}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let mut text = format!("local_as = {OUR_AS}\nrouter_id = \"{id}\"\noriginate = [{list}]\n");
    for p in peers {
        text.push_str("\n[[peers]]\n");
        text.push_str(p);
    }
    text
}

/// One `[[peers]]` body: `address`, AS, family, our hold time and fast retries, plus `extra` lines.
pub fn our_peer(address: IpAddr, remote_as: u32, extra: &str) -> String {
    let family = if address.is_ipv6() { "ipv6" } else { "ipv4" };
    format!(
        "address = \"{address}\"\nremote_as = {remote_as}\nfamilies = [\"{family}\"]\nhold_time = {HOLD}\nconnect_retry = 1\n{extra}\n"
    )
}

/// A hub namespace with `n` spokes, spoke `i` (from 1) on 10.78.i.0/24: the hub is .1, the
/// spoke .2, and every spoke reaches the other subnets through the hub.
pub struct Star {
    /// The middle.
    pub hub: Netns,
    /// The spokes, in order.
    pub spokes: Vec<Netns>,
}

impl Star {
    /// Creates the namespaces, links and routes.
    pub fn new(n: usize) -> io::Result<Star> {
        let hub = Netns::new("hub")?;
        hub.sysctl("net.ipv4.ip_forward", "1")?;
        let mut spokes = Vec::new();
        for i in 1..=n {
            let spoke = Netns::new(&format!("s{i}"))?;
            link(
                &hub,
                &format!("h{i}"),
                &[&format!("10.78.{i}.1/24")],
                &spoke,
                &format!("s{i}"),
                &[&format!("10.78.{i}.2/24")],
            )?;
            spoke.ip(&[
                "route",
                "add",
                "10.78.0.0/16",
                "via",
                &format!("10.78.{i}.1"),
            ])?;
            spokes.push(spoke);
        }
        Ok(Star { hub, spokes })
    }

    /// The hub's address towards spoke `i`.
    pub fn hub_addr(i: usize) -> IpAddr {
        format!("10.78.{i}.1").parse().unwrap()
    }

    /// Spoke `i`'s address.
    pub fn spoke_addr(i: usize) -> IpAddr {
        format!("10.78.{i}.2").parse().unwrap()
    }
}

/// `config` with `text` (top-level keys or tables) inserted before the first `[[peers]]`.
pub fn with_top(config: &str, text: &str) -> String {
    match config.find("\n[[peers]]") {
        Some(at) => format!("{}\n{text}\n{}", &config[..at], &config[at..]),
        None => format!("{config}\n{text}\n"),
    }
}
