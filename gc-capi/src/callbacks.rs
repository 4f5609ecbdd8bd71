//! Callbacks around the collector: `GC_call_with_alloc_lock`, blocking regions
//! (`GC_do_blocking`, `GC_call_with_gc_active`), the collection start callback
//! (`GC_set_start_callback`) and `GC_start_mark_threads`.

use crate::init::heap;
use gc_core::api::capi_hooks::LockedSnapshot;
use gc_core::api::capi_support::HeapUsage;
use gc_core::Heap;
use std::cell::Cell;
use std::ffi::c_void;
use std::sync::atomic::{AtomicUsize, Ordering};

thread_local! {
    /// The heap's counters while this thread runs a `GC_call_with_alloc_lock` callback
    /// (the lock is not reentrant, so getters called from the callback read these).
    static LOCKED: Cell<Option<LockedSnapshot>> = const { Cell::new(None) };
}

/// True while this thread runs a `GC_call_with_alloc_lock` callback (the heap lock is
/// held, and gc-core's lock is not reentrant).
pub(crate) fn inside_alloc_lock() -> bool {
    LOCKED.with(Cell::get).is_some()
}

/// Make this thread's getters read `snapshot` (the lock is held from now on) or, with
/// None, the heap again; returns the previous state.
pub(crate) fn set_locked_snapshot(snapshot: Option<LockedSnapshot>) -> Option<LockedSnapshot> {
    LOCKED.with(|l| l.replace(snapshot))
}

/// `heap.usage()`, or the counters read at lock time inside `GC_call_with_alloc_lock`
/// (bdwgc's getters are meant to be called there).
pub(crate) fn usage(heap: &'static Heap) -> HeapUsage {
    match LOCKED.with(Cell::get) {
        Some(s) => s.usage,
        None => heap.usage(),
    }
}

/// `heap.gc_count()`, or the count read at lock time inside `GC_call_with_alloc_lock`.
pub(crate) fn gc_count(heap: &'static Heap) -> u64 {
    match LOCKED.with(Cell::get) {
        Some(s) => s.gc_count,
        None => heap.gc_count(),
    }
}

/// bdwgc's `GC_fn_type`: `void *(*)(void *client_data)`.
pub type GcFnType = Option<unsafe extern "C-unwind" fn(client_data: *mut c_void) -> *mut c_void>;

/// bdwgc's `GC_start_callback_proc`: `void (*)(void)`.
pub type GcStartCallbackProc = Option<unsafe extern "C" fn()>;

/// Call `f(client_data)` and return its result; a NULL `f` returns NULL (bdwgc declares
/// `f` nonnull).
///
/// # Safety
/// `f` is NULL or callable with `client_data`.
unsafe fn call(f: GcFnType, client_data: *mut c_void) -> *mut c_void {
    match f {
        // SAFETY: the caller passes a function callable with `client_data`.
        Some(f) => unsafe { f(client_data) },
        None => std::ptr::null_mut(),
    }
}

/// Run `fn(client_data)` with the allocation lock held and return its result (bdwgc's
/// `GC_call_with_alloc_lock`). While it runs no collection (full or incremental step),
/// no clearing of disappearing links, no finalizer queueing, no `GC_free` and no
/// allocation slow path happens on any thread; those calls wait. As in bdwgc, `fn` may
/// call the unsynchronized getters (`GC_get_gc_no`, `GC_get_heap_size`,
/// `GC_get_free_bytes`, `GC_get_bytes_since_gc`, `GC_get_total_bytes`,
/// `GC_get_heap_usage_safe`: they return the values read when the lock was taken, which
/// cannot change meanwhile) but must not allocate or call other collector functions
/// (allocation fails; other calls deadlock, as in bdwgc).
///
/// # Safety
/// `fn` is callable with `client_data` (if it unwinds, the lock is released).
#[no_mangle]
pub unsafe extern "C-unwind" fn GC_call_with_alloc_lock(
    fn_: GcFnType,
    client_data: *mut c_void,
) -> *mut c_void {
    /// Restores the outer state when the callback returns or unwinds.
    struct Restore(Option<LockedSnapshot>);
    impl Drop for Restore {
        fn drop(&mut self) {
            LOCKED.with(|l| l.set(self.0));
        }
    }
    heap().with_lock_held(|snapshot| {
        let _restore = Restore(LOCKED.with(|l| l.replace(Some(*snapshot))));
        // SAFETY: the caller's guarantee on `fn_`.
        unsafe { call(fn_, client_data) }
    })
}

