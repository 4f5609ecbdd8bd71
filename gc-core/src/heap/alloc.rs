//! Allocation (fast path through the thread cache, slow paths under the heap lock) and
//! explicit free.

use super::bitmap::SideBitmap;
use super::cache::{self, ClassCursor, ThreadCache};
use super::kind::ObjectKind;
use super::size_class::{SizeClass, GRANULE_BYTES, LOG_GRANULE_BYTES, MAX_SMALL_BYTES};
use super::span::{PageRun, SpanState};
use super::{Heap, HeapInner, MAX_ALIGN_BYTES};
use crate::error::GcError;
use crate::util::mmap::{round_up_to_page, BYTES_IN_PAGE, LOG_BYTES_IN_PAGE};
use std::sync::atomic::Ordering;

/// The error for an allocation made while this thread holds the heap lock (from inside
/// the collector, e.g. a tracker's error path): refused, said once on stderr, never a
/// deadlock.
#[cold]
pub(crate) fn reentrant() -> GcError {
    static SAID: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !SAID.swap(true, Ordering::Relaxed) {
        crate::util::eprintln_raw("dunegc: allocation refused: this thread holds the heap lock (allocating from inside the collector)");
    }
    GcError::Reentrant
}

/// Zero `len` bytes at `addr` (16-byte aligned, a multiple of 16). Small objects are
/// cleared with inline stores: a call to memset costs more than the clearing.
#[inline]
pub(crate) fn zero(addr: usize, len: usize) {
    if len <= 64 {
        let mut p = addr as *mut u128;
        let end = (addr + len) as *mut u128;
        while p < end {
            // SAFETY: callers pass a slot they have just claimed: 16-byte aligned, inside
            // the heap mapping, `len` bytes long.
            unsafe { p.write_volatile(0) };
            // SAFETY: stays within the slot (or one past its end).
            p = unsafe { p.add(1) };
        }
        return;
    }
    // SAFETY: callers pass a slot or span they have just claimed, inside the heap mapping.
    unsafe { std::ptr::write_bytes(addr as *mut u8, 0, len) };
}

impl Heap {
    /// Allocate `len_bytes` aligned to `align_bytes` (a power of two), zeroed, of `kind`.
    pub fn alloc(
        &'static self,
        kind: ObjectKind,
        len_bytes: usize,
        align_bytes: usize,
    ) -> Result<usize, GcError> {
        debug_assert!(align_bytes.is_power_of_two());
        let align = align_bytes.max(GRANULE_BYTES);
        if align > MAX_ALIGN_BYTES {
            return Err(GcError::TooLarge {
                requested_bytes: align,
                max_bytes: MAX_ALIGN_BYTES,
            });
        }
        let len = len_bytes.max(1);
        if len <= MAX_SMALL_BYTES && align <= BYTES_IN_PAGE {
            if let Some(class) = SizeClass::for_request(len, align) {
                return self.alloc_small(kind, class);
            }
        }
        self.alloc_large(kind, len, align, 0)
    }

    #[inline]
    fn alloc_small(&'static self, kind: ObjectKind, class: SizeClass) -> Result<usize, GcError> {
        let cache = cache::current(self);
        if cache.is_null() {
            return Err(GcError::OutOfMemory {
                requested_bytes: class.object_bytes(),
            });
        }
        // SAFETY: the cache belongs to this thread; only this thread mutates its cursors
        // (the collector reads nothing in it but the list links, under the lock).
        let cache = unsafe { &mut *cache };
        let size = class.object_bytes();
        loop {
            if let Some(a) = self.claim(&mut cache.classes[kind as usize][class.index()], size) {
                cache.allocated_bytes += size;
                return Ok(a);
            }
            self.refill(cache, kind, class)?;
        }
    }

