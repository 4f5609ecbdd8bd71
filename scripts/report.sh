#!/usr/bin/env bash
# Regenerate bench-results/: the full comparison (every workload, every configuration,
# 5 repetitions each) written as bench-results/<date>-<machine>.md plus SVG plots.
# A few minutes on 2 cores. Extra arguments go to `dunegc-report report`
# (e.g. --reps 3, --out DIR, --intro FILE).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release -p dunegc-benches --bins
exec cargo run --release -q -p dunegc-benches --bin dunegc-report -- report --out bench-results "$@"
