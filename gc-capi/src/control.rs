//! bdwgc's control variables and their getters and setters, read where bdwgc reads
//! them: the collector consults them through gc-core's policy hooks at every allocation
//! slow path and at the end of every collection
//! ([`gc_core::api::capi_hooks::PolicyHooks`]), and reports each collection through the
//! collection-event hook, which keeps `GC_gc_no` and `GC_parallel` current and calls
//! the program's `GC_set_on_collection_event` procedure.
//!
//! The variables are exported as data, as in bdwgc, so programs that assign them
//! directly (`GC_dont_gc = 1;`, `GC_free_space_divisor = 8;`) work unchanged. They are
//! atomics with the layout of the C type (`int`, `GC_word`, a function pointer).
//!
//! | variable | meaning here |
//! |---|---|
//! | `GC_dont_gc` | nonzero: no collection at all, automatic or `GC_gcollect` (the counter `GC_disable`/`GC_enable` change) |
//! | `GC_gc_no` | collections so far (set at the end of each) |
//! | `GC_free_space_divisor` | budget between collections = 6 × live / divisor (read at every slow path) |
//! | `GC_full_freq` | kept for the getter; every dunegc collection is a full one, which satisfies any value |
//! | `GC_all_interior_pointers` | read at initialisation (0 before `GC_INIT` turns interior pointers off); the setter keeps it current |
//! | `GC_parallel` | marker threads minus one, set when the marker threads run |
//! | `GC_oom_fn` | the out-of-memory function, called when an allocation fails |
//! | `GC_no_dls` | see [`crate::staticroots`] |
//! | `GC_max_retries` | collections an allocation retries, after the first, when its space is exhausted before it reports out of memory |
//! | `GC_time_limit` | milliseconds (plus `GC_set_time_limit_tv`'s nanoseconds) after which a mark step of the allocating thread stops, and after which the world-stopped finish of an incremental cycle that an allocation started is abandoned (`GC_set_max_prior_attempts` times per cycle at most); `GC_TIME_UNLIMITED` (999999, the default, as in Debian's bdwgc): no time bound |
//! | `GC_set_max_prior_attempts` (getter and setter only, as in bdwgc; default 1) | how often per cycle the finish may be abandoned at `GC_time_limit` (the world resumes, the marking left goes on in steps or on the marker threads, and a later finish tries again); the attempt after that many runs to the end. Explicit collections (`GC_gcollect`) are never abandoned |
//! | `GC_dont_expand` | nonzero: an allocation that needs fresh pages while anything was allocated since the last collection collects first; the heap grows only when that collection did not make room (not in incremental mode, as bdwgc; read at every such allocation) |
//! | `GC_use_entire_heap` | nonzero (or `GC_USE_ENTIRE_HEAP` other than `0` at `GC_init`): a collection the allocation budget calls for waits while the allocation fits in free pages or a partial span the heap has (not in incremental mode) |
//! | `GC_allocd_bytes_per_finalizer` (getter and setter only, as in bdwgc; default 10000) | an allocation that needs fresh pages collects first when the finalizers registered since the last such collection × this value exceed the bytes allocated since the last collection, once some finalizer has been queued (0: off; not in incremental mode) |
//! | `GC_non_gc_bytes` | bytes of uncollectable objects (`GC_malloc_uncollectable` adds, `GC_free` subtracts); its growth since the last collection does not count towards the next one, as in bdwgc |
//!
//! Variables whose bdwgc behaviour gc-core cannot give are not exported (see the crate
//! docs).

