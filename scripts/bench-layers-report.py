#!/usr/bin/env python3
"""Summarises scripts/bench-layers.sh's raw logs: for each benchmark and Dune mode, the
median over the rounds of A and of B (criterion's median estimate of each run; GCBench wall
time), their ranges, and B/A: the ratio of the medians with the range of the per-round
ratios (round i's B over round i's A). Usage: bench-layers-report.py OUT-DIR > summary.md"""
import collections
import glob
import os
import re
import statistics
import sys

UNITS = {"ps": 1e-3, "ns": 1.0, "us": 1e3, "µs": 1e3, "ms": 1e6, "s": 1e9}
TIME = re.compile(r"time:\s+\[\S+ \S+ (\S+) (\S+) \S+ \S+\]")


def criterion(path):
    """{benchmark name: median estimate in ns} of one criterion log."""
    out = {}
    name = None
    for line in open(path, errors="replace"):
        line = line.rstrip("\n")
        m = TIME.search(line)
        if m:
            head = line[: line.index("time:")].strip()
            if head:
                name = head
            if name:
                out[name] = float(m.group(1)) * UNITS[m.group(2)]
            name = None
        elif line and not line[0].isspace() and not line.startswith(
            ("Benchmarking", "Found", "Warning", "dune mode", "Gnuplot", "warning")
        ):
            name = line.strip()
    return out


def fmt(ns):
    for unit, f in (("s", 1e9), ("ms", 1e6), ("us", 1e3)):
        if ns >= f:
            return f"{ns / f:.3g} {unit}"
    return f"{ns:.3g} ns"


def table(title, data, modes):
    """data[(mode, bench)][label] = {rep: ns}"""
    print(f"\n## {title}\n")
    print("| benchmark | mode | A median (range) | B median (range) | B/A (per-round range) |")
    print("|---|---|---|---|---|")
    benches = sorted({b for (_, b) in data}, key=lambda b: (b.split("/")[0], b))
    ratios, spans = [], 0
    for b in benches:
        for mode in modes:
            d = data.get((mode, b))
            if not d or "a" not in d or "b" not in d:
                continue
            a, bb = d["a"], d["b"]
            am, bm = statistics.median(a.values()), statistics.median(bb.values())
            pairs = [bb[r] / a[r] for r in a if r in bb and a[r] > 0]
            rr = f"{min(pairs):.2f}-{max(pairs):.2f}" if pairs else "-"
            ratios.append((bm / am, b.split("/")[-1].startswith(("native", "linux"))))
            spans += bool(pairs) and min(pairs) <= 1.0 <= max(pairs)
            print(
                f"| {b} | {mode} | {fmt(am)} ({fmt(min(a.values()))}-{fmt(max(a.values()))}) "
                f"| {fmt(bm)} ({fmt(min(bb.values()))}-{fmt(max(bb.values()))}) "
                f"| **{bm / am:.2f}** ({rr}) |"
            )
    print()
    for what, rows in (("Dune", [r for r, c in ratios if not c]),
                       ("native/Linux controls (no dune-hw code; their spread is the noise)", [r for r, c in ratios if c])):
        if rows:
            print(
                f"- {what}: geometric mean of B/A over {len(rows)} rows **{statistics.geometric_mean(rows):.3f}**, "
                f"row medians {min(rows):.2f}-{max(rows):.2f}"
            )
    if ratios:
        print(f"- per-round ranges that include 1.00: {spans} of {len(ratios)} rows")


def main():
    out = sys.argv[1]
    modes = []
    for kind, title in (("dune", "Dune microbenchmarks (benches/benches/dune.rs, pvm-modes.md filter)"),
                        ("paper", "Dune paper microbenchmarks (benches/benches/dune_paper.rs)")):
        data = collections.defaultdict(lambda: collections.defaultdict(dict))
        for path in sorted(glob.glob(os.path.join(out, f"{kind}-*-*-*.log"))):
            label, mode, rep = re.match(rf"{kind}-([ab])-(.+)-(\d+)\.log$", os.path.basename(path)).groups()
            if mode not in modes:
                modes.append(mode)
            for bench, ns in criterion(path).items():
                data[(mode, bench)][label][int(rep)] = ns
        table(title, data, modes)
    data = collections.defaultdict(lambda: collections.defaultdict(dict))
    gc = os.path.join(out, "gcbench.log")
    if os.path.exists(gc):
        for line in open(gc):
            f = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
            if "wall_ns" not in f:
                continue
            for key, v in (("wall", f["wall_ns"]), ("gc", f.get("gc_ns"))):
                if v is not None:
                    data[(f["mode"], f"gcbench scale {f['scale']} {key} time")][f["label"]][int(f["rep"])] = float(v)
    sums = collections.defaultdict(set)
    if os.path.exists(gc):
        for line in open(gc):
            f = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
            if "checksum" in f:
                sums[(f["mode"], f["scale"])].add((f["label"], f["checksum"]))
    table("GCBench, incremental, Dune backend (dunegc-runner gcbench <scale> incremental-dune)", data, modes)
    for (mode, scale), v in sorted(sums.items()):
        print(f"- GCBench checksums, {mode}, scale {scale}: " + ", ".join(f"{l}={c}" for l, c in sorted(v)))
    for name in ("commits.txt", "when.txt"):
        p = os.path.join(out, name)
        if os.path.exists(p):
            print("\n" + name + ":\n```\n" + open(p).read().strip() + "\n```")


main()
