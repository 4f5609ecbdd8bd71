//! The growth decision: when an allocation needs pages beyond a space's high water mark
//! (fresh pages, [`super::span::PageSpace::alloc`] bumping the untouched end), whether
//! to grow the heap or to collect first and retry; and whether a budget-triggered
//! collection waits while free pages remain. bdwgc's `GC_collect_or_expand` and
//! `GC_allochblk` knobs:
//!
//! - `dont_expand`: collect rather than grow while anything was allocated since the last
//!   collection. After that collection nothing has been, so the retry grows: the heap
//!   grows only when a collection could not make room (bdwgc's "forced" expansion).
//! - `allocd_bytes_per_finalizer`: collect rather than grow when the finalizers
//!   registered since the last collection this decision made, times this value, exceed
//!   the bytes allocated since the last collection, and some finalizer has been queued
//!   before (bdwgc asks for bytes finalized in the last collections; 0 = off).
//! - `use_entire_heap`: a collection the allocation budget calls for waits while the
//!   allocation fits in free pages (or a partial span) the heap already has.
//!
//! None applies in incremental mode or while automatic collection is off, as in bdwgc.
//! The hard limit (`Heap::max_heap_bytes`) is checked before any of this and still fails
//! the allocation with its own error.

use super::{Heap, HeapGuard, HeapInner};
use crate::collector::hooks;
use crate::error::GcError;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// The knobs in force for one decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct GrowthKnobs {
    /// bdwgc's `GC_dont_expand`.
    pub dont_expand: bool,
    /// bdwgc's `GC_use_entire_heap`.
    pub use_entire_heap: bool,
    /// bdwgc's `GC_allocd_bytes_per_finalizer` (0 = off).
    pub allocd_bytes_per_finalizer: usize,
}

/// What the decision looks at besides the knobs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GrowthState {
    /// Bytes allocated (minus freed) since the last collection.
    pub bytes_since_gc: isize,
    /// Finalizers registered since the last collection this decision asked for.
    pub finalizers_since: u64,
    /// Some finalizer has been queued by a collection so far.
    pub finalized_before: bool,
    /// A collection would run (automatic collection on, the collector not disabled).
    pub collection_possible: bool,
    /// Incremental mode is on.
    pub incremental: bool,
}

/// The outcome of [`decide`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Growth {
    /// Take fresh pages.
    Grow,
    /// Fail this attempt: the caller collects and retries (and may grow then).
    CollectFirst,
}

/// Grow, or collect first, for an allocation that needs fresh pages.
pub fn decide(k: &GrowthKnobs, s: &GrowthState) -> Growth {
    if s.incremental || !s.collection_possible {
        return Growth::Grow;
    }
    if k.dont_expand && s.bytes_since_gc > 0 {
        return Growth::CollectFirst;
    }
    let allocated = s.bytes_since_gc.max(0) as u128;
    if s.finalized_before
        && s.finalizers_since > 0
        && s.finalizers_since as u128 * k.allocd_bytes_per_finalizer as u128 > allocated
    {
        return Growth::CollectFirst;
    }
    Growth::Grow
}

/// Whether a collection the budget calls for waits: `use_entire_heap`, not incremental,
/// and the allocation fits in what the heap has (`room`).
pub fn defer_collection(k: &GrowthKnobs, incremental: bool, room: bool) -> bool {
    k.use_entire_heap && !incremental && room
}

/// The heap's own knobs (from its options, changed by the `Heap::set_*` setters).
#[derive(Debug)]
pub(crate) struct HeapKnobs {
    dont_expand: AtomicBool,
    use_entire_heap: AtomicBool,
    allocd_bytes_per_finalizer: AtomicUsize,
}

impl HeapKnobs {
    /// The knobs of `options`.
    pub(crate) fn new(options: &crate::options::Options) -> HeapKnobs {
        HeapKnobs {
            dont_expand: AtomicBool::new(options.dont_expand),
            use_entire_heap: AtomicBool::new(options.use_entire_heap),
            allocd_bytes_per_finalizer: AtomicUsize::new(options.allocd_bytes_per_finalizer),
        }
    }
}

/// Decision state kept under the heap lock.
#[derive(Debug, Default)]
pub(crate) struct GrowthTrack {
    /// `Finalizers::registrations` when this decision last asked for a collection
    /// (bdwgc's `last_fo_entries`).
    registrations_at_collect: u64,
}

impl Heap {
    /// The knobs in force: the policy hooks' (the C ABI's variables) over the heap's.
    pub(crate) fn growth_knobs(&self) -> GrowthKnobs {
        let p = hooks::policy_hooks().map(|h| (h.policy)());
        let k = &self.growth;
        GrowthKnobs {
            dont_expand: p
                .and_then(|p| p.dont_expand)
                .unwrap_or_else(|| k.dont_expand.load(Ordering::Relaxed)),
            use_entire_heap: p
                .and_then(|p| p.use_entire_heap)
                .unwrap_or_else(|| k.use_entire_heap.load(Ordering::Relaxed)),
            allocd_bytes_per_finalizer: p
                .and_then(|p| p.allocd_bytes_per_finalizer)
                .unwrap_or_else(|| k.allocd_bytes_per_finalizer.load(Ordering::Relaxed)),
        }
    }

    /// Grow the heap only when a collection could not make room (bdwgc's
    /// `GC_set_dont_expand`); not in incremental mode.
    pub fn set_dont_expand(&self, yes: bool) {
        self.growth.dont_expand.store(yes, Ordering::Relaxed);
    }