use crate::init::heap;
use crate::types::GcWord;
use gc_core::api::capi_hooks::{self, CollectionEvent, Counters, Policy, PolicyHooks};
use std::ffi::c_int;
use std::ffi::c_ulong;
use std::sync::atomic::{AtomicI32, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// bdwgc's `GC_dont_gc`: collection is off while nonzero (a counter: `GC_disable`
/// increments it, `GC_enable` decrements it; programs may assign it).
#[no_mangle]
pub static GC_dont_gc: AtomicI32 = AtomicI32::new(0);

/// bdwgc's `GC_gc_no`: collections so far, full ones and incremental cycles (updated at
/// the end of each collection; read-only for the program).
#[no_mangle]
pub static GC_gc_no: AtomicUsize = AtomicUsize::new(0);

/// bdwgc's `GC_free_space_divisor` (default 3, or `GC_FREE_SPACE_DIVISOR`): the budget
/// between automatic collections is 6 × (bytes live after the last one) / divisor, at
/// least `GC_set_min_bytes_allocd`'s minimum. Read at every allocation slow path; 0
/// counts as 1.
#[no_mangle]
pub static GC_free_space_divisor: AtomicUsize = AtomicUsize::new(3);

/// bdwgc's `GC_full_freq` (default 19, bdwgc's): partial collections allowed between
/// full ones. dunegc's collections, incremental cycles included, are all full, so any
/// value is met; the variable is kept for programs that read it back.
#[no_mangle]
pub static GC_full_freq: AtomicI32 = AtomicI32::new(19);

/// bdwgc's `GC_parallel`: the number of marker threads besides the collecting one, once
/// they run (set at the start of each collection from gc-core's marker pool); 0 before.
#[no_mangle]
pub static GC_parallel: AtomicI32 = AtomicI32::new(0);

/// bdwgc's `GC_non_gc_bytes`: bytes of uncollectable objects, counted in granules as
/// `GC_size` reports them: every uncollectable allocation through the C ABI adds its
/// size, `GC_free` of an uncollectable object subtracts it. As in bdwgc's
/// `GC_adj_bytes_allocd`, its growth since the last collection is not counted as
/// allocation when deciding whether to collect (so uncollectable objects, allocated and
/// freed, neither hasten nor delay a collection); programs may assign it.
#[no_mangle]
pub static GC_non_gc_bytes: AtomicUsize = AtomicUsize::new(0);

/// bdwgc's `GC_max_retries` (default 0): when an allocation finds no room (the heap
/// limit or the reservation reached), it collects and retries once, and then up to this
/// many more times, before it reports out of memory. Read at every such failure.
#[no_mangle]
pub static GC_max_retries: AtomicUsize = AtomicUsize::new(0);

/// Set `GC_max_retries` (bdwgc's `GC_set_max_retries`).
#[no_mangle]
pub extern "C" fn GC_set_max_retries(value: GcWord) {
    GC_max_retries.store(value, Ordering::Release);
}

/// `GC_max_retries` (bdwgc's `GC_get_max_retries`).
#[no_mangle]
pub extern "C" fn GC_get_max_retries() -> GcWord {
    GC_max_retries.load(Ordering::Acquire)
}

/// bdwgc's `GC_dont_expand` (default 0): nonzero, an allocation that needs fresh pages
/// (beyond the heap's high water mark) while anything was allocated since the last
/// collection collects first and retries; only if that collection did not make room does
/// the heap grow. Not in incremental mode, nor while collection is off, as bdwgc. Read
/// at every such allocation; programs may assign it.
#[no_mangle]
pub static GC_dont_expand: AtomicI32 = AtomicI32::new(0);

/// Set `GC_dont_expand` (bdwgc's `GC_set_dont_expand`).
#[no_mangle]
pub extern "C" fn GC_set_dont_expand(value: c_int) {
    GC_dont_expand.store(value, Ordering::Release);
}

/// `GC_dont_expand` (bdwgc's `GC_get_dont_expand`).
#[no_mangle]
pub extern "C" fn GC_get_dont_expand() -> c_int {
    GC_dont_expand.load(Ordering::Acquire)
}

/// bdwgc's `GC_use_entire_heap` (default 0; `GC_init` sets it from `GC_USE_ENTIRE_HEAP`,
/// anything but `0` turning it on): nonzero, a collection the allocation budget calls for
/// waits while the allocation fits in free pages or a partial span the heap already has,
/// so the whole heap is used before collecting. Not in incremental mode. Programs may
/// assign it.
#[no_mangle]
pub static GC_use_entire_heap: AtomicI32 = AtomicI32::new(0);

/// bdwgc's `GC_allocd_bytes_per_finalizer` (not exported as a variable, as in bdwgc):
/// an allocation that needs fresh pages collects first when the finalizers registered
/// since the last such collection × this value exceed the bytes allocated since the last
/// collection, once some finalizer has been queued; 0 turns it off. Default 10000.
static ALLOCD_BYTES_PER_FINALIZER: AtomicUsize = AtomicUsize::new(10_000);

/// Set the bytes allocated per finalizer registered below which an allocation collects
/// rather than grows the heap (bdwgc's `GC_set_allocd_bytes_per_finalizer`).
#[no_mangle]
pub extern "C" fn GC_set_allocd_bytes_per_finalizer(value: GcWord) {
    ALLOCD_BYTES_PER_FINALIZER.store(value, Ordering::Release);
}

/// bdwgc's `GC_get_allocd_bytes_per_finalizer`.
#[no_mangle]
pub extern "C" fn GC_get_allocd_bytes_per_finalizer() -> GcWord {
    ALLOCD_BYTES_PER_FINALIZER.load(Ordering::Acquire)
}

/// bdwgc's `GC_TIME_UNLIMITED`.
pub const GC_TIME_UNLIMITED: c_ulong = 999_999;

/// bdwgc's `GC_time_limit`: in incremental mode, a mark step taken by the allocating
/// thread (or `GC_collect_a_little`) stops after this many milliseconds, plus the
/// nanoseconds of the last `GC_set_time_limit_tv`, even if its scanning budget
/// (`GC_rate`) is not used up; `GC_TIME_UNLIMITED` (the default, as in Debian's bdwgc)
/// removes the time bound. Read at every allocation slow path. Steps that help the
/// concurrent marker threads are bounded by `GC_rate` only, and the pause that finishes
/// a cycle is never cut short (bdwgc can abandon it and retry; see
/// `tests/abi_missing.txt`, `GC_set_max_prior_attempts`).
#[no_mangle]
pub static GC_time_limit: AtomicU64 = AtomicU64::new(GC_TIME_UNLIMITED);

/// The nanosecond part of the time limit (bdwgc's `GC_time_lim_nsec`).
static TIME_LIMIT_NSEC: AtomicU64 = AtomicU64::new(0);

/// `GC_set_rate`'s value (0: not set; then the heap's `mark_step_bytes` in pages).
static RATE: AtomicI32 = AtomicI32::new(0);

/// `GC_set_max_prior_attempts`'s value (bdwgc's default: 1).
static MAX_PRIOR_ATTEMPTS: AtomicI32 = AtomicI32::new(1);

/// Bytes of a `GC_rate` unit: a page.
const RATE_UNIT_BYTES: usize = 4096;

/// bdwgc's `struct GC_timeval_s`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct GcTimeval {
    /// Milliseconds.
    pub tv_ms: c_ulong,
    /// Nanoseconds on top (below 1000000).
    pub tv_nsec: c_ulong,
}

