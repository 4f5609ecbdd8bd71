//! C programs compiled with gcc against `gc.h` and the library built by this crate
//! (`libdunegc.so` or `libdunegc.a` in the test's `deps/` directory), then run.
//! Each program checks itself (`CHECK`) and prints `PASS`; some print values that the
//! tests compare. Every program is its own process: the collector's global heap and
//! signal handlers never meet the test harness.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");
const TMP_DIR: &str = env!("CARGO_TARGET_TMPDIR");
/// The longest a program may run.
const TIMEOUT: Duration = Duration::from_secs(60);

/// The directory holding `libdunegc.so` and `libdunegc.a`: cargo builds every crate
/// type of the library into `deps/` (next to this test binary) before running the
/// tests. (The copies one level up are only refreshed by `cargo build`, so they may be
/// stale.) If they are missing (an unusual cargo layout), build them.
fn lib_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let exe = std::env::current_exe().expect("the test knows its own path");
        let deps = exe
            .parent()
            .expect("test binaries live in <target>/<profile>/deps")
            .to_path_buf();
        if deps.join("libdunegc.so").exists() && deps.join("libdunegc.a").exists() {
            return deps;
        }
        let profile_dir = deps.parent().expect("deps has a parent").to_path_buf();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-p", "gc-capi"])
            .current_dir(MANIFEST_DIR);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("running cargo build -p gc-capi");
        assert!(status.success(), "cargo build -p gc-capi failed");
        let so = profile_dir.join("libdunegc.so");
        assert!(so.exists(), "{} was not built", so.display());
        profile_dir
    })
}

fn out_dir() -> PathBuf {
    let dir = Path::new(TMP_DIR).join("capi-tests");
    std::fs::create_dir_all(&dir).expect("creating the test output directory");
    dir
}

/// How a program is linked.
enum Link<'a> {
    /// `-ldunegc` from the build directory, with an rpath.
    Shared,
    /// `libdunegc.a` linked in.
    Static,
    /// `-lgc` from this directory, no rpath (found at run time through
    /// `LD_LIBRARY_PATH`).
    Lgc(&'a Path),
    /// `-lgc` from the system's library path (bdwgc itself).
    SystemLgc,
}

/// Which `gc.h` a program is compiled with.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Header {
    /// dunegc's, `gc-capi/include/gc.h`.
    Dunegc,
    /// bdwgc's own, from the system include path (libgc-dev).
    Bdwgc,
}

