#!/usr/bin/env bash
# What forwarding costs per byte with conntrack and base chains in the forward hook, as root.
# Two routed hosts and two containers in namespaces of its own (ca1 - ha - hb - cb1, veths);
# for each variant of the table on both hosts, iperf3 sends a fixed amount from ca1 to cb1 and
# the CPU time of the iperf3 client and server is summed. The kernel here charges softirq time
# (the forwarding on both hosts, done inline on veth) to the task it interrupts, so that sum
# covers the forwarding; time taken by ksoftirqd is missed. Variants, in each round:
#   none   no table: no hook, no conntrack in the namespaces
#   hook   a forward chain with one counter rule: the hook, no conntrack
#   ct1    one forward chain accepting established: conntrack + one chain
#   ct2    our table's shape: two forward chains (priority -1 and 0) accepting established
# Usage: bash bgpd/policy/bench/forward_cost.sh [rounds=7] [bytes=4G]  → a Markdown table
set -euo pipefail
rounds=${1:-7}
bytes=${2:-4G}
p=fwcost$$
tmp=$(mktemp -d)
cleanup() {
    for n in ca1 ha hb cb1; do ip netns del "$p-$n" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT
for n in ca1 ha hb cb1; do
    ip netns add "$p-$n"
    ip -n "$p-$n" link set lo up
done
ip link add a-c netns "$p-ha" type veth peer name eth0 netns "$p-ca1"
ip link add b-c netns "$p-hb" type veth peer name eth0 netns "$p-cb1"
ip link add a-b netns "$p-ha" type veth peer name b-a netns "$p-hb"
for x in "ha a-c" "ha a-b" "hb b-c" "hb b-a" "ca1 eth0" "cb1 eth0"; do
    set -- $x
    ip -n "$p-$1" link set "$2" up
done
ip -n "$p-ca1" addr add 10.244.1.2/32 dev eth0
ip -n "$p-ca1" route add default dev eth0
ip -n "$p-cb1" addr add 10.244.2.2/32 dev eth0
ip -n "$p-cb1" route add default dev eth0
ip -n "$p-ha" addr add 10.10.0.1/24 dev a-b
ip -n "$p-hb" addr add 10.10.0.2/24 dev b-a
for h in ha hb; do ip netns exec "$p-$h" sysctl -qw net.ipv4.ip_forward=1; done
ip netns exec "$p-ha" sysctl -qw net.ipv4.conf.a-c.proxy_arp=1 net.ipv4.neigh.a-c.proxy_delay=0
ip netns exec "$p-hb" sysctl -qw net.ipv4.conf.b-c.proxy_arp=1 net.ipv4.neigh.b-c.proxy_delay=0
ip -n "$p-ha" route add 10.244.1.2/32 dev a-c
ip -n "$p-hb" route add 10.244.2.2/32 dev b-c
ip -n "$p-ha" route add 10.244.2.0/24 via 10.10.0.2
ip -n "$p-hb" route add 10.244.1.0/24 via 10.10.0.1

accept='ct state established,related counter accept'
table() {
    case $1 in
    none) ;;
    hook) printf 'table inet t {\n chain f { type filter hook forward priority 0; policy accept; counter; }\n}\n' ;;
    ct1) printf 'table inet t {\n chain f { type filter hook forward priority 0; policy accept; %s; }\n}\n' "$accept" ;;
    ct2) printf 'table inet t {\n chain e { type filter hook forward priority -1; policy accept; %s; }\n chain f { type filter hook forward priority 0; policy accept; %s; }\n}\n' "$accept" "$accept" ;;
    esac
}
variants="none hook ct1 ct2"
load_start=$(cut -d' ' -f1 /proc/loadavg)
for _ in $(seq "$rounds"); do
    for v in $variants; do
        for h in ha hb; do
            ip netns exec "$p-$h" nft 'table inet t; delete table inet t'
            table "$v" | ip netns exec "$p-$h" nft -f -
        done
        /usr/bin/time -f '%U %S' -o "$tmp/server" ip netns exec "$p-cb1" iperf3 -s -1 >/dev/null 2>&1 &
        server=$!
        # The client retries until the one-off server listens (for at most ~10 s).
        tries=0
        until /usr/bin/time -f '%U %S' -o "$tmp/client" \
            ip netns exec "$p-ca1" iperf3 -c 10.244.2.2 -n "$bytes" >/dev/null 2>&1; do
            tries=$((tries + 1))
            if [ "$tries" -ge 100 ]; then
                echo "iperf3 from ca1 to cb1 keeps failing" >&2
                exit 1
            fi
            sleep 0.1
        done
        wait "$server"
        awk '{s += $1 + $2} END {printf "%.3f\n", s}' "$tmp/server" "$tmp/client" >>"$tmp/$v"
    done
done
stats() { sort -n "$1" | awk '{v[NR] = $1} END {printf "%.2f s (%.2f–%.2f)", v[int((NR + 1) / 2)], v[1], v[NR]}'; }
echo "load average $load_start at start, $(cut -d' ' -f1 /proc/loadavg) at the end · $rounds rounds of $bytes · CPU s (client + server), median (min–max)"
echo
echo "| no table | forward hook, no conntrack | conntrack + one chain | conntrack + two chains (ours) |"
echo "| ---: | ---: | ---: | ---: |"
echo "| $(stats "$tmp/none") | $(stats "$tmp/hook") | $(stats "$tmp/ct1") | $(stats "$tmp/ct2") |"
