#!/usr/bin/env bash
# The fresh-page microbenchmark of issue 15, interleaved: for each repetition, each
# `fresh-pages` binary runs natively and inside Dune in each mode (pvm, pvm-ring0, ring3;
# ring0, whose guest CPL0 is emulated, on 4 MiB instead of 64), each without and with
# host populate (PREPS="plain populate huge" adds 2 MiB guest leaves over THP). Prints per
# binary, mode and preparation the median ns per page of each pass (range of the
# repetitions in parentheses for the fresh-page total) and the ratio of the fresh-page
# total to native's with the same preparation (median; range of the same-rep ratios).
#
#   REPS=3 [MODES="pvm pvm-ring0 ring3 ring0"] [PREPS="plain populate"] \
#     scripts/fresh-pages.sh NAME=BIN [NAME=BIN ...]
#
# Each BIN is a release build of `fresh-pages` (benches/src/bin/fresh-pages.rs);
# bench-results/dune-tax.md says how the ones measured there were built.
set -euo pipefail
reps="${REPS:-3}"
modes="${MODES:-pvm pvm-ring0 ring3 ring0}"
preps="${PREPS:-plain populate}"
raw="$(mktemp -t fresh-pages.XXXXXX)"
trap 'rm -f "$raw"' EXIT
names=()
for arg in "$@"; do names+=("${arg%%=*}"); done
for rep in $(seq "$reps"); do
    for arg in "$@"; do
        which="${arg%%=*}"
        bin="${arg#*=}"
        for pop in $preps; do
            for mode in native $modes; do
                mib=64
                [ "$mode" = ring0 ] && mib=4
                if [ "$mode" = native ]; then
                    line="$("$bin" native "$pop" "$mib")"
                else
                    line="$(DUNEGC_DUNE_MODE="$mode" "$bin" dune "$pop" "$mib")"
                fi
                case "$line" in
                    fresh-pages\ *) ;;
                    *) echo "failed: $which $mode $pop: $line" >&2; exit 1 ;;
                esac
                # native at 4 MiB too, the reference for ring0
                if [ "$mode" = native ]; then
                    echo "$rep $which native $pop $line" >>"$raw"
                    line4="$("$bin" native "$pop" 4)"
                    echo "$rep $which native-4mib $pop $line4" >>"$raw"
                else
                    echo "$rep $which $mode $pop $line" >>"$raw"
                fi
            done
        done
    done
done
python3 - "$raw" "native $modes" "$preps" "${names[@]}" <<'EOF'
import statistics, sys
from collections import defaultdict
runs = defaultdict(dict)  # (which, mode, pop) -> rep -> {field: value}
for l in open(sys.argv[1]):
    rep, which, mode, pop, _tag, *kv = l.split()
    # binaries before the `huge` preparation printed populate=0|1 and populate_ns
    fields = {k.replace("populate_ns", "prep_ns"): v for k, v in (f.split("=") for f in kv)}
    runs[(which, mode, pop)][int(rep)] = {
        k: float(v) for k, v in fields.items() if k not in ("mode", "prep", "populate")}
cols = ["prep_ns", "first_write_ns", "total_ns", "second_write_ns", "arm_ns",
        "write_after_arm_ns", "read_after_arm_ns", "write_after_read_ns", "set_dirty_ns",
        "write_after_set_dirty_ns"]
print("| binary | mode | MiB | prep | " + " | ".join(c.removesuffix("_ns") for c in cols)
      + " | total / native |")
print("|" + "---|" * (len(cols) + 5))
for which in sys.argv[4:]:
    for pop in sys.argv[3].split():
        for mode in sys.argv[2].split():
            r = runs[(which, mode, pop)]
            if not r:
                continue
            ref = runs[(which, "native-4mib" if mode == "ring0" else "native", pop)]
            med = {c: statistics.median(x[c] for x in r.values()) for c in cols}
            tot = [x["total_ns"] for x in r.values()]
            per = [r[k]["total_ns"] / ref[k]["total_ns"] for k in r]
            ratio = statistics.median(x["total_ns"] for x in r.values()) / statistics.median(
                x["total_ns"] for x in ref.values())
            cells = [f"{med[c]:.0f}" for c in cols]
            cells[2] += f" ({min(tot):.0f}–{max(tot):.0f})"
            mib = int(next(iter(r.values()))["mib"])
            print(f"| {which} | {mode} | {mib} | {pop} | " + " | ".join(cells)
                  + f" | {ratio:.2f}× ({min(per):.2f}–{max(per):.2f}) |")
EOF
