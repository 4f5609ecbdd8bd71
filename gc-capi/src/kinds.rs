//! Object kinds and mark procedures (bdwgc's `gc_mark.h`): `GC_new_kind`,
//! `GC_new_proc`, `GC_generic_malloc` and its variants, `GC_malloc_kind`,
//! `GC_generic_malloc_many`, `GC_mark_and_push`, the mark-bit calls,
//! `GC_get_kind_and_size`, and the interior-pointer setting with displacements.
//!
//! Kinds are numbered as in bdwgc: 0 `PTRFREE` (`GC_malloc_atomic`), 1 `NORMAL`
//! (`GC_malloc`), 2 `UNCOLLECTABLE`, 3 `AUNCOLLECTABLE`, then the kinds
//! `GC_new_kind` makes (the typed-allocation kind among them, made at the first
//! `GC_make_descriptor`), up to 16 in all (bdwgc's `MAXOBJKINDS`). A new kind is a
//! gc-core scan class: its objects are scanned by the kind's descriptor, and a
//! `GC_DS_PROC` descriptor runs the program's mark procedure with bdwgc's signature
//! (see `gc_core::mark::descr`). Objects of new kinds are allocated under the heap lock
//! (no per-thread fast path). Every object is zeroed whatever `clear_new_objects` says.
//!
//! Bad input: `GC_new_kind` and `GC_new_proc` abort with bdwgc's messages ("Too many
//! kinds", "Too many mark procedures") when the tables are full. `GC_generic_malloc`
//! and friends with a kind that was never made warn and return NULL (bdwgc's
//! behaviour is undefined there: it indexes its kind table unchecked).

use crate::alloc::out_of_memory;
use crate::finalize;
use crate::init::heap;
use crate::types::GcWord;
use crate::warn::warn_text;
use gc_core::mark::{descr, interior};
use gc_core::ObjectKind;
use std::ffi::{c_int, c_uint, c_void};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Mutex;

/// bdwgc's `MAXOBJKINDS`.
pub const MAX_KINDS: usize = 16;
/// bdwgc's `PTRFREE`.
pub const PTRFREE: usize = 0;
/// bdwgc's `NORMAL`.
pub const NORMAL: usize = 1;
/// bdwgc's `UNCOLLECTABLE`.
pub const UNCOLLECTABLE: usize = 2;
/// bdwgc's `AUNCOLLECTABLE`.
pub const AUNCOLLECTABLE: usize = 3;
/// Kinds that exist from the start.
const N_PREDEFINED: usize = 4;
/// Pointers in a free-list array (bdwgc's `MAXOBJGRANULES + 1`).
const FREE_LIST_SLOTS: usize = 129;

/// Per kind: `valid << 16 | gc-core kind << 8 | scan class`.
static KINDS: [AtomicU32; MAX_KINDS] = [const { AtomicU32::new(0) }; MAX_KINDS];
/// Kinds made so far (predefined ones included), and the lock that makes them.
static N_KINDS: AtomicUsize = AtomicUsize::new(N_PREDEFINED);
static MAKE_KIND: Mutex<()> = Mutex::new(());
/// Per kind: the `GC_describe_type_fn` registered for it (0: none).
static DESCRIBE_FNS: [AtomicUsize; MAX_KINDS] = [const { AtomicUsize::new(0) }; MAX_KINDS];

const VALID: u32 = 1 << 16;

fn encode(kind: ObjectKind, scan: u8) -> u32 {
    VALID | (kind as u32) << 8 | scan as u32
}

/// The gc-core kind and scan class of bdwgc kind `k`, if it exists.
pub(crate) fn lookup(k: usize) -> Option<(ObjectKind, u8)> {
    match k {
        PTRFREE => Some((ObjectKind::Atomic, 0)),
        NORMAL => Some((ObjectKind::Normal, 0)),
        UNCOLLECTABLE => Some((ObjectKind::Uncollectable, 0)),
        AUNCOLLECTABLE => Some((ObjectKind::Uncollectable, atomic_uncollectable_class())),
        k if k < MAX_KINDS => {
            let e = KINDS[k].load(Ordering::Acquire);
            (e & VALID != 0).then(|| (ObjectKind::from_u8((e >> 8) as u8), e as u8))
        }
        _ => None,
    }
}

/// The scan class "nothing to scan" for atomic uncollectable objects, made once.
fn atomic_uncollectable_class() -> u8 {
    static CLASS: std::sync::OnceLock<u8> = std::sync::OnceLock::new();
    *CLASS.get_or_init(|| {
        descr::register_scan_class(descr::DS_LENGTH, false)
            .expect("the first scan classes are always free")
    })
}

fn abort_with(msg: &str) -> ! {
    crate::env::abort_with(msg)
}

