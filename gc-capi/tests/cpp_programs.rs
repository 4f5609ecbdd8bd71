//! The C++ interface: `gc_cpp.h` / `gc_allocator.h` (bdwgc's headers, shipped under
//! `include/` in bdwgc's layout) and dunegc's `libgccpp.so.1` (`cpp/gc_cpp.cc`: the
//! global `operator new`/`delete` over `GC_MALLOC_UNCOLLECTABLE`/`GC_FREE`, and
//! `GC_throw_bad_alloc`, as Debian's libgccpp exports). `tests/c/gc_cpp.cc` checks
//! itself; it runs built with dunegc's headers and libraries, built against bdwgc on
//! bdwgc, and that bdwgc build on dunegc through `LD_LIBRARY_PATH` (checked with ldd).

use std::path::{Path, PathBuf};
use std::process::Command;

const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");
const TMP_DIR: &str = env!("CARGO_TARGET_TMPDIR");

/// Run `cmd`, requiring success; returns stdout.
fn ok(cmd: &mut Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A directory with dunegc as `libgc.so.1` and dunegc's `libgccpp.so.1` built from
/// `cpp/gc_cpp.cc` against it, with the unversioned links.
fn libs_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test knows its own path");
    let deps = exe.parent().expect("tests live in deps/");
    let so = [deps.join("libdunegc.so"), deps.join("../libdunegc.so")]
        .into_iter()
        .find(|p| p.exists())
        .expect("cargo builds libdunegc.so before the tests");
    let dir = Path::new(TMP_DIR).join("cpp-libs");
    std::fs::create_dir_all(&dir).expect("creating the library directory");
    std::fs::copy(&so, dir.join("libgc.so.1")).expect("installing libgc.so.1");
    let include = Path::new(MANIFEST_DIR).join("include");
    ok(
        Command::new("g++")
            .args(["-shared", "-fPIC", "-O1", "-Wall", "-Werror", "-I"])
            .arg(&include)
            .arg(Path::new(MANIFEST_DIR).join("cpp/gc_cpp.cc"))
            .arg("-o")
            .arg(dir.join("libgccpp.so.1"))
            .arg("-L")
            .arg(&dir)
            .arg("-l:libgc.so.1"),
        "building libgccpp.so.1",
    );
    for name in ["libgc", "libgccpp"] {
        let link = dir.join(format!("{name}.so"));
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(format!("{name}.so.1"), &link).expect("linking .so");
    }
    dir
}

fn compile(exe: &Path, dunegc: Option<&Path>) {
    let mut cmd = Command::new("g++");
    cmd.args(["-std=gnu++17", "-O1", "-g", "-Wall", "-Wextra"]);
    if let Some(dir) = dunegc {
        cmd.arg("-I").arg(Path::new(MANIFEST_DIR).join("include"));
        cmd.arg("-L").arg(dir);
    }
    cmd.arg(Path::new(MANIFEST_DIR).join("tests/c/gc_cpp.cc"))
        .arg("-o")
        .arg(exe)
        .args(["-lgccpp", "-lgc", "-lpthread"]);
    ok(&mut cmd, "compiling gc_cpp.cc");
}

fn run(exe: &Path, args: &[&str], ld_path: Option<&Path>) {
    let mut cmd = Command::new(exe);
    cmd.args(args).env_remove("LD_LIBRARY_PATH");
    for (key, _) in std::env::vars_os() {
        let k = key.to_string_lossy();
        if k.starts_with("GC_") || k.starts_with("DUNEGC_") {
            cmd.env_remove(&key);
        }
    }
    if let Some(d) = ld_path {
        cmd.env("LD_LIBRARY_PATH", d);
        let ldd = ok(
            Command::new("ldd").arg(exe).env("LD_LIBRARY_PATH", d),
            "ldd",
        );
        for lib in ["libgc.so", "libgccpp.so"] {
            let line = ldd
                .lines()
                .find(|l| l.contains(lib))
                .unwrap_or_else(|| panic!("{lib} not loaded:\n{ldd}"));
            assert!(line.contains(TMP_DIR), "{lib} is not dunegc's: {line}");
        }
    }
    let stdout = ok(&mut cmd, &format!("{} {args:?}", exe.display()));
    assert!(stdout.contains("PASS"), "{stdout}");
}

#[test]
fn gc_cpp_classes_allocators_and_global_new() {
    let dir = libs_dir();
    let ours = Path::new(TMP_DIR).join("gc_cpp_dunegc");
    compile(&ours, Some(&dir));
    for args in [&[][..], &["inc"][..]] {
        run(&ours, args, Some(&dir));
    }
    let system = [
        "/usr/include/gc/gc_cpp.h",
        "/usr/lib/x86_64-linux-gnu/libgccpp.so",
    ];
    if !system.iter().all(|p| Path::new(p).exists()) {
        eprintln!("SKIPPED gc_cpp.cc against bdwgc: libgc-dev's C++ parts are not installed");
        return;
    }
    let theirs = Path::new(TMP_DIR).join("gc_cpp_bdwgc");
    compile(&theirs, None);
    for args in [&[][..], &["inc"][..]] {
        run(&theirs, args, None);
        run(&theirs, args, Some(&dir));
    }
}
