//! bdwgc's debug allocator (`GC_DEBUG`, `GC_debug_*`): objects with a header naming the
//! allocating file and line and start/end flags, checked when freed or resized and, at
//! every collection, for every live debug object (see [`crate::errors`]).
//!
//! The layout is bdwgc 8.2's on x86_64 without `KEEP_BACK_PTRS` (Debian's build):
//! a 32-byte header `{ const char *file; long line; size_t size; GC_word start_flag }`
//! before the body, the end flag in the word after the body rounded up to words and in
//! the last word of the object. Flags are xor-ed with the body address, as in bdwgc.
//! The client sees the body; `GC_base` of it gives the header.
//!
//! As in bdwgc, `GC_debug_free` of a collectable object does not free it: it fills the
//! body with `0xEFBEADDEDEADBEEF` and marks the header as freed (so a second free is
//! reported), and the collector frees it once unreachable. In leak-detection mode and
//! for uncollectable objects it frees at once.

use crate::alloc::alloc_kind;
use crate::errors;
use crate::init::heap;
use crate::types::GcFinalizationProc;
use gc_core::ObjectKind;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::atomic::{AtomicBool, Ordering};

/// bdwgc's `sizeof(oh)`: the debug header.
pub(crate) const HEADER_BYTES: usize = 32;
/// bdwgc's `DEBUG_BYTES` with all interior pointers: header plus trailer word, minus
/// the extra byte every object gets anyway.
pub(crate) const DEBUG_BYTES: usize = HEADER_BYTES + 8 - 1;
const START_FLAG: usize = 0xfedc_edcb_fedc_edcb;
const END_FLAG: usize = 0xbcde_cdef_bcde_cdef;
/// What `GC_debug_free` writes over a freed body (bdwgc's `GC_FREED_MEM_MARKER`).
pub(crate) const FREED_MEM_MARKER: usize = 0xefbe_adde_dead_beef;
/// The file name bdwgc gives objects from the replacement functions.
const UNKNOWN: &CStr = c"unknown";

/// Set by the first debug allocation (bdwgc's `GC_debugging_started`).
static DEBUGGING_STARTED: AtomicBool = AtomicBool::new(false);

/// True once a debug object has been allocated.
pub(crate) fn debugging_started() -> bool {
    DEBUGGING_STARTED.load(Ordering::Acquire)
}

fn start_debugging() {
    if !DEBUGGING_STARTED.swap(true, Ordering::AcqRel) {
        errors::install_hook();
    }
}

/// `SIMPLE_ROUNDED_UP_WORDS(n)` in bytes.
fn round_up_word(n: usize) -> usize {
    n.saturating_add(7) & !7
}

/// The words of a debug header.
#[derive(Clone, Copy)]
pub(crate) struct Header {
    pub file: *const c_char,
    pub line: isize,
    pub size: usize,
    pub start_flag: usize,
}

/// Read the header at `base`.
///
/// # Safety
/// `base` is the start of a live heap object of at least `HEADER_BYTES` bytes.
pub(crate) unsafe fn read_header(base: usize) -> Header {
    let w = base as *const usize;
    // SAFETY: the caller guarantees four readable words at `base`.
    unsafe {
        Header {
            file: w.read() as *const c_char,
            line: w.add(1).read() as isize,
            size: w.add(2).read(),
            start_flag: w.add(3).read(),
        }
    }
}

/// Read the word at `addr`.
///
/// # Safety
/// `addr` is an aligned readable word.
unsafe fn word(addr: usize) -> usize {
    // SAFETY: the caller's promise.
    unsafe { std::ptr::read_volatile(addr as *const usize) }
}

/// True if the object `[base, base + len)` carries live debug information
/// (bdwgc's `GC_HAS_DEBUG_INFO`: a start or final end flag matches, and the header is
/// not marked as freed).
///
/// # Safety
/// `[base, base + len)` is a live heap object.
pub(crate) unsafe fn has_debug_info(base: usize, len: usize) -> bool {
    if len < DEBUG_BYTES + 1 {
        return false;
    }
    let body = base + HEADER_BYTES;
    // SAFETY: the object is at least DEBUG_BYTES + 1 >= 40 bytes long.
    let h = unsafe { read_header(base) };
    // SAFETY: the last word lies inside the object.
    let last = unsafe { word(base + (len & !7) - 8) };
    (h.start_flag == START_FLAG ^ body || last == END_FLAG ^ body) && h.size != len
}