/// Compile `tests/c/<file>` (C, or C++ for `.cc`) into `<tmp>/capi-tests/<exe_name>`.
fn compile(file: &str, exe_name: &str, header: Header, link: Link<'_>) -> PathBuf {
    let src = Path::new(MANIFEST_DIR).join("tests/c").join(file);
    let exe = out_dir().join(exe_name);
    let cplusplus = file.ends_with(".cc");
    let mut cmd = Command::new(if cplusplus { "g++" } else { "gcc" });
    cmd.arg(if cplusplus {
        "-std=gnu++17"
    } else {
        "-std=gnu11"
    });
    cmd.args(["-O1", "-g", "-Wall", "-Wextra"]);
    cmd.arg("-Wno-alloc-size-larger-than");
    if header == Header::Dunegc {
        // Warnings are errors with our header; bdwgc's varies between releases.
        cmd.arg("-Werror");
        cmd.arg("-I").arg(Path::new(MANIFEST_DIR).join("include"));
    }
    cmd.arg("-I").arg(Path::new(MANIFEST_DIR).join("tests/c"));
    cmd.arg(&src).arg("-o").arg(&exe);
    let lib = lib_dir();
    match link {
        Link::Shared => {
            cmd.arg("-L").arg(lib).arg("-ldunegc");
            cmd.arg(format!("-Wl,-rpath,{}", lib.display()));
        }
        Link::Static => {
            cmd.arg(lib.join("libdunegc.a"));
            // rustc --print native-static-libs for this target.
            cmd.args(["-lgcc_s", "-lutil", "-lrt", "-lm", "-ldl"]);
        }
        Link::Lgc(dir) => {
            cmd.arg("-L").arg(dir).arg("-lgc");
        }
        Link::SystemLgc => {
            cmd.arg("-lgc");
        }
    }
    cmd.args(["-lpthread", "-ldl"]);
    let out = cmd
        .output()
        .expect("running gcc/g++ (install build-essential: scripts/setup.sh)");
    assert!(
        out.status.success(),
        "compiling {file} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    exe
}

/// True if bdwgc's own header is installed (libgc-dev); tests that need it print a
/// skip line otherwise.
fn bdwgc_header_installed(test: &str) -> bool {
    let found = ["/usr/include/gc.h", "/usr/local/include/gc.h"]
        .iter()
        .any(|p| Path::new(p).exists());
    if !found {
        eprintln!("SKIPPED {test}: bdwgc's gc.h is not installed (libgc-dev; scripts/setup.sh)");
    }
    found
}

/// Run a program with a clean collector environment plus `env`; kill it after TIMEOUT.
///
/// Programs run one at a time (compiling stays parallel): with more runnable threads
/// than CPUs, a thread can be descheduled inside the suspend handler for longer than
/// gc-core's 50 ms "blocks the signal" check, which then skips it and signals it again,
/// and stop-the-world never finishes (reported against gc-core's world.rs).
fn run(exe: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut cmd = Command::new(exe);
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    for (key, _) in std::env::vars_os() {
        let k = key.to_string_lossy();
        if k.starts_with("GC_") || k.starts_with("DUNEGC_") || k == "LD_LIBRARY_PATH" {
            cmd.env_remove(&key);
        }
    }
    cmd.envs(env.iter().copied());
    let mut child = cmd.spawn().expect("starting the test program");
    let started = Instant::now();
    loop {
        if child.try_wait().expect("waiting for the program").is_some() {
            break;
        }
        if started.elapsed() > TIMEOUT {
            child.kill().expect("killing a hung program");
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child
        .wait_with_output()
        .expect("collecting the program's output")
}

/// Run and require success and `PASS`; returns stdout.
fn run_pass(exe: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = run(exe, args, env);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("PASS"),
        "{} {args:?} {env:?} failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        exe.display(),
        out.status
    );
    stdout
}

/// The number after `key ` in `text`.
fn value_after(text: &str, key: &str) -> u64 {
    let at = text
        .find(&format!("{key} "))
        .unwrap_or_else(|| panic!("'{key}' not in output:\n{text}"));
    text[at + key.len() + 1..]
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no number after '{key}' in:\n{text}"))
}

#[test]
fn trees_and_lists_keep_their_checksums() {
    let exe = compile("trees_lists.c", "trees_lists", Header::Dunegc, Link::Shared);
    let out = run_pass(&exe, &[], &[]);
    assert!(value_after(&out, "gc_no") > 0, "no collection ran:\n{out}");
}

#[test]
fn static_library_links_and_runs() {
    let exe = compile(
        "trees_lists.c",
        "trees_lists_static",
        Header::Dunegc,
        Link::Static,
    );
    run_pass(&exe, &[], &[]);
}

#[test]
fn realloc_chains_keep_contents() {
    let exe = compile(
        "realloc_chains.c",
        "realloc_chains",
        Header::Dunegc,
        Link::Shared,
    );
    run_pass(&exe, &[], &[]);
}

#[test]
fn finalizers_ordered_unordered_and_on_demand() {
    let exe = compile("finalizers.c", "finalizers", Header::Dunegc, Link::Shared);
    run_pass(&exe, &[], &[]);
}

#[test]
fn incremental_mode_via_gc_enable_incremental() {
    let exe = compile("incremental.c", "incremental", Header::Dunegc, Link::Shared);
    // auto picks the best tracker this kernel offers; mprotect always works on Linux.
    let out = run_pass(&exe, &["1", "1"], &[]);
    assert!(!out.contains("backend none"), "{out}");
    // Named backend, incremental implied by DUNEGC_DIRTY alone.
    let out = run_pass(&exe, &["1", "0"], &[("DUNEGC_DIRTY", "mprotect")]);
    assert!(out.contains("backend mprotect"), "{out}");
    // DUNEGC_DIRTY=none and GC_DISABLE_INCREMENTAL keep stop-the-world mode.
    run_pass(&exe, &["0", "1"], &[("DUNEGC_DIRTY", "none")]);
    run_pass(&exe, &["0", "1"], &[("GC_DISABLE_INCREMENTAL", "1")]);
    // And without incremental mode at all the same churn passes.
    run_pass(&exe, &["0", "0"], &[]);
}

#[test]
fn bdwgc_environment_variables() {
    let exe = compile("env_config.c", "env_config", Header::Dunegc, Link::Shared);
    let text = |out: &Output| String::from_utf8_lossy(&out.stdout).into_owned();

    let out = run(&exe, &[], &[]);
    assert!(out.status.success());
    assert!(value_after(&text(&out), "gc_no") > 0, "{}", text(&out));
    // GC_init collected once (bdwgc's GC_dont_precollect is 0).
    assert_eq!(value_after(&text(&out), "at_init"), 1, "{}", text(&out));

    let out = run(&exe, &[], &[("GC_INITIAL_HEAP_SIZE", "64M")]);
    assert_eq!(value_after(&text(&out), "gc_no"), 0, "{}", text(&out));
    // DUNEGC_* wins over the bdwgc name.
    let out = run(
        &exe,
        &[],
        &[
            ("GC_INITIAL_HEAP_SIZE", "64M"),
            ("DUNEGC_INITIAL_HEAP_SIZE", "1M"),
        ],
    );
    assert!(value_after(&text(&out), "gc_no") > 0, "{}", text(&out));
    // A bad value warns and is ignored.
    let out = run(&exe, &[], &[("GC_INITIAL_HEAP_SIZE", "lots")]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("GC Warning: Bad value 'lots' for GC_INITIAL_HEAP_SIZE"),
        "{err}"
    );

    let out = run(&exe, &[], &[("GC_ENABLE_INCREMENTAL", "1")]);
    assert_eq!(value_after(&text(&out), "incremental"), 1, "{}", text(&out));
    let out = run(&exe, &[], &[("GC_ENABLE_INCREMENTAL", "0")]);
    assert_eq!(value_after(&text(&out), "incremental"), 0, "{}", text(&out));

    // GC_DONT_GC: no collections, not even GC_gcollect (bdwgc's GC_disable semantics).
    let out = run(&exe, &[], &[("GC_DONT_GC", "1")]);
    assert_eq!(value_after(&text(&out), "at_init"), 0, "{}", text(&out));
    assert_eq!(value_after(&text(&out), "gc_no"), 0, "{}", text(&out));
    assert_eq!(
        value_after(&text(&out), "after gcollect"),
        0,
        "{}",
        text(&out)
    );

    let out = run(&exe, &[], &[("GC_PRINT_STATS", "1")]);
    let err = String::from_utf8_lossy(&out.stderr);
    // Once: gc-core's exit handler prints it (gc-capi once printed it a second time).
    assert_eq!(err.matches("dunegc statistics").count(), 1, "{err}");
}

#[test]
fn threads_allocate_concurrently() {
    let exe = compile("threads.c", "threads", Header::Dunegc, Link::Shared);
    run_pass(&exe, &[], &[]);
    run_pass(&exe, &[], &[("DUNEGC_DIRTY", "mprotect")]);
    run_pass(&exe, &[], &[("GC_ENABLE_INCREMENTAL", "1")]);
}

#[test]
fn add_roots_on_malloc_memory_keeps_objects_alive() {
    let exe = compile("roots.c", "roots", Header::Dunegc, Link::Shared);
    run_pass(&exe, &[], &[]);
}

#[test]
fn max_heap_size_is_a_hard_limit() {
    let exe = compile("max_heap.c", "max_heap", Header::Dunegc, Link::Shared);
    for (arg, env) in [
        ("api", &[][..]),
        ("env", &[("GC_MAXIMUM_HEAP_SIZE", "32M")][..]),
        ("env", &[("DUNEGC_MAX_HEAP_SIZE", "32M")][..]),
    ] {
        let out = run(&exe, &[arg], env);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stdout.contains("PASS"),
            "{arg} {env:?}: {stdout}\n{stderr}"
        );
        assert!(stderr.contains("Out of Memory"), "{arg} {env:?}: {stderr}");
    }
}

#[test]
fn bad_input_warns_and_returns_null() {
    let exe = compile("bad_input.c", "bad_input", Header::Dunegc, Link::Shared);
    let out = run(&exe, &[], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("PASS"),
        "{stderr}"
    );
    assert!(stderr.contains("warning seen: GC_free(0x"), "{stderr}");
    assert!(
        stderr.contains("Out of Memory") || stderr.contains("exceeds"),
        "{stderr}"
    );
}

/// A directory with dunegc installed under bdwgc's library names, as
/// scripts/build-capi.sh does: `libgc.so.1` (a copy) and `libgc.so` -> `libgc.so.1`.
/// Made once per test process; the copy is renamed into place, never rewritten.
fn libgc_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = out_dir().join("libgc");
        std::fs::create_dir_all(&dir).expect("creating the libgc directory");
        let tmp = dir.join(format!("libgc.so.1.tmp{}", std::process::id()));
        std::fs::copy(lib_dir().join("libdunegc.so"), &tmp).expect("copying libdunegc.so");
        std::fs::rename(&tmp, dir.join("libgc.so.1")).expect("installing libgc.so.1");
        let link = dir.join("libgc.so");
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink("libgc.so.1", &link).expect("linking libgc.so");
        }
        dir
    })
}

