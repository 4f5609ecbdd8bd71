//! Objects of a registered scan class are scanned by their descriptor only: a bitmap
//! class keeps alive what its pointer words reference and nothing its other words do;
//! a mark-procedure class keeps alive exactly what the procedure pushes. An unknown
//! scan class is refused.

use gc_core::mark::descr::{self, MsEntry, DS_BITMAP};
use gc_core::{GcError, Heap, HeapBuilder, ObjectKind};
use std::sync::atomic::{AtomicUsize, Ordering};

const N: usize = 100;

/// Holders live in static data (a root); their targets are found only through them.
/// One array per test (tests run in parallel).
type Holders = [AtomicUsize; N];
static BITMAP_HOLDERS: Holders = [const { AtomicUsize::new(0) }; N];
static PROC_HOLDERS: Holders = [const { AtomicUsize::new(0) }; N];

fn heap() -> &'static Heap {
    HeapBuilder::new()
        .max_space_bytes(256 << 20)
        .initial_heap_bytes(1 << 20)
        .build()
        .expect("heap")
}

/// Fill holders of `scan` with a target in word 0 and one in word 1; returns them.
#[inline(never)]
fn fill(heap: &'static Heap, scan: u8, holders: &'static Holders) -> Vec<(usize, usize)> {
    (0..N)
        .map(|i| {
            let h = heap.alloc_described(ObjectKind::Normal, scan, 32).unwrap();
            let a = heap.alloc(ObjectKind::Normal, 48, 16).unwrap();
            let b = heap.alloc(ObjectKind::Normal, 48, 16).unwrap();
            // SAFETY: h is a fresh 32-byte object of ours.
            unsafe {
                (h as *mut usize).write(a);
                (h as *mut usize).add(1).write(b);
            }
            holders[i].store(h, Ordering::SeqCst);
            // Disguised, so the vector keeps nothing alive.
            (!a, !b)
        })
        .collect()
}

/// Targets in word 1 all survive; nearly all in word 0 are freed.
fn check(heap: &'static Heap, targets: &[(usize, usize)]) {
    heap.collect().unwrap();
    heap.collect().unwrap();
    let word1_alive = targets
        .iter()
        .filter(|t| heap.base_of(!t.1).is_some())
        .count();
    let word0_alive = targets
        .iter()
        .filter(|t| heap.base_of(!t.0).is_some())
        .count();
    assert_eq!(word1_alive, N);
    assert!(word0_alive <= 10, "{word0_alive} word-0 targets survived");
}

#[test]
fn bitmap_class_scans_only_pointer_words() {
    let heap = heap();
    // Word 1 is a pointer (the msb stands for word 0).
    let scan = descr::register_scan_class((1 << 62) | DS_BITMAP, false).unwrap();
    let targets = fill(heap, scan, &BITMAP_HOLDERS);
    check(heap, &targets);
}

unsafe extern "C" fn push_word1(
    addr: *mut usize,
    msp: *mut MsEntry,
    _msl: *mut MsEntry,
    _env: usize,
) -> *mut MsEntry {
    // SAFETY: the marker passes a live holder of 32 bytes.
    descr::mark_and_push(unsafe { *addr.add(1) });
    msp
}

#[test]
fn mark_procedure_class_keeps_what_it_pushes() {
    let heap = heap();
    let proc_index = descr::register_mark_proc(push_word1).unwrap();
    let scan = descr::register_scan_class(descr::make_proc(proc_index, 0), false).unwrap();
    let targets = fill(heap, scan, &PROC_HOLDERS);
    check(heap, &targets);
    // Outside a mark procedure, mark_and_push does nothing.
    assert!(!descr::mark_and_push(
        PROC_HOLDERS[0].load(Ordering::SeqCst)
    ));
}

#[test]
fn unregistered_scan_class_is_refused() {
    let heap = heap();
    assert!(matches!(
        heap.alloc_described(ObjectKind::Normal, 31, 16),
        Err(GcError::BadScanClass { scan: 31 })
    ));
    assert!(heap.alloc(ObjectKind::Normal, 16, 16).is_ok());
}
