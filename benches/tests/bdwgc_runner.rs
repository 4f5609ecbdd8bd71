//! Each bdwgc workload at a tiny scale, in both modes, through the runner
//! binary: the checksums the C code reports match values computed here
//! independently, and the metrics are sane.
//!
//! Needs bdwgc (`scripts/setup.sh` installs libgc-dev); without it the crate
//! builds but these tests fail with the fix in the message.

use dunegc_benches::bdwgc::{BdwgcResult, Mode, Runner, Workload};

fn runner() -> Runner {
    Runner::at(env!("CARGO_BIN_EXE_bdwgc-runner"))
}

fn run(workload: Workload, scale: u32, mode: Mode) -> BdwgcResult {
    runner()
        .run(workload, scale, mode)
        .unwrap_or_else(|e| panic!("bdwgc {workload} {scale} {mode}: {e}"))
}

fn check_sane(r: &BdwgcResult, mode: Mode) {
    assert_eq!(r.mode, mode);
    assert_eq!(r.incremental_active, mode == Mode::Incremental, "{r:?}");
    assert!(!r.bdwgc_version.is_empty());
    assert!(r.collections >= 1, "no collection happened: {r:?}");
    assert!(r.n_pauses >= 1, "no pause recorded: {r:?}");
    assert!(r.p99_pause <= r.max_pause, "{r:?}");
    assert!(r.max_world_stopped <= r.max_pause, "{r:?}");
    assert!(r.max_pause <= r.gc_time, "{r:?}");
    assert!(r.gc_time <= r.wall, "{r:?}");
    assert!(
        r.heap_len_bytes > 0 && r.peak_heap_len_bytes >= r.heap_len_bytes,
        "{r:?}"
    );
    assert!(r.peak_rss_bytes > 0, "{r:?}");
}

fn both_modes(workload: Workload, scale: u32, expected_checksum: u64) {
    for mode in [Mode::Full, Mode::Incremental] {
        let r = run(workload, scale, mode);
        assert_eq!((r.workload, r.scale), (workload, scale));
        assert_eq!(r.checksum, expected_checksum, "{workload} {mode}: {r:?}");
        check_sane(&r, mode);
    }
}

/// Nodes in a complete binary tree of depth `d`.
fn tree_size(d: u32) -> u64 {
    (1u64 << (d + 1)) - 1
}

/// Nodes GCBench allocates at `scale` (see benches/c/gcbench.c).
fn gcbench_nodes(scale: u32) -> u64 {
    let stretch = scale + 2;
    let per_depth: u64 = (4..=scale)
        .step_by(2)
        .map(|d| 2 * (2 * tree_size(stretch) / tree_size(d)) * tree_size(d))
        .sum();
    tree_size(stretch) + tree_size(scale) + per_depth
}

#[test]
fn gcbench_counts_nodes() {
    assert_eq!(
        gcbench_nodes(16),
        15_333_862,
        "the classic's allocation count"
    );
    both_modes(Workload::GcBench, 10, gcbench_nodes(10));
}

/// Live nodes at the end of LinkedList (see benches/c/linkedlist.c).
fn linkedlist_live(scale: u32) -> u64 {
    let len = u64::from(scale) * 1000;
    let mut lens = [0u64; 8];
    for r in 0..32 {
        lens[r % 8] = len;
        lens[(r + 3) % 8] /= 2;
    }
    lens.iter().sum()
}

#[test]
fn linkedlist_keeps_live_nodes() {
    both_modes(Workload::LinkedList, 4, linkedlist_live(4));
}

/// Entries at the end of HashMap, replaying its PRNG (benches/c/hashmap.c).
fn hashmap_entries(scale: u32) -> u64 {
    let n_keys = u64::from(scale) * 1000;
    let space = 2 * n_keys;
    let mut present = vec![false; space as usize];
    present[..n_keys as usize].fill(true);
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..8 * n_keys {
        // xorshift64*, as dunegc_rng_next in benches/c/runtime.h.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let x = state.wrapping_mul(0x2545_F491_4F6C_DD1D);
        let id = (x % space) as usize;
        match (x >> 32) % 4 {
            0 | 1 => present[id] = true,
            2 => present[id] = false,
            _ => {}
        }
    }
    present.iter().filter(|&&p| p).count() as u64
}

#[test]
fn hashmap_survives_churn() {
    both_modes(Workload::HashMap, 4, hashmap_entries(4));
}

/// Elements plus beta items found over the 4 rounds (benches/c/xml.c).
fn xml_found(scale: u32) -> u64 {
    let items = u64::from(scale) * 1000;
    let elements: u64 = 1
        + (0..items)
            .map(|i| 4 + i % 4 + u64::from(i % 5 == 0))
            .sum::<u64>();
    let beta = (0..items).filter(|i| i % 3 == 1).count() as u64;
    4 * (elements + beta)
}

#[test]
fn xml_finds_every_element() {
    both_modes(Workload::Xml, 2, xml_found(2));
}

#[test]
fn runner_rejects_bad_arguments() {
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_bdwgc-runner"))
        .args(["gcbench", "nine", "full"])
        .output()
        .expect("runner starts");
    assert_eq!(status.status.code(), Some(2));
}
