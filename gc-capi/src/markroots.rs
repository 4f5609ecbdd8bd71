//! Root pushing from `gc_mark.h`: `GC_push_all`, `GC_push_all_eager`,
//! `GC_push_conditional`, `GC_push_finalizer_structures`, the push-other-roots callback
//! (`GC_set_push_other_roots`, `GC_get_push_other_roots`, the `GC_push_other_roots`
//! variable), `GC_is_tmp_root` and `GC_clear_stack`.
//!
//! The push calls are meant for the push-other-roots callback and mark procedures, as
//! in bdwgc; elsewhere there is no mark stack to push on and they do nothing. dunegc
//! scans every thread's stack itself, so the default push-other-roots function (which
//! in bdwgc pushes the thread stacks) does nothing, and a program's function that
//! chains to the previous one keeps working.

use crate::init::heap;
use gc_core::mark::descr;
use std::ffi::{c_int, c_void};

/// bdwgc's `GC_push_other_roots_proc`.
pub type PushOtherRootsProc = Option<unsafe extern "C" fn()>;

/// The default push-other-roots function: nothing to add (thread stacks are scanned by
/// the collector itself).
unsafe extern "C" fn default_push_other_roots() {}

/// The function the collector calls while marking roots (bdwgc's variable of this
/// name; `GC_set_push_other_roots` sets it). NULL: none.
#[no_mangle]
pub static mut GC_push_other_roots: PushOtherRootsProc = Some(default_push_other_roots);

/// The gc-core hook: call the program's function.
fn run_push_other_roots() {
    // SAFETY: the program may write the variable at any time (as bdwgc's); read its
    // current value once, by value.
    if let Some(f) = unsafe { (&raw const GC_push_other_roots).read_volatile() } {
        // SAFETY: the default or a function the program installed; called with the heap
        // lock held, as bdwgc calls it with the allocation lock held.
        unsafe { f() }
    }
}

/// Install the hook (at initialisation).
pub(crate) fn install() {
    descr::set_push_other_roots_hook(Some(run_push_other_roots));
}

/// Set the function the collector calls, while it marks roots in every collection
/// (with the world stopped) and at the start of each incremental cycle, to push more
/// roots with `GC_push_all` (bdwgc's `GC_set_push_other_roots`). It must not allocate.
#[no_mangle]
pub extern "C" fn GC_set_push_other_roots(f: PushOtherRootsProc) {
    heap();
    // SAFETY: a plain store of the variable (a pointer-sized value).
    unsafe { (&raw mut GC_push_other_roots).write_volatile(f) };
}

/// The function set by `GC_set_push_other_roots` (bdwgc's `GC_get_push_other_roots`).
#[no_mangle]
pub extern "C" fn GC_get_push_other_roots() -> PushOtherRootsProc {
    // SAFETY: a plain load of the variable.
    unsafe { (&raw const GC_push_other_roots).read_volatile() }
}

/// Scan `[bottom, top)` conservatively as a root range (bdwgc's `GC_push_all`): from
/// the push-other-roots function or a mark procedure; ignored elsewhere.
#[no_mangle]
pub extern "C" fn GC_push_all(bottom: *mut c_void, top: *mut c_void) {
    descr::push_range(bottom as usize, top as usize);
}

/// As `GC_push_all`, scanning the range at once (bdwgc's `GC_push_all_eager`).
#[no_mangle]
pub extern "C" fn GC_push_all_eager(bottom: *mut c_void, top: *mut c_void) {
    descr::scan_now(bottom as usize, top as usize);
}

/// As `GC_push_all` (bdwgc's `GC_push_conditional`, which may skip clean pages when
/// `all` is 0; dunegc pushes the whole range either way, which keeps at least as much).
#[no_mangle]
pub extern "C" fn GC_push_conditional(bottom: *mut c_void, top: *mut c_void, _all: c_int) {
    GC_push_all(bottom, top);
}

/// Push the collector's finalization tables (bdwgc's `GC_push_finalizer_structures`).
/// dunegc's tables are not in the collected heap and are always marked by the
/// collector itself, so there is nothing to push.
#[no_mangle]
pub extern "C" fn GC_push_finalizer_structures() {}

/// Nonzero if `p` lies in the static data of the executable or of a loaded library
/// as found at the last collection (bdwgc's `GC_is_tmp_root`: such data is what bdwgc
/// registers as temporary roots each collection). Roots added with `GC_add_roots` are
/// not temporary.
#[no_mangle]
pub extern "C" fn GC_is_tmp_root(p: *mut c_void) -> c_int {
    heap().in_static_roots(p as usize) as c_int
}

/// Clear a part of the stack below the caller's frame, so stale pointers there keep
/// nothing alive, and return `arg` (bdwgc's `GC_clear_stack`).
#[no_mangle]
pub extern "C" fn GC_clear_stack(arg: *mut c_void) -> *mut c_void {
    clear_below();
    arg
}

#[inline(never)]
fn clear_below() {
    let mut buf = [0usize; 2048];
    // SAFETY: writes to a local array; volatile so the clearing is not optimised away.
    unsafe { std::ptr::write_volatile(&mut buf, [0usize; 2048]) };
    std::hint::black_box(&buf);
}
