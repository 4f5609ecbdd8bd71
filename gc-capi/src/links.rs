//! Disappearing links: `GC_general_register_disappearing_link`,
//! `GC_register_disappearing_link`, `GC_unregister_disappearing_link`,
//! `GC_move_disappearing_link` (bdwgc's "short" links) and the long links
//! `GC_register_long_link`, `GC_unregister_long_link`, `GC_move_long_link`.
//!
//! `*link` is set to NULL by the first collection that finds `obj` unreachable, before
//! finalizers are looked for: a weak pointer is broken before anything reachable from
//! it is finalized, as in bdwgc. The registration goes away then, when the object that
//! contains `link` is collected, or when it is unregistered.

use crate::init::heap;
use crate::types::{GC_DUPLICATE, GC_NOT_FOUND, GC_SUCCESS};
use gc_core::api::capi_links::{LinkMove, LinkRegistration};
use std::ffi::{c_int, c_void};

/// bdwgc's `GC_NO_MEMORY`.
pub const GC_NO_MEMORY: c_int = 2;

/// Abort on a bad argument, as bdwgc does.
fn bad_arg(function: &str) -> ! {
    let msg = format!("dunegc: Bad arg to {function}; aborting\n");
    // SAFETY: writes a valid buffer of msg.len() bytes to stderr.
    unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
    std::process::abort()
}

/// True if `p` is a non-NULL, word-aligned address.
fn aligned(p: *mut *mut c_void) -> bool {
    !p.is_null() && (p as usize) & (std::mem::size_of::<usize>() - 1) == 0
}

/// Register `link` for `obj` (short or long); see the exported functions.
///
/// # Safety
/// As `GC_general_register_disappearing_link`.
unsafe fn register(link: *mut *mut c_void, obj: *const c_void, long: bool, name: &str) -> c_int {
    let heap = heap();
    if !aligned(link) || heap.base_of(obj as usize) != Some(obj as usize) {
        bad_arg(name);
    }
    // SAFETY: `link` is aligned and writable while registered (the caller's duty);
    // `obj` is the start of an object (checked).
    match unsafe { heap.register_disappearing_link(link as usize, obj as usize, long) } {
        Ok(LinkRegistration::New) => GC_SUCCESS,
        Ok(LinkRegistration::Duplicate) => GC_DUPLICATE,
        Err(e) => {
            crate::warn::warn_text(&format!("{name}: {e}"));
            GC_NO_MEMORY
        }
    }
}

/// Move a short or long registration; see the exported functions.
///
/// # Safety
/// As `GC_move_disappearing_link`.
unsafe fn move_link(
    link: *mut *mut c_void,
    new_link: *mut *mut c_void,
    long: bool,
    name: &str,
) -> c_int {
    let heap = heap();
    if !aligned(new_link) {
        bad_arg(name);
    }
    if !aligned(link) {
        return GC_NOT_FOUND;
    }
    // SAFETY: the caller's guarantee on `new_link` (aligned: checked).
    match unsafe { heap.move_disappearing_link(link as usize, new_link as usize, long) } {
        LinkMove::Moved => GC_SUCCESS,
        LinkMove::Duplicate => GC_DUPLICATE,
        LinkMove::NotFound => GC_NOT_FOUND,
    }
}

/// Set `*link` to NULL when `obj` becomes unreachable (bdwgc's
/// `GC_general_register_disappearing_link`). Returns `GC_SUCCESS` for a new link,
/// `GC_DUPLICATE` if `link` was registered already (it now refers to `obj`; bdwgc does
/// the same), `GC_NO_MEMORY` if the table cannot grow. A NULL or misaligned `link`, or
/// an `obj` that is not the start of a heap object, aborts, as in bdwgc.
///
/// # Safety
/// `link` stays writable while registered (until cleared, unregistered, or its
/// containing heap object is collected).
#[no_mangle]
pub unsafe extern "C" fn GC_general_register_disappearing_link(
    link: *mut *mut c_void,
    obj: *const c_void,
) -> c_int {
    // SAFETY: the caller's guarantees are `register`'s.
    unsafe { register(link, obj, false, "GC_general_register_disappearing_link") }
}

