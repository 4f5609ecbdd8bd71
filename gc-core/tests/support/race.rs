//! The lost-object race, shared by gc-core's test and the run inside Dune.

use super::*;
use gc_core::Heap;
use std::sync::atomic::Ordering;

const ROOT: usize = 40;

#[inline(never)]
fn hide_new_object_in(heap: &'static Heap, holder: usize) {
    let d = new_object(heap, 48).expect("alloc");
    set_slot(heap, holder, 1, d);
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

pub fn race_once(heap: &'static Heap) {
    heap.collect().expect("collect");
    let holder = new_object(heap, 48).expect("alloc");
    ROOTS[ROOT].store(holder, Ordering::Release);
    churn_until_cycle(heap);
    let mut steps = 0;
    while !heap.cycle_marking_done() {
        heap.collect_a_little().expect("step");
        steps += 1;
        assert!(steps < 1_000_000, "marking never completed");
    }
    hide_new_object_in(heap, ROOTS[ROOT].load(Ordering::Acquire));
    clobber_stack();
    heap.collect().expect("finish");
    // The hidden object must have survived, intact.
    let holder = ROOTS[ROOT].load(Ordering::Acquire);
    let hidden = get_slot(heap, holder, 1);
    assert_ne!(hidden, 0);
    assert!(
        heap.find_object(hidden).is_some(),
        "object stored into a scanned object during marking was freed"
    );
    verify(heap, hidden);
    ROOTS[ROOT].store(0, Ordering::Release);
}
