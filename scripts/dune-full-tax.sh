#!/usr/bin/env bash
# dune-full against full (issue 15): for each runner binary given, interleaved repetitions
# of every workload under `full` and `dune-full`; prints per binary and workload the
# medians of wall time, GC time and max pause, and the dune-full / full ratios (median
# of the per-repetition ratios, with their range).
#
#   REPS=5 [WORKLOADS="gcbench linkedlist hashmap xml"] scripts/dune-full-tax.sh NAME=RUNNER ...
set -euo pipefail
reps="${REPS:-5}"
workloads="${WORKLOADS:-gcbench linkedlist hashmap xml}"
raw="${RAW:-$(mktemp -t dune-full-tax.XXXXXX)}"
scale() { case "$1" in gcbench) echo 16 ;; linkedlist) echo 200 ;; hashmap) echo 100 ;; xml) echo 50 ;; *) echo "unknown workload $1" >&2; exit 1 ;; esac; }
: >"$raw"
for rep in $(seq "$reps"); do
    for w in $workloads; do
        for arg in "$@"; do
            for config in full dune-full; do
                line="$("${arg#*=}" "$w" "$(scale "$w")" "$config" | head -1)"
                case "$line" in dunegc-result*) ;; *) echo "failed: $arg $w $config: $line" >&2; exit 1 ;; esac
                echo "rep=$rep bin=${arg%%=*} $line" >>"$raw"
            done
        done
    done
    echo "repetition $rep done ($(date -u +%H:%M:%S), load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
done
python3 - "$raw" <<'PY'
import statistics, sys
from collections import defaultdict
runs = defaultdict(dict)  # (bin, workload, rep) -> config -> fields
order = []
for line in open(sys.argv[1]):
    f = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
    key = (f["bin"], f["workload"], f["rep"])
    runs[key][f["config"]] = f
    if (f["bin"], f["workload"]) not in order:
        order.append((f["bin"], f["workload"]))
print("| binary | workload | full wall ms | dune-full wall ms | wall ratio | full GC ms | dune-full GC ms | GC ratio | full max pause ms | dune-full max pause ms | max pause ratio |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
geo = defaultdict(list)
for b, w in order:
    reps = [v for (bb, ww, _), v in runs.items() if bb == b and ww == w and "full" in v and "dune-full" in v]
    def med(cfg, k):
        return statistics.median(int(r[cfg][k]) for r in reps) / 1e6
    def ratio(k):
        rs = sorted(int(r["dune-full"][k]) / max(1, int(r["full"][k])) for r in reps)
        return statistics.median(rs), rs[0], rs[-1]
    cells = []
    for k in ("wall_ns", "gc_ns", "max_pause_ns"):
        m, lo, hi = ratio(k)
        geo[(b, k)].append(m)
        cells += [f"{med('full', k):.1f}", f"{med('dune-full', k):.1f}", f"**{m:.2f}×** ({lo:.2f}–{hi:.2f})"]
    print(f"| {b} | {w} | " + " | ".join(cells) + " |")
print()
print("| binary | geomean wall ratio | geomean GC ratio | geomean max pause ratio |")
print("|---|---|---|---|")
for b in dict.fromkeys(b for b, _ in order):
    g = lambda k: statistics.geometric_mean(geo[(b, k)])
    print(f"| {b} | {g('wall_ns'):.2f}× | {g('gc_ns'):.2f}× | {g('max_pause_ns'):.2f}× |")
PY