/// Set `GC_time_limit` in milliseconds, keeping the nanosecond part (bdwgc's
/// `GC_set_time_limit`).
#[no_mangle]
pub extern "C" fn GC_set_time_limit(ms: c_ulong) {
    GC_time_limit.store(ms, Ordering::Release);
}

/// `GC_time_limit` (bdwgc's `GC_get_time_limit`).
#[no_mangle]
pub extern "C" fn GC_get_time_limit() -> c_ulong {
    GC_time_limit.load(Ordering::Acquire)
}

/// Set the time limit to `tv` (bdwgc's `GC_set_time_limit_tv`; `tv_ms ==
/// GC_TIME_UNLIMITED`: no limit).
#[no_mangle]
pub extern "C" fn GC_set_time_limit_tv(tv: GcTimeval) {
    GC_time_limit.store(tv.tv_ms, Ordering::Release);
    TIME_LIMIT_NSEC.store(tv.tv_nsec, Ordering::Release);
}

/// The time limit (bdwgc's `GC_get_time_limit_tv`).
#[no_mangle]
pub extern "C" fn GC_get_time_limit_tv() -> GcTimeval {
    GcTimeval {
        tv_ms: GC_time_limit.load(Ordering::Acquire),
        tv_nsec: TIME_LIMIT_NSEC.load(Ordering::Acquire),
    }
}

/// The time bound of a mark step in force, if any.
fn mark_step_time_limit() -> Option<Duration> {
    let ms = GC_time_limit.load(Ordering::Acquire);
    (ms != GC_TIME_UNLIMITED).then(|| {
        Duration::from_millis(ms) + Duration::from_nanos(TIME_LIMIT_NSEC.load(Ordering::Acquire))
    })
}

/// Set the least scanning of an incremental mark step (`GC_collect_a_little`, or a step
/// an allocation takes) to `value` pages of 4 KiB (bdwgc's `GC_set_rate`: the size in
/// pages of the units `GC_collect_a_little` operates on). Read at every allocation slow
/// path; values below 1 count as 1 (bdwgc requires a positive value).
#[no_mangle]
pub extern "C" fn GC_set_rate(value: c_int) {
    RATE.store(value.max(1), Ordering::Release);
}

/// The rate set by `GC_set_rate`, else the heap's own least step (`mark_step_bytes`,
/// 64 KiB by default) in pages (bdwgc's `GC_get_rate`; bdwgc's default is 10).
#[no_mangle]
pub extern "C" fn GC_get_rate() -> c_int {
    match RATE.load(Ordering::Acquire) {
        0 => (heap().options().mark_step_bytes / RATE_UNIT_BYTES).max(1) as c_int,
        r => r,
    }
}

