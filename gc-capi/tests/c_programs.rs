//! C programs compiled with gcc against `gc.h` and the library built by this crate
//! (`libdunegc.so` or `libdunegc.a` in the test's `deps/` directory), then run.
//! Each program checks itself (`CHECK`) and prints `PASS`; some print values that the
//! tests compare. Every program is its own process: the collector's global heap and
//! signal handlers never meet the test harness.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
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
    /// `-lgc` from `dir`, no rpath (found at run time through `LD_LIBRARY_PATH`).
    Lgc {
        dir: &'a Path,
        include: Option<&'a Path>,
    },
}

/// Compile `tests/c/<name>.c` into `<tmp>/capi-tests/<exe_name>`.
fn compile(name: &str, exe_name: &str, link: Link<'_>) -> PathBuf {
    let src = Path::new(MANIFEST_DIR)
        .join("tests/c")
        .join(format!("{name}.c"));
    let exe = out_dir().join(exe_name);
    let lib = lib_dir();
    let mut cmd = Command::new("gcc");
    cmd.args(["-std=gnu11", "-O1", "-g", "-Wall", "-Wextra", "-Werror"]);
    cmd.arg("-Wno-alloc-size-larger-than");
    match &link {
        Link::Lgc {
            include: Some(inc), ..
        } => {
            cmd.arg("-I").arg(inc);
        }
        Link::Lgc { include: None, .. } => {}
        _ => {
            cmd.arg("-I").arg(Path::new(MANIFEST_DIR).join("include"));
        }
    }
    cmd.arg("-I").arg(Path::new(MANIFEST_DIR).join("tests/c"));
    cmd.arg(&src).arg("-o").arg(&exe);
    match link {
        Link::Shared => {
            cmd.arg("-L").arg(lib).arg("-ldunegc");
            cmd.arg(format!("-Wl,-rpath,{}", lib.display()));
        }
        Link::Static => {
            cmd.arg(lib.join("libdunegc.a"));
            cmd.args(["-lgcc_s", "-lutil", "-lrt", "-lm", "-ldl"]);
        }
        Link::Lgc { dir, .. } => {
            cmd.arg("-L").arg(dir).arg("-lgc");
        }
    }
    cmd.args(["-lpthread", "-ldl"]);
    let out = cmd
        .output()
        .expect("running gcc (install build-essential: scripts/setup.sh)");
    assert!(
        out.status.success(),
        "gcc failed for {name}:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    exe
}

/// Run a program with a clean collector environment plus `env`; kill it after TIMEOUT.
fn run(exe: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
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
    let exe = compile("trees_lists", "trees_lists", Link::Shared);
    let out = run_pass(&exe, &[], &[]);
    assert!(value_after(&out, "gc_no") > 0, "no collection ran:\n{out}");
}

#[test]
fn static_library_links_and_runs() {
    let exe = compile("trees_lists", "trees_lists_static", Link::Static);
    run_pass(&exe, &[], &[]);
}

#[test]
fn realloc_chains_keep_contents() {
    let exe = compile("realloc_chains", "realloc_chains", Link::Shared);
    run_pass(&exe, &[], &[]);
}

#[test]
fn finalizers_ordered_unordered_and_on_demand() {
    let exe = compile("finalizers", "finalizers", Link::Shared);
    run_pass(&exe, &[], &[]);
}

#[test]
fn incremental_mode_via_gc_enable_incremental() {
    let exe = compile("incremental", "incremental", Link::Shared);
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
    let exe = compile("env_config", "env_config", Link::Shared);
    let text = |out: &Output| String::from_utf8_lossy(&out.stdout).into_owned();

    let out = run(&exe, &[], &[]);
    assert!(out.status.success());
    assert!(value_after(&text(&out), "gc_no") > 0, "{}", text(&out));

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
    assert_eq!(value_after(&text(&out), "gc_no"), 0, "{}", text(&out));
    assert_eq!(
        value_after(&text(&out), "after gcollect"),
        0,
        "{}",
        text(&out)
    );

    let out = run(&exe, &[], &[("GC_PRINT_STATS", "1")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("dunegc statistics"), "{err}");
}

#[test]
fn threads_allocate_concurrently() {
    let exe = compile("threads", "threads", Link::Shared);
    run_pass(&exe, &[], &[]);
    run_pass(&exe, &[], &[("DUNEGC_DIRTY", "mprotect")]);
}

#[test]
fn add_roots_on_malloc_memory_keeps_objects_alive() {
    let exe = compile("roots", "roots", Link::Shared);
    run_pass(&exe, &[], &[]);
}

#[test]
fn bad_input_warns_and_returns_null() {
    let exe = compile("bad_input", "bad_input", Link::Shared);
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
fn libgc_dir() -> PathBuf {
    let dir = out_dir().join("libgc");
    std::fs::create_dir_all(&dir).expect("creating the libgc directory");
    let so1 = dir.join("libgc.so.1");
    std::fs::copy(lib_dir().join("libdunegc.so"), &so1).expect("copying libdunegc.so");
    let link = dir.join("libgc.so");
    if std::fs::symlink_metadata(&link).is_err() {
        std::os::unix::fs::symlink("libgc.so.1", &link).expect("linking libgc.so");
    }
    dir
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
    let include = Path::new(MANIFEST_DIR).join("include");
    let exe = compile(
        "bdwgc_program",
        "bdwgc_program_ours",
        Link::Lgc {
            dir: &libgc,
            include: Some(&include),
        },
    );
    let out = run(&exe, &[], &[("LD_LIBRARY_PATH", ld_path)]);
    let stdout = check(&out, "dunegc header");
    assert!(stdout.contains("collector dunegc"), "{stdout}");

    // Built against the real bdwgc (header and libgc.so.1), then run on dunegc by
    // LD_LIBRARY_PATH alone.
    let system_header = ["/usr/include/gc.h", "/usr/local/include/gc.h"]
        .iter()
        .any(|p| Path::new(p).exists());
    if !system_header {
        eprintln!("SKIPPED bdwgc_program against bdwgc's own header: libgc-dev is not installed (scripts/setup.sh)");
        return;
    }
    let sys_dir = Path::new("/usr/lib/x86_64-linux-gnu");
    let exe = compile(
        "bdwgc_program",
        "bdwgc_program_bdwgc",
        Link::Lgc {
            dir: sys_dir,
            include: None,
        },
    );
    let out = run(&exe, &[], &[]);
    let stdout = check(&out, "bdwgc itself");
    assert!(stdout.contains("collector bdwgc"), "{stdout}");
    let out = run(&exe, &[], &[("LD_LIBRARY_PATH", ld_path)]);
    let stdout = check(&out, "bdwgc binary on dunegc");
    assert!(stdout.contains("collector dunegc"), "{stdout}");
}
