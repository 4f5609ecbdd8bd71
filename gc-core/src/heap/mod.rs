//! The heap: one reservation split into spaces, spans of size-classed objects and large
//! objects, side bitmaps for alloc and mark bits, and per-thread allocation caches.
//!
//! - [`size_class`] — segregated size classes.
//! - [`span`] — spans, the page map, per-space page allocation.
//! - [`bitmap`] — side bitmaps (alloc bits, mark bits).
//! - [`kind`] — object kinds and spaces.
//! - [`cache`] — per-thread allocation caches (the lock-free fast path).
//! - [`alloc`] — allocation slow paths and explicit free.
//! - [`described`] — allocation of objects scanned by a registered descriptor.
//! - [`growth`] — grow the heap, or collect first (bdwgc's `GC_dont_expand` and kin).

pub mod alloc;
pub mod bitmap;
pub mod cache;
pub mod described;
pub mod growth;
pub mod kind;
pub mod size_class;
pub mod span;

use crate::address::{Page, PageRange};
use crate::collector::state::GcState;
use crate::error::GcError;
use crate::options::Options;
use crate::util::mmap::{round_up_to_page as round_up, Mapping, LOG_BYTES_IN_PAGE};
use bitmap::SideBitmap;
use kind::{ObjectKind, SpaceId, N_KINDS, N_SPACES};
use size_class::{SizeClass, N_CLASSES};
use span::{PageSpace, PageTable, SpanState};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

/// Alignment of the reservation, and the largest alignment a request may ask for.
pub const MAX_ALIGN_BYTES: usize = 2 << 20;

/// An object found by a heap lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    /// First byte of the object.
    pub base: usize,
    /// Usable bytes (the size class, or the large object's rounded length).
    pub len_bytes: usize,
    /// Its kind.
    pub kind: ObjectKind,
    /// First page index of its span.
    pub span: usize,
}

/// State changed only under the heap lock.
pub(crate) struct HeapInner {
    /// Page allocators, one per space.
    pub spaces: [PageSpace; N_SPACES],
    /// Spans with free slots not owned by any thread, per kind and class (page index + 1).
    pub partial: [[u32; N_CLASSES]; N_KINDS],
    /// Spans of a registered scan class with free slots, per scan class and size class
    /// (see [`described`]); index 0 is unused.
    pub scan_partial: [[u32; N_CLASSES]; described::MAX_SCAN_CLASSES],
    /// Registered thread caches (a list through `ThreadCache::next`).
    pub caches: *mut cache::ThreadCache,
    /// Bytes allocated minus bytes freed since the last collection, as flushed.
    pub bytes_since_gc: isize,
    /// Collector state: policy, mark stack, tracker, finalizers, statistics.
    pub gc: GcState,
    /// What the growth decision remembers between allocations.
    pub growth: growth::GrowthTrack,
}

// SAFETY: the raw cache pointers are only dereferenced under the heap lock (or by their
// owning thread for its own fast path), so moving HeapInner between threads is fine.
unsafe impl Send for HeapInner {}

