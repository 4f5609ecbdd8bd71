//! gcj-style objects (bdwgc's `gc_gcj.h`): objects whose first word points to a type
//! structure (a "vtable") holding the object's mark descriptor at `MARK_DESCR_OFFSET`
//! (one word) from its start.
//!
//! `GC_init_gcj_malloc(mp_index, mp)` makes two kinds, as bdwgc does: `GC_gcj_kind`,
//! scanned through the per-object indirect descriptor `-(MARK_DESCR_OFFSET +
//! GC_INDIR_PER_OBJ_BIAS) | GC_DS_PER_OBJECT` (so the marker reads the descriptor from
//! the vtable the object's first word names; a first word of 0 scans nothing), and
//! `GC_gcj_debug_kind`, for `GC_debug_gcj_malloc`'s objects, scanned by the program's
//! mark procedure `mp`, installed at the reserved index `mp_index` and called with
//! environment 1 on the object's start (its debug header). With `GC_IGNORE_GCJ_INFO` in
//! the environment both kinds are scanned conservatively, whole, as in bdwgc.
//!
//! Bad input: `mp_index` outside bdwgc's reserved indices (0..8) or already in use
//! aborts with bdwgc's message "GC_init_gcj_malloc: bad index"; a NULL `mp` installs
//! bdwgc's stand-in, which aborts with "No client gcj mark proc is specified" if a debug
//! gcj object is ever marked. Allocating before `GC_init_gcj_malloc` warns and returns
//! NULL (bdwgc's behaviour is undefined there).

use crate::init::heap;
use crate::kinds::{new_kind, GC_generic_malloc};
use crate::warn::warn_text;
use gc_core::api::capi_hooks::set_reserved_mark_proc;
use gc_core::mark::descr::{self, MarkProc, MsEntry};
use std::ffi::{c_char, c_int, c_void};
use std::sync::Mutex;

/// bdwgc's `MARK_DESCR_OFFSET`: where the descriptor lies in the vtable.
const MARK_DESCR_OFFSET: usize = std::mem::size_of::<usize>();

/// bdwgc's `GC_gcj_kind`: the kind of `GC_gcj_malloc`'s objects (0 until
/// `GC_init_gcj_malloc`).
#[no_mangle]
pub static mut GC_gcj_kind: c_int = 0;

/// bdwgc's `GC_gcj_debug_kind`: the kind of `GC_debug_gcj_malloc`'s objects.
#[no_mangle]
pub static mut GC_gcj_debug_kind: c_int = 0;

/// Set once `GC_init_gcj_malloc` made the kinds.
static INIT: Mutex<bool> = Mutex::new(false);

/// bdwgc's `GC_gcj_fake_mark_proc`, used when `GC_init_gcj_malloc` gets no procedure.
unsafe extern "C" fn fake_mark_proc(
    _addr: *mut usize,
    _top: *mut MsEntry,
    _limit: *mut MsEntry,
    _env: usize,
) -> *mut MsEntry {
    eprintln!("No client gcj mark proc is specified");
    std::process::abort()
}

/// Make the gcj kinds and install `mp` at the reserved mark procedure index `mp_index`
/// (bdwgc's `GC_init_gcj_malloc`); a second call does nothing. See the module doc.
///
/// # Safety
/// `mp` is NULL or a `GC_mark_proc` that may be called for debug gcj objects while
/// the collector marks, for the rest of the process.
#[no_mangle]
pub unsafe extern "C" fn GC_init_gcj_malloc(mp_index: c_int, mp: *mut c_void) {
    heap();
    let mut done = INIT.lock().unwrap_or_else(|e| e.into_inner());
    if *done {
        return;
    }
    let proc_: MarkProc = if mp.is_null() {
        fake_mark_proc
    } else {
        // SAFETY: the caller passes a GC_mark_proc (bdwgc types it void * in the header).
        unsafe { std::mem::transmute::<*mut c_void, MarkProc>(mp) }
    };
    let index = usize::try_from(mp_index).unwrap_or(usize::MAX);
    if !set_reserved_mark_proc(index, proc_) {
        eprintln!("GC_init_gcj_malloc: bad index");
        std::process::abort();
    }
    let (kind, debug_kind) = if std::env::var_os("GC_IGNORE_GCJ_INFO").is_some() {
        let k = new_kind(descr::DS_LENGTH, true);
        (k, k)
    } else {
        let per_object = 0usize.wrapping_sub(MARK_DESCR_OFFSET + descr::INDIR_PER_OBJ_BIAS)
            | descr::DS_PER_OBJECT;
        (
            new_kind(per_object, false),
            new_kind(descr::make_proc(index, 1), false),
        )
    };
    // SAFETY: plain stores of the exported ints, once, under INIT.
    unsafe {
        (&raw mut GC_gcj_kind).write_volatile(kind as c_int);
        (&raw mut GC_gcj_debug_kind).write_volatile(debug_kind as c_int);
    }
    *done = true;
}