/// The first clobbered word of the debug object `[base, base + len)`, if any
/// (bdwgc's `GC_check_annotated_obj`).
///
/// # Safety
/// `[base, base + len)` is a live heap object of at least `DEBUG_BYTES + 1` bytes.
pub(crate) unsafe fn check_annotated(base: usize, len: usize) -> Option<usize> {
    let body = base + HEADER_BYTES;
    // SAFETY: the caller guarantees the header is readable.
    let h = unsafe { read_header(base) };
    if h.size.saturating_add(DEBUG_BYTES) > len {
        return Some(base + 16);
    }
    if h.start_flag != START_FLAG ^ body {
        return Some(base + 24);
    }
    let last = base + (len & !7) - 8;
    // SAFETY: inside the object.
    if unsafe { word(last) } != END_FLAG ^ body {
        return Some(last);
    }
    let trailer = body + round_up_word(h.size);
    // SAFETY: size + DEBUG_BYTES <= len, so the trailer word lies inside the object.
    if unsafe { word(trailer) } != END_FLAG ^ body {
        return Some(trailer);
    }
    None
}

/// Write the header and both end flags of a fresh debug object; returns the body.
///
/// # Safety
/// `[base, base + len)` is a fresh heap object with `len >= size + DEBUG_BYTES + 1`.
unsafe fn store_debug_info(
    base: usize,
    len: usize,
    size: usize,
    file: *const c_char,
    line: c_int,
) -> *mut c_void {
    let body = base + HEADER_BYTES;
    let w = base as *mut usize;
    // SAFETY: the caller guarantees the object is large enough for the header, the body
    // rounded up to words, and the trailer; the last word is inside it.
    unsafe {
        w.write(file as usize);
        w.add(1).write(line as isize as usize);
        w.add(2).write(size);
        w.add(3).write(START_FLAG ^ body);
        ((body + round_up_word(size)) as *mut usize).write(END_FLAG ^ body);
        ((base + (len & !7) - 8) as *mut usize).write(END_FLAG ^ body);
    }
    body as *mut c_void
}

/// Print bdwgc's report of a smashed object: `msg`, the clobbered address, the body and
/// what the header says (bdwgc's `GC_print_smashed_obj`).
pub(crate) fn print_smashed(msg: &str, body: usize, clobbered: usize) {
    let base = body - HEADER_BYTES;
    let len = crate::alloc::GC_size(base as *const c_void);
    // SAFETY: `body` is the body of a live heap object of at least the header's size.
    let h = unsafe { read_header(base) };
    if clobbered <= base + 16 || h.file.is_null() {
        eprintln!(
            "{msg} {clobbered:#x} in or near object at {body:#x}(<smashed>, appr. sz= {})",
            len.saturating_sub(DEBUG_BYTES)
        );
    } else {
        eprintln!(
            "{msg} {clobbered:#x} in or near object at {body:#x} ({}:{}, sz= {})",
            file_name(h.file),
            h.line as i32,
            h.size
        );
    }
}

/// The file name a header names, with bdwgc's stand-ins for implausible ones.
pub(crate) fn file_name(file: *const c_char) -> String {
    if (file as usize) < 4096 {
        return "(smashed string)".to_owned();
    }
    // SAFETY: the header's file pointer came from `__FILE__` (a static string) unless
    // smashed; bdwgc reads it the same way.
    let s = unsafe { CStr::from_ptr(file) };
    if s.is_empty() {
        "EMPTY(smashed?)".to_owned()
    } else {
        s.to_string_lossy().into_owned()
    }
}

/// Allocate a debug object of `kind` for `lb` client bytes.
fn debug_alloc(
    what: &str,
    kind: ObjectKind,
    lb: usize,
    file: *const c_char,
    line: c_int,
) -> *mut c_void {
    debug_alloc_with(what, lb, file, line, |n| alloc_kind(what, kind, n))
}

