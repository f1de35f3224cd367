#!/usr/bin/env bash
# Runs the codec criterion benchmarks RUNS times (default 5) and prints, per workload, the
# median over runs of criterion's median time for bgpd-wire and zettabgp, prefixes/s, and the
# median of the per-run ratios (with their range). Usage: bash bgpd/wire/bench/codec.sh [RUNS]
# CODEC_BENCH_CLOCK=cpu measures the benchmark thread's CPU time instead of wall time.
set -euo pipefail
cd "$(dirname "$0")/../../.."
runs=${1:-5}
target=${CARGO_TARGET_DIR:-target}
out=$(mktemp -d)
echo "clock: ${CODEC_BENCH_CLOCK:-wall}; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for i in $(seq 1 "$runs"); do
    cargo bench -p bgpd-wire --bench codec -- --warm-up-time 1 --measurement-time 3 >/dev/null 2>&1
    # criterion stores "group/op/impl" as criterion/group/op_impl.
    for est in "$target"/criterion/*/*/new/estimates.json; do
        name=$(echo "$est" | sed -E 's|.*/criterion/([^/]+)/([^/_]+)_([^/]+)/new/estimates.json|\1 \2/\3|')
        median=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["median"]["point_estimate"])' "$est")
        elements=$(python3 -c 'import json,sys; print((json.load(open(sys.argv[1])).get("throughput") or {}).get("Elements", 0))' "${est%estimates.json}benchmark.json")
        echo "$i $name $median $elements" >>"$out/all"
    done
done
python3 - "$out/all" <<'PY'
import statistics, sys, collections
rows = collections.defaultdict(dict)
prefixes = {}
for line in open(sys.argv[1]):
    run, group, bench, ns, elements = line.split()
    rows[(group, bench)][int(run)] = float(ns)
    prefixes[group] = int(elements)
print(f"{len(next(iter(rows.values())))} runs")
print("| workload | operation | bgpd-wire median | prefixes/s | zettabgp median | zettabgp/bgpd-wire (median of per-run ratios) |")
print("| --- | --- | --- | --- | --- | --- |")
for (group, bench), per_run in sorted(rows.items()):
    op, impl = bench.split("/")
    if impl != "bgpd-wire":
        continue
    ours = statistics.median(per_run.values())
    n = prefixes.get(group)
    rate = f"{n / ours * 1e9 / 1e6:.1f} M"
    other = rows.get((group, f"{op.split('-')[0]}/zettabgp"))
    if other:
        ratios = [other[r] / per_run[r] for r in per_run if r in other]
        ratio = statistics.median(ratios)
        theirs = f"{statistics.median(other.values()) / 1e3:.1f} µs"
        spread = f"{min(ratios):.2f}–{max(ratios):.2f}"
        print(f"| {group} | {op} | {ours / 1e3:.1f} µs | {rate} | {theirs} | {ratio:.2f}x ({spread}) |")
    else:
        print(f"| {group} | {op} | {ours / 1e3:.1f} µs | {rate} | — | — |")
PY
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
