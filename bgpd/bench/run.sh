#!/usr/bin/env bash
# Route-reflector benchmark: BIRD, FRR bgpd, GoBGP (and our bgp-speaker when built) as the
# reflector in one namespace, the `bgpbench` tester in another, joined by a veth pair.
#
#   bgpd/bench/run.sh                                  # everything: propagation 10k 100k 1M, fan-out 200 1000
#   bgpd/bench/run.sh propagation 1000000              # one case
#   bgpd/bench/run.sh propagation 10000 fanout 200     # several
#   REPS=5 REFLECTORS="bird frr" bgpd/bench/run.sh fanout 1000
#
# Each (case, reflector, repetition) starts a fresh reflector, so its peak RSS is that run's.
# Results: one JSON line per run in $RESULTS (printed at the end), then a Markdown table of
# medians. Addresses exist only inside the two namespaces; both are removed on exit, Ctrl-C
# or failure. Run as root.
set -euo pipefail

REPS=${REPS:-3}
REFLECTORS=${REFLECTORS:-"bird frr gobgp bgpd"}
TIMEOUT=${TIMEOUT:-300}
SETTLE=${SETTLE:-1}
# NO_BUILD=1 runs the release binaries already built (e.g. while the tree does not build).
# A command put before the tester, e.g. TESTER_WRAP="perf record -g -o /tmp/t.data".
TESTER_WRAP=${TESTER_WRAP:-}
ASN=65000
RR=10.77.0.1
INJECTOR=10.77.1.1
MONITOR=10.77.1.2
FIRST_CLIENT=10.77.2.1

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}

# Which cases: "propagation N…" and/or "fanout S…".
cases=()
mode=""
for arg in "$@"; do
    case "$arg" in
        propagation | fanout) mode=$arg ;;
        *[!0-9]* | "") echo "usage: $0 [propagation N…] [fanout S…]" >&2; exit 2 ;;
        *)
            [[ -n $mode ]] || { echo "say propagation or fanout before $arg" >&2; exit 2; }
            cases+=("$mode:$arg")
            ;;
    esac
