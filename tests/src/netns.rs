//! Network namespaces as test hosts, joined by veth pairs.

use std::io;
use std::path::PathBuf;
use std::process::Command;

use crate::process::{ChildGuard, run};

/// A network namespace, deleted (with every process still in it) on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates a namespace named after `tag` (unique per process) with loopback up.
    pub fn new(tag: &str) -> io::Result<Netns> {
        let name = crate::unique_name(tag);
        run(Command::new("ip").args(["netns", "add", &name]))?;
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace's name, as `ip netns` knows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The bind-mounted namespace file, for tools that take a path.
    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// A command that runs `program` inside this namespace.
    pub fn cmd(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]);
        cmd
    }

    /// Runs `program args…` inside the namespace to completion; returns stdout.
    pub fn exec(&self, program: &str, args: &[&str]) -> io::Result<String> {
        run(self.cmd(program).args(args))
    }

    /// Runs `ip args…` against this namespace; returns stdout.
    pub fn ip(&self, args: &[&str]) -> io::Result<String> {
        run(Command::new("ip").arg("-n").arg(&self.name).args(args))
    }

    /// Spawns a long-running `program args…` inside the namespace.
    pub fn spawn(&self, program: &str, args: &[&str]) -> io::Result<ChildGuard> {
        ChildGuard::spawn(self.cmd(program).args(args), program)
    }

    /// Sets a sysctl inside the namespace, e.g. `("net.ipv4.ip_forward", "1")`.
    pub fn sysctl(&self, key: &str, value: &str) -> io::Result<()> {
        self.exec("sysctl", &["-qw", &format!("{key}={value}")])
            .map(|_| ())
    }

    /// True if one ICMP echo to `addr` from inside the namespace is answered within a second.
    pub fn ping(&self, addr: &str) -> bool {
        self.exec("ping", &["-c1", "-W1", "-q", addr]).is_ok()
    }

    fn pids(&self) -> Vec<i32> {
        run(Command::new("ip").args(["netns", "pids", &self.name]))
            .map(|out| {
                out.split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for pid in self.pids() {
            // SAFETY: kill(2) on a pid read from the namespace; no memory effects.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let _ = run(Command::new("ip").args(["netns", "del", &self.name]));
    }
}

/// Joins two namespaces with a veth pair `a_if`—`b_if` (names ≤ 15 bytes), sets the given
/// addresses (CIDR notation; empty for none) and brings both ends up.
pub fn link(
    a: &Netns,
    a_if: &str,
    a_addrs: &[&str],
    b: &Netns,
    b_if: &str,
    b_addrs: &[&str],
) -> io::Result<()> {
    a.ip(&[
        "link",
        "add",
        a_if,
        "type",
        "veth",
        "peer",
        "name",
        b_if,
        "netns",
        b.name(),
    ])?;
    for (ns, ifname, addrs) in [(a, a_if, a_addrs), (b, b_if, b_addrs)] {
        for addr in addrs {
            // nodad: IPv6 addresses are usable at once instead of after duplicate detection.
            let mut args = vec!["addr", "add", addr, "dev", ifname];
            if addr.contains(':') {
                args.push("nodad");
            }
            ns.ip(&args)?;
        }
        ns.ip(&["link", "set", ifname, "up"])?;
    }
    Ok(())
}
