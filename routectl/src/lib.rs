//! The operator's CLI for bgpd and the fabric.
