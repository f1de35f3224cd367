#!/usr/bin/env python3
"""Markdown table of medians from bgpbench JSON lines (one per run): per case and reflector
the median time, peak RSS and CPU, and how it compares with the fastest other reflector."""

import json
import statistics
import sys
from collections import defaultdict

NAMES = {"bird": "BIRD 2.0.12", "frr": "FRR 8.4 bgpd", "gobgp": "GoBGP 3.10", "bgpd": "bgpd (ours)"}


def size_of(run):
    if run.get("test") == "propagation":
        return run.get("prefixes")
    return run.get("clients")


def main(path):
    runs = defaultdict(list)
    failures = defaultdict(list)
    order = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            run = json.loads(line)
            key = (run.get("test"), size_of(run))
            if key not in order:
                order.append(key)
            if run.get("ok"):
                runs[key + (run["reflector"],)].append(run)
            else:
                failures[key + (run.get("reflector"),)].append(run.get("error", "?"))

    print("| test | size | reflector | runs ok | time (median) | peak RSS | reflector CPU | tester CPU | vs fastest other |")
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for test, size in order:
        reflectors = sorted(
            {r for (t, s, r) in list(runs) + list(failures) if (t, s) == (test, size)},
            key=lambda r: list(NAMES).index(r) if r in NAMES else 99,
        )
        med = {}
        for r in reflectors:
            ok = runs.get((test, size, r), [])
            if ok:
                med[r] = statistics.median(x["seconds"] for x in ok)
        for r in reflectors:
            ok = runs.get((test, size, r), [])
            bad = failures.get((test, size, r), [])
            total = len(ok) + len(bad)
            unit = "prefixes" if test == "propagation" else "clients"
            label = f"{size:,} {unit}" if isinstance(size, int) else str(size)
            if not ok:
                print(f"| {test} | {label} | {NAMES.get(r, r)} | 0/{total} | failed: {bad[0][:80] if bad else '?'} | | | | |")
                continue
            rss = [x["reflector_peak_rss_mib"] for x in ok if x.get("reflector_peak_rss_mib") is not None]
            cpu = [x["reflector_cpu_seconds"] for x in ok if x.get("reflector_cpu_seconds") is not None]
            tcpu = [x["tester_cpu_seconds"] for x in ok]
            others = [t for o, t in med.items() if o != r]
            if others:
                ratio = min(others) / med[r]
                versus = f"{ratio:.2f}x faster" if ratio >= 1 else f"{1 / ratio:.2f}x slower"
            else:
                versus = "—"
            print(
                f"| {test} | {label} | {NAMES.get(r, r)} | {len(ok)}/{total} | {fmt_s(med[r])} "
                f"| {statistics.median(rss):,.0f} MiB | {statistics.median(cpu):.2f} s "
                f"| {statistics.median(tcpu):.2f} s | {versus} |"
                if rss and cpu
                else f"| {test} | {label} | {NAMES.get(r, r)} | {len(ok)}/{total} | {fmt_s(med[r])} | ? | ? "
                f"| {statistics.median(tcpu):.2f} s | {versus} |"
            )


def fmt_s(seconds):
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


if __name__ == "__main__":
    main(sys.argv[1])