/// Run `fn(client_data)` as a blocking call and return its result (bdwgc's
/// `GC_do_blocking`). In bdwgc the thread is then "inactive": collections do not wait
/// for it and skip its frames from here down. dunegc stops every thread with a signal
/// whatever it is doing, and scans its whole stack, so there is no state to switch: `fn` runs as a plain call, and the
/// frames of `fn` are scanned too (more conservative than bdwgc, never less).
///
/// # Safety
/// `fn` is callable with `client_data`.
#[no_mangle]
pub unsafe extern "C-unwind" fn GC_do_blocking(
    fn_: GcFnType,
    client_data: *mut c_void,
) -> *mut c_void {
    heap();
    // SAFETY: the caller's guarantee on `fn_`.
    unsafe { call(fn_, client_data) }
}

/// Run `fn(client_data)` in the "active" state and return its result (bdwgc's
/// `GC_call_with_gc_active`): `fn` may allocate and use heap pointers, also when called
/// from inside `GC_do_blocking`. In dunegc every thread is always active (see
/// `GC_do_blocking`), so this is a plain call.
///
/// # Safety
/// `fn` is callable with `client_data`.
#[no_mangle]
pub unsafe extern "C-unwind" fn GC_call_with_gc_active(
    fn_: GcFnType,
    client_data: *mut c_void,
) -> *mut c_void {
    heap();
    // SAFETY: the caller's guarantee on `fn_`.
    unsafe { call(fn_, client_data) }
}

/// The start callback, as an address (0: none).
static START_CALLBACK: AtomicUsize = AtomicUsize::new(0);

/// gc-core's collection-start hook: call the C start callback, if any, then ask the
/// toggle-ref callback (bdwgc's order: `GC_start_call_back`, then
/// `GC_process_togglerefs`).
fn run_start_callback() {
    run_c_start_callback();
    crate::toggleref::process_at_collection_start();
}

/// Install the collection-start hook (at initialisation; it stays installed).
pub(crate) fn install() {
    gc_core::api::capi_hooks::set_collection_start_hook(Some(run_start_callback as fn()));
}

fn run_c_start_callback() {
    let f = START_CALLBACK.load(Ordering::Acquire);
    if f != 0 {
        // SAFETY: only GC_set_start_callback stores nonzero values: the address of an
        // `unsafe extern "C" fn()`.
        let f = unsafe { std::mem::transmute::<usize, unsafe extern "C" fn()>(f) };
        // SAFETY: the program registered `f` to be called at the start of collections.
        unsafe { f() };
    }
}

/// Call `f` at the start of every collection (each full collection and each
/// incremental cycle; all of dunegc's collections are full ones), with the allocation
/// lock held and before the world is stopped; NULL removes it (bdwgc's
/// `GC_set_start_callback`). As in bdwgc, `f` must not allocate or call into the
/// collector.
#[no_mangle]
pub extern "C" fn GC_set_start_callback(f: GcStartCallbackProc) {
    let heap = heap();
    heap.with_lock_held(|_| {
        START_CALLBACK.store(f.map_or(0, |f| f as usize), Ordering::Release);
    });
}

/// The start callback set by `GC_set_start_callback`, or NULL (bdwgc's
/// `GC_get_start_callback`).
#[no_mangle]
pub extern "C" fn GC_get_start_callback() -> GcStartCallbackProc {
    let heap = heap();
    let f = heap.with_lock_held(|_| START_CALLBACK.load(Ordering::Acquire));
    if f == 0 {
        return None;
    }
    // SAFETY: a nonzero value is the address of an `unsafe extern "C" fn()` (stored by
    // GC_set_start_callback).
    Some(unsafe { std::mem::transmute::<usize, unsafe extern "C" fn()>(f) })
}

/// Start the parallel marker threads, if available (bdwgc's `GC_start_mark_threads`).
/// dunegc's marker threads (`GC_MARKERS` / `DUNEGC_MARKERS`) start at the first
/// collection, before the world is stopped; this call only initialises the collector.
#[no_mangle]
pub extern "C" fn GC_start_mark_threads() {
    heap();
}