/// A garbage-collected heap. Heaps live for the rest of the process (`&'static Heap`):
/// threads keep caches that point at them.
pub struct Heap {
    pub(crate) id: usize,
    pub(crate) base: usize,
    pub(crate) end: usize,
    pub(crate) space_pages: usize,
    _reservation: Mapping,
    pub(crate) pages: PageTable,
    pub(crate) marks: SideBitmap,
    pub(crate) allocs: SideBitmap,
    pub(crate) inner: Mutex<HeapInner>,
    pub(crate) options: Options,
    /// Set when finalizers are queued and not yet run.
    pub(crate) finalizers_pending: std::sync::atomic::AtomicBool,
    /// Wakes the finalizer thread.
    pub(crate) finalizer_wakeup: std::sync::Condvar,
    /// The mutex the finalizer thread waits with.
    pub(crate) finalizer_lock: Mutex<()>,
    /// `DUNEGC_DIRTY=dune` on the global heap: enter Dune process-wide at the first
    /// allocation slow path (see `Heap::enter_dune_for_env`).
    pub(crate) enter_dune_pending: std::sync::atomic::AtomicBool,
    /// The marker threads (parallel marking while the world is stopped).
    pub(crate) markers: crate::mark::pool::MarkerPool,
    /// An incremental cycle is marking: new objects are allocated black (their mark bit
    /// set as they are claimed), so the finish need not trace them (see `crate::collector`).
    pub(crate) allocate_black: std::sync::atomic::AtomicBool,
    /// Hard limit on [`Heap::heap_bytes`] (0 = none), see [`Heap::set_max_heap_bytes`].
    pub(crate) max_heap_bytes: AtomicUsize,
    /// The growth knobs set on the heap itself ([`growth`]).
    pub(crate) growth: growth::HeapKnobs,
    /// The number of the latest sweep (see `crate::collector`): spans swept in it carry
    /// this number in [`span::Span::swept`].
    pub(crate) sweep_epoch: std::sync::atomic::AtomicU32,
    /// A sweep is under way with the world running (the heap lock held by the
    /// collector): in spans not yet swept in `sweep_epoch`, an object the collection
    /// found dead (collectable and unmarked) still has its alloc bit. [`Heap::find_object`]
    /// treats it as free already, so lookups see the heap as it is after the sweep.
    pub(crate) sweep_pending: std::sync::atomic::AtomicBool,
}

static NEXT_HEAP_ID: AtomicUsize = AtomicUsize::new(1);

thread_local! {
    /// The id of the heap whose lock this thread holds (0: none).
    static LOCK_HELD: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// The heap lock, held. Knows it is held by this thread, so that a reentrant allocation
/// or free fails cleanly instead of deadlocking.
pub(crate) struct HeapGuard<'a> {
    guard: MutexGuard<'a, HeapInner>,
}

impl std::ops::Deref for HeapGuard<'_> {
    type Target = HeapInner;
    fn deref(&self) -> &HeapInner {
        &self.guard
    }
}

impl std::ops::DerefMut for HeapGuard<'_> {
    fn deref_mut(&mut self) -> &mut HeapInner {
        &mut self.guard
    }
}

impl Drop for HeapGuard<'_> {
    fn drop(&mut self) {
        // Cleared before the mutex field unlocks.
        LOCK_HELD.with(|h| h.set(0));
    }
}

impl std::fmt::Debug for Heap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Heap")
            .field("id", &self.id)
            .field("base", &format_args!("{:#x}", self.base))
            .finish()
    }
}

