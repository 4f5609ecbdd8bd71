//! The collection-start hook: one process-wide function the collector calls at the start
//! of every collection, full or incremental cycle (the C ABI's `GC_set_start_callback`).
//! It lives here, beside the collector that runs it, so the collector never imports the
//! API layer; `api::capi_hooks` re-exports the setter.

use std::sync::atomic::{AtomicUsize, Ordering};

/// A function run at the start of every collection, full or incremental cycle, of any
/// heap: with the heap lock held, before the world is stopped. It must not allocate,
/// free, or call anything that takes the heap lock.
pub type CollectionStartHook = fn();

/// The hook, as a `fn()` address (0: none).
static START_HOOK: AtomicUsize = AtomicUsize::new(0);

/// Install (or, with `None`, remove) the collection-start hook.
pub fn set_collection_start_hook(hook: Option<CollectionStartHook>) {
    START_HOOK.store(hook.map_or(0, |f| f as usize), Ordering::Release);
}

/// Run the collection-start hook, if any (called by the collector with the lock held).
#[inline]
pub(crate) fn run_collection_start_hook() {
    let f = START_HOOK.load(Ordering::Acquire);
    if f != 0 {
        // SAFETY: only `set_collection_start_hook` stores nonzero values, and it stores
        // the address of a `fn()`.
        let f = unsafe { std::mem::transmute::<usize, CollectionStartHook>(f) };
        f();
    }
}

/// A function the collector calls, while installed, for every allocated object just
/// before the sweep of a collection: `(base, len_bytes, live)`, where `live` is true for
/// a marked or uncollectable object. Returning true for a dead object keeps it (it is
/// marked, so this sweep leaves it allocated; its referents are not traced). Runs with
/// the heap lock held and the world stopped: it must not allocate, free, lock, or call
/// anything that takes the heap lock. The C ABI uses it for leak detection and the
/// debug allocator's smashed-object check (bdwgc's `GC_find_leak`, `GC_check_heap`).
pub type SweepVisitHook = fn(base: usize, len_bytes: usize, live: bool) -> bool;

/// The sweep-visit hook, as a `fn` address (0: none).
static SWEEP_HOOK: AtomicUsize = AtomicUsize::new(0);

/// Install (or, with `None`, remove) the sweep-visit hook.
pub fn set_sweep_visit_hook(hook: Option<SweepVisitHook>) {
    SWEEP_HOOK.store(hook.map_or(0, |f| f as usize), Ordering::Release);
}

/// The sweep-visit hook, if one is installed.
#[inline]
pub(crate) fn sweep_visit_hook() -> Option<SweepVisitHook> {
    let f = SWEEP_HOOK.load(Ordering::Acquire);
    // SAFETY: only `set_sweep_visit_hook` stores nonzero values, and it stores the
    // address of a `SweepVisitHook`.
    (f != 0).then(|| unsafe { std::mem::transmute::<usize, SweepVisitHook>(f) })
}
