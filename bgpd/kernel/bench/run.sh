#!/usr/bin/env bash
# Route programming benchmark in a scratch network namespace (root only).
# Usage: bgpd/kernel/bench/run.sh [runs] [sizes...]   e.g. bench/run.sh 5 10000 100000
set -euo pipefail
cd "$(dirname "$0")/../../.."
cargo build --release -p bgpd-kernel --example fib_bench
bin="${CARGO_TARGET_DIR:-target}/release/examples/fib_bench"
ns="fabbench$$"
ip netns add "$ns"
trap 'ip netns del "$ns"' EXIT
ip -n "$ns" link set lo up
ip netns exec "$ns" "$bin" "$@"
