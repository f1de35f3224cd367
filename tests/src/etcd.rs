//! A real etcd (Debian's `etcd-server`) on free loopback ports with a temp data dir; with
//! [`EtcdBuilder::tls`], clients must speak TLS and present a certificate of a throwaway CA.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::certs::Pki;
use crate::netns::Netns;
use crate::process::{ChildGuard, run, wait_until};

/// One member's fixed identity: its name, ports and data dir survive a stop and start.
#[derive(Debug)]
struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    child: Option<ChildGuard>,
}

/// How to start an etcd: members, TLS, namespace. `Etcd::builder().tls().start()`.
#[derive(Debug)]
pub struct EtcdBuilder<'a> {
    members: usize,
    tls: bool,
    netns: Option<&'a Netns>,
}

impl<'a> EtcdBuilder<'a> {
    /// Number of members (1 by default).
    pub fn members(mut self, n: usize) -> Self {
        self.members = n;
        self
    }

    /// Clients must use TLS (`https://` URLs) and present a certificate signed by the
    /// throwaway CA in [`Etcd::pki`] (`--client-cert-auth`). Peers talk plain HTTP.
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// Runs the members inside `ns` (on its 127.0.0.1), for a daemon in that namespace. The
    /// namespace must outlive the etcd.
    pub fn in_netns(mut self, ns: &'a Netns) -> Self {
        self.netns = Some(ns);
        self
    }

    /// Starts every member and waits until each serves.
    pub fn start(self) -> io::Result<Etcd> {
        let dir = tempfile::Builder::new().prefix("testkit-etcd-").tempdir()?;
        let pki = match self.tls {
            true => Some(Pki::generate(&dir.path().join("pki"))?),
            false => None,
        };
        let members = (0..self.members)
            .map(|i| Member {
                name: format!("m{i}"),
                client_port: crate::free_port(),
                peer_port: crate::free_port(),
                child: None,
            })
            .collect();
        let mut etcd = Etcd {
            dir,
            members,
            pki,
            netns: self.netns.map(|ns| ns.name().to_string()),
        };
        for i in 0..self.members {
            etcd.spawn_member(i)?;
        }
        for i in 0..self.members {
            etcd.wait_healthy(i)?;
        }
        Ok(etcd)
    }
}

/// An etcd cluster of one or more members on 127.0.0.1, stopped and wiped on drop.
#[derive(Debug)]
pub struct Etcd {
    dir: TempDir,
    members: Vec<Member>,
    pki: Option<Pki>,
    /// The namespace the members run in, if not this one.
    netns: Option<String>,
}

impl Etcd {
    /// Starts a single-member etcd and waits until it serves.
    pub fn single() -> io::Result<Etcd> {
        Etcd::builder().start()
    }

    /// Starts an `n`-member cluster and waits until every member serves.
    pub fn cluster(n: usize) -> io::Result<Etcd> {
        Etcd::builder().members(n).start()
    }

    /// Starts a single-member etcd that requires TLS with a client certificate.
    pub fn single_tls() -> io::Result<Etcd> {
        Etcd::builder().tls().start()
    }

    /// A builder for other shapes: one plain member in this namespace by default.
    pub fn builder<'a>() -> EtcdBuilder<'a> {
        EtcdBuilder {
            members: 1,
            tls: false,
            netns: None,
        }
    }

    /// The CA, server and client certificates, if clients must use TLS.
    pub fn pki(&self) -> Option<&Pki> {
        self.pki.as_ref()
    }

    /// Client URLs of all members, e.g. `http://127.0.0.1:40123` (`https://` with TLS).
    pub fn endpoints(&self) -> Vec<String> {
        let scheme = if self.pki.is_some() { "https" } else { "http" };
        self.members
            .iter()
            .map(|m| format!("{scheme}://127.0.0.1:{}", m.client_port))
            .collect()
    }

    /// Runs `etcdctl args…` against every member (with the client certificate under TLS,
    /// inside the namespace if any); returns stdout.
    pub fn etcdctl(&self, args: &[&str]) -> io::Result<String> {
        run(self.etcdctl_cmd(&self.endpoints().join(",")).args(args))
    }

