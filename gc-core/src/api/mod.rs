//! The public face of the collector.
//!
//! - [`options`] — `Options`, `HeapBuilder`, `DUNEGC_*` variables.
//! - [`stats`] — `GcStats`.
//! - [`global_alloc`] — `GcAllocator` for `#[global_allocator]`.
//! - [`gc`] — `Gc<T>`, the copyable collected pointer.
//! - [`heap_api`] — collection, roots, finalizers and statistics on a `Heap`.
//! - [`capi_control`] — the lock and the world held across C calls, cycle start, marked-object walk.
//! - [`capi_kinds`] — mark bits and scan classes of objects, for the C ABI's `gc_mark.h`.
//! - [`capi_finalize`] — `GC_finalize_all`'s queueing, the Java-finalization flag and the
//!   registrations, for the C ABI's finalization calls.
//! - [`dump`] — a snapshot of roots, sections and spans, for the C ABI's `GC_dump`.

pub mod capi_control;
pub mod capi_finalize;
pub mod capi_hooks;
pub mod capi_kinds;
pub mod capi_links;
pub mod capi_support;
pub mod dump;
pub mod gc;
pub mod global_alloc;
pub mod heap_api;
pub mod options;
pub mod stats;

use crate::heap::Heap;
use options::HeapBuilder;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::Once;

static GLOBAL: AtomicPtr<Heap> = AtomicPtr::new(std::ptr::null_mut());
static GLOBAL_ONCE: Once = Once::new();

/// The process's default heap (used by `GcAllocator` and `Gc::new`), configured from the
/// `DUNEGC_*` environment variables on first use. Aborts with a message if the
/// environment is invalid or the address space cannot be reserved: there is no heap to
/// report an error from.
pub fn global_heap() -> &'static Heap {
    let p = GLOBAL.load(Ordering::Acquire);
    if !p.is_null() {
        // SAFETY: set once to a leaked, never-freed heap.
        return unsafe { &*p };
    }
    init_global()
}

#[cold]
fn init_global() -> &'static Heap {
    GLOBAL_ONCE.call_once(|| {
        let options = match crate::api::options::Options::default().with_env_raw() {
            Ok(o) => o,
            Err((key, value, expected)) => fatal(&[
                b"dunegc: bad value '",
                value.as_bytes(),
                b"' for ",
                key.as_bytes(),
                b": expected ",
                expected.as_bytes(),
            ]),
        };
        if let Err((key, expected)) = options.check_raw() {
            fatal(&[
                b"dunegc: bad ",
                key.as_bytes(),
                b": expected ",
                expected.as_bytes(),
            ]);
        }
        let heap = match HeapBuilder::new().options_from(options).build_for_global() {
            Ok(h) => h,
            Err(_) => fatal(&[
                b"dunegc: could not reserve address space for the heap (see HeapBuilder::max_space_bytes)",
            ]),
        };
        GLOBAL.store(heap as *const Heap as *mut Heap, Ordering::Release);
        if heap.options().print_stats {
            // SAFETY: registers a plain extern "C" fn; atexit allocates nothing of ours.
            unsafe { libc::atexit(print_stats_at_exit) };
        }
    });
    // SAFETY: call_once stored a valid heap or aborted.
    unsafe { &*GLOBAL.load(Ordering::Acquire) }
}

/// `DUNEGC_PRINT_STATS=1`: the global heap's statistics on stderr when the process exits.
extern "C" fn print_stats_at_exit() {
    let p = GLOBAL.load(Ordering::Acquire);
    if !p.is_null() {
        // SAFETY: the global heap is never freed.
        let heap = unsafe { &*p };
        heap.print_stats_if_enabled();
    }
}

/// Write a message made of parts to stderr and abort, without allocating.
fn fatal(parts: &[&[u8]]) -> ! {
    for p in parts {
        // SAFETY: writes our buffers to fd 2.
        unsafe { libc::write(2, p.as_ptr().cast(), p.len()) };
    }
    // SAFETY: as above.
    unsafe { libc::write(2, b"\n".as_ptr().cast(), 1) };
    std::process::abort()
}
