//! Spans (runs of pages holding objects of one class, or one large object), the page map
//! from any heap page to its span, and the per-space page allocator.
//!
//! Span metadata lives in a side table indexed by the span's first page, so any word that
//! points into the heap finds its object in a few loads: page -> span start -> span.

use crate::util::mmap::{
    discard_pages, populate_write, Mapping, BYTES_IN_PAGE, BYTES_IN_POPULATE_CHUNK,
    LOG_BYTES_IN_PAGE,
};
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, Ordering};

/// What a span holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum SpanState {
    /// Not in use (free run, or never used).
    Free = 0,
    /// Objects of one small size class.
    Small = 1,
    /// One large object.
    Large = 2,
}

/// Metadata of one span. Fields are atomics because conservative lookups and explicit
/// frees read them without the heap lock; they change only under the heap lock.
#[derive(Debug)]
#[repr(C, align(32))]
pub struct Span {
    state: AtomicU8,
    /// The `ObjectKind` of its objects, as u8.
    pub kind: AtomicU8,
    /// The size class (small spans).
    pub class: AtomicU8,
    /// Currently the allocation span of some thread's cache.
    pub owned: AtomicBool,
    /// Linked in a partial list (has free slots and is not owned).
    pub in_partial: AtomicBool,
    /// The scan class of its objects (`crate::mark::descr`): 0 = the kind's own scan
    /// (whole object, or nothing for atomic kinds); otherwise a registered descriptor.
    /// Such spans are never owned by a thread cache (see `heap::described`).
    pub scan: AtomicU8,
    /// Pages in the span.
    pub n_pages: AtomicU32,
    /// Bytes per object (small) or the object's length (large); for a free run, the
    /// [`PageSpace::epoch`] it became free in.
    pub obj_bytes: AtomicU32,
    /// Object slots (small) or 1 (large); for a free run, 1 if its host pages were given
    /// back to the kernel (they read as zero), else 0.
    pub n_objects: AtomicU32,
    /// Next span in a list (first page index + 1; 0 = none).
    pub next: AtomicU32,
    /// Previous span in a list (first page index + 1; 0 = none).
    pub prev: AtomicU32,
    /// `ceil(2^32 / obj_bytes)` for small spans: slot index = offset * recip >> 32,
    /// exact for every offset inside a span (checked in the tests).
    pub recip: AtomicU32,
    /// The [`crate::heap::Heap`] sweep epoch this span was last swept in (see
    /// `Heap::sweep_pending`): while a sweep is under way, a span whose epoch is behind
    /// still holds the alloc bits of objects the collection found dead.
    pub swept: AtomicU32,
}

/// The reciprocal stored in `Span::recip` for objects of `obj_bytes`.
pub const fn reciprocal(obj_bytes: usize) -> u32 {
    (1u64 << 32).div_ceil(obj_bytes as u64) as u32
}

impl Span {
    /// What the span holds.
    #[inline]
    pub fn state(&self) -> SpanState {
        match self.state.load(Ordering::Acquire) {
            1 => SpanState::Small,
            2 => SpanState::Large,
            _ => SpanState::Free,
        }
    }

    /// Change what the span holds (heap lock held).
    pub fn set_state(&self, s: SpanState) {
        self.state.store(s as u8, Ordering::Release);
    }
}

/// The page map and span table for a whole reservation.
#[derive(Debug)]
pub struct PageTable {
    base: usize,
    n_pages: usize,
    /// Per page: first page index of its span + 1 (0 = no span).
    page_map: Mapping,
    /// Per page: the span that starts there.
    spans: Mapping,
}

impl PageTable {
    /// Tables for `n_pages` pages starting at `base`.
    pub fn new(base: usize, n_pages: usize) -> io::Result<PageTable> {
        Ok(PageTable {
            base,
            n_pages,
            page_map: Mapping::new(n_pages * std::mem::size_of::<AtomicU32>())?,
            spans: Mapping::new(n_pages * std::mem::size_of::<Span>())?,
        })
    }

