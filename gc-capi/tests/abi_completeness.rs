//! ABI completeness against bdwgc 8.2 (issue 17): every `GC_*` symbol that the system's
//! `libgc.so.1` exports must be exported by `libdunegc.so` with the same kind (function
//! or data object), except those still listed in `abi_missing.txt`.
//!
//! The test prints `exported N/M` and the missing names. It fails if
//! - a symbol is missing that `abi_missing.txt` does not list (a regression);
//! - a symbol that `abi_missing.txt` lists is exported now (the list is stale: remove
//!   the name, so the list only shrinks);
//! - a symbol is exported with the other kind (a function where bdwgc has a variable,
//!   or the reverse).
//!
//! It also prints the bdwgc exports that no public header in `/usr/include/gc/` names
//! (bdwgc-internal exports), for the record. `abi_internal.txt` lists those of them left
//! out on purpose, each with its reason (kept apart from `abi_missing.txt`, which is
//! work still to do); the test reports them and fails if a listed name is not a bdwgc
//! export, is named in a public header (then it is public API and must be exported), or
//! is exported by dunegc after all. Without libgc-dev (`scripts/setup.sh`) the test
//! prints a skip line.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");
const BDWGC_LIB: &str = "/usr/lib/x86_64-linux-gnu/libgc.so.1";
const BDWGC_HEADERS: &str = "/usr/include/gc";

/// What a dynamic symbol is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// `T` (text): a function.
    Function,
    /// `B`, `D`, `R` (bss, data, read-only data): a variable.
    Object,
}

/// The defined dynamic `GC_*` symbols of `lib`, from `nm -D --defined-only`.
fn exports(lib: &Path) -> BTreeMap<String, Kind> {
    let out = Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(lib)
        .output()
        .expect("running nm (binutils)");
    assert!(
        out.status.success(),
        "nm {} failed: {}",
        lib.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut map = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [_, kind, name] = fields[..] else {
            continue;
        };
        let name = name.split('@').next().unwrap_or(name);
        if !name.starts_with("GC_") {
            continue;
        }
        let kind = match kind {
            "T" | "t" | "W" | "i" => Kind::Function,
            "B" | "b" | "D" | "d" | "R" | "r" | "V" => Kind::Object,
            other => panic!(
                "{}: unexpected symbol type {other} for {name}",
                lib.display()
            ),
        };
        map.insert(name.to_owned(), kind);
    }
    map
}

/// Every `GC_*` identifier that appears in bdwgc's public headers.
fn header_names() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let dir = std::fs::read_dir(BDWGC_HEADERS).expect("reading /usr/include/gc");
    for entry in dir {
        let path = entry.expect("a directory entry").path();
        if path.extension().is_none_or(|e| e != "h") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("reading a bdwgc header");
        let bytes = text.as_bytes();
        let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
        let mut i = 0;
        while i < bytes.len() {
            if !ident(bytes[i]) {
                i += 1;
                continue;
            }
            let start = i;
            while i < bytes.len() && ident(bytes[i]) {
                i += 1;
            }
            let word = &text[start..i];
            if word.starts_with("GC_") {
                names.insert(word.to_owned());
            }
        }
    }
    names
}

/// `libdunegc.so` as cargo built it for this test run (in `deps/`, next to the test
/// binary), else the copy one level up.
fn dunegc_lib() -> PathBuf {
    let exe = std::env::current_exe().expect("the test knows its own path");
    let deps = exe.parent().expect("test binaries live in deps/");
    let so = deps.join("libdunegc.so");
    if so.exists() {
        return so;
    }
    let up = deps
        .parent()
        .expect("deps has a parent")
        .join("libdunegc.so");
    assert!(
        up.exists(),
        "libdunegc.so not built next to {}",
        exe.display()
    );
    up
}

/// The names `abi_missing.txt` lists (one a line; `#` starts a comment).
fn listed_missing() -> BTreeSet<String> {
    let path = Path::new(MANIFEST_DIR).join("tests/abi_missing.txt");
    let text = std::fs::read_to_string(&path).expect("reading tests/abi_missing.txt");
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The names `abi_internal.txt` lists, with their reasons (`name  # reason`).
fn listed_internal() -> BTreeMap<String, String> {
    let path = Path::new(MANIFEST_DIR).join("tests/abi_internal.txt");
    let text = std::fs::read_to_string(&path).expect("reading tests/abi_internal.txt");
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let (name, reason) = l.split_once('#').unwrap_or((l, ""));
            let name = name.trim();
            (!name.is_empty()).then(|| (name.to_owned(), reason.trim().to_owned()))
        })
        .collect()
}

#[test]
fn dunegc_exports_bdwgc_abi() {
    if !Path::new(BDWGC_LIB).exists() || !Path::new(BDWGC_HEADERS).is_dir() {
        eprintln!("SKIPPED ABI completeness: bdwgc (libgc-dev) is not installed; scripts/setup.sh");
        return;
    }
    let bdwgc = exports(Path::new(BDWGC_LIB));
    let ours = exports(&dunegc_lib());
    let declared = header_names();
    let listed = listed_missing();
    let internal_left_out = listed_internal();

    let missing: Vec<&String> = bdwgc
        .keys()
        .filter(|n| !ours.contains_key(*n) && !internal_left_out.contains_key(*n))
        .collect();
    let exported = bdwgc.len() - missing.len() - internal_left_out.len();
    println!(
        "exported {exported}/{} ({} bdwgc-internal left out on purpose)",
        bdwgc.len(),
        internal_left_out.len()
    );
    for (name, reason) in &internal_left_out {
        println!("  left out (internal): {name}: {reason}");
    }
    println!("missing ({}):", missing.len());
    for name in &missing {
        println!("  {name}");
    }
    let internal: Vec<&String> = bdwgc.keys().filter(|n| !declared.contains(*n)).collect();
    println!(
        "bdwgc exports named in no public header ({}): {internal:?}",
        internal.len()
    );

    let mut problems = Vec::new();
    for name in &missing {
        if !listed.contains(*name) {
            problems.push(format!("{name} is missing and not in abi_missing.txt"));
        }
    }
    for name in &listed {
        if ours.contains_key(name) {
            problems.push(format!(
                "{name} is exported now: remove it from abi_missing.txt"
            ));
        } else if !bdwgc.contains_key(name) {
            problems.push(format!("{name} in abi_missing.txt is not a bdwgc export"));
        }
    }
    for (name, reason) in &internal_left_out {
        if !bdwgc.contains_key(name) {
            problems.push(format!("{name} in abi_internal.txt is not a bdwgc export"));
        } else if declared.contains(name) {
            problems.push(format!(
                "{name} in abi_internal.txt is named in a public bdwgc header: export it"
            ));
        } else if ours.contains_key(name) {
            problems.push(format!(
                "{name} is exported now: remove it from abi_internal.txt"
            ));
        } else if listed.contains(name) {
            problems.push(format!(
                "{name} is in both abi_internal.txt and abi_missing.txt"
            ));
        }
        if reason.is_empty() {
            problems.push(format!("{name} in abi_internal.txt has no reason"));
        }
    }
    for (name, kind) in &bdwgc {
        if let Some(k) = ours.get(name) {
            if k != kind {
                problems.push(format!(
                    "{name} is exported as {k:?}, bdwgc exports it as {kind:?}"
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "ABI check failed:\n{}",
        problems.join("\n")
    );
}
