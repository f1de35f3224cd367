//! Host-firewall policy: model, selectors, compilation to one atomic nftables table.

pub mod model;
pub mod selector;
