//! Which static data is scanned: `GC_no_dls`, `GC_exclude_static_roots`,
//! `GC_clear_exclusion_table`, `GC_register_has_static_roots_callback`, and
//! `GC_clear_roots`.
//!
//! gc-core finds the writable segments of the executable and of every loaded library
//! with `dl_iterate_phdr` before each collection and passes each through the filter
//! installed here ([`gc_core::api::capi_hooks::set_static_segment_filter`]), which
//! applies bdwgc's rules in bdwgc's order (Linux, `dl_iterate_phdr` build):
//! 1. `GC_no_dls` nonzero: no segment at all is registered — on Linux bdwgc finds the
//!    executable's data through `dl_iterate_phdr` too, so only `GC_add_roots` ranges
//!    (and stacks) remain roots;
//! 2. the has-static-roots callback, if set, is called with the object's name (`""` for
//!    the executable), the segment's start and size; 0 drops the segment;
//! 3. the ranges in the exclusion table are cut out of what is left.

use crate::init::heap;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

/// bdwgc's `GC_no_dls`: nonzero, the collector registers no static data of its own
/// (read before every collection); the program registers its roots with `GC_add_roots`.
#[no_mangle]
pub static GC_no_dls: AtomicI32 = AtomicI32::new(0);

/// bdwgc's `GC_has_static_roots_func`.
pub type GcHasStaticRootsFunc =
    Option<unsafe extern "C" fn(name: *const c_char, start: *mut c_void, size: usize) -> c_int>;

/// The callback of `GC_register_has_static_roots_callback`, as an address (0: none).
static CALLBACK: AtomicUsize = AtomicUsize::new(0);

/// Excluded ranges `[start, end)`, sorted by start and disjoint.
static EXCLUDED: Mutex<Vec<(usize, usize)>> = Mutex::new(Vec::new());

fn excluded() -> MutexGuard<'static, Vec<(usize, usize)>> {
    EXCLUDED.lock().unwrap_or_else(|e| e.into_inner())
}

/// Install the filter (at initialisation).
pub(crate) fn install() {
    gc_core::api::capi_hooks::set_static_segment_filter(Some(filter));
}

fn filter(name: &CStr, start: usize, end: usize, keep: &mut dyn FnMut(usize, usize)) {
    if GC_no_dls.load(Ordering::Acquire) != 0 {
        return;
    }
    let cb = CALLBACK.load(Ordering::Acquire);
    if cb != 0 {
        // SAFETY: only GC_register_has_static_roots_callback stores nonzero values: the
        // address of a GcHasStaticRootsFunc's function.
        let cb = unsafe {
            std::mem::transmute::<
                usize,
                unsafe extern "C" fn(*const c_char, *mut c_void, usize) -> c_int,
            >(cb)
        };
        // SAFETY: the program's filter, called as bdwgc calls it (lock held).
        if unsafe { cb(name.as_ptr(), start as *mut c_void, end - start) } == 0 {
            return;
        }
    }
    let mut from = start;
    for &(s, e) in excluded().iter() {
        if e <= from {
            continue;
        }
        if s >= end {
            break;
        }
        if s > from {
            keep(from, s);
        }
        from = from.max(e);
    }
    if from < end {
        keep(from, end);
    }
}

/// Never scan `[low, high)` of static data for pointers (bdwgc's
/// `GC_exclude_static_roots`): from the next collection, an object referenced only from
/// there is not kept alive. Applies to the segments the collector finds, not to ranges
/// added with `GC_add_roots`.
#[no_mangle]
pub extern "C" fn GC_exclude_static_roots(low: *mut c_void, high: *mut c_void) {
    heap();
    let (low, high) = (low as usize & !7, (high as usize).next_multiple_of(8));
    if low >= high {
        return;
    }
    let mut table = excluded();
    table.push((low, high));
    table.sort_unstable();
    // Merge overlapping ranges, so the filter walks disjoint ones.
    let mut merged: Vec<(usize, usize)> = Vec::with_capacity(table.len());
    for &(s, e) in table.iter() {
        match merged.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    *table = merged;
}

/// Empty the exclusion table (bdwgc's `GC_clear_exclusion_table`).
#[no_mangle]
pub extern "C" fn GC_clear_exclusion_table() {
    heap();
    excluded().clear();
}

/// Filter the static segments before each collection: `callback(name, start, size)`
/// returns nonzero to scan the segment; NULL removes it (bdwgc's
/// `GC_register_has_static_roots_callback`). It is called with the allocation lock and
/// the loader's lock held: it must not allocate from the collector or load libraries.
///
/// # Safety
/// `callback` stays callable while registered.
#[no_mangle]
pub unsafe extern "C" fn GC_register_has_static_roots_callback(callback: GcHasStaticRootsFunc) {
    heap();
    CALLBACK.store(callback.map_or(0, |f| f as usize), Ordering::Release);
}

/// Forget every range added with `GC_add_roots` (bdwgc's `GC_clear_roots`; the static
/// data the collector finds itself is found again at the next collection, as in bdwgc on
/// Linux).
#[no_mangle]
pub extern "C" fn GC_clear_roots() {
    heap().remove_roots(0, usize::MAX);
}

/// Set `GC_no_dls` (bdwgc's `GC_set_no_dls`).
#[no_mangle]
pub extern "C" fn GC_set_no_dls(value: c_int) {
    GC_no_dls.store(value, Ordering::Release);
}

/// `GC_no_dls` (bdwgc's `GC_get_no_dls`).
#[no_mangle]
pub extern "C" fn GC_get_no_dls() -> c_int {
    GC_no_dls.load(Ordering::Acquire)
}