#[test]
fn bdwgc_program_linked_with_lgc_runs_on_dunegc() {
    let libgc = libgc_dir();
    let ld_path = libgc.to_str().expect("UTF-8 path");
    let check = |out: &Output, who: &str| {
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{who}: {}\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains("total 699970000 string abc finalized 1"),
            "{who}: {stdout}"
        );
        stdout
    };

    // Built with dunegc's gc.h, linked with -lgc, found through LD_LIBRARY_PATH.
    let exe = compile(
        "bdwgc_program.c",
        "bdwgc_program_ours",
        Header::Dunegc,
        Link::Lgc(libgc),
    );
    let out = run(&exe, &[], &[("LD_LIBRARY_PATH", ld_path)]);
    let stdout = check(&out, "dunegc header");
    assert!(stdout.contains("collector dunegc"), "{stdout}");

    // Built against the real bdwgc (header and libgc.so.1), then run on dunegc by
    // LD_LIBRARY_PATH alone.
    if !bdwgc_header_installed("bdwgc_program against bdwgc's own header and library") {
        return;
    }
    let exe = compile(
        "bdwgc_program.c",
        "bdwgc_program_bdwgc",
        Header::Bdwgc,
        Link::SystemLgc,
    );
    let out = run(&exe, &[], &[]);
    let stdout = check(&out, "bdwgc itself");
    assert!(stdout.contains("collector bdwgc"), "{stdout}");
    let out = run(&exe, &[], &[("LD_LIBRARY_PATH", ld_path)]);
    let stdout = check(&out, "bdwgc binary on dunegc");
    assert!(stdout.contains("collector dunegc"), "{stdout}");
}

