//! Stacks the program declares to the collector: `GC_stackbottom` (the primordial
//! thread's cold end, set before initialisation), `GC_set_stackbottom` (a thread's or
//! coroutine's cold end, later), `GC_get_my_stackbottom` (the cold end in effect and the
//! thread's handle) and `GC_register_altstack` (the normal and the alternate signal stack
//! of the calling thread).
//!
//! gc-core keeps the declarations ([`gc_core::roots::declared`], keyed by the thread
//! pointer, which is the handle `GC_get_my_stackbottom` returns) and applies them when it
//! scans a thread's stack: a declared bottom bounds the scan, and a thread stopped on its
//! alternate stack has that stack and its whole normal stack scanned (where bdwgc on Linux
//! scans only the alternate one).
//!
//! A declaration lives as long as its thread: every path that makes one goes through the
//! thread it is about (the handle comes from `GC_get_my_stackbottom`, which that thread
//! calls), which arms a thread-local guard that drops the declarations when the thread
//! exits, as glibc may give the next thread the same thread pointer.
//! `GC_unregister_my_thread` drops them too.

use crate::init::{heap, is_initialised};
use crate::types::GcStackBase;
use crate::warn::warn_text;
use gc_core::roots::declared;
use std::cell::Cell;
use std::ffi::{c_char, c_void};
use std::sync::atomic::{AtomicPtr, Ordering};

/// The cold end of the primordial thread's stack (bdwgc's deprecated `GC_stackbottom`).
/// A value the program stores before initialisation bounds that thread's stack scan;
/// initialisation stores the cold end in effect, which later writes do not change (use
/// `GC_set_stackbottom`).
#[no_mangle]
pub static GC_stackbottom: AtomicPtr<c_char> = AtomicPtr::new(std::ptr::null_mut());

/// Drops the calling thread's declarations when it exits (armed by the first one).
struct Guard {
    thread: Cell<usize>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        let t = self.thread.get();
        if t != 0 {
            declared::forget(t);
        }
    }
}

thread_local! {
    static GUARD: Guard = const { Guard { thread: Cell::new(0) } };
}

/// The calling thread's pointer (its `pthread_t`, the FS base).
fn me() -> usize {
    // SAFETY: pthread_self has no preconditions.
    unsafe { libc::pthread_self() as usize }
}

/// Arm the calling thread's guard: its declarations end with it.
fn arm_guard() {
    let t = me();
    // During the thread's own TLS teardown the guard may be gone already; a declaration
    // made then would outlive the thread, so callers arm before they declare and a
    // thread that is exiting declares nothing worth keeping.
    if GUARD.try_with(|g| g.thread.set(t)).is_err() {
        declared::forget(t);
    }
}

/// Apply `GC_stackbottom` (called once by initialisation, in the initialising thread):
/// a value the program set becomes the thread's declared bottom; otherwise the variable
/// gets the thread's cold end.
pub(crate) fn install() {
    let set = GC_stackbottom.load(Ordering::Acquire);
    if set.is_null() {
        if let Some(base) = crate::threads::stack_base() {
            GC_stackbottom.store(base.cast(), Ordering::Release);
        }
        return;
    }
    arm_guard();
    if let Err(e) = declared::set_bottom(me(), set as usize) {
        warn_text(&format!("GC_stackbottom: {e}"));
    }
}

/// Drop the calling thread's declarations (`GC_unregister_my_thread`).
pub(crate) fn forget_current() {
    declared::forget(me());
}

/// Store the cold end of the calling thread's stack in `*sb`, as the collector uses it
/// (the declared bottom, else the stack's base as glibc reports it; NULL if neither is
/// known), and return the thread's handle for `GC_set_stackbottom` (bdwgc's
/// `GC_get_my_stackbottom`; the handle is the `pthread_t`, never NULL).
///
/// # Safety
/// `sb` points to a writable `struct GC_stack_base`.
#[no_mangle]
pub unsafe extern "C" fn GC_get_my_stackbottom(sb: *mut GcStackBase) -> *mut c_void {
    heap();
    // The handle may be given to GC_set_stackbottom in another thread: this thread's
    // declarations must end with it.
    arm_guard();
    let bottom = declared::get(me())
        .map(|d| d.bottom)
        .filter(|&b| b != 0)
        .map(|b| b as *mut c_void)
        .or_else(crate::threads::stack_base)
        .unwrap_or(std::ptr::null_mut());
    // SAFETY: the caller's guarantee on `sb`.
    unsafe { sb.write(GcStackBase { mem_base: bottom }) };
    me() as *mut c_void
}

/// Set the cold end of the stack of the thread `handle` (from `GC_get_my_stackbottom`;
/// NULL: the calling thread) to `sb->mem_base` (bdwgc's `GC_set_stackbottom`, for
/// coroutines that switch stacks). That thread's stack is then scanned from its stack
/// pointer up to this address, when the address lies above the stack pointer in
/// readable memory (else as without a declaration). Before initialisation, with a NULL
/// handle, it sets `GC_stackbottom`. A NULL `mem_base` drops the declaration.
///
/// # Safety
/// `sb` points to a readable `struct GC_stack_base`; a non-NULL `handle` came from
/// `GC_get_my_stackbottom` in a thread that still runs.
#[no_mangle]
pub unsafe extern "C" fn GC_set_stackbottom(handle: *mut c_void, sb: *const GcStackBase) {
    if sb.is_null() {
        warn_text("GC_set_stackbottom: NULL stack base; nothing changed");
        return;
    }
    // SAFETY: the caller's guarantee on `sb`.
    let bottom = unsafe { (*sb).mem_base } as usize;
    if !is_initialised() && handle.is_null() {
        GC_stackbottom.store(bottom as *mut c_char, Ordering::Release);
        return;
    }
    let thread = if handle.is_null() {
        me()
    } else {
        handle as usize
    };
    if thread == me() {
        arm_guard();
    }
    if let Err(e) = declared::set_bottom(thread, bottom) {
        warn_text(&format!("GC_set_stackbottom: {e}"));
    }
}

/// Declare the calling thread's normal stack `[stack_start, stack_start + stack_size)`
/// and alternate signal stack `[altstack_base, altstack_base + altstack_size)` (bdwgc's
/// `GC_register_altstack`). While the thread runs on the alternate stack (in a
/// `SA_ONSTACK` signal handler), a collection scans the alternate stack from its stack
/// pointer and the whole normal stack (its readable part), whose interrupted frames stay
/// live. A NULL or empty alternate stack drops the declaration.
#[no_mangle]
pub extern "C" fn GC_register_altstack(
    stack_start: *mut c_void,
    stack_size: usize,
    altstack_base: *mut c_void,
    altstack_size: usize,
) {
    arm_guard();
    let normal = (
        stack_start as usize,
        (stack_start as usize).saturating_add(stack_size),
    );
    let alt = (
        altstack_base as usize,
        (altstack_base as usize).saturating_add(altstack_size),
    );
    if let Err(e) = declared::set_altstack(me(), normal, alt) {
        warn_text(&format!("GC_register_altstack: {e}"));
    }
}
