//! Disclaim procedures and finalized allocation (bdwgc's `gc_disclaim.h`):
//! `GC_register_disclaim_proc`, `GC_init_finalized_malloc`, `GC_finalized_malloc`.
//!
//! A disclaim procedure is called, in the collection that finds an object of its kind
//! unreachable and before the object is reclaimed, with the object's start; a nonzero
//! answer keeps the object for this cycle. It runs with the allocation lock held, as
//! in bdwgc, and also with the world stopped (bdwgc sweeps lazily, with the world
//! running): it must not allocate, and must not take locks that other threads of the
//! program may hold (stdio's among them; `pthread_mutex_trylock` is fine). With
//! `mark_from_all` nonzero, every allocated object of the kind is scanned as a root in
//! every collection (bdwgc's `GC_push_unconditionally`, which keys on a tag in the
//! object's first word; dunegc knows which objects are allocated), so what an
//! unreachable one references is still intact when its procedure runs.
//!
//! `GC_finalized_malloc(lb, fc)` allocates `lb + 1` words of bdwgc's finalized kind
//! (scanned whole, `mark_from_all`), stores `fc | 1` in the first word and returns the
//! second: the disclaim procedure calls `fc->proc(obj, fc->cd)` on the returned address
//! and lets the object be reclaimed in the same cycle (so the same rules apply to the
//! finalizer). In leak-detection mode both registration calls do nothing, as in bdwgc.

use crate::init::heap;
use crate::kinds::{lookup, new_kind, GC_generic_malloc};
use crate::types::GcFinalizationProc;
use crate::warn::warn_text;
use gc_core::api::capi_hooks::{set_disclaim_proc, DisclaimProc};
use gc_core::mark::{descr, interior};
use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Once;

/// bdwgc's `struct GC_finalizer_closure`.
#[repr(C)]
pub struct GcFinalizerClosure {
    /// Called with the object and `cd`.
    pub proc_: GcFinalizationProc,
    /// Client data.
    pub cd: *mut c_void,
}

/// bdwgc's `FINALIZER_CLOSURE_FLAG` (Debian's build has no back pointers).
const CLOSURE_FLAG: usize = 1;

/// The finalized kind (-1 until `GC_init_finalized_malloc`).
static FINALIZED_KIND: AtomicI32 = AtomicI32::new(-1);
static INIT: Once = Once::new();

/// Register `proc_` to be called on each unreachable object of `kind` before it is
/// reclaimed (bdwgc's `GC_register_disclaim_proc`); see the module doc. NULL removes
/// it. A kind that was never made warns and changes nothing (bdwgc asserts).
#[no_mangle]
pub extern "C" fn GC_register_disclaim_proc(
    kind: c_int,
    proc_: Option<DisclaimProc>,
    mark_from_all: c_int,
) {
    heap();
    if crate::errors::find_leak() {
        return;
    }
    match usize::try_from(kind).ok().and_then(lookup) {
        Some((k, scan)) => set_disclaim_proc(k, scan, proc_, mark_from_all != 0),
        None => warn_text(&format!(
            "GC_register_disclaim_proc: invalid kind {kind}; ignored"
        )),
    }
}

/// The finalized kind's disclaim procedure (bdwgc's `GC_finalized_disclaim`).
unsafe extern "C" fn finalized_disclaim(obj: *mut c_void) -> c_int {
    // SAFETY: an object of the finalized kind, at least two words long.
    let word = unsafe { obj.cast::<usize>().read_volatile() };
    if word & CLOSURE_FLAG != 0 {
        let fc = (word & !CLOSURE_FLAG) as *const GcFinalizerClosure;
        // SAFETY: GC_finalized_malloc stored a closure the program passed (non-NULL,
        // kept reachable by the unconditional scan of this kind or by the program).
        if let Some(f) = unsafe { (*fc).proc_ } {
            // SAFETY: the program registered `f` for the object it got back.
            unsafe { f(obj.byte_add(std::mem::size_of::<usize>()), (*fc).cd) };
        }
    }
    0
}

/// Prepare the kind `GC_finalized_malloc` uses (bdwgc's `GC_init_finalized_malloc`):
/// registers the displacements of one word, of `FINALIZER_CLOSURE_FLAG` and of the
/// debug header plus it, as bdwgc does. Thread-safe; later calls do nothing.
#[no_mangle]
pub extern "C" fn GC_init_finalized_malloc() {
    heap();
    INIT.call_once(|| {
        for d in [
            std::mem::size_of::<usize>(),
            CLOSURE_FLAG,
            crate::debug::HEADER_BYTES + CLOSURE_FLAG,
        ] {
            let _ = interior::register_displacement(d);
        }
        let k = new_kind(descr::DS_LENGTH, true);
        if !crate::errors::find_leak() {
            if let Some((kind, scan)) = lookup(k) {
                set_disclaim_proc(kind, scan, Some(finalized_disclaim), true);
            }
        }
        FINALIZED_KIND.store(k as i32, Ordering::Release);
    });
}

/// Allocate `lb` zeroed bytes finalized by `fc` (bdwgc's `GC_finalized_malloc`): once
/// unreachable, `fc->proc(p, fc->cd)` is called on the returned `p` in the collection
/// that reclaims it (see the module doc for where it runs). `GC_size` is a word more
/// than asked and `GC_base(p)` is one word before `p`, as in bdwgc. Before
/// `GC_init_finalized_malloc`, or with a NULL `fc`, warns and returns NULL.
///
/// # Safety
/// `fc` is NULL or points to a closure that stays valid while the object lives.
#[no_mangle]
pub unsafe extern "C" fn GC_finalized_malloc(
    lb: usize,
    fc: *const GcFinalizerClosure,
) -> *mut c_void {
    let k = FINALIZED_KIND.load(Ordering::Acquire);
    if k < 0 || fc.is_null() || fc as usize & CLOSURE_FLAG != 0 {
        warn_text(if k < 0 {
            "GC_finalized_malloc: GC_init_finalized_malloc was not called; returning NULL"
        } else {
            "GC_finalized_malloc: invalid finalizer closure; returning NULL"
        });
        return std::ptr::null_mut();
    }
    let word = std::mem::size_of::<usize>();
    let op = GC_generic_malloc(lb.saturating_add(word), k);
    if op.is_null() {
        return op;
    }
    // SAFETY: a fresh object of at least two words.
    unsafe {
        op.cast::<usize>()
            .write_volatile(fc as usize | CLOSURE_FLAG)
    };
    // SAFETY: one word into the same object.
    unsafe { op.byte_add(word) }
}
