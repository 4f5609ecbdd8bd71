"""Shared by the report parts of the interleaved benchmark scripts (scripts/lib/bench.sh):
the raw result file, medians, and ratios of medians with the range of per-repetition
ratios."""
import math
import statistics
from collections import defaultdict

#: The comparison workloads, in the demo's order.
W = ["gcbench", "linkedlist", "hashmap", "xml"]


def load_runs(raw):
    """(workload, config) -> repetition -> {field: value}, from the raw file's lines
    `rep workload config <result-tag> key=value ...`."""
    runs = defaultdict(dict)
    for line in open(raw):
        rep, w, c, _tag, *fields = line.split()
        runs[(w, c)][int(rep)] = dict(f.split("=", 1) for f in fields if "=" in f)
    return runs


def load_breakdown(path):
    """(workload, config) -> repetition -> the pause breakdown text, from the lines
    `rep workload config dunegc-pause <which> text` that `bench_pause` appends."""
    breakdown = defaultdict(dict)
    for line in open(path):
        rep, w, c, _tag, _which, text = line.split(" ", 5)
        breakdown[(w, c)][int(rep)] = text.strip()
    return breakdown


def make_stats(runs):
    """`med(w, c, k)`, `rng(w, c, k)` (lowest, highest) and `ratio(w, a, b, k)` (ratio of
    medians of a to b, lowest and highest per-repetition ratio) over `runs`."""

    def med(w, c, k):
        return statistics.median(float(r[k]) for r in runs[(w, c)].values())

    def rng(w, c, k):
        v = [float(r[k]) for r in runs[(w, c)].values()]
        return min(v), max(v)

    def ratio(w, a, b, k):
        ra, rb = runs[(w, a)], runs[(w, b)]
        per = [float(ra[r][k]) / float(rb[r][k]) for r in ra if r in rb]
        return med(w, a, k) / med(w, b, k), min(per), max(per)

    return med, rng, ratio


def fmt(t):
    """`ratio (lowest–highest)`."""
    m, lo, hi = t
    return f"{m:.2f}× ({lo:.2f}–{hi:.2f})"


def geo(xs):
    """Geometric mean."""
    return math.exp(sum(math.log(x) for x in xs) / len(xs))


def session_line(started, reps, ncpu, lb, la, when_loaded):
    """The session sentence of a report: when, how many repetitions, and whether the
    machine was busy, judged from the 1-minute load averages before and after (busy when
    either reaches 3/4 of the CPUs), never assumed. `when_loaded` says what a busy
    machine does to this report's figures."""
    busy = max(float(lb.split()[0]), float(la.split()[0])) >= 0.75 * int(ncpu)
    line = (f"Session {started}, {reps} interleaved repetitions; machine: {ncpu} CPUs, "
            f"load average {lb} before and {la} after. ")
    if busy:
        line += f"**Other work loaded the machine while this ran**: {when_loaded}; "
    else:
        line += "The machine was otherwise idle (1-minute load below 3/4 of the CPUs); "
    return line + "ratios come from runs interleaved in one session.\n"

