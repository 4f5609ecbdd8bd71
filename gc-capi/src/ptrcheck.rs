//! bdwgc's pointer checks (`GC_same_obj`, `GC_pre_incr`, `GC_post_incr`,
//! `GC_is_visible`, `GC_is_valid_displacement`) and the print procedures they call on
//! failure, which are variables the program may replace, as in bdwgc. The defaults
//! abort with bdwgc's messages. Every check returns its argument.
//!
//! dunegc recognises interior pointers everywhere (bdwgc's `GC_all_interior_pointers`),
//! and is multi-threaded like Debian's bdwgc, so, as there, `GC_is_visible` fails only
//! for a misaligned pointer or one into the heap but not into an object, and
//! `GC_is_valid_displacement` only for a pointer into the heap but not into an object
//! (bdwgc also accepts free slots of a page of small objects; dunegc rejects them).

use crate::init::heap;
use std::ffi::c_void;

/// A `void (*)(void *, void *)` print procedure.
pub type GcPrintProc2 = Option<unsafe extern "C" fn(*mut c_void, *mut c_void)>;
/// A `void (*)(void *)` print procedure.
pub type GcPrintProc1 = Option<unsafe extern "C" fn(*mut c_void)>;

unsafe extern "C" fn default_same_obj_print_proc(p: *mut c_void, q: *mut c_void) {
    crate::env::abort_with(&format!("GC_same_obj: Different objects: {p:p}, {q:p}"));
}

unsafe extern "C" fn default_is_visible_print_proc(p: *mut c_void) {
    crate::env::abort_with(&format!("GC_is_visible test failed: {p:p}"));
}

unsafe extern "C" fn default_is_valid_displacement_print_proc(p: *mut c_void) {
    crate::env::abort_with(&format!("GC_is_valid_displacement test failed: {p:p}"));
}

/// Called by `GC_same_obj` when its arguments are in different objects (bdwgc's
/// variable of the same name; the default aborts).
#[no_mangle]
pub static mut GC_same_obj_print_proc: GcPrintProc2 = Some(default_same_obj_print_proc);

/// Called by `GC_is_visible` on failure (bdwgc's variable; the default aborts).
#[no_mangle]
pub static mut GC_is_visible_print_proc: GcPrintProc1 = Some(default_is_visible_print_proc);

/// Called by `GC_is_valid_displacement` on failure (bdwgc's variable; the default
/// aborts).
#[no_mangle]
pub static mut GC_is_valid_displacement_print_proc: GcPrintProc1 =
    Some(default_is_valid_displacement_print_proc);

fn fail1(proc_: *const GcPrintProc1, p: *mut c_void) {
    // SAFETY: `proc_` is one of this module's exported variables; the program may have
    // stored another print procedure there, which it promised is callable.
    if let Some(f) = unsafe { proc_.read_volatile() } {
        // SAFETY: as above.
        unsafe { f(p) };
    }
}

/// Check that `p` and `q` point into the same object; returns `p` (bdwgc's
/// `GC_same_obj`). Succeeds if neither points into the heap, and if `p` points between
/// objects and `q` into none.
///
/// # Safety
/// A print procedure the program stored in `GC_same_obj_print_proc` must accept `p`
/// and `q` (the default one only prints them).
#[no_mangle]
pub unsafe extern "C" fn GC_same_obj(p: *mut c_void, q: *mut c_void) -> *mut c_void {
    let heap = heap();
    let (pa, qa) = (p as usize, q as usize);
    let ok = match heap.find_object(pa) {
        Some(info) => qa >= info.base && qa < info.base + info.len_bytes,
        None if heap.in_used_span(pa) => heap.find_object(qa).is_none(),
        None => pa >> 12 == qa >> 12 || !heap.in_used_span(qa),
    };
    if !ok {
        // SAFETY: the exported variable; see `fail1`.
        if let Some(f) = unsafe { (&raw const GC_same_obj_print_proc).read_volatile() } {
            // SAFETY: the program's or the default print procedure.
            unsafe { f(p, q) };
        }
    }
    p
}

/// `*p += how_much` (in bytes), checking that the result stays in the same object;
/// returns the new value (bdwgc's `GC_pre_incr`).
///
/// # Safety
/// `p` is a readable and writable pointer slot; see [`GC_same_obj`] for the print
/// procedure.
#[no_mangle]
pub unsafe extern "C" fn GC_pre_incr(p: *mut *mut c_void, how_much: isize) -> *mut c_void {
    // SAFETY: the caller's promise.
    let initial = unsafe { p.read() };
    // SAFETY: the caller's promise covers the print procedure.
    let result = unsafe { GC_same_obj(initial.wrapping_byte_offset(how_much), initial) };
    // SAFETY: as above.
    unsafe { p.write(result) };
    result
}

/// `*p += how_much` (in bytes), checking that the result stays in the same object;
/// returns the old value (bdwgc's `GC_post_incr`).
///
/// # Safety
/// `p` is a readable and writable pointer slot; see [`GC_same_obj`] for the print
/// procedure.
#[no_mangle]
pub unsafe extern "C" fn GC_post_incr(p: *mut *mut c_void, how_much: isize) -> *mut c_void {
    // SAFETY: the caller's promise.
    let initial = unsafe { p.read() };
    // SAFETY: the caller's promise covers the print procedure.
    let result = unsafe { GC_same_obj(initial.wrapping_byte_offset(how_much), initial) };
    // SAFETY: as above.
    unsafe { p.write(result) };
    initial
}

/// Check that `p` is a location the collector scans; returns `p` (bdwgc's
/// `GC_is_visible`, multi-threaded form: fails for a misaligned pointer, or one into
/// the heap but not into an object).
#[no_mangle]
pub extern "C" fn GC_is_visible(p: *mut c_void) -> *mut c_void {
    let heap = heap();
    let a = p as usize;
    if !a.is_multiple_of(std::mem::align_of::<usize>())
        || (heap.in_used_span(a) && heap.base_of(a).is_none())
    {
        fail1(&raw const GC_is_visible_print_proc, p);
    }
    p
}

/// Check that `p`, if it points into the heap, points into an object at a displacement
/// the collector recognises (bdwgc's `GC_is_valid_displacement`): any one while all
/// interior pointers are recognised, else 0 or a registered displacement. NULL is
/// returned as is; a failing pointer goes to `GC_is_valid_displacement_print_proc`.
#[no_mangle]
pub extern "C" fn GC_is_valid_displacement(p: *mut c_void) -> *mut c_void {
    if p.is_null() {
        return p;
    }
    let heap = heap();
    let a = p as usize;
    let ok = heap.base_of(a).is_some_and(|b| {
        gc_core::mark::interior::all_interior_pointers()
            || gc_core::mark::interior::is_valid_displacement(a - b)
    });
    if heap.in_used_span(a) && !ok {
        fail1(&raw const GC_is_valid_displacement_print_proc, p);
    }
    p
}
