//! IP address management over etcd v3: pools, per-host blocks, assignments, garbage collection.
//!
//! Every change is one etcd transaction guarded on the mod_revision of each key it rests on
//! (0 for a key it creates), so concurrent writers never overwrite each other and a crash
//! between two operations leaves nothing half-written. See README.md for the key layout.

mod alloc;
mod assign;
mod block;
mod check;
mod client;
mod error;
mod gc;
mod names;
mod pools;
mod record;
mod release;
mod retry;
mod snapshot;
pub mod store;

pub use alloc::{choose_block, host_hash, take, usable_pools};
pub use assign::{AssignRequest, AssignedIp, Assignment};
/// Pool node selectors: the project's one selector language, from the config crate.
pub use bgpd_config::Selector;
pub use block::{BlockCidr, Family};
pub use check::{Finding, Repair, Report};
pub use client::{BlockInfo, Ipam, IpamOptions};
pub use error::{IpamError, Result};
pub use gc::GcReport;
pub use names::{HandleId, HostName, PoolName};
pub use pools::PoolDeletion;
pub use record::{Block, Handle, HandleIp, IpamConfig, Keys, NodeRecord, Pool, decode_pool};
pub use retry::RetryPolicy;
pub use store::{EtcdStore, EtcdTls, MemStore, StoreOptions, TlsError};
