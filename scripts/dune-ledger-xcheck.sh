#!/usr/bin/env bash
# Checks the in-guest Dune ledger against the outside view (issue 15): each run prints its
# ledger (result line) and KVM's own counts of exits to user space and of guest D bits KVM
# set on a write (`kvmmmu:kvm_mmu_set_dirty_bit`: one per write after a D clear under
# shadow paging), and the guest page-table walks of its shadow MMU (`kvm_mmu_pagetable_walk`:
# one per shadow page fault handled in the kernel; the ledger's `dune_host_faults_in_run`, the
# first touches of host pages that were not resident, are among them); then strace counts
# KVM_RUN calls of one run. Needs perf with the kvm and kvmmmu tracepoints, and strace (root).
# Results: bench-results/dune-ledger.md.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p dunegc-benches --bin dunegc-runner >&2
target="$(cargo metadata --format-version 1 --no-deps | grep -o '"target_directory":"[^"]*"' | cut -d'"' -f4)"
dir="$(mktemp -d -t dune-xcheck.XXXXXX)"
trap 'rm -rf "$dir"' EXIT
cp "$target/release/dunegc-runner" "$dir/"
keys='^(wall_ns|dune_exits_[a-z_]+|dune_dirty_cleared|dune_dirty_written|dune_written_tail|dune_fresh_pages|dune_host_faults_in_run|gc_pages_populated)='
for cfg in "linkedlist 200 incremental-dune" "gcbench 16 incremental-dune" "gcbench 16 dune-full" \
    "hashmap 100 incremental-dune" "xml 50 incremental-dune"; do
    # shellcheck disable=SC2086
    perf stat -o "$dir/stat" -e kvm:kvm_userspace_exit,kvmmmu:kvm_mmu_set_dirty_bit,kvmmmu:kvm_mmu_sync_page,kvmmmu:kvm_mmu_unsync_page,kvmmmu:kvm_mmu_pagetable_walk \
        -- "$dir/dunegc-runner" $cfg >"$dir/line" 2>/dev/null
    echo "== $cfg"
    tr ' ' '\n' <"$dir/line" | grep -E "$keys" | grep -v '=0$' | tr '\n' ' '
    echo
    grep -E 'kvm' "$dir/stat" | awk '{print $1, $2}'
done
echo "== strace: KVM_RUN calls of gcbench 16 incremental-dune, and its ledger's exits"
strace -f -e trace=ioctl -o "$dir/strace" "$dir/dunegc-runner" gcbench 16 incremental-dune \
    | tr ' ' '\n' | grep -E '^dune_exits_' | grep -v '=0$' | tr '\n' ' '
echo
grep -c KVM_RUN "$dir/strace"
