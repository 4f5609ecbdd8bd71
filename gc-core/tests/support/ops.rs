//! The graph property test's operations, shared by gc-core's proptest and the run of the
//! same suite inside Dune (`tests/tests/kvm_dune_suites.rs`).

use super::*;
use proptest::prelude::*;
use std::sync::atomic::Ordering;

#[derive(Clone, Debug)]
pub enum Op {
    /// Allocate an object of `len` bytes into root `root` (an interior pointer if `interior`).
    Alloc {
        root: usize,
        len: usize,
        interior: bool,
    },
    /// Store a pointer to root `to`'s object into slot `slot` of root `from`'s object.
    Link {
        from: usize,
        slot: usize,
        to: usize,
        interior: bool,
    },
    /// Clear a slot.
    Unlink { root: usize, slot: usize },
    /// Move a root: root `to` takes the object reached through slot `slot` of root `from`.
    Follow { from: usize, slot: usize, to: usize },
    /// Forget a root.
    Drop { root: usize },
    /// Allocate `n` objects of garbage (drives budgets and incremental steps).
    Churn { n: usize },
    /// A full collection (or the finish of the cycle in progress).
    Collect,
    /// An incremental step.
    Step,
}

pub const USED_ROOTS: usize = 16;

pub fn op() -> impl Strategy<Value = Op> {
    let r = 0..USED_ROOTS;
    let len = prop_oneof![6 => 48usize..256, 3 => 256usize..4096, 1 => 16_384usize..70_000];
    prop_oneof![
        4 => (r.clone(), len, any::<bool>()).prop_map(|(root, len, interior)| Op::Alloc { root, len, interior }),
        5 => (r.clone(), 0..SLOTS, r.clone(), any::<bool>()).prop_map(|(from, slot, to, interior)| Op::Link { from, slot, to, interior }),
        2 => (r.clone(), 0..SLOTS).prop_map(|(root, slot)| Op::Unlink { root, slot }),
        3 => (r.clone(), 0..SLOTS, r.clone()).prop_map(|(from, slot, to)| Op::Follow { from, slot, to }),
        2 => r.prop_map(|root| Op::Drop { root }),
        2 => (1usize..400).prop_map(|n| Op::Churn { n }),
        1 => Just(Op::Collect),
        2 => Just(Op::Step),
    ]
}

#[inline(never)]
fn churn(heap: &'static gc_core::Heap, n: usize) {
    for i in 0..n {
        std::hint::black_box(new_object(heap, 64 + (i % 7) * 32).expect("alloc"));
    }
}

#[inline(never)]
fn apply(heap: &'static gc_core::Heap, op: &Op) {
    let root = |i: usize| ROOTS[i].load(Ordering::Acquire);
    match *op {
        Op::Alloc {
            root: r,
            len,
            interior,
        } => {
            let base = new_object(heap, len).expect("alloc");
            let p = if interior {
                base + 8 * (1 + len.min(200) / 16)
            } else {
                base
            };
            ROOTS[r].store(p, Ordering::Release);
        }
        Op::Link {
            from,
            slot,
            to,
            interior,
        } => {
            let (f, t) = (root(from), root(to));
            if f != 0 {
                let target = if t != 0 && interior { t + 8 } else { t };
                // An interior pointer must stay inside the object.
                let target = match heap.find_object(target) {
                    Some(_) => target,
                    None => t,
                };
                set_slot(heap, f, slot, target);
            }
        }
        Op::Unlink { root: r, slot } => {
            if root(r) != 0 {
                set_slot(heap, root(r), slot, 0);
            }
        }
        Op::Follow { from, slot, to } => {
            if root(from) != 0 {
                ROOTS[to].store(get_slot(heap, root(from), slot), Ordering::Release);
            }
        }
        Op::Drop { root: r } => ROOTS[r].store(0, Ordering::Release),
        Op::Churn { n } => churn(heap, n),
        Op::Collect => heap.collect().expect("collect"),
        Op::Step => heap.collect_a_little().expect("step"),
    }
}

fn roots_snapshot() -> Vec<usize> {
    ROOTS[..USED_ROOTS]
        .iter()
        .map(|r| r.load(Ordering::Acquire))
        .collect()
}

pub fn run_case(choice: gc_core::BackendChoice, ops: &[Op]) {
    let heap = heap_for(choice).expect("heap");
    for r in &ROOTS[..USED_ROOTS] {
        r.store(0, Ordering::Release);
    }
    for op in ops {
        apply(heap, op);
        verify_reachable(heap, &roots_snapshot());
    }
    // Everything dropped: the heap must shrink back to a bound.
    for r in &ROOTS[..USED_ROOTS] {
        r.store(0, Ordering::Release);
    }
    clobber_stack();
    heap.collect().expect("collect");
    heap.collect().expect("collect");
    let st = heap.stats();
    assert!(
        st.live_bytes < 256 << 10,
        "unreachable objects survive: {} bytes live\n{st}",
        st.live_bytes
    );
}
