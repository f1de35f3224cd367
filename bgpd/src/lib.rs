//! The fabric daemon: wires config, IPAM, kernel routes, BGP and policy together on one host.
