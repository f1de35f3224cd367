#!/usr/bin/env bash
# Times CNI ADD and DEL of N containers through bgpd-cni against a real bgpd (with its own etcd,
# both inside a namespace this script makes and removes). Prints median and p90 per call.
# Usage: bash bgpd/cni/bench/add_del.sh [N] [bin dir]   (as root; bin dir has bgpd and bgpd-cni)
set -euo pipefail
N=${1:-50}
BIN=${2:-${CARGO_TARGET_DIR:-target}/debug}
TAG="fabcni$$"
DIR=$(mktemp -d)
cleanup() {
  [ -n "${BGPD:-}" ] && kill "$BGPD" 2>/dev/null || true
  [ -n "${ETCD:-}" ] && kill "$ETCD" 2>/dev/null || true
  wait 2>/dev/null || true
  for i in $(seq 1 "$N"); do ip netns del "$TAG-c$i" 2>/dev/null || true; done
  ip netns del "$TAG-h" 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT
H="$TAG-h"
ip netns add "$H"
ip -n "$H" link set lo up
ip -n "$H" link add uplink type veth peer name uplink-end
ip -n "$H" addr add 10.97.0.11/24 dev uplink
ip -n "$H" link set uplink-end up
ip -n "$H" link set uplink up
ip -n "$H" route add default via 10.97.0.1 dev uplink
ip netns exec "$H" etcd --name m0 --data-dir "$DIR/etcd" \
  --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
  --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
  --initial-cluster m0=http://127.0.0.1:2380 >/dev/null 2>&1 &
ETCD=$!
cat > "$DIR/bgpd.toml" <<TOML
[node]
name = "bench"
asn = 64512
address = { ip = "10.97.0.11" }
[etcd]
endpoints = ["http://127.0.0.1:2379"]
[[ipam.pools]]
name = "pool4"
cidr = "10.244.0.0/16"
[api]
socket = "$DIR/bgpd.sock"
TOML
ip netns exec "$H" "$BIN/bgpd" --config "$DIR/bgpd.toml" >/dev/null 2>"$DIR/bgpd.log" &
BGPD=$!
for _ in $(seq 1 300); do
  curl -sf --unix-socket "$DIR/bgpd.sock" http://localhost/v1/status | tr -d ' \n' | grep -q '"blocks":\[{' && break
  sleep 0.1
done
CONF="{\"cniVersion\":\"1.0.0\",\"name\":\"bgpd\",\"type\":\"bgpd-cni\",\"socket\":\"$DIR/bgpd.sock\"}"
call() { # command id netns → elapsed ms
  local s e
  s=$(date +%s%N)
  echo "$CONF" | CNI_COMMAND=$1 CNI_CONTAINERID=$2 CNI_NETNS=$3 CNI_IFNAME=eth0 CNI_PATH=/opt/cni/bin \
    "$BIN/bgpd-cni" >/dev/null || { echo "$1 $2 failed" >&2; exit 1; }
  e=$(date +%s%N)
  echo $(( (e - s) / 1000 ))
}
stats() { sort -n | awk '{a[NR]=$1} END {printf "median %.1f ms  p90 %.1f ms  (n=%d)\n", a[int((NR+1)/2)]/1000, a[int(NR*0.9+0.5)]/1000, NR}'; }
for i in $(seq 1 "$N"); do ip netns add "$TAG-c$i"; done
start=$(date +%s%N)
for i in $(seq 1 "$N"); do call ADD "c$i" "/var/run/netns/$TAG-c$i"; done > "$DIR/add"
total=$(( ($(date +%s%N) - start) / 1000000 ))
echo "ADD: $(stats < "$DIR/add"), $N containers in $total ms"
for i in $(seq 1 "$N"); do call DEL "c$i" "/var/run/netns/$TAG-c$i"; done > "$DIR/del"
echo "DEL: $(stats < "$DIR/del")"
