#!/usr/bin/env python3
"""Bare-metal projection of inc-dune (issue 15), from the raw lines of scripts/dune-ledger.sh.

On a VT-x/AMD-V host with EPT/NPT the MMU walks the guest page table itself and sets its
A/D bits without any fault, so what inc-dune pays here for shadow paging disappears. The
projection replaces, in the measured inc-mprotect run of the same repetition (CPU time,
user + system, getrusage: the waits for a CPU on this loaded machine drop out),
  - the mprotect tracker's costs (counted arm + collect time, write faults x the calibrated
    fault cost) by
  - the Dune tracker's costs on EPT: D-bit scan per page (measured natively here:
    native_scan, a process-private page table where PT writes are plain stores) x pages
    scanned, writes after a D clear x a hardware D-bit update, full flushes x (flush +
    refill of the armed pages with 2-D walks), exits x a VT-x exit round trip, fresh leaves
    x the extra cost of an EPT violation over a native page fault.
The unit costs that cannot be measured on this host are ranges (ASSUMPTIONS below).
Usage: scripts/dune-projection.py RAW  (prints markdown)."""
import statistics
import sys
from collections import defaultdict

# ASSUMPTIONS (ns), low and high. A 2-D (nested) walk takes up to 24 memory references
# instead of 4 (Bhargava et al., "Accelerating two-dimensional page walks for virtualized
# systems", ASPLOS 2008); at 1-2 ns per reference when the walk hits the caches and page-walk
# caches, up to ~50 ns when it does not, one walk is 5..50 ns (low..high, a range, not a
# measurement).
WALK_2D = (5.0, 50.0)
# A hardware D-bit update on the first write after a clear: one walk plus a locked update
# of the guest PTE.
D_UPDATE = (WALK_2D[0] + 10.0, WALK_2D[1] + 100.0)
# A full flush in the guest (CR3 reload / INVPCID with VPID, no exit).
FLUSH = (200.0, 2000.0)
# A VM exit + entry round trip with the host's handling of a forwarded system call
# (beyond the system call itself).
EXIT = (1000.0, 5000.0)
# The mutator's slowdown from 2-D walks on ordinary TLB misses (whole run).
MUTATOR = (1.00, 1.10)
# Extra cost of a fresh page's first touch over the native run's page fault (an EPT/NPT
# violation handled by KVM in the host kernel, no exit to user space).
FRESH_EXTRA = (0.0, 2000.0)


def parse(path):
    runs = defaultdict(dict)  # (workload, config) -> rep -> fields
    calib = {}
    for line in open(path):
        rep, _, rest = line.strip().partition(" ")
        rep = int(rep.removeprefix("rep="))
        tag, *fields = rest.split()
        kv = dict(f.split("=", 1) for f in fields)
        if tag == "dunegc-calibration":
            calib[rep] = {k: float(v) for k, v in kv.items()}
        else:
            runs[(kv["workload"], kv["config"])][rep] = kv
    return runs, calib


def num(kv, k):
    return float(kv.get(k, 0))


def main():
    runs, calib = parse(sys.argv[1])
    scan = [c["native_scan_cpu"] for c in calib.values() if "native_scan_cpu" in c]
    if not scan:
        sys.exit("no native_scan in the calibration lines")
    scan_ns = min(scan)
    print(f"Native D-bit scan (measured, min over calibrations): {scan_ns:.1f} ns/page.\n")
    print("| workload | inc-mprotect CPU ms | its tracking ms (counted + estimated) | "
          "inc-dune on EPT: scan + D updates + flushes + exits + fresh pages ms (low-high) | "
          "projected inc-dune / inc-mprotect (low-high) | measured here (CPU) |")
    print("|---|---|---|---|---|---|")
    for w in sorted({k[0] for k in runs}):
        mp, du = runs.get((w, "incremental-mprotect")), runs.get((w, "incremental-dune"))
        if not mp or not du:
            continue
        lows, highs, here, base_l, track_l, add_l = [], [], [], [], [], []
        for rep in sorted(set(mp) & set(du) & set(calib)):
            m, d, c = mp[rep], du[rep], calib[rep]
            cpu_m = num(m, "utime_ns") + num(m, "stime_ns")
            cpu_d = num(d, "utime_ns") + num(d, "stime_ns")
            tracking = (num(m, "gc_arm_ns") + num(m, "gc_collect_ns")
                        + num(m, "gc_write_faults") * c["mprotect_fault_cpu"])
            armed_per_arm = num(d, "gc_pages_armed") / max(num(d, "gc_arms"), 1)
            flushes = num(d, "dune_flush_guest_full") + num(d, "dune_flush_deferred")
            written = num(d, "dune_dirty_written") + num(d, "dune_written_tail")
            exits = sum(num(d, k) for k in d if k.startswith("dune_exits_"))
            add = []
            for i in (0, 1):
                add.append(num(d, "dune_dirty_scanned") * scan_ns
                           + written * D_UPDATE[i]
                           + flushes * (FLUSH[i] + armed_per_arm * WALK_2D[i])
                           + exits * EXIT[i]
                           + num(d, "dune_fresh_pages") * FRESH_EXTRA[i])
            mut = cpu_m - tracking
            lows.append((mut * MUTATOR[0] + add[0]) / cpu_m)
            highs.append((mut * MUTATOR[1] + add[1]) / cpu_m)
            here.append(cpu_d / cpu_m)
            base_l.append(cpu_m)
            track_l.append(tracking)
            add_l.append(add)
        if not lows:
            continue
        med = statistics.median
        print(f"| {w} | {med(base_l) / 1e6:.0f} | {med(track_l) / 1e6:.0f} | "
              f"{med(a[0] for a in add_l) / 1e6:.1f}-{med(a[1] for a in add_l) / 1e6:.1f} | "
              f"**{med(lows):.2f}-{med(highs):.2f}×** | {med(here):.2f}× |")


main()