    fn etcdctl_cmd(&self, endpoints: &str) -> Command {
        let mut cmd = self.command("etcdctl");
        cmd.env("ETCDCTL_API", "3")
            .args(["--endpoints", endpoints])
            .args(["--dial-timeout", "1s", "--command-timeout", "2s"]);
        if let Some(pki) = &self.pki {
            cmd.arg("--cacert")
                .arg(pki.ca())
                .arg("--cert")
                .arg(pki.client_cert())
                .arg("--key")
                .arg(pki.client_key());
        }
        cmd
    }

    /// `program` run where the members run (this namespace or theirs).
    fn command(&self, program: &str) -> Command {
        match &self.netns {
            Some(ns) => {
                let mut cmd = Command::new("ip");
                cmd.args(["netns", "exec", ns, program]);
                cmd
            }
            None => Command::new(program),
        }
    }

    /// The first member's client URL.
    pub fn endpoint(&self) -> String {
        self.endpoints().swap_remove(0)
    }

    /// Kills member `i` (SIGKILL, as a crash); its data stays for `start_member`.
    pub fn kill_member(&mut self, i: usize) {
        self.members[i].child = None;
    }

    /// Starts member `i` again on its old ports and data and waits until it serves.
    pub fn start_member(&mut self, i: usize) -> io::Result<()> {
        if self.members[i].child.is_none() {
            self.spawn_member(i)?;
        }
        self.wait_healthy(i)
    }

    /// Kills every member, as an outage.
    pub fn stop(&mut self) {
        for m in &mut self.members {
            m.child = None;
        }
    }

    /// Starts every stopped member again and waits until all serve.
    pub fn start(&mut self) -> io::Result<()> {
        for i in 0..self.members.len() {
            if self.members[i].child.is_none() {
                self.spawn_member(i)?;
            }
        }
        for i in 0..self.members.len() {
            self.wait_healthy(i)?;
        }
        Ok(())
    }

    fn data_dir(&self, i: usize) -> PathBuf {
        self.dir.path().join(&self.members[i].name)
    }

    fn spawn_member(&mut self, i: usize) -> io::Result<()> {
        let initial_cluster = self
            .members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect::<Vec<_>>()
            .join(",");
        let client = self.endpoints().swap_remove(i);
        let m = &self.members[i];
        let peer = format!("http://127.0.0.1:{}", m.peer_port);
        let log = std::fs::File::create(self.dir.path().join(format!("{}.log", m.name)))?;
        let mut cmd = self.command("etcd");
        cmd.arg("--name")
            .arg(&m.name)
            .arg("--data-dir")
            .arg(self.data_dir(i))
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args([
                "--initial-cluster",
                &initial_cluster,
                "--initial-cluster-state",
                "new",
            ])
            .args([
                "--initial-cluster-token",
                &format!("testkit-{}", std::process::id()),
            ])
            .args(["--heartbeat-interval", "50", "--election-timeout", "500"]);
        if let Some(pki) = &self.pki {
            cmd.arg("--cert-file")
                .arg(pki.server_cert())
                .arg("--key-file")
                .arg(pki.server_key())
                .arg("--trusted-ca-file")
                .arg(pki.ca())
                .arg("--client-cert-auth");
        }
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log);
        let child = ChildGuard::spawn(&mut cmd, "etcd")?;
        self.members[i].child = Some(child);
        Ok(())
    }

    fn wait_healthy(&mut self, i: usize) -> io::Result<()> {
        let port = self.members[i].client_port;
        // Plain HTTP from here is the quick probe; under TLS or in another namespace, ask
        // etcdctl where the members run.
        let quick = self.pki.is_none() && self.netns.is_none();
        let endpoint = self.endpoints().swap_remove(i);
        let healthy = wait_until(Duration::from_secs(20), || {
            if quick {
                health(port)
            } else {
                run(self.etcdctl_cmd(&endpoint).args(["endpoint", "health"])).is_ok()
            }
        });
        if healthy {
            return Ok(());
        }
        let log = std::fs::read_to_string(
            self.dir
                .path()
                .join(format!("{}.log", self.members[i].name)),
        )
        .unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(15).collect();
        Err(io::Error::other(format!(
            "etcd member {i} on 127.0.0.1:{port} not healthy within 20 s; log tail:\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        )))
    }
}

/// True if the member on `port` answers `/health` with `"health":"true"`.
fn health(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    let req = format!("GET /health HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body.contains("\"health\":\"true\"")
}
