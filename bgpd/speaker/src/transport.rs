//! TCP sockets for BGP: outgoing connections and listeners with a chosen local address,
//! TCP-MD5 signatures (RFC 2385), eBGP multihop TTL and GTSM (RFC 5082).

use std::io;
use std::mem;
use std::net::{IpAddr, SocketAddr};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// The well-known BGP port.
pub const BGP_PORT: u16 = 179;
/// Longest TCP-MD5 key Linux accepts (`TCP_MD5SIG_MAXKEYLEN`).
pub const MD5_MAX_KEY: usize = 80;

/// How far away the peer may be, which sets the IP TTL of our packets and what we accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Send with this TTL (1 for a directly connected eBGP peer, more for eBGP multihop);
    /// accept any TTL.
    Ttl(u8),
    /// GTSM (RFC 5082): send with TTL 255 and drop packets that came from more than `hops`
    /// hops away (minimum TTL 256 - hops).
    Gtsm {
        /// Allowed hops (1 for a directly connected peer).
        hops: u8,
    },
}

/// Per-peer socket settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketOptions {
    /// Source address for outgoing connections.
    pub local_addr: Option<IpAddr>,
    /// TCP-MD5 key shared with the peer.
    pub md5_key: Option<String>,
    /// TTL handling.
    pub reach: Reach,
}

/// `struct tcp_md5sig` of `<linux/tcp.h>`; libc does not define it.
#[repr(C)]
struct TcpMd5Sig {
    addr: libc::sockaddr_storage,
    flags: u8,
    prefixlen: u8,
    keylen: u16,
    ifindex: libc::c_int,
    key: [u8; MD5_MAX_KEY],
}

/// The errors of socket setup that are configuration mistakes rather than system failures.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The TCP-MD5 key is longer than Linux allows.
    #[error("TCP-MD5 key of {0} octets exceeds {MD5_MAX_KEY}")]
    Md5KeyTooLong(usize),
    /// A system call failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

fn sockaddr_storage(addr: IpAddr) -> libc::sockaddr_storage {
    let sa = socket2::SockAddr::from(SocketAddr::new(addr, 0));
    // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let len = (sa.len() as usize).min(mem::size_of::<libc::sockaddr_storage>());
    // SAFETY: both regions are at least `len` bytes and do not overlap.
    unsafe {
        std::ptr::copy_nonoverlapping(
            sa.as_ptr().cast::<u8>(),
            (&raw mut storage).cast::<u8>(),
            len,
        );
    }
    storage
}

/// Installs (or with `None`, removes) the TCP-MD5 key for `peer` on `socket` (RFC 2385). On a
/// listening socket this authenticates connections from `peer`; other peers stay unaffected.
pub fn set_md5(
    socket: &impl std::os::fd::AsRawFd,
    peer: IpAddr,
    key: Option<&str>,
) -> Result<(), TransportError> {
    let key = key.unwrap_or("").as_bytes();
    if key.len() > MD5_MAX_KEY {
        return Err(TransportError::Md5KeyTooLong(key.len()));
    }
    let mut sig = TcpMd5Sig {
        addr: sockaddr_storage(peer),
        flags: 0,
        prefixlen: 0,
        // At most 80, checked above.
        keylen: key.len() as u16,
        ifindex: 0,
        key: [0; MD5_MAX_KEY],
    };
    sig.key[..key.len()].copy_from_slice(key);
    // SAFETY: setsockopt reads `size_of::<TcpMd5Sig>()` bytes from a live, initialized struct.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_MD5SIG,
            (&raw const sig).cast(),
            mem::size_of::<TcpMd5Sig>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        let err = io::Error::last_os_error();
        // Deleting a key that was never set is not an error for us.
        if key.is_empty() && err.raw_os_error() == Some(libc::ENOENT) {
            return Ok(());
        }
        Err(err.into())
    }
}

fn set_int(
    socket: &impl std::os::fd::AsRawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: setsockopt reads one c_int from a live local.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&raw const value).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Applies the TTL policy of `reach` to a socket of family `ipv6`.