    /// Hand out the next slot: from the claimed `pending` mask (no atomic operation), or
    /// by claiming the free slots of the next window.
    #[inline]
    fn claim(&self, cc: &mut ClassCursor, size: usize) -> Option<usize> {
        if cc.pending == 0 && !self.claim_window(cc, size) {
            return None;
        }
        let bit = cc.pending.trailing_zeros() as usize;
        // The slot's address must exist (in a register or on the stack, where a stop
        // finds it as a root; its alloc bit is set) before the slot leaves `pending`,
        // where `mark_pending_slots` finds it: otherwise a stop in between sees only
        // `window` and `bit`, the slot stays unmarked, and the sweep frees it under the
        // thread. `black_box` keeps the compiler from recomputing `a` later instead of
        // holding it, the volatile store and the fences from moving the removal earlier
        // (a stop is a signal on this thread, so compiler ordering is what counts).
        let a = std::hint::black_box(cc.window + (bit << LOG_GRANULE_BYTES));
        std::sync::atomic::compiler_fence(Ordering::SeqCst);
        // SAFETY: `cc` is this thread's own cursor, a valid place to write.
        unsafe { std::ptr::write_volatile(&mut cc.pending, cc.pending & (cc.pending - 1)) };
        std::sync::atomic::compiler_fence(Ordering::SeqCst);
        if !cc.fresh {
            zero(a, size);
        }
        Some(a)
    }

    /// Claim, with one atomic OR, every free slot starting in the next window with a free
    /// slot at or after the cursor; false when the span is used up.
    #[inline(never)]
    fn claim_window(&self, cc: &mut ClassCursor, size: usize) -> bool {
        const W: usize = SideBitmap::WINDOW_BYTES;
        while cc.cursor < cc.end {
            let window = cc.cursor & !(W - 1);
            let window_end = (window + W).min(cc.end);
            let mut want = 0u64;
            let mut a = cc.cursor;
            while a < window_end {
                want |= 1 << ((a - window) >> LOG_GRANULE_BYTES);
                a += size;
            }
            cc.cursor = a;
            let word = self.allocs.window_word(window);
            let free = want & !word.load(Ordering::Relaxed);
            if free == 0 {
                continue;
            }
            // Publish the candidates before setting their bits: a collection that stops
            // this thread in between marks them (a candidate that turns out not to be
            // ours is only kept one collection longer), so the sweep cannot clear a bit
            // this thread has set but not yet recorded.
            // SAFETY: `cc` is this thread's own cursor, a valid place to write.
            unsafe {
                std::ptr::write_volatile(&mut cc.window, window);
                std::ptr::write_volatile(&mut cc.pending, free);
            }
            // AcqRel: the stores above are ordered before the bits become set.
            let got = free & !word.fetch_or(free, Ordering::AcqRel);
            if got != 0 && self.allocate_black.load(Ordering::Relaxed) {
                // During a cycle: black, with one atomic OR for the whole window.
                self.marks
                    .window_word(window)
                    .fetch_or(got, Ordering::Relaxed);
            }
            // SAFETY: as above.
            unsafe { std::ptr::write_volatile(&mut cc.pending, got) };
            if got != 0 {
                return true;
            }
        }
        false
    }

    /// Give back the slots a cursor claimed and did not hand out (its thread is exiting
    /// or the span is being traded).
    fn unclaim(&self, cc: &mut ClassCursor) {
        while cc.pending != 0 {
            let bit = cc.pending.trailing_zeros() as usize;
            cc.pending &= cc.pending - 1;
            self.allocs
                .clear_atomic(cc.window + (bit << LOG_GRANULE_BYTES));
        }
    }

    /// Mark the slots every thread cache claimed and has not handed out yet, so the sweep
    /// keeps them (the world is stopped, so the caches hold still; heap lock held).
    pub(crate) fn mark_pending_slots(&self, g: &HeapInner) {
        let mut c = g.caches;
        while !c.is_null() {
            // SAFETY: registered caches stay valid while linked (unlinked under the heap
            // lock, which the caller holds); their threads are stopped or are this one.
            let cache = unsafe { &*c };
            for per_kind in &cache.classes {
                for cc in per_kind {
                    // SAFETY: reading a plain field the (stopped) owner wrote.
                    let mut pending = unsafe { std::ptr::read_volatile(&cc.pending) };
                    // SAFETY: as above.
                    let window = unsafe { std::ptr::read_volatile(&cc.window) };
                    while pending != 0 {
                        let bit = pending.trailing_zeros() as usize;
                        pending &= pending - 1;
                        // Atomic: marker threads of a concurrent cycle may still be
                        // setting bits of the same words.
                        self.marks.set_parallel(window + (bit << LOG_GRANULE_BYTES));
                    }
                }
            }
            c = cache.next;
        }
    }

