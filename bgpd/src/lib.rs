//! The fabric daemon: wires config, IPAM, kernel routes, BGP and container endpoints together
//! on one host, and serves the control socket (`bgpd-api`).
//!
//! One module per concern: [`node`] (registry in etcd), [`mesh`] (which peers, pure),
//! [`routes`] (which kernel routes, pure), [`daemon`] (state and `converge`), [`endpoints`],
//! [`workloads`] (endpoint records in etcd, other hosts' containers), [`prefix_watch`] (a live
//! view of an etcd prefix), [`policies`] (cluster policies from etcd), [`api`] (control socket),
//! [`reload`], [`signals`], [`metrics`], [`address`], [`logging`], [`state_file`] (what a start
//! without etcd resumes from), and [`run`] (startup and the main loop).

pub mod address;
pub mod api;
pub mod daemon;
pub mod endpoints;
pub mod firewall;
pub mod health;
pub mod logging;
pub mod mesh;
pub mod metrics;
pub mod node;
pub mod policies;
pub mod pools;
pub mod prefix_watch;
pub mod reload;
pub mod routes;
pub mod run;
pub mod signals;
pub mod state_file;
pub mod workloads;
