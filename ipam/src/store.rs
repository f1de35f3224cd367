//! The one edge to the datastore: consistent multi-key reads and guarded transactions.
//!
//! [`EtcdStore`] is the real thing; [`MemStore`] is an in-memory twin with etcd's revision
//! semantics, used by the property test of the allocation logic.

mod etcd;
mod listing;
mod mem;
mod tls;

use std::future::Future;

pub use etcd::{EtcdStore, StoreOptions};
pub use listing::{Listing, list_prefix};
pub use mem::MemStore;
pub use tls::{EtcdTls, TlsError, secure};

/// One stored key with the revisions the guards compare against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The key.
    pub key: String,
    /// The raw value.
    pub value: Vec<u8>,
    /// Revision of the last write to the key.
    pub mod_revision: i64,
}

/// What to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    /// One key (zero or one entry back).
    Key(String),
    /// Every key under a prefix.
    Prefix(String),
    /// Every key under a prefix, without values.
    PrefixKeys(String),
}

/// A condition every write of a transaction depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Guard {
    /// The key's mod_revision is exactly this; 0 means the key must not exist.
    Revision(String, i64),
    /// No key under the prefix was written after this revision (new keys included).
    PrefixUnchangedSince(String, i64),
}

/// A write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// Put a value.
    Put(String, Vec<u8>),
    /// Delete a key.
    Delete(String),
}

/// A transaction: if every guard holds, every write is applied, atomically; if not, nothing
/// is written and `on_reject` is read in the same round trip, to retry without another read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Txn {
    /// Conditions.
    pub guards: Vec<Guard>,
    /// Writes applied when every guard holds.
    pub writes: Vec<Write>,
    /// Reads returned when a guard fails.
    pub on_reject: Vec<Read>,
}

/// The result of a transaction that reached the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Applied at this revision (the new mod_revision of every written key).
    Applied(i64),
    /// A guard failed; the `on_reject` reads, in order.
    Rejected(Vec<Vec<Entry>>),
}

/// Why the store did not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Unreachable or timed out: nothing was written, or the write's fate is unknown (a
    /// timeout after sending), which is why every write is guarded and retried idempotently.
    #[error("{0}")]
    Unavailable(String),
    /// The store refused the request itself (too large, not permitted); retrying cannot help.
    #[error("{0}")]
    Refused(String),
    /// The TLS settings cannot be used (a file is unreadable, endpoints do not match).
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// A datastore with etcd's transaction model.
pub trait Store: Send + Sync + 'static {
    /// Reads everything asked at one revision; returns the entries per read and that revision.
    fn read(
        &self,
        reads: Vec<Read>,
    ) -> impl Future<Output = Result<(Vec<Vec<Entry>>, i64), StoreError>> + Send;

    /// Runs one guarded transaction.
    fn txn(&self, txn: Txn) -> impl Future<Output = Result<Outcome, StoreError>> + Send;

    /// Puts a key attached to a lease (node records); lease 0 means none.
    fn put_with_lease(
        &self,
        key: String,
        value: Vec<u8>,
        lease: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Several clients can share one store (the in-memory one in tests).
impl<T: Store> Store for std::sync::Arc<T> {
    fn read(
        &self,
        reads: Vec<Read>,
    ) -> impl Future<Output = Result<(Vec<Vec<Entry>>, i64), StoreError>> + Send {
        (**self).read(reads)
    }

    fn txn(&self, txn: Txn) -> impl Future<Output = Result<Outcome, StoreError>> + Send {
        (**self).txn(txn)
    }

    fn put_with_lease(
        &self,
        key: String,
        value: Vec<u8>,
        lease: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).put_with_lease(key, value, lease)
    }
}