    /// Index of the page containing `addr` (which must be inside the reservation).
    #[inline]
    pub fn page_index(&self, addr: usize) -> usize {
        (addr - self.base) >> LOG_BYTES_IN_PAGE
    }

    /// Address of page `index`.
    #[inline]
    pub fn page_addr(&self, index: usize) -> usize {
        self.base + (index << LOG_BYTES_IN_PAGE)
    }

    #[inline]
    fn map_entry(&self, index: usize) -> &AtomicU32 {
        assert!(index < self.n_pages);
        // SAFETY: index < n_pages, the mapping holds n_pages zero-initialised AtomicU32s
        // (all-zero is a valid AtomicU32) and lives as long as &self.
        unsafe { &*(self.page_map.start() as *const AtomicU32).add(index) }
    }

    /// The span starting at page `index`.
    #[inline]
    pub fn span(&self, index: usize) -> &Span {
        assert!(index < self.n_pages);
        // SAFETY: as in map_entry: in bounds, zero is a valid Span (all atomics), and the
        // table outlives &self.
        unsafe { &*(self.spans.start() as *const Span).add(index) }
    }

    /// The first page index of the span that covers page `index`, if a live span does.
    #[inline]
    pub fn span_start_of(&self, index: usize) -> Option<usize> {
        self.live_span_of(index).map(|(start, _, _)| start)
    }

    /// The live span that covers page `index`: its first page, the span, and its state
    /// (read once: the marker's lookup needs all three).
    #[inline(always)]
    pub fn live_span_of(&self, index: usize) -> Option<(usize, &Span, SpanState)> {
        let e = self.map_entry(index).load(Ordering::Acquire);
        if e == 0 {
            return None;
        }
        let start = (e - 1) as usize;
        let span = self.span(start);
        let state = span.state();
        if state == SpanState::Free {
            return None;
        }
        let n = span.n_pages.load(Ordering::Relaxed) as usize;
        (index >= start && index < start + n).then_some((start, span, state))
    }

    /// Point every page of `[start, start + n)` at the span starting at `start`.
    pub fn map_span(&self, start: usize, n: usize) {
        for i in start..start + n {
            self.map_entry(i).store(start as u32 + 1, Ordering::Release);
        }
    }

    /// Point only the first and last page of a free run at it (enough for coalescing).
    pub fn map_free_run(&self, start: usize, n: usize) {
        self.map_entry(start)
            .store(start as u32 + 1, Ordering::Release);
        self.map_entry(start + n - 1)
            .store(start as u32 + 1, Ordering::Release);
    }

    /// Push the span starting at `start` on the intrusive list whose head is `head`
    /// (first page index + 1; 0 = empty). Free runs and partial spans both use this.
    pub fn list_push(&self, head: &mut u32, start: usize) {
        let span = self.span(start);
        span.prev.store(0, Ordering::Relaxed);
        span.next.store(*head, Ordering::Relaxed);
        if *head != 0 {
            self.span(*head as usize - 1)
                .prev
                .store(start as u32 + 1, Ordering::Relaxed);
        }
        *head = start as u32 + 1;
    }

    /// Take the span starting at `start` off the list whose head is `head`.
    pub fn list_unlink(&self, head: &mut u32, start: usize) {
        let span = self.span(start);
        let next = span.next.load(Ordering::Relaxed);
        let prev = span.prev.load(Ordering::Relaxed);
        if prev != 0 {
            self.span(prev as usize - 1)
                .next
                .store(next, Ordering::Relaxed);
        } else {
            *head = next;
        }
        if next != 0 {
            self.span(next as usize - 1)
                .prev
                .store(prev, Ordering::Relaxed);
        }
        span.next.store(0, Ordering::Relaxed);
        span.prev.store(0, Ordering::Relaxed);
    }

