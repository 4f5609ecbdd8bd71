//! bdwgc's environment variables beyond the ones [`crate::init`] maps to gc-core's
//! options of the same meaning. Each is honoured, mapped, or accepted and documented:
//!
//! | bdwgc variable | here |
//! |---|---|
//! | `GC_FIND_LEAK` | leak detection on (see [`crate::errors`]) |
//! | `GC_ABORT_ON_LEAK` | abort after reporting leaked or smashed objects ([`crate::errors`]) |
//! | `GC_PRINT_VERBOSE_STATS` | as `GC_PRINT_STATS` (`DUNEGC_PRINT_STATS=1`) |
//! | `GC_MARKERS`, `GC_NPROCS` | a positive count, passed on as `DUNEGC_MARKERS` (`GC_MARKERS` wins): gc-core builds with parallel marking read it; this gc-core marks on one thread and ignores it, like a bdwgc built without parallel marking |
//! | `GC_USE_ENTIRE_HEAP` | anything but `0`: `GC_use_entire_heap` on (`0`: off), passed on as `DUNEGC_USE_ENTIRE_HEAP` |
//! | `GC_LOOP_ON_ABORT` | the collector's own aborts (bad pointers, failed pointer checks) loop forever instead, so a debugger can attach, as in bdwgc |
//! | `GC_RETRY_SIGNALS` | accepted: gc-core's stop-the-world always re-sends the suspend signal to threads that have not answered |
//! | `GC_IGNORE_GCJ_INFO`, `GC_USE_GETWRITEWATCH`, `GC_NO_BLACKLIST_WARNING`, `GC_UNMAP_THRESHOLD`, `GC_FORCE_UNMAP_ON_GCOLLECT`, `GC_LARGE_ALLOC_WARN_INTERVAL`, `GC_PAUSE_TIME_TARGET`, `GC_FULL_FREQUENCY`, `GC_DUMP_REGULARLY`, `GC_PRINT_ADDRESS_MAP`, `GC_BACKTRACES`, `GC_IGNORE_FB` | ignored: they tune parts of bdwgc dunegc does not have (gcj, page unmapping, black lists, partial collections, dumps) |
//!
//! A bad value is reported through the warning procedure ("Bad value '...' for ...")
//! and ignored, as bdwgc does.

use gc_core::api::options::getenv;
use std::ffi::CStr;

/// A positive integer, as text.
fn positive(v: &str) -> Option<String> {
    v.trim()
        .parse::<usize>()
        .ok()
        .filter(|&n| n > 0)
        .map(|n| n.to_string())
}

/// Translate the variables this module maps, with `init`'s `translate(from, to, check)`
/// (which lets an explicit `DUNEGC_*` value win and warns about bad values).
pub(crate) fn translate_more(translate: impl Fn(&CStr, &str, &dyn Fn(&str) -> Option<String>)) {
    translate(c"GC_PRINT_VERBOSE_STATS", "DUNEGC_PRINT_STATS", &|_| {
        Some("1".to_owned())
    });
    translate(c"GC_MARKERS", "DUNEGC_MARKERS", &positive);
    translate(c"GC_USE_ENTIRE_HEAP", "DUNEGC_USE_ENTIRE_HEAP", &|v| {
        Some(if v == "0" { "0" } else { "1" }.to_owned())
    });
    translate(c"GC_NPROCS", "DUNEGC_MARKERS", &positive);
}

/// Abort the process after `msg` (the collector's own aborts), or, with
/// `GC_LOOP_ON_ABORT` set, print it and wait forever for a debugger, as bdwgc does.
pub(crate) fn abort_with(msg: &str) -> ! {
    crate::print::call_abort_func(msg);
    if getenv(c"GC_LOOP_ON_ABORT").is_some() {
        loop {
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
    }
    std::process::abort()
}
