//! What can go wrong while attaching or detaching an endpoint.

use std::path::PathBuf;

use crate::spec::InvalidSpec;

/// Which side of the veth pair an interface is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The host's network namespace (where the daemon runs).
    Host,
    /// The container's network namespace.
    Container,
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Side::Host => "host",
            Side::Container => "container",
        })
    }
}

/// An error of the endpoint plumbing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request itself is wrong; nothing was touched.
    #[error("invalid endpoint: {0}")]
    Invalid(#[from] InvalidSpec),

    /// The namespace file does not exist (a dead pid, a deleted `ip netns`).
    #[error("network namespace {} does not exist", path.display())]
    NamespaceNotFound {
        /// The path that was opened.
        path: PathBuf,
    },

    /// The path exists but is not a network namespace.
    #[error("{} is not a network namespace", path.display())]
    NotANamespace {
        /// The path that was opened.
        path: PathBuf,
    },

    /// An interface of that name exists and is not one of ours; it is left alone.
    #[error("interface {ifname} in the {side} namespace exists and is not ours ({what})")]
    NameClash {
        /// Where the interface is.
        side: Side,
        /// Its name.
        ifname: String,
        /// Why it is not ours (its kind or alias).
        what: String,
    },

    /// The container already routes this family elsewhere; replacing its default route could
    /// cut it (or a namespace given by mistake) off, so nothing is changed.
    #[error(
        "the container already has an {family} {existing} that is not ours; refusing to replace it"
    )]
    DefaultRouteTaken {
        /// "IPv4" or "IPv6".
        family: &'static str,
        /// The route found.
        existing: String,
    },

    /// The kernel refused for lack of privileges (CAP_NET_ADMIN, CAP_SYS_ADMIN for setns).
    #[error("permission denied: {op} needs CAP_NET_ADMIN (and CAP_SYS_ADMIN to enter a namespace)")]
    PermissionDenied {
        /// What was being done.
        op: String,
    },

    /// A netlink socket could not be opened.
    #[error("open netlink socket: {0}")]
    NetlinkSocket(#[source] std::io::Error),

    /// A netlink request failed.
    #[error("netlink: {op}: {source}")]
    Netlink {
        /// What was being done.
        op: String,
        /// The rtnetlink error (carries the kernel's errno).
        source: rtnetlink::Error,
    },

    /// The kernel answered with something we cannot use (a missing attribute).
    #[error("unexpected netlink reply: {0}")]
    UnexpectedReply(String),

    /// Reading or writing a file (a sysctl, the namespace file) failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },

    /// Netlink work needs a tokio runtime to run its connection on.
    #[error("no tokio runtime: create Endpoints from within one")]
    NoRuntime,

    /// A thread to work inside the container's namespace could not be run.
    #[error("namespace worker thread: {0}")]
    Worker(String),
}

/// Result of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Maps an rtnetlink error of `op`, turning EPERM/EACCES into [`Error::PermissionDenied`].
    pub(crate) fn netlink(op: impl Into<String>, source: rtnetlink::Error) -> Error {
        let op = op.into();
        match errno_of(&source) {
            Some(libc_errno) if is_permission(libc_errno) => Error::PermissionDenied { op },
            _ => Error::Netlink { op, source },
        }
    }

    /// Maps an I/O error on `path`, turning EPERM/EACCES/EROFS into [`Error::PermissionDenied`].
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        let path = path.into();
        match source.raw_os_error() {
            Some(errno) if is_permission(errno) || errno == nix::libc::EROFS => {
                Error::PermissionDenied {
                    op: format!("{op} {}", path.display()),
                }
            }
            _ => Error::Io { op, path, source },
        }
    }
}

/// The positive errno of a netlink error answer, if it is one.
pub(crate) fn errno_of(err: &rtnetlink::Error) -> Option<i32> {
    match err {
        rtnetlink::Error::NetlinkError(msg) => msg.code.map(|c| c.get().saturating_abs()),
        _ => None,
    }
}

fn is_permission(errno: i32) -> bool {
    errno == nix::libc::EPERM || errno == nix::libc::EACCES
}