/// Make a kind scanned by `descr` (plus the object's size if `add_size`), or abort
/// with bdwgc's message when 16 kinds exist.
pub(crate) fn new_kind(descr: GcWord, add_size: bool) -> usize {
    let _g = MAKE_KIND.lock().unwrap_or_else(|e| e.into_inner());
    let k = N_KINDS.load(Ordering::Acquire);
    if k >= MAX_KINDS {
        abort_with("Too many kinds");
    }
    let Some(scan) = descr::register_scan_class(descr, add_size) else {
        abort_with("Too many kinds");
    };
    // Objects with nothing to scan live with the pointer-free ones.
    let base = if descr == 0 && !add_size {
        ObjectKind::Atomic
    } else {
        ObjectKind::Normal
    };
    KINDS[k].store(encode(base, scan), Ordering::Release);
    N_KINDS.store(k + 1, Ordering::Release);
    k
}

/// A new free-list array for `GC_new_kind` (bdwgc's `GC_new_free_list`): 129 NULL
/// pointers in uncollectable memory. dunegc keeps its own free lists; the array stays
/// NULL and is only accepted back by `GC_new_kind`.
#[no_mangle]
pub extern "C" fn GC_new_free_list() -> *mut *mut c_void {
    crate::alloc::alloc_kind(
        "GC_new_free_list",
        ObjectKind::Uncollectable,
        FREE_LIST_SLOTS * std::mem::size_of::<*mut c_void>(),
    )
    .cast()
}

/// `GC_new_free_list` for a caller holding the allocation lock (bdwgc's
/// `GC_new_free_list_inner`). dunegc's `GC_call_with_alloc_lock` callbacks cannot
/// allocate (see `callbacks`), so this is the same call, to be made without the lock.
#[no_mangle]
pub extern "C" fn GC_new_free_list_inner() -> *mut *mut c_void {
    GC_new_free_list()
}

/// Make a new object kind (bdwgc's `GC_new_kind`) and return its number: objects of it
/// are scanned by `descr` (a `GC_DS_*` descriptor; with `add_size` nonzero, the
/// object's size in bytes is added to it first). Aborts with "Too many kinds" past 16.
/// `free_list` (from `GC_new_free_list`) is not used; every object is zeroed.
#[no_mangle]
pub extern "C" fn GC_new_kind(
    _free_list: *mut *mut c_void,
    descr: GcWord,
    add_size: c_int,
    _clear: c_int,
) -> c_uint {
    heap();
    new_kind(descr, add_size != 0) as c_uint
}

/// `GC_new_kind` for a caller holding the allocation lock (bdwgc's
/// `GC_new_kind_inner`); the same call in dunegc.
#[no_mangle]
pub extern "C" fn GC_new_kind_inner(
    free_list: *mut *mut c_void,
    descr: GcWord,
    add_size: c_int,
    clear: c_int,
) -> c_uint {
    GC_new_kind(free_list, descr, add_size, clear)
}

/// Register a mark procedure (bdwgc's `GC_new_proc`) and return its index for
/// `GC_MAKE_PROC`. The first one gets 8 (bdwgc reserves 0..8); aborts with "Too many
/// mark procedures" past 64. It is called with the heap lock held, with bdwgc's
/// arguments, and must not allocate.
#[no_mangle]
pub extern "C" fn GC_new_proc(proc_: Option<descr::MarkProc>) -> c_uint {
    let Some(p) = proc_ else {
        abort_with("GC_new_proc: NULL mark procedure");
    };
    match descr::register_mark_proc(p) {
        Some(i) => i as c_uint,
        None => abort_with("Too many mark procedures"),
    }
}

/// `GC_new_proc` for a caller holding the allocation lock (bdwgc's
/// `GC_new_proc_inner`); the same call in dunegc.
#[no_mangle]
pub extern "C" fn GC_new_proc_inner(proc_: Option<descr::MarkProc>) -> c_uint {
    GC_new_proc(proc_)
}

/// Allocate `lb` bytes of kind `k` as gc-core `kind` with scan class `scan`.
pub(crate) fn alloc_scanned(what: &str, kind: ObjectKind, scan: u8, lb: usize) -> *mut c_void {
    let heap = heap();
    match heap.alloc_described(kind, scan, lb) {
        Ok(addr) => {
            crate::alloc::count_if_uncollectable(heap, kind, addr);
            finalize::invoke_if_due(heap);
            addr as *mut c_void
        }
        Err(e) => out_of_memory(what, lb, &e),
    }
}

fn bad_kind(what: &str, k: c_int) -> *mut c_void {
    warn_text(&format!("{what}: invalid kind {k}; returning NULL"));
    std::ptr::null_mut()
}

