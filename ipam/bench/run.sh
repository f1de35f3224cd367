#!/usr/bin/env bash
# IPAM benchmark on one real etcd (started on a loopback port, data in a temp dir, fsync on).
# Prints the Markdown table quoted in BENCHMARKS.md: medians of 5 rounds per row.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec cargo bench -p ipam --bench etcd
