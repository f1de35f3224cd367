//! IP address management over etcd v3: pools, per-host blocks, assignments, garbage collection.
