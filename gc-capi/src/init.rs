//! Initialisation (`GC_init`), bdwgc's environment variables, version queries.
//!
//! gc-core configures the process's global heap from `DUNEGC_*` variables when the heap
//! is first used. Initialisation (explicit `GC_init`, or the first call of any `GC_*`
//! function) first translates bdwgc's variables into those, for each `DUNEGC_*` variable
//! that is not already set (an explicit `DUNEGC_*` value wins):
//!
//! | bdwgc variable | becomes | note |
//! |---|---|---|
//! | `GC_INITIAL_HEAP_SIZE` | `DUNEGC_INITIAL_HEAP_SIZE` | allocation before the first collection; `K`/`M`/`G` suffixes |
//! | `GC_MAXIMUM_HEAP_SIZE` | `DUNEGC_MAX_HEAP_SIZE` | hard limit on the heap size (as `GC_set_max_heap_size`) |
//! | `GC_FREE_SPACE_DIVISOR` | `DUNEGC_FREE_SPACE_DIVISOR` | same meaning |
//! | `GC_PRINT_STATS` (set) | `DUNEGC_PRINT_STATS=1` | statistics printed at exit, not per collection |
//!
//! Unless `GC_dont_precollect` is set (or `GC_dont_gc`), initialisation ends with one
//! collection, as bdwgc's `GC_init` does; in incremental mode (asked by the
//! environment) it collects even with `GC_dont_precollect` set, as bdwgc does.
//!
//! After the heap exists: `GC_ENABLE_INCREMENTAL` (set, and not `0`) calls
//! `GC_enable_incremental`; `GC_DISABLE_INCREMENTAL` (set) makes `GC_enable_incremental`
//! a no-op; `GC_DONT_GC` (set) calls `GC_disable`. `DUNEGC_DIRTY` picks the
//! dirty-tracking backend (and, as in gc-core, implies incremental mode unless `none`).
//! A bad value of a bdwgc variable is reported through the warning procedure and ignored
//! (as bdwgc does); a bad `DUNEGC_*` value aborts with a message (gc-core's behaviour).
//!
//! The translation calls `setenv`, so the first `GC_*` call must not race with another
//! thread reading or changing the environment (bdwgc asks for `GC_INIT()` from the main
//! thread before other threads start for the same reason).

use crate::types::{GC_VERSION_MAJOR, GC_VERSION_MICRO, GC_VERSION_MINOR};
use crate::warn::warn_text;
use gc_core::api::options::{getenv, parse_size};
use gc_core::{global_heap, Heap};
use std::ffi::{c_char, c_int, c_uint, CStr};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Once;

/// bdwgc's `GC_dont_precollect`: nonzero before initialisation skips the collection
/// that ends it (unless incremental mode is on by then, as in bdwgc). Read once, at
/// initialisation.
#[no_mangle]
pub static GC_dont_precollect: AtomicI32 = AtomicI32::new(0);

/// Set `GC_dont_precollect` (bdwgc's `GC_set_dont_precollect`; only a call before
/// initialisation has an effect).
#[no_mangle]
pub extern "C" fn GC_set_dont_precollect(value: c_int) {
    GC_dont_precollect.store(value, Ordering::Release);
}

/// `GC_dont_precollect` (bdwgc's `GC_get_dont_precollect`).
#[no_mangle]
pub extern "C" fn GC_get_dont_precollect() -> c_int {
    GC_dont_precollect.load(Ordering::Acquire)
}

static INIT: Once = Once::new();
static INIT_DONE: AtomicBool = AtomicBool::new(false);
/// `GC_DISABLE_INCREMENTAL` was set at initialisation.
static INCREMENTAL_FORBIDDEN: AtomicBool = AtomicBool::new(false);

/// The global heap, initialising the library on first use.
#[inline]
pub(crate) fn heap() -> &'static Heap {
    if !INIT_DONE.load(Ordering::Acquire) {
        init_once();
    }
    global_heap()
}

/// True once the collector is initialised (and not since `GC_deinit`).
pub(crate) fn is_initialised() -> bool {
    INIT_DONE.load(Ordering::Acquire)
}

/// True if `GC_DISABLE_INCREMENTAL` forbids incremental mode.
pub(crate) fn incremental_forbidden() -> bool {
    INCREMENTAL_FORBIDDEN.load(Ordering::Acquire)
}

