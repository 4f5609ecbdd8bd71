//! guile-3.0 (Debian's, linked against bdwgc's `libgc.so.1`) runs unchanged on dunegc:
//! `tests/scheme/workload.scm` (closures, hash tables, strings, weak tables, guardians,
//! threads) prints the same lines on bdwgc and on dunegc, each in normal and
//! incremental mode (`GC_ENABLE_INCREMENTAL=1`). dunegc is loaded through
//! `LD_LIBRARY_PATH` as `libgc.so.1`, which `ldd` must confirm.
//!
//! guile's weak tables and thread objects are custom kinds with mark procedures, and it
//! turns interior pointers off (`GC_set_all_interior_pointers(0)`) and registers
//! displacements, so this exercises `gc_mark.h` for real.
//!
//! Every `GC_*` symbol libguile imports must be exported by libdunegc (the test fails
//! naming any that is not).

use std::path::{Path, PathBuf};
use std::process::Command;

const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");
const TMP_DIR: &str = env!("CARGO_TARGET_TMPDIR");

fn guile() -> Option<PathBuf> {
    ["/usr/bin/guile-3.0", "/usr/bin/guile"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// `libdunegc.so` as built for this test (in `deps/`, next to the test binary), copied
/// as `libgc.so.1` into a directory of its own.
fn libgc_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test knows its own path");
    let deps = exe.parent().expect("test binaries live in deps/");
    let so = deps.join("libdunegc.so");
    assert!(so.exists(), "{} was not built", so.display());
    let dir = Path::new(TMP_DIR).join("guile-libgc");
    std::fs::create_dir_all(&dir).expect("creating the libgc directory");
    let tmp = dir.join(format!("libgc.so.1.tmp{}", std::process::id()));
    std::fs::copy(&so, &tmp).expect("copying libdunegc.so");
    std::fs::rename(&tmp, dir.join("libgc.so.1")).expect("installing libgc.so.1");
    dir
}

fn stdout_of(cmd: &mut Command) -> String {
    let out = cmd.output().expect("running a tool");
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The library `ldd` resolves `name` to for `exe` (with `env`).
fn ldd_resolves(exe: &Path, name: &str, env: &[(&str, &str)]) -> String {
    let out = stdout_of(Command::new("ldd").arg(exe).envs(env.iter().copied()));
    out.lines()
        .find(|l| l.trim_start().starts_with(name))
        .and_then(|l| l.split("=>").nth(1))
        .map(|s| s.split_whitespace().next().unwrap_or("").to_owned())
        .unwrap_or_else(|| panic!("ldd {} does not list {name}:\n{out}", exe.display()))
}

fn dynamic_symbols(lib: &str, defined: bool) -> Vec<String> {
    let flag = if defined {
        "--defined-only"
    } else {
        "--undefined-only"
    };
    stdout_of(Command::new("nm").args(["-D", flag, lib]))
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .filter(|s| s.starts_with("GC_"))
        .map(str::to_owned)
        .collect()
}

/// Run the workload; its stdout (it must succeed and finish).
fn run(guile: &Path, env: &[(&str, &str)], who: &str) -> String {
    let script = Path::new(MANIFEST_DIR).join("tests/scheme/workload.scm");
    let out = Command::new(guile)
        .arg("--no-auto-compile")
        .arg(&script)
        .envs(env.iter().copied())
        .output()
        .expect("running guile");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && stdout.contains("(done)"),
        "guile on {who}: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn guile_workload_prints_the_same_on_bdwgc_and_dunegc() {
    let Some(guile) = guile() else {
        eprintln!("SKIPPED guile workload: guile-3.0 is not installed (scripts/setup.sh)");
        return;
    };
    let system_gc = ldd_resolves(&guile, "libgc.so.1", &[]);
    let libguile = ldd_resolves(&guile, "libguile-3.0.so.1", &[]);
    let bdwgc = run(&guile, &[], "bdwgc");
    let bdwgc_inc = run(
        &guile,
        &[("GC_ENABLE_INCREMENTAL", "1")],
        "bdwgc, incremental",
    );
    assert_eq!(bdwgc, bdwgc_inc, "bdwgc's own runs differ");

    let dir = libgc_dir();
    let dir_s = dir.to_str().expect("UTF-8 path");
    let ld = ("LD_LIBRARY_PATH", dir_s);
    let loaded = ldd_resolves(&guile, "libgc.so.1", &[ld]);
    assert_eq!(
        Path::new(&loaded),
        dir.join("libgc.so.1"),
        "with LD_LIBRARY_PATH guile must load dunegc's libgc.so.1, not {system_gc}"
    );
    let have = dynamic_symbols(&loaded, true);
    let mut missing: Vec<String> = dynamic_symbols(&libguile, false)
        .into_iter()
        .filter(|s| !have.contains(s))
        .collect();
    missing.sort();
    missing.dedup();
    assert!(
        missing.is_empty(),
        "libguile needs {missing:?}, which libdunegc does not export"
    );
    for (env, who) in [
        (vec![ld], "dunegc"),
        (
            vec![ld, ("GC_ENABLE_INCREMENTAL", "1")],
            "dunegc, incremental",
        ),
    ] {
        let out = run(&guile, &env, who);
        assert_eq!(
            out, bdwgc,
            "guile on {who} printed something else than on bdwgc"
        );
    }
}