#[test]
fn test_programs_built_with_bdwgc_header_run_on_dunegc() {
    if !bdwgc_header_installed("test programs with bdwgc's header") {
        return;
    }
    let libgc = libgc_dir();
    let ld_path = libgc.to_str().expect("UTF-8 path");
    for name in [
        "trees_lists",
        "realloc_chains",
        "finalizers",
        "roots",
        "threads",
        "bad_input",
    ] {
        let exe = compile(
            &format!("{name}.c"),
            &format!("{name}_bdwgc_header"),
            Header::Bdwgc,
            Link::Lgc(libgc),
        );
        run_pass(&exe, &[], &[("LD_LIBRARY_PATH", ld_path)]);
    }
}

#[test]
fn header_compiles_as_cplusplus() {
    let exe = compile("header_cpp.cc", "header_cpp", Header::Dunegc, Link::Shared);
    run_pass(&exe, &[], &[]);
}

#[test]
fn alloc_lock_blocking_start_callback_and_heap_queries() {
    run_on_both_collectors("callbacks", true);
}

#[test]
fn disappearing_links_clear_exactly_when_objects_die() {
    run_on_both_collectors("links", true);
}

#[test]
fn finalizer_notifier_once_per_collection_on_demand() {
    run_on_both_collectors("notifier", false);
}

