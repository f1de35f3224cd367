//! One real bgpd host in a namespace of its own, with its own etcd inside it: enough for the
//! clients of the control socket (`routectl`, the CNI plugin) to test against the real daemon.
//! Killed and removed on drop, also when a test panics.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use tempfile::TempDir;

use crate::fabric::{Binaries, api, start_etcd};
use crate::netns::Netns;
use crate::process::{ChildGuard, wait_until};

/// The host's underlay address (on a veth inside its namespace).
pub const ADDRESS: &str = "10.97.0.11";
/// The IPv4 pool the host draws container addresses from.
pub const POOL: &str = "10.244.0.0/16";
/// etcd's client URL, inside the namespace.
pub const ETCD_URL: &str = "http://127.0.0.1:2379";

/// Gives `ns` an underlay interface `uplink` with `cidr` that is up, with nothing behind it:
/// a veth pair with both ends inside (this kernel has no dummy links). Enough for a node
/// address on a host that peers with nobody.
pub fn stub_uplink(ns: &Netns, cidr: &str) -> io::Result<()> {
    ns.ip(&[
        "link",
        "add",
        "uplink",
        "type",
        "veth",
        "peer",
        "name",
        "uplink-end",
    ])?;
    ns.ip(&["addr", "add", cidr, "dev", "uplink"])?;
    ns.ip(&["link", "set", "uplink-end", "up"])?;
    ns.ip(&["link", "set", "uplink", "up"])?;
    Ok(())
}

/// A running bgpd with etcd, in one namespace.
#[derive(Debug)]
pub struct SingleHost {
    // Field order is drop order: the daemon stops before etcd, then the namespace goes.
    _daemon: ChildGuard,
    _etcd: ChildGuard,
    ns: Netns,
    dir: TempDir,
}

impl SingleHost {
    /// Starts etcd and bgpd (node `host-a`, AS 64512, mesh on, pool [`POOL`]) and waits until
    /// the control socket answers and the host holds a block.
    pub fn start() -> io::Result<SingleHost> {
        SingleHost::start_with("")
    }

    /// Like [`SingleHost::start`], with `extra` TOML appended to bgpd's config (e.g.
    /// `[[bgp.peers]]` tables).
    pub fn start_with(extra: &str) -> io::Result<SingleHost> {
        let bgpd = Binaries::locate()?.bgpd;
        let dir = tempfile::Builder::new().prefix("testkit-host-").tempdir()?;
        let ns = Netns::new("host")?;
        stub_uplink(&ns, &format!("{ADDRESS}/24"))?;
        // A default route, so bgpd's proxy ARP answers containers for their gateway.
        ns.ip(&[
            "route",
            "add",
            "default",
            "via",
            "10.97.0.1",
            "dev",
            "uplink",
        ])?;
        let etcd = start_etcd(&ns, ETCD_URL, dir.path())?;
        let config = dir.path().join("bgpd.toml");
        let socket = dir.path().join("bgpd.sock");
        std::fs::write(
            &config,
            format!(
                r#"[node]
name = "host-a"
asn = 64512
address = {{ ip = "{ADDRESS}" }}

[etcd]
endpoints = ["{ETCD_URL}"]

[[ipam.pools]]
name = "pool4"
cidr = "{POOL}"

[bgp]
mesh = true

[api]
socket = "{}"

[state]
dir = "{}"
{extra}"#,
                socket.display(),
                dir.path().join("state").display()
            ),
        )?;
        let log = std::fs::File::create(dir.path().join("bgpd.log"))?;
        let mut cmd = ns.cmd(&bgpd.to_string_lossy());
        cmd.arg("--config")
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(log);
        let daemon = ChildGuard::spawn(&mut cmd, "bgpd")?;
        let host = SingleHost {
            _daemon: daemon,
            _etcd: etcd,
            ns,
            dir,
        };
        let ready = wait_until(Duration::from_secs(60), || {
            // The daemon may pretty-print: compare without blanks.
            api::get(&host.socket(), "/v1/status").is_some_and(|s| {
                let compact: String = s.split_whitespace().collect();
                compact.contains(r#""blocks":[{"#)
            })
        });
        if !ready {
            return Err(io::Error::other(format!(
                "bgpd did not come up with a block:\n{}",
                host.log()
            )));
        }
        Ok(host)
    }

    /// The control socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("bgpd.sock")
    }

    /// bgpd's configuration file.
    pub fn config(&self) -> PathBuf {
        self.dir.path().join("bgpd.toml")
    }

    /// The namespace (etcd is reachable at [`ETCD_URL`] only from inside it).
    pub fn ns(&self) -> &Netns {
        &self.ns
    }

    /// bgpd's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("bgpd.log")).unwrap_or_default()
    }
}
