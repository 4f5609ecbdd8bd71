//! Parallel marking: eight mutator threads on two cores with four markers through 10⁶
//! operations and collections at random points (no live object lost, heap bounded); work
//! reaching the helper markers only by stealing; and markers that never write heap pages.

mod support;

use gc_core::{Heap, HeapBuilder};
use std::sync::atomic::{AtomicUsize, Ordering};
use support::*;

const MUTATORS: usize = 8;
const CHAINS: usize = 32;
/// Longest chain a mutator keeps (objects beyond it are cut off and become garbage).
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
        // Collections at random points, from any mutator (plus the budget's own).
        if rng.below(40_000) == 0 {
            heap.collect().expect("collect");
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

fn stress(heap: &'static Heap, name: &str) {
    pin_to_two_cpus();
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
        "{name}: {} collections, heap peak {} KiB, {} steals, scanned per marker {:?}\n{st}",
        heap.gc_count() - before,
        max_heap >> 10,
        st.steals,
        st.marker_scanned_bytes
    );
    assert!(
        heap.gc_count() - before >= 10,
        "{name}: too few collections"
    );
    // Live data: at most 8 × 32 × 6 objects of ≤ 176 bytes (~270 KiB); the budget is 1 MiB.
    // Bounded means it does not grow with the 10⁶ operations (~150 MiB allocated).
    assert!(
        max_heap <= 16 << 20,
        "{name}: heap grew to {} KiB",
        max_heap >> 10
    );
    for heads in &HEADS {
        for h in heads {
            h.store(0, Ordering::Release);
        }
    }
}

#[test]
fn eight_mutators_two_cores_four_markers_lose_nothing() {
    let heap = HeapBuilder::new()
        .max_space_bytes(64 << 20)
        .initial_heap_bytes(1 << 20)
        .markers(4)
        .build()
        .expect("heap");
    stress(heap, "full, 4 markers");
    let st = heap.stats();
    assert_eq!(st.markers, 4);
    assert_eq!(st.marker_threads, 3, "three helper threads: {st}");
}

/// A wide tree reachable from one static root: the collecting thread finds all of it, so
/// a helper can only scan anything by stealing. (On a loaded machine a helper may not get
/// a CPU during one short pause; collect until one has.)
#[test]
fn helpers_mark_only_what_they_steal() {
    static ROOT: AtomicUsize = AtomicUsize::new(0);
    let heap = HeapBuilder::new()
        .max_space_bytes(64 << 20)
        .initial_heap_bytes(64 << 20)
        .markers(4)
        .build()
        .expect("heap");
    // 4-ary tree, 87 381 objects.
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
    ROOT.store(build(heap, 8), Ordering::Release);
    clobber_stack();
    let mut rounds = 0;
    loop {
        heap.collect().expect("collect");
        rounds += 1;
        let st = heap.stats();
        let helpers: u64 = st.marker_scanned_bytes[1..].iter().sum();
        if st.steals > 0 && helpers > 0 {
            println!(
                "after {rounds} collections: {st}\nper marker {:?}",
                st.marker_scanned_bytes
            );
            break;
        }
        assert!(
            rounds < 100,
            "no helper marker stole work in {rounds} collections: {st}\nper marker {:?}",
            st.marker_scanned_bytes
        );
    }
    assert_eq!(
        verify_reachable(heap, &[ROOT.load(Ordering::Acquire)]),
        87_381
    );
    ROOT.store(0, Ordering::Release);
}

/// Marking writes only the side mark bitmap and the markers' own stacks: with every page
/// holding the graph read-only, a collection on four markers completes (a write to a heap
/// page would kill the test with SIGSEGV), and the graph is intact.
#[test]
fn markers_never_write_heap_pages() {
    static ROOTS2: [AtomicUsize; 256] = [const { AtomicUsize::new(0) }; 256];
    let heap = HeapBuilder::new()
        .max_space_bytes(64 << 20)
        .initial_heap_bytes(64 << 20)
        .markers(4)
        .build()
        .expect("heap");
    let mut pages = std::collections::BTreeSet::new();
    for r in &ROOTS2 {
        let mut prev = 0;
        for _ in 0..64 {
            let o = new_object(heap, 96).expect("alloc");
            set_slot(heap, o, 0, prev);
            prev = o;
            pages.insert(o & !4095);
            pages.insert((o + 95) & !4095);
        }
        r.store(prev, Ordering::Release);
    }
    heap.collect().expect("first collection starts the markers");
    let protect = |prot| {
        for &p in &pages {
            // SAFETY: p is a page of the heap's reservation that holds test objects;
            // nothing writes it while it is read-only (checked by this test).
            let rc = unsafe { libc::mprotect(p as *mut libc::c_void, 4096, prot) };
            assert_eq!(rc, 0, "mprotect: {}", std::io::Error::last_os_error());
        }
    };
    protect(libc::PROT_READ);
    heap.collect().expect("collect with the graph read-only");
    protect(libc::PROT_READ | libc::PROT_WRITE);
    let roots: Vec<usize> = ROOTS2.iter().map(|r| r.load(Ordering::Acquire)).collect();
    let mut n = 0;
    for r in roots {
        let mut p = r;
        while p != 0 {
            verify(heap, p);
            n += 1;
            p = get_slot(heap, p, 0);
        }
    }
    assert_eq!(n, 256 * 64);
    assert_eq!(heap.stats().marker_threads, 3);
}
