//! The layer check of this workspace's crates: fails on an upward import that is not in a
//! crate's `LAYERS.baseline`, and on a baseline entry that no longer occurs.

use std::path::Path;

#[test]
fn workspace_crates_respect_their_layers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut problems = Vec::new();
    for krate in ["kmod", "gc-core", "dune-hw", "privsep"] {
        if let Err(p) = layercheck::check_crate(&root.join(krate)) {
            problems.extend(p.into_iter().map(|p| format!("{krate}/{p}")));
        }
    }
    assert!(
        problems.is_empty(),
        "layer check failed:\n{}",
        problems.join("\n")
    );
}
