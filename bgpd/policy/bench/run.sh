#!/usr/bin/env bash
# Policy benchmark, as root: apply time for 1k/10k rules (ours vs iptables-restore, nft and
# legacy backends) and iperf3 throughput with 10k rules vs none, all inside namespaces it makes.
# Usage: bash bgpd/policy/bench/run.sh [runs=5] [iperf-seconds=3]   → a Markdown table on stdout
set -euo pipefail
cd "$(dirname "$0")/../../.."
runs=${1:-5}
secs=${2:-3}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
cargo build --quiet --release -p bgpd-policy --example policy_bench
exec "$CARGO_TARGET_DIR/release/examples/policy_bench" "$runs" "$secs"
