#!/usr/bin/env bash
# Mostly-concurrent incremental marking and pauses (issue 18), one session, runs
# interleaved: for each repetition, each comparison workload at the demo scales runs under
# gc-core full and incremental (uffd and mprotect trackers, concurrent marking on the
# marker threads: the default; and uffd with DUNEGC_CONCURRENT_MARKING=0, mark steps on
# the allocating thread), the same full / incremental-uffd configurations with gc-core as
# it is on BASE_REV (default `main`: before this branch; built from `git archive` into a
# target directory of its own), and bdwgc full and incremental. Writes medians with
# ranges, ratios and what this tree's longest pauses consisted of
# (DUNEGC_PAUSE_BREAKDOWN) to bench-results/concurrent-marking.md (and prints it).
#
#   REPS=5 scripts/concurrent-marking.sh
set -euo pipefail
cd "$(dirname "$0")/.."
reps="${REPS:-5}"
out="${OUT:-bench-results/concurrent-marking.md}"
base_rev="${BASE_REV:-main}"
# shellcheck source=scripts/lib/bench.sh
. scripts/lib/bench.sh
bench_build concurrent-marking "$base_rev"
for rep in $(seq "$reps"); do
    for ws in "gcbench 16" "linkedlist 200" "hashmap 100" "xml 50"; do
        for config in base-full full base-inc inc inc-mprotect inc-steps bdwgc-full bdwgc-inc; do
            err="$bin/err"
            # shellcheck disable=SC2086
            case "$config" in
                full) line="$(DUNEGC_PAUSE_BREAKDOWN=1 "$bin/dunegc-runner" $ws full 2>"$err" | head -1)" ;;
                inc) line="$(DUNEGC_PAUSE_BREAKDOWN=1 "$bin/dunegc-runner" $ws incremental-uffd 2>"$err" | head -1)" ;;
                inc-mprotect) line="$(DUNEGC_PAUSE_BREAKDOWN=1 "$bin/dunegc-runner" $ws incremental-mprotect 2>"$err" | head -1)" ;;
                inc-steps) line="$(DUNEGC_CONCURRENT_MARKING=0 DUNEGC_PAUSE_BREAKDOWN=1 "$bin/dunegc-runner" $ws incremental-uffd 2>"$err" | head -1)" ;;
                base-full) line="$("$bin/base-runner" $ws full 2>"$err" | head -1)" ;;
                base-inc) line="$("$bin/base-runner" $ws incremental-uffd 2>"$err" | head -1)" ;;
                bdwgc-full) line="$("$bin/bdwgc-runner" $ws full 2>"$err" | head -1)" ;;
                bdwgc-inc) line="$("$bin/bdwgc-runner" $ws incremental 2>"$err" | head -1)" ;;
            esac
            bench_record "$rep" "$ws" "$config" "$line" "$err"
            bench_pause "$rep" "$ws" "$config" "$err" longest
        done
    done
done
touch "$bin/pauses"
load_after="$(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$raw" "$bin/pauses" "$reps" "$started" "$load_before" "$load_after" "$(nproc)" "$base_rev" "$base_commit" "$this_commit" >"$out" <<'EOF'
import statistics, sys
sys.path.insert(0, "scripts/lib")
from benchlib import W, fmt, geo, load_breakdown, load_runs, make_stats
raw, pauses, reps, started, lb, la, ncpu, base_rev, base_commit, this_commit = sys.argv[1:]
runs = load_runs(raw)
med, rng, ratio = make_stats(runs)
breakdown = load_breakdown(pauses)
C = ["base-full", "full", "base-inc", "inc", "inc-mprotect", "inc-steps", "bdwgc-full", "bdwgc-inc"]
print("# Mostly-concurrent incremental marking and pauses (issue 18): dunegc vs bdwgc, before vs after\n")
print(f"Regenerate: `REPS={reps} scripts/concurrent-marking.sh` (this file is its output).\n")
print(f"Session {started}, {reps} interleaved repetitions; machine: {ncpu} CPUs, load average "
      f"{lb} before and {la} after. **The machine was shared with other helpers' builds and "
      "tests**: absolute times are inflated and noisy; ratios come from runs interleaved in "
      "one session.\n")
print(f"Binaries: this tree `{this_commit}`, baseline `{base_rev}` = `{base_commit}` (before "
      "this branch: incremental mark steps on the allocating thread only, objects allocated "
      "white, no pre-clean).\n")
print("Configurations: `full` = gc-core full collections (markers = CPUs = 2); `inc` = "
      "gc-core incremental on uffd, marking concurrently on the marker threads, allocating "
      "black, one pre-cleaning round (the defaults); `inc-mprotect` = the same on the mprotect "
      "tracker (bdwgc's incremental mode also write-protects with mprotect); `inc-steps` = "
      "`inc` with `DUNEGC_CONCURRENT_MARKING=0` (mark steps on the allocating thread, "
      "allocate black); `base-*` = the baseline binary; `bdwgc-*` = Debian's bdwgc 8.2.2. "
      "Pre-cleaning stops count as pauses. bdwgc's incremental GC time misses its mark "
      "steps (a lower bound).\n")
