#!/usr/bin/env python3
"""Issue 15's targets on this host, from the raw lines of scripts/dune-ledger.sh.

For each workload and repetition: the measured ratios dune-full / full and
incremental-dune / incremental-mprotect (wall and CPU = user + system, getrusage), and the
CPU ratio with the host mechanisms removed from the Dune run:

  - shadow MMU (priced): the guest walks KVM counted on the vCPU threads
    (kvmmmu:kvm_mmu_pagetable_walk) x the calibrated per-walk cost of the same repetition;
  - shadow MMU (counted): instead, the vCPU threads' system time inside KVM_RUN
    (getrusage(RUSAGE_THREAD) around each KVM_RUN);
  - exits: exits x (Dune getpid - native getpid), CPU, calibrated;
  - the heap's host populate (pages x calibrated cost) is replaced by the native first
    store per page it stands for (pages x native fresh).

Medians over the repetitions, the range in parentheses; geometric means over workloads.

    python3 scripts/dune-targets.py RAW
"""
import math
import sys
from collections import defaultdict

EXITS = ["syscall", "exception", "interrupted", "memory_gone", "mmio", "other"]


def parse(path):
    runs, cal = defaultdict(dict), {}
    for line in open(path):
        f = line.split()
        if len(f) < 2 or not f[0].startswith("rep="):
            continue
        rep = f[0][4:]
        kv = dict(x.split("=", 1) for x in f[2:] if "=" in x)
        if f[1] == "dunegc-calibration":
            cal[rep] = {k: float(v) for k, v in kv.items()}
        elif f[1] == "dunegc-result":
            runs[(kv["workload"], kv["config"])][rep] = kv
    return runs, cal


def cpu(r):
    return int(r["utime_ns"]) + int(r["stime_ns"])


def removed(r, u, counted):
    """The Dune run's CPU ns without the shadow MMU, the exits and the populate."""
    n = lambda k: int(r.get(k, 0))
    exits = sum(n("dune_exits_" + e) for e in EXITS)
    shadow = n("dune_run_stime_ns") if counted else n("dune_host_pagetable_walk") * u.get("dune_shadow_fault_cpu", 0)
    extra = u["dune_getpid_cpu"] - u["native_getpid_cpu"]
    pop = n("gc_pages_populated")
    return cpu(r) - shadow - exits * extra - pop * u["dune_populate_cpu"] + pop * u["native_fresh_cpu"]


def med(v):
    v = sorted(v)
    return v[len(v) // 2], v[0], v[-1]


def fmt(t):
    return f"{t[0]:.2f}× ({t[1]:.2f}–{t[2]:.2f})"


def geo(v):
    return math.exp(sum(math.log(x) for x in v) / len(v))


def main():
    runs, cal = parse(sys.argv[1])
    workloads = sorted({w for w, _ in runs})
    print("| pair | workload | wall (measured) | CPU (measured) | CPU without shadow MMU (priced walks), exits, populate | CPU without shadow MMU (counted KVM_RUN system time), exits, populate |")
    print("|---|---|---|---|---|---|")
    for dune, native in [("dune-full", "full"), ("incremental-dune", "incremental-mprotect")]:
        g = [[], [], [], []]
        for w in workloads:
            a, b = runs.get((w, dune), {}), runs.get((w, native), {})
            reps = [r for r in a if r in b and r in cal]
            if not reps:
                continue
            cols = [
                med([int(a[r]["wall_ns"]) / int(b[r]["wall_ns"]) for r in reps]),
                med([cpu(a[r]) / cpu(b[r]) for r in reps]),
                med([removed(a[r], cal[r], False) / cpu(b[r]) for r in reps]),
                med([removed(a[r], cal[r], True) / cpu(b[r]) for r in reps]),
            ]
            for i, c in enumerate(cols):
                g[i].append(c[0])
            print(f"| {dune} / {native} | {w} | " + " | ".join(fmt(c) for c in cols) + " |")
        if g[0]:
            print(f"| {dune} / {native} | **geomean** | " + " | ".join(f"**{geo(x):.2f}×**" for x in g) + " |")

    print()
    print("Priced shadow-MMU row against the counted host-kernel time of the vCPU threads inside KVM_RUN (ms, median of the repetitions, range):")
    print()
    print("| workload | config | guest walks (host-counted) | walks × calibrated cost (priced) | vCPU system time inside KVM_RUN (counted) | priced / counted |")
    print("|---|---|---|---|---|---|")
    for w in workloads:
        for c in ["dune-full", "incremental-dune"]:
            a = runs.get((w, c), {})
            reps = [r for r in a if r in cal]
            if not reps:
                continue
            walks = med([int(a[r].get("dune_host_pagetable_walk", 0)) for r in reps])
            priced = med([int(a[r].get("dune_host_pagetable_walk", 0)) * cal[r].get("dune_shadow_fault_cpu", 0) / 1e6 for r in reps])
            counted = med([int(a[r].get("dune_run_stime_ns", 0)) / 1e6 for r in reps])
            ratio = med([int(a[r].get("dune_host_pagetable_walk", 0)) * cal[r].get("dune_shadow_fault_cpu", 0)
                         / max(1, int(a[r].get("dune_run_stime_ns", 0))) for r in reps])
            print(f"| {w} | {c} | {walks[0]:.0f} ({walks[1]:.0f}–{walks[2]:.0f}) | {priced[0]:.1f} ({priced[1]:.1f}–{priced[2]:.1f}) "
                  f"| {counted[0]:.1f} ({counted[1]:.1f}–{counted[2]:.1f}) | {fmt(ratio)} |")


if __name__ == "__main__":
    main()
