//! BGP speaker: per-peer sessions (the RFC 4271 state machine), transport (TCP-MD5, GTSM,
//! multihop), graceful restart and the actor that drives the RIB.

pub mod collision;
pub mod fsm;
pub mod negotiate;
pub mod transport;
