//! The control socket of `bgpd`: HTTP/1.1 with JSON bodies over a unix socket (mode 0600), so
//! `curl --unix-socket /run/bgpd/bgpd.sock http://localhost/v1/status` works.
//!
//! [`types`] holds every request and response body; [`paths`] the routes; [`Client`] is the
//! async client that `routectl` and the CNI plugin use. The contract is written out in
//! `/work/notes/api-contract.md` and in this crate's README.

pub mod client;
pub mod labels;
pub mod node;
pub mod paths;
pub mod types;

pub use client::{Client, ClientError};
pub use labels::{LabelError, Labels, check_label, check_labels, parse_label};
pub use node::{NodeRecord, RECORD_VERSION, alive_key, alive_prefix};
pub use types::*;

/// Where the daemon listens unless its configuration says otherwise.
pub const DEFAULT_SOCKET: &str = "/run/bgpd/bgpd.sock";
