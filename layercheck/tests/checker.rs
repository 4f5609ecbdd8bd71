//! The checker on small fixture crates written to a temporary directory.

use std::fs;
use std::path::{Path, PathBuf};

/// A fixture crate: `files` are (path under the crate dir, contents).
fn fixture(name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("layercheck-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    for (path, text) in files {
        let p = dir.join(path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }
    dir
}

const LIB: &str =
    "//! root\npub mod arch;\npub mod paging;\npub mod monitor;\npub use paging::Pte;\n";
const ARCH: &str = "//! arch\npub fn stub() {}\n";
const PAGING: &str =
    "//! paging\nuse crate::arch::stub;\npub struct Pte;\npub fn walk() { stub() }\n";
const MONITOR: &str =
    "//! monitor\nuse crate::{arch, paging::{walk, Pte}};\npub fn run() { arch::stub(); walk(); let _ = Pte; }\n";
const LAYERS: &str = "# bottom first\narch\npaging\nmonitor\n";

fn clean(name: &str) -> PathBuf {
    fixture(
        name,
        &[
            ("LAYERS", LAYERS),
            ("src/lib.rs", LIB),
            ("src/arch.rs", ARCH),
            ("src/paging/mod.rs", PAGING),
            ("src/monitor.rs", MONITOR),
        ],
    )
}

fn problems(dir: &Path) -> Vec<String> {
    layercheck::check_crate(dir).err().unwrap_or_default()
}

#[test]
fn clean_tree_passes() {
    let dir = clean("clean");
    assert_eq!(problems(&dir), Vec::<String>::new());
}

#[test]
fn added_upward_import_fails_naming_file_line_and_layers() {
    let dir = clean("upward");
    fs::write(
        dir.join("src/paging/mod.rs"),
        format!("{PAGING}\nfn up() {{\n    crate::monitor::run();\n}}\n"),
    )
    .unwrap();
    let p = problems(&dir);
    assert_eq!(p.len(), 1, "{p:?}");
    let msg = &p[0];
    assert!(
        msg.starts_with("src/paging/mod.rs:7: upward import"),
        "{msg}"
    );
    assert!(msg.contains("`paging` (layer 2)"), "{msg}");
    assert!(msg.contains("`monitor` (layer 3)"), "{msg}");
    assert!(msg.contains("crate::monitor::run"), "{msg}");
}

#[test]
fn upward_import_in_nested_group_fails() {
    let dir = clean("nested");
    fs::write(
        dir.join("src/arch.rs"),
        "//! arch\nuse crate::{\n    error::E,\n    paging::{self, Pte},\n};\npub fn stub() {}\n",
    )
    .unwrap();
    fs::write(dir.join("src/error.rs"), "//! e\npub struct E;\n").unwrap();
    fs::write(dir.join("LAYERS"), "arch error\npaging\nmonitor\n").unwrap();
    let p = problems(&dir);
    // `paging` and `paging::Pte`, both at line 4; `error` is the same layer.
    assert_eq!(p.len(), 2, "{p:?}");
    assert!(p.iter().all(|m| m.starts_with("src/arch.rs:4:")), "{p:?}");
}

#[test]
fn baseline_allows_known_violation_and_stale_entry_fails() {
    let dir = clean("baseline");
    fs::write(
        dir.join("src/arch.rs"),
        "//! arch\nuse crate::monitor::run;\npub fn stub() {}\n",
    )
    .unwrap();
    assert_eq!(problems(&dir).len(), 1);
    fs::write(dir.join("LAYERS.baseline"), "arch -> monitor\n").unwrap();
    assert_eq!(problems(&dir), Vec::<String>::new());
    // The violation is fixed: the baseline entry must go too.
    fs::write(dir.join("src/arch.rs"), ARCH).unwrap();
    let p = problems(&dir);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].contains("stale entry `arch -> monitor`"), "{p:?}");
}

#[test]
fn reexport_from_root_resolves_to_its_module() {
    let dir = clean("reexport");
    // `crate::Pte` is `paging::Pte`, re-exported by lib.rs: from `arch` it is upward.
    fs::write(
        dir.join("src/arch.rs"),
        "//! arch\nuse crate::Pte;\npub fn stub() {}\n",
    )
    .unwrap();
    let p = problems(&dir);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].contains("from `paging` (layer 2)"), "{p:?}");
}

#[test]
fn comments_strings_and_test_modules_are_not_imports() {
    let dir = clean("ignored");
    fs::write(
        dir.join("src/arch.rs"),
        "//! See [`crate::monitor::run`].\n/* crate::monitor */\npub fn stub() { let _ = \"crate::monitor::run\"; }\n\
         #[cfg(test)]\nmod tests {\n    use crate::monitor::run;\n    fn f() { run() }\n}\n",
    )
    .unwrap();
    assert_eq!(problems(&dir), Vec::<String>::new());
}

#[test]
fn undeclared_module_fails() {
    let dir = clean("undeclared");
    fs::write(dir.join("src/extra.rs"), "//! extra\n").unwrap();
    let p = problems(&dir);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].contains("module `extra` is in no layer"), "{p:?}");
}

#[test]
fn super_paths_resolve_against_the_file() {
    let m = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let imps = layercheck::imports(
        "use super::pte::Pte;\nfn f() { super::super::monitor::run() }\n",
        &m(&["paging", "walker"]),
    );
    let paths: Vec<_> = imps.iter().map(|i| (i.path.join("::"), i.line)).collect();
    assert_eq!(
        paths,
        vec![
            ("paging::pte::Pte".to_string(), 1),
            ("monitor::run".to_string(), 2)
        ]
    );
}

#[test]
fn grouped_use_paths_are_parsed() {
    let imps = layercheck::imports(
        "use crate::{a, b::c, d::{self, e::{f as g, *}}};\nlet x = crate::h::i();\n",
        &[],
    );
    let paths: Vec<_> = imps.iter().map(|i| i.path.join("::")).collect();
    assert_eq!(paths, ["a", "b::c", "d", "d::e::f", "d::e", "h::i"]);
}

#[test]
fn nested_module_paths_take_the_longest_declared_prefix() {
    let l = layercheck::Layers::parse("api::options\nheap\napi\n").unwrap();
    let p = |s: &str| s.split("::").map(String::from).collect::<Vec<_>>();
    assert_eq!(
        l.owner(&p("api::options::Options")).as_deref(),
        Some("api::options")
    );
    assert_eq!(l.owner(&p("api::gc::Gc")).as_deref(), Some("api"));
    assert_eq!(l.owner(&p("heap")).as_deref(), Some("heap"));
    assert_eq!(l.owner(&p("world")), None);
    assert!(layercheck::Layers::parse("a\na\n").is_err());
}
