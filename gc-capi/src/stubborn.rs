//! bdwgc's stubborn-object API and `GC_ptr_store_and_dirty`. Since bdwgc 7.x stubborn
//! objects are ordinary objects and the change calls only tell an incremental
//! collector without automatic write tracking which pages were written. dunegc always
//! learns written pages from its dirty tracker, so the announcements are documented
//! no-ops here, as they are in bdwgc builds with such tracking.

use std::ffi::c_void;

/// `GC_malloc` (bdwgc's `GC_malloc_stubborn`, deprecated).
#[no_mangle]
pub extern "C" fn GC_malloc_stubborn(lb: usize) -> *mut c_void {
    crate::alloc::GC_malloc(lb)
}

/// No-op (bdwgc's `GC_change_stubborn`, deprecated).
#[no_mangle]
pub extern "C" fn GC_change_stubborn(_p: *const c_void) {}

/// No-op: writes to `p` are seen by the dirty tracker (bdwgc's `GC_end_stubborn_change`).
#[no_mangle]
pub extern "C" fn GC_end_stubborn_change(_p: *const c_void) {}

/// `*(void **)p = q` (bdwgc's `GC_ptr_store_and_dirty`; the store is seen by the dirty
/// tracker).
///
/// # Safety
/// `p` is a writable, aligned pointer slot.
#[no_mangle]
pub unsafe extern "C" fn GC_ptr_store_and_dirty(p: *mut c_void, q: *const c_void) {
    // SAFETY: the caller guarantees a writable pointer slot. Volatile so the store is
    // not elided or reordered past a later reachability check.
    unsafe { (p as *mut *const c_void).write_volatile(q) };
}
