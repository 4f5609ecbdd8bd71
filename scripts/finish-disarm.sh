#!/usr/bin/env bash
# The uffd tracker's disarm moved out of the incremental finish, and the pre-clean's
# re-arm reduced to the pages written (issue 18): one session,
# runs interleaved. For each repetition, each comparison workload at the demo scales runs
# under gc-core incremental-uffd as it is on BASE_REV (default `main`: the disarm inside
# the pause) and in this tree (the disarm after the world resumes), and under bdwgc
# incremental. Writes medians with ranges, ratios and this tree's longest incremental pause
# (DUNEGC_PAUSE_BREAKDOWN) to bench-results/finish-disarm.md (and prints it).
#
#   REPS=5 scripts/finish-disarm.sh
set -euo pipefail
cd "$(dirname "$0")/.."
reps="${REPS:-5}"
out="${OUT:-bench-results/finish-disarm.md}"
base_rev="${BASE_REV:-main}"
# shellcheck source=scripts/lib/bench.sh
. scripts/lib/bench.sh
bench_build finish-disarm "$base_rev"
for rep in $(seq "$reps"); do
    for ws in "gcbench 16" "linkedlist 200" "hashmap 100" "xml 50"; do
        for config in base-inc inc bdwgc-inc; do
            err="$bin/err"
            # shellcheck disable=SC2086
            case "$config" in
                base-inc) line="$(DUNEGC_PAUSE_BREAKDOWN=1 "$bin/base-runner" $ws incremental-uffd 2>"$err" | head -1)" ;;
                inc) line="$(DUNEGC_PAUSE_BREAKDOWN=1 "$bin/dunegc-runner" $ws incremental-uffd 2>"$err" | head -1)" ;;
                bdwgc-inc) line="$("$bin/bdwgc-runner" $ws incremental 2>"$err" | head -1)" ;;
            esac
            bench_record "$rep" "$ws" "$config" "$line" "$err"
            bench_pause "$rep" "$ws" "$config" "$err" incremental
        done
    done
done
touch "$bin/pauses"
load_after="$(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$raw" "$bin/pauses" "$reps" "$started" "$load_before" "$load_after" "$(nproc)" "$base_rev" "$base_commit" "$this_commit" >"$out" <<'EOF'
import sys
sys.path.insert(0, "scripts/lib")
from benchlib import W, fmt, load_breakdown, load_runs, make_stats, session_line
raw, pauses, reps, started, lb, la, ncpu, base_rev, base_commit, this_commit = sys.argv[1:]
runs = load_runs(raw)
med, rng, ratio = make_stats(runs)
breakdown = load_breakdown(pauses)
print("# Shorter uffd stops: the disarm after the finish, the pre-clean's re-arm in one step (issue 18): before vs after, and vs bdwgc\n")
print(f"Regenerate: `REPS={reps} scripts/finish-disarm.sh` (this file is its output).\n")
print(session_line(started, reps, ncpu, lb, la, "absolute times are inflated and noisy"))
print(f"Binaries: this tree `{this_commit}`, baseline `{base_rev}` = `{base_commit}`. "
      "Configurations: `inc` = gc-core incremental on the uffd tracker (the defaults: "
      "concurrent marking on the marker threads, one pre-clean); `base-inc` = the same with "
      "the baseline binary; `bdwgc-inc` = Debian's bdwgc 8.2.2 incremental. Pre-cleaning "
      "stops count as pauses.\n")
print("What changed: at the finish the tracker used to read the dirty pages "
      "(`PAGEMAP_SCAN`, read-only) and then `UFFDIO_UNREGISTER` the heap inside the pause. "
      "Timed inside the tracker (temporary instrumentation, not kept) on GCBench 16, the scan took ~50 µs and the unregister "
      "0.8–2 ms (it walks the page tables under the mmap write lock to drop the write "
      "protection). Now the finish only reads; the unregister runs right after the world "
      "resumes (GC time, not pause; with `UFFD_FEATURE_WP_ASYNC` the kernel resolves a "
      "write to a still-protected page by itself). The pre-cleaning stop (concurrent cycles "
      "take the pages written so far and re-arm) took up to 6 ms on GCBench, nearly all in "
      "the re-arm: unregister, register and write-protect the whole heap. It now collects "
      "and re-arms in one step (`DirtyTracker::collect_and_grow`): `PAGEMAP_SCAN` with "
      "`PM_SCAN_WP_MATCHING` re-protects only the pages written, and pages the heap grew by "
      "since the arm are registered and protected on their own.\n")
print("## Medians (min–max over repetitions)\n")
print("| workload | config | wall ms | GC ms | max pause ms |")
print("|---|---|---|---|---|")
for w in W:
    for c in ["base-inc", "inc", "bdwgc-inc"]:
        lo, hi = rng(w, c, "max_pause_ns")
        print(f"| {w} | {c} | {med(w, c, 'wall_ns') / 1e6:.0f} | {med(w, c, 'gc_ns') / 1e6:.1f} | "
              f"{med(w, c, 'max_pause_ns') / 1e6:.2f} ({lo / 1e6:.2f}–{hi / 1e6:.2f}) |")
print("\n## Ratios (of medians; range of per-repetition ratios)\n")
print("Target (issue 18): incremental max pause ≤ 0.5× bdwgc incremental.\n")
print("| workload | max pause inc / base-inc | max pause inc / bdwgc-inc | max pause base-inc / bdwgc-inc | GC time inc / base-inc | wall inc / base-inc |")
print("|---|---|---|---|---|---|")
for w in W:
    print(f"| {w} | {fmt(ratio(w, 'inc', 'base-inc', 'max_pause_ns'))} | "
          f"{fmt(ratio(w, 'inc', 'bdwgc-inc', 'max_pause_ns'))} | "
          f"{fmt(ratio(w, 'base-inc', 'bdwgc-inc', 'max_pause_ns'))} | "
          f"{fmt(ratio(w, 'inc', 'base-inc', 'gc_ns'))} | {fmt(ratio(w, 'inc', 'base-inc', 'wall_ns'))} |")
print("\n## The longest finishing pause (repetition with the median max pause)\n")
print("From `DUNEGC_PAUSE_BREAKDOWN`. *dirty/clear*: taking the dirty set (and, before, the "
      "unregister) and queueing the marked objects on dirty pages.\n")
print("| workload | config | longest incremental pause |")
print("|---|---|---|")
for w in W:
    for c in ["base-inc", "inc"]:
        reps_ = sorted(runs[(w, c)], key=lambda r: float(runs[(w, c)][r]["max_pause_ns"]))
        r = reps_[len(reps_) // 2]
        print(f"| {w} | {c} | {breakdown[(w, c)].get(r, '–')} |")
print("\n## Reading it\n")
print("- A pause here is the time the world is stopped, as everywhere in dunegc's figures. "
      "The finish's deferred unregister still runs on the thread that collected, with the "
      "heap lock held, before its allocation returns (like the lazy sweep's tail): it is "
      "GC time, and in these single-mutator workloads that thread waits for it. Other "
      "threads run meanwhile, except that a page fault of theirs waits for the mmap lock "
      "the unregister holds.")
print("- bdwgc's pause is measured from its collection events on the mutator thread; "
      "compare wall and GC times as well.")
EOF
cat "$out"