/// Allocate a debug object for `lb` client bytes with `alloc` (given the whole size).
pub(crate) fn debug_alloc_with(
    what: &str,
    lb: usize,
    file: *const c_char,
    line: c_int,
    alloc: impl FnOnce(usize) -> *mut c_void,
) -> *mut c_void {
    start_debugging();
    let base = alloc(lb.saturating_add(DEBUG_BYTES + 1));
    if base.is_null() {
        eprintln!(
            "{what}({lb}) returning NULL ({}:{line})",
            if file.is_null() {
                "?".into()
            } else {
                file_name(file)
            }
        );
        return base;
    }
    let len = crate::alloc::GC_size(base);
    // SAFETY: `base` is a fresh object of `len >= lb + DEBUG_BYTES + 1` bytes.
    unsafe { store_debug_info(base as usize, len, lb, file, line) }
}

/// `GC_malloc` with a debug header naming `file:line` (bdwgc's `GC_debug_malloc`;
/// `GC_MALLOC` under `GC_DEBUG`).
#[no_mangle]
pub extern "C" fn GC_debug_malloc(lb: usize, s: *const c_char, i: c_int) -> *mut c_void {
    debug_alloc("GC_debug_malloc", ObjectKind::Normal, lb, s, i)
}

/// `GC_malloc_atomic` with a debug header (bdwgc's `GC_debug_malloc_atomic`).
#[no_mangle]
pub extern "C" fn GC_debug_malloc_atomic(lb: usize, s: *const c_char, i: c_int) -> *mut c_void {
    debug_alloc("GC_debug_malloc_atomic", ObjectKind::Atomic, lb, s, i)
}

/// `GC_malloc_uncollectable` with a debug header (bdwgc's
/// `GC_debug_malloc_uncollectable`).
#[no_mangle]
pub extern "C" fn GC_debug_malloc_uncollectable(
    lb: usize,
    s: *const c_char,
    i: c_int,
) -> *mut c_void {
    debug_alloc(
        "GC_debug_malloc_uncollectable",
        ObjectKind::Uncollectable,
        lb,
        s,
        i,
    )
}

/// `GC_malloc_atomic_uncollectable` with a debug header (bdwgc's
/// `GC_debug_malloc_atomic_uncollectable`).
#[no_mangle]
pub extern "C" fn GC_debug_malloc_atomic_uncollectable(
    lb: usize,
    s: *const c_char,
    i: c_int,
) -> *mut c_void {
    debug_alloc_with("GC_debug_malloc_atomic_uncollectable", lb, s, i, |n| {
        crate::kinds::GC_generic_malloc(n, crate::kinds::AUNCOLLECTABLE as c_int)
    })
}

/// `GC_generic_or_special_malloc` with a debug header (bdwgc's
/// `GC_debug_generic_or_special_malloc`): the predefined kinds as their debug
/// allocators, other kinds as `GC_generic_malloc` plus the header. A kind that was never
/// made warns and returns NULL.
#[no_mangle]
pub extern "C" fn GC_debug_generic_or_special_malloc(
    lb: usize,
    knd: c_int,
    s: *const c_char,
    i: c_int,
) -> *mut c_void {
    match usize::try_from(knd) {
        Ok(crate::kinds::PTRFREE) => GC_debug_malloc_atomic(lb, s, i),
        Ok(crate::kinds::NORMAL) => GC_debug_malloc(lb, s, i),
        Ok(crate::kinds::UNCOLLECTABLE) => GC_debug_malloc_uncollectable(lb, s, i),
        Ok(crate::kinds::AUNCOLLECTABLE) => GC_debug_malloc_atomic_uncollectable(lb, s, i),
        _ => debug_alloc_with("GC_debug_generic_or_special_malloc", lb, s, i, |n| {
            crate::kinds::GC_generic_malloc(n, knd)
        }),
    }
}

/// `GC_debug_malloc` (bdwgc's `GC_debug_malloc_ignore_off_page`; dunegc recognises
/// interior pointers everywhere).
#[no_mangle]
pub extern "C" fn GC_debug_malloc_ignore_off_page(
    lb: usize,
    s: *const c_char,
    i: c_int,
) -> *mut c_void {
    GC_debug_malloc(lb, s, i)
}

