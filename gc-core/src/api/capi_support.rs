//! Small accessors for the bdwgc-compatible C ABI (`gc-capi`): byte counts that bdwgc
//! exposes as cheap getters (`GC_get_free_bytes`, `GC_get_bytes_since_gc`,
//! `GC_get_total_bytes`), read under one lock and without allocating (unlike
//! [`Heap::stats`], which copies the pause log).

use crate::heap::Heap;

/// A consistent snapshot of a heap's byte counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeapUsage {
    /// Bytes of pages holding objects now (what `Heap::heap_size` returns).
    pub heap_bytes: usize,
    /// Bytes in live objects after the last collection.
    pub live_bytes_after_gc: u64,
    /// Bytes allocated minus bytes freed explicitly since the last collection, as
    /// flushed from thread caches (a thread's cache is flushed when it refills a span).
    pub bytes_since_gc: usize,
    /// Bytes allocated since the heap was created (as flushed).
    pub bytes_allocated_total: u64,
}

impl Heap {
    /// Byte counts for bdwgc-style getters, with one lock and no allocation.
    pub fn usage(&self) -> HeapUsage {
        let g = self.lock();
        HeapUsage {
            heap_bytes: Heap::heap_bytes(&g),
            live_bytes_after_gc: g.gc.stats.live_bytes,
            bytes_since_gc: g.bytes_since_gc.max(0) as usize,
            bytes_allocated_total: g.gc.stats.bytes_allocated,
        }
    }
}
