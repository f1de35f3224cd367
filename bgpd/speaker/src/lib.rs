//! BGP speaker: per-peer sessions, RIB, best path, route reflection, graceful restart.
