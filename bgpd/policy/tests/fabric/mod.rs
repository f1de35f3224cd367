//! A two-host fabric in namespaces, and small TCP/UDP servers and clients living in them.
//!
//! ```text
//!   ca1 10.244.1.2 ─ cali-a1 ┐                        ┌ cali-b1 ─ cb1 10.244.2.2
//!   ca2 10.244.1.3 ─ cali-a2 ┤ host a ── a-b ─ b-a ── │ host b
//!                            └ a-out 172.31.0.1 ─ out-a 172.31.0.2  out (outside)
//!                                    fd31::1        fd31::2
//! ```
//! Containers are wired as Calico does it: a /32 on the container side, a default route out
//! of eth0, proxy ARP and a /32 host route on the host side. Hosts route each other's blocks
//! over the a-b link. The outside namespace knows no route to the pools, so only
//! masqueraded traffic from a container can get an answer from it.

#![allow(dead_code)] // each test binary uses a different part

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use bgpd_policy::{Inputs, Nft, PolicyFile, Pool, RemoteEndpoint, WorkloadEndpoint, compile};
use testkit::netns::{Netns, link};

/// How long a blocked connection attempt or datagram is waited for.
pub const BLOCKED_WAIT: Duration = Duration::from_millis(1000);

/// The namespaces of the fabric.
pub struct Fabric {
    pub a: Netns,
    pub b: Netns,
    pub out: Netns,
    pub ca1: Netns,
    pub ca2: Netns,
    pub cb1: Netns,
}

pub const CA1: &str = "10.244.1.2";
pub const CA2: &str = "10.244.1.3";
pub const CB1: &str = "10.244.2.2";
pub const A_OUT: &str = "172.31.0.1";
pub const OUT: &str = "172.31.0.2";
pub const A_OUT6: &str = "fd31::1";

fn container(host: &Netns, tag: &str, host_if: &str, ip: &str) -> Netns {
    let c = Netns::new(tag).expect("container namespace");
    link(host, host_if, &[], &c, "eth0", &[&format!("{ip}/32")]).expect("container veth");
    c.ip(&["route", "add", "default", "dev", "eth0"])
        .expect("container default route");
    host.sysctl(&format!("net.ipv4.conf.{host_if}.proxy_arp"), "1")
        .expect("proxy_arp");
    host.sysctl(&format!("net.ipv4.neigh.{host_if}.proxy_delay"), "0")
        .expect("proxy_delay");
    host.ip(&["route", "add", &format!("{ip}/32"), "dev", host_if])
        .expect("host route to container");
    c
}

impl Fabric {
    /// Builds the topology; every namespace goes away when the fabric drops.
    pub fn new() -> Fabric {
        let a = Netns::new("ha").expect("host a");
        let b = Netns::new("hb").expect("host b");
        let out = Netns::new("out").expect("outside");
        for h in [&a, &b] {
            h.sysctl("net.ipv4.ip_forward", "1").expect("forwarding");
        }
        link(&a, "a-b", &["10.10.0.1/24"], &b, "b-a", &["10.10.0.2/24"]).expect("underlay");
        link(
            &a,
            "a-out",
            &["172.31.0.1/24", "fd31::1/64"],
            &out,
            "out-a",
            &["172.31.0.2/24", "fd31::2/64"],
        )
        .expect("outside link");
        a.ip(&["route", "add", "10.244.2.0/24", "via", "10.10.0.2"])
            .expect("route to b's block");
        b.ip(&["route", "add", "10.244.1.0/24", "via", "10.10.0.1"])
            .expect("route to a's block");
        let ca1 = container(&a, "ca1", "cali-a1", CA1);
        let ca2 = container(&a, "ca2", "cali-a2", CA2);
        let cb1 = container(&b, "cb1", "cali-b1", CB1);
        Fabric {
            a,
            b,
            out,
            ca1,
            ca2,
            cb1,
        }
    }
}

/// Labels from pairs.
pub fn labels(pairs: &[(&str, &str)]) -> bgpd_policy::selector::Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A workload endpoint.
pub fn workload(iface: &str, ip: &str, pairs: &[(&str, &str)]) -> WorkloadEndpoint {
    WorkloadEndpoint {
        interface: iface.try_into().expect("interface name"),
        ips: vec![ip.parse().expect("ip")],
        labels: labels(pairs),
    }
}

/// A container on another host.
pub fn remote(ip: &str, pairs: &[(&str, &str)]) -> RemoteEndpoint {
    RemoteEndpoint {
        ips: vec![ip.parse().expect("ip")],
        labels: labels(pairs),
    }
}

/// The fabric's pool, nat-outgoing or not.
pub fn pool(nat_outgoing: bool) -> Pool {
    Pool {
        name: "fabric".try_into().expect("pool name"),
        cidr: "10.244.0.0/16".parse().expect("cidr"),
        nat_outgoing,
    }
}

