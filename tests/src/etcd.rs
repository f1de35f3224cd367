//! A real etcd (Debian's `etcd-server`) on free loopback ports with a temp data dir.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::process::{ChildGuard, wait_until};

/// One member's fixed identity: its name, ports and data dir survive a stop and start.
#[derive(Debug)]
struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    child: Option<ChildGuard>,
}

/// An etcd cluster of one or more members on 127.0.0.1, stopped and wiped on drop.
#[derive(Debug)]
pub struct Etcd {
    dir: TempDir,
    members: Vec<Member>,
}

impl Etcd {
    /// Starts a single-member etcd and waits until it serves.
    pub fn single() -> io::Result<Etcd> {
        Etcd::cluster(1)
    }

    /// Starts an `n`-member cluster and waits until every member serves.
    pub fn cluster(n: usize) -> io::Result<Etcd> {
        let dir = tempfile::Builder::new().prefix("testkit-etcd-").tempdir()?;
        let members = (0..n)
            .map(|i| Member {
                name: format!("m{i}"),
                client_port: crate::free_port(),
                peer_port: crate::free_port(),
                child: None,
            })
            .collect();
        let mut etcd = Etcd { dir, members };
        for i in 0..n {
            etcd.spawn_member(i)?;
        }
        for i in 0..n {
            etcd.wait_healthy(i)?;
        }
        Ok(etcd)
    }

    /// Client URLs of all members, e.g. `http://127.0.0.1:40123`.
    pub fn endpoints(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|m| format!("http://127.0.0.1:{}", m.client_port))
            .collect()
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
        let m = &self.members[i];
        let client = format!("http://127.0.0.1:{}", m.client_port);
        let peer = format!("http://127.0.0.1:{}", m.peer_port);
        let log = std::fs::File::create(self.dir.path().join(format!("{}.log", m.name)))?;
        let mut cmd = Command::new("etcd");
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
            .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        let child = ChildGuard::spawn(&mut cmd, "etcd")?;
        self.members[i].child = Some(child);
        Ok(())
    }

    fn wait_healthy(&mut self, i: usize) -> io::Result<()> {
        let port = self.members[i].client_port;
        if wait_until(Duration::from_secs(20), || health(port)) {
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