/// `GC_debug_malloc_atomic` (bdwgc's `GC_debug_malloc_atomic_ignore_off_page`).
#[no_mangle]
pub extern "C" fn GC_debug_malloc_atomic_ignore_off_page(
    lb: usize,
    s: *const c_char,
    i: c_int,
) -> *mut c_void {
    GC_debug_malloc_atomic(lb, s, i)
}

/// `GC_debug_malloc` (stubborn objects are ordinary ones since bdwgc 7.x; bdwgc's
/// `GC_debug_malloc_stubborn`).
#[no_mangle]
pub extern "C" fn GC_debug_malloc_stubborn(lb: usize, s: *const c_char, i: c_int) -> *mut c_void {
    GC_debug_malloc(lb, s, i)
}

/// `GC_debug_malloc` with file `"unknown"`, line 0: a drop-in `malloc` replacement
/// (bdwgc's `GC_debug_malloc_replacement`).
#[no_mangle]
pub extern "C" fn GC_debug_malloc_replacement(lb: usize) -> *mut c_void {
    GC_debug_malloc(lb, UNKNOWN.as_ptr(), 0)
}

/// `GC_debug_realloc` with file `"unknown"`, line 0 (bdwgc's
/// `GC_debug_realloc_replacement`).
///
/// # Safety
/// As for [`GC_debug_realloc`].
#[no_mangle]
pub unsafe extern "C" fn GC_debug_realloc_replacement(p: *mut c_void, lb: usize) -> *mut c_void {
    // SAFETY: the caller's promise is GC_debug_realloc's.
    unsafe { GC_debug_realloc(p, lb, UNKNOWN.as_ptr(), 0) }
}

/// Copy a string into a new atomic debug object (bdwgc's `GC_debug_strdup`); NULL for
/// NULL.
///
/// # Safety
/// `str` is NULL or a readable NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn GC_debug_strdup(
    str: *const c_char,
    s: *const c_char,
    i: c_int,
) -> *mut c_char {
    if str.is_null() {
        return std::ptr::null_mut();
    }
    // SAFETY: the caller passes a NUL-terminated string.
    let len = unsafe { libc::strlen(str) };
    // SAFETY: `str` has `len` readable bytes.
    unsafe { dup(str, len, s, i) }
}

/// Copy at most `n` bytes of a string into a new NUL-terminated atomic debug object
/// (bdwgc's `GC_debug_strndup`).
///
/// # Safety
/// `str` is readable up to its NUL or `n` bytes, whichever comes first.
#[no_mangle]
pub unsafe extern "C" fn GC_debug_strndup(
    str: *const c_char,
    n: usize,
    s: *const c_char,
    i: c_int,
) -> *mut c_char {
    // SAFETY: the caller's promise.
    let len = unsafe { libc::strnlen(str, n) };
    // SAFETY: `str` has `len` readable bytes.
    unsafe { dup(str, len, s, i) }
}

/// # Safety
/// `str` has `len` readable bytes.
unsafe fn dup(str: *const c_char, len: usize, s: *const c_char, i: c_int) -> *mut c_char {
    let copy = GC_debug_malloc_atomic(len.saturating_add(1), s, i) as *mut c_char;
    if !copy.is_null() {
        // SAFETY: `copy` has `len + 1` zeroed bytes, distinct from `str`'s `len`.
        unsafe { std::ptr::copy_nonoverlapping(str, copy, len) };
    }
    copy
}

/// Abort with bdwgc's message for a pointer that is not in the heap at all.
fn abort_invalid(what: &str, p: *mut c_void) -> ! {
    crate::env::abort_with(&format!("Invalid pointer passed to {what}(): {p:p}"))
}