done
((${#cases[@]})) || cases=(propagation:10000 propagation:100000 propagation:1000000 fanout:200 fanout:1000)

max_clients=0
for c in "${cases[@]}"; do
    [[ ${c%%:*} == fanout ]] && ((${c#*:} > max_clients)) && max_clients=${c#*:}
done

bench=$target/release/bgpbench
speaker=$target/release/bgp-speaker
if [[ -n ${NO_BUILD:-} ]]; then
    echo "NO_BUILD: using the binaries already in $target/release" >&2
else
    echo "building bgpbench (release)…" >&2
    (cd "$repo" && cargo build --release -p bgpd-bench --bin bgpbench >&2)
fi
if [[ -z ${NO_BUILD:-} && " $REFLECTORS " == *" bgpd "* ]]; then
    if (cd "$repo" && cargo build --release -p bgpd-speaker --bin bgp-speaker >&2); then :; else
        echo "bgp-speaker does not build: bgpd is not measured" >&2
        REFLECTORS=${REFLECTORS//bgpd/}
    fi
fi

# The fan-out clients' source addresses, consecutive from FIRST_CLIENT.
client_addresses() {
    python3 -c "
import ipaddress
first = ipaddress.IPv4Address('$FIRST_CLIENT')
print(' '.join(str(first + i) for i in range($1)))"
}

tag="bb$$"
rns="${tag}r"
tns="${tag}t"
work=$(mktemp -d "/tmp/bgpbench-$tag.XXXX")
RESULTS=${RESULTS:-$work/results.jsonl}
daemon_pid=""

stop_daemon() {
    if [[ -n $daemon_pid ]]; then
        kill "$daemon_pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$daemon_pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$daemon_pid" 2>/dev/null || true
        wait "$daemon_pid" 2>/dev/null || true
        daemon_pid=""
    fi
}

cleanup() {
    stop_daemon
    for ns in "$rns" "$tns"; do
        if ip netns list | grep -qw "$ns"; then
            for pid in $(ip netns pids "$ns"); do kill -9 "$pid" 2>/dev/null || true; done
            ip netns del "$ns"
        fi
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ip netns add "$rns"
ip netns add "$tns"
ip -n "$rns" link set lo up
ip -n "$tns" link set lo up
ip -n "$rns" link add vr type veth peer name vt netns "$tns"
ip -n "$rns" addr add "$RR/16" dev vr
ip -n "$rns" link set vr up
{
    echo "addr add $INJECTOR/16 dev vt"
    echo "addr add $MONITOR/16 dev vt"
    for addr in $(client_addresses "$max_clients"); do echo "addr add $addr/16 dev vt"; done
} | ip -n "$tns" -batch -
ip -n "$tns" link set vt up
# Thousands of clients connecting at once: room in the reflector's accept queue.
ip netns exec "$rns" sysctl -qw net.core.somaxconn=4096 net.ipv4.tcp_max_syn_backlog=4096

# --- reflector configurations: every client of 10.77.0.0/16 is an RR client, one cluster id ---

start_bird() {
    local dir=$1
    cat >"$dir/bird.conf" <<EOF
router id $RR;
log "$dir/bird.log" { warning, error, fatal };
protocol device { }
protocol bgp clients {
    local $RR as $ASN;
    neighbor range 10.77.0.0/16 as $ASN;
    dynamic name "c";
    direct;
    rr client;
    rr cluster id $RR;
    hold time 90;
    ipv4 { import all; export all; gateway direct; };
}
EOF
    ip netns exec "$rns" bird -f -c "$dir/bird.conf" -s "$dir/bird.ctl" -P "$dir/bird.pid" \
        >"$dir/bird.out" 2>&1 &
    daemon_pid=$!
}

start_frr() {
    local dir=$1
    cat >"$dir/frr.conf" <<EOF
hostname rr
router bgp $ASN
 bgp router-id $RR
 bgp cluster-id $RR
 no bgp ebgp-requires-policy
 no bgp default ipv4-unicast
 bgp listen limit 5000
 neighbor clients peer-group
 neighbor clients remote-as $ASN
 neighbor clients timers 30 90
 bgp listen range 10.77.0.0/16 peer-group clients
 address-family ipv4 unicast
  neighbor clients activate
  neighbor clients route-reflector-client
 exit-address-family
EOF
    ip netns exec "$rns" /usr/lib/frr/bgpd -f "$dir/frr.conf" -i "$dir/bgpd.pid" \
        -z "$dir/zserv.api" --vty_socket "$dir" --log "file:$dir/frr.log" -Z -n -S \
        -u root -g root -P 0 -p 179 -l "$RR" >"$dir/frr.out" 2>&1 &
    daemon_pid=$!
}

start_gobgp() {
    local dir=$1
    cat >"$dir/gobgpd.toml" <<EOF
[global.config]
  as = $ASN
  router-id = "$RR"
  local-address-list = ["$RR"]

[[peer-groups]]
  [peer-groups.config]
    peer-group-name = "clients"
    peer-as = $ASN
  [peer-groups.timers.config]
    hold-time = 90
    keepalive-interval = 30
  [peer-groups.route-reflector.config]
    route-reflector-client = true
    route-reflector-cluster-id = "$RR"
  [[peer-groups.afi-safis]]
    [peer-groups.afi-safis.config]
      afi-safi-name = "ipv4-unicast"

[[dynamic-neighbors]]
  [dynamic-neighbors.config]
    prefix = "10.77.0.0/16"
    peer-group = "clients"
EOF
    ip netns exec "$rns" gobgpd -f "$dir/gobgpd.toml" -t toml -l warn \
        --api-hosts "unix://$dir/gobgp.sock" --pprof-disable --log-plain >"$dir/gobgp.out" 2>&1 &
    daemon_pid=$!
}

start_bgpd() {
    local dir=$1
    cat >"$dir/speaker.toml" <<EOF
local_as = $ASN
router_id = "$RR"
listen = ["$RR:179"]
cluster_id = "$RR"
fib = false

[graceful_restart]
enabled = false

[[peer_ranges]]
prefix = "10.77.0.0/16"
remote_as = $ASN
rr_client = true
hold_time = 90
families = ["ipv4"]
EOF
    ip netns exec "$rns" "$speaker" --config "$dir/speaker.toml" >"$dir/speaker.out" 2>&1 &
    daemon_pid=$!
}

# --- runs ---

echo "results: $RESULTS" >&2
for c in "${cases[@]}"; do
    test=${c%%:*}
    size=${c#*:}
    for rep in $(seq "$REPS"); do
        for reflector in $REFLECTORS; do
            dir="$work/$test-$size-$reflector-$rep"
            mkdir -p "$dir"
            "start_$reflector" "$dir"
            case $test in
                propagation) args=(propagation --prefixes "$size") ;;
                fanout) args=(fanout --clients "$size") ;;
            esac
            echo "$test $size $reflector run $rep/$REPS…" >&2
            line=$(ip netns exec "$tns" $TESTER_WRAP "$bench" "${args[@]}" --reflector "$RR:179" \
                --pid "$daemon_pid" --label "$reflector" --timeout "$TIMEOUT" --settle "$SETTLE" \
                2>"$dir/bgpbench.err") || true
            [[ -n $line ]] || line="{\"test\":\"$test\",\"reflector\":\"$reflector\",\"ok\":false,\"error\":\"tester failed: $(tr -d '"\n' <"$dir/bgpbench.err" | head -c 300)\"}"
            echo "$line" | tee -a "$RESULTS" >&2
            stop_daemon
            # Daemon logs and configs are kept only for failed runs (they grow to 100s of MB).
            if [[ $line == *'"ok":true'* ]]; then rm -rf "$dir"; fi
        done
    done
done

python3 "$here/table.py" "$RESULTS"
echo "raw results: $RESULTS" >&2
