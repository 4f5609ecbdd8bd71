#!/usr/bin/env bash
# The whole test suite: installs what the tests need, then runs every test of every crate.
# Tests that need /dev/kvm print "SKIPPED <test>: <reason>" where it is missing, unless
# DUNEGC_REQUIRE_KVM=1 (set in CI), which turns a skip into a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo test --workspace --all-targets --no-fail-fast "$@"
cargo test --workspace --doc
