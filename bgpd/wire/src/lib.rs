//! BGP message codec: pure bytes in, typed messages out and back; no I/O.
