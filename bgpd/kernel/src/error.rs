//! What can go wrong talking to the kernel, whole-operation and per route.

use std::io;

use crate::config::ConfigError;
use crate::diff::Change;

/// A failure of a whole operation (open, dump, apply).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kernel refused a write for lack of privileges.
    #[error("missing privileges: programming routes needs CAP_NET_ADMIN (run as root)")]
    PermissionDenied,
    /// No interface has this name (in the namespace of the calling thread).
    #[error("interface {0:?} not found")]
    InterfaceNotFound(String),
    /// The table or protocol number cannot be ours.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The netlink socket failed (open, send, receive, timeout).
    #[error("netlink socket: {0}")]
    Socket(#[from] io::Error),
    /// The kernel refused to list our table.
    #[error("listing routing table {table}: {cause}")]
    Dump {
        /// Our table.
        table: u32,
        /// The kernel's answer.
        cause: io::Error,
    },
    /// Replies were dropped because our receive buffer was full, so some outcomes are unknown;
    /// a fresh reconcile finds out.
    #[error("netlink replies were lost (receive buffer overrun); reconcile again")]
    Overrun,
    /// The reconcile task has ended.
    #[error("the route reconcile task has stopped")]
    Stopped,
}

/// Why the kernel refused one route.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The route's interface is administratively down (ENETDOWN).
    #[error("interface is down")]
    LinkDown,
    /// The route's interface does not exist (ENODEV).
    #[error("interface not found")]
    NoSuchInterface,
    /// No route to the gateway, so it cannot be a next hop (ENETUNREACH, EHOSTUNREACH).
    #[error("gateway not reachable")]
    GatewayUnreachable,
    /// An add found a route already in the slot (EEXIST): it appeared since we looked.
    #[error("another route already holds this prefix")]
    Occupied,
    /// Any other error, with the kernel's extended-ack text when it gave one.
    #[error("{}{}", io::Error::from_raw_os_error(*errno), message.as_ref().map(|m| format!(": {m}")).unwrap_or_default())]
    Kernel {
        /// The errno.
        errno: i32,
        /// The kernel's explanation (extended ack).
        message: Option<String>,
    },
}

impl Refusal {
    /// Classifies a (positive) errno.
    pub(crate) fn from_errno(errno: i32, message: Option<String>) -> Refusal {
        match errno {
            libc::ENETDOWN => Refusal::LinkDown,
            libc::ENODEV => Refusal::NoSuchInterface,
            libc::ENETUNREACH | libc::EHOSTUNREACH => Refusal::GatewayUnreachable,
            libc::EEXIST => Refusal::Occupied,
            _ => Refusal::Kernel { errno, message },
        }
    }

    /// True when the route waits on the world (a link, an interface, a gateway), not on a fix
    /// of ours: it is retried when links change.
    pub fn is_unresolvable(&self) -> bool {
        matches!(
            self,
            Refusal::LinkDown | Refusal::NoSuchInterface | Refusal::GatewayUnreachable
        )
    }
}

/// One change the kernel refused, naming the route.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{change}: {cause}")]
pub struct RouteFailure {
    /// The write that failed.
    pub change: Change,
    /// Why.
    pub cause: Refusal,
}