    /// The raw page-map entry (first page of a run + 1, possibly stale for free pages).
    pub fn raw_entry(&self, index: usize) -> u32 {
        self.map_entry(index).load(Ordering::Acquire)
    }
}

const N_EXACT_LISTS: usize = 64;

/// Whether the heap populates host pages ahead of use when it grows: the calling thread is
/// in Dune mode (feature `dune`), where that saves a host fault per fresh page.
pub fn populate_wanted() -> bool {
    #[cfg(feature = "dune")]
    {
        dune_hw::in_dune()
    }
    #[cfg(not(feature = "dune"))]
    {
        false
    }
}

/// Free runs looked at per list when choosing the lowest-addressed one (a bound on the
/// cost of an allocation; the lists are unordered).
const LOWEST_OF: usize = 16;

/// Allocates runs of pages inside one space of the reservation: free runs kept in lists
/// by length (exact up to 64 pages, one list above), coalesced on free. Allocation takes
/// the lowest-addressed fitting run among the first `LOWEST_OF` (16) of a list, so the heap
/// packs towards the start of the space and the runs above it stay free long enough to
/// be given back ([`PageSpace::release_idle`]). Only used under the heap lock.
#[derive(Debug)]
pub struct PageSpace {
    /// First page index of the space in the page table.
    pub first: usize,
    /// Pages the space can hold.
    pub capacity: usize,
    /// Pages ever handed out (the space's used prefix is `[first, first + high_water)`).
    pub high_water: usize,
    /// Pages currently in spans.
    pub in_use: usize,
    /// Pages of the space (from `first`) whose host pages were populated ahead of use
    /// ([`PageSpace::set_populate_ahead`]).
    pub populated: usize,
    populate_ahead: bool,
    heads: [u32; N_EXACT_LISTS + 1],
    /// Collections so far (advanced by [`PageSpace::release_idle`]): free runs remember
    /// the epoch they became free in.
    pub epoch: u32,
    /// Pages of free runs whose host pages were given back and not reused since.
    pub released: usize,
}

/// A run of pages handed out by a [`PageSpace`].
#[derive(Clone, Copy, Debug)]
pub struct PageRun {
    /// First page index.
    pub start: usize,
    /// Number of pages.
    pub n: usize,
    /// True if the pages were never used (they read as zero).
    pub fresh: bool,
}

impl PageSpace {
    /// A space of `capacity` pages starting at page index `first`.
    pub fn new(first: usize, capacity: usize) -> PageSpace {
        PageSpace {
            first,
            capacity,
            high_water: 0,
            in_use: 0,
            populated: 0,
            populate_ahead: false,
            heads: [0; N_EXACT_LISTS + 1],
            epoch: 0,
            released: 0,
        }
    }

    /// When on, each growth of the untouched end past the populated part populates host
    /// pages up to the next [`BYTES_IN_POPULATE_CHUNK`] boundary with one call
    /// ([`populate_write`]). It is on without this call whenever the allocating thread is in
    /// Dune mode ([`populate_wanted`]): there the first write of a page whose host page is
    /// missing costs a host fault under the shadow MMU, one per page.
    pub fn set_populate_ahead(&mut self, on: bool) {
        self.populate_ahead = on;
    }

    /// Populates `[first + populated, ...)` up to the chunk boundary at or above the high
    /// water mark, clipped to the capacity; one call per growth that crosses it.
    fn populate_to_high_water(&mut self, t: &PageTable) {
        if self.high_water <= self.populated || !(self.populate_ahead || populate_wanted()) {
            return;
        }
        let end_abs = t.page_addr(self.first + self.high_water);
        let target = (end_abs.next_multiple_of(BYTES_IN_POPULATE_CHUNK) - t.page_addr(self.first))
            / BYTES_IN_PAGE;
        let target = target.min(self.capacity).max(self.high_water);
        let from = t.page_addr(self.first + self.populated);
        populate_write(from, (target - self.populated) * BYTES_IN_PAGE);
        self.populated = target;
    }

