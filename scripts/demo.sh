#!/usr/bin/env bash
# The main job, short version: set up, build, and run every comparison workload under
# every configuration (malloc, gc-core full, gc-core incremental with each dirty
# tracker, bdwgc full and incremental); prints the table. About a minute on 2 cores.
# Extra arguments go to `dunegc-report demo` (e.g. --out DIR to also write files).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# All binaries: the report runs each configuration in a sibling runner binary.
cargo build --release -p dunegc-benches --bins
# Run private copies of the three binaries: the report spawns the runners next to
# itself, and a concurrent `cargo build` must not swap them mid-run.
target="$(cargo metadata --format-version 1 --no-deps | grep -o '"target_directory":"[^"]*"' | cut -d'"' -f4)"
bin="$(mktemp -d -t dunegc-report.XXXXXX)"
trap 'rm -rf "$bin"' EXIT
cp "$target/release/dunegc-report" "$target/release/dunegc-runner" "$target/release/bdwgc-runner" "$bin/"
"$bin/dunegc-report" demo "$@"
