//! Heap options: a builder, and the `DUNEGC_*` environment variables.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `DUNEGC_INITIAL_HEAP_SIZE` | allocation allowed before the first collection (and the least between two) | 4M |
//! | `DUNEGC_MAX_HEAP_SIZE` | hard limit on the heap (pages in spans, all spaces together); past it allocation fails with [`GcError::OutOfMemory`] (`0`: none) | none |
//! | `DUNEGC_FREE_SPACE_DIVISOR` | budget between collections = 6 × live / divisor (bdwgc's knob) | 3 |
//! | `DUNEGC_INCREMENTAL` | `1`: incremental (mostly-parallel) marking | 0 |
//! | `DUNEGC_DIRTY` | `auto`, `none`, `mprotect`, `soft-dirty`, `uffd`, `dune`; setting it (other than `none`) implies incremental | auto |
//! | `DUNEGC_MARKERS` | marker threads for stop-the-world marking, the collecting thread included (1..=64); also the default of heaps built without [`HeapBuilder::markers`] | CPUs |
//! | `DUNEGC_CONCURRENT_MARKING` | `0`: incremental cycles mark in steps on the allocating thread instead of on the marker threads while the program runs | 1 |
//! | `DUNEGC_ALLOCATE_BLACK` | `0`: objects allocated during an incremental cycle start unmarked (the finish traces them) instead of marked | 1 |
//! | `DUNEGC_PRECLEANS` | pre-cleaning rounds of a concurrent cycle: a short pause takes the pages dirtied so far and re-arms, the markers rescan them while the program runs (0..=8) | 1 |
//! | `DUNEGC_PRINT_STATS` | `1`: print the global heap's statistics to stderr at exit | 0 |
//! | `DUNEGC_DONT_EXPAND` | `1`: collect rather than take fresh pages while anything was allocated since the last collection; the heap grows only when a collection did not make room (bdwgc's `GC_dont_expand`; not in incremental mode) | 0 |
//! | `DUNEGC_LEAN_GROWTH` | `1`: collect before taking fresh pages once `2 × live / divisor` bytes were allocated since the last collection (bdwgc's `GC_collect_or_expand` rule: a smaller peak heap, more collections; not in incremental mode) | 0 |
//! | `DUNEGC_USE_ENTIRE_HEAP` | `1`: put off the budget-triggered collection while the allocation fits in free pages the heap has (bdwgc's `GC_use_entire_heap`; not in incremental mode) | 0 |
//! | `DUNEGC_MALLOC_COLLECTABLE` | `0`: global-allocator memory is never reclaimed by the collector, only by `dealloc` | 1 |
//!
//! Sizes take `K`, `M` or `G` suffixes. Reading them allocates nothing, so the global heap
//! can be configured from inside the first allocation of the program.

use crate::dirty::{Backend, BackendChoice};
use crate::error::GcError;
use crate::heap::Heap;

// `Options` and the environment parsing live in `crate::options`, below the heap, which
// is built from them; this public path re-exports them.
pub use crate::options::{getenv, parse_size, Options};

/// Builds a [`Heap`].
///
/// ```
/// let heap = gc_core::HeapBuilder::new().max_space_bytes(256 << 20).build().unwrap();
/// let p = heap.alloc(gc_core::ObjectKind::Normal, 64, 8).unwrap();
/// assert!(heap.find_object(p).is_some());
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct HeapBuilder {
    options: Options,
}

impl HeapBuilder {
    /// Defaults (no environment variables applied).
    pub fn new() -> HeapBuilder {
        HeapBuilder::default()
    }

    /// Start from these options.
    pub fn options_from(mut self, options: Options) -> Self {
        self.options = options;
        self
    }

    /// Apply the `DUNEGC_*` environment variables.
    pub fn from_env(mut self) -> Result<HeapBuilder, GcError> {
        self.options = self.options.with_env()?;
        Ok(self)
    }

    /// Allocation before the first collection.
    pub fn initial_heap_bytes(mut self, n: usize) -> Self {
        self.options.initial_heap_bytes = n;
        self
    }

    /// Address space reserved per space.
    pub fn max_space_bytes(mut self, n: usize) -> Self {
        self.options.max_space_bytes = n;
        self
    }

    /// Hard limit on the heap's size (bytes of pages in spans, all spaces together; 0 =
    /// none). An allocation that would pass it, even after a collection, fails with
    /// [`GcError::OutOfMemory`]; [`Heap::set_max_heap_bytes`] changes it later.
    pub fn max_heap_bytes(mut self, n: usize) -> Self {
        self.options.max_heap_bytes = n;
        self
    }

    /// Grow the heap only when a collection could not make room (bdwgc's
    /// `GC_dont_expand`; see [`Options::dont_expand`]). [`Heap::set_dont_expand`] changes
    /// it later.
    pub fn dont_expand(mut self, yes: bool) -> Self {
        self.options.dont_expand = yes;
        self
    }

