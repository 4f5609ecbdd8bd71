//! Allocation and explicit deallocation: `GC_malloc` and friends, `GC_realloc`,
//! `GC_free`, `GC_base`, `GC_size`, the out-of-memory function.
//!
//! Every object is aligned to 16 bytes (bdwgc's granule on x86_64) and zeroed, atomic
//! ones included (bdwgc leaves those uninitialised). A request that cannot be met calls
//! the out-of-memory function (`GC_set_oom_fn`; the default returns NULL) and returns
//! its result, after a warning unless the size is so large that it can only be an
//! overflow (bdwgc is silent for those too).

use crate::finalize;
use crate::init::heap;
use crate::types::{GcOomFunc, GcWord};
use crate::warn::{warn, warn_text};
use gc_core::{GcError, ObjectKind};
use std::ffi::{c_char, c_void};
use std::sync::atomic::{AtomicPtr, Ordering};

/// Alignment of every object (bdwgc's `GC_GRANULE_BYTES` on 64-bit targets).
pub(crate) const GRANULE_BYTES: usize = 16;

/// The default out-of-memory function: returns NULL (bdwgc's default).
unsafe extern "C" fn default_oom_fn(_bytes_requested: usize) -> *mut c_void {
    std::ptr::null_mut()
}

/// bdwgc's `GC_oom_fn`: the function whose result an allocation that fails returns
/// (default: one returning NULL). Programs may assign it; it must not be NULL (a NULL
/// value counts as the default).
#[no_mangle]
pub static GC_oom_fn: AtomicPtr<c_void> = AtomicPtr::new(default_oom_fn as *mut c_void);

fn oom_fn() -> unsafe extern "C" fn(usize) -> *mut c_void {
    let p = GC_oom_fn.load(Ordering::Acquire);
    if p.is_null() {
        return default_oom_fn;
    }
    // SAFETY: GC_oom_fn holds the address of a `void *(*)(size_t)`: the default, one
    // installed by GC_set_oom_fn, or one the program assigned (bdwgc's contract).
    unsafe { std::mem::transmute::<*mut c_void, unsafe extern "C" fn(usize) -> *mut c_void>(p) }
}

/// Allocation failed: warn (unless the size is an overflow) and return what the
/// out-of-memory function returns.
#[cold]
pub(crate) fn out_of_memory(what: &str, len_bytes: usize, err: &GcError) -> *mut c_void {
    match err {
        GcError::OutOfMemory { .. } | GcError::HeapLimit { .. } => warn(
            c"Out of Memory! Heap size: %lu MiB. Returning NULL!\n",
            heap().heap_size() >> 20,
        ),
        // Sizes near SIZE_MAX come from overflowed arithmetic; bdwgc calls the
        // out-of-memory function for them without a warning.
        GcError::TooLarge { .. } if len_bytes > usize::MAX / 2 => {}
        other => warn_text(&format!("{what}({len_bytes}): {other}")),
    }
    // SAFETY: the default function, or one the program installed with GC_set_oom_fn and
    // promised to keep valid; it receives the requested size as bdwgc's does.
    unsafe { oom_fn()(len_bytes) }
}

/// Add a new uncollectable object's size to `GC_non_gc_bytes`.
#[inline]
pub(crate) fn count_if_uncollectable(heap: &gc_core::Heap, kind: ObjectKind, addr: usize) {
    if kind == ObjectKind::Uncollectable {
        crate::control::count_non_gc_bytes(heap.size_of(addr).unwrap_or(0), true);
    }
}

/// Allocate a zeroed object of `kind`, running due finalizers afterwards.
#[inline]
pub(crate) fn alloc_kind(what: &str, kind: ObjectKind, len_bytes: usize) -> *mut c_void {
    let heap = heap();
    match heap.alloc(kind, len_bytes, GRANULE_BYTES) {
        Ok(addr) => {
            count_if_uncollectable(heap, kind, addr);
            finalize::invoke_if_due(heap);
            addr as *mut c_void
        }
        Err(e) => out_of_memory(what, len_bytes, &e),
    }
}

