//! Control calls for the bdwgc-compatible C ABI (`gc-capi`) that need the heap lock held
//! across calls or gc-core's internals: the allocation lock taken and released by two
//! calls (`GC_alloc_lock`/`GC_alloc_unlock`, the fork handlers), the world stopped by the
//! program (`GC_stop_world_external`), starting an incremental cycle now, adjusting the
//! allocation count, walking the marked objects (`GC_enumerate_reachable_objects_inner`)
//! and the size classes (`GC_get_size_map_at`).

use crate::error::GcError;
use crate::heap::kind::{ObjectKind, N_SPACES};
use crate::heap::size_class::SizeClass;
use crate::heap::span::SpanState;
use crate::heap::{Heap, HeapGuard, HeapInner};
use crate::world::{self, StoppedWorld};
use std::cell::Cell;
use std::sync::atomic::Ordering;

thread_local! {
    /// The locked state of the heap whose lock this thread holds through
    /// [`Heap::with_lock_held`] or an [`ExternalLock`] (0: none).
    static LOCKED_INNER: Cell<usize> = const { Cell::new(0) };
}

/// Make `inner` (locked by this thread) reachable to [`Heap::for_each_marked_object`]
/// until the returned value is dropped.
pub(crate) struct LockedInner(usize);

impl LockedInner {
    pub(crate) fn publish(inner: &HeapInner) -> LockedInner {
        LockedInner(LOCKED_INNER.with(|l| l.replace(inner as *const HeapInner as usize)))
    }
}

impl Drop for LockedInner {
    fn drop(&mut self) {
        LOCKED_INNER.with(|l| l.set(self.0));
    }
}

/// The heap lock, held until this is dropped (by the thread that took it). While held
/// the holder's own allocations and frees fail cleanly (the lock is not reentrant) and
/// every other thread's slow paths, collections and frees wait.
pub struct ExternalLock {
    // Dropped first: the published state goes before the lock.
    _published: LockedInner,
    _guard: HeapGuard<'static>,
}

/// Every thread but the caller (and the collector's marker threads) stopped, with the
/// heap lock held; dropping it restarts them and then releases the lock.
pub struct ExternalStop {
    _world: StoppedWorld,
    _lock: ExternalLock,
}

impl ExternalLock {
    /// The heap's counters (they cannot change while the lock is held).
    pub fn snapshot(&self) -> crate::api::capi_hooks::LockedSnapshot {
        crate::api::capi_hooks::LockedSnapshot::of(&self._guard)
    }
}

impl ExternalStop {
    /// The heap's counters (they cannot change while the lock is held).
    pub fn snapshot(&self) -> crate::api::capi_hooks::LockedSnapshot {
        self._lock.snapshot()
    }
}

impl Heap {
    /// Take the heap lock and keep it until the result is dropped (bdwgc's
    /// `GC_alloc_lock`). Waits for a collection in progress.
    pub fn lock_external(&'static self) -> ExternalLock {
        let guard = self.lock();
        let published = LockedInner::publish(&guard);
        ExternalLock {
            _published: published,
            _guard: guard,
        }
    }

    /// Take the heap lock and stop every other thread of the process, as a collection
    /// does, until the result is dropped (bdwgc's `GC_stop_world_external`).
    pub fn stop_world_external(&'static self) -> Result<ExternalStop, GcError> {
        let lock = self.lock_external();
        let world = world::stop().map_err(|source| GcError::Os {
            op: "stopping the world",
            source,
        })?;
        Ok(ExternalStop {
            _world: world,
            _lock: lock,
        })
    }

    /// Begin an incremental cycle now if incremental marking is on and no cycle is in
    /// progress (opening the tracker first if it is still pending); returns whether a
    /// cycle is in progress afterwards. With incremental marking off, does nothing and
    /// returns false. Does nothing while collection is disabled.
    pub fn start_incremental_cycle(&'static self) -> Result<bool, GcError> {
        self.open_tracker_now()?;
        let g = self.lock();
        if g.gc.disabled > 0 {
            return Ok(g.gc.cycle_active());
        }
        if g.gc.cycle_active() || !g.gc.tracker_open() {
            return Ok(g.gc.cycle_active());
        }
        let g = self.start_cycle(g)?;
        Ok(g.gc.cycle_active())
    }

    /// Count `delta` bytes as allocated (positive) or freed (negative) since the last
    /// collection, for scheduling only (bdwgc's `GC_incr_bytes_allocd` and
    /// `GC_incr_bytes_freed`: memory the program manages itself but wants the collector
    /// to account for).
    pub fn adjust_bytes_since_gc(&self, delta: isize) {
        let mut g = self.lock();
        g.bytes_since_gc = g.bytes_since_gc.saturating_add(delta);
    }

    /// Call `f(base, len_bytes)` for every allocated object whose mark bit is set (after a
    /// collection: the objects it found reachable, plus uncollectable ones), in address
    /// order within each space. Only inside [`Heap::with_lock_held`] or while this thread
    /// holds an [`ExternalLock`]; otherwise returns false and calls nothing. `f` runs with
    /// the lock held: it must not allocate, free or call anything that takes the lock.
    pub fn for_each_marked_object(&self, mut f: impl FnMut(usize, usize)) -> bool {
        let p = LOCKED_INNER.with(Cell::get);
        if p == 0 || !self.lock_held_here() {
            return false;
        }
        // SAFETY: `p` was published by this thread from the guard of this heap's lock,
        // which it still holds (checked above); the state cannot change meanwhile.
        let inner = unsafe { &*(p as *const HeapInner) };
        for space in 0..N_SPACES {
            self.for_each_span(inner, space, |start| {
                let span = self.pages.span(start);
                let kind = ObjectKind::from_u8(span.kind.load(Ordering::Relaxed));
                let base = self.pages.page_addr(start);
                let obj = span.obj_bytes.load(Ordering::Relaxed) as usize;
                let n = match span.state() {
                    SpanState::Small => span.n_objects.load(Ordering::Relaxed) as usize,
                    SpanState::Large => 1,
                    SpanState::Free => 0,
                };
                for i in 0..n {
                    let addr = base + i * obj;
                    if self.allocs.get(addr)
                        && (self.marks.get(addr) || kind == ObjectKind::Uncollectable)
                    {
                        f(addr, obj);
                    }
                }
            });
        }
        true
    }
}

/// Bytes of the object a small allocation of `len_bytes` gets (its size class), or None
/// if such a request is not small.
pub fn small_object_bytes(len_bytes: usize) -> Option<usize> {
    SizeClass::for_request(len_bytes, crate::heap::size_class::GRANULE_BYTES)
        .map(SizeClass::object_bytes)
}
