//! Heap queries: `GC_get_heap_usage_safe`, `GC_is_heap_ptr`, the plausible-address
//! bounds `GC_least_plausible_heap_addr` / `GC_greatest_plausible_heap_addr`
//! (`GC_register_displacement` is in `kinds`), the heap-resize procedure
//! (`GC_on_heap_resize`) and `GC_get_obtained_from_os_bytes`.

use crate::init::heap;
use crate::types::GcWord;
use gc_core::Heap;
use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicPtr, Ordering};

/// bdwgc's `GC_least_plausible_heap_addr` (gc_mark.h): no heap object starts below it.
/// dunegc reserves its whole address space when the collector initialises and never
/// grows it, so this is one byte below the start of the reservation from then on (before that:
/// all ones, an empty range, as no object exists yet). `AtomicPtr` has the layout of
/// `void *`.
#[no_mangle]
pub static GC_least_plausible_heap_addr: AtomicPtr<c_void> =
    AtomicPtr::new(usize::MAX as *mut c_void);

/// bdwgc's `GC_greatest_plausible_heap_addr` (gc_mark.h): no heap object reaches past
/// it; the end of the reservation once the collector is initialised (before: NULL).
#[no_mangle]
pub static GC_greatest_plausible_heap_addr: AtomicPtr<c_void> =
    AtomicPtr::new(std::ptr::null_mut());

/// bdwgc's `GC_on_heap_resize_proc`: `void (*)(GC_word new_size)`.
pub type GcOnHeapResizeProc = Option<unsafe extern "C" fn(new_size: GcWord)>;

/// bdwgc's `GC_on_heap_resize`: called with the new heap size (`GC_get_heap_size`'s
/// value) whenever it changes: when an allocation takes pages, when `GC_free` returns a
/// large object's pages, and at the end of a collection whose sweep returned pages;
/// with the lock held. NULL: none. Programs may assign it; as an `AtomicPtr` it has the
/// layout of a function pointer.
#[no_mangle]
pub static GC_on_heap_resize: AtomicPtr<c_void> = AtomicPtr::new(std::ptr::null_mut());

/// gc-core's heap-resize hook: call the program's procedure, if any.
fn on_resize(new_heap_bytes: usize) {
    let f = GC_on_heap_resize.load(Ordering::Acquire);
    if !f.is_null() {
        // SAFETY: GC_on_heap_resize holds NULL or the address of a
        // `void (*)(GC_word)` (set by GC_set_on_heap_resize or assigned by the program).
        let f = unsafe { std::mem::transmute::<*mut c_void, unsafe extern "C" fn(GcWord)>(f) };
        // SAFETY: the program installed `f` to be called with the lock held; it must not
        // allocate or call the collector (bdwgc's contract).
        unsafe { f(new_heap_bytes as GcWord) };
    }
}

/// Install the heap-resize hook (at initialisation).
pub(crate) fn install() {
    gc_core::api::capi_hooks::set_heap_resize_hook(Some(on_resize));
}

/// Set `GC_on_heap_resize` (bdwgc's `GC_set_on_heap_resize`; NULL removes it).
///
/// # Safety
/// `f` stays callable while installed, and neither allocates nor calls the collector.
#[no_mangle]
pub unsafe extern "C" fn GC_set_on_heap_resize(f: GcOnHeapResizeProc) {
    heap();
    let p = f.map_or(std::ptr::null_mut(), |f| f as *mut c_void);
    GC_on_heap_resize.store(p, Ordering::Release);
}

/// `GC_on_heap_resize` (bdwgc's `GC_get_on_heap_resize`).
#[no_mangle]
pub extern "C" fn GC_get_on_heap_resize() -> GcOnHeapResizeProc {
    heap();
    let f = GC_on_heap_resize.load(Ordering::Acquire);
    // SAFETY: non-NULL values are addresses of `void (*)(GC_word)`.
    (!f.is_null())
        .then(|| unsafe { std::mem::transmute::<*mut c_void, unsafe extern "C" fn(GcWord)>(f) })
}

/// Bytes of address space the collector has mapped so far, heap reservation and side
/// tables included, whether still mapped or not (bdwgc's
/// `GC_get_obtained_from_os_bytes`: never decreases). dunegc reserves its heap's
/// address space at initialisation, so this is large from the start and counts
/// reserved, not resident, memory.
#[no_mangle]
pub extern "C" fn GC_get_obtained_from_os_bytes() -> usize {
    heap();
    gc_core::api::capi_hooks::obtained_from_os_bytes()
}

/// Publish the heap's bounds (at initialisation).
pub(crate) fn publish_bounds(heap: &Heap) {
    let (start, end) = heap.reservation();
    // One byte below the reservation: still a lower bound, and not a pointer into the
    // first object (this variable lies in scanned static data; holding `start` kept the
    // heap's first object alive forever, which leak detection showed).
    GC_least_plausible_heap_addr.store((start - 1) as *mut c_void, Ordering::Release);
    GC_greatest_plausible_heap_addr.store(end as *mut c_void, Ordering::Release);
}

/// Store the five heap-usage numbers, each into its pointer if that is not NULL, read
/// under one lock (bdwgc's `GC_get_heap_usage_safe`): the heap size
/// (`GC_get_heap_size`), free bytes (`GC_get_free_bytes`), unmapped bytes (always 0:
/// the heap size already excludes pages returned to the page allocator), bytes since
/// the last collection (`GC_get_bytes_since_gc`) and bytes allocated in total
/// (`GC_get_total_bytes`).
///
/// # Safety
/// Each pointer is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn GC_get_heap_usage_safe(
    pheap_size: *mut GcWord,
    pfree_bytes: *mut GcWord,
    punmapped_bytes: *mut GcWord,
    pbytes_since_gc: *mut GcWord,
    ptotal_bytes: *mut GcWord,
) {
    let u = crate::callbacks::usage(heap());
    let used = (u.live_bytes_after_gc as usize).saturating_add(u.bytes_since_gc);
    let values = [
        (pheap_size, u.heap_bytes),
        (pfree_bytes, u.heap_bytes.saturating_sub(used)),
        (punmapped_bytes, 0),
        (pbytes_since_gc, u.bytes_since_gc),
        (ptotal_bytes, u.bytes_allocated_total as usize),
    ];
    for (p, v) in values {
        if !p.is_null() {
            // SAFETY: the caller passes NULL or a writable GC_word.
            unsafe { p.write(v) };
        }
    }
}

/// Nonzero if `p` points somewhere in the collector's heap: into a page holding
/// objects, free slots of such a page included (bdwgc's `GC_is_heap_ptr`). Zero for
/// NULL, static data, the stack, `malloc` memory and free heap pages.
#[no_mangle]
pub extern "C" fn GC_is_heap_ptr(p: *const c_void) -> c_int {
    heap().in_used_span(p as usize) as c_int
}
