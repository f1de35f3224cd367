//! Host-firewall policy: model, selectors, compilation to one atomic nftables table.
//!
//! The pieces plug together as: [`model::PolicyFile`] (TOML) + [`endpoint`] inputs (filled by
//! the daemon) → [`compile::compile`] (pure) → [`compile::Ruleset`] (an `nft -f` script, also
//! the dry-run output) → [`nft::Nft::apply`] (one atomic transaction), or
//! [`nft::Nft::update`] (the changes since the ruleset applied before, in one transaction:
//! unchanged rules keep their counters) and [`nft::Nft::counters`] (typed readback). [`cluster`] is the cluster-wide form: one policy per
//! etcd key, merged with the file's into what is in force.

mod clause;
pub mod cluster;
pub mod compile;
pub mod counters;
pub mod endpoint;
mod group;
pub mod model;
pub mod nft;
pub mod selector;
mod sets;
mod table;

pub use cluster::{ClusterFile, ClusterPolicies, Effective};
pub use compile::{CompileError, EndpointPlan, Inputs, Ruleset, check_pools, compile, plan};
pub use counters::{Counter, CounterOwner};
pub use endpoint::{Pool, RemoteEndpoint, WorkloadEndpoint};
pub use model::{ModelError, PolicyFile};
pub use nft::{Applied, Nft, NftError};
pub use selector::{Selector, SelectorError};