/// Set how often per incremental cycle the world-stopped finish may be abandoned when
/// it outlasts `GC_time_limit` (bdwgc's `GC_set_max_prior_attempts`; negative values
/// count as 0, bdwgc requires a value of at least 0).
#[no_mangle]
pub extern "C" fn GC_set_max_prior_attempts(value: c_int) {
    MAX_PRIOR_ATTEMPTS.store(value.max(0), Ordering::Release);
}

/// The value set by `GC_set_max_prior_attempts` (bdwgc's `GC_get_max_prior_attempts`).
#[no_mangle]
pub extern "C" fn GC_get_max_prior_attempts() -> c_int {
    MAX_PRIOR_ATTEMPTS.load(Ordering::Acquire)
}

/// `GC_non_gc_bytes` at the end of the last collection (bdwgc's
/// `GC_non_gc_bytes_at_gc`).
static NON_GC_BYTES_AT_GC: AtomicUsize = AtomicUsize::new(0);

/// Count `n` more bytes of uncollectable objects (allocated), or fewer (freed).
pub(crate) fn count_non_gc_bytes(n: usize, allocated: bool) {
    let update = |v: usize| {
        Some(if allocated {
            v.wrapping_add(n)
        } else {
            v.wrapping_sub(n)
        })
    };
    // The closure never returns None, so the update cannot fail.
    let _ = GC_non_gc_bytes.fetch_update(Ordering::AcqRel, Ordering::Acquire, update);
}

/// Set `GC_non_gc_bytes` (bdwgc's `GC_set_non_gc_bytes`).
#[no_mangle]
pub extern "C" fn GC_set_non_gc_bytes(value: GcWord) {
    GC_non_gc_bytes.store(value, Ordering::Release);
}

/// `GC_non_gc_bytes` (bdwgc's `GC_get_non_gc_bytes`).
#[no_mangle]
pub extern "C" fn GC_get_non_gc_bytes() -> GcWord {
    GC_non_gc_bytes.load(Ordering::Acquire)
}

/// `GC_set_disable_automatic_collection`: nonzero stops collections triggered by
/// allocation; `GC_gcollect` still collects.
static DISABLE_AUTOMATIC: AtomicI32 = AtomicI32::new(0);
/// `GC_set_min_bytes_allocd` (0: gc-core's `initial_heap_bytes`).
static MIN_BYTES_ALLOCD: AtomicUsize = AtomicUsize::new(0);
/// `GC_set_force_unmap_on_gcollect`.
static FORCE_UNMAP: AtomicI32 = AtomicI32::new(0);
/// `GC_set_manual_vdb_allowed` (bdwgc's default: 1).
static MANUAL_VDB_ALLOWED: AtomicI32 = AtomicI32::new(1);
/// The default stop function (`GC_set_stop_func`), as an address (0: never stop).
static STOP_FUNC: AtomicUsize = AtomicUsize::new(0);
/// The collection-event procedure (`GC_set_on_collection_event`), as an address.
static ON_EVENT: AtomicUsize = AtomicUsize::new(0);
/// Nanoseconds of collection at `GC_start_performance_measurement` (u64::MAX: not
/// started).
static PERF_BASE_NS: AtomicU64 = AtomicU64::new(u64::MAX);
/// Bytes freed explicitly (cumulative) at the end of the last collection.
static FREED_AT_LAST_GC: AtomicU64 = AtomicU64::new(0);
/// Collection nanoseconds (cumulative) at the end of the last collection.
static GC_NS_AT_LAST_GC: AtomicU64 = AtomicU64::new(0);

/// bdwgc's `GC_stop_func`: `int (*)(void)`; nonzero asks to abandon the collection.
pub type GcStopFunc = Option<unsafe extern "C" fn() -> c_int>;
/// bdwgc's `GC_on_collection_event_proc`: `void (*)(GC_EventType)`.
pub type GcOnCollectionEventProc = Option<unsafe extern "C" fn(event: c_int)>;

static HOOKS: PolicyHooks = PolicyHooks { policy, may_start };

