#!/usr/bin/env bash
# IPAM benchmark on one real etcd (started on a loopback port, data in a temp dir, fsync on).
# Each run prints a Markdown table of medians of 5 rounds per row; BENCHMARKS.md quotes the
# per-cell median of the runs. Usage: bash ipam/bench/run.sh [runs, default 3]
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo bench -p ipam --bench etcd --no-run
for i in $(seq "${1:-3}"); do
    echo "## run $i"
    cargo bench -p ipam --bench etcd 2>/dev/null
done
