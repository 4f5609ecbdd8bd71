#!/usr/bin/env bash
# Side-by-side benchmarks of two commits (issue 16: dune-hw's layer refactor must not change
# speed): the Dune microbenchmarks of bench-results/pvm-modes.md (benches/benches/dune.rs,
# the same filter as scripts/bench-modes.sh), the Dune paper microbenchmarks
# (benches/benches/dune_paper.rs) and GCBench (incremental, Dune backend), in each Dune mode,
# run interleaved A B, B A, A B ... (REPS rounds) so that load from other work hits both alike.
# Output: raw logs under $OUT, and $OUT/summary.md (medians, ranges, B/A ratios) made by
# scripts/bench-layers-report.py; bench-results/layers-refactor.md quotes it.
#
#   bash scripts/bench-layers.sh [A-commit [B-commit]]     (defaults: f0f2eb5, HEAD)
#
# Env: MODES (default "pvm pvm-ring0 ring3"; ring0 is emulated, ~2,500x slower here),
# REPS (3), OUT (target/bench-layers), BIN_A / BIN_B (directories that already hold
# dunegc-runner, dune and dune_paper: skips the builds).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
A=${1:-f0f2eb5}
B=${2:-HEAD}
OUT=${OUT:-$ROOT/target/bench-layers}
MODES=${MODES:-pvm pvm-ring0 ring3}
REPS=${REPS:-3}
FILTER='compute_lcg|getpid|read_4k|tlb_flush_request|page_fault|dirty_collect|dirty_first_write|mmap_touch|signal_round_trip|thread_spawn|tlb_strategy_(range|all)_(1|256)_pages'
mkdir -p "$OUT"

# build LABEL COMMIT: release binaries of COMMIT into $OUT/bin-LABEL (one shared target dir,
# so the dependencies are built once)
build() {
    local label=$1 commit=$2 wt=$OUT/wt-$1 bin=$OUT/bin-$1
    rm -rf "$wt"
    git worktree prune
    git worktree add --detach "$wt" "$commit" >/dev/null
    mkdir -p "$bin"
    (
        cd "$wt"
        export CARGO_TARGET_DIR=$OUT/target
        cargo build --release -p dunegc-benches --bin dunegc-runner
        cp "$CARGO_TARGET_DIR/release/dunegc-runner" "$bin/"
        for b in dune dune_paper; do
            exe=$(cargo bench -p dunegc-benches --bench "$b" --no-run --message-format=json |
                python3 -c 'import sys, json
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == sys.argv[1]:
        print(m["executable"])' "$b" | tail -1)
            cp "$exe" "$bin/$b"
        done
    )
    git worktree remove --force "$wt"
    echo "$label = $(git rev-parse --short "$commit")" >>"$OUT/commits.txt"
}

rm -f "$OUT/commits.txt"
if [ -z "${BIN_A:-}" ]; then build a "$A"; BIN_A=$OUT/bin-a; else echo "a = $A (prebuilt $BIN_A)" >>"$OUT/commits.txt"; fi
if [ -z "${BIN_B:-}" ]; then build b "$B"; BIN_B=$OUT/bin-b; else echo "b = $B (prebuilt $BIN_B)" >>"$OUT/commits.txt"; fi

run() { # run LABEL BIN MODE REP
    local label=$1 bin=$2 mode=$3 rep=$4 tag=$1-$3-$4
    export DUNEGC_DUNE_MODE=$mode CRITERION_HOME=$OUT/criterion-$1
    "$bin/dune" --bench "$FILTER" >"$OUT/dune-$tag.log" 2>&1 || echo "dune bench failed: $tag"
    "$bin/dune_paper" --bench >"$OUT/paper-$tag.log" 2>&1 || echo "dune_paper bench failed: $tag"
    for s in 12 16; do
        timeout 900 "$bin/dunegc-runner" gcbench "$s" incremental-dune 2>&1 |
            grep -E "^dunegc-" | sed "s/^/label=$label mode=$mode rep=$rep scale=$s /" >>"$OUT/gcbench.log" || true
    done
}

rm -f "$OUT/gcbench.log"
date -u +"start %F %T UTC" >"$OUT/when.txt"
for rep in $(seq "$REPS"); do
    for mode in $MODES; do
        # odd rounds a then b, even rounds b then a: neither always goes first
        order="a b"
        [ $((rep % 2)) -eq 0 ] && order="b a"
        echo "== round $rep, $mode: $order ($(date -u +%T), load $(cut -d' ' -f1-3 /proc/loadavg))"
        for l in $order; do
            if [ "$l" = a ]; then run a "$BIN_A" "$mode" "$rep"; else run b "$BIN_B" "$mode" "$rep"; fi
        done
    done
done
date -u +"end %F %T UTC" >>"$OUT/when.txt"
python3 scripts/bench-layers-report.py "$OUT" >"$OUT/summary.md"
cat "$OUT/summary.md"
