//! Basic heap behaviour through the public API: allocation, lookup, explicit free and its
//! errors, collection of unreachable objects, retention of reachable ones.

use gc_core::{GcError, Heap, HeapBuilder, ObjectKind};
use std::hint::black_box;

fn small_heap() -> &'static Heap {
    HeapBuilder::new()
        .max_space_bytes(256 << 20)
        .initial_heap_bytes(1 << 20)
        .build()
        .expect("heap")
}

#[test]
fn alloc_lookup_and_interior_pointers() {
    let heap = small_heap();
    for len in [
        1usize,
        8,
        16,
        17,
        100,
        1000,
        5000,
        16384,
        16385,
        100_000,
        3 << 20,
    ] {
        let p = heap.alloc(ObjectKind::Normal, len, 8).unwrap();
        assert_eq!(p % 16, 0);
        let info = heap
            .find_object(p + len - 1)
            .expect("interior pointer finds the object");
        assert_eq!(info.base, p);
        assert!(info.len_bytes >= len);
        // Zeroed.
        // SAFETY: p is a live allocation of len bytes.
        let bytes = unsafe { std::slice::from_raw_parts(p as *const u8, len) };
        assert!(bytes.iter().all(|&b| b == 0));
    }
}

#[test]
fn alignment_requests_are_honoured() {
    let heap = small_heap();
    for align in [16usize, 64, 256, 4096, 65536, 1 << 21] {
        let p = heap.alloc(ObjectKind::Malloc, 24, align).unwrap();
        assert_eq!(p % align, 0, "align {align}");
    }
    assert!(matches!(
        heap.alloc(ObjectKind::Malloc, 8, 1 << 22),
        Err(GcError::TooLarge { .. })
    ));
}

#[test]
fn bad_frees_are_rejected_and_change_nothing() {
    let heap = small_heap();
    let p = heap.alloc(ObjectKind::Malloc, 64, 8).unwrap();
    let q = heap.alloc(ObjectKind::Malloc, 64, 8).unwrap();
    let local = 0u64;
    let e = heap.free(&local as *const u64 as usize).unwrap_err();
    assert!(
        e.to_string().contains("not a pointer into this heap"),
        "{e}"
    );
    let e = heap.free(p + 8).unwrap_err();
    assert!(e.to_string().contains("inside an object"), "{e}");
    heap.free(p).unwrap();
    let e = heap.free(p).unwrap_err();
    assert!(matches!(e, GcError::InvalidFree { .. }), "{e}");
    assert!(
        heap.find_object(q).is_some(),
        "a bad free must not disturb other objects"
    );
    let big = heap.alloc(ObjectKind::Malloc, 1 << 20, 8).unwrap();
    heap.free(big).unwrap();
    assert!(heap.free(big).is_err());
}

#[test]
fn huge_and_zero_sized_requests() {
    let heap = small_heap();
    let z = heap.alloc(ObjectKind::Normal, 0, 1).unwrap();
    assert!(heap.find_object(z).is_some());
    assert!(matches!(
        heap.alloc(ObjectKind::Normal, usize::MAX / 2, 8),
        Err(GcError::TooLarge { .. })
    ));
    // Larger than the space: too large, not a crash.
    assert!(heap.alloc(ObjectKind::Normal, 512 << 20, 8).is_err());
    // Still usable afterwards.
    assert!(heap.alloc(ObjectKind::Normal, 64, 8).is_ok());
}

#[inline(never)]
fn make_garbage(heap: &'static Heap, n: usize) {
    for _ in 0..n {
        black_box(heap.alloc(ObjectKind::Normal, 48, 8).unwrap());
    }
}

#[test]
fn unreachable_objects_are_reclaimed_and_reachable_ones_kept() {
    let heap = small_heap();
    // A reachable linked list of 1000 nodes, head kept on the stack.
    let mut head = 0usize;
    for i in 0..1000usize {
        let n = heap.alloc(ObjectKind::Normal, 32, 8).unwrap();
        // SAFETY: n is a fresh 32-byte object: [next, value].
        unsafe {
            *(n as *mut usize) = head;
            *((n + 8) as *mut usize) = i;
        }
        head = n;
    }
    make_garbage(heap, 200_000);
    heap.collect().unwrap();
    let st = heap.stats();
    assert!(st.bytes_swept > 0, "garbage reclaimed: {st}");
    assert!(st.heap_bytes < 4 << 20, "heap stays small: {st}");
    let mut n = black_box(head);
    let mut count = 0;
    while n != 0 {
        assert!(heap.find_object(n).is_some(), "live node freed");
        // SAFETY: list nodes are kept alive by `head` on our stack.
        let (next, v) = unsafe { (*(n as *const usize), *((n + 8) as *const usize)) };
        assert_eq!(v, 999 - count);
        count += 1;
        n = next;
    }
    assert_eq!(count, 1000);
}

#[test]
fn max_heap_bytes_is_a_hard_limit_with_a_clear_error() {
    const LIMIT: usize = 16 << 20;
    let heap = HeapBuilder::new()
        .max_heap_bytes(LIMIT)
        .initial_heap_bytes(1 << 20)
        .build()
        .expect("heap");
    assert_eq!(heap.max_heap_bytes(), LIMIT);
    // Garbage far past the limit: collections keep the heap under it.
    for _ in 0..100_000 {
        black_box(heap.alloc(ObjectKind::Normal, 1000, 8).unwrap());
    }
    assert!(heap.heap_size() <= LIMIT);
    // Live data (a chain through the first word, rooted in a Vec the collector does
    // not see, so kept alive by explicit roots: the head on the stack and each link).
    let mut head = 0usize;
    let mut n = 0usize;
    let err = loop {
        match heap.alloc(ObjectKind::Normal, 1000, 8) {
            Ok(p) => {
                // SAFETY: p is a fresh 1000-byte object.
                unsafe { (p as *mut usize).write(head) };
                head = black_box(p);
                n += 1;
                assert!(heap.heap_size() <= LIMIT);
            }
            Err(e) => break e,
        }
    };
    assert!(n * 1000 > LIMIT / 2, "failed early, after {n} objects");
    match &err {
        GcError::HeapLimit {
            limit_bytes,
            heap_bytes,
            ..
        } => assert!(*limit_bytes == LIMIT && *heap_bytes <= LIMIT),
        other => panic!("expected HeapLimit, got {other:?}"),
    }
    assert!(err.to_string().contains("DUNEGC_MAX_HEAP_SIZE"), "{err}");
    // Every object of the chain is still there.
    let mut count = 0;
    let mut p = head;
    while p != 0 {
        assert!(heap.find_object(p).is_some());
        // SAFETY: p is a live object of the chain.
        p = unsafe { (p as *const usize).read() };
        count += 1;
    }
    assert_eq!(count, n);
    // Raising the limit lets the heap grow again.
    heap.set_max_heap_bytes(0);
    assert!(heap.alloc(ObjectKind::Normal, LIMIT / 2, 8).is_ok());
    black_box(head);
}
