//! Host-firewall policy: model, selectors, compilation to one atomic nftables table.
