//! Hooks and queries for the bdwgc-compatible C ABI (`gc-capi`) that need gc-core's
//! internals: holding the heap lock around a callback (`GC_call_with_alloc_lock`), a
//! hook run at the start of every collection (`GC_set_start_callback`), the bounds of
//! the reservation (`GC_least_plausible_heap_addr`) and whether an address lies in a
//! span in use (`GC_is_heap_ptr`), disclaim procedures (`GC_register_disclaim_proc`)
//! and bdwgc's reserved mark procedure slots (`GC_init_gcj_malloc`).

use crate::api::capi_support::HeapUsage;
pub use crate::collector::disclaim::{set_disclaim_proc, DisclaimProc};
pub use crate::collector::hooks::{
    set_collection_event_hook, set_collection_start_hook, set_finalization_queued_hook,
    set_heap_resize_hook, set_policy_hooks, set_sweep_visit_hook, CollectionEvent,
    CollectionEventHook, CollectionStartHook, FinalizationQueuedHook, HeapResizeHook, Policy,
    PolicyHooks, SweepVisitHook,
};
pub use crate::collector::state::Counters;
use crate::heap::span::SpanState;
use crate::heap::Heap;
pub use crate::mark::descr::set_reserved_mark_proc;
pub use crate::roots::statics::{set_static_segment_filter, StaticSegmentFilter};
pub use crate::util::mmap::obtained_from_os_bytes;

/// A heap's counters, read under the lock by [`Heap::with_lock_held`] (what
/// [`Heap::gc_count`] and [`Heap::usage`] would return, without taking the lock again).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LockedSnapshot {
    /// Collections so far (`Heap::gc_count`).
    pub gc_count: u64,
    /// Byte counts (`Heap::usage`).
    pub usage: HeapUsage,
}

impl LockedSnapshot {
    /// The counters of a locked heap.
    pub(crate) fn of(g: &crate::heap::HeapInner) -> LockedSnapshot {
        LockedSnapshot {
            gc_count: g.gc.stats.full_collections + g.gc.stats.incremental_cycles,
            usage: HeapUsage {
                heap_bytes: Heap::heap_bytes(g),
                live_bytes_after_gc: g.gc.stats.live_bytes,
                bytes_since_gc: g.bytes_since_gc.max(0) as usize,
                bytes_allocated_total: g.gc.stats.bytes_allocated,
            },
        }
    }
}

impl Heap {
    /// Run `f` with the heap lock held: no collection, incremental mark step, finalizer
    /// queueing, explicit free or allocation slow path of this heap runs until it
    /// returns (allocation fast paths from other threads' caches still do). `f` gets the
    /// heap's counters, which cannot change while it runs. `f` must not allocate from
    /// or free into this heap, nor call anything that takes the lock (the lock is not
    /// reentrant; allocation and free fail cleanly, other calls deadlock).
    pub fn with_lock_held<R>(&self, f: impl FnOnce(&LockedSnapshot) -> R) -> R {
        let g = self.lock();
        let snapshot = LockedSnapshot::of(&g);
        let published = crate::api::capi_control::LockedInner::publish(&g);
        let r = f(&snapshot);
        drop(published);
        drop(g);
        r
    }

    /// The reserved address range `[start, end)`: every object of this heap lies in it,
    /// now and after any growth.
    pub fn reservation(&self) -> (usize, usize) {
        (self.base, self.end)
    }

    /// True if `addr` lies in a span in use (a page holding small objects, free slots
    /// included, or a large object's pages); false for free pages and outside the heap.
    pub fn in_used_span(&self, addr: usize) -> bool {
        if !self.contains(addr) {
            return false;
        }
        let page = self.pages.page_index(addr);
        match self.pages.span_start_of(page) {
            Some(start) => self.pages.span(start).state() != SpanState::Free,
            None => false,
        }
    }
}
