# Shared by the interleaved before/after benchmark scripts (parallel-marking.sh,
# heap-footprint.sh, sweep-and-mark.sh, concurrent-marking.sh): builds the runners and
# checks result lines. Source it from the repository root; it defines functions only.

# bench_build NAME BASE_REV: builds `dunegc-runner` as it is on BASE_REV (from `git
# archive`, in a target directory of its own under target/NAME-base, so that a rerun only
# rebuilds what changed and the two builds never overwrite each other's binary), and this
# tree's `dunegc-runner` and `bdwgc-runner`. Sets `target`, `bin` (a temporary directory
# removed at exit, holding base-runner, dunegc-runner, bdwgc-runner), `raw` (the raw
# result file in it), `base_commit`, `this_commit`, `load_before` and `started`.
bench_build() {
    local name="$1" base_rev="$2" base_target
    target="$(cargo metadata --format-version 1 --no-deps | grep -o '"target_directory":"[^"]*"' | cut -d'"' -f4)"
    bin="$(mktemp -d -t "$name.XXXXXX")"
    raw="$bin/raw"
    # shellcheck disable=SC2064 # expand now: $bin is this run's directory
    trap "rm -rf '$bin'" EXIT
    mkdir "$bin/base-src"
    git archive "$base_rev" | tar -x -C "$bin/base-src"
    # git archive dates the files to the commit: newer than any seeded build output, so
    # cargo rebuilds the workspace crates from this source.
    find "$bin/base-src" -type f -exec touch {} +
    base_target="$target/$name-base"
    if [ ! -d "$base_target/release" ] && [ -d "$target/release/deps" ]; then
        # Seed with this tree's compiled dependencies (same lock file): only the
        # workspace crates rebuild.
        mkdir -p "$base_target" && cp -a "$target/release" "$base_target/"
    fi
    (cd "$bin/base-src" && CARGO_TARGET_DIR="$base_target" \
        cargo build --release -p dunegc-benches --bin dunegc-runner)
    cp "$base_target/release/dunegc-runner" "$bin/base-runner"
    cargo build --release -p dunegc-benches --bin dunegc-runner --bin bdwgc-runner
    cp "$target/release/dunegc-runner" "$target/release/bdwgc-runner" "$bin/"
    if cmp -s "$bin/base-runner" "$bin/dunegc-runner"; then
        echo "the baseline and this tree built the same runner" >&2
        exit 1
    fi
    base_commit="$(git rev-parse --short "$base_rev")"
    this_commit="$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . || echo +dirty)"
    load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
    started="$(date -u +%FT%TZ)"
}

# bench_record REP WORKLOAD CONFIG LINE [ERRFILE]: appends a runner's result line to $raw,
# or stops the script with the line (and ERRFILE's contents) when it is not a result.
bench_record() {
    case "$4" in
        dunegc-result*|bdwgc-result*) echo "$1 ${2%% *} $3 $4" >>"$raw" ;;
        *)
            echo "failed: $2 $3: $4" >&2
            if [ -n "${5:-}" ]; then cat "$5" >&2; fi
            exit 1
            ;;
    esac
}

# bench_pause REP WORKLOAD CONFIG ERRFILE WHICH: appends the runner's `dunegc-pause WHICH`
# line (DUNEGC_PAUSE_BREAKDOWN) from ERRFILE to $bin/pauses, if there is one.
bench_pause() {
    { grep "^dunegc-pause $5" "$4" || true; } | sed "s/^/$1 ${2%% *} $3 /" >>"$bin/pauses"
}
