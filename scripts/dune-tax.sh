#!/usr/bin/env bash
# Before/after measurement of Dune's virtualization tax (issue 15), one session, runs
# interleaved: for each repetition, each runner binary runs each workload at the demo's
# scale (GCBench 16 and LinkedList 200 by default; WORKLOADS="gcbench linkedlist hashmap
# xml" for all four) under full, dune-full, incremental-mprotect and incremental-dune.
# Prints the median wall times and the ratios inc-dune / inc-mprotect and dune-full / full
# per binary, with the range of the per-repetition ratios, then per binary the geometric
# mean over the workloads of the median ratios.
#
#   REPS=3 [WORKLOADS="..."] scripts/dune-tax.sh NAME=RUNNER [NAME=RUNNER ...]
#
# Each RUNNER is a `dunegc-runner` binary (release build) that knows `dune-full`;
# bench-results/dune-tax.md says how the ones measured there were built.
set -euo pipefail
reps="${REPS:-3}"
raw="$(mktemp -t dune-tax.XXXXXX)"
trap 'rm -f "$raw"' EXIT
workloads="${WORKLOADS:-gcbench linkedlist}"
scale() { case "$1" in gcbench) echo 16 ;; linkedlist) echo 200 ;; hashmap) echo 100 ;; xml) echo 50 ;; *) echo "unknown workload $1" >&2; exit 1 ;; esac; }
names=()
for arg in "$@"; do names+=("${arg%%=*}"); done
for rep in $(seq "$reps"); do
    for arg in "$@"; do
        which="${arg%%=*}"
        bin="${arg#*=}"
        for w in $workloads; do
            ws="$w $(scale "$w")"
            for config in full dune-full incremental-mprotect incremental-dune; do
                # shellcheck disable=SC2086
                line="$("$bin" $ws "$config" | head -1)"
                wall="$(printf '%s\n' "$line" | tr ' ' '\n' | sed -n 's/^wall_ns=//p')"
                [ -n "$wall" ] || { echo "failed: $which $ws $config: $line" >&2; exit 1; }
                echo "$rep $which ${ws%% *} $config $wall" >>"$raw"
            done
        done
    done
done
python3 - "$raw" "$workloads" "${names[@]}" <<'EOF'
import statistics, sys
from collections import defaultdict
runs = defaultdict(dict)  # (which, workload, config) -> rep -> wall
for l in open(sys.argv[1]):
    rep, which, w, c, wall = l.split()
    runs[(which, w, c)][int(rep)] = int(wall)
print("| binary | workload | full ms | dune-full ms | inc-mprotect ms | inc-dune ms | dune-full / full | inc-dune / inc-mprotect |")
print("|---|---|---|---|---|---|---|---|")
import math
geo = defaultdict(lambda: defaultdict(list))  # which -> (a, b) -> [median ratio]
for w in sys.argv[2].split():
    for which in sys.argv[3:]:
        med = {c: statistics.median(runs[(which, w, c)].values()) / 1e6
               for c in ["full", "dune-full", "incremental-mprotect", "incremental-dune"]}
        def ratio(a, b):
            per = [runs[(which, w, a)][r] / runs[(which, w, b)][r] for r in runs[(which, w, a)]]
            geo[which][(a, b)].append(med[a] / med[b])
            return f"{med[a] / med[b]:.2f}× ({min(per):.2f}–{max(per):.2f})"
        print(f"| {which} | {w} | {med['full']:.0f} | {med['dune-full']:.0f} | "
              f"{med['incremental-mprotect']:.0f} | {med['incremental-dune']:.0f} | "
              f"{ratio('dune-full', 'full')} | {ratio('incremental-dune', 'incremental-mprotect')} |")
print()
print("| binary | geomean dune-full / full | geomean inc-dune / inc-mprotect |")
print("|---|---|---|")
for which in sys.argv[3:]:
    g = {k: math.exp(sum(map(math.log, v)) / len(v)) for k, v in geo[which].items()}
    print(f"| {which} | {g[('dune-full', 'full')]:.2f}× | "
          f"{g[('incremental-dune', 'incremental-mprotect')]:.2f}× |")
EOF
