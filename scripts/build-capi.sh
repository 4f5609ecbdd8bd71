#!/usr/bin/env bash
# Build dunegc's bdwgc-compatible C library (gc-capi) in release mode and install it
# under target/capi/ (or $DUNEGC_CAPI_DIR):
#
#   target/capi/libdunegc.so, libdunegc.a   the library under its own name
#   target/capi/libgc.so.1, libgc.so        the same library under bdwgc's names
#   target/capi/libgccpp.so.1, libgctba.so.1  the C++ parts (gc-capi/cpp/)
#   target/capi/include/gc.h, gc_cpp.h, gc/*.h  the headers, in bdwgc's layout
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
install -m 0644 gc-capi/include/gc.h gc-capi/include/gc_cpp.h "$out/include/"
install -m 0644 gc-capi/include/gc/*.h "$out/include/gc/"
# The C++ library parts, as Debian's libgc1 ships them: libgccpp.so.1 (global
# operator new/delete over the collector, GC_throw_bad_alloc) and libgctba.so.1
# (GC_throw_bad_alloc alone), both needing libgc.so.1.
if command -v g++ >/dev/null 2>&1; then
    for lib in gccpp:gc_cpp gctba:gc_badalc; do
        g++ -shared -fPIC -O2 -I gc-capi/include "gc-capi/cpp/${lib#*:}.cc" \
            -o "$out/lib${lib%%:*}.so.1" -L "$out" -l:libgc.so.1
        ln -sfn "lib${lib%%:*}.so.1" "$out/lib${lib%%:*}.so"
    done
else
    echo "g++ not found: libgccpp.so.1 / libgctba.so.1 not built" >&2
fi
echo "installed dunegc's C library in $out (libgc.so.1 -> dunegc); headers in $out/include"
echo "run a -lgc program on it with: LD_LIBRARY_PATH=$out ./program"