pub fn set_reach(socket: &impl std::os::fd::AsRawFd, ipv6: bool, reach: Reach) -> io::Result<()> {
    let (ttl, min_ttl) = match reach {
        Reach::Ttl(ttl) => (ttl.max(1), 0),
        Reach::Gtsm { hops } => (255, 256 - i32::from(hops.max(1))),
    };
    if ipv6 {
        set_int(
            socket,
            libc::IPPROTO_IPV6,
            libc::IPV6_UNICAST_HOPS,
            ttl.into(),
        )?;
        if min_ttl > 0 {
            set_int(socket, libc::IPPROTO_IPV6, libc::IPV6_MINHOPCOUNT, min_ttl)?;
        }
    } else {
        set_int(socket, libc::IPPROTO_IP, libc::IP_TTL, ttl.into())?;
        if min_ttl > 0 {
            set_int(socket, libc::IPPROTO_IP, libc::IP_MINTTL, min_ttl)?;
        }
    }
    Ok(())
}

/// Opens a TCP connection to `peer` with `options` applied before the SYN is sent.
pub async fn connect(
    peer: SocketAddr,
    options: &SocketOptions,
) -> Result<TcpStream, TransportError> {
    let socket = Socket::new(Domain::for_address(peer), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_nonblocking(true)?;
    socket.set_tcp_nodelay(true)?;
    if let Some(key) = &options.md5_key {
        set_md5(&socket, peer.ip(), Some(key))?;
    }
    set_reach(&socket, peer.is_ipv6(), options.reach)?;
    if let Some(local) = options.local_addr {
        socket.bind(&SocketAddr::new(local, 0).into())?;
    }
    let std_stream: std::net::TcpStream = socket.into();
    let stream = TcpSocket::from_std_stream(std_stream).connect(peer).await?;
    Ok(stream)
}

/// Applies `options` to an accepted connection (TTL policy; the MD5 key is inherited from the
/// listening socket).
pub fn accepted(stream: &TcpStream, options: &SocketOptions) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let ipv6 = stream.peer_addr()?.is_ipv6();
    set_reach(stream, ipv6, options.reach)
}

/// A listening socket on `addr`; an IPv6 wildcard listens for IPv6 only, so that an IPv4
/// wildcard can be bound beside it. The SYN-ACK leaves with the listener's TTL, before we know
/// the peer, so it is 255: a GTSM peer accepts it, and any other peer does not care.
pub fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    set_reach(&socket, addr.is_ipv6(), Reach::Ttl(255))?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_struct_matches_the_kernel_layout() {
        // 128 (sockaddr_storage) + 1 + 1 + 2 + 4 + 80.
        assert_eq!(mem::size_of::<TcpMd5Sig>(), 216);
    }

    #[tokio::test]
    async fn md5_keys_install_on_listeners_and_connections_work_over_loopback() {
        for host in ["127.0.0.1", "::1"] {
            md5_and_gtsm_handshake(host).await;
        }
    }

    async fn md5_and_gtsm_handshake(host: &str) {
        let listener = listen(SocketAddr::new(host.parse().unwrap(), 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        let peer: IpAddr = host.parse().unwrap();
        set_md5(&listener, peer, Some("secret")).unwrap();
        let options = SocketOptions {
            local_addr: Some(peer),
            md5_key: Some("secret".into()),
            reach: Reach::Gtsm { hops: 1 },
        };
        let timeout = std::time::Duration::from_secs(5);
        let (client, server) = tokio::time::timeout(timeout, async {
            tokio::join!(connect(addr, &options), listener.accept())
        })
        .await
        .expect("handshake with matching keys and GTSM on both sides");
        let (server, _) = server.unwrap();
        client.unwrap();
        accepted(&server, &options).unwrap();
    }

    #[tokio::test]
    async fn md5_mismatch_never_connects() {
        let listener = listen("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let peer: IpAddr = "127.0.0.1".parse().unwrap();
        set_md5(&listener, peer, Some("secret")).unwrap();
        let options = SocketOptions {
            local_addr: None,
            md5_key: Some("wrong".into()),
            reach: Reach::Ttl(1),
        };
        let attempt = tokio::time::timeout(
            std::time::Duration::from_millis(1500),
            connect(addr, &options),
        )
        .await;
        assert!(
            !matches!(attempt, Ok(Ok(_))),
            "a connection with a wrong key was accepted"
        );
    }

    #[test]
    fn overlong_keys_are_refused() {
        let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        let key = "k".repeat(81);
        assert!(matches!(
            set_md5(&s, "127.0.0.1".parse().unwrap(), Some(&key)),
            Err(TransportError::Md5KeyTooLong(81))
        ));
    }
}
