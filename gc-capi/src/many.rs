//! `GC_malloc_many` (gc.h, for gc_inline.h-style free lists) and
//! `GC_malloc_atomic_uncollectable`.

use crate::kinds::{GC_generic_malloc, GC_generic_malloc_many, AUNCOLLECTABLE, NORMAL};
use std::ffi::{c_int, c_void};

/// Allocate `lb` bytes that are never collected and never scanned (bdwgc's
/// `GC_malloc_atomic_uncollectable`): they live until `GC_free` and keep nothing alive.
#[no_mangle]
pub extern "C" fn GC_malloc_atomic_uncollectable(lb: usize) -> *mut c_void {
    GC_generic_malloc(lb, AUNCOLLECTABLE as c_int)
}

/// Allocate several zeroed, distinct objects of at least `lb` bytes (normal kind:
/// traced, collected once unreachable), linked through their first words (`GC_NEXT`;
/// the last one's is NULL), and return the first (bdwgc's `GC_malloc_many`). About a
/// page's worth is allocated, at least one object; NULL (the out-of-memory function's
/// answer) if none could be. The list keeps its objects alive only while the program
/// keeps its head: clear each link word when taking an object off.
#[no_mangle]
pub extern "C" fn GC_malloc_many(lb: usize) -> *mut c_void {
    // bdwgc rounds up to whole granules (its extra byte at the end is not needed:
    // pointers one past an object are not taken for it here).
    let lb = lb.max(1).saturating_add(15) & !15;
    let mut head: *mut c_void = std::ptr::null_mut();
    // SAFETY: `head` is a writable local.
    unsafe { GC_generic_malloc_many(lb, NORMAL as c_int, &mut head) };
    head
}
