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

/// A function the collector calls, while installed, for every object it queues for
/// finalization (once per object and queueing, after the collection has decided which
/// objects are queued and before any of their finalizers runs), with the object's
/// address. Runs with the heap lock held and the world stopped: it must not allocate,
/// free, lock, or call anything that takes the heap lock (the C ABI's
/// `GC_set_await_finalize_proc`).
pub type FinalizationQueuedHook = fn(obj: usize);

/// The finalization-queued hook, as a `fn` address (0: none).
static QUEUED_HOOK: AtomicUsize = AtomicUsize::new(0);

/// Install (or, with `None`, remove) the finalization-queued hook.
pub fn set_finalization_queued_hook(hook: Option<FinalizationQueuedHook>) {
    QUEUED_HOOK.store(hook.map_or(0, |f| f as usize), Ordering::Release);
}

/// The finalization-queued hook, if one is installed.
#[inline]
pub(crate) fn finalization_queued_hook() -> Option<FinalizationQueuedHook> {
    let f = QUEUED_HOOK.load(Ordering::Acquire);
    // SAFETY: only `set_finalization_queued_hook` stores nonzero values, and it stores
    // the address of a `FinalizationQueuedHook`.
    (f != 0).then(|| unsafe { std::mem::transmute::<usize, FinalizationQueuedHook>(f) })
}

/// A function the collector calls, while installed, with the new heap size (bytes of
/// pages in spans, as `Heap::heap_size`) whenever it differs from the size last
/// reported: when an allocation takes pages for a span, when an explicit free returns a
/// large object's pages, and at the end of every collection (after its sweep and page
/// give-back). Runs with the heap lock held: it must not allocate, free, lock, or call
/// anything that takes the heap lock (the C ABI's `GC_on_heap_resize`).
pub type HeapResizeHook = fn(new_heap_bytes: usize);

/// The heap-resize hook, as a `fn` address (0: none).
static RESIZE_HOOK: AtomicUsize = AtomicUsize::new(0);
/// The heap size last reported to the heap-resize hook.
static LAST_HEAP_BYTES: AtomicUsize = AtomicUsize::new(0);

/// Install (or, with `None`, remove) the heap-resize hook.
pub fn set_heap_resize_hook(hook: Option<HeapResizeHook>) {
    RESIZE_HOOK.store(hook.map_or(0, |f| f as usize), Ordering::Release);
}

/// Tell the heap-resize hook, if any, that the heap now has `heap_bytes` (called with
/// the lock held; nothing happens if the size is the one last reported).
#[inline]
pub(crate) fn report_heap_size(heap_bytes: usize) {
    let f = RESIZE_HOOK.load(Ordering::Acquire);
    if f != 0 && LAST_HEAP_BYTES.swap(heap_bytes, Ordering::AcqRel) != heap_bytes {
        // SAFETY: only `set_heap_resize_hook` stores nonzero values, and it stores the
        // address of a `HeapResizeHook`.
        let f = unsafe { std::mem::transmute::<usize, HeapResizeHook>(f) };
        f(heap_bytes);
    }
}

/// A point of a collection reported to the collection-event hook (bdwgc's
/// `GC_EventType`, in its order). `Start` and `End` bracket every collection, a full one
/// or the finish of an incremental cycle; the others come between them in this order:
/// `PreStopWorld`, `PostStopWorld`, `MarkStart`, `MarkEnd`, `ReclaimStart`, `ReclaimEnd`,
/// `PreStartWorld`, `PostStartWorld`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CollectionEvent {
    /// A collection begins (the lock is held, the world runs).
    Start,
    /// Marking begins (the world is stopped).
    MarkStart,
    /// Marking is done.
    MarkEnd,
    /// Sweeping begins.
    ReclaimStart,
    /// Sweeping is done.
    ReclaimEnd,
    /// The collection is over (the world runs again; the counters include it).
    End,
    /// The world is about to be stopped.
    PreStopWorld,
    /// Every thread is stopped.
    PostStopWorld,
    /// The world is about to be restarted.
    PreStartWorld,
    /// The world runs again.
    PostStartWorld,
}

/// A function the collector calls at each [`CollectionEvent`] of every collection of
/// any heap, with the heap's counters and its marker count (the collecting thread
/// included). Runs with the heap lock held, between `PostStopWorld` and `PreStartWorld`
/// with the world stopped: it must not allocate, free, lock, or call anything that takes
/// the heap lock (the C ABI's `GC_set_on_collection_event`, and `GC_gc_no`).
pub type CollectionEventHook = fn(CollectionEvent, &crate::collector::state::Counters, usize);

/// The collection-event hook, as a `fn` address (0: none).
static EVENT_HOOK: AtomicUsize = AtomicUsize::new(0);

/// Install (or, with `None`, remove) the collection-event hook.
pub fn set_collection_event_hook(hook: Option<CollectionEventHook>) {
    EVENT_HOOK.store(hook.map_or(0, |f| f as usize), Ordering::Release);
}