    /// Move a thread's allocation counters into the heap's.
    pub(crate) fn flush(g: &mut HeapInner, cache: &mut ThreadCache) {
        let a = std::mem::take(&mut cache.allocated_bytes);
        let f = std::mem::take(&mut cache.freed_bytes);
        g.bytes_since_gc += a as isize - f as isize;
        g.gc.stats.bytes_allocated += a as u64;
        g.gc.stats.bytes_freed_explicitly += f as u64;
    }

    /// Free slots in a small span (slots whose alloc bit is clear).
    pub(crate) fn free_slots(&self, start: usize) -> usize {
        let span = self.pages.span(start);
        let n_pages = span.n_pages.load(Ordering::Relaxed) as usize;
        let base = self.pages.page_addr(start);
        let used: u32 = self
            .allocs
            .words(base, base + (n_pages << LOG_BYTES_IN_PAGE))
            .iter()
            .map(|w| w.load(Ordering::Relaxed).count_ones())
            .sum();
        span.n_objects.load(Ordering::Relaxed) as usize - used as usize
    }

    /// The thread's span for (kind, class) is used up: rewind over slots freed since, or
    /// trade it for another span.
    #[cold]
    fn refill(
        &'static self,
        cache: &mut ThreadCache,
        kind: ObjectKind,
        class: SizeClass,
    ) -> Result<(), GcError> {
        if self.enter_dune_pending.load(Ordering::Relaxed) {
            self.enter_dune_for_env();
            // Entering Dune allocates, from this very cursor perhaps: if that left slots
            // to hand out, use them.
            let cc = &cache.classes[kind as usize][class.index()];
            if cc.pending != 0 || cc.cursor < cc.end {
                return Ok(());
            }
        }
        let cc = &mut cache.classes[kind as usize][class.index()];
        if cc.span != 0 && !cc.rewound {
            let start = cc.span as usize - 1;
            if self.free_slots(start) * 4 >= class.objects_per_span() {
                debug_assert_eq!(cc.pending, 0, "refill runs with nothing claimed");
                cc.cursor = self.pages.page_addr(start);
                cc.fresh = false;
                cc.rewound = true;
                return Ok(());
            }
        }
        if self.lock_held_here() {
            return Err(reentrant());
        }
        let mut g = self.lock();
        Self::flush(&mut g, cache);
        let room = g.partial[kind as usize][class.index()] != 0;
        let mut g = self.poll_unless_room(g, kind.space() as usize, class.span_pages(), 1, room)?;
        let cc = &mut cache.classes[kind as usize][class.index()];
        if cc.span != 0 {
            self.unclaim(cc);
            self.release_span(&mut g, cc.span as usize - 1, kind, class);
            *cc = ClassCursor::default();
        }
        let (start, fresh) = match self.take_span(&mut g, kind, class) {
            Some(s) => s,
            None => {
                let (g2, s) = self.collect_and_retry(g, |g| self.take_span(g, kind, class))?;
                match s {
                    Some(s) => s,
                    None => return Err(self.no_pages_error(&g2, class.object_bytes())),
                }
            }
        };
        let base = self.pages.page_addr(start);
        *cc = ClassCursor {
            cursor: base,
            end: base + class.objects_per_span() * class.object_bytes(),
            span: start as u32 + 1,
            fresh,
            rewound: false,
            pending: 0,
            window: 0,
        };
        Ok(())
    }

