#!/usr/bin/env bash
# Regenerate bench-results/: the full comparison (every workload, every configuration,
# 5 repetitions each) written as bench-results/<date>-<machine>.md plus SVG plots.
# A few minutes on 2 cores. Extra arguments go to `dunegc-report report`
# (e.g. --reps 3, --out DIR, --intro FILE).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release -p dunegc-benches --bins
# Run private copies of the three binaries: the report spawns the runners next to
# itself, and a concurrent `cargo build` must not swap them mid-run.
target="$(cargo metadata --format-version 1 --no-deps | grep -o '"target_directory":"[^"]*"' | cut -d'"' -f4)"
bin="$(mktemp -d -t dunegc-report.XXXXXX)"
trap 'rm -rf "$bin"' EXIT
cp "$target/release/dunegc-report" "$target/release/dunegc-runner" "$target/release/bdwgc-runner" "$bin/"
"$bin/dunegc-report" report --out bench-results "$@"