/// Runs the C program `tests/c/NAME.c`, which asserts its own expectations, on dunegc in
/// normal and incremental mode (and, with `mprotect`, incremental under
/// `DUNEGC_DIRTY=mprotect`); then, where bdwgc's header is installed, builds it against
/// bdwgc and runs it on bdwgc itself and, unchanged, on dunegc, so the expectations are
/// bdwgc's.
fn run_on_both_collectors(name: &str, mprotect: bool) {
    let src = format!("{name}.c");
    let exe = compile(&src, name, Header::Dunegc, Link::Shared);
    let out = run_pass(&exe, &[], &[]);
    assert!(out.contains("incremental 0"), "{out}");
    let out = run_pass(&exe, &["inc"], &[]);
    assert!(out.contains("incremental 1"), "{out}");
    if mprotect {
        let out = run_pass(&exe, &["inc"], &[("DUNEGC_DIRTY", "mprotect")]);
        assert!(out.contains("incremental 1"), "{out}");
    }
    if !bdwgc_header_installed(&format!("{src} against bdwgc")) {
        return;
    }
    let exe = compile(
        &src,
        &format!("{name}_bdwgc"),
        Header::Bdwgc,
        Link::SystemLgc,
    );
    for args in [&[][..], &["inc"][..]] {
        run_pass(&exe, args, &[]);
    }
    let libgc = libgc_dir().to_str().expect("UTF-8 path");
    for args in [&[][..], &["inc"][..]] {
        run_pass(&exe, args, &[("LD_LIBRARY_PATH", libgc)]);
    }
}

#[test]
fn non_gc_bytes_counts_uncollectable_objects_apart_from_scheduling() {
    run_on_both_collectors("nongc", false);
    let exe = compile("nongc.c", "nongc_exact", Header::Dunegc, Link::Shared);
    for args in [&["dunegc"][..], &["dunegc", "inc"][..]] {
        run_pass(&exe, args, &[]);
    }
}

#[test]
fn gc_init_collects_once_unless_dont_precollect() {
    let inc_env: &[(&str, &str)] = &[("GC_ENABLE_INCREMENTAL", "1")];
    run_on_both_with(
        "precollect",
        &[
            (&[], &[]),
            (&["inc"], &[]),
            (&["skip"], &[]),
            (&["skip", "inc"], &[]),
            (&["skip"], inc_env),
        ],
    );
}

#[test]
fn gc_rate_and_time_limit_bound_incremental_mark_steps() {
    let one: &[(&str, &str)] = &[("GC_MARKERS", "1")];
    run_on_both_with("rate", &[(&[], one), (&["inc"], one)]);
    let exe = compile("rate.c", "rate_exact", Header::Dunegc, Link::Shared);
    let out = run_pass(&exe, &["inc", "dunegc"], one);
    assert!(out.contains("calls unlimited"), "{out}");
}

/// One run of a test program: its arguments and extra environment.
type Run<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)]);

