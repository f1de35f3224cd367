//! Host-firewall policy: model, selectors, compilation to one atomic nftables table.
//!
//! The pieces plug together as: [`model::PolicyFile`] (TOML) + [`endpoint`] inputs (filled by
//! the daemon) → [`compile::compile`] (pure) → [`compile::Ruleset`] (an `nft -f` script, also
//! the dry-run output) → [`nft::Nft::apply`] (one atomic transaction) and
//! [`nft::Nft::counters`] (typed readback).

mod clause;
pub mod compile;
pub mod counters;
pub mod endpoint;
mod group;
pub mod model;
pub mod nft;
pub mod selector;
mod sets;

pub use compile::{CompileError, EndpointPlan, Inputs, Ruleset, compile, plan};
pub use counters::{Counter, CounterOwner};
pub use endpoint::{Pool, RemoteEndpoint, WorkloadEndpoint};
pub use model::{ModelError, PolicyFile};
pub use nft::{Nft, NftError};
pub use selector::{Selector, SelectorError};
