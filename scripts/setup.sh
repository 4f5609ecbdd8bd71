#!/usr/bin/env bash
# Install the system packages dunegc's build, tests and benchmarks need.
#
# Idempotent and non-interactive (Debian 12, run as root or with sudo).
# Quiet when everything is already there or installs cleanly; on failure it
# prints what went wrong (with apt's log) and exits non-zero.
#
# Called first by both README commands and by .ci/run. Add a package to
# PACKAGES below when a test or benchmark needs it; say why next to it.
set -euo pipefail

# Debian package        needed for
PACKAGES=(
    build-essential   # cc for the cc crate (benches/build.rs) and -sys crates; gcc and the
                      # static glibc (libc6-dev) that build dune-sandbox's test programs
    pkg-config        # benches/build.rs finds bdwgc through `pkg-config bdw-gc`
    libgc-dev         # bdwgc, the peer collector (issues 3, 4, 9)
    guile-3.0         # a real libgc program: gc-capi/tests/guile.rs (issue 17)
    w3m               # a Debian program linked with libgc.so.1, run on dunegc (issue 17)
)

# Refresh the package lists when they are older than this (seconds).
APT_LISTS_MAX_AGE_SECS=$((7 * 24 * 3600))

die() {
    echo "scripts/setup.sh: error: $*" >&2
    exit 1
}

is_installed() {
    [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]
}

command -v dpkg-query >/dev/null 2>&1 ||
    die "dpkg-query not found: this script supports Debian/Ubuntu only; install ${PACKAGES[*]} by hand"

missing=()
for pkg in "${PACKAGES[@]}"; do
    is_installed "$pkg" || missing+=("$pkg")
done

if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ]; then
        as_root=()
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        as_root=(sudo -n)
    else
        die "missing packages (${missing[*]}) and not root (no passwordless sudo): run as root or 'apt-get install ${missing[*]}'"
    fi

    log="$(mktemp -t dunegc-setup.XXXXXX)"
    trap 'rm -f "$log"' EXIT
    export DEBIAN_FRONTEND=noninteractive

    apt_update() {
        "${as_root[@]}" apt-get update -q >>"$log" 2>&1 ||
            { cat "$log" >&2; die "apt-get update failed (see the log above)"; }
    }
    apt_install() {
        "${as_root[@]}" apt-get install -y -q --no-install-recommends \
            -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
            "${missing[@]}" >>"$log" 2>&1
    }

    # Update the lists only when they are absent or stale; if an install from
    # existing lists fails (e.g. a package version vanished), update and retry.
    newest_list="$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -printf '%T@\n' 2>/dev/null | sort -n | tail -1)"
    now="$(date +%s)"
    if [ -z "$newest_list" ] || [ $((now - ${newest_list%.*})) -gt "$APT_LISTS_MAX_AGE_SECS" ]; then
        apt_update
    fi
    if ! apt_install; then
        apt_update
        apt_install || { cat "$log" >&2; die "apt-get install ${missing[*]} failed (see the log above)"; }
    fi

    for pkg in "${missing[@]}"; do
        is_installed "$pkg" || { cat "$log" >&2; die "$pkg is still not installed after apt-get install"; }
    done
fi

# Check what the build actually relies on, not just the package database.
command -v cc >/dev/null 2>&1 || die "no C compiler 'cc' on PATH (build-essential)"
pkg-config --exists bdw-gc || die "pkg-config cannot find bdw-gc (libgc-dev): check PKG_CONFIG_PATH"