/// Install the policy and event hooks (once, at initialisation), taking the initial
/// values from the environment as bdwgc's `GC_init` does.
pub(crate) fn install(heap: &'static gc_core::Heap) {
    let env = |k| gc_core::api::options::getenv(k).is_some();
    if env(c"DUNEGC_FREE_SPACE_DIVISOR") || env(c"GC_FREE_SPACE_DIVISOR") {
        GC_free_space_divisor.store(heap.options().free_space_divisor, Ordering::Release);
    }
    if env(c"DUNEGC_USE_ENTIRE_HEAP") || env(c"GC_USE_ENTIRE_HEAP") {
        let on = heap.options().use_entire_heap;
        GC_use_entire_heap.store(on as i32, Ordering::Release);
    }
    if env(c"DUNEGC_DONT_EXPAND") {
        let on = heap.options().dont_expand;
        GC_dont_expand.store(on as i32, Ordering::Release);
    }
    capi_hooks::set_policy_hooks(Some(&HOOKS));
    capi_hooks::set_collection_event_hook(Some(on_event));
}

fn policy() -> Policy {
    Policy {
        automatic: GC_dont_gc.load(Ordering::Acquire) == 0
            && DISABLE_AUTOMATIC.load(Ordering::Acquire) == 0,
        free_space_divisor: GC_free_space_divisor.load(Ordering::Acquire).max(1),
        min_bytes_allocd: MIN_BYTES_ALLOCD.load(Ordering::Acquire),
        explicitly_managed_bytes: GC_non_gc_bytes
            .load(Ordering::Acquire)
            .wrapping_sub(NON_GC_BYTES_AT_GC.load(Ordering::Acquire))
            as isize,
        mark_step_bytes: (RATE.load(Ordering::Acquire).max(0) as usize)
            .saturating_mul(RATE_UNIT_BYTES),
        mark_step_time_limit: mark_step_time_limit(),
        max_retries: GC_max_retries.load(Ordering::Acquire),
        dont_expand: Some(GC_dont_expand.load(Ordering::Acquire) != 0),
        use_entire_heap: Some(GC_use_entire_heap.load(Ordering::Acquire) != 0),
        allocd_bytes_per_finalizer: Some(ALLOCD_BYTES_PER_FINALIZER.load(Ordering::Acquire)),
        max_prior_attempts: MAX_PRIOR_ATTEMPTS.load(Ordering::Acquire).max(0) as u32,
    }
}

/// The default stop function, if any.
fn stop_func() -> GcStopFunc {
    let f = STOP_FUNC.load(Ordering::Acquire);
    // SAFETY: only GC_set_stop_func stores nonzero values: the address of an
    // `unsafe extern "C" fn() -> c_int`.
    (f != 0).then(|| unsafe { std::mem::transmute::<usize, unsafe extern "C" fn() -> c_int>(f) })
}

/// True if `f` (or, for None, nothing) lets a collection go on.
fn allowed_by(f: GcStopFunc) -> bool {
    match f {
        // SAFETY: the program installed `f` as a stop function, callable at any time
        // from collecting threads.
        Some(f) => (unsafe { f() }) == 0,
        None => true,
    }
}

fn may_start() -> bool {
    allowed_by(stop_func())
}

/// bdwgc's `GC_EventType` numbers, in gc-core's event order.
fn event_number(e: CollectionEvent) -> c_int {
    match e {
        CollectionEvent::Start => 0,
        CollectionEvent::MarkStart => 1,
        CollectionEvent::MarkEnd => 2,
        CollectionEvent::ReclaimStart => 3,
        CollectionEvent::ReclaimEnd => 4,
        CollectionEvent::End => 5,
        CollectionEvent::PreStopWorld => 6,
        CollectionEvent::PostStopWorld => 7,
        CollectionEvent::PreStartWorld => 8,
        CollectionEvent::PostStartWorld => 9,
    }
}

fn on_event(e: CollectionEvent, c: &Counters, markers: usize) {
    match e {
        CollectionEvent::Start => {
            GC_parallel.store(markers.saturating_sub(1) as c_int, Ordering::Release);
        }
        CollectionEvent::End => {
            GC_gc_no.store(
                (c.full_collections + c.incremental_cycles) as usize,
                Ordering::Release,
            );
            FREED_AT_LAST_GC.store(c.bytes_freed_explicitly, Ordering::Release);
            GC_NS_AT_LAST_GC.store(c.gc_time_ns, Ordering::Release);
            let non_gc = GC_non_gc_bytes.load(Ordering::Acquire);
            NON_GC_BYTES_AT_GC.store(non_gc, Ordering::Release);
        }
        _ => {}
    }
    let f = ON_EVENT.load(Ordering::Acquire);
    if f != 0 {
        // SAFETY: only GC_set_on_collection_event stores nonzero values: the address of
        // an `unsafe extern "C" fn(c_int)`.
        let f = unsafe { std::mem::transmute::<usize, unsafe extern "C" fn(c_int)>(f) };
        // SAFETY: the program registered `f` to be told of collection progress, with
        // bdwgc's restrictions (no allocation, no collector calls).
        unsafe { f(event_number(e)) };
    }
}

