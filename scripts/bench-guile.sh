#!/usr/bin/env bash
# guile-3.0 on dunegc vs bdwgc: wall time and peak RSS of gc-capi/tests/scheme/workload.scm,
# normal and incremental (GC_ENABLE_INCREMENTAL=1), runs interleaved, medians with ranges.
#
#   scripts/bench-guile.sh [runs]      (default 5; writes bench-results/guile-vs-libgc.md)
#
# libdunegc is the release build installed by scripts/build-capi.sh under target/capi.
# Every GC_* function libguile imports must be exported by libdunegc (checked).
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-5}"
scripts/build-capi.sh >/dev/null
capi="$PWD/target/capi"
guile=/usr/bin/guile-3.0
script=gc-capi/tests/scheme/workload.scm
out=bench-results/guile-vs-libgc.md
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

libguile="$(ldd "$guile" | awk '/libguile-3.0.so.1/ {print $3}')"
loaded="$(LD_LIBRARY_PATH="$capi" ldd "$guile" | awk '/libgc.so.1/ {print $3}')"
[ "$loaded" = "$capi/libgc.so.1" ] || { echo "guile loads $loaded, not dunegc's" >&2; exit 1; }
missing="$(comm -23 <(nm -D --undefined-only "$libguile" | awk '$2 ~ /^GC_/ {print $2}' | sort -u) \
                    <(nm -D --defined-only "$capi/libgc.so.1" | awk '$3 ~ /^GC_/ {print $3}' | sort -u))"
[ -z "$missing" ] || { echo "libdunegc lacks $(echo $missing), which guile needs" >&2; exit 1; }

# measure NAME ENV... : append "seconds kib" to $tmp/NAME
measure() {
    local name="$1"; shift
    env "$@" /usr/bin/time -f "%e %M" -o "$tmp/one" "$guile" --no-auto-compile "$script" >"$tmp/$name.out"
    cat "$tmp/one" >>"$tmp/$name"
}
configs=(bdwgc bdwgc-inc dunegc dunegc-inc)
for ((i = 0; i < runs; i++)); do
    measure bdwgc
    measure dunegc LD_LIBRARY_PATH="$capi"
    measure bdwgc-inc GC_ENABLE_INCREMENTAL=1
    measure dunegc-inc LD_LIBRARY_PATH="$capi" GC_ENABLE_INCREMENTAL=1
done
for c in dunegc dunegc-inc bdwgc-inc; do
    cmp -s "$tmp/bdwgc.out" "$tmp/$c.out" || { echo "$c printed something else than bdwgc" >&2; exit 1; }
done

stats() { # file column -> "median (min-max)"
    sort -n -k"$2" "$1" | awk -v c="$2" '{v[NR]=$c} END {printf "%s (%s-%s)", v[int((NR+1)/2)], v[1], v[NR]}'
}
median() { sort -n -k"$2" "$1" | awk -v c="$2" '{v[NR]=$c} END {print v[int((NR+1)/2)]}'; }
{
    echo "# guile-3.0 workload: dunegc vs bdwgc"
    echo
    echo "\`scripts/bench-guile.sh $runs\` on $(date -u +%Y-%m-%d), $(nproc) CPUs, machine loaded by other jobs."
    echo "Workload: \`$script\` (identical output on all four configurations, checked)."
    echo "$runs runs per configuration, interleaved; median (min-max)."
    echo
    echo "| configuration | wall s | peak RSS KiB | time / bdwgc | RSS / bdwgc |"
    echo "|---|---|---|---|---|"
    for c in "${configs[@]}"; do
        base=bdwgc; case "$c" in *-inc) base=bdwgc-inc ;; esac
        t="$(median "$tmp/$c" 1)"; r="$(median "$tmp/$c" 2)"
        tb="$(median "$tmp/$base" 1)"; rb="$(median "$tmp/$base" 2)"
        echo "| $c | $(stats "$tmp/$c" 1) | $(stats "$tmp/$c" 2) | $(awk -v a="$t" -v b="$tb" 'BEGIN{printf "%.2f", a/b}') | $(awk -v a="$r" -v b="$rb" 'BEGIN{printf "%.2f", a/b}') |"
    done
    echo
    echo "Ratios compare each dunegc configuration with bdwgc in the same mode."
} >"$out"
cat "$out"