/// Free a debug object (bdwgc's `GC_debug_free`; `GC_FREE` under `GC_DEBUG`). A smashed
/// object is reported ("GC_debug_free: found smashed location at ..."), a second free
/// too ("found previously deallocated (?) object") and then ignored. A pointer into an
/// object without debug information is reported ("called on pointer ... w/o debugging
/// info") and then treated as bdwgc does: freed in leak mode or if uncollectable,
/// otherwise overwritten from `p` and left to the collector. A pointer outside the heap
/// aborts with "Invalid pointer passed to free()", as in bdwgc.
///
/// # Safety
/// `p` is NULL or points into an object of this collector that no other thread frees
/// concurrently.
#[no_mangle]
pub unsafe extern "C" fn GC_debug_free(p: *mut c_void) {
    if p.is_null() {
        return;
    }
    let heap = heap();
    let Some(info) = heap.find_object(p as usize) else {
        abort_invalid("free", p);
    };
    let base = info.base;
    if p as usize - base != HEADER_BYTES {
        eprintln!("GC_debug_free called on pointer {p:p} w/o debugging info");
    } else {
        // SAFETY: `base` is a live object containing `p = base + HEADER_BYTES`; it has
        // at least a header's worth of bytes.
        if let Some(clobbered) = unsafe { check_annotated(base, info.len_bytes) } {
            errors::note_error();
            // SAFETY: as above.
            if unsafe { read_header(base) }.size == info.len_bytes {
                print_smashed(
                    "GC_debug_free: found previously deallocated (?) object at",
                    p as usize,
                    clobbered,
                );
                return;
            }
            print_smashed(
                "GC_debug_free: found smashed location at",
                p as usize,
                clobbered,
            );
        }
        // Mark the object as deallocated.
        // SAFETY: the size word of the header, inside the live object.
        unsafe { ((base + 16) as *mut usize).write(info.len_bytes) };
    }
    let uncollectable = info.kind == ObjectKind::Uncollectable;
    if errors::find_leak() || uncollectable {
        crate::alloc::GC_free(base as *mut c_void);
    } else {
        // Deferred: the collector frees it once unreachable. bdwgc fills as many words
        // from `p` as a debug body would have (even for an object without debug
        // information); the fill stops at the end of the object here.
        let mut a = p as usize;
        let end = (a + info.len_bytes - HEADER_BYTES).min(base + info.len_bytes);
        while a + 8 <= end {
            // SAFETY: every word of the body lies inside the live object.
            unsafe { (a as *mut usize).write(FREED_MEM_MARKER) };
            a += 8;
        }
    }
}

/// Resize a debug object (bdwgc's `GC_debug_realloc`): a new debug object of the same
/// kind receives the contents, and the old one is freed with `GC_debug_free`. NULL `p`
/// allocates; size 0 frees and returns NULL. A pointer without debug information is
/// reported and passed to `GC_realloc`; one outside the heap aborts as in bdwgc.
///
/// # Safety
/// `p` is NULL or points into an object of this collector that no other thread frees
/// or resizes concurrently.
#[no_mangle]
pub unsafe extern "C" fn GC_debug_realloc(
    p: *mut c_void,
    lb: usize,
    s: *const c_char,
    i: c_int,
) -> *mut c_void {
    if p.is_null() {
        return GC_debug_malloc(lb, s, i);
    }
    if lb == 0 {
        // SAFETY: the caller's promise.
        unsafe { GC_debug_free(p) };
        return std::ptr::null_mut();
    }
    let heap = heap();
    let Some(info) = heap.find_object(p as usize) else {
        abort_invalid("realloc", p);
    };
    if p as usize - info.base != HEADER_BYTES {
        eprintln!("GC_debug_realloc called on pointer {p:p} w/o debugging info");
        // SAFETY: the caller's promise is GC_realloc's.
        return unsafe { crate::alloc::GC_realloc(p, lb) };
    }
    let new = debug_alloc("GC_debug_realloc", info.kind, lb, s, i);
    if new.is_null() {
        return new;
    }
    // SAFETY: `info.base` is a live object of at least a header.
    if let Some(clobbered) = unsafe { check_annotated(info.base, info.len_bytes) } {
        errors::note_error();
        print_smashed(
            "GC_debug_realloc: found smashed location at",
            p as usize,
            clobbered,
        );
    }
    // SAFETY: as above.
    let old_size = unsafe { read_header(info.base) }
        .size
        .min(info.len_bytes - DEBUG_BYTES - 1);
    // SAFETY: both bodies hold at least `min(old_size, lb)` bytes and are distinct.
    unsafe { std::ptr::copy_nonoverlapping(p as *const u8, new as *mut u8, old_size.min(lb)) };
    // SAFETY: the caller's promise.
    unsafe { GC_debug_free(p) };
    new
}