/// Collect now unless `stop_func` (or `GC_dont_gc`) says not to; returns 1 if a
/// collection ran, 0 if it was abandoned (bdwgc's `GC_try_to_collect`). The stop
/// function is asked once, before the collection starts: dunegc's stop-the-world
/// collection cannot be abandoned half way (bdwgc also asks during marking). Due
/// finalizers run afterwards, as after `GC_gcollect`.
///
/// # Safety
/// `stop_func`, if not NULL, is callable.
#[no_mangle]
pub unsafe extern "C" fn GC_try_to_collect(stop_func: GcStopFunc) -> c_int {
    heap();
    if GC_dont_gc.load(Ordering::Acquire) != 0 || !allowed_by(stop_func) {
        return 0;
    }
    crate::collect::collect_now();
    1
}

/// Set the default stop function, asked before every collection `GC_gcollect` or an
/// allocation starts: nonzero abandons it (bdwgc's `GC_set_stop_func`; NULL, which
/// bdwgc forbids, restores "never stop").
///
/// # Safety
/// `f` stays callable, from any thread, while installed.
#[no_mangle]
pub unsafe extern "C" fn GC_set_stop_func(f: GcStopFunc) {
    heap();
    STOP_FUNC.store(f.map_or(0, |f| f as usize), Ordering::Release);
}

/// The default stop function (bdwgc's `GC_get_stop_func`): the one set, or a function
/// that always returns 0.
#[no_mangle]
pub extern "C" fn GC_get_stop_func() -> GcStopFunc {
    unsafe extern "C" fn never_stop() -> c_int {
        0
    }
    Some(stop_func().unwrap_or(never_stop))
}

/// True if the default stop function lets `GC_gcollect` collect now.
pub(crate) fn default_stop_allows() -> bool {
    may_start()
}

/// Call `f(event)` at each step of every collection, with bdwgc's `GC_EventType`
/// numbers (`GC_EVENT_START` … `GC_EVENT_POST_START_WORLD`; the thread events go to
/// `GC_set_on_thread_event`'s procedure), with the lock held and, between the stop- and start-world events, the
/// world stopped; NULL removes it (bdwgc's `GC_set_on_collection_event`).
///
/// # Safety
/// `f` stays callable while installed, and neither allocates nor calls the collector.
#[no_mangle]
pub unsafe extern "C" fn GC_set_on_collection_event(f: GcOnCollectionEventProc) {
    heap();
    ON_EVENT.store(f.map_or(0, |f| f as usize), Ordering::Release);
}

/// The collection-event procedure, or NULL (bdwgc's `GC_get_on_collection_event`).
#[no_mangle]
pub extern "C" fn GC_get_on_collection_event() -> GcOnCollectionEventProc {
    let f = ON_EVENT.load(Ordering::Acquire);
    // SAFETY: nonzero values are addresses of `unsafe extern "C" fn(c_int)`.
    (f != 0).then(|| unsafe { std::mem::transmute::<usize, unsafe extern "C" fn(c_int)>(f) })
}

/// Set `GC_free_space_divisor` (bdwgc's `GC_set_free_space_divisor`).
#[no_mangle]
pub extern "C" fn GC_set_free_space_divisor(value: GcWord) {
    GC_free_space_divisor.store(value, Ordering::Release);
}

/// `GC_free_space_divisor` (bdwgc's `GC_get_free_space_divisor`).
#[no_mangle]
pub extern "C" fn GC_get_free_space_divisor() -> GcWord {
    GC_free_space_divisor.load(Ordering::Acquire)
}

/// Set `GC_full_freq` (bdwgc's `GC_set_full_freq`; see the variable).
#[no_mangle]
pub extern "C" fn GC_set_full_freq(value: c_int) {
    GC_full_freq.store(value, Ordering::Release);
}

/// `GC_full_freq` (bdwgc's `GC_get_full_freq`).
#[no_mangle]
pub extern "C" fn GC_get_full_freq() -> c_int {
    GC_full_freq.load(Ordering::Acquire)
}

/// Nonzero: no collection is triggered by allocation; `GC_gcollect` still collects
/// (bdwgc's `GC_set_disable_automatic_collection`).
#[no_mangle]
pub extern "C" fn GC_set_disable_automatic_collection(value: c_int) {
    heap();
    DISABLE_AUTOMATIC.store((value != 0) as c_int, Ordering::Release);
}