/// Allocate `lb` zeroed bytes of kind `k` (bdwgc's `GC_generic_malloc`): collected once
/// unreachable (uncollectable for kinds 2 and 3) and scanned as the kind says. A kind
/// that was never made warns and returns NULL.
#[no_mangle]
pub extern "C" fn GC_generic_malloc(lb: usize, k: c_int) -> *mut c_void {
    match usize::try_from(k).ok().and_then(lookup) {
        Some((kind, scan)) => alloc_scanned("GC_generic_malloc", kind, scan, lb),
        None => bad_kind("GC_generic_malloc", k),
    }
}

/// As `GC_generic_malloc` (bdwgc's `GC_generic_malloc_ignore_off_page`: the program
/// promises to keep a pointer to the first page; dunegc recognises all of them anyway).
#[no_mangle]
pub extern "C" fn GC_generic_malloc_ignore_off_page(lb: usize, k: c_int) -> *mut c_void {
    GC_generic_malloc(lb, k)
}

/// Allocate `lb` bytes of kind `k` (bdwgc's `GC_generic_malloc_uncollectable`): as
/// in bdwgc the object is uncollectable when the kind is (`UNCOLLECTABLE`,
/// `AUNCOLLECTABLE`), and an ordinary object of kind `k` otherwise.
#[no_mangle]
pub extern "C" fn GC_generic_malloc_uncollectable(lb: usize, k: c_int) -> *mut c_void {
    match usize::try_from(k).ok().and_then(lookup) {
        Some((kind, scan)) => alloc_scanned("GC_generic_malloc_uncollectable", kind, scan, lb),
        None => bad_kind("GC_generic_malloc_uncollectable", k),
    }
}

/// `GC_generic_malloc` for every kind, the predefined ones included (bdwgc's
/// `GC_generic_or_special_malloc`).
#[no_mangle]
pub extern "C" fn GC_generic_or_special_malloc(lb: usize, k: c_int) -> *mut c_void {
    GC_generic_malloc(lb, k)
}

/// `GC_generic_malloc` (bdwgc's `GC_malloc_kind`, the fast path of gc_inline.h).
#[no_mangle]
pub extern "C" fn GC_malloc_kind(lb: usize, k: c_int) -> *mut c_void {
    GC_generic_malloc(lb, k)
}

/// `GC_generic_malloc` (bdwgc's `GC_malloc_kind_global`, which bypasses thread-local
/// free lists; dunegc's caches are invisible to the program).
#[no_mangle]
pub extern "C" fn GC_malloc_kind_global(lb: usize, k: c_int) -> *mut c_void {
    GC_generic_malloc(lb, k)
}

/// Allocate several zeroed objects of `lb` bytes of kind `k`, linked through their
/// first words (the last one's is NULL), and store the first in `*result` (bdwgc's
/// `GC_generic_malloc_many`, which gc_inline.h's free lists refill from). About a page
/// worth is allocated (at least one object); `*result` is NULL if none could be.
///
/// # Safety
/// `result` is writable.
#[no_mangle]
pub unsafe extern "C" fn GC_generic_malloc_many(lb: usize, k: c_int, result: *mut *mut c_void) {
    let n = (4096 / lb.max(16)).clamp(1, 256);
    let mut head: *mut c_void = std::ptr::null_mut();
    for _ in 0..n {
        let p = GC_generic_malloc(lb.max(std::mem::size_of::<*mut c_void>()), k);
        if p.is_null() {
            break;
        }
        // SAFETY: p is a fresh object of at least one word.
        unsafe { p.cast::<*mut c_void>().write(head) };
        head = p;
    }
    // SAFETY: the caller passes a writable pointer.
    unsafe { result.write(head) };
}

/// Mark `obj` and queue it for scanning (bdwgc's `GC_mark_and_push`), from inside a
/// mark procedure: the object goes straight onto the collector's mark stack, so the
/// procedure's own stack is returned unchanged and never overflows. `obj` must be a
/// pointer to an object's start (or to a registered displacement, or anywhere inside
/// it while all interior pointers are recognised); anything else is ignored, as is a
/// call from outside a mark procedure.
#[no_mangle]
pub extern "C" fn GC_mark_and_push(
    obj: *mut c_void,
    mark_stack_ptr: *mut descr::MsEntry,
    _mark_stack_limit: *mut descr::MsEntry,
    _src: *mut *mut c_void,
) -> *mut descr::MsEntry {
    descr::mark_and_push(obj as usize);
    mark_stack_ptr
}

/// Nonzero if the object `p` points into is marked (bdwgc's `GC_is_marked`): during a
/// collection, if it was reached; between collections, if it survived the last one.
/// 0 for a pointer to no object.
#[no_mangle]
pub extern "C" fn GC_is_marked(p: *const c_void) -> c_int {
    heap().mark_bit(p as usize).unwrap_or(false) as c_int
}

