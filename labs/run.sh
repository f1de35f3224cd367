#!/usr/bin/env bash
# The demo fabric in network namespaces on this machine:
#   bash labs/run.sh demo   # etcd + 3 bgpd hosts in an iBGP full mesh, 2 containers each
#   bash labs/run.sh rr     # etcd + 1 bgpd route reflector + 3 hosts
#   bash labs/run.sh bird   # etcd + BIRD as route reflector + 3 hosts
#   bash labs/run.sh configs  # rewrite labs/configs/*.toml (what the .clab.yml files mount)
# Installs what is needed, builds bgpd and routectl, brings the fabric up, prints each host's
# `routectl status` and `routectl routes` and an all-pairs container ping matrix, then tears
# everything down (also on failure or Ctrl-C). Needs root. Everything it creates lives in
# namespaces named fab<pid>-…; the only addresses used are inside them.
set -euo pipefail
cd "$(dirname "$0")/.."
topology=${1:-demo}
case "$topology" in
  demo|mesh|rr|bird) ;;
  configs)
    cargo run --quiet -p testkit --bin labs -- configs labs/configs
    exit ;;
  *) echo "usage: bash labs/run.sh [demo|rr|bird|configs]" >&2; exit 2 ;;
esac
if [ "$(id -u)" != 0 ]; then
  echo "labs/run.sh: run as root (it creates network namespaces)" >&2
  exit 1
fi
source .ci/setup.sh
# --bins: `--bin labs` alone would build no other package's binary, only their libraries.
cargo build --quiet --bins -p bgpd -p routectl -p bgpd-cni -p testkit
target=${CARGO_TARGET_DIR:-target}/debug
export FABRIC_BIN_DIR="$target"

# The runner removes what it made when it exits; this catches a runner killed outright
# (its namespaces, their processes, and its temporary files, which go under a dir of our own).
TMPDIR=$(mktemp -d -t labs-XXXXXX)
export TMPDIR
cleanup() {
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^fab${runner_pid:-x}-" || true); do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
  done
  rm -rf "$TMPDIR"
}
trap cleanup EXIT
"$target/labs" "$topology" &
runner_pid=$!
trap 'kill -TERM "$runner_pid" 2>/dev/null || true' INT TERM
wait "$runner_pid"
