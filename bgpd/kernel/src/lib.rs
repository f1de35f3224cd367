//! Kernel FIB programming over rtnetlink: reconcile our routes toward the wanted set.
//!
//! - [`route`]: the routes we want (pure data) and the wanted set.
//! - [`diff`]: the pure FIB diff, kernel state vs wanted set → changes.
//! - [`fib`]: one netlink socket that lists our table and writes changes in batches.
//! - [`monitor`]: route and link notifications.
//! - [`reconcile`]: the async task that keeps the kernel at the wanted set.

mod codec;
pub mod config;
pub mod diff;
pub mod error;
pub mod fib;
pub mod monitor;
pub mod reconcile;
pub mod route;

pub use config::{ConfigError, DEFAULT_PROTOCOL, FibConfig, ProtocolId, TableId};
pub use diff::{Change, Plan, Stale, plan};
pub use error::{Error, Refusal, RouteFailure};
pub use fib::{Applied, Fib, Reconciled};
pub use monitor::{FibEvent, FibMonitor};
pub use reconcile::{FibHandle, FibStatus, ReconcileOptions, WantedUpdate, spawn};
pub use route::{
    Ifindex, KernelRoute, NextHop, NextHops, Prefix, Route, RouteError, RouteKind, RouteSet,
};