/// Set the mark bit of the object `p` points into (bdwgc's `GC_set_mark_bit`).
#[no_mangle]
pub extern "C" fn GC_set_mark_bit(p: *const c_void) {
    heap().set_mark_bit(p as usize, true);
}

/// Clear the mark bit of the object `p` points into (bdwgc's `GC_clear_mark_bit`).
#[no_mangle]
pub extern "C" fn GC_clear_mark_bit(p: *const c_void) {
    heap().set_mark_bit(p as usize, false);
}

/// The kind number of the object `p` points into, and its size in `*psize` if `psize`
/// is not NULL (bdwgc's `GC_get_kind_and_size`). For a pointer to no object: -1 and
/// size 0 (bdwgc's behaviour is undefined there).
///
/// # Safety
/// `psize` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn GC_get_kind_and_size(p: *const c_void, psize: *mut usize) -> c_int {
    let (k, size) = match heap().object_class(p as usize) {
        Some(o) => (kind_number(o.kind, o.scan), o.len_bytes),
        None => (-1, 0),
    };
    if !psize.is_null() {
        // SAFETY: the caller passes NULL or a writable size_t.
        unsafe { psize.write(size) };
    }
    k
}

/// The bdwgc kind number of a gc-core kind and scan class.
fn kind_number(kind: ObjectKind, scan: u8) -> c_int {
    match (kind, scan) {
        (ObjectKind::Atomic, 0) => PTRFREE as c_int,
        (ObjectKind::Normal | ObjectKind::Malloc, 0) => NORMAL as c_int,
        (ObjectKind::Uncollectable, 0) => UNCOLLECTABLE as c_int,
        (ObjectKind::Uncollectable, s) if s == atomic_uncollectable_class() => {
            AUNCOLLECTABLE as c_int
        }
        (_, s) => (N_PREDEFINED..N_KINDS.load(Ordering::Acquire))
            .find(|&k| KINDS[k].load(Ordering::Acquire) as u8 == s)
            .map_or(NORMAL as c_int, |k| k as c_int),
    }
}

/// Register a procedure that describes objects of kind `k` (bdwgc's
/// `GC_register_describe_type_fn`). bdwgc calls it only when printing objects in its
/// debugging output; dunegc keeps it for that purpose ([`describe_type_fn`]).
#[no_mangle]
pub extern "C" fn GC_register_describe_type_fn(
    k: c_int,
    f: Option<unsafe extern "C" fn(*mut c_void, *mut std::ffi::c_char)>,
) {
    match usize::try_from(k) {
        Ok(k) if k < MAX_KINDS => {
            DESCRIBE_FNS[k].store(f.map_or(0, |f| f as usize), Ordering::Release)
        }
        _ => warn_text(&format!(
            "GC_register_describe_type_fn: invalid kind {k}; ignored"
        )),
    }
}

/// The describe-type procedure registered for kind `k`, as an address (0: none).
pub fn describe_type_fn(k: usize) -> usize {
    DESCRIBE_FNS.get(k).map_or(0, |f| f.load(Ordering::Acquire))
}

/// Recognise pointers to any byte of an object (nonzero, the default) or only to its
/// start and to registered displacements (0) in heap objects and static data (bdwgc's
/// `GC_set_all_interior_pointers`). Pointers on thread stacks and in registers count
/// anywhere inside an object either way, as in bdwgc.
#[no_mangle]
pub extern "C" fn GC_set_all_interior_pointers(value: c_int) {
    GC_all_interior_pointers.store((value != 0) as c_int, Ordering::Release);
    interior::set_all_interior_pointers(value != 0);
}

/// bdwgc's `GC_all_interior_pointers` (default 1): read at initialisation, so a program
/// that sets it to 0 before `GC_INIT` turns interior pointers off, as in bdwgc; kept
/// current by `GC_set_all_interior_pointers`.
#[no_mangle]
pub static GC_all_interior_pointers: std::sync::atomic::AtomicI32 =
    std::sync::atomic::AtomicI32::new(1);

/// 1 if every interior pointer is recognised, else 0 (bdwgc's
/// `GC_get_all_interior_pointers`).
#[no_mangle]
pub extern "C" fn GC_get_all_interior_pointers() -> c_int {
    interior::all_interior_pointers() as c_int
}

/// Make pointers `n` bytes past the start of any object keep it alive when interior
/// pointers are off (bdwgc's `GC_register_displacement`). Aborts with bdwgc's message
/// for `n >= 4096`.
#[no_mangle]
pub extern "C" fn GC_register_displacement(n: usize) {
    heap();
    if interior::register_displacement(n).is_err() {
        abort_with("Bad argument to GC_register_displacement");
    }
}
