#!/usr/bin/env bash
# Sweep after the pause and the mark loop (issue 18, branch sweep), one session, runs
# interleaved: for each repetition, each comparison workload at the demo scales runs
# under gc-core full collections as built on BASE_REV (default `main`: before this
# branch; built from `git archive` into a target directory of its own), this tree's
# gc-core full collections, and bdwgc full. Writes medians and ratios (with the range of
# per-repetition ratios) to bench-results/sweep-and-mark.md and prints it.
#
#   REPS=5 scripts/sweep-and-mark.sh
set -euo pipefail
cd "$(dirname "$0")/.."
reps="${REPS:-5}"
out="${OUT:-bench-results/sweep-and-mark.md}"
base_rev="${BASE_REV:-main}"
# shellcheck source=scripts/lib/bench.sh
. scripts/lib/bench.sh
bench_build sweep-and-mark "$base_rev"
# The result line, plus `longest_sweep_ms=` and `longest_total_ms=` from the longest
# pause's breakdown ("... ms = stop ... + sweep S + resume R").
breakdown() {
    awk '/^dunegc-result/ { r = $0 }
         /^dunegc-pause longest/ { for (i = 1; i <= NF; i++) { if ($i == "sweep") s = $(i + 1) }; t = $3 }
         END { print r " longest_sweep_ms=" s " longest_total_ms=" t }'
}
for rep in $(seq "$reps"); do
    for ws in "gcbench 16" "linkedlist 200" "hashmap 100" "xml 50"; do
        for config in base-full full bdwgc-full; do
            # shellcheck disable=SC2086
            case "$config" in
                # DUNEGC_PAUSE_BREAKDOWN: the runner prints what its longest pause was
                # made of (on stderr, at exit); its sweep part goes into the raw line.
                base-full) line="$(DUNEGC_PAUSE_BREAKDOWN=1 "$bin/base-runner" $ws full 2>&1 | breakdown)" ;;
                full) line="$(DUNEGC_PAUSE_BREAKDOWN=1 "$bin/dunegc-runner" $ws full 2>&1 | breakdown)" ;;
                bdwgc-full) line="$("$bin/bdwgc-runner" $ws full | head -1)" ;;
            esac
            bench_record "$rep" "$ws" "$config" "$line"
        done
    done
done
load_after="$(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$raw" "$reps" "$started" "$load_before" "$load_after" "$(nproc)" "$base_rev" "$base_commit" "$this_commit" >"$out" <<'EOF'
import statistics, sys
from collections import defaultdict
sys.path.insert(0, "scripts/lib")
from benchlib import session_line, W, fmt, geo, load_runs, make_stats
raw, reps, started, lb, la, ncpu, base_rev, base_commit, this_commit = sys.argv[1:]
runs = load_runs(raw)
med, rng, ratio = make_stats(runs)
C = ["base-full", "full", "bdwgc-full"]
print("# Sweep after the pause, and the mark loop (issue 18, branch sweep)\n")
print(f"Regenerate: `REPS={reps} scripts/sweep-and-mark.sh` (this file is its output).\n")
print(session_line(started, reps, ncpu, lb, la, "absolute times are inflated and noisy"))
print(f"Binaries: this tree `{this_commit}`, baseline `{base_rev}` = `{base_commit}`.\n")
print("Configurations: `base-full` = the baseline's gc-core full collections (the whole sweep "
      "in the pause); `full` = this tree's (spans owned by a thread cache swept in the pause, "
      "the rest right after the world restarts, heap lock held: GC time, not pause); "
      "`bdwgc-full` = Debian's bdwgc 8.2.2, full collections. All with the default markers "
      "(2 = CPUs). Pause = stop-the-world collection time; `STW mark` = its roots + drain "
      "part.\n")
print("## Medians\n")
print("| workload | config | wall ms | GC ms | max pause ms | STW mark / total pause | peak RSS MiB | collections |")
print("|---|---|---|---|---|---|---|---|")
for w in W:
    for c in C:
        if (w, c) not in runs:
            continue
        r0 = next(iter(runs[(w, c)].values()))
        share = (f"{statistics.median(float(r['mark_ns']) / max(1.0, float(r['total_pause_ns'])) for r in runs[(w, c)].values()):.1%}"
                 if "total_pause_ns" in r0 else "–")
        print(f"| {w} | {c} | {med(w, c, 'wall_ns') / 1e6:.0f} | {med(w, c, 'gc_ns') / 1e6:.1f} | "
              f"{med(w, c, 'max_pause_ns') / 1e6:.2f} | {share} | {med(w, c, 'peak_rss_bytes') / 2**20:.1f} | "
              f"{med(w, c, 'collections'):.0f} |")
for c in ["full", "base-full"]:
    print(f"\n## {c} against bdwgc full (ratio of medians, range of per-repetition ratios)\n")
    print("| workload | GC time | max pause | peak RSS | wall |")
    print("|---|---|---|---|---|")
    walls = []
    for w in W:
        wr = ratio(w, c, "bdwgc-full", "wall_ns")
        walls.append(wr[0])
        print(f"| {w} | {fmt(ratio(w, c, 'bdwgc-full', 'gc_ns'))} | {fmt(ratio(w, c, 'bdwgc-full', 'max_pause_ns'))} | "
              f"{fmt(ratio(w, c, 'bdwgc-full', 'peak_rss_bytes'))} | {fmt(wr)} |")
    print(f"\nGeomean wall: **{geo(walls):.2f}×**.")
print("\n## The sweep's part of the longest pause (from `DUNEGC_PAUSE_BREAKDOWN`; medians, ms)\n")
print("| workload | base-full sweep / longest pause | full sweep / longest pause |")
print("|---|---|---|")
for w in W:
    cells = []
    for c in ["base-full", "full"]:
        cells.append(f"{med(w, c, 'longest_sweep_ms'):.3f} / {med(w, c, 'longest_total_ms'):.2f}")
    print(f"| {w} | {cells[0]} | {cells[1]} |")
print("\n## Before / after: this tree against the baseline binary\n")
print("| workload | max pause | total pause | GC time | wall | peak RSS |")
print("|---|---|---|---|---|---|")
for w in W:
    print(f"| {w} | {fmt(ratio(w, 'full', 'base-full', 'max_pause_ns'))} | {fmt(ratio(w, 'full', 'base-full', 'total_pause_ns'))} | "
          f"{fmt(ratio(w, 'full', 'base-full', 'gc_ns'))} | {fmt(ratio(w, 'full', 'base-full', 'wall_ns'))} | "
          f"{fmt(ratio(w, 'full', 'base-full', 'peak_rss_bytes'))} |")
EOF
cat "$out"
