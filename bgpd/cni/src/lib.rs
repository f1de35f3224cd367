//! `bgpd-cni`: a CNI plugin (spec 1.0, also 0.3.x/0.4.0 results) that wires containers to the
//! fabric by asking the local bgpd over its control socket.
//!
//! [`env`] reads the CNI_* variables, [`netconf`] the network config on stdin, [`plugin`] runs
//! ADD/DEL/CHECK/VERSION, [`result`] is the success JSON and [`error`] the error JSON with the
//! spec's codes.

pub mod env;
pub mod error;
pub mod netconf;
pub mod plugin;
pub mod result;

pub use error::{CniError, Code};
pub use plugin::{Outcome, run};
