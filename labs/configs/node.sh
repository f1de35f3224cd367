#!/bin/sh
# The command of every containerlab node (labs/*.clab.yml):
#   fabric-node switch <ports>       bridge the data interfaces eth1…eth<ports> into br0
#   fabric-node etcd <addr/len>      the fabric's etcd on the underlay
#   fabric-node bgpd <addr/len> [containers]
#                                    bgpd with /etc/bgpd/bgpd.toml, then <containers> test
#                                    containers (namespaces ctr-1…) attached through routectl
# The same roles as the namespace runner (labs/run.sh), which does this in one process.
set -eu
role=$1

# containerlab adds the data links after the container starts: wait for them.
wait_for() { until ip link show "$1" >/dev/null 2>&1; do sleep 0.2; done; }

case "$role" in
switch)
  ip link add br0 type bridge
  ip link set br0 up
  for i in $(seq 1 "$2"); do
    wait_for "eth$i"
    ip link set "eth$i" master br0
    ip link set "eth$i" up
  done
  exec sleep infinity
  ;;
etcd)
  wait_for eth1
  ip addr add "$2" dev eth1
  ip link set eth1 up
  addr=${2%/*}
  exec etcd --name fabric --data-dir /var/lib/etcd/fabric \
    --listen-client-urls "http://$addr:2379" --advertise-client-urls "http://$addr:2379"
  ;;
bgpd)
  wait_for eth1
  ip addr add "$2" dev eth1
  # The IPv6 underlay beside it, fd99::<last octet>/64: bgpd's next hop for its IPv6 blocks.
  last=${2%/*}; last=${last##*.}
  ip -6 addr add "fd99::$(printf %x "$last")/64" dev eth1 nodad
  ip link set eth1 up
  bgpd --config /etc/bgpd/bgpd.toml &
  pid=$!
  until routectl status >/dev/null 2>&1; do
    kill -0 "$pid" || exit 1
    sleep 0.5
  done
  for i in $(seq 1 "${3:-0}"); do
    ip netns add "ctr-$i"
    routectl endpoint add "$(hostname)-ctr-$i" --netns "ctr-$i"
  done
  wait "$pid"
  ;;
*)
  echo "fabric-node: unknown role $role" >&2
  exit 2
  ;;
esac
