//! The multi-threaded churn worker, shared by gc-core's churn test and the run of the same
//! suite inside Dune (`tests/tests/kvm_dune_suites.rs`).

use super::*;
use gc_core::Heap;
use std::sync::atomic::Ordering;

pub const SHARED: usize = 32;
pub const THREADS: usize = 6;
pub const ROUNDS: usize = 4_000;

/// Walk at most `limit` objects from `p`, verifying each; returns how many were seen.
fn walk(heap: &'static Heap, mut p: usize, rng: &mut Rng, limit: usize) -> usize {
    let mut n = 0;
    while p != 0 && n < limit {
        verify(heap, p);
        n += 1;
        p = get_slot(heap, p, rng.below(SLOTS));
    }
    n
}

pub fn worker(heap: &'static Heap, seed: u64) -> usize {
    let mut rng = Rng(seed | 1);
    let mut seen = 0;
    for round in 0..ROUNDS {
        let r = rng.below(SHARED);
        match rng.below(10) {
            0..=2 => {
                let o = new_object(heap, 48 + rng.below(6) * 40).expect("alloc");
                let old = ROOTS[r].load(Ordering::Acquire);
                if old != 0 && heap.find_object(old).is_some() {
                    set_slot(heap, o, rng.below(SLOTS), old);
                }
                ROOTS[r].store(o, Ordering::Release);
            }
            3..=4 => {
                let (from, to) = (
                    ROOTS[r].load(Ordering::Acquire),
                    ROOTS[rng.below(SHARED)].load(Ordering::Acquire),
                );
                if from != 0 {
                    set_slot(heap, from, rng.below(SLOTS), to);
                }
            }
            5 => {
                let from = ROOTS[r].load(Ordering::Acquire);
                if from != 0 {
                    ROOTS[rng.below(SHARED)]
                        .store(get_slot(heap, from, rng.below(SLOTS)), Ordering::Release);
                }
            }
            6 => ROOTS[r].store(0, Ordering::Release),
            7..=8 => seen += walk(heap, ROOTS[r].load(Ordering::Acquire), &mut rng, 50),
            _ => {
                for _ in 0..50 {
                    std::hint::black_box(new_object(heap, 200).expect("alloc"));
                }
            }
        }
        if round % 500 == 499 {
            if rng.below(2) == 0 {
                heap.collect().expect("collect");
            } else {
                heap.collect_a_little().expect("step");
            }
        }
    }
    seen
}

/// Run the churn suite on `heap`: THREADS workers sharing the static roots, then verify
/// what is reachable. Returns (collections during the run, objects walked, reachable).
pub fn run_churn(heap: &'static Heap) -> (u64, usize, usize) {
    for r in &ROOTS[..SHARED] {
        r.store(0, Ordering::Release);
    }
    let before = heap.gc_count();
    let seen: usize = std::thread::scope(|s| {
        let hs: Vec<_> = (0..THREADS)
            .map(|t| s.spawn(move || worker(heap, 0x9E37_79B9 * (t as u64 + 1))))
            .collect();
        hs.into_iter()
            .map(|h| h.join().expect("worker panicked"))
            .sum()
    });
    heap.collect().expect("collect");
    let reachable = verify_reachable(
        heap,
        &ROOTS[..SHARED]
            .iter()
            .map(|r| r.load(Ordering::Acquire))
            .collect::<Vec<_>>(),
    );
    let collections = heap.gc_count() - before;
    for r in &ROOTS[..SHARED] {
        r.store(0, Ordering::Release);
    }
    (collections, seen, reachable)
}
