//! Mostly-concurrent incremental marking: eight mutator threads on two cores with four
//! markers through 10⁶ operations, incremental cycles traced by the marker threads while
//! the mutators run, collections and finishes at random points (no live object lost, heap
//! bounded); and markers that write no heap page while they mark concurrently, under
//! every dirty backend available here.

mod support;

use gc_core::{Backend, BackendChoice, Heap, HeapBuilder};
use std::sync::atomic::{AtomicUsize, Ordering};
use support::*;

const MUTATORS: usize = 8;
const CHAINS: usize = 32;
/// Longest chain a mutator keeps (each object may carry one leaf object in slot 1) (objects beyond it are cut off and become garbage).
const MAX_CHAIN: usize = 6;
const TOTAL_OPS: usize = 1_000_000;

/// Per mutator, per chain: the head object (static memory: the collector scans it).
static HEADS: [[AtomicUsize; CHAINS]; MUTATORS] =
    [const { [const { AtomicUsize::new(0) }; CHAINS] }; MUTATORS];

/// Walk a chain through slot 0, verifying every object; returns its length.
fn chain_len(heap: &'static Heap, mut p: usize) -> usize {
    let mut n = 0;
    while p != 0 {
        verify(heap, p);
        let leaf = get_slot(heap, p, 1);
        if leaf != 0 {
            verify(heap, leaf);
        }
        n += 1;
        assert!(n <= MAX_CHAIN + 1, "chain longer than ever built");
        p = get_slot(heap, p, 0);
    }
    n
}

/// One mutator: `ops` light operations (allocate and link, verify a chain, drop a chain,
/// make garbage), each chain's expected length tracked privately; a collection at random
/// points. Returns the largest heap size it saw.
fn mutator(heap: &'static Heap, me: usize, ops: usize) -> usize {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ ((me as u64 + 1) * 0x1234_5678_9ABC));
    let mut len = [0usize; CHAINS];
    let mut max_heap = 0;
    for op in 0..ops {
        let c = rng.below(CHAINS);
        let head = &HEADS[me][c];
        match rng.below(10) {
            0..=3 => {
                let o = new_object(heap, 48 + 16 * rng.below(8)).expect("alloc");
                let old = head.load(Ordering::Acquire);
                set_slot(heap, o, 0, old);
                head.store(o, Ordering::Release);
                len[c] += 1;
                if old != 0 && rng.below(2) == 0 {
                    // A new object whose only pointer goes into an older object, which
                    // the markers may have scanned already: only the finish's rescan of
                    // dirty pages can find it.
                    let leaf = new_object(heap, 32).expect("alloc");
                    set_slot(heap, old, 1, leaf);
                }
                if len[c] > MAX_CHAIN {
                    // Cut the tail: the last object becomes garbage.
                    let mut p = o;
                    for _ in 0..MAX_CHAIN - 1 {
                        p = get_slot(heap, p, 0);
                    }
                    set_slot(heap, p, 0, 0);
                    len[c] = MAX_CHAIN;
                }
            }
            4..=6 => {
                let n = chain_len(heap, head.load(Ordering::Acquire));
                assert_eq!(n, len[c], "mutator {me} chain {c}: live objects lost");
            }
            7 => {
                head.store(0, Ordering::Release);
                len[c] = 0;
            }
            _ => {
                std::hint::black_box(new_object(heap, 256).expect("alloc"));
            }
        }
        // Collections (finishing a cycle early) and polls at random points, from any
        // mutator (plus the budget's own).
        if rng.below(40_000) == 0 {
            heap.collect().expect("collect");
        }
        if rng.below(2_000) == 0 {
            heap.collect_a_little().expect("poll");
        }
        if op % 4096 == 0 {
            max_heap = max_heap.max(heap.heap_size());
        }
    }
    for (c, head) in HEADS[me].iter().enumerate() {
        assert_eq!(
            chain_len(heap, head.load(Ordering::Acquire)),
            len[c],
            "mutator {me} chain {c} at the end"
        );
    }
    max_heap
}

fn incremental_heap(choice: BackendChoice, markers: usize) -> &'static Heap {
    HeapBuilder::new()
        .max_space_bytes(64 << 20)
        .initial_heap_bytes(1 << 20)
        .markers(markers)
        .incremental(choice)
        .build()
        .expect("heap")
}

/// The best incremental backend here (uffd, else mprotect).
fn best_backend() -> BackendChoice {
    match gc_core::dirty::open(Backend::Uffd) {
        Ok(_) => BackendChoice::Exactly(Backend::Uffd),
        Err(e) => {
            println!("uffd unavailable ({e}); using mprotect");
            BackendChoice::Exactly(Backend::Mprotect)
        }
    }
}

#[test]
fn eight_mutators_two_cores_four_concurrent_markers_lose_nothing() {
    pin_to_two_cpus();
    let heap = incremental_heap(best_backend(), 4);
    let before = heap.gc_count();
    let max_heap = std::thread::scope(|s| {
        let hs: Vec<_> = (0..MUTATORS)
            .map(|m| s.spawn(move || mutator(heap, m, TOTAL_OPS / MUTATORS)))
            .collect();
        hs.into_iter()
            .map(|h| h.join().expect("mutator panicked"))
            .max()
            .unwrap_or(0)
    });
    heap.collect().expect("collect");
    let st = heap.stats();
    println!(
        "{} collections, heap peak {} KiB, per marker {:?}\n{st}",
        heap.gc_count() - before,
        max_heap >> 10,
        st.marker_scanned_bytes
    );
    assert!(heap.gc_count() - before >= 10, "too few collections: {st}");
    assert!(
        st.concurrent_cycles >= 5,
        "too few cycles marked concurrently: {st}"
    );
    assert_eq!(st.marker_threads, 3, "three helper threads: {st}");
    // Live data: at most 8 × 32 × 6 objects of ≤ 176 bytes (~270 KiB); the budget is 1 MiB.
    assert!(max_heap <= 16 << 20, "heap grew to {} KiB", max_heap >> 10);
    for heads in &HEADS {
        for h in heads {
            h.store(0, Ordering::Release);
        }
    }
}

/// For every incremental backend: while the helpers trace a cycle and the program writes
/// nothing, the tracker reports (next to) no dirty page — a marker that wrote a heap page
/// would show up there (under mprotect as a write fault) — and the helpers traced
/// everything before the finish.
#[test]
fn concurrent_markers_write_no_heap_page_under_every_backend() {
    for (name, choice) in configurations().into_iter().skip(1) {
        let heap = incremental_heap(choice, 4);
        heap.collect()
            .expect("the first collection starts the markers");
        for _ in 0..3 {
            let o = support::concurrent::quiet_concurrent_cycle(heap, 41);
            println!("{name}: {o:?}");
            support::concurrent::check_quiet_cycle(&name, &o);
        }
    }
}

/// Switched off, incremental cycles take mark steps on the allocating thread as before.
#[test]
fn concurrent_marking_off_takes_mark_steps() {
    let heap = HeapBuilder::new()
        .max_space_bytes(64 << 20)
        .initial_heap_bytes(1 << 20)
        .markers(4)
        .concurrent_marking(false)
        .incremental(best_backend())
        .build()
        .expect("heap");
    heap.collect().expect("collect");
    let o = support::concurrent::quiet_concurrent_cycle(heap, 42);
    assert!(!o.concurrent, "{o:?}");
    let st = heap.stats();
    assert_eq!(st.concurrent_cycles, 0, "{st}");
    assert!(st.mark_steps > 0, "{st}");
}