/// Runs `tests/c/NAME.c` with each `(args, env)` of `runs`: on dunegc, then, where
/// bdwgc's header is installed, built against bdwgc on bdwgc and on dunegc.
fn run_on_both_with(name: &str, runs: &[Run<'_>]) {
    let src = format!("{name}.c");
    let exe = compile(&src, name, Header::Dunegc, Link::Shared);
    for (args, env) in runs {
        run_pass(&exe, args, env);
    }
    if !bdwgc_header_installed(&format!("{src} against bdwgc")) {
        return;
    }
    let exe = compile(
        &src,
        &format!("{name}_bdwgc"),
        Header::Bdwgc,
        Link::SystemLgc,
    );
    let libgc = libgc_dir().to_str().expect("UTF-8 path");
    for (args, env) in runs {
        run_pass(&exe, args, env);
        let mut on_dunegc = env.to_vec();
        on_dunegc.push(("LD_LIBRARY_PATH", libgc));
        run_pass(&exe, args, &on_dunegc);
    }
}

#[test]
fn dont_expand_use_entire_heap_and_allocd_bytes_per_finalizer_steer_heap_growth() {
    run_on_both_with(
        "growth",
        &[
            (&["expand"], &[]),
            (&["expand", "inc"], &[]),
            (&["entire"], &[]),
            (&["entire", "inc"], &[]),
            (&["entire"], &[("GC_USE_ENTIRE_HEAP", "1")]),
            (&["entire"], &[("GC_USE_ENTIRE_HEAP", "0")]),
            (&["fin"], &[]),
            (&["fin", "inc"], &[]),
        ],
    );
    // dunegc's own expectations, exactly.
    let exe = compile("growth.c", "growth_exact", Header::Dunegc, Link::Shared);
    for mode in ["expand", "entire", "fin"] {
        run_pass(&exe, &[mode, "dunegc"], &[]);
    }
    run_pass(&exe, &["expand", "dunegc"], &[("DUNEGC_DONT_EXPAND", "1")]);
}

#[test]
fn await_finalize_proc_sees_each_object_as_it_is_queued() {
    run_on_both_collectors("await_finalize", true);
}

#[test]
fn on_heap_resize_follows_the_heap_size() {
    run_on_both_collectors("heap_resize", false);
    let exe = compile(
        "heap_resize.c",
        "heap_resize_exact",
        Header::Dunegc,
        Link::Shared,
    );
    for args in [&["dunegc"][..], &["dunegc", "inc"][..]] {
        run_pass(&exe, args, &[]);
    }
}

#[test]
fn print_free_list_lists_exactly_the_freed_slots() {
    run_on_both_collectors("freelist", true);
}

#[test]
fn max_retries_collections_before_out_of_memory() {
    let exe = compile("max_retries.c", "max_retries", Header::Dunegc, Link::Shared);
    for args in [&[][..], &["inc"][..]] {
        run_pass(&exe, args, &[]);
    }
}

#[test]
fn signals_chosen_before_init_leave_sigpwr_and_sigxcpu_to_the_program() {
    run_on_both_collectors("signals", true);
}

#[test]
fn code_in_objects_runs_when_pages_are_executable() {
    run_on_both_collectors("exec_pages", true);
}

#[test]
fn thread_events_name_each_stopped_thread_while_it_is_stopped() {
    run_on_both_collectors("thread_events", true);
}

#[test]
fn custom_kinds_scan_only_what_their_descriptor_names() {
    run_on_both_collectors("kinds", true);
}

#[test]
fn typed_objects_keep_alive_only_through_pointer_words() {
    run_on_both_collectors("typed", true);
}

#[test]
fn without_interior_pointers_only_bases_and_displacements_keep_objects() {
    run_on_both_collectors("interior", true);
}

#[test]
fn push_other_roots_keeps_what_it_pushes() {
    run_on_both_collectors("markroots", true);
}

#[test]
fn debug_allocator_reports_smashed_objects_with_file_and_line() {
    run_on_both_collectors("debug", true);
}

#[test]
fn leak_mode_reports_exactly_the_leaked_objects() {
    run_on_both_collectors("leak", true);
}

#[test]
fn gc_find_leak_environment_variable_turns_leak_mode_on() {
    let exe = compile("leak.c", "leak_env", Header::Dunegc, Link::Shared);
    run_pass(&exe, &[], &[("GC_FIND_LEAK", "1")]);
    run_pass(&exe, &["inc"], &[("GC_FIND_LEAK", "1")]);
    if bdwgc_header_installed("leak.c with GC_FIND_LEAK against bdwgc") {
        let exe = compile("leak.c", "leak_env_bdwgc", Header::Bdwgc, Link::SystemLgc);
        run_pass(&exe, &[], &[("GC_FIND_LEAK", "1")]);
    }
}

#[test]
fn more_bdwgc_environment_variables() {
    let exe = compile(
        "env_config.c",
        "env_config_more",
        Header::Dunegc,
        Link::Shared,
    );
    // GC_PRINT_VERBOSE_STATS prints statistics as GC_PRINT_STATS does.
    let out = run(&exe, &[], &[("GC_PRINT_VERBOSE_STATS", "1")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.contains("dunegc statistics"),
        "{err}"
    );
    // GC_MARKERS / GC_NPROCS: a positive count is accepted silently, a bad one warned.
    for var in ["GC_MARKERS", "GC_NPROCS"] {
        let out = run(&exe, &[], &[(var, "2")]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && !err.contains("Bad value"), "{err}");
        let out = run(&exe, &[], &[(var, "zero")]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && err.contains(&format!("Bad value 'zero' for {var}")),
            "{err}"
        );
    }
}

#[test]
fn invalid_free_aborts_or_loops_with_gc_loop_on_abort() {
    use std::os::unix::process::ExitStatusExt;
    let exe = compile(
        "bad_pointer_abort.c",
        "bad_pointer_abort",
        Header::Dunegc,
        Link::Shared,
    );
    let out = run(&exe, &[], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.signal(), Some(libc_sigabrt()), "{err}");
    assert!(
        err.contains("Invalid pointer passed to free(): 0x"),
        "{err}"
    );
    // GC_LOOP_ON_ABORT: still running (looping) well after the message.
    let mut child = Command::new(&exe)
        .env("GC_LOOP_ON_ABORT", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting the program");
    std::thread::sleep(Duration::from_millis(700));
    let still_running = child.try_wait().expect("polling the program").is_none();
    let _ = child.kill();
    let out = child.wait_with_output().expect("reaping the program");
    assert!(still_running, "exited: {}", out.status);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("freeing") && !stdout.contains("not reached"),
        "{stdout}"
    );
}

/// `SIGABRT` on Linux.
fn libc_sigabrt() -> i32 {
    6
}

#[test]
fn registered_thread_keeps_its_stack_only_object_alive() {
    run_on_both_collectors("registered_thread", true);
}

#[test]
fn leak_detector_header_redirects_malloc_and_reports_leaks() {
    run_on_both_collectors("leak_detector", true);
}

#[test]
fn prof_stats_agree_with_the_getters() {
    run_on_both_collectors("prof", false);
}

#[test]
fn java_finalization_off_keeps_only_the_no_order_object() {
    run_on_both_collectors("java_finalization", true);
}

#[test]
fn dump_prints_the_real_sections_roots_and_blocks() {
    run_on_both_collectors("dump", false);
}

#[test]
fn disclaim_procs_resurrect_and_finalized_malloc_finalizes_dropped_objects() {
    run_on_both_collectors("disclaim", true);
}

#[test]
fn disclaim_stress_sees_only_unreachable_intact_objects() {
    run_on_both_collectors("disclaim_stress", true);
}

#[test]
fn gcj_objects_keep_alive_only_through_their_vtable_descriptor() {
    run_on_both_collectors("gcj", true);
}

#[test]
fn malloc_many_inline_alloc_and_atomic_uncollectable() {
    run_on_both_collectors("many", true);
}

#[test]
fn togglerefs_strong_weak_and_drop() {
    run_on_both_collectors("toggleref", true);
}

/// The "expect-... " lines `finalize_extra.c` prints must appear, without the prefix,
/// in what `GC_dump_finalization` printed.
fn check_dump_expectations(out: &str) {
    let mut n = 0;
    for line in out.lines() {
        for prefix in ["expect-link ", "expect-fin "] {
            if let Some(want) = line.strip_prefix(prefix) {
                assert!(
                    out.lines().any(|l| l == want),
                    "GC_dump_finalization did not print '{want}':\n{out}"
                );
                n += 1;
            }
        }
    }
    assert_eq!(n, 2, "{out}");
}

#[test]
fn finalize_all_unreachable_finalizers_variables_and_dump() {
    run_on_both_collectors("finalize_extra", true);
    let exe = compile(
        "finalize_extra.c",
        "finalize_extra_dump",
        Header::Dunegc,
        Link::Shared,
    );
    for args in [&[][..], &["inc"][..]] {
        check_dump_expectations(&run_pass(&exe, args, &[]));
    }
}

/// Runs `tests/c/NAME.c` on dunegc (shared library) with `args`, in normal and
/// incremental mode and incremental under `DUNEGC_DIRTY=mprotect`; returns the stdout
/// and stderr of the normal run. (These programs use names bdwgc exports without
/// declaring them, or expectations specific to dunegc's event order, so they are not
/// also run on bdwgc.)
fn run_on_dunegc_modes(name: &str, args: &[&str]) -> (String, String) {
    let exe = compile(&format!("{name}.c"), name, Header::Dunegc, Link::Shared);
    let out = run(&exe, args, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success() && stdout.contains("PASS") && stdout.contains("incremental 0"),
        "{name} {args:?} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    let inc: Vec<&str> = args.iter().copied().chain(["inc"]).collect();
    let o = run_pass(&exe, &inc, &[]);
    assert!(o.contains("incremental 1"), "{o}");
    let o = run_pass(&exe, &inc, &[("DUNEGC_DIRTY", "mprotect")]);
    assert!(o.contains("incremental 1"), "{o}");
    (stdout, stderr)
}

#[test]
fn control_variables_stop_funcs_events_and_printing() {
    let (stdout, stderr) = run_on_dunegc_modes("control", &[]);
    assert!(
        stdout.contains("printf 7 x 2.5 1234567890123\n"),
        "{stdout}"
    );
    assert!(stderr.contains("err_printf 8\n"), "{stderr}");
    assert!(stderr.contains("log_printf to stderr\n"), "{stderr}");
}

#[test]
fn excluded_and_filtered_static_roots_keep_nothing_alive() {
    run_on_dunegc_modes("staticroots", &[]);
}

#[test]
fn suspended_threads_stopped_world_alloc_lock_and_fork() {
    run_on_dunegc_modes("threadctl", &[]);
    run_on_dunegc_modes("threadctl", &["manual"]);
}

#[test]
fn declared_altstack_and_stack_bottom_bound_and_extend_the_stack_scan() {
    for args in [&[][..], &["preset"][..]] {
        let (stdout, _) = run_on_dunegc_modes("altstack", args);
        assert!(stdout.contains("bounded: "), "{stdout}");
    }
}

#[test]
fn finishing_pauses_are_abandoned_at_the_time_limit_at_most_max_prior_attempts_times() {
    let one: &[(&str, &str)] = &[("GC_MARKERS", "1")];
    let mprotect: &[(&str, &str)] = &[("DUNEGC_DIRTY", "mprotect")];
    run_on_both_with(
        "prior_attempts",
        &[
            (&["inc", "attempts=2", "limit=0"], &[]),
            (&["inc", "attempts=3", "limit=0"], one),
            (&["inc", "attempts=1", "limit=0"], mprotect),
            (&["inc", "attempts=0", "limit=0"], &[]),
            (&["inc", "attempts=1"], &[]),
            (&["attempts=2", "limit=0"], &[]),
        ],
    );
}