#[cold]
fn init_once() {
    INIT.call_once(|| {
        translate_env();
        let heap = global_heap();
        crate::control::install(heap);
        crate::staticroots::install();
        crate::worldctl::install_fork_handlers();
        // The stop-the-world handler is installed now, as bdwgc does in GC_init: from here
        // on the suspend signal (GC_set_suspend_signal) is fixed.
        if let Err(e) = gc_core::world::init() {
            warn_text(&format!(
                "installing the stop-the-world signal handler failed: {e}"
            ));
        }
        crate::worldctl::install_suspend_handler();
        if crate::kinds::GC_all_interior_pointers.load(Ordering::Acquire) == 0 {
            // Set to 0 by the program before initialisation, as bdwgc reads it.
            crate::kinds::GC_set_all_interior_pointers(0);
        }
        crate::heapinfo::publish_bounds(heap);
        crate::heapinfo::install();
        crate::markroots::install();
        crate::threads::mark_current_registered();
        crate::stacks::install();
        crate::errors::init();
        crate::finalize::install(heap);
        crate::callbacks::install();
        if getenv(c"GC_DISABLE_INCREMENTAL").is_some() {
            INCREMENTAL_FORBIDDEN.store(true, Ordering::Release);
        }
        // GC_PRINT_STATS (translated to DUNEGC_PRINT_STATS above): gc-core's global heap
        // registered its own exit handler when it was created; registering another one
        // here printed the statistics twice.
        INIT_DONE.store(true, Ordering::Release);
        if getenv(c"GC_DONT_GC").is_some() {
            crate::collect::GC_disable();
        }
        // bdwgc enables incremental mode inside GC_init when asked by the environment;
        // so does dunegc, also for DUNEGC_DIRTY / DUNEGC_INCREMENTAL (which gc-core
        // would otherwise open lazily): the tracker is opened, or its failure reported,
        // now.
        let asked = getenv(c"GC_ENABLE_INCREMENTAL").is_some_and(|v| !matches!(v.trim(), "" | "0"));
        if asked || heap.is_incremental() {
            crate::collect::GC_enable_incremental();
        }
        // bdwgc's GC_init: `if (!GC_dont_precollect || GC_incremental) GC_gcollect_inner()`
        // (which does nothing while GC_dont_gc is set).
        let precollect = GC_dont_precollect.load(Ordering::Acquire) == 0
            || crate::collect::GC_is_incremental_mode() != 0;
        if precollect && crate::control::GC_dont_gc.load(Ordering::Acquire) == 0 {
            crate::collect::collect_now();
        }
    });
    // After GC_deinit the collector counts as initialised again from the next call.
    INIT_DONE.store(true, Ordering::Release);
}

/// `GC_deinit`: `GC_is_init_called` returns 0 until the next call initialises again.
pub(crate) fn deinit() {
    INIT_DONE.store(false, Ordering::Release);
}

/// Set `to` from `from` (if `from` is set, `to` is not, and `check` accepts the value).
fn translate(from: &CStr, to: &str, check: impl Fn(&str) -> Option<String>) {
    let Some(value) = getenv(from) else { return };
    if std::env::var_os(to).is_some() {
        return;
    }
    match check(value) {
        Some(v) => std::env::set_var(to, v),
        None => warn_text(&format!(
            "Bad value '{value}' for {} - ignoring it",
            from.to_string_lossy()
        )),
    }
}

fn translate_env() {
    let size = |v: &str| parse_size(v).map(|n| n.to_string());
    translate(c"GC_INITIAL_HEAP_SIZE", "DUNEGC_INITIAL_HEAP_SIZE", size);
    translate(c"GC_MAXIMUM_HEAP_SIZE", "DUNEGC_MAX_HEAP_SIZE", size);
    translate(c"GC_FREE_SPACE_DIVISOR", "DUNEGC_FREE_SPACE_DIVISOR", |v| {
        v.trim()
            .parse::<usize>()
            .ok()
            .filter(|&d| d > 0)
            .map(|d| d.to_string())
    });
    // bdwgc's marker count (the collecting thread included) is gc-core's.
    translate(c"GC_MARKERS", "DUNEGC_MARKERS", |v| {
        v.trim()
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=64).contains(n))
            .map(|n| n.to_string())
    });
    translate(c"GC_PRINT_STATS", "DUNEGC_PRINT_STATS", |_| {
        Some("1".to_owned())
    });
    crate::env::translate_more(|from, to, check| translate(from, to, check));
}

/// Initialise the collector (bdwgc's `GC_init`; `GC_INIT()` expands to it). Optional:
/// every `GC_*` function initialises on first use. Repeated calls are harmless.
#[no_mangle]
pub extern "C" fn GC_init() {
    heap();
}

/// Nonzero once the collector is initialised (bdwgc's `GC_is_init_called`).
#[no_mangle]
pub extern "C" fn GC_is_init_called() -> c_int {
    INIT_DONE.load(Ordering::Acquire) as c_int
}

/// The bdwgc release whose API this library follows, as
/// `major << 16 | minor << 8 | micro` (bdwgc's `GC_get_version`).
#[no_mangle]
pub extern "C" fn GC_get_version() -> c_uint {
    (GC_VERSION_MAJOR << 16) | (GC_VERSION_MINOR << 8) | GC_VERSION_MICRO
}

/// dunegc's own name and version, e.g. `"dunegc 0.1.0"` (not in bdwgc; lets a program
/// tell which collector it was linked with at run time).
#[no_mangle]
pub extern "C" fn GC_dunegc_version() -> *const c_char {
    const V: &CStr = match CStr::from_bytes_with_nul(
        concat!("dunegc ", env!("CARGO_PKG_VERSION"), "\0").as_bytes(),
    ) {
        Ok(s) => s,
        Err(_) => panic!("version string has no interior NUL"),
    };
    V.as_ptr()
}
