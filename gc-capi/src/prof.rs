//! Heap statistics beyond [`crate::collect`]'s getters: `GC_get_prof_stats` (bdwgc
//! 8.2's `struct GC_prof_stats_s`, field for field), `GC_get_memory_use`,
//! `GC_get_parallel` and `GC_set_markers_count`.
//!
//! Fields dunegc does not count are reported as `(GC_word)-1`, bdwgc's "unknown"
//! value: `non_gc_bytes` (bdwgc's client-maintained `GC_non_gc_bytes`),
//! `bytes_reclaimed_since_gc` / `reclaimed_bytes_before_gc` (dunegc sweeps all of the
//! heap inside each collection and keeps only a running total), `expl_freed_bytes_since_gc`
//! and `obtained_from_os_bytes`. `unmapped_bytes` is 0 and `markers_m1` is 0 (one
//! marking thread), which are true.

use crate::init::heap;
use crate::types::GcWord;
use std::ffi::{c_int, c_void};

/// bdwgc 8.2's `struct GC_prof_stats_s`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct GcProfStats {
    /// Heap size in bytes, unmapped area included.
    pub heapsize_full: GcWord,
    /// Bytes in free and unmapped blocks.
    pub free_bytes_full: GcWord,
    /// Bytes unmapped to the OS.
    pub unmapped_bytes: GcWord,
    /// Bytes allocated since the last collection.
    pub bytes_allocd_since_gc: GcWord,
    /// Bytes allocated before the last collection.
    pub allocd_bytes_before_gc: GcWord,
    /// Bytes not considered for collection (unknown here: -1).
    pub non_gc_bytes: GcWord,
    /// Collection count.
    pub gc_no: GcWord,
    /// Marker threads besides the initiating one.
    pub markers_m1: GcWord,
    /// Bytes reclaimed after the last collection (unknown here: -1).
    pub bytes_reclaimed_since_gc: GcWord,
    /// Bytes reclaimed before the last collection (unknown here: -1).
    pub reclaimed_bytes_before_gc: GcWord,
    /// Bytes freed explicitly since the last collection (unknown here: -1).
    pub expl_freed_bytes_since_gc: GcWord,
    /// Bytes obtained from the OS (unknown here: -1).
    pub obtained_from_os_bytes: GcWord,
}

const UNKNOWN: GcWord = GcWord::MAX;

fn fill() -> GcProfStats {
    let heap = heap();
    let u = crate::callbacks::usage(heap);
    let used = (u.live_bytes_after_gc as usize).saturating_add(u.bytes_since_gc);
    let total = u.bytes_allocated_total as GcWord;
    GcProfStats {
        heapsize_full: u.heap_bytes as GcWord,
        free_bytes_full: u.heap_bytes.saturating_sub(used) as GcWord,
        unmapped_bytes: 0,
        bytes_allocd_since_gc: u.bytes_since_gc as GcWord,
        allocd_bytes_before_gc: total.wrapping_sub(u.bytes_since_gc as GcWord),
        non_gc_bytes: UNKNOWN,
        gc_no: crate::callbacks::gc_count(heap) as GcWord,
        markers_m1: 0,
        bytes_reclaimed_since_gc: UNKNOWN,
        reclaimed_bytes_before_gc: UNKNOWN,
        expl_freed_bytes_since_gc: UNKNOWN,
        obtained_from_os_bytes: UNKNOWN,
    }
}

/// Copy the statistics into `*pstats`, at most `stats_sz` bytes; bytes past the
/// structure are set to 0xff (bdwgc's "unknown"). Returns the bytes filled.
///
/// # Safety
/// `pstats` has `stats_sz` writable bytes.
unsafe fn copy_out(pstats: *mut c_void, stats_sz: usize) -> usize {
    let s = fill();
    let n = std::mem::size_of::<GcProfStats>();
    let k = n.min(stats_sz);
    // SAFETY: `s` has `n >= k` bytes; the caller guarantees `stats_sz >= k` writable.
    unsafe { std::ptr::copy_nonoverlapping((&raw const s).cast::<u8>(), pstats.cast::<u8>(), k) };
    if stats_sz > n {
        // SAFETY: bytes `n..stats_sz` of the caller's buffer.
        unsafe { std::ptr::write_bytes(pstats.cast::<u8>().add(n), 0xff, stats_sz - n) };
    }
    k
}

/// Fill `*pstats` (bdwgc's `GC_get_prof_stats`; values read under one lock).
///
/// # Safety
/// `pstats` has `stats_sz` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn GC_get_prof_stats(pstats: *mut c_void, stats_sz: usize) -> usize {
    // SAFETY: the caller's promise.
    unsafe { copy_out(pstats, stats_sz) }
}

/// `GC_get_prof_stats` (bdwgc's unsynchronised variant, for use inside
/// `GC_call_with_alloc_lock`, where the values come from the lock-time snapshot).
///
/// # Safety
/// `pstats` has `stats_sz` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn GC_get_prof_stats_unsafe(pstats: *mut c_void, stats_sz: usize) -> usize {
    // SAFETY: the caller's promise.
    unsafe { copy_out(pstats, stats_sz) }
}

/// Bytes in use by allocated objects: `GC_get_heap_size() - GC_get_free_bytes()`
/// (bdwgc's `GC_get_memory_use`).
#[no_mangle]
pub extern "C" fn GC_get_memory_use() -> usize {
    let s = fill();
    s.heapsize_full - s.free_bytes_full
}

/// `GC_parallel`: the marker threads besides the collecting one, once they run (0
/// before the first collection), as bdwgc's `GC_get_parallel`.
#[no_mangle]
pub extern "C" fn GC_get_parallel() -> c_int {
    crate::control::GC_parallel.load(std::sync::atomic::Ordering::Acquire)
}

/// Ask for `n` marker threads (bdwgc's `GC_set_markers_count`, effective before
/// `GC_INIT`): before initialisation it sets `DUNEGC_MARKERS` unless already set, which
/// gc-core builds with parallel marking read; this gc-core marks on one thread.
#[no_mangle]
pub extern "C" fn GC_set_markers_count(n: std::ffi::c_uint) {
    if n > 0
        && crate::init::GC_is_init_called() == 0
        && std::env::var_os("DUNEGC_MARKERS").is_none()
    {
        std::env::set_var("DUNEGC_MARKERS", n.to_string());
    }
}
