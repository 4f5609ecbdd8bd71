#!/usr/bin/env bash
# The Dune microbenchmarks and GCBench (incremental, Dune backend) in every Dune mode on this
# machine, one process per mode (the mode is per process): pvm, pvm-ring0, ring3, ring0.
# Output: raw criterion logs and runner lines under $OUT (default target/bench-modes);
# bench-results/pvm-modes.md holds the summarised figures.
# Ring-0 is emulated instruction by instruction on PVM hosts: its GCBench scale is reduced
# (RING0_GCBENCH_SCALE, default 8) and bounded by a timeout.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-target/bench-modes}
SCALE=${GCBENCH_SCALE:-16}
RING0_SCALE=${RING0_GCBENCH_SCALE:-8}
REPS=${REPS:-3}
FILTER='compute_lcg|getpid|read_4k|tlb_flush_request|page_fault|dirty_collect|dirty_first_write|mmap_touch|signal_round_trip|thread_spawn|tlb_strategy_(range|all)_(1|256)_pages'
mkdir -p "$OUT"
cargo build --release -p dunegc-benches --bin dunegc-runner
for mode in ${MODES:-pvm pvm-ring0 ring3 ring0}; do
    echo "== $mode: criterion (benches/benches/dune.rs)"
    DUNEGC_DUNE_MODE=$mode cargo bench -p dunegc-benches --bench dune -- "$FILTER" \
        > "$OUT/dune-$mode.log" 2>&1 || echo "bench failed in $mode (see $OUT/dune-$mode.log)"
    grep -E "^dune mode:" "$OUT/dune-$mode.log" || true
    scales="$SCALE $RING0_SCALE"
    [ "$mode" = ring0 ] && scales=$RING0_SCALE
    echo "== $mode: GCBench scales $scales, incremental, Dune backend, $REPS runs each"
    for s in $scales; do
        for _ in $(seq "$REPS"); do
            DUNEGC_DUNE_MODE=$mode timeout 900 target/release/dunegc-runner gcbench "$s" incremental-dune \
                2>&1 | grep -E "^dunegc-" | sed "s/^/mode=$mode /" | tee -a "$OUT/gcbench.log" || true
        done
    done
done