/// No-op (stubborn objects need no calls since bdwgc 7.x; bdwgc's
/// `GC_debug_change_stubborn`).
#[no_mangle]
pub extern "C" fn GC_debug_change_stubborn(_p: *const c_void) {}

/// Check that `p` points into a heap object, else abort with bdwgc's message; writes
/// need no announcement here (bdwgc's `GC_debug_end_stubborn_change`).
#[no_mangle]
pub extern "C" fn GC_debug_end_stubborn_change(p: *const c_void) {
    if crate::alloc::GC_base(p.cast_mut()).is_null() {
        crate::env::abort_with(&format!("GC_debug_end_stubborn_change: bad arg: {p:p}"));
    }
}

/// Store `q` at `p` after checking, as bdwgc's `GC_debug_ptr_store_and_dirty` does,
/// that `p` is visible to the collector and `q` a valid displacement (see
/// [`crate::ptrcheck`]).
///
/// # Safety
/// `p` is a writable, aligned pointer slot.
#[no_mangle]
pub unsafe extern "C" fn GC_debug_ptr_store_and_dirty(p: *mut c_void, q: *const c_void) {
    let slot = crate::ptrcheck::GC_is_visible(p) as *mut *const c_void;
    let value = crate::ptrcheck::GC_is_valid_displacement(q.cast_mut());
    // SAFETY: the caller guarantees a writable pointer slot.
    unsafe { slot.write(value) };
}

/// Register displacement `n` for client pointers and `n` past the debug header (bdwgc's
/// `GC_debug_register_displacement`).
#[no_mangle]
pub extern "C" fn GC_debug_register_displacement(n: usize) {
    crate::kinds::GC_register_displacement(n);
    crate::kinds::GC_register_displacement(n + HEADER_BYTES);
}

/// The size of the debug header (bdwgc's `GC_get_debug_header_size`).
#[no_mangle]
pub extern "C" fn GC_get_debug_header_size() -> usize {
    HEADER_BYTES
}

/// The size of the debug header, as a variable (bdwgc's `GC_debug_header_size`).
#[no_mangle]
pub static GC_debug_header_size: usize = HEADER_BYTES;

/// The finalizer registered on a debug object's base: calls the client's finalizer on
/// the body. `data` is a two-word collected object `{ fn, client_data }`.
unsafe extern "C" fn debug_invoke_finalizer(obj: *mut c_void, data: *mut c_void) {
    let w = data as *const usize;
    // SAFETY: `data` is the closure `register_debug` made: two words, a non-null
    // finalizer address and the client data; it is kept reachable with the finalizer.
    let (f, cd) = unsafe { (w.read(), w.add(1).read() as *mut c_void) };
    // SAFETY: the word holds an `unsafe extern "C" fn(void *, void *)`.
    let f =
        unsafe { std::mem::transmute::<usize, unsafe extern "C" fn(*mut c_void, *mut c_void)>(f) };
    // SAFETY: the client registered `f` for the body of `obj`.
    unsafe { f(obj.byte_add(HEADER_BYTES), cd) };
}

/// Which non-debug registration function a debug one wraps.
type RegisterFn = unsafe extern "C" fn(
    *mut c_void,
    GcFinalizationProc,
    *mut c_void,
    *mut GcFinalizationProc,
    *mut *mut c_void,
);