    /// Put off budget-triggered collections while the allocation fits in free pages the
    /// heap has (bdwgc's `GC_use_entire_heap`); not in incremental mode.
    pub fn set_use_entire_heap(&self, yes: bool) {
        self.growth.use_entire_heap.store(yes, Ordering::Relaxed);
    }

    /// bdwgc's `GC_set_allocd_bytes_per_finalizer` (0 = off): see [`decide`].
    pub fn set_allocd_bytes_per_finalizer(&self, n: usize) {
        self.growth
            .allocd_bytes_per_finalizer
            .store(n, Ordering::Relaxed);
    }

    /// True if growing `space` by `n` fresh pages must wait for a collection (heap lock
    /// held): the caller fails the attempt and collects and retries. Records the
    /// finalizer registrations seen, as bdwgc does when it collects here.
    pub(crate) fn growth_vetoed(&self, inner: &mut HeapInner) -> bool {
        let k = self.growth_knobs();
        if !k.dont_expand && k.allocd_bytes_per_finalizer == 0 {
            return false;
        }
        let automatic = hooks::policy_hooks().is_none_or(|h| (h.policy)().automatic);
        let registrations = inner.gc.finalizers.registrations;
        let s = GrowthState {
            bytes_since_gc: inner.bytes_since_gc,
            finalizers_since: registrations - inner.growth.registrations_at_collect,
            finalized_before: inner.gc.stats.finalizers_queued > 0,
            collection_possible: automatic && inner.gc.disabled == 0,
            incremental: inner.gc.incremental_mode(),
        };
        if decide(&k, &s) == Growth::CollectFirst {
            inner.growth.registrations_at_collect = registrations;
            return true;
        }
        false
    }

    /// The allocation slow paths' collector poll, unless `use_entire_heap` puts a
    /// budget-triggered collection off: `room` says the allocation fits in what the
    /// heap has (a free run of `space` that `n_pages` aligned to `align_pages` would take
    /// is looked for here).
    pub(crate) fn poll_unless_room(
        &'static self,
        g: HeapGuard<'static>,
        space: usize,
        n_pages: usize,
        align_pages: usize,
        room: bool,
    ) -> Result<HeapGuard<'static>, GcError> {
        let k = self.growth_knobs();
        if k.use_entire_heap {
            let room = room || g.spaces[space].fits_in_free_run(&self.pages, n_pages, align_pages);
            if defer_collection(&k, g.gc.incremental_mode(), room) {
                return Ok(g);
            }
        }
        self.poll_collector(g)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUIET: GrowthState = GrowthState {
        bytes_since_gc: 0,
        finalizers_since: 0,
        finalized_before: false,
        collection_possible: true,
        incremental: false,
    };

    #[test]
    fn knobs_off_always_grow() {
        let k = GrowthKnobs::default();
        for bytes in [0, 1, 1 << 30] {
            let s = GrowthState {
                bytes_since_gc: bytes,
                finalizers_since: 1 << 20,
                finalized_before: true,
                ..QUIET
            };
            assert_eq!(decide(&k, &s), Growth::Grow);
        }
        assert!(!defer_collection(&k, false, true));
    }

    #[test]
    fn dont_expand_collects_first_then_grows_when_forced() {
        let k = GrowthKnobs {
            dont_expand: true,
            ..GrowthKnobs::default()
        };
        let busy = GrowthState {
            bytes_since_gc: 4096,
            ..QUIET
        };
        assert_eq!(decide(&k, &busy), Growth::CollectFirst);
        // Right after the collection nothing was allocated: forced, grow.
        assert_eq!(decide(&k, &QUIET), Growth::Grow);
        // Not in incremental mode, nor with collection off (bdwgc: !GC_incremental,
        // !GC_dont_gc).
        let inc = GrowthState {
            incremental: true,
            ..busy
        };
        assert_eq!(decide(&k, &inc), Growth::Grow);
        let off = GrowthState {
            collection_possible: false,
            ..busy
        };
        assert_eq!(decide(&k, &off), Growth::Grow);
    }

    #[test]
    fn many_finalizers_for_the_bytes_allocated_collect_first() {
        let k = GrowthKnobs {
            allocd_bytes_per_finalizer: 10_000,
            ..GrowthKnobs::default()
        };
        let s = GrowthState {
            bytes_since_gc: 1 << 20,
            finalizers_since: 200,
            finalized_before: true,
            ..QUIET
        };
        // 200 × 10000 = 2 MB > 1 MiB allocated.
        assert_eq!(decide(&k, &s), Growth::CollectFirst);
        // 100 × 10000 = 1 MB < 1 MiB.
        let fewer = GrowthState {
            finalizers_since: 100,
            ..s
        };
        assert_eq!(decide(&k, &fewer), Growth::Grow);
        // Nothing finalized yet, or the knob at 0, or incremental: grow.
        let never = GrowthState {
            finalized_before: false,
            ..s
        };
        assert_eq!(decide(&k, &never), Growth::Grow);
        assert_eq!(decide(&GrowthKnobs::default(), &s), Growth::Grow);
        let inc = GrowthState {
            incremental: true,
            ..s
        };
        assert_eq!(decide(&k, &inc), Growth::Grow);
    }

    #[test]
    fn use_entire_heap_defers_only_with_room_outside_incremental_mode() {
        let k = GrowthKnobs {
            use_entire_heap: true,
            ..GrowthKnobs::default()
        };
        assert!(defer_collection(&k, false, true));
        assert!(!defer_collection(&k, false, false));
        assert!(!defer_collection(&k, true, true));
    }
}