/// 1 if automatic collection is disabled (bdwgc's
/// `GC_get_disable_automatic_collection`).
#[no_mangle]
pub extern "C" fn GC_get_disable_automatic_collection() -> c_int {
    DISABLE_AUTOMATIC.load(Ordering::Acquire)
}

/// The least number of bytes allocated between two automatic collections (bdwgc's
/// `GC_set_min_bytes_allocd`; 0 is taken as 1, as in bdwgc). Read at every allocation
/// slow path.
#[no_mangle]
pub extern "C" fn GC_set_min_bytes_allocd(value: usize) {
    heap();
    MIN_BYTES_ALLOCD.store(value.max(1), Ordering::Release);
}

/// The minimum set by `GC_set_min_bytes_allocd`, else gc-core's (`initial_heap_bytes`,
/// `GC_INITIAL_HEAP_SIZE`) (bdwgc's `GC_get_min_bytes_allocd`).
#[no_mangle]
pub extern "C" fn GC_get_min_bytes_allocd() -> usize {
    match MIN_BYTES_ALLOCD.load(Ordering::Acquire) {
        0 => heap().options().initial_heap_bytes,
        m => m,
    }
}

/// Make `GC_gcollect` behave as `GC_gcollect_and_unmap` (bdwgc's
/// `GC_set_force_unmap_on_gcollect`). The two are the same call in dunegc, so the flag is
/// met whatever its value; it is kept for the getter.
#[no_mangle]
pub extern "C" fn GC_set_force_unmap_on_gcollect(value: c_int) {
    FORCE_UNMAP.store((value != 0) as c_int, Ordering::Release);
}

/// The flag of `GC_set_force_unmap_on_gcollect` (bdwgc's
/// `GC_get_force_unmap_on_gcollect`).
#[no_mangle]
pub extern "C" fn GC_get_force_unmap_on_gcollect() -> c_int {
    FORCE_UNMAP.load(Ordering::Acquire)
}

/// Whether the manual dirty-bit mode (`GC_end_stubborn_change` calls) may be chosen for
/// incremental collection (bdwgc's `GC_set_manual_vdb_allowed`). dunegc never chooses
/// it (its trackers see every write), which either value allows.
#[no_mangle]
pub extern "C" fn GC_set_manual_vdb_allowed(value: c_int) {
    MANUAL_VDB_ALLOWED.store((value != 0) as c_int, Ordering::Release);
}

/// The flag of `GC_set_manual_vdb_allowed` (bdwgc's `GC_get_manual_vdb_allowed`).
#[no_mangle]
pub extern "C" fn GC_get_manual_vdb_allowed() -> c_int {
    MANUAL_VDB_ALLOWED.load(Ordering::Acquire)
}

/// The value of `GC_set_pages_executable` given before initialisation.
static PAGES_EXECUTABLE_ASKED: AtomicI32 = AtomicI32::new(0);

/// Map the heap's pages executable too (bdwgc's `GC_set_pages_executable`, nonzero) or
/// not (0). Only before `GC_init` (no effect afterwards, as in bdwgc): it sets
/// `DUNEGC_PAGES_EXECUTABLE` for gc-core, which reads it when the heap is built (an
/// explicit `DUNEGC_PAGES_EXECUTABLE` in the environment is overridden, since the call
/// is the program's own choice). Like `GC_init`, it calls `setenv`.
#[no_mangle]
pub extern "C" fn GC_set_pages_executable(value: c_int) {
    if crate::init::GC_is_init_called() != 0 {
        return;
    }
    let value = (value != 0) as c_int;
    PAGES_EXECUTABLE_ASKED.store(value, Ordering::Release);
    std::env::set_var("DUNEGC_PAGES_EXECUTABLE", value.to_string());
}

/// Nonzero if the heap is (or, before initialisation, will be) mapped executable
/// (bdwgc's `GC_get_pages_executable`): after `GC_init`, gc-core's option as the heap was
/// built with it.
#[no_mangle]
pub extern "C" fn GC_get_pages_executable() -> c_int {
    if crate::init::GC_is_init_called() != 0 {
        heap().options().pages_executable as c_int
    } else {
        PAGES_EXECUTABLE_ASKED.load(Ordering::Acquire)
    }
}