    /// Grow the heap lean: collect before taking fresh pages once `2 × live / divisor`
    /// bytes were allocated since the last collection (see [`Options::lean_growth`]).
    pub fn lean_growth(mut self, yes: bool) -> Self {
        self.options.lean_growth = yes;
        self
    }

    /// Use the free pages the heap has before a budget-triggered collection (bdwgc's
    /// `GC_use_entire_heap`; see [`Options::use_entire_heap`]).
    /// [`Heap::set_use_entire_heap`] changes it later.
    pub fn use_entire_heap(mut self, yes: bool) -> Self {
        self.options.use_entire_heap = yes;
        self
    }

    /// Collect rather than grow when many finalizers were registered for the bytes
    /// allocated (bdwgc's `GC_allocd_bytes_per_finalizer`; 0 = off; see
    /// [`Options::allocd_bytes_per_finalizer`]). [`Heap::set_allocd_bytes_per_finalizer`]
    /// changes it later.
    pub fn allocd_bytes_per_finalizer(mut self, n: usize) -> Self {
        self.options.allocd_bytes_per_finalizer = n;
        self
    }

    /// bdwgc's free-space divisor.
    pub fn free_space_divisor(mut self, d: usize) -> Self {
        self.options.free_space_divisor = d.max(1);
        self
    }

    /// Incremental marking with the chosen dirty tracker (`Exactly(None)` turns it off).
    pub fn incremental(mut self, dirty: BackendChoice) -> Self {
        self.options.incremental = dirty != BackendChoice::Exactly(Backend::None);
        self.options.dirty = dirty;
        self
    }

    /// Reclaim unreachable global-allocator memory (default true).
    pub fn malloc_collectable(mut self, yes: bool) -> Self {
        self.options.malloc_collectable = yes;
        self
    }

    /// Least bytes scanned per incremental mark step (small values make cycles long,
    /// which tests use to interleave marking with mutation).
    pub fn mark_step_bytes(mut self, n: usize) -> Self {
        self.options.mark_step_bytes = n.max(8);
        self
    }

    /// Bytes scanned per byte allocated in incremental mark steps (0: only the minimum
    /// step, so cycles last as long as possible).
    pub fn mark_rate(mut self, r: usize) -> Self {
        self.options.mark_rate = r;
        self
    }

    /// Marker threads for stop-the-world marking, the collecting thread included (clamped
    /// to 1..=64). Unset (or 0): `DUNEGC_MARKERS`, else the number of CPUs.
    pub fn markers(mut self, n: usize) -> Self {
        self.options.markers = n;
        self
    }

    /// Mostly-concurrent incremental marking (default on): incremental cycles trace on
    /// the marker threads while the program runs, when the heap has helper markers.
    /// Off: the allocating thread takes bounded mark steps instead.
    pub fn concurrent_marking(mut self, yes: bool) -> Self {
        self.options.concurrent_marking = yes;
        self
    }

    /// Allocate black during incremental cycles (default on): objects allocated while a
    /// cycle marks are marked as they are claimed; off, they start white.
    pub fn allocate_black(mut self, yes: bool) -> Self {
        self.options.allocate_black = yes;
        self
    }

    /// Pre-cleaning rounds of a concurrent cycle (default 1, at most 8): each takes the
    /// pages dirtied so far in a short pause, re-arms, and lets the markers rescan them
    /// while the program runs, so the finish rescans less.
    pub fn precleans(mut self, n: u32) -> Self {
        self.options.precleans = n.min(8);
        self
    }

    /// Print statistics when the program asks for a report.
    pub fn print_stats(mut self, yes: bool) -> Self {
        self.options.print_stats = yes;
        self
    }

    /// The options so far.
    pub fn options(&self) -> Options {
        self.options
    }

    /// Build the heap. A named dirty backend that is unsupported here is an error (never
    /// a silent fallback); `Auto` picks the best supported one and says which in stats.
    pub fn build(self) -> Result<&'static Heap, GcError> {
        self.options.check()?;
        let heap = Heap::create(self.options)?;
        heap.open_tracker_now()?;
        Ok(heap)
    }

    /// Build without opening the tracker and without allocating from the global
    /// allocator (for the global heap, created inside the first allocation).
    pub(crate) fn build_for_global(self) -> Result<&'static Heap, GcError> {
        let heap = Heap::create(self.options)?;
        if cfg!(feature = "dune")
            && self.options.incremental
            && self.options.dirty == BackendChoice::Exactly(Backend::Dune)
        {
            heap.enter_dune_pending
                .store(true, std::sync::atomic::Ordering::Release);
        }
        Ok(heap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("64M"), Some(64 << 20));
        assert_eq!(parse_size("2g"), Some(2 << 30));
        assert_eq!(parse_size("12Q"), None);
        assert_eq!(parse_size(""), None);
    }
}
