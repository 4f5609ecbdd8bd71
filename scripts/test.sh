#!/usr/bin/env bash
# The whole test suite: installs what the tests need, then runs every test of every crate.
# Tests that need /dev/kvm print "SKIPPED <test>: <reason>" where it is missing, unless
# DUNEGC_REQUIRE_KVM=1 (set in CI), which turns a skip into a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo test --workspace --all-targets --no-fail-fast "$@"
cargo test --workspace --doc
# The collector suites again with one and with four marker threads (the default above is
# the number of CPUs; `parallel_marking` sets its own): proptest, churn, race and the
# global allocator, under every dirty backend they cover, and inside Dune.
for markers in 1 4; do
    echo "== collector suites with DUNEGC_MARKERS=$markers"
    DUNEGC_MARKERS=$markers cargo test -p gc-core --test graph_proptest --test churn_threads \
        --test incremental_race --test global_alloc --test global_alloc_mprotect --no-fail-fast "$@"
    DUNEGC_MARKERS=$markers cargo test -p dunegc-tests --test kvm_dune_suites \
        --test kvm_dune_global --no-fail-fast "$@"
done
# The Dune suites once more in the other modes of this host: the default is the detected
# mode (pvm on PVM hosts whose supervisor ABI passes the probe). A mode that cannot run here
# falls back to ring-3 with a message, so these passes never skip silently.
for mode in ring3 pvm-ring0; do
    echo "== Dune suites with DUNEGC_DUNE_MODE=$mode"
    DUNEGC_DUNE_MODE=$mode cargo test -p dune-hw -p dunegc-tests -p dune-sandbox -p privsep --tests --no-fail-fast "$@"
done