/// Which writes the incremental collector's page protection can trip on (bdwgc's
/// `GC_incremental_protection_needs`): `GC_PROTECTS_POINTER_HEAP` (1) while the mprotect
/// tracker drives incremental marking (it write-protects the pages of pointer-holding
/// objects; pointer-free objects live in pages it never protects), else
/// `GC_PROTECTS_NONE` (0): uffd write-protection is resolved in the kernel for system
/// calls too, soft-dirty and Dune protect nothing.
#[no_mangle]
pub extern "C" fn GC_incremental_protection_needs() -> c_int {
    match heap().stats().backend {
        Some(gc_core::Backend::Mprotect) => 1,
        _ => 0,
    }
}

/// Bytes freed explicitly (`GC_free`) since the last collection (bdwgc's
/// `GC_get_expl_freed_bytes_since_gc`). Large objects count at once; small ones once the
/// freeing thread's cache is flushed into the heap's counters (at its next span refill),
/// so this is an estimate, as `GC_get_bytes_since_gc` is.
#[no_mangle]
pub extern "C" fn GC_get_expl_freed_bytes_since_gc() -> usize {
    let now = heap().stats().bytes_freed_explicitly;
    now.saturating_sub(FREED_AT_LAST_GC.load(Ordering::Acquire)) as usize
}

/// Start measuring collection time (bdwgc's `GC_start_performance_measurement`):
/// `GC_get_full_gc_total_time` counts from now.
#[no_mangle]
pub extern "C" fn GC_start_performance_measurement() {
    let ns = heap().stats().gc_time.as_nanos() as u64;
    PERF_BASE_NS.store(ns, Ordering::Release);
}

/// Milliseconds spent in collections (every dunegc collection is a full one: pauses and
/// incremental mark steps) since `GC_start_performance_measurement`, 0 if it was not
/// called (bdwgc's `GC_get_full_gc_total_time`).
#[no_mangle]
pub extern "C" fn GC_get_full_gc_total_time() -> std::ffi::c_ulong {
    let base = PERF_BASE_NS.load(Ordering::Acquire);
    if base == u64::MAX {
        return 0;
    }
    let ns = heap().stats().gc_time.as_nanos() as u64;
    (ns.saturating_sub(base) / 1_000_000) as std::ffi::c_ulong
}

/// The size a `GC_malloc(i)` object gets (its size class) for `0 <= i <= 2048`, bdwgc's
/// small-object limit; `SIZE_MAX` for larger `i` (bdwgc's `GC_get_size_map_at`).
#[no_mangle]
pub extern "C" fn GC_get_size_map_at(i: c_int) -> usize {
    const MAXOBJBYTES: u32 = 2048;
    if (i as u32) > MAXOBJBYTES {
        return usize::MAX;
    }
    gc_core::api::capi_control::small_object_bytes(i as usize).unwrap_or(usize::MAX)
}

/// 0: dunegc keeps every page it obtained mapped (bdwgc's `GC_get_unmapped_bytes`
/// counts pages returned to the OS; dunegc returns none early).
#[no_mangle]
pub extern "C" fn GC_get_unmapped_bytes() -> usize {
    heap();
    0
}

/// Count `n` more bytes as allocated since the last collection, for scheduling (bdwgc's
/// `GC_incr_bytes_allocd`).
#[no_mangle]
pub extern "C" fn GC_incr_bytes_allocd(n: usize) {
    heap().adjust_bytes_since_gc(n.min(isize::MAX as usize) as isize);
}

/// Count `n` more bytes as freed since the last collection, for scheduling (bdwgc's
/// `GC_incr_bytes_freed`).
#[no_mangle]
pub extern "C" fn GC_incr_bytes_freed(n: usize) {
    heap().adjust_bytes_since_gc(-(n.min(isize::MAX as usize) as isize));
}

/// Start an incremental cycle now, in incremental mode; otherwise do nothing (bdwgc's
/// `GC_start_incremental_collection`, which also does nothing outside incremental
/// mode). Nothing starts while `GC_dont_gc` is set or the default stop function says
/// so.
#[no_mangle]
pub extern "C" fn GC_start_incremental_collection() {
    let heap = heap();
    if GC_dont_gc.load(Ordering::Acquire) != 0 || !may_start() {
        return;
    }
    if let Err(e) = heap.start_incremental_cycle() {
        crate::warn::warn_text(&format!("GC_start_incremental_collection: {e}"));
    }
}

/// Clear the initialised state (bdwgc's `GC_deinit`): `GC_is_init_called` returns 0
/// until the next call initialises again, as in bdwgc on Linux, where it frees nothing
/// either; the heap stays, so objects allocated before remain valid.
#[no_mangle]
pub extern "C" fn GC_deinit() {
    crate::init::deinit();
}