/// Parses `toml`, compiles it with the given endpoints and pools, and applies it in `host`.
pub fn apply(
    host: &Netns,
    toml: &str,
    workloads: &[WorkloadEndpoint],
    remote: &[RemoteEndpoint],
    pools: &[Pool],
) {
    let file = PolicyFile::parse(toml, "test.toml").unwrap_or_else(|e| panic!("{e}"));
    let ruleset = compile(&Inputs {
        file: &file,
        workloads,
        remote,
        pools,
    })
    .unwrap_or_else(|e| panic!("{e}"));
    Nft::in_netns(host.name())
        .apply(&ruleset)
        .unwrap_or_else(|e| panic!("{e}\n{ruleset}"));
}

/// Runs `f` on a thread that has entered `ns`'s network namespace; sockets made there stay
/// in that namespace whichever thread uses them later.
pub fn in_ns<T: Send + 'static>(ns: &Netns, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = ns.path();
    std::thread::spawn(move || {
        let file = File::open(&path).expect("open namespace");
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        f()
    })
    .join()
    .expect("namespace thread")
}

/// A TCP or UDP server in a namespace, stopped on drop.
pub struct Server {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A TCP server on `addr` in `ns`: tells each client its peer address ("peer <addr>\n"),
/// then echoes lines.
pub fn tcp_server(ns: &Netns, addr: &str) -> Server {
    let addr: SocketAddr = addr.parse().expect("address");
    let listener = in_ns(ns, move || TcpListener::bind(addr).expect("bind tcp"));
    listener.set_nonblocking(true).expect("nonblocking");
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread = std::thread::spawn(move || {
        while !flag.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((conn, peer)) => {
                    let flag = flag.clone();
                    std::thread::spawn(move || echo(conn, peer, &flag));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    });
    Server {
        stop,
        thread: Some(thread),
    }
}

fn echo(mut conn: TcpStream, peer: SocketAddr, stop: &AtomicBool) {
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(Duration::from_millis(100)));
    if writeln!(conn, "peer {}", peer.ip()).is_err() {
        return;
    }
    let Ok(clone) = conn.try_clone() else { return };
    let mut reader = BufReader::new(clone);
    let mut line = String::new();
    while !stop.load(Ordering::Relaxed) {
        match reader.read_line(&mut line) {
            Ok(0) => return,
            Ok(_) => {
                if conn.write_all(line.as_bytes()).is_err() {
                    return;
                }
                line.clear();
            }
            Err(_) => continue,
        }
    }
}

/// A UDP server on `addr` in `ns` that answers each datagram with "peer <addr>".
pub fn udp_server(ns: &Netns, addr: &str) -> Server {
    let addr: SocketAddr = addr.parse().expect("address");
    let socket = in_ns(ns, move || UdpSocket::bind(addr).expect("bind udp"));
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread = std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while !flag.load(Ordering::Relaxed) {
            if let Ok((_, peer)) = socket.recv_from(&mut buf) {
                let _ = socket.send_to(format!("peer {}", peer.ip()).as_bytes(), peer);
            }
        }
    });
    Server {
        stop,
        thread: Some(thread),
    }
}

/// An open TCP connection made from a namespace.
pub struct Connection {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
    /// The client address the server saw.
    pub peer_seen: String,
}

impl Connection {
    /// Sends a line and waits for its echo.
    pub fn exchange(&mut self, text: &str) -> std::io::Result<String> {
        writeln!(self.stream, "{text}")?;
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        Ok(line.trim_end().to_string())
    }
}

/// Connects from `ns` to `addr`; `None` if no answer within [`BLOCKED_WAIT`].
pub fn tcp_connect(ns: &Netns, addr: &str) -> Option<Connection> {
    let addr: SocketAddr = addr.parse().expect("address");
    let stream = in_ns(ns, move || {
        TcpStream::connect_timeout(&addr, BLOCKED_WAIT).ok()
    })?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let peer_seen = line.trim_end().strip_prefix("peer ")?.to_string();
    Some(Connection {
        stream,
        reader,
        peer_seen,
    })
}

/// Whether a TCP connection from `ns` to `addr` gets through.
pub fn tcp_ok(ns: &Netns, addr: &str) -> bool {
    tcp_connect(ns, addr).is_some()
}

/// Sends one datagram from `ns` to `addr`; the source address the server saw, if it answered.
pub fn udp_ask(ns: &Netns, addr: &str) -> Option<String> {
    let addr: SocketAddr = addr.parse().expect("address");
    let socket = in_ns(ns, || {
        UdpSocket::bind("0.0.0.0:0").expect("bind udp client")
    });
    socket.set_read_timeout(Some(BLOCKED_WAIT)).ok()?;
    socket.send_to(b"ping", addr).ok()?;
    let mut buf = [0u8; 512];
    let (n, _) = socket.recv_from(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
    text.strip_prefix("peer ").map(str::to_string)
}

/// Whether a UDP datagram from `ns` to `addr` gets an answer.
pub fn udp_ok(ns: &Netns, addr: &str) -> bool {
    udp_ask(ns, addr).is_some()
}
