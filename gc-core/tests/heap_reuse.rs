//! Span reuse and page give-back across collections: live objects survive while the
//! spans around them are freed, given back to the kernel (`MADV_DONTNEED` after the
//! hysteresis) and reused; every allocation reads as zero even when it lands on reused
//! or given-back pages; dead objects are reclaimed (the heap shrinks back) and the heap
//! stays bounded.

use gc_core::{HeapBuilder, ObjectKind};

const N: usize = 12_000;

fn len_of(i: usize, round: usize) -> usize {
    // Small classes of many sizes, and every 500th a large object.
    if (i + round).is_multiple_of(500) {
        20_000 + (i % 7) * 9_000
    } else {
        16 + ((i * 37 + round * 11) % 120) * 8
    }
}

fn pattern(i: usize, round: usize, word: usize) -> usize {
    (i << 20 | round << 12 | word) ^ 0x5a5a_0000_0000
}

fn fill(p: usize, len: usize, i: usize, round: usize) {
    for w in 0..len / 8 {
        // SAFETY: p is a live object of at least len bytes.
        unsafe { (p as *mut usize).add(w).write(pattern(i, round, w)) };
    }
}

fn check(p: usize, len: usize, i: usize, round: usize) {
    for w in 0..len / 8 {
        // SAFETY: p is a live object of at least len bytes.
        let v = unsafe { (p as *const usize).add(w).read() };
        assert_eq!(
            v,
            pattern(i, round, w),
            "object {i} of round {round} word {w}"
        );
    }
}

#[test]
fn live_objects_survive_span_reuse_and_give_back_and_new_ones_read_zero() {
    let heap = HeapBuilder::new()
        .initial_heap_bytes(1 << 20)
        .markers(2)
        .build()
        .expect("heap");
    // Roots outside the collected heap: (address, length, round) per slot.
    let mut roots = vec![[0usize; 3]; N].into_boxed_slice();
    let range = roots.as_ptr() as usize..roots.as_ptr() as usize + N * 24;
    heap.add_roots(range.start, range.end).unwrap();
    let mut max_live = 0usize;
    for round in 1..=8 {
        let mut live = 0;
        for (i, slot) in roots.iter_mut().enumerate() {
            // Keep what an earlier round left in every third slot.
            if slot[0] != 0 && !(i + round).is_multiple_of(3) {
                live += slot[1];
                continue;
            }
            let len = len_of(i, round);
            let p = heap.alloc(ObjectKind::Normal, len, 8).unwrap();
            for w in 0..len / 8 {
                // SAFETY: p is a fresh object of len bytes.
                let v = unsafe { (p as *const usize).add(w).read() };
                assert_eq!(
                    v, 0,
                    "round {round}: new object {i} ({len} bytes) not zero at word {w}"
                );
            }
            fill(p, len, i, round);
            *slot = [p, len, round];
            live += len;
        }
        max_live = max_live.max(live);
        for (i, s) in roots.iter().enumerate() {
            check(s[0], s[1], i, s[2]);
        }
        // Drop about two thirds (varying with the round); collect past the hysteresis
        // (freed spans are given back) in odd rounds, once (they are not) in even ones.
        for (i, s) in roots.iter_mut().enumerate() {
            if !(i * 7 + round).is_multiple_of(3) {
                *s = [0; 3];
            }
        }
        for _ in 0..if round % 2 == 1 { 3 } else { 1 } {
            heap.collect().unwrap();
        }
        for (i, s) in roots.iter().enumerate() {
            if s[0] != 0 {
                check(s[0], s[1], i, s[2]);
                assert_eq!(heap.base_of(s[0]), Some(s[0]), "live object {i} freed");
            }
        }
        assert!(
            heap.heap_size() <= 3 * max_live + (8 << 20),
            "round {round}: heap {} for at most {max_live} live bytes",
            heap.heap_size()
        );
    }
    // Everything dead: the heap shrinks back (dead objects are reclaimed).
    for s in roots.iter_mut() {
        *s = [0; 3];
    }
    heap.collect().unwrap();
    assert!(
        heap.heap_size() < (2 << 20),
        "heap {} after dropping everything",
        heap.heap_size()
    );
    heap.remove_roots(range.start, range.end);
}