    fn list_for(n: usize) -> usize {
        n.min(N_EXACT_LISTS + 1) - 1
    }

    /// Link a free run: free since `epoch`, host pages given back if `released`.
    fn push(&mut self, t: &PageTable, start: usize, n: usize, epoch: u32, released: bool) {
        let span = t.span(start);
        span.set_state(SpanState::Free);
        span.n_pages.store(n as u32, Ordering::Relaxed);
        span.obj_bytes.store(epoch, Ordering::Relaxed);
        span.n_objects.store(released as u32, Ordering::Relaxed);
        if released {
            self.released += n;
        }
        t.map_free_run(start, n);
        t.list_push(&mut self.heads[Self::list_for(n)], start);
    }

    /// (epoch, released) of the free run at `start`.
    fn run_meta(t: &PageTable, start: usize) -> (u32, bool) {
        let span = t.span(start);
        (
            span.obj_bytes.load(Ordering::Relaxed),
            span.n_objects.load(Ordering::Relaxed) != 0,
        )
    }

    fn unlink(&mut self, t: &PageTable, start: usize) {
        let n = t.span(start).n_pages.load(Ordering::Relaxed) as usize;
        if Self::run_meta(t, start).1 {
            self.released -= n;
        }
        t.list_unlink(&mut self.heads[Self::list_for(n)], start);
    }

    /// Take `n` pages whose first page index is a multiple of `align_pages` (a power of
    /// two), from the free runs or from the untouched end of the space.
    pub fn alloc(&mut self, t: &PageTable, n: usize, align_pages: usize) -> Option<PageRun> {
        debug_assert!(n > 0 && align_pages.is_power_of_two());
        if let Some(start) = self.lowest_fit(t, n, align_pages) {
            let len = t.span(start).n_pages.load(Ordering::Relaxed) as usize;
            let (epoch, released) = Self::run_meta(t, start);
            self.unlink(t, start);
            if len > n {
                self.push(t, start + n, len - n, epoch, released);
            }
            self.in_use += n;
            if released && (self.populate_ahead || populate_wanted()) {
                // Given-back pages are missing on the host again (see
                // `populate_to_high_water`): one call instead of a fault each.
                populate_write(t.page_addr(start), n * BYTES_IN_PAGE);
            }
            return Some(PageRun {
                start,
                n,
                // Given-back pages read as zero, as never-used ones do.
                fresh: released,
            });
        }
        // Bump from the untouched end, aligning in page-table index space (the reservation
        // base is aligned to the largest alignment we accept).
        let mut start = self.first + self.high_water;
        let aligned = start.next_multiple_of(align_pages);
        if aligned + n > self.first + self.capacity {
            return None;
        }
        if aligned > start {
            let gap = aligned - start;
            self.high_water += gap;
            self.in_use += gap;
            self.free(t, start, gap);
            start = aligned;
        }
        self.high_water += n;
        self.in_use += n;
        self.populate_to_high_water(t);
        Some(PageRun {
            start,
            n,
            fresh: true,
        })
    }

    /// The free run [`PageSpace::alloc`] takes for `n` pages aligned to `align_pages`:
    /// in the first list with a run that fits, the lowest of the first `LOWEST_OF` that
    /// fit (reusing low addresses first). None if the request must bump the untouched
    /// end (aligned requests always do).
    fn lowest_fit(&self, t: &PageTable, n: usize, align_pages: usize) -> Option<usize> {
        if align_pages != 1 {
            return None;
        }
        for l in Self::list_for(n)..=N_EXACT_LISTS {
            let mut cur = self.heads[l];
            let mut best: Option<usize> = None;
            let mut looked = 0;
            while cur != 0 && looked < LOWEST_OF {
                let start = cur as usize - 1;
                let len = t.span(start).n_pages.load(Ordering::Relaxed) as usize;
                if len >= n {
                    looked += 1;
                    if best.is_none_or(|b| start < b) {
                        best = Some(start);
                    }
                }
                cur = t.span(start).next.load(Ordering::Relaxed);
            }
            if best.is_some() {
                return best;
            }
        }
        None
    }

