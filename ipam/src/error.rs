//! The typed errors of every IPAM operation.

use std::net::IpAddr;

use crate::names::{HandleId, HostName, PoolName};
use crate::store::TlsError;

/// What went wrong; callers match on the kind, people read the message.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum IpamError {
    /// No pool usable by this host has a free address of the wanted family.
    #[error("no free {family} address for host {host}: every usable pool is exhausted")]
    PoolExhausted {
        /// The host that asked.
        host: HostName,
        /// "IPv4" or "IPv6".
        family: &'static str,
    },
    /// The host holds its maximum number of blocks and may not borrow (strict affinity).
    #[error("host {host} holds its limit of {limit} blocks and strict affinity forbids borrowing")]
    BlockLimitReached {
        /// The host that asked.
        host: HostName,
        /// The configured limit.
        limit: u32,
    },
    /// The named pool, handle, block or address does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// A requested address is already assigned to another handle.
    #[error("address {ip} is already assigned to handle {handle}")]
    AddressInUse {
        /// The address asked for.
        ip: IpAddr,
        /// Who holds it.
        handle: HandleId,
    },
    /// A pool cannot be deleted while addresses in it are assigned (unless forced).
    #[error("pool {pool} still has {in_use} assigned addresses; release them or force")]
    PoolInUse {
        /// The pool.
        pool: PoolName,
        /// How many addresses are assigned.
        in_use: usize,
    },
    /// Another writer kept winning the race for the same keys.
    #[error("gave up after {attempts} conflicting attempts on {what}")]
    ConflictBudgetExceeded {
        /// The operation that gave up.
        what: &'static str,
        /// How many transactions were tried.
        attempts: u32,
    },
    /// etcd could not be reached or did not answer in time; nothing was half-written.
    #[error("etcd unavailable: {0}")]
    DatastoreUnavailable(String),
    /// etcd refused the request itself (e.g. more than its 128 operations per txn).
    #[error("etcd refused the request: {0}")]
    DatastoreRefused(String),
    /// A stored value could not be decoded; it is left as is and reported by `check`.
    #[error("corrupt value at {key}: {reason}")]
    Corrupt {
        /// The etcd key.
        key: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The TLS settings for etcd cannot be used (names the file or endpoint).
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The request itself is invalid (bad CIDR, block size, selector, name).
    #[error("invalid input: {0}")]
    Invalid(String),
}

/// Short form for results of this crate.
pub type Result<T> = std::result::Result<T, IpamError>;