/// Allocate `lb` zeroed bytes that the collector traces and frees once unreachable
/// (bdwgc's `GC_malloc`; `GC_MALLOC` and `GC_NEW` expand to it).
#[no_mangle]
pub extern "C" fn GC_malloc(lb: usize) -> *mut c_void {
    alloc_kind("GC_malloc", ObjectKind::Normal, lb)
}

/// Allocate `lb` bytes that hold no pointers: never scanned, freed once unreachable
/// (bdwgc's `GC_malloc_atomic`). Zeroed, unlike bdwgc's.
#[no_mangle]
pub extern "C" fn GC_malloc_atomic(lb: usize) -> *mut c_void {
    alloc_kind("GC_malloc_atomic", ObjectKind::Atomic, lb)
}

/// Allocate `lb` zeroed bytes that are traced and never collected: a root until
/// `GC_free` (bdwgc's `GC_malloc_uncollectable`).
#[no_mangle]
pub extern "C" fn GC_malloc_uncollectable(lb: usize) -> *mut c_void {
    alloc_kind("GC_malloc_uncollectable", ObjectKind::Uncollectable, lb)
}

/// `GC_malloc` for large objects whose pointers all point near their start (bdwgc's
/// `GC_malloc_ignore_off_page`). dunegc recognises interior pointers everywhere, so this
/// is `GC_malloc`.
#[no_mangle]
pub extern "C" fn GC_malloc_ignore_off_page(lb: usize) -> *mut c_void {
    GC_malloc(lb)
}

/// `GC_malloc_atomic` counterpart of `GC_malloc_ignore_off_page`.
#[no_mangle]
pub extern "C" fn GC_malloc_atomic_ignore_off_page(lb: usize) -> *mut c_void {
    GC_malloc_atomic(lb)
}

/// Free the object starting at `p` now (bdwgc's `GC_free`). NULL is ignored. A pointer
/// that is not the start of a live object of the collector (a foreign pointer, an
/// interior pointer, a double free) is reported through the warning procedure and
/// ignored: bdwgc's `GC_free` has undefined behaviour there (its `GC_debug_free` warns),
/// dunegc always detects it. A finalizer registered for `p` is dropped.
#[no_mangle]
pub extern "C" fn GC_free(p: *mut c_void) {
    if p.is_null() {
        return;
    }
    let heap = heap();
    let addr = p as usize;
    finalize::forget_finalizer(heap, addr);
    let uncollectable = heap
        .find_object(addr)
        .filter(|i| i.base == addr && i.kind == ObjectKind::Uncollectable)
        .map(|i| i.len_bytes);
    match heap.free(addr) {
        Ok(()) => {
            if let Some(n) = uncollectable {
                crate::control::count_non_gc_bytes(n, false);
            }
        }
        Err(e) => free_failed(addr, e),
    }
}

/// Report a `GC_free` of something that is not a live object's start.
#[cold]
fn free_failed(addr: usize, e: GcError) {
    let reason = match e {
        GcError::InvalidFree { reason, .. } => reason,
        _ => "not freed",
    };
    let text = format!("GC_free(%p): {}; ignored\n", reason.replace('%', "%%"));
    let msg = std::ffi::CString::new(text).expect("no NUL in the message");
    warn(&msg, addr as GcWord);
}

/// Resize the object at `p` to `lb` bytes, keeping its kind and contents (bdwgc's
/// `GC_realloc`): `GC_realloc(NULL, lb)` is `GC_malloc(lb)`; `GC_realloc(p, 0)` frees
/// `p` and returns NULL. The object stays in place if `lb` is between half its usable
/// size and its usable size (the bytes past `lb` are cleared); otherwise a new object is
/// allocated, the contents copied and `p` freed. If `p` is not the start of a live
/// object, a warning is reported and NULL returned (nothing is freed). On failure `p` is
/// left as it was and the out-of-memory function's result is returned.
///
/// # Safety
/// `p` is NULL or an object of this collector that no other thread frees or resizes
/// concurrently.
#[no_mangle]
pub unsafe extern "C" fn GC_realloc(p: *mut c_void, lb: usize) -> *mut c_void {
    if p.is_null() {
        return GC_malloc(lb);
    }
    if lb == 0 {
        GC_free(p);
        return std::ptr::null_mut();
    }
    let heap = heap();
    let addr = p as usize;
    let info = match heap.find_object(addr) {
        Some(info) if info.base == addr => info,
        _ => {
            warn(
                c"GC_realloc(%p): not the start of an object allocated by the collector; returning NULL\n",
                addr,
            );
            return std::ptr::null_mut();
        }
    };
    let usable = info.len_bytes;
    if lb <= usable && lb >= usable / 2 {
        // SAFETY: [addr + lb, addr + usable) lies inside the live object `info`, which
        // the caller owns; clearing it stops stale words from being traced.
        unsafe { std::ptr::write_bytes((addr + lb) as *mut u8, 0, usable - lb) };
        return p;
    }
    let new = alloc_kind("GC_realloc", info.kind, lb);
    if new.is_null() {
        return new;
    }
    // SAFETY: both objects are live and distinct; `usable.min(lb)` bytes fit in each.
    unsafe { std::ptr::copy_nonoverlapping(p as *const u8, new as *mut u8, usable.min(lb)) };
    GC_free(p);
    new
}