print("## Medians (min–max over repetitions)\n")
print("| workload | config | wall ms | GC ms | max pause ms | pauses |")
print("|---|---|---|---|---|---|")
for w in W:
    for c in C:
        if (w, c) not in runs:
            continue
        lo, hi = rng(w, c, "max_pause_ns")
        n = f"{med(w, c, 'n_pauses'):.0f}" if "n_pauses" in next(iter(runs[(w, c)].values())) else "–"
        print(f"| {w} | {c} | {med(w, c, 'wall_ns') / 1e6:.0f} | {med(w, c, 'gc_ns') / 1e6:.1f} | "
              f"{med(w, c, 'max_pause_ns') / 1e6:.2f} ({lo / 1e6:.2f}–{hi / 1e6:.2f}) | {n} |")
print("\n## Against bdwgc (ratio of medians, range of per-repetition ratios)\n")
print("Targets: max pause ≤ 1.0× bdwgc full; incremental max pause ≤ 0.5× bdwgc incremental.\n")
print("| workload | max pause full / bdwgc-full | max pause inc / bdwgc-inc | max pause inc-mprotect / bdwgc-inc | GC time full / bdwgc-full | wall full / bdwgc-full | wall inc / bdwgc-inc |")
print("|---|---|---|---|---|---|---|")
for w in W:
    print(f"| {w} | {fmt(ratio(w, 'full', 'bdwgc-full', 'max_pause_ns'))} | "
          f"{fmt(ratio(w, 'inc', 'bdwgc-inc', 'max_pause_ns'))} | "
          f"{fmt(ratio(w, 'inc-mprotect', 'bdwgc-inc', 'max_pause_ns'))} | "
          f"{fmt(ratio(w, 'full', 'bdwgc-full', 'gc_ns'))} | "
          f"{fmt(ratio(w, 'full', 'bdwgc-full', 'wall_ns'))} | {fmt(ratio(w, 'inc', 'bdwgc-inc', 'wall_ns'))} |")
print("\n## Before / after (this tree against the baseline binary)\n")
print("| workload | max pause inc / base-inc | GC time inc / base-inc | wall inc / base-inc | max pause full / base-full | GC time full / base-full | wall full / base-full |")
print("|---|---|---|---|---|---|---|")
for w in W:
    print(f"| {w} | {fmt(ratio(w, 'inc', 'base-inc', 'max_pause_ns'))} | {fmt(ratio(w, 'inc', 'base-inc', 'gc_ns'))} | "
          f"{fmt(ratio(w, 'inc', 'base-inc', 'wall_ns'))} | {fmt(ratio(w, 'full', 'base-full', 'max_pause_ns'))} | "
          f"{fmt(ratio(w, 'full', 'base-full', 'gc_ns'))} | {fmt(ratio(w, 'full', 'base-full', 'wall_ns'))} |")
print("\n## What the longest pause consisted of (this tree)\n")
print("From `DUNEGC_PAUSE_BREAKDOWN` (gc-core's `GcStats::longest_pause`), for the repetition "
      "with the median max pause. *dirty/clear*: taking the dirty set and queueing the marked "
      "objects on dirty pages (incremental finish) or clearing mark bits (full); *roots*: "
      "stacks, registers, static data, claimed slots; *drain*: the parallel transitive closure "
      "(for a finish: rescanning dirty pages and whatever was still unmarked).\n")
print("| workload | config | longest pause |")
print("|---|---|---|")
for w in W:
    for c in ["full", "inc", "inc-mprotect", "inc-steps"]:
        reps_ = sorted(runs[(w, c)], key=lambda r: float(runs[(w, c)][r]["max_pause_ns"]))
        r = reps_[len(reps_) // 2]
        print(f"| {w} | {c} | {breakdown[(w, c)].get(r, '–')} |")
print("\n## Reading it\n")
print("- A full collection's longest pause is its drain (the transitive closure) on every "
      "workload: stopping and restarting the world, roots, finalization and sweeping are "
      "each a millisecond or less. LinkedList's lists are chains, which no number of markers "
      "can trace in parallel; a `perf` profile of its full collections puts about a quarter "
      "of the marker's time on the atomic mark-bit OR (`lock bts`) that parallel marking "
      "needs, and with `DUNEGC_MARKERS=1` (plain stores) the pause is still about twice "
      "bdwgc's, so the per-object cost of the mark loop (object lookup, push, pop) is the rest.")
print("- An incremental finish no longer traces what the program built during the cycle: "
      "objects are allocated black and the pages written before the pre-clean are rescanned "
      "by the markers while the program runs. What is left in the finish is *dirty/clear* "
      "(taking the dirty set and queueing marked objects on pages written, or added, since "
      "the pre-clean) and the drain of those.")
EOF
cat "$out"
