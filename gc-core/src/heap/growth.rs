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
//! - `lean_growth` (gc-core's own): collect rather than grow once `2 × live / divisor`
//!   bytes were allocated since the last collection (bdwgc's `min_bytes_allocd`, the rule
//!   of its `GC_collect_or_expand`). The budget (`6 × live / divisor`) still lets the
//!   program use the pages the heap has: growth is lean, reuse is not.
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
    /// Allocation since the last collection after which fresh pages wait for a
    /// collection (`Heap::grow_after_bytes`).
    pub grow_after_bytes: isize,
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
    if s.bytes_since_gc >= s.grow_after_bytes {
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

    /// True if taking `n` pages aligned to `align_pages` from `space` needs fresh pages
    /// and that must wait for a collection (heap lock held): the caller fails the attempt
    /// and collects and retries. Records the finalizer registrations seen, as bdwgc does
    /// when it collects here. Looks at the free runs only when the knobs say collect.
    pub(crate) fn growth_vetoed(
        &self,
        inner: &mut HeapInner,
        space: usize,
        n: usize,
        align_pages: usize,
    ) -> bool {
        let k = self.growth_knobs();
        let grow_after = if self.options.lean_growth {
            self.grow_after_bytes(inner.gc.stats.live_bytes) as isize
        } else {
            isize::MAX
        };
        if !k.dont_expand && k.allocd_bytes_per_finalizer == 0 && inner.bytes_since_gc < grow_after
        {
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
            grow_after_bytes: grow_after,
        };
        if decide(&k, &s) == Growth::CollectFirst
            && !inner.spaces[space].fits_in_free_run(&self.pages, n, align_pages)
        {
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
        grow_after_bytes: isize::MAX,
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

    use crate::{GcError, HeapBuilder, ObjectKind};

    /// Pages ever handed out in the normal space (its high water mark).
    fn high_water(heap: &Heap) -> usize {
        heap.lock().spaces[ObjectKind::Normal.space() as usize].high_water
    }

    /// Allocate `total` bytes of 256-byte garbage; the collections it took.
    fn churn(heap: &'static Heap, total: usize) -> u64 {
        let gc0 = heap.gc_count();
        for _ in 0..total / 256 {
            heap.alloc(ObjectKind::Normal, 256, 8).unwrap();
        }
        heap.gc_count() - gc0
    }

    fn heap(dont_expand: bool, use_entire_heap: bool) -> &'static Heap {
        HeapBuilder::new()
            .max_space_bytes(64 << 20)
            .initial_heap_bytes(1 << 20)
            .markers(1)
            .dont_expand(dont_expand)
            .use_entire_heap(use_entire_heap)
            .build()
            .unwrap()
    }

    #[test]
    fn dont_expand_keeps_a_churning_heap_small_and_still_grows_for_live_data() {
        let (on, off) = (heap(true, false), heap(false, false));
        let gcs_on = churn(on, 8 << 20);
        let gcs_off = churn(off, 8 << 20);
        let (hw_on, hw_off) = (high_water(on), high_water(off));
        // Off: a collection per MiB allocated, the heap grows to about that. On: a
        // collection whenever fresh pages are needed, the heap stays at a few spans.
        assert!(hw_off >= 128, "off: {hw_off} pages");
        assert!(4 * hw_on < hw_off, "on: {hw_on} pages, off: {hw_off}");
        assert!(
            gcs_on > 2 * gcs_off,
            "on: {gcs_on} collections, off: {gcs_off}"
        );
        // Forced: uncollectable data that needs more pages gets them, one collection
        // for each growth.
        let gc0 = on.gc_count();
        let live: Vec<usize> = (0..32)
            .map(|_| on.alloc(ObjectKind::Uncollectable, 64 << 10, 8).unwrap())
            .collect();
        assert!(on.heap_size() >= 32 * (64 << 10));
        assert!(on.gc_count() > gc0);
        // The hard limit still wins, with its own error.
        on.set_max_heap_bytes(on.heap_size());
        assert!(matches!(
            on.alloc(ObjectKind::Uncollectable, 1 << 20, 8),
            Err(GcError::HeapLimit { .. })
        ));
        on.set_max_heap_bytes(0);
        for p in live {
            on.free(p).unwrap();
        }
        // Turned off at run time: the same churn grows the heap.
        on.set_dont_expand(false);
        on.collect().unwrap();
        let hw = high_water(on);
        churn(on, 8 << 20);
        assert!(high_water(on) >= hw.max(128), "{} pages", high_water(on));
    }

    #[test]
    fn use_entire_heap_collects_only_once_the_free_pages_are_used() {
        let (on, off) = (heap(false, true), heap(false, false));
        for h in [on, off] {
            // 8 MiB of pages (no collection meanwhile), then garbage.
            h.disable();
            for _ in 0..32 {
                h.alloc(ObjectKind::Normal, 256 << 10, 8).unwrap();
            }
            h.enable();
            h.collect().unwrap();
            let g = h.lock();
            let s = &g.spaces[ObjectKind::Normal.space() as usize];
            assert!(
                s.high_water - s.in_use >= 1024,
                "{} free",
                s.high_water - s.in_use
            );
        }
        // 3 MiB of churn: more than a budget, all of it in the free pages.
        let (gcs_on, gcs_off) = (churn(on, 3 << 20), churn(off, 3 << 20));
        assert_eq!(gcs_on, 0);
        assert!(gcs_off >= 1, "{gcs_off}");
        // Once the free pages are used, the budget collects again.
        assert!(churn(on, 32 << 20) >= 1);
    }

    #[test]
    fn lean_growth_waits_for_a_collection_once_two_thirds_of_live_were_allocated() {
        let k = GrowthKnobs::default();
        let s = GrowthState {
            grow_after_bytes: 1000,
            ..QUIET
        };
        for (bytes, want) in [
            (0, Growth::Grow),
            (999, Growth::Grow),
            (1000, Growth::CollectFirst),
        ] {
            let s = GrowthState {
                bytes_since_gc: bytes,
                ..s
            };
            assert_eq!(decide(&k, &s), want, "{bytes} bytes");
        }
        for quiet in [
            GrowthState {
                incremental: true,
                ..s
            },
            GrowthState {
                collection_possible: false,
                ..s
            },
        ] {
            let quiet = GrowthState {
                bytes_since_gc: 1 << 30,
                ..quiet
            };
            assert_eq!(decide(&k, &quiet), Growth::Grow);
        }
    }

    /// Build a chain of `n` 256-byte objects, each pointing at the one before, with 3
    /// bytes of garbage per live byte allocated in between; the chain's head, which
    /// the caller keeps on its stack.
    fn grow_chain(heap: &'static Heap, n: usize) -> usize {
        let mut head = 0usize;
        for i in 0..n {
            let o = heap.alloc(ObjectKind::Normal, 256, 8).unwrap();
            // SAFETY: a fresh 256-byte object; its first word holds the previous head.
            unsafe { (o as *mut usize).write(head) };
            // SAFETY: as above; the second word holds the index, checked below.
            unsafe { (o as *mut usize).add(1).write(i) };
            head = o;
            for _ in 0..3 {
                heap.alloc(ObjectKind::Normal, 256, 8).unwrap();
            }
        }
        std::hint::black_box(head)
    }

    #[test]
    fn lean_growth_keeps_a_growing_heap_smaller_and_loses_nothing() {
        let build = |lean| {
            HeapBuilder::new()
                .max_space_bytes(256 << 20)
                .initial_heap_bytes(1 << 20)
                .markers(1)
                .lean_growth(lean)
                .build()
                .unwrap()
        };
        let (lean, plain) = (build(true), build(false));
        const N: usize = 64 << 10; // 16 MiB live at the end
        let mut heads = [0usize; 2];
        for (h, head) in [lean, plain].into_iter().zip(heads.iter_mut()) {
            *head = grow_chain(h, N);
        }
        let (hw_lean, hw_plain) = (high_water(lean), high_water(plain));
        let (gcs_lean, gcs_plain) = (lean.gc_count(), plain.gc_count());
        // Plain: each collection allows 2 x live more before the next; lean: fresh pages
        // wait once 2/3 x live were allocated (measured: 5636 against 6660 pages).
        assert!(
            10 * hw_lean < 9 * hw_plain,
            "lean {hw_lean} pages, plain {hw_plain}"
        );
        assert!(
            gcs_lean > gcs_plain,
            "lean {gcs_lean} collections, plain {gcs_plain}"
        );
        for (h, head) in [lean, plain].into_iter().zip(heads) {
            h.collect().unwrap();
            let (mut p, mut left) = (head, N);
            while p != 0 {
                left -= 1;
                // SAFETY: a chain object kept alive through `head` on this stack.
                let (prev, i) = unsafe { (*(p as *const usize), *(p as *const usize).add(1)) };
                assert_eq!(i, left, "chain damaged");
                assert!(h.find_object(p).is_some());
                p = prev;
            }
            assert_eq!(left, 0);
        }
    }
}
