//! Builds the bdwgc side of the peer comparison (benches/c/) and links it
//! against the system bdwgc (Debian `libgc-dev`, installed by
//! scripts/setup.sh).
//!
//! bdwgc is found with `pkg-config bdw-gc`, else by its header in the usual
//! include directories (then `-lgc`). If it is absent the crate still builds:
//! `cfg(dunegc_no_bdwgc)` is set and `bdwgc::run` returns
//! `Error::Unsupported` naming the fix.

use std::path::{Path, PathBuf};

const C_SOURCES: &[&str] = &[
    "c/runtime.c",
    "c/gcbench.c",
    "c/linkedlist.c",
    "c/hashmap.c",
    "c/xml.c",
];
const C_HEADERS: &[&str] = &["c/workloads.h", "c/runtime.h"];
const FALLBACK_INCLUDE_DIRS: &[&str] = &["/usr/include", "/usr/local/include"];

fn main() {
    println!("cargo::rustc-check-cfg=cfg(dunegc_no_bdwgc)");
    println!("cargo::rerun-if-changed=build.rs");
    for file in C_SOURCES.iter().chain(C_HEADERS) {
        println!("cargo::rerun-if-changed={file}");
    }

    let Some(include_dirs) = find_bdwgc() else {
        // Missing paths count as changed: the probe reruns on every build
        // until bdwgc is installed, so no `cargo clean` is needed after it.
        for dir in FALLBACK_INCLUDE_DIRS {
            println!("cargo::rerun-if-changed={dir}/gc/gc.h");
        }
        println!("cargo::rustc-cfg=dunegc_no_bdwgc");
        return;
    };
    // Rebuild when bdwgc is upgraded or removed.
    for dir in &include_dirs {
        println!("cargo::rerun-if-changed={}", dir.join("gc/gc.h").display());
    }

    let mut build = cc::Build::new();
    build
        .files(C_SOURCES)
        .includes(include_dirs)
        .opt_level(2)
        .std("c11")
        .define("_GNU_SOURCE", None)
        .warnings(true)
        .extra_warnings(true)
        .flag_if_supported("-Wno-unused-parameter");
    build.compile("dunegc_bdwgc");
}

/// Probe for bdwgc; on success the link flags are already emitted.
/// Returns the include directories to compile with.
fn find_bdwgc() -> Option<Vec<PathBuf>> {
    println!("cargo::rerun-if-env-changed=PKG_CONFIG_PATH");
    let pkg_config_error = match pkg_config::Config::new()
        .atleast_version("7.2")
        .probe("bdw-gc")
    {
        Ok(lib) if !lib.include_paths.is_empty() => return Some(lib.include_paths),
        // `-I/usr/include` is implied, so pkg-config may list no directory.
        Ok(_) => return Some(vec![PathBuf::from("/usr/include")]),
        Err(e) => e,
    };
    let Some(dir) = FALLBACK_INCLUDE_DIRS
        .iter()
        .find(|d| Path::new(d).join("gc/gc.h").exists())
    else {
        println!(
            "cargo::warning=bdwgc (libgc-dev) not found, so the bdwgc comparison is disabled; \
             run scripts/setup.sh (the build picks it up then). pkg-config said: {}",
            pkg_config_error.to_string().replace('\n', " ")
        );
        return None;
    };
    println!("cargo::rustc-link-lib=gc");
    Some(vec![PathBuf::from(dir)])
}