impl Heap {
    /// Reserve address space and build a heap with `options`. The heap is leaked: it
    /// lives until the process exits. Allocates nothing from the global allocator, so it
    /// can run inside `GlobalAlloc::alloc`.
    pub(crate) fn create(mut options: Options) -> Result<&'static Heap, GcError> {
        options.markers = options
            .resolved_markers()
            .map_err(|(key, value, expected)| GcError::Config {
                key,
                value: value.to_owned(),
                expected,
            })?;
        let space_bytes = options.max_space_bytes.next_multiple_of(MAX_ALIGN_BYTES);
        let total = space_bytes * N_SPACES;
        let os = |op| move |source| GcError::Os { op, source };
        let reservation =
            Mapping::with_alignment(total, MAX_ALIGN_BYTES).map_err(os("reserving the heap"))?;
        let base = reservation.start();
        if options.pages_executable {
            crate::util::mmap::make_executable(base, total)
                .map_err(os("making the heap executable"))?;
        }
        let n_pages = total >> LOG_BYTES_IN_PAGE;
        let space_pages = space_bytes >> LOG_BYTES_IN_PAGE;
        let pages = PageTable::new(base, n_pages).map_err(os("mapping the page table"))?;
        let marks = SideBitmap::new(base, total).map_err(os("mapping the mark bitmap"))?;
        let allocs = SideBitmap::new(base, total).map_err(os("mapping the alloc bitmap"))?;
        let gc = GcState::new(&options)?;
        let inner = HeapInner {
            spaces: std::array::from_fn(|i| PageSpace::new(i * space_pages, space_pages)),
            partial: [[0; N_CLASSES]; N_KINDS],
            scan_partial: [[0; N_CLASSES]; described::MAX_SCAN_CLASSES],
            caches: std::ptr::null_mut(),
            bytes_since_gc: 0,
            gc,
            growth: growth::GrowthTrack::default(),
        };
        let heap = Heap {
            id: NEXT_HEAP_ID.fetch_add(1, Ordering::Relaxed),
            base,
            end: base + total,
            space_pages,
            _reservation: reservation,
            pages,
            marks,
            allocs,
            inner: Mutex::new(inner),
            options,
            finalizers_pending: std::sync::atomic::AtomicBool::new(false),
            finalizer_wakeup: std::sync::Condvar::new(),
            finalizer_lock: Mutex::new(()),
            enter_dune_pending: std::sync::atomic::AtomicBool::new(false),
            markers: crate::mark::pool::MarkerPool::new(options.markers),
            allocate_black: std::sync::atomic::AtomicBool::new(false),
            max_heap_bytes: AtomicUsize::new(options.max_heap_bytes),
            growth: growth::HeapKnobs::new(&options),
            sweep_epoch: std::sync::atomic::AtomicU32::new(0),
            sweep_pending: std::sync::atomic::AtomicBool::new(false),
        };
        // The Heap itself lives in its own mapping, never in the collected heap.
        let home =
            Mapping::new(std::mem::size_of::<Heap>()).map_err(os("mapping the heap descriptor"))?;
        let ptr = home.start() as *mut Heap;
        // SAFETY: the mapping is fresh, large enough and page-aligned (so aligned for
        // Heap); we move the Heap in and leak the mapping, giving a 'static reference.
        unsafe { ptr.write(heap) };
        std::mem::forget(home);
        // SAFETY: just initialised, never freed.
        Ok(unsafe { &*ptr })
    }

    /// The options this heap was built with.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// Lock the heap's shared state (poisoning is ignored: the state stays consistent
    /// because no code panics while holding it except on bugs).
    pub(crate) fn lock(&self) -> HeapGuard<'_> {
        let guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        LOCK_HELD.with(|h| h.set(self.id));
        HeapGuard { guard }
    }

    /// True if the calling thread holds this heap's lock: an allocation or free reached
    /// from inside the collector or an allocation slow path (the lock is not reentrant).
    #[inline]
    pub(crate) fn lock_held_here(&self) -> bool {
        LOCK_HELD.with(|h| h.get()) == self.id
    }

    /// True if `addr` lies in this heap's reservation.
    #[inline]
    pub fn contains(&self, addr: usize) -> bool {
        addr >= self.base && addr < self.end
    }

    /// The space an address falls in (which must be inside the reservation).
    #[inline]
    pub(crate) fn space_of_page(&self, page_index: usize) -> usize {
        page_index / self.space_pages
    }

    /// The allocated object containing `addr` (interior pointers included), if any.
    /// While a sweep finishes with the world running, objects it is about to free are
    /// not allocated any more (see `sweep_pending`).
    #[inline]
    pub fn find_object(&self, addr: usize) -> Option<ObjectInfo> {
        let info = self.object_at(addr)?;
        if self.sweep_pending.load(Ordering::Acquire)
            && self.pages.span(info.span).swept.load(Ordering::Acquire)
                != self.sweep_epoch.load(Ordering::Relaxed)
            && self.sweeps_kind(info.kind)
            && !self.marks.get(info.base)
        {
            // Dead at the last collection; its span's sweep has not reached it yet.
            return None;
        }
        Some(info)
    }

    /// The object containing `addr` whose alloc bit is set, if any: [`Heap::find_object`]
    /// for the marker, which never runs while a sweep is pending (marking and sweeping
    /// both hold the heap lock, or run in one pause), without the check for that.
    #[inline]
    pub(crate) fn object_at(&self, addr: usize) -> Option<ObjectInfo> {
        if !self.contains(addr) {
            return None;
        }
        self.object_in_reservation(addr)
    }

    /// [`Heap::object_at`] for an address the caller checked lies in the reservation.
    #[inline(always)]
    pub(crate) fn object_in_reservation(&self, addr: usize) -> Option<ObjectInfo> {
        debug_assert!(self.contains(addr));
        let page = self.pages.page_index(addr);
        let (start, span, state) = self.pages.live_span_of(page)?;
        let span_base = self.pages.page_addr(start);
        let obj_bytes = span.obj_bytes.load(Ordering::Relaxed) as usize;
        let base = match state {
            SpanState::Small => {
                let recip = span.recip.load(Ordering::Relaxed) as u64;
                let index = (((addr - span_base) as u64 * recip) >> 32) as usize;
                if index >= span.n_objects.load(Ordering::Relaxed) as usize {
                    return None;
                }
                span_base + index * obj_bytes
            }
            SpanState::Large => {
                if addr >= span_base + obj_bytes {
                    return None;
                }
                span_base
            }
            SpanState::Free => return None,
        };
        if !self.allocs.get(base) {
            return None;
        }
        Some(ObjectInfo {
            base,
            len_bytes: obj_bytes,
            kind: ObjectKind::from_u8(span.kind.load(Ordering::Relaxed)),
            span: start,
        })
    }

    /// Whether the sweep frees unmarked objects of `kind` (uncollectable objects, and
    /// malloc'd ones unless `malloc_collectable`, are never swept).
    pub(crate) fn sweeps_kind(&self, kind: ObjectKind) -> bool {
        match kind {
            ObjectKind::Uncollectable => false,
            ObjectKind::Malloc => self.options.malloc_collectable,
            _ => true,
        }
    }

    /// The used prefix of a space as a page range (what a tracker must cover).
    pub(crate) fn space_range(&self, inner: &HeapInner, space: SpaceId) -> PageRange {
        let s = &inner.spaces[space as usize];
        PageRange::new(
            Page::from_aligned(self.pages.page_addr(s.first)),
            s.high_water,
        )
    }

    /// Bytes of pages currently holding objects.
    pub(crate) fn heap_bytes(inner: &HeapInner) -> usize {
        inner.spaces.iter().map(|s| s.in_use_bytes()).sum()
    }

    /// Set the hard limit on the heap's size (bytes of pages in spans, all spaces
    /// together; 0 = none), bdwgc's `GC_set_max_heap_size`. A limit below the current size
    /// takes effect as the heap shrinks: only growth is refused.
    pub fn set_max_heap_bytes(&self, n: usize) {
        self.max_heap_bytes.store(n, Ordering::Relaxed);
    }

    /// The hard limit on the heap's size (0 = none).
    pub fn max_heap_bytes(&self) -> usize {
        self.max_heap_bytes.load(Ordering::Relaxed)
    }

    /// Take `n` pages (aligned to `align_pages`) from `space`, unless that would pass the
    /// hard heap limit, or needs fresh pages the growth decision wants a collection for
    /// first ([`growth`]; the caller collects and retries).
    pub(crate) fn alloc_pages(
        &self,
        inner: &mut HeapInner,
        space: usize,
        n: usize,
        align_pages: usize,
    ) -> Option<span::PageRun> {
        let limit = self.max_heap_bytes();
        if limit != 0 && Self::heap_bytes(inner) + (n << LOG_BYTES_IN_PAGE) > limit {
            return None;
        }
        if self.growth_vetoed(inner, space, n, align_pages) {
            return None;
        }
        let run = inner.spaces[space].alloc(&self.pages, n, align_pages);
        if run.is_some() {
            crate::collector::hooks::report_heap_size(Self::heap_bytes(inner));
        }
        run
    }

    /// The error for a request of `requested_bytes` that found no pages: the hard limit's
    /// if one is set and was in the way, else out of memory (the space is full).
    pub(crate) fn no_pages_error(&self, inner: &HeapInner, requested_bytes: usize) -> GcError {
        let limit = self.max_heap_bytes();
        let heap_bytes = Self::heap_bytes(inner);
        if limit != 0 && heap_bytes + round_up(requested_bytes) > limit {
            GcError::HeapLimit {
                requested_bytes,
                limit_bytes: limit,
                heap_bytes,
            }
        } else {
            GcError::OutOfMemory { requested_bytes }
        }
    }

    /// The size class and kind of a small span (for sweeping and caches).
    pub(crate) fn span_class(&self, start: usize) -> SizeClass {
        SizeClass(self.pages.span(start).class.load(Ordering::Relaxed))
    }
}
