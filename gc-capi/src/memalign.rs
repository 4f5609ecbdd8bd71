//! Aligned allocation: `GC_memalign` and `GC_posix_memalign` (bdwgc's, used by
//! `leak_detector.h`'s `memalign`/`posix_memalign` redirects).
//!
//! A power-of-two alignment is passed to gc-core, so the object itself starts aligned
//! (`GC_base(p) == p`), up to gc-core's largest alignment; bdwgc gives up above its
//! block size (4 KiB) and calls the out-of-memory function, as dunegc does above its
//! limit. Any other alignment is met as bdwgc meets it: a larger object and a pointer
//! into it at the first aligned address (interior pointers keep it alive).

use crate::init::heap;
use gc_core::ObjectKind;
use std::ffi::{c_int, c_void};

/// Call the out-of-memory function for `lb` bytes and return its result.
fn oom(lb: usize) -> *mut c_void {
    let f = crate::alloc::GC_get_oom_fn().expect("GC_get_oom_fn never returns NULL");
    // SAFETY: the default out-of-memory function or one the program installed and
    // promised to keep valid.
    unsafe { f(lb) }
}

/// Allocate `lb` zeroed, traced, collectable bytes at an address that is a multiple of
/// `align` (bdwgc's `GC_memalign`).
#[no_mangle]
pub extern "C" fn GC_memalign(align: usize, lb: usize) -> *mut c_void {
    if align <= crate::alloc::GRANULE_BYTES {
        return crate::alloc::GC_malloc(lb);
    }
    if align.is_power_of_two() {
        return match heap().alloc(ObjectKind::Normal, lb, align) {
            Ok(a) => a as *mut c_void,
            Err(_) => oom(lb),
        };
    }
    let p = crate::alloc::GC_malloc(lb.saturating_add(align - 1));
    if p.is_null() {
        return p;
    }
    let offset = (p as usize) % align;
    if offset == 0 {
        p
    } else {
        p.wrapping_byte_add(align - offset)
    }
}

/// `posix_memalign` over [`GC_memalign`] (bdwgc's `GC_posix_memalign`): `EINVAL` if
/// `align` is not a power of two multiple of `sizeof(void *)`, `ENOMEM` if no memory.
///
/// # Safety
/// `memptr` is writable.
#[no_mangle]
pub unsafe extern "C" fn GC_posix_memalign(
    memptr: *mut *mut c_void,
    align: usize,
    lb: usize,
) -> c_int {
    if align < std::mem::size_of::<*mut c_void>() || !align.is_power_of_two() {
        return libc::EINVAL;
    }
    let p = GC_memalign(align, lb);
    if p.is_null() {
        return libc::ENOMEM;
    }
    // SAFETY: the caller passes a writable pointer slot.
    unsafe { memptr.write(p) };
    0
}