    /// Give a span back: it becomes unowned, and partial if it has free slots.
    pub(crate) fn release_span(
        &self,
        g: &mut HeapInner,
        start: usize,
        kind: ObjectKind,
        class: SizeClass,
    ) {
        let span = self.pages.span(start);
        span.owned.store(false, Ordering::Release);
        if self.free_slots(start) > 0 {
            self.link_partial(g, start, kind, class);
        }
    }

    /// Put an unowned span with free slots on its partial list (once).
    pub(crate) fn link_partial(
        &self,
        g: &mut HeapInner,
        start: usize,
        kind: ObjectKind,
        class: SizeClass,
    ) {
        if self
            .pages
            .span(start)
            .in_partial
            .swap(true, Ordering::AcqRel)
        {
            return;
        }
        let head = Self::partial_head(g, self.pages.span(start), kind, class);
        self.pages.list_push(head, start);
    }

    /// Take a span off its partial list.
    pub(crate) fn unlink_partial(
        &self,
        g: &mut HeapInner,
        start: usize,
        kind: ObjectKind,
        class: SizeClass,
    ) {
        if !self
            .pages
            .span(start)
            .in_partial
            .swap(false, Ordering::AcqRel)
        {
            return;
        }
        let head = Self::partial_head(g, self.pages.span(start), kind, class);
        self.pages.list_unlink(head, start);
    }

