#!/usr/bin/env bash
# Parallel marking (issue 18), one session, runs interleaved: for each repetition, each
# comparison workload at the demo scales runs under gc-core full with 1, 2 and 4 markers
# (DUNEGC_MARKERS), gc-core incremental (uffd) with 1 and 2 markers, the same two
# configurations with gc-core as it is on BASE_REV (default `main`: before this branch;
# built from `git archive` into a temporary directory), and bdwgc full and incremental.
# Writes the
# medians, the dunegc/bdwgc ratios with the range of the per-repetition ratios, and the
# markers scaling table of the stop-the-world mark phase to bench-results/parallel-marking.md
# (and prints it).
#
#   REPS=5 scripts/parallel-marking.sh
set -euo pipefail
cd "$(dirname "$0")/.."
reps="${REPS:-5}"
out="${OUT:-bench-results/parallel-marking.md}"
base_rev="${BASE_REV:-main}"
# shellcheck source=scripts/lib/bench.sh
. scripts/lib/bench.sh
bench_build parallel-marking "$base_rev"
for rep in $(seq "$reps"); do
    for ws in "gcbench 16" "linkedlist 200" "hashmap 100" "xml 50"; do
        for config in base-full full-1 full-2 full-4 base-inc inc-1 inc-2 bdwgc-full bdwgc-inc; do
            # shellcheck disable=SC2086
            case "$config" in
                full-*) line="$(DUNEGC_MARKERS="${config#full-}" "$bin/dunegc-runner" $ws full | head -1)" ;;
                inc-*) line="$(DUNEGC_MARKERS="${config#inc-}" "$bin/dunegc-runner" $ws incremental-uffd | head -1)" ;;
                base-full) line="$("$bin/base-runner" $ws full | head -1)" ;;
                base-inc) line="$("$bin/base-runner" $ws incremental-uffd | head -1)" ;;
                bdwgc-full) line="$("$bin/bdwgc-runner" $ws full | head -1)" ;;
                bdwgc-inc) line="$("$bin/bdwgc-runner" $ws incremental | head -1)" ;;
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
print("# Parallel marking (issue 18): dunegc vs bdwgc, markers 1/2/4\n")
print(f"Regenerate: `REPS={reps} scripts/parallel-marking.sh` (this file is its output).\n")
print(session_line(started, reps, ncpu, lb, la, "more marker threads than free CPUs cannot speed marking up, and absolute times are inflated"))
print(f"Binaries: this tree `{this_commit}`, baseline `{base_rev}` = `{base_commit}`.\n")
print("Configurations: `full-N` = gc-core full collections with `DUNEGC_MARKERS=N` "
      "(`full-1` marks sequentially, with this tree's allocation fast path); `inc-N` = "
      "gc-core incremental on the uffd tracker; `base-full` / `base-inc` = the baseline "
      "binary, full / incremental-uffd; `bdwgc-full` / `bdwgc-inc` = Debian's bdwgc "
      "8.2.2 (its runner reports `GC_get_parallel() = 0` here: it marks on one thread).\n")
print("## Medians\n")
print("| workload | config | wall ms | GC ms | max pause ms | STW mark ms | peak RSS MiB |")
print("|---|---|---|---|---|---|---|")
for w in W:
    for c in ["base-full", "full-1", "full-2", "full-4", "base-inc", "inc-1", "inc-2", "bdwgc-full", "bdwgc-inc"]:
        if (w, c) not in runs:
            continue
        mark = f"{med(w, c, 'mark_ns') / 1e6:.1f}" if "mark_ns" in next(iter(runs[(w, c)].values())) else "–"
        print(f"| {w} | {c} | {med(w, c, 'wall_ns') / 1e6:.0f} | {med(w, c, 'gc_ns') / 1e6:.1f} | "
              f"{med(w, c, 'max_pause_ns') / 1e6:.2f} | {mark} | {med(w, c, 'peak_rss_bytes') / 2**20:.1f} |")
print("\n## Against the targets (ratio of medians, range of per-repetition ratios)\n")
print("`full-2` is the default on this machine (markers = CPUs = 2).\n")
print("| workload | GC time full-2 / bdwgc-full (≤ 0.8) | max pause full-2 / bdwgc-full (≤ 1.0) | "
      "max pause inc-2 / bdwgc-inc (≤ 0.5) | peak RSS full-2 / bdwgc-full (≤ 1.0) | wall full-2 / bdwgc-full |")
print("|---|---|---|---|---|---|")
walls = []
for w in W:
    wr = ratio(w, "full-2", "bdwgc-full", "wall_ns")
    walls.append(wr[0])
    print(f"| {w} | {fmt(ratio(w, 'full-2', 'bdwgc-full', 'gc_ns'))} | "
          f"{fmt(ratio(w, 'full-2', 'bdwgc-full', 'max_pause_ns'))} | "
          f"{fmt(ratio(w, 'inc-2', 'bdwgc-inc', 'max_pause_ns'))} | "
          f"{fmt(ratio(w, 'full-2', 'bdwgc-full', 'peak_rss_bytes'))} | {fmt(wr)} |")
g = geo(walls)
print(f"\nWall time full-2 / bdwgc-full, geomean over the four workloads: **{g:.2f}×** (target ≤ 0.85).\n")
print("## Before / after: this tree (default 2 markers) against the baseline binary\n")
print("| workload | wall full-2 / base-full | GC time full-2 / base-full | max pause full-2 / base-full | wall full-1 / base-full (allocation path alone) | max pause inc-2 / base-inc | GC time inc-2 / base-inc |")
print("|---|---|---|---|---|---|---|")
for w in W:
    print(f"| {w} | {fmt(ratio(w, 'full-2', 'base-full', 'wall_ns'))} | {fmt(ratio(w, 'full-2', 'base-full', 'gc_ns'))} | "
          f"{fmt(ratio(w, 'full-2', 'base-full', 'max_pause_ns'))} | {fmt(ratio(w, 'full-1', 'base-full', 'wall_ns'))} | "
          f"{fmt(ratio(w, 'inc-2', 'base-inc', 'max_pause_ns'))} | {fmt(ratio(w, 'inc-2', 'base-inc', 'gc_ns'))} |")
print("\n## Markers scaling: stop-the-world mark phase (roots + drain), full collections\n")
print(f"Speed-up = mark time with 1 marker / with N (ratio of medians, per-repetition range). "
      f"This machine has {ncpu} CPUs: 4 markers exceed them.\n")
print("| workload | 1 marker ms | 2 markers ms | 4 markers ms | speed-up 2 | speed-up 4 |")
print("|---|---|---|---|---|---|")
for w in ["gcbench", "hashmap"]:
    s2 = ratio(w, "full-1", "full-2", "mark_ns")
    s4 = ratio(w, "full-1", "full-4", "mark_ns")
    print(f"| {w} | {med(w, 'full-1', 'mark_ns') / 1e6:.1f} | {med(w, 'full-2', 'mark_ns') / 1e6:.1f} | "
          f"{med(w, 'full-4', 'mark_ns') / 1e6:.1f} | {fmt(s2)} | {fmt(s4)} |")
EOF
cat "$out"