/// Like `GC_general_register_disappearing_link`, but a long link: `*link` is cleared
/// only when `obj` is truly inaccessible, i.e. can no longer be resurrected by a
/// finalizer (it is kept through the collection that queues `obj`'s finalizer, or a
/// finalizer of an object that reaches it). Long and short links are separate
/// registrations (bdwgc's `GC_register_long_link`).
///
/// # Safety
/// As `GC_general_register_disappearing_link`.
#[no_mangle]
pub unsafe extern "C" fn GC_register_long_link(
    link: *mut *mut c_void,
    obj: *const c_void,
) -> c_int {
    // SAFETY: the caller's guarantees are `register`'s.
    unsafe { register(link, obj, true, "GC_register_long_link") }
}

/// Undo a `GC_register_long_link` (bdwgc's `GC_unregister_long_link`): 1 if `link` was
/// registered as a long link, 0 if not.
#[no_mangle]
pub extern "C" fn GC_unregister_long_link(link: *mut *mut c_void) -> c_int {
    if !aligned(link) {
        return 0;
    }
    heap().unregister_disappearing_link(link as usize, true) as c_int
}

/// `GC_move_disappearing_link` for long links (bdwgc's `GC_move_long_link`).
///
/// # Safety
/// As `GC_move_disappearing_link`.
#[no_mangle]
pub unsafe extern "C" fn GC_move_long_link(
    link: *mut *mut c_void,
    new_link: *mut *mut c_void,
) -> c_int {
    // SAFETY: the caller's guarantees are `move_link`'s.
    unsafe { move_link(link, new_link, true, "GC_move_long_link") }
}

/// `GC_general_register_disappearing_link(link, GC_base(link))`: `link` is a field of a
/// heap object, cleared when that object becomes unreachable (bdwgc's
/// `GC_register_disappearing_link`). A `link` outside any object aborts, as in bdwgc.
///
/// # Safety
/// As `GC_general_register_disappearing_link`.
#[no_mangle]
pub unsafe extern "C" fn GC_register_disappearing_link(link: *mut *mut c_void) -> c_int {
    let Some(base) = heap().base_of(link as usize) else {
        bad_arg("GC_register_disappearing_link");
    };
    // SAFETY: the caller's guarantee on `link`; `base` is an object start.
    unsafe { GC_general_register_disappearing_link(link, base as *const c_void) }
}

/// Undo a registration (bdwgc's `GC_unregister_disappearing_link`): 1 if `link` was
/// registered, 0 if not.
#[no_mangle]
pub extern "C" fn GC_unregister_disappearing_link(link: *mut *mut c_void) -> c_int {
    if !aligned(link) {
        return 0;
    }
    heap().unregister_disappearing_link(link as usize, false) as c_int
}

/// Move the registration of `link` to `new_link`, keeping its object and leaving
/// `*new_link` unchanged (bdwgc's `GC_move_disappearing_link`). Returns `GC_SUCCESS`,
/// `GC_DUPLICATE` if another link is registered at `new_link` (never when they are
/// equal), or `GC_NOT_FOUND` if `link` is not registered. A NULL or misaligned
/// `new_link` aborts, as in bdwgc.
///
/// # Safety
/// `new_link` meets `GC_general_register_disappearing_link`'s requirement on `link`.
#[no_mangle]
pub unsafe extern "C" fn GC_move_disappearing_link(
    link: *mut *mut c_void,
    new_link: *mut *mut c_void,
) -> c_int {
    // SAFETY: the caller's guarantees are `move_link`'s.
    unsafe { move_link(link, new_link, false, "GC_move_disappearing_link") }
}
