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
exec cargo run --release -q -p dunegc-benches --bin dunegc-report -- demo "$@"