/// The start of the object containing `p` (interior pointers included), or NULL if `p`
/// does not point into a live object of the collector (bdwgc's `GC_base`).
#[no_mangle]
pub extern "C" fn GC_base(p: *mut c_void) -> *mut c_void {
    heap()
        .base_of(p as usize)
        .map_or(std::ptr::null_mut(), |b| b as *mut c_void)
}

/// The usable size in bytes of the object containing `p` (at least what was requested;
/// bdwgc's `GC_size`), or 0 if `p` is not in a live object of the collector.
#[no_mangle]
pub extern "C" fn GC_size(p: *const c_void) -> usize {
    heap().size_of(p as usize).unwrap_or(0)
}

/// Copy a NUL-terminated string into a new atomic object (bdwgc's `GC_strdup`). NULL
/// for NULL.
///
/// # Safety
/// `s` is NULL or a readable NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn GC_strdup(s: *const c_char) -> *mut c_char {
    if s.is_null() {
        return std::ptr::null_mut();
    }
    // SAFETY: the caller passes a NUL-terminated string.
    let len = unsafe { libc::strlen(s) };
    // SAFETY: `s` has at least `len` readable bytes.
    unsafe { strndup_len(s, len) }
}

/// Copy at most `n` bytes of a string into a new NUL-terminated atomic object (bdwgc's
/// `GC_strndup`).
///
/// # Safety
/// `s` is readable up to its NUL or `n` bytes, whichever comes first.
#[no_mangle]
pub unsafe extern "C" fn GC_strndup(s: *const c_char, n: usize) -> *mut c_char {
    // SAFETY: the caller guarantees `s` is readable up to its NUL or `n` bytes.
    let len = unsafe { libc::strnlen(s, n) };
    // SAFETY: `s` has at least `len` readable bytes.
    unsafe { strndup_len(s, len) }
}

/// # Safety
/// `s` has `len` readable bytes.
unsafe fn strndup_len(s: *const c_char, len: usize) -> *mut c_char {
    let Some(total) = len.checked_add(1) else {
        return std::ptr::null_mut();
    };
    let new = alloc_kind("GC_strdup", ObjectKind::Atomic, total) as *mut c_char;
    if !new.is_null() {
        // SAFETY: `new` has `len + 1` zeroed bytes; `s` has `len` readable ones; they are
        // distinct objects. The terminating NUL is already there.
        unsafe { std::ptr::copy_nonoverlapping(s, new, len) };
    }
    new
}

/// Install the function called when an allocation fails; its result is returned to the
/// allocating caller (bdwgc's `GC_set_oom_fn`). NULL restores the default, which returns
/// NULL.
///
/// # Safety
/// `f`, if not NULL, must stay callable for the rest of the process, from any thread.
#[no_mangle]
pub unsafe extern "C" fn GC_set_oom_fn(f: GcOomFunc) {
    let f = f.map_or(default_oom_fn as *mut c_void, |f| f as *mut c_void);
    GC_oom_fn.store(f, Ordering::Release);
}

/// The current out-of-memory function (bdwgc's `GC_get_oom_fn`).
#[no_mangle]
pub extern "C" fn GC_get_oom_fn() -> GcOomFunc {
    Some(oom_fn())
}
