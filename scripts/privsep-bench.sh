#!/usr/bin/env bash
# privsep (Wedge on Dune) against fork and pthreads: the criterion bench
# privsep/benches/privsep.rs once per Dune mode (the mode is per process), modes
# interleaved, ROUNDS rounds; then bench-results/privsep.md's tables are printed from the
# criterion medians (median over rounds, with the range) to $OUT/privsep-table.md.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-target/privsep-bench}
ROUNDS=${ROUNDS:-2}
MODES=${MODES:-pvm ring3 pvm-ring0 ring0}
mkdir -p "$OUT"
: > "$OUT/medians.tsv"
cargo bench -p privsep --bench privsep --no-run
for round in $(seq "$ROUNDS"); do
    for mode in $MODES; do
        echo "== round $round, DUNEGC_DUNE_MODE=$mode (load: $(cut -d' ' -f1-3 /proc/loadavg))"
        rm -rf target/criterion/create_join target/criterion/recycled target/criterion/call target/criterion/server
        DUNEGC_DUNE_MODE=$mode timeout 900 cargo bench -p privsep --bench privsep \
            > "$OUT/privsep-$mode-$round.log" 2>&1 || echo "bench failed in $mode (see $OUT/privsep-$mode-$round.log)"
        grep -E "^privsep bench dune mode:" "$OUT/privsep-$mode-$round.log" || true
        python3 - "$mode" "$round" >> "$OUT/medians.tsv" <<'PY'
import glob, json, sys
mode, rnd = sys.argv[1], sys.argv[2]
for f in sorted(glob.glob("target/criterion/*/*/new/estimates.json")):
    parts = f.split("/")
    if parts[2] not in ("create_join", "recycled", "call", "server"):
        continue
    med = json.load(open(f))["median"]["point_estimate"]
    print(f"{mode}\t{rnd}\t{parts[2]}/{parts[3]}\t{med:.1f}")
PY
    done
done
python3 - "$OUT/medians.tsv" "$MODES" > "$OUT/privsep-table.md" <<'PY'
import collections, statistics, sys
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    mode, rnd, bench, ns = line.split("\t")
    rows[(mode, bench)].append(float(ns))
modes = sys.argv[2].split()
def fmt(ns):
    for unit, d in (("s", 1e9), ("ms", 1e6), ("us", 1e3)):
        if ns >= d:
            return f"{ns / d:.3g} {unit}"
    return f"{ns:.3g} ns"
def cell(mode, bench, ref):
    v = rows.get((mode, bench))
    if not v:
        return "-"
    m = statistics.median(v)
    s = f"{fmt(m)} ({fmt(min(v))}-{fmt(max(v))})"
    r = rows.get((mode, ref))
    if r:
        s += f", {m / statistics.median(r):.2f}x"
    return s
groups = [
    ("create_join", "create_join/fork_waitpid", ["sthread_own_thread", "sthread_calling_thread", "view_build_only", "fork_waitpid", "pthread_create_join"]),
    ("recycled", "create_join/fork_waitpid", ["round_trip"]),
    ("call", "call/pipe_round_trip_process", ["callgate_from_sthread", "callgate_from_host", "function_call", "pipe_round_trip_process"]),
    ("server", "server/fork_per_request", ["recycled_sthread_per_request", "new_sthread_per_request", "fork_per_request", "no_separation"]),
]
for g, ref, benches in groups:
    print(f"\n**{g}** (median of the rounds' criterion medians, range, ratio to `{ref}` in the same mode)\n")
    print("| work | " + " | ".join(modes) + " |")
    print("|---|" + "---|" * len(modes))
    for b in benches:
        print(f"| {b} | " + " | ".join(cell(m, f"{g}/{b}", ref) for m in modes) + " |")
PY
cat "$OUT/privsep-table.md"