    /// True if [`PageSpace::alloc`] of `n` pages aligned to `align_pages` would take a
    /// free run rather than raise the high water mark.
    pub fn fits_in_free_run(&self, t: &PageTable, n: usize, align_pages: usize) -> bool {
        self.lowest_fit(t, n, align_pages).is_some()
    }

    /// Return `n` pages starting at `start`, merging with free neighbours.
    pub fn free(&mut self, t: &PageTable, mut start: usize, mut n: usize) {
        self.in_use -= n;
        // The merged run counts as in use until now (its new part was), whatever its
        // neighbours were: not given back, free since this epoch.
        let epoch = self.epoch;
        // The span is dead from here on, even if it merges into an earlier run and its
        // head becomes an interior page.
        t.span(start).set_state(SpanState::Free);
        let end_of_space = self.first + self.high_water;
        // Merge with the run before.
        if start > self.first {
            let e = t.raw_entry(start - 1);
            if e != 0 {
                let prev_start = e as usize - 1;
                let prev = t.span(prev_start);
                let prev_n = prev.n_pages.load(Ordering::Relaxed) as usize;
                if prev.state() == SpanState::Free
                    && prev_start + prev_n == start
                    && prev_start >= self.first
                {
                    self.unlink(t, prev_start);
                    start = prev_start;
                    n += prev_n;
                }
            }
        }
        // Merge with the run after.
        let after = start + n;
        if after < end_of_space {
            let e = t.raw_entry(after);
            if e as usize == after + 1 {
                let next = t.span(after);
                if next.state() == SpanState::Free {
                    let next_n = next.n_pages.load(Ordering::Relaxed) as usize;
                    self.unlink(t, after);
                    // The absorbed run's head is now an interior page: point it at the
                    // merged run so it never looks like a run of its own.
                    t.map_entry(after)
                        .store(start as u32 + 1, Ordering::Release);
                    n += next_n;
                }
            }
        }
        self.push(t, start, n, epoch, false);
    }

    /// A collection ended: advance the epoch and give back to the kernel the host pages of
    /// every free run that has stayed free since at least `min_idle` collections ago
    /// (hysteresis: a run freed and reused at every collection keeps its pages). Returns
    /// the pages given back now.
    pub fn release_idle(&mut self, t: &PageTable, min_idle: u32) -> usize {
        self.epoch = self.epoch.wrapping_add(1);
        let mut given = 0;
        for l in 0..=N_EXACT_LISTS {
            let mut cur = self.heads[l];
            while cur != 0 {
                let start = cur as usize - 1;
                let span = t.span(start);
                let next = span.next.load(Ordering::Relaxed);
                let (since, released) = Self::run_meta(t, start);
                if !released && self.epoch.wrapping_sub(since) >= min_idle {
                    let n = span.n_pages.load(Ordering::Relaxed) as usize;
                    if discard_pages(t.page_addr(start), n * BYTES_IN_PAGE) {
                        span.n_objects.store(1, Ordering::Relaxed);
                        self.released += n;
                        given += n;
                    }
                }
                cur = next;
            }
        }
        given
    }