/// The two kinds, if `GC_init_gcj_malloc` ran.
fn kinds(what: &str) -> Option<(c_int, c_int)> {
    if !*INIT.lock().unwrap_or_else(|e| e.into_inner()) {
        warn_text(&format!(
            "{what}: GC_init_gcj_malloc was not called; returning NULL"
        ));
        return None;
    }
    // SAFETY: plain loads of ints written once before INIT was set.
    Some(unsafe {
        (
            (&raw const GC_gcj_kind).read_volatile(),
            (&raw const GC_gcj_debug_kind).read_volatile(),
        )
    })
}

/// Allocate `lb` zeroed bytes of the gcj kind whose first word is set to
/// `ptr_to_struct_containing_descr` (the vtable; bdwgc's `GC_gcj_malloc`). The marker
/// scans the object by the descriptor at offset one word in the vtable. NULL (the
/// out-of-memory function's answer) on failure.
#[no_mangle]
pub extern "C" fn GC_gcj_malloc(
    lb: usize,
    ptr_to_struct_containing_descr: *mut c_void,
) -> *mut c_void {
    let vtable = ptr_to_struct_containing_descr as usize;
    let Some((kind, _)) = kinds("GC_gcj_malloc") else {
        return std::ptr::null_mut();
    };
    let p = GC_generic_malloc(lb.max(MARK_DESCR_OFFSET), kind);
    if !p.is_null() {
        // SAFETY: a fresh object of at least one word.
        unsafe { p.cast::<usize>().write_volatile(vtable) };
    }
    p
}

/// `GC_gcj_malloc` (bdwgc's `GC_gcj_malloc_ignore_off_page`: the program keeps a
/// pointer near the start; dunegc recognises every interior pointer anyway).
#[no_mangle]
pub extern "C" fn GC_gcj_malloc_ignore_off_page(
    lb: usize,
    ptr_to_struct_containing_descr: *mut c_void,
) -> *mut c_void {
    GC_gcj_malloc(lb, ptr_to_struct_containing_descr)
}

/// `GC_gcj_malloc` with a debug header naming `s:i` (bdwgc's `GC_debug_gcj_malloc`):
/// the object is of `GC_gcj_debug_kind`, so the mark procedure given to
/// `GC_init_gcj_malloc` scans it (environment 1, called on the header's start); the
/// body's first word is the vtable pointer.
#[no_mangle]
pub extern "C" fn GC_debug_gcj_malloc(
    lb: usize,
    ptr_to_struct_containing_descr: *mut c_void,
    s: *const c_char,
    i: c_int,
) -> *mut c_void {
    let vtable = ptr_to_struct_containing_descr as usize;
    let Some((_, debug_kind)) = kinds("GC_debug_gcj_malloc") else {
        return std::ptr::null_mut();
    };
    let body = crate::debug::debug_alloc_with("GC_debug_gcj_malloc", lb.max(8), s, i, |n| {
        GC_generic_malloc(n, debug_kind)
    });
    if !body.is_null() {
        // SAFETY: the body of a fresh debug object of at least one word.
        unsafe { body.cast::<usize>().write_volatile(vtable) };
    }
    body
}