/// Report `event` to the collection-event hook, if any.
#[inline]
pub(crate) fn run_collection_event(
    event: CollectionEvent,
    counters: &crate::collector::state::Counters,
    markers: usize,
) {
    let f = EVENT_HOOK.load(Ordering::Acquire);
    if f != 0 {
        // SAFETY: only `set_collection_event_hook` stores nonzero values, and it stores
        // the address of a `CollectionEventHook`.
        let f = unsafe { std::mem::transmute::<usize, CollectionEventHook>(f) };
        f(event, counters, markers);
    }
}

/// The scheduling knobs a [`PolicyHooks::policy`] function returns; read at every
/// allocation slow path (bdwgc reads its control variables at the same point).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// False: no automatic collector work at all (no collection triggered by allocation,
    /// no incremental mark step), as bdwgc's `GC_dont_gc`. A collection forced by an
    /// exhausted space still runs.
    pub automatic: bool,
    /// The free-space divisor in force (0: the heap's option).
    pub free_space_divisor: usize,
    /// The least allocation between two automatic collections (0: the heap's
    /// `initial_heap_bytes`).
    pub min_bytes_allocd: usize,
    /// Bytes allocated since the last collection that do not count towards the next
    /// one (bdwgc's `GC_non_gc_bytes` growth since the last collection: uncollectable
    /// objects allocated minus those freed). Subtracted from the allocation count
    /// before it is compared with the budget; may be negative.
    pub explicitly_managed_bytes: isize,
    /// The least scanning of an incremental mark step, in bytes (0: the heap's
    /// `mark_step_bytes`); bdwgc's `GC_rate`.
    pub mark_step_bytes: usize,
    /// A mark step taken by the allocating thread stops once it has run this long,
    /// even with scanning budget left (`None`: no time bound); bdwgc's `GC_time_limit`.
    pub mark_step_time_limit: Option<std::time::Duration>,
    /// Collections an allocation that finds its space exhausted retries after the
    /// first before it fails (bdwgc's `GC_max_retries`; 0: collect once).
    pub max_retries: usize,
    /// bdwgc's `GC_dont_expand` (`None`: the heap's own setting, see
    /// `Heap::set_dont_expand`).
    pub dont_expand: Option<bool>,
    /// bdwgc's `GC_use_entire_heap` (`None`: the heap's own setting).
    pub use_entire_heap: Option<bool>,
    /// bdwgc's `GC_allocd_bytes_per_finalizer` (`None`: the heap's own setting).
    pub allocd_bytes_per_finalizer: Option<usize>,
    /// How many times the pause that finishes an incremental cycle may be abandoned
    /// when it outlasts `mark_step_time_limit` (bdwgc's `max_prior_attempts`): the world
    /// resumes with the marking left to later steps and the next finish; the attempt
    /// after that many runs to the end however long it takes. 0: never abandoned. Only
    /// finishes the allocation slow path starts; explicit and out-of-space collections
    /// run to the end.
    pub max_prior_attempts: u32,
}

impl Policy {
    /// The knobs with every field at "the heap's own option".
    pub const DEFAULT: Policy = Policy {
        automatic: true,
        free_space_divisor: 0,
        min_bytes_allocd: 0,
        explicitly_managed_bytes: 0,
        mark_step_bytes: 0,
        mark_step_time_limit: None,
        max_retries: 0,
        dont_expand: None,
        use_entire_heap: None,
        allocd_bytes_per_finalizer: None,
        max_prior_attempts: 0,
    };
}

/// Functions that steer automatic collections of every heap (the C ABI's control
/// variables). Both run with the heap lock held: they must not allocate, free, lock, or
/// call anything that takes the heap lock.
#[derive(Clone, Copy, Debug)]
pub struct PolicyHooks {
    /// The knobs in force now.
    pub policy: fn() -> Policy,
    /// Asked just before an automatic collection (or incremental cycle) starts: false
    /// abandons it for now (bdwgc's default stop function).
    pub may_start: fn() -> bool,
}

/// The installed policy hooks, as a `&'static PolicyHooks` address (0: none).
static POLICY_HOOKS: AtomicUsize = AtomicUsize::new(0);

/// Install (or, with `None`, remove) the policy hooks.
pub fn set_policy_hooks(hooks: Option<&'static PolicyHooks>) {
    POLICY_HOOKS.store(
        hooks.map_or(0, |h| h as *const PolicyHooks as usize),
        Ordering::Release,
    );
}

/// The installed policy hooks, if any.
#[inline]
pub(crate) fn policy_hooks() -> Option<&'static PolicyHooks> {
    let p = POLICY_HOOKS.load(Ordering::Acquire);
    // SAFETY: only `set_policy_hooks` stores nonzero values: the address of a
    // `&'static PolicyHooks`, valid for the rest of the process.
    (p != 0).then(|| unsafe { &*(p as *const PolicyHooks) })
}