    /// Page bytes currently in spans.
    pub fn in_use_bytes(&self) -> usize {
        self.in_use * BYTES_IN_PAGE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reciprocal_division_is_exact_inside_every_span() {
        use crate::heap::size_class::{SizeClass, N_CLASSES};
        for c in 0..N_CLASSES {
            let sc = SizeClass(c as u8);
            let r = reciprocal(sc.object_bytes()) as u64;
            for off in 0..sc.span_pages() * BYTES_IN_PAGE {
                assert_eq!(
                    ((off as u64 * r) >> 32) as usize,
                    off / sc.object_bytes(),
                    "class {c} offset {off}"
                );
            }
        }
    }

    #[test]
    fn alloc_free_coalesce() {
        let t = PageTable::new(0x4000_0000, 1024).unwrap();
        let mut s = PageSpace::new(0, 1024);
        let a = s.alloc(&t, 4, 1).unwrap();
        let b = s.alloc(&t, 8, 1).unwrap();
        let c = s.alloc(&t, 4, 1).unwrap();
        assert!(a.fresh && b.fresh && c.fresh);
        for r in [a, b, c] {
            t.span(r.start).set_state(SpanState::Small);
            t.span(r.start).n_pages.store(r.n as u32, Ordering::Relaxed);
            t.map_span(r.start, r.n);
        }
        assert_eq!(t.span_start_of(b.start + 5), Some(b.start));
        s.free(&t, a.start, a.n);
        s.free(&t, b.start, b.n);
        assert_eq!(t.span_start_of(b.start + 5), None);
        // a and b merged into one 12-page run, reused first-fit.
        let d = s.alloc(&t, 12, 1).unwrap();
        assert_eq!(d.start, a.start);
        assert!(!d.fresh);
        assert_eq!(s.high_water, 16);
        assert_eq!(s.in_use, 16);
        assert!(!s.fits_in_free_run(&t, 1, 1), "all 16 pages in use: growth");
        t.span(d.start).set_state(SpanState::Small);
        t.map_span(d.start, d.n);
        s.free(&t, c.start, c.n);
        assert!(s.fits_in_free_run(&t, 4, 1) && !s.fits_in_free_run(&t, 5, 1));
        assert!(
            !s.fits_in_free_run(&t, 4, 8),
            "aligned: always the untouched end"
        );
        let e = s.alloc(&t, 3, 8).unwrap();
        assert_eq!(e.start % 8, 0);
        assert!(s.alloc(&t, 2000, 1).is_none());
    }

    #[test]
    fn idle_runs_are_given_back_after_the_hysteresis_and_reused_lowest_first() {
        let n_pages = 256;
        let map = Mapping::new(n_pages * BYTES_IN_PAGE).unwrap();
        let t = PageTable::new(map.start(), n_pages).unwrap();
        let mut s = PageSpace::new(0, n_pages);
        let runs: Vec<PageRun> = (0..8).map(|_| s.alloc(&t, 4, 1).unwrap()).collect();
        for r in &runs {
            t.span(r.start).set_state(SpanState::Small);
            t.span(r.start).n_pages.store(r.n as u32, Ordering::Relaxed);
            t.map_span(r.start, r.n);
            // SAFETY: the run's pages are ours; dirty them so they are resident.
            unsafe {
                std::ptr::write_bytes(t.page_addr(r.start) as *mut u8, 0xab, 4 * BYTES_IN_PAGE)
            };
        }
        // Free runs 1, 3 and 5 (not adjacent: three runs), in descending address order.
        for i in [5, 3, 1] {
            s.free(&t, runs[i].start, 4);
        }
        assert_eq!(s.release_idle(&t, 2), 0, "one collection: too recent");
        assert!(resident(t.page_addr(runs[3].start), 4).iter().all(|&x| x));
        assert_eq!(s.release_idle(&t, 2), 12, "two collections: given back");
        assert_eq!(s.released, 12);
        assert!(resident(t.page_addr(runs[3].start), 4).iter().all(|&x| !x));
        assert!(
            resident(t.page_addr(runs[2].start), 4).iter().all(|&x| x),
            "in use: kept"
        );
        assert_eq!(s.release_idle(&t, 2), 0, "given back once");
        // Reuse: the lowest run first, fresh (reads as zero), its accounting undone.
        let a = s.alloc(&t, 4, 1).unwrap();
        assert_eq!(a.start, runs[1].start);
        assert!(a.fresh);
        assert_eq!(s.released, 8);
        // SAFETY: the run's first page is ours.
        assert_eq!(unsafe { *(t.page_addr(a.start) as *const u8) }, 0);
        // Runs freed now merge with the given-back run 5 before them: the merged run is
        // not given back (it was partly in use until now), so not fresh on reuse.
        s.free(&t, runs[7].start, 4);
        s.free(&t, runs[6].start, 4);
        assert_eq!(s.released, 4, "run 3 only");
        let b = s.alloc(&t, 8, 1).unwrap();
        assert_eq!(b.start, runs[5].start);
        assert!(!b.fresh);
    }

    /// Pages of `[start, start + n_pages * 4 KiB)` with a host page (mincore).
    fn resident(start: usize, n_pages: usize) -> Vec<bool> {
        let mut v = vec![0u8; n_pages];
        // SAFETY: the range is a mapping of the caller; `v` has one byte per page.
        let rc = unsafe {
            libc::mincore(
                start as *mut libc::c_void,
                n_pages * BYTES_IN_PAGE,
                v.as_mut_ptr(),
            )
        };
        assert_eq!(rc, 0, "mincore: {}", io::Error::last_os_error());
        v.iter().map(|b| b & 1 != 0).collect()
    }

    #[test]
    fn growth_populates_host_pages_one_chunk_at_a_time() {
        let chunk = BYTES_IN_POPULATE_CHUNK / BYTES_IN_PAGE;
        let n_pages = 2 * chunk + chunk / 2;
        let map =
            Mapping::with_alignment(n_pages * BYTES_IN_PAGE, BYTES_IN_POPULATE_CHUNK).unwrap();
        let t = PageTable::new(map.start(), n_pages).unwrap();
        let mut s = PageSpace::new(0, n_pages);
        s.set_populate_ahead(true);
        let a = s.alloc(&t, 4, 1).unwrap();
        if !resident(map.start(), 1)[0] {
            // MADV_POPULATE_WRITE needs Linux 5.14; nothing to check before it
            eprintln!("MADV_POPULATE_WRITE unsupported here");
            return;
        }
        assert_eq!(s.populated, chunk, "the whole first chunk");
        let r = resident(map.start(), n_pages);
        assert!(r[..chunk].iter().all(|&x| x), "first chunk populated");
        assert!(r[chunk..].iter().all(|&x| !x), "nothing beyond it");
        // growth inside the populated chunk: no call; across it: up to the next boundary
        let b = s.alloc(&t, chunk - 8, 1).unwrap();
        assert_eq!(s.populated, chunk);
        let c = s.alloc(&t, 8, 1).unwrap();
        assert_eq!((c.start, s.populated), (chunk - 4, 2 * chunk));
        // reuse of a free run populates nothing; the last chunk is clipped to the space
        s.free(&t, b.start, b.n);
        let d = s.alloc(&t, 16, 1).unwrap();
        assert!(!d.fresh);
        assert_eq!(s.populated, 2 * chunk);
        s.alloc(&t, chunk, 1).unwrap();
        assert_eq!(s.populated, n_pages, "clipped to the capacity");
        assert!(resident(map.start(), n_pages).iter().all(|&x| x));
        let _ = a;
        // off: growth populates nothing (outside Dune)
        let map2 = Mapping::with_alignment(chunk * BYTES_IN_PAGE, BYTES_IN_POPULATE_CHUNK).unwrap();
        let t2 = PageTable::new(map2.start(), chunk).unwrap();
        let mut s2 = PageSpace::new(0, chunk);
        s2.alloc(&t2, 4, 1).unwrap();
        assert_eq!(s2.populated, 0);
        assert!(resident(map2.start(), chunk).iter().all(|&x| !x));
    }
}