    /// The partial list a span belongs on: per (kind, class), or per (scan class, class)
    /// for spans of a registered scan class (`heap::described`).
    fn partial_head<'g>(
        g: &'g mut HeapInner,
        span: &super::span::Span,
        kind: ObjectKind,
        class: SizeClass,
    ) -> &'g mut u32 {
        match span.scan.load(Ordering::Relaxed) {
            0 => &mut g.partial[kind as usize][class.index()],
            s => &mut g.scan_partial[s as usize][class.index()],
        }
    }

    /// A span for (kind, class) to allocate from: a partial one, or a new one.
    fn take_span(
        &self,
        g: &mut HeapInner,
        kind: ObjectKind,
        class: SizeClass,
    ) -> Option<(usize, bool)> {
        let head = g.partial[kind as usize][class.index()];
        if head != 0 {
            let start = head as usize - 1;
            self.unlink_partial(g, start, kind, class);
            self.pages.span(start).owned.store(true, Ordering::Release);
            return Some((start, false));
        }
        let run = self.alloc_pages(g, kind.space() as usize, class.span_pages(), 1)?;
        self.init_span(
            run,
            SpanState::Small,
            kind,
            class.0,
            class.object_bytes(),
            class.objects_per_span(),
            0,
        );
        self.pages
            .span(run.start)
            .owned
            .store(true, Ordering::Release);
        Some((run.start, run.fresh))
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn init_span(
        &self,
        run: PageRun,
        state: SpanState,
        kind: ObjectKind,
        class: u8,
        obj_bytes: usize,
        n_objects: usize,
        scan: u8,
    ) {
        let span = self.pages.span(run.start);
        span.kind.store(kind as u8, Ordering::Relaxed);
        span.scan.store(scan, Ordering::Relaxed);
        span.class.store(class, Ordering::Relaxed);
        span.owned.store(false, Ordering::Relaxed);
        span.in_partial.store(false, Ordering::Relaxed);
        span.n_pages.store(run.n as u32, Ordering::Relaxed);
        span.obj_bytes.store(obj_bytes as u32, Ordering::Relaxed);
        span.n_objects.store(n_objects as u32, Ordering::Relaxed);
        span.recip
            .store(super::span::reciprocal(obj_bytes), Ordering::Relaxed);
        span.next.store(0, Ordering::Relaxed);
        span.prev.store(0, Ordering::Relaxed);
        let base = self.pages.page_addr(run.start);
        self.allocs
            .clear_range(base, base + (run.n << LOG_BYTES_IN_PAGE));
        self.pages.map_span(run.start, run.n);
        span.set_state(state);
    }

    #[cold]
    pub(crate) fn alloc_large(
        &'static self,
        kind: ObjectKind,
        len: usize,
        align: usize,
        scan: u8,
    ) -> Result<usize, GcError> {
        let max = self.space_pages << LOG_BYTES_IN_PAGE;
        if len > max || len > u32::MAX as usize - BYTES_IN_PAGE {
            return Err(GcError::TooLarge {
                requested_bytes: len,
                max_bytes: max.min(u32::MAX as usize - BYTES_IN_PAGE),
            });
        }
        let bytes = round_up_to_page(len);
        let n = bytes >> LOG_BYTES_IN_PAGE;
        let align_pages = (align >> LOG_BYTES_IN_PAGE).max(1);
        if self.enter_dune_pending.load(Ordering::Relaxed) {
            self.enter_dune_for_env();
        }
        if self.lock_held_here() {
            return Err(reentrant());
        }
        // Find (or register) this thread's cache before taking the lock: registering
        // takes the lock itself.
        let cache = cache::current(self);
        let mut g = self.lock();
        if !cache.is_null() {
            // SAFETY: this thread's own cache.
            Self::flush(&mut g, unsafe { &mut *cache });
        }
        g.bytes_since_gc += bytes as isize;
        g.gc.stats.bytes_allocated += bytes as u64;
        let space = kind.space() as usize;
        let mut g = self.poll_unless_room(g, space, n, align_pages, false)?;
        let run = match self.alloc_pages(&mut g, space, n, align_pages) {
            Some(r) => r,
            None => {
                let r;
                (g, r) =
                    self.collect_and_retry(g, |g| self.alloc_pages(g, space, n, align_pages))?;
                match r {
                    Some(r) => r,
                    None => return Err(self.no_pages_error(&g, len)),
                }
            }
        };
        let obj_bytes = len.next_multiple_of(GRANULE_BYTES);
        self.init_span(run, SpanState::Large, kind, 0, obj_bytes, 1, scan);
        let base = self.pages.page_addr(run.start);
        self.allocs.set_atomic(base);
        if self.allocate_black.load(Ordering::Relaxed) {
            self.marks.set_parallel(base);
        }
        drop(g);
        if !run.fresh {
            zero(base, bytes);
        }
        Ok(base)
    }

    /// Free the object starting at `addr` now. Errors (nothing changes) if `addr` is not
    /// the start of a live object of this heap.
    pub fn free(&'static self, addr: usize) -> Result<(), GcError> {
        let info = self.find_object(addr).ok_or(GcError::InvalidFree {
            addr,
            reason: if self.contains(addr) {
                "not an allocated object (already freed?)"
            } else {
                "not a pointer into this heap"
            },
        })?;
        if info.base != addr {
            return Err(GcError::InvalidFree {
                addr,
                reason: "points inside an object, not at its start",
            });
        }
        let already = GcError::InvalidFree {
            addr,
            reason: "already freed",
        };
        let span = self.pages.span(info.span);
        if span.state() == SpanState::Large && !self.lock_held_here() {
            // Clear the bit and release the pages under the lock: a sweep that sees a
            // large object's bit clear releases its pages itself.
            let mut g = self.lock();
            if !self.allocs.clear_atomic(addr) {
                return Err(already);
            }
            let n = span.n_pages.load(Ordering::Relaxed) as usize;
            g.bytes_since_gc -= (n << LOG_BYTES_IN_PAGE) as isize;
            g.gc.stats.bytes_freed_explicitly += (n << LOG_BYTES_IN_PAGE) as u64;
            self.release_large(&mut g, info.span);
            crate::collector::hooks::report_heap_size(Heap::heap_bytes(&g));
            return Ok(());
        }
        if !self.allocs.clear_atomic(addr) {
            return Err(already);
        }
        if span.state() == SpanState::Large {
            // Freed by a thread holding the heap lock (from inside the collector): the
            // pages go back at the next sweep.
            return Ok(());
        }
        let cache = cache::current(self);
        if !cache.is_null() {
            // SAFETY: this thread's own cache.
            unsafe { (*cache).freed_bytes += info.len_bytes };
        }
        if !span.owned.load(Ordering::Acquire)
            && !span.in_partial.load(Ordering::Acquire)
            && !self.lock_held_here()
        {
            let mut g = self.lock();
            if !span.owned.load(Ordering::Acquire) && span.state() == SpanState::Small {
                self.link_partial(&mut g, info.span, info.kind, self.span_class(info.span));
            }
        }
        Ok(())
    }

    /// Return a large object's pages to its space.
    pub(crate) fn release_large(&self, g: &mut HeapInner, start: usize) {
        let n = self.pages.span(start).n_pages.load(Ordering::Relaxed) as usize;
        let space = self.space_of_page(start);
        g.spaces[space].free(&self.pages, start, n);
    }

    /// Return an empty small span's pages to its space.
    pub(crate) fn release_small(&self, g: &mut HeapInner, start: usize) {
        let span = self.pages.span(start);
        let kind = ObjectKind::from_u8(span.kind.load(Ordering::Relaxed));
        self.unlink_partial(g, start, kind, self.span_class(start));
        let n = span.n_pages.load(Ordering::Relaxed) as usize;
        let space = self.space_of_page(start);
        g.spaces[space].free(&self.pages, start, n);
    }

    /// Register a thread's cache with this heap.
    pub(crate) fn link_cache(&self, cache: *mut ThreadCache) {
        let mut g = self.lock();
        // SAFETY: cache is a fresh, exclusively owned ThreadCache; the list is only
        // changed under the lock we hold.
        unsafe {
            (*cache).next = g.caches;
            if !g.caches.is_null() {
                (*g.caches).prev = cache;
            }
        }
        g.caches = cache;
    }

    /// A thread is exiting: give back its spans and forget its cache.
    pub(crate) fn unlink_cache(&self, cache: *mut ThreadCache) {
        let mut g = self.lock();
        // SAFETY: the cache is registered in this heap's list (changed only under the
        // lock), and its thread is exiting so nothing else touches its cursors.
        let c = unsafe { &mut *cache };
        Self::flush(&mut g, c);
        for kind in ObjectKind::ALL {
            for (ci, cc) in c.classes[kind as usize].iter_mut().enumerate() {
                if cc.span != 0 {
                    self.unclaim(cc);
                    self.release_span(&mut g, cc.span as usize - 1, kind, SizeClass(ci as u8));
                    *cc = ClassCursor::default();
                }
            }
        }
        // SAFETY: neighbours are registered caches, changed only under the lock.
        unsafe {
            if !c.prev.is_null() {
                (*c.prev).next = c.next;
            } else {
                g.caches = c.next;
            }
            if !c.next.is_null() {
                (*c.next).prev = c.prev;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{GcError, HeapBuilder, ObjectKind};

    #[test]
    fn allocating_or_freeing_while_holding_the_lock_never_deadlocks() {
        let heap = HeapBuilder::new()
            .max_space_bytes(64 << 20)
            .build()
            .unwrap();
        let big = heap.alloc(ObjectKind::Malloc, 100_000, 8).unwrap();
        let in_use_before = heap.heap_size();
        let guard = heap.lock();
        assert!(heap.lock_held_here());
        // A thread with no cache yet, and a large object: both need the lock.
        assert!(matches!(
            heap.alloc(ObjectKind::Normal, 200_000, 8),
            Err(GcError::Reentrant)
        ));
        assert!(matches!(
            heap.alloc(ObjectKind::Normal, 32, 8),
            Err(GcError::Reentrant)
        ));
        // Freeing a large object defers the page release to the next sweep.
        heap.free(big).unwrap();
        assert!(heap.find_object(big).is_none());
        drop(guard);
        assert!(!heap.lock_held_here());
        heap.collect().unwrap();
        assert!(
            heap.heap_size() < in_use_before,
            "pages of the freed object were not released by the sweep"
        );
        assert!(heap.alloc(ObjectKind::Normal, 32, 8).is_ok());
    }
}