/// The body of the `GC_debug_register_finalizer*` functions (bdwgc's): register on the
/// object's base a finalizer that calls `f` on the body; report an argument that is
/// not a body; unwrap the old registration for `ofn`/`ocd`.
///
/// # Safety
/// `ofn` and `ocd` are NULL or writable; `f` is NULL or callable as a finalizer.
unsafe fn register_debug(
    what: &str,
    register: RegisterFn,
    obj: *mut c_void,
    f: GcFinalizationProc,
    cd: *mut c_void,
    ofn: *mut GcFinalizationProc,
    ocd: *mut *mut c_void,
) {
    let base = crate::alloc::GC_base(obj);
    let write_old = |old_f: GcFinalizationProc, old_cd: *mut c_void| {
        if !ofn.is_null() {
            // SAFETY: the caller passes NULL or a writable GC_finalization_proc.
            unsafe { ofn.write(old_f) };
        }
        if !ocd.is_null() {
            // SAFETY: the caller passes NULL or a writable void *.
            unsafe { ocd.write(old_cd) };
        }
    };
    if base.is_null() {
        write_old(None, std::ptr::null_mut());
        return;
    }
    if obj as usize - base as usize != HEADER_BYTES {
        eprintln!("{what} called with non-base-pointer {obj:p}");
    }
    let (wrapped, data) = match f {
        None => (None, std::ptr::null_mut()),
        Some(f) => {
            let c = crate::alloc::GC_malloc(16) as *mut usize;
            if c.is_null() {
                return;
            }
            // SAFETY: a fresh two-word object.
            unsafe {
                c.write(f as usize);
                c.add(1).write(cd as usize);
            }
            (
                Some(debug_invoke_finalizer as unsafe extern "C" fn(*mut c_void, *mut c_void)),
                c as *mut c_void,
            )
        }
    };
    let mut old_f: GcFinalizationProc = None;
    let mut old_cd: *mut c_void = std::ptr::null_mut();
    // SAFETY: `base` is the start of a heap object; the out-pointers are locals.
    unsafe { register(base, wrapped, data, &mut old_f, &mut old_cd) };
    match old_f {
        Some(g)
            if std::ptr::fn_addr_eq(g, debug_invoke_finalizer as unsafe extern "C" fn(_, _)) =>
        {
            let w = old_cd as *const usize;
            // SAFETY: the old registration was ours, so its data is a closure.
            let (g, d) = unsafe { (w.read(), w.add(1).read() as *mut c_void) };
            // SAFETY: the word holds the client's finalizer.
            let g = unsafe {
                std::mem::transmute::<usize, unsafe extern "C" fn(*mut c_void, *mut c_void)>(g)
            };
            write_old(Some(g), d);
        }
        other => write_old(other, old_cd),
    }
}

/// Exports `GC_debug_<name>` as the debug-object variant of `GC_<name>`: the client's
/// finalizer receives the object's body, not its debug header.
macro_rules! debug_finalizer_registration {
    ($(#[$doc:meta])* $export:ident => $plain:path) => {
        $(#[$doc])*
        ///
        /// # Safety
        /// As for `GC_register_finalizer`.
        #[no_mangle]
        pub unsafe extern "C" fn $export(
            obj: *mut c_void,
            f: GcFinalizationProc,
            cd: *mut c_void,
            ofn: *mut GcFinalizationProc,
            ocd: *mut *mut c_void,
        ) {
            // SAFETY: the caller's promise, which is `GC_register_finalizer`'s.
            unsafe { register_debug(stringify!($export), $plain, obj, f, cd, ofn, ocd) }
        }
    };
}

debug_finalizer_registration!(
    /// `GC_register_finalizer` for a debug object: `f` receives the body (bdwgc's
    /// `GC_debug_register_finalizer`; `GC_REGISTER_FINALIZER` under `GC_DEBUG`).
    GC_debug_register_finalizer => crate::finalize::GC_register_finalizer
);
debug_finalizer_registration!(
    /// `GC_register_finalizer_ignore_self` for a debug object (bdwgc's
    /// `GC_debug_register_finalizer_ignore_self`).
    GC_debug_register_finalizer_ignore_self => crate::finalize::GC_register_finalizer_ignore_self
);
debug_finalizer_registration!(
    /// `GC_register_finalizer_no_order` for a debug object (bdwgc's
    /// `GC_debug_register_finalizer_no_order`).
    GC_debug_register_finalizer_no_order => crate::finalize::GC_register_finalizer_no_order
);
debug_finalizer_registration!(
    /// `GC_register_finalizer_unreachable` for a debug object (bdwgc's
    /// `GC_debug_register_finalizer_unreachable`).
    GC_debug_register_finalizer_unreachable => crate::finalize::GC_register_finalizer_unreachable
);
