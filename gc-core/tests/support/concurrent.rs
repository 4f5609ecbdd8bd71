//! Mostly-concurrent marking, shared by gc-core's test and the run inside Dune: while the
//! marker threads trace an incremental cycle and the program writes nothing, no heap page
//! may become dirty (the markers write only the side mark bitmap and their own stacks),
//! and everything reachable when the cycle started is traced before the finishing pause.

use super::*;
use gc_core::Heap;
use std::sync::atomic::Ordering;

/// Depth of the 4-ary tree the markers trace: 21 845 objects of 48 bytes.
const DEPTH: u32 = 7;
const TREE: usize = (4usize.pow(DEPTH + 1) - 1) / 3;

fn build(heap: &'static Heap, depth: u32) -> usize {
    let o = new_object(heap, 48).expect("alloc");
    if depth > 0 {
        for s in 0..SLOTS {
            let c = build(heap, depth - 1);
            set_slot(heap, o, s, c);
        }
    }
    o
}

#[inline(never)]
fn churn_until_cycle(heap: &'static Heap) {
    let mut n = 0;
    while !heap.cycle_in_progress() {
        std::hint::black_box(new_object(heap, 64).expect("alloc"));
        n += 1;
        assert!(n < 10_000_000, "no incremental cycle started");
    }
}

/// What one concurrent cycle did.
#[derive(Debug)]
pub struct Outcome {
    /// The heap had helper markers, so the cycle marked concurrently.
    pub concurrent: bool,
    /// Dirty pages the tracker reported at the finish (the one allocation that started
    /// the cycle writes one object after arming; nothing else writes).
    pub dirty_pages: u64,
    /// Bytes the helper markers scanned during the cycle.
    pub helper_bytes: u64,
}

/// Run one incremental cycle over a tree while this thread writes nothing to the heap,
/// waiting (without mark steps: with helpers there are none) until the markers are done;
/// then finish it and check the tree.
/// `root` is an index into [`ROOTS`] that no other test running meanwhile uses.
pub fn quiet_concurrent_cycle(heap: &'static Heap, root: usize) -> Outcome {
    ROOTS[root].store(build(heap, DEPTH), Ordering::Release);
    heap.collect().expect("collect");
    let before = heap.stats();
    churn_until_cycle(heap);
    clobber_stack();
    let t0 = std::time::Instant::now();
    while !heap.cycle_marking_done() {
        // Poll only while the helpers are idle (a poll during their tracing would take a
        // mark step here, and this test is about what the helpers do).
        if heap.markers_busy() {
            std::thread::yield_now();
        } else {
            heap.collect_a_little().expect("poll");
        }
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(20),
            "marking never completed: {}",
            heap.stats()
        );
    }
    heap.collect().expect("finish");
    let after = heap.stats();
    let helper_bytes = after.marker_scanned_bytes[1..].iter().sum::<u64>()
        - before.marker_scanned_bytes[1..].iter().sum::<u64>();
    assert_eq!(
        verify_reachable(heap, &[ROOTS[root].load(Ordering::Acquire)]),
        TREE
    );
    ROOTS[root].store(0, Ordering::Release);
    Outcome {
        concurrent: after.concurrent_cycles > before.concurrent_cycles,
        dirty_pages: after.last_dirty_pages,
        helper_bytes,
    }
}

/// The checks on an [`Outcome`] of a heap with helper markers.
pub fn check_quiet_cycle(name: &str, o: &Outcome) {
    assert!(
        o.concurrent,
        "{name}: the cycle did not mark concurrently: {o:?}"
    );
    // The whole tree was traced by the helpers before the finish.
    assert!(
        o.helper_bytes >= (TREE * 48) as u64,
        "{name}: helpers scanned too little while the program ran: {o:?}"
    );
    assert!(
        o.dirty_pages <= 4,
        "{name}: heap pages were written while only the markers ran: {o:?}"
    );
}
