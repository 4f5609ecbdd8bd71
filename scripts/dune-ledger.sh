#!/usr/bin/env bash
# The Dune cost ledger and its reconciliation with wall time (issue 15), one session, runs
# interleaved: each repetition runs `dunegc-runner calibrate` (the unit costs of the
# estimates), then every workload under full, dune-full, incremental-mprotect and
# incremental-dune; `dunegc-ledger` turns the lines into the markdown tables of
# bench-results/dune-ledger.md, and scripts/dune-projection.py the bare-metal projection.
# Raw lines are kept in $RAW (default: a temp file, removed).
#
#   REPS=3 WORKLOADS="gcbench:16 linkedlist:200 hashmap:100 xml:50" scripts/dune-ledger.sh
set -euo pipefail
cd "$(dirname "$0")/.."
reps="${REPS:-3}"
workloads="${WORKLOADS:-gcbench:16 linkedlist:200 hashmap:100 xml:50}"
cargo build --release -p dunegc-benches --bin dunegc-runner --bin dunegc-ledger >&2
target="$(cargo metadata --format-version 1 --no-deps | grep -o '"target_directory":"[^"]*"' | cut -d'"' -f4)"
# private copies: a concurrent build must not swap the binaries mid-run
bin="$(mktemp -d -t dune-ledger.XXXXXX)"
cp "$target/release/dunegc-runner" "$target/release/dunegc-ledger" "$bin/"
raw="${RAW:-$bin/raw.txt}"
trap 'rm -rf "$bin"' EXIT
: >"$raw"
# the ledger's host counters (KVM tracepoints per vCPU thread) need tracefs; without it
# (or without root) the runs say so and the report falls back to estimates
if [ ! -d /sys/kernel/tracing/events ] && [ ! -d /sys/kernel/debug/tracing/events ] && [ "$(id -u)" = 0 ]; then
    mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null || echo "tracefs could not be mounted: host counters off" >&2
fi
for rep in $(seq "$reps"); do
    line="$("$bin/dunegc-runner" calibrate)"
    case "$line" in dunegc-calibration*) ;; *) echo "calibration failed: $line" >&2; exit 1 ;; esac
    echo "rep=$rep $line" >>"$raw"
    for ws in $workloads; do
        for config in full dune-full incremental-mprotect incremental-dune; do
            line="$("$bin/dunegc-runner" "${ws%%:*}" "${ws#*:}" "$config" | head -1)"
            case "$line" in dunegc-result*) ;; *) echo "failed: $ws $config: $line" >&2; exit 1 ;; esac
            echo "rep=$rep $line" >>"$raw"
        done
    done
    echo "repetition $rep done ($(date -u +%H:%M:%S), load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
done
"$bin/dunegc-ledger" <"$raw"
echo "## Bare-metal projection (scripts/dune-projection.py)"
echo
python3 scripts/dune-projection.py "$raw"
echo
echo "## Targets on this host (scripts/dune-targets.py)"
echo
python3 scripts/dune-targets.py "$raw"
