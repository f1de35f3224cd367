//! BGP RIB: Adj-RIB-In, Loc-RIB with best path and multipath, Adj-RIB-Out, route reflection;
//! pure. No sockets, no clocks, no tasks: the speaker's actor owns a [`Rib`], feeds it routes
//! and session events, and carries out the [`Effects`] that [`Rib::drain`] returns.
//!
//! - [`table`](crate) layout: one table of candidate routes per family (Adj-RIB-In and
//!   Loc-RIB at once), eight octets per route, attribute sets interned.
//! - [`decision`]: the RFC 4271 §9.1 decision process and the multipath set.
//! - [`policy`]: prefix lists and community match/set.
//! - Adj-RIB-Out is not stored: what a peer was sent follows from the previous best route,
//!   kept in a per-drain snapshot of each changed prefix, and the (pure) export rules.

mod backlog;
pub mod decision;
mod error;
mod export;
mod intern;
mod outbox;
mod peer;
pub mod policy;
mod rib;
mod sources;
mod table;
mod walk;

pub use error::RibError;
pub use outbox::Outbound;
pub use peer::{AddPathSend, Down, PeerConfig, PeerCounts, PeerId, Session};
pub use policy::{Action, Outcome, Policy, PrefixRange, Statement, Verdict};
pub use rib::{Effects, FibChange, Rib, RibSettings, RouteSource, RouteView, Signal};
