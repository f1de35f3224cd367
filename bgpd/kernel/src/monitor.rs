//! Route and link notifications from the kernel, as events the reconcile loop judges.

use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::LinkFlags;
use netlink_sys::{AsyncSocket, AsyncSocketExt, SocketAddr, TokioSocket, protocols::NETLINK_ROUTE};
use nix::sys::socket::{setsockopt, sockopt};

use crate::codec::{parse_route, split_messages};
use crate::error::Error;
use crate::route::KernelRoute;

/// Multicast groups: IPv4 and IPv6 routes, links.
const GROUPS: u32 = (libc::RTMGRP_LINK | libc::RTMGRP_IPV4_ROUTE | libc::RTMGRP_IPV6_ROUTE) as u32;
/// Room for bursts (installing 100k routes notifies 100k times).
const SOCKET_BUFFER: usize = 32 << 20;
const RECEIVE_BYTES: usize = 1 << 20;

/// Something changed in the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FibEvent {
    /// A route was added, replaced or deleted (any table, any protocol).
    Route {
        /// The route.
        route: KernelRoute,
        /// True for `RTM_DELROUTE`.
        deleted: bool,
    },
    /// A link appeared, changed or went away.
    Link {
        /// Its index.
        ifindex: u32,
        /// Administratively up (`IFF_UP`).
        up: bool,
        /// True for `RTM_DELLINK`.
        deleted: bool,
    },
    /// Notifications were dropped (our buffer overflowed): anything may have changed.
    Overrun,
}

/// A subscription to route and link notifications.
pub struct FibMonitor {
    socket: TokioSocket,
    rx: Vec<u8>,
}

impl std::fmt::Debug for FibMonitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FibMonitor").finish_non_exhaustive()
    }
}

impl FibMonitor {
    /// Subscribes in the calling thread's network namespace; must be called inside a tokio
    /// runtime.
    pub fn open() -> Result<FibMonitor, Error> {
        let mut socket = TokioSocket::new(NETLINK_ROUTE)?;
        let sock = socket.socket_mut();
        if setsockopt(&*sock, sockopt::RcvBufForce, &SOCKET_BUFFER).is_err() {
            let _ = setsockopt(&*sock, sockopt::RcvBuf, &SOCKET_BUFFER);
        }
        sock.bind(&SocketAddr::new(0, GROUPS))?;
        Ok(FibMonitor {
            socket,
            rx: Vec::with_capacity(RECEIVE_BYTES),
        })
    }

    /// Waits for the next datagram of notifications and returns its events (possibly none,
    /// for notifications we do not follow).
    pub async fn next(&mut self) -> Result<Vec<FibEvent>, Error> {
        self.rx.clear();
        match self.socket.recv(&mut self.rx).await {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                return Ok(vec![FibEvent::Overrun]);
            }
            Err(e) => return Err(Error::Socket(e)),
        }
        Ok(split_messages(&self.rx)
            .filter_map(Result::ok)
            .filter_map(|bytes| NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes).ok())
            .filter_map(|msg| match msg.payload {
                NetlinkPayload::InnerMessage(inner) => event(inner),
                _ => None,
            })
            .collect())
    }
}

fn event(msg: RouteNetlinkMessage) -> Option<FibEvent> {
    match msg {
        RouteNetlinkMessage::NewRoute(m) => parse_route(&m).map(|route| FibEvent::Route {
            route,
            deleted: false,
        }),
        RouteNetlinkMessage::DelRoute(m) => parse_route(&m).map(|route| FibEvent::Route {
            route,
            deleted: true,
        }),
        RouteNetlinkMessage::NewLink(m) => Some(FibEvent::Link {
            ifindex: m.header.index,
            up: m.header.flags.contains(LinkFlags::Up),
            deleted: false,
        }),
        RouteNetlinkMessage::DelLink(m) => Some(FibEvent::Link {
            ifindex: m.header.index,
            up: false,
            deleted: true,
        }),
        _ => None,
    }
}
