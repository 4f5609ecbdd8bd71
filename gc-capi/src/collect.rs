//! Collection control, incremental mode, roots and heap statistics.

use crate::control::GC_dont_gc;
use crate::finalize;
use crate::init::{heap, incremental_forbidden};
use crate::types::GcWord;
use crate::warn::warn_text;
use gc_core::{Backend, BackendChoice};
use std::ffi::{c_char, c_int, c_void};
use std::sync::atomic::Ordering;

/// Collect now: a full stop-the-world collection, or the finish of the incremental cycle
/// in progress; then run due finalizers (bdwgc's `GC_gcollect`). Does nothing while
/// collection is disabled (`GC_dont_gc`: `GC_disable`, `GC_DONT_GC`) or the default stop
/// function (`GC_set_stop_func`) asks to stop, as in bdwgc; waits while a thread made by
/// `GC_pthread_create` is starting (see [`crate::threads`]).
#[no_mangle]
pub extern "C" fn GC_gcollect() {
    heap();
    if GC_dont_gc.load(Ordering::Acquire) != 0 || !crate::control::default_stop_allows() {
        return;
    }
    collect_now();
}

/// Collect (whatever `GC_dont_gc` says) and run due finalizers.
pub(crate) fn collect_now() {
    let heap = heap();
    if let Err(e) = crate::threads::while_no_thread_starts(|| heap.collect()) {
        warn_text(&format!("GC_gcollect: {e}"));
    }
    finalize::invoke_if_due(heap);
}

/// `GC_gcollect` (dunegc never returns memory to the OS early, so there is nothing more
/// to unmap; bdwgc's `GC_gcollect_and_unmap`).
#[no_mangle]
pub extern "C" fn GC_gcollect_and_unmap() {
    GC_gcollect();
}

/// Do a little collector work: a mark step of the incremental cycle, or a collection if
/// the allocation budget is spent. Returns nonzero if an incremental cycle is still in
/// progress afterwards (bdwgc's `GC_collect_a_little`).
#[no_mangle]
pub extern "C" fn GC_collect_a_little() -> c_int {
    let heap = heap();
    if let Err(e) = heap.collect_a_little() {
        warn_text(&format!("GC_collect_a_little: {e}"));
    }
    finalize::invoke_if_due(heap);
    heap.cycle_in_progress() as c_int
}

/// Switch to incremental (mostly-concurrent) marking (bdwgc's `GC_enable_incremental`).
/// The dirty-page tracker is the one named by `DUNEGC_DIRTY` (`auto` by default: the
/// best this kernel supports). If it cannot be opened, or `DUNEGC_DIRTY=none`, or
/// `GC_DISABLE_INCREMENTAL` is set, the collector stays in stop-the-world mode, as
/// bdwgc does where it lacks dirty bits; the reason is reported through the warning
/// procedure (bdwgc is silent). Check `GC_is_incremental_mode` for the outcome.
#[no_mangle]
pub extern "C" fn GC_enable_incremental() {
    let heap = heap();
    if incremental_forbidden() {
        return;
    }
    let choice = match heap.options().dirty {
        BackendChoice::Exactly(Backend::None) => return,
        c => c,
    };
    if let Err(e) = heap.enable_incremental(choice) {
        warn_text(&format!(
            "GC_enable_incremental: {e}; staying with stop-the-world collections"
        ));
    }
}

/// Nonzero if incremental marking is on (bdwgc's `GC_is_incremental_mode`).
#[no_mangle]
pub extern "C" fn GC_is_incremental_mode() -> c_int {
    heap().is_incremental() as c_int
}

/// The dirty-tracking backend in use: `"none"`, `"mprotect"`, `"soft-dirty"`, `"uffd"`
/// or `"dune"` (not in bdwgc). A static string.
#[no_mangle]
pub extern "C" fn GC_dunegc_dirty_backend() -> *const c_char {
    let name: &'static std::ffi::CStr = match heap().stats().backend {
        None if heap().is_incremental() => c"pending",
        None | Some(Backend::None) => c"none",
        Some(Backend::Mprotect) => c"mprotect",
        Some(Backend::SoftDirty) => c"soft-dirty",
        Some(Backend::Uffd) => c"uffd",
        Some(Backend::Dune) => c"dune",
    };
    name.as_ptr()
}

/// Stop collections until a matching `GC_enable`: increments `GC_dont_gc` (nests;
/// bdwgc's `GC_disable`).
#[no_mangle]
pub extern "C" fn GC_disable() {
    heap();
    GC_dont_gc.fetch_add(1, Ordering::AcqRel);
}

