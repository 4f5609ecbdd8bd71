#!/usr/bin/env bash
# Heap footprint and growth policy (issue 18), one session, runs interleaved:
# for each repetition, each comparison workload at the demo scales runs under gc-core
# full collections as built on BASE_REV (default `main`: before this branch; built from
# `git archive` into a target directory of its own), this tree's gc-core full
# collections (default options, with DUNEGC_LEAN_GROWTH=1: lean growth, and with
# DUNEGC_FREE_SPACE_DIVISOR=6: a smaller budget), and bdwgc full. Writes medians and ratios (with the range of per-repetition
# ratios) to bench-results/heap-footprint.md and prints it.
#
#   REPS=3 scripts/heap-footprint.sh
set -euo pipefail
cd "$(dirname "$0")/.."
reps="${REPS:-3}"
out="${OUT:-bench-results/heap-footprint.md}"
base_rev="${BASE_REV:-main}"
# shellcheck source=scripts/lib/bench.sh
. scripts/lib/bench.sh
bench_build heap-footprint "$base_rev"
for rep in $(seq "$reps"); do
    for ws in "gcbench 16" "linkedlist 200" "hashmap 100" "xml 50"; do
        for config in base-full full full-lean full-d6 bdwgc-full; do
            # shellcheck disable=SC2086
            case "$config" in
                base-full) line="$("$bin/base-runner" $ws full | head -1)" ;;
                full) line="$("$bin/dunegc-runner" $ws full | head -1)" ;;
                full-lean) line="$(DUNEGC_LEAN_GROWTH=1 "$bin/dunegc-runner" $ws full | head -1)" ;;
                full-d6) line="$(DUNEGC_FREE_SPACE_DIVISOR=6 "$bin/dunegc-runner" $ws full | head -1)" ;;
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
C = ["base-full", "full", "full-lean", "full-d6", "bdwgc-full"]
print("# Heap footprint (issue 18): span reuse, page give-back, growth policy\n")
print(f"Regenerate: `REPS={reps} scripts/heap-footprint.sh` (this file is its output).\n")
print(session_line(started, reps, ncpu, lb, la, "absolute times are inflated and noisy"))
print(f"Binaries: this tree `{this_commit}`, baseline `{base_rev}` = `{base_commit}`.\n")
print("Configurations: `base-full` = the baseline's gc-core full collections; `full` = this "
      "tree's (free runs idle for 2 collections are given back with MADV_DONTNEED, runs "
      "reused lowest address first); `full-lean` = the same with `DUNEGC_LEAN_GROWTH=1` "
      "(fresh pages wait for a collection once 2 × live / divisor bytes were allocated "
      "since the last, bdwgc's rule; the budget still allows 6 × live / divisor in pages "
      "the heap has); `full-d6` = `full` with `DUNEGC_FREE_SPACE_DIVISOR=6` "
      "(budget between collections = live bytes, instead of 2 × live at the default 3); "
      "`bdwgc-full` = Debian's bdwgc 8.2.2, full collections. All with the default "
      "markers (2 = CPUs). Pause = stop-the-world collection time; `STW mark` = its "
      "roots + drain part (the rest of the pause is finalization, sweep and world stop).\n")
print("## Medians\n")
print("| workload | config | wall ms | GC ms | max pause ms | STW mark / total pause | peak RSS MiB | collections |")
print("|---|---|---|---|---|---|---|---|")
for w in W:
    for c in C:
        if (w, c) not in runs:
            continue
        r0 = next(iter(runs[(w, c)].values()))
        share = (f"{statistics.median(float(r['mark_ns']) / max(1.0, float(r['total_pause_ns'])) for r in runs[(w, c)].values()):.0%}"
                 if "total_pause_ns" in r0 else "–")
        print(f"| {w} | {c} | {med(w, c, 'wall_ns') / 1e6:.0f} | {med(w, c, 'gc_ns') / 1e6:.1f} | "
              f"{med(w, c, 'max_pause_ns') / 1e6:.2f} | {share} | {med(w, c, 'peak_rss_bytes') / 2**20:.1f} | "
              f"{med(w, c, 'collections'):.0f} |")
for c in ["full", "full-lean", "full-d6", "base-full"]:
    print(f"\n## {c} against bdwgc full (ratio of medians, range of per-repetition ratios; targets: pause ≤ 1.0, RSS ≤ 1.0, wall geomean ≤ 0.85)\n")
    print("| workload | GC time | max pause | peak RSS | wall |")
    print("|---|---|---|---|---|")
    walls, rss = [], []
    for w in W:
        wr = ratio(w, c, "bdwgc-full", "wall_ns")
        rr = ratio(w, c, "bdwgc-full", "peak_rss_bytes")
        walls.append(wr[0]); rss.append(rr[0])
        print(f"| {w} | {fmt(ratio(w, c, 'bdwgc-full', 'gc_ns'))} | {fmt(ratio(w, c, 'bdwgc-full', 'max_pause_ns'))} | "
              f"{fmt(rr)} | {fmt(wr)} |")
    print(f"\nGeomean: wall **{geo(walls):.2f}×**, peak RSS **{geo(rss):.2f}×**.")
print("\n## Before / after: this tree against the baseline binary\n")
print("| workload | wall full / base | GC time full / base | max pause full / base | peak RSS full / base | peak RSS full-d6 / base | wall full-d6 / base |")
print("|---|---|---|---|---|---|---|")
for w in W:
    print(f"| {w} | {fmt(ratio(w, 'full', 'base-full', 'wall_ns'))} | {fmt(ratio(w, 'full', 'base-full', 'gc_ns'))} | "
          f"{fmt(ratio(w, 'full', 'base-full', 'max_pause_ns'))} | {fmt(ratio(w, 'full', 'base-full', 'peak_rss_bytes'))} | "
          f"{fmt(ratio(w, 'full-d6', 'base-full', 'peak_rss_bytes'))} | {fmt(ratio(w, 'full-d6', 'base-full', 'wall_ns'))} |")
EOF
cat "$out"
