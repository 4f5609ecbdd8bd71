#!/usr/bin/env bash
# Build dunegc's bdwgc-compatible C library (gc-capi) in release mode and install it
# under target/capi/ (or $DUNEGC_CAPI_DIR):
#
#   target/capi/libdunegc.so, libdunegc.a   the library under its own name
#   target/capi/libgc.so.1, libgc.so        the same library under bdwgc's names
#   target/capi/include/gc.h, gc/gc.h       the header
#
# A program built against bdwgc (linked with -lgc; DT_NEEDED libgc.so.1 or libgc.so)
# then runs on dunegc unchanged:
#
#   LD_LIBRARY_PATH=target/capi ./program
#
# and new programs link with:  cc prog.c -Itarget/capi/include -Ltarget/capi -lgc
#
# The library has no SONAME, so a program linked with -lgc against target/capi
# records libgc.so and finds it through LD_LIBRARY_PATH (or -Wl,-rpath).
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${DUNEGC_CAPI_PROFILE:-release}"
cargo build -p gc-capi --profile "$profile"
target_dir="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
case "$profile" in
  dev) built="$target_dir/debug" ;;
  *) built="$target_dir/$profile" ;;
esac
out="${DUNEGC_CAPI_DIR:-$target_dir/capi}"
mkdir -p "$out/include/gc"
# Copy (not link) so that a later debug build cannot change what was installed.
install -m 0755 "$built/libdunegc.so" "$out/libdunegc.so"
install -m 0644 "$built/libdunegc.a" "$out/libdunegc.a"
install -m 0755 "$built/libdunegc.so" "$out/libgc.so.1"
ln -sfn libgc.so.1 "$out/libgc.so"
install -m 0644 gc-capi/include/gc.h "$out/include/gc.h"
install -m 0644 gc-capi/include/gc/gc.h "$out/include/gc/gc.h"
install -m 0644 gc-capi/include/gc/gc_mark.h gc-capi/include/gc/gc_typed.h "$out/include/gc/"
echo "installed dunegc's C library in $out (libgc.so.1 -> dunegc); headers in $out/include"
echo "run a -lgc program on it with: LD_LIBRARY_PATH=$out ./program"