/// Undo one `GC_disable`: decrements `GC_dont_gc` (bdwgc's `GC_enable`; never below 0).
#[no_mangle]
pub extern "C" fn GC_enable() {
    heap();
    let _ = GC_dont_gc.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
        (n > 0).then(|| n - 1)
    });
}

/// Nonzero while collection is disabled: `GC_dont_gc` is nonzero (bdwgc's
/// `GC_is_disabled`). Takes no lock.
#[no_mangle]
pub extern "C" fn GC_is_disabled() -> c_int {
    heap();
    (GC_dont_gc.load(Ordering::Acquire) != 0) as c_int
}

/// Set a hard limit on the heap size in bytes, 0 for none (bdwgc's
/// `GC_set_max_heap_size`): an allocation that would grow the heap past it, even after a
/// collection, warns and returns what the out-of-memory function (`GC_set_oom_fn`)
/// returns. A limit below the current size refuses further growth only.
#[no_mangle]
pub extern "C" fn GC_set_max_heap_size(n: GcWord) {
    heap().set_max_heap_bytes(n);
}

/// Bytes of heap pages holding objects (bdwgc's `GC_get_heap_size`; bdwgc also counts
/// free blocks it keeps mapped, dunegc returns empty pages to its page allocator).
#[no_mangle]
pub extern "C" fn GC_get_heap_size() -> usize {
    crate::callbacks::usage(heap()).heap_bytes
}

/// Bytes of the heap not in use by objects: heap size minus what was live after the last
/// collection minus what was allocated since (bdwgc's `GC_get_free_bytes`; allocation
/// counts of other threads are included as their caches are flushed, so this is an
/// estimate, as bdwgc's is under threads).
#[no_mangle]
pub extern "C" fn GC_get_free_bytes() -> usize {
    let u = crate::callbacks::usage(heap());
    let used = (u.live_bytes_after_gc as usize).saturating_add(u.bytes_since_gc);
    u.heap_bytes.saturating_sub(used)
}

/// Bytes allocated since the last collection (bdwgc's `GC_get_bytes_since_gc`; same
/// caveat as `GC_get_free_bytes`).
#[no_mangle]
pub extern "C" fn GC_get_bytes_since_gc() -> usize {
    crate::callbacks::usage(heap()).bytes_since_gc
}

/// Bytes allocated since the start (bdwgc's `GC_get_total_bytes`).
#[no_mangle]
pub extern "C" fn GC_get_total_bytes() -> usize {
    crate::callbacks::usage(heap()).bytes_allocated_total as usize
}

/// Collections so far, full and incremental (bdwgc's `GC_get_gc_no`).
#[no_mangle]
pub extern "C" fn GC_get_gc_no() -> GcWord {
    crate::callbacks::gc_count(heap()) as GcWord
}

/// Accepted for compatibility; returns 1 (bdwgc's `GC_expand_hp`). dunegc reserves its
/// address space up front and commits pages on demand, so there is nothing to expand.
#[no_mangle]
pub extern "C" fn GC_expand_hp(_number_of_bytes: usize) -> c_int {
    heap();
    1
}

/// Scan `[low, high)` for pointers at every collection from now on: memory the
/// collector does not see otherwise, e.g. from libc's `malloc` or `mmap` (bdwgc's
/// `GC_add_roots`). Static data of the program and of every loaded library is scanned
/// already.
///
/// # Safety
/// `[low, high)` stays readable until removed with `GC_remove_roots` (the collector reads
/// it, from any thread, while the world is stopped and during incremental marking).
#[no_mangle]
pub unsafe extern "C" fn GC_add_roots(low: *mut c_void, high: *mut c_void) {
    if let Err(e) = heap().add_roots(low as usize, high as usize) {
        warn_text(&format!("GC_add_roots: {e}"));
    }
}

/// Stop scanning every range added with `GC_add_roots` that lies within `[low, high)`
/// (bdwgc's `GC_remove_roots`).
#[no_mangle]
pub extern "C" fn GC_remove_roots(low: *mut c_void, high: *mut c_void) {
    heap().remove_roots(low as usize, high as usize);
}

/// Does nothing with `x`, in a way the compiler cannot see through: keeps a pointer
/// visibly live up to this call (bdwgc's `GC_noop1`, used by `GC_reachable_here`).
#[no_mangle]
pub extern "C" fn GC_noop1(x: GcWord) {
    std::hint::black_box(x);
}
