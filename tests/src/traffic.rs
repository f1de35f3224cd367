//! Real TCP and UDP traffic between namespaces: servers bound inside one, connections and
//! one-shot reachability checks made from another.
//!
//! A socket belongs to the namespace of the thread that made it, whichever thread uses it
//! later, so [`in_ns`] makes sockets on a short-lived thread that has entered the namespace
//! and the rest of the work runs on ordinary threads. The servers tell each client the source
//! address they saw (`peer <ip>`), so a test can see what NAT did.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::netns::Netns;

/// How long a connection attempt or a datagram's answer is waited for before the traffic
/// counts as blocked.
pub const BLOCKED_WAIT: Duration = Duration::from_millis(1000);
/// How long an established connection may take to answer.
const ANSWER_WAIT: Duration = Duration::from_secs(2);
/// How often server threads look at their stop flag.
const POLL: Duration = Duration::from_millis(100);

/// Runs `f` on a thread that has entered `ns`'s network namespace and returns its result;
/// the calling thread never changes namespace, and sockets made in `f` stay in `ns` whichever
/// thread uses them later. A panic in `f` goes on in the caller.
pub fn in_ns<T: Send>(ns: &Netns, f: impl FnOnce() -> T + Send) -> io::Result<T> {
    let file = File::open(ns.path())?;
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                // SAFETY: setns(2) with a valid namespace fd changes only this thread's
                // network namespace; the thread ends when `f` returns.
                if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(f())
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Like [`in_ns`] for the client side of a check: not entering the namespace is a broken
/// harness, never "blocked", so it fails the test instead of reading as unreachable.
fn client_in_ns<T: Send>(ns: &Netns, f: impl FnOnce() -> T + Send) -> T {
    in_ns(ns, f).unwrap_or_else(|e| panic!("entering namespace {}: {e}", ns.name()))
}

/// A TCP or UDP server in a namespace; its threads stop when it drops.
pub struct Server {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Runs `body` on a thread until it returns; `body` returns once the flag is set.
    fn run(body: impl FnOnce(Arc<AtomicBool>) + Send + 'static) -> Server {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || body(flag));
        Server {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A TCP server on `addr` in `ns`: tells each client the address it came from
/// (`peer <ip>\n`), then echoes its lines.
pub fn tcp_echo(ns: &Netns, addr: impl Into<SocketAddr>) -> io::Result<Server> {
    let addr = addr.into();
    let listener = in_ns(ns, move || TcpListener::bind(addr))??;
    listener.set_nonblocking(true)?;
    Ok(Server::run(move |stop| {
        while !stop.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((conn, peer)) => {
                    let stop = stop.clone();
                    std::thread::spawn(move || echo(conn, peer.ip(), &stop));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }))
}

/// Serves one connection of [`tcp_echo`] until the client closes it or the server stops.
fn echo(mut conn: TcpStream, peer: IpAddr, stop: &AtomicBool) {
    // Accepted sockets inherit the listener's non-blocking mode; a read timeout instead lets
    // the thread see the stop flag.
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(POLL));
    if writeln!(conn, "peer {peer}").is_err() {
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
            // A timeout keeps what was read so far in `line`; the next read goes on from it.
            Err(_) => continue,
        }
    }
}

/// A UDP server on `addr` in `ns` that answers each datagram with `peer <ip>`, the source
/// address it saw.
pub fn udp_answer(ns: &Netns, addr: impl Into<SocketAddr>) -> io::Result<Server> {
    let addr = addr.into();
    let socket = in_ns(ns, move || UdpSocket::bind(addr))??;
    socket.set_read_timeout(Some(POLL))?;
    Ok(Server::run(move |stop| {
        let mut buf = [0u8; 512];
        while !stop.load(Ordering::Relaxed) {
            if let Ok((_, peer)) = socket.recv_from(&mut buf) {
                let _ = socket.send_to(format!("peer {}", peer.ip()).as_bytes(), peer);
            }
        }
    }))
}

/// The address in a server's `peer <ip>` line.
fn peer_of(line: &str) -> Option<IpAddr> {
    line.trim_end().strip_prefix("peer ")?.parse().ok()
}

/// An open TCP connection from a namespace to a [`tcp_echo`] server.
pub struct Held {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
    peer_seen: IpAddr,
}

impl Held {
    /// Connects from `ns` to `addr` and proves data flows both ways (the server's greeting
    /// arrives and one line comes back echoed); `None` if the connection is refused, not
    /// answered within [`BLOCKED_WAIT`], or carries no data.
    ///
    /// # Panics
    /// If `ns` cannot be entered: a broken harness must not read as blocked traffic.
    pub fn open(ns: &Netns, addr: impl Into<SocketAddr>) -> Option<Held> {
        let addr = addr.into();
        let stream =
            client_in_ns(ns, move || TcpStream::connect_timeout(&addr, BLOCKED_WAIT)).ok()?;
        stream.set_read_timeout(Some(ANSWER_WAIT)).ok()?;
        let mut reader = BufReader::new(stream.try_clone().ok()?);
        let mut greeting = String::new();
        reader.read_line(&mut greeting).ok()?;
        let peer_seen = peer_of(&greeting)?;
        let mut held = Held {
            stream,
            reader,
            peer_seen,
        };
        (held.exchange("hello").ok()? == "hello").then_some(held)
    }

    /// The client address the server saw (after any NAT on the way).
    pub fn peer_seen(&self) -> IpAddr {
        self.peer_seen
    }

    /// Sends `text` as a line and returns the line that comes back, waiting at most two
    /// seconds: on a live connection to [`tcp_echo`], `text` itself.
    pub fn exchange(&mut self, text: &str) -> io::Result<String> {
        writeln!(self.stream, "{text}")?;
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        Ok(line.trim_end().to_string())
    }
}

/// Whether a TCP connection from `ns` to a [`tcp_echo`] server at `addr` gets through and
/// carries data both ways; see [`Held::open`].
pub fn tcp_ok(ns: &Netns, addr: impl Into<SocketAddr>) -> bool {
    Held::open(ns, addr).is_some()
}

/// Sends one datagram from `ns` to a [`udp_answer`] server at `addr`; the source address the
/// server saw, if its answer came within [`BLOCKED_WAIT`].
///
/// # Panics
/// If `ns` cannot be entered: a broken harness must not read as blocked traffic.
pub fn udp_ask(ns: &Netns, addr: impl Into<SocketAddr>) -> Option<IpAddr> {
    let addr = addr.into();
    let any: IpAddr = match addr {
        SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    let socket = client_in_ns(ns, move || UdpSocket::bind((any, 0)))
        .unwrap_or_else(|e| panic!("UDP client socket in {}: {e}", ns.name()));
    socket.set_read_timeout(Some(BLOCKED_WAIT)).ok()?;
    socket.send_to(b"ping", addr).ok()?;
    let mut buf = [0u8; 512];
    let (n, _) = socket.recv_from(&mut buf).ok()?;
    peer_of(&String::from_utf8_lossy(&buf[..n]))
}

/// Whether a datagram from `ns` to a [`udp_answer`] server at `addr` gets an answer.
pub fn udp_ok(ns: &Netns, addr: impl Into<SocketAddr>) -> bool {
    udp_ask(ns, addr).is_some()
}
