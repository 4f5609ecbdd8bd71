//! Marking: the mark stack, the conservative scan, and parallel marking.
//!
//! Any aligned word that points into an allocated object (interior pointers included,
//! unless [`interior`] says otherwise) marks it; traced objects are pushed as ranges to
//! scan (a work entry is just `(start, end)`), or, for objects of a registered scan
//! class, as described entries that [`descr`] interprets. Mark bits live in a side
//! bitmap. Incremental mark steps run on one thread under the heap lock and set bits with
//! a plain store; stop-the-world marking (a full collection, the finish of an incremental
//! cycle) and concurrent marking (an incremental cycle's tracing while the program runs,
//! on the helper threads alone) run on the markers of the heap's [`pool`] and set bits
//! with an atomic OR.
//! One function scans one range, [`Heap::scan_range_with`], and one scans one described
//! entry, [`Heap::scan_entry`]; both take the same `PAR` parameter.

pub mod descr;
pub mod interior;
pub(crate) mod pool;
pub(crate) mod stack;

use crate::heap::Heap;
pub use stack::MarkStack;

/// Largest piece of one object scanned before the rest is pushed back (keeps marking
/// steps short when objects are large).
const CHUNK_BYTES: usize = 64 << 10;

/// How mark bits are set: `false` by one thread alone (a plain store), `true` by several
/// markers at once (an atomic OR).
pub(crate) type Parallel = bool;

/// What scanning one described entry counts against a marking step's budget.
const DESCRIBED_COST_BYTES: usize = 128;

impl Heap {
    /// Mark the object `word` points into, if any; push it if it is traced.
    #[inline]
    pub(crate) fn mark_word(&self, word: usize, stack: &mut MarkStack) {
        self.mark_word_from::<false>(word, stack, false);
    }

    /// [`Heap::mark_word`] with mark bits set as `PAR` says (see [`Parallel`]).
    #[inline]
    pub(crate) fn mark_word_with<const PAR: Parallel>(&self, word: usize, stack: &mut MarkStack) {
        self.mark_word_from::<PAR>(word, stack, false);
    }

    /// [`Heap::mark_word`] for a word from a thread's stack or registers
    /// (`from_stack`: any interior pointer counts) or from anywhere else.
    #[inline(always)]
    fn mark_word_from<const PAR: Parallel>(
        &self,
        word: usize,
        stack: &mut MarkStack,
        from_stack: bool,
    ) {
        if word.wrapping_sub(self.base) >= self.end - self.base {
            return;
        }
        self.mark_in_reservation::<PAR>(word, stack, from_stack);
    }

    /// [`Heap::mark_word_from`] for a word already known to lie in the reservation (the
    /// scan loops check that with the bounds held in registers: the stores marking does
    /// could alias `self`, so the compiler would reload them for every word).
    #[inline(always)]
    fn mark_in_reservation<const PAR: Parallel>(
        &self,
        word: usize,
        stack: &mut MarkStack,
        from_stack: bool,
    ) {
        if let Some(info) = self.object_in_reservation(word) {
            if !from_stack && !interior::accepts(word - info.base, info.kind) {
                return;
            }
            let newly = if PAR {
                self.marks.set_parallel(info.base)
            } else {
                self.marks.set_single_writer(info.base)
            };
            if newly && info.kind.is_traced() {
                self.push_object(info.base, info.len_bytes, info.span, stack);
            }
        }
    }

    /// Mark from a word of a thread's registers (any interior pointer counts), setting
    /// the mark bit as `PAR` says.
    pub(crate) fn mark_stack_word_with<const PAR: Parallel>(
        &self,
        word: usize,
        stack: &mut MarkStack,
    ) {
        self.mark_word_from::<PAR>(word, stack, true);
    }

    /// Mark everything a thread's stack `[start, end)` points to (any interior pointer
    /// counts, as in bdwgc), setting mark bits as `PAR` says.
    pub(crate) fn scan_stack_range_with<const PAR: Parallel>(
        &self,
        start: usize,
        end: usize,
        stack: &mut MarkStack,
    ) {
        let (lo, size) = (self.base, self.end - self.base);
        let mut p = (start + 7) & !7;
        while p + 8 <= end {
            // SAFETY: as in scan_range: a readable stack range, read as a plain word.
            let w = unsafe { std::ptr::read_volatile(p as *const usize) };
            if w.wrapping_sub(lo) < size {
                self.mark_in_reservation::<PAR>(w, stack, true);
            }
            p += 8;
        }
    }

    /// Mark everything `[start, end)` points to (the range itself is not an object).
    pub(crate) fn scan_range(&self, start: usize, end: usize, stack: &mut MarkStack) {
        self.scan_range_with::<false>(start, end, stack)
    }

    /// Scan one object (or a piece of one, or a root range): mark every word of
    /// `[start, end)` that points into the heap, pushing newly marked traced objects.
    #[inline(always)]
    pub(crate) fn scan_range_with<const PAR: Parallel>(
        &self,
        start: usize,
        end: usize,
        stack: &mut MarkStack,
    ) {
        let (lo, size) = (self.base, self.end - self.base);
        let mut p = (start + 7) & !7;
        while p + 8 <= end {
            // SAFETY: callers pass readable ranges (heap objects, stacks, static data);
            // other threads may write the word concurrently, so read it volatile, as a
            // plain machine word — any value is acceptable to a conservative scan.
            let w = unsafe { std::ptr::read_volatile(p as *const usize) };
            if w.wrapping_sub(lo) < size {
                self.mark_in_reservation::<PAR>(w, stack, false);
            }
            p += 8;
        }
    }

    /// Scan from the mark stack until it is empty or `budget_bytes` were scanned.
    /// Returns true if the stack is empty.
    pub(crate) fn drain(&self, stack: &mut MarkStack, budget_bytes: usize) -> bool {
        self.drain_with::<false>(stack, budget_bytes, &mut |_| {}).0
    }

    /// Mark everything reachable from `stack` with every marker of the pool (the world
    /// is stopped, or only the collector runs); `stack` is empty afterwards.
    pub(crate) fn drain_all(&self, stack: &mut MarkStack) {
        let pool = &self.markers;
        if pool.helpers() == 0 {
            // One marker: plain stores for the mark bits, no stealing.
            let scanned = self.drain_with::<false>(stack, usize::MAX, &mut |_| {}).1;
            pool.markers()[0]
                .scanned_bytes
                .fetch_add(scanned as u64, std::sync::atomic::Ordering::Relaxed);
            return;
        }
        pool.begin_marking();
        // SAFETY: this thread (the collector, heap lock held) is marker 0; no other thread
        // touches marker 0's stack.
        std::mem::swap(unsafe { pool.private(0) }, stack);
        pool.run(&mut || self.marker_part(0));
        // SAFETY: as above; marking is over, every stack is empty.
        std::mem::swap(unsafe { pool.private(0) }, stack);
        debug_assert!(stack.is_empty());
    }

    /// The helpers' job (see [`pool::MarkerPool::ensure_started`]): `ctx` is the heap.
    pub(crate) fn marker_job(ctx: usize, index: usize) {
        // SAFETY: `ctx` is the address of a heap, and heaps live for the whole process.
        let heap = unsafe { &*(ctx as *const Heap) };
        heap.marker_part(index);
    }

    /// Marker `i`'s part of a parallel marking: drain, publish, steal until no marker
    /// holds work.
    fn marker_part(&self, i: usize) {
        let pool = &self.markers;
        let mut scanned = 0usize;
        pool.work(i, &mut |private| {
            let mut publish = |s: &mut MarkStack| {
                if pool.should_publish(i) {
                    pool.publish(i, s);
                }
            };
            scanned += self.drain_with::<true>(private, usize::MAX, &mut publish).1;
        });
        pool.markers()[i]
            .scanned_bytes
            .fetch_add(scanned as u64, std::sync::atomic::Ordering::Relaxed);
    }

    /// The drain loop. Returns (the stack is empty, bytes scanned). `between` is called
    /// every few ranges with the stack (parallel marking publishes work there).
    ///
    /// Marking a tree is a chain of dependent cache misses (pop, load, find the children,
    /// pop a child, load ...). Ranges popped from the stack first go through a small FIFO
    /// and are prefetched on the way in, so several misses are in flight at once (Cher,
    /// Hosking and Vijaykumar's prefetch-on-grey buffer).
    pub(crate) fn drain_with<const PAR: Parallel>(
        &self,
        stack: &mut MarkStack,
        mut budget_bytes: usize,
        between: &mut dyn FnMut(&mut MarkStack),
    ) -> (bool, usize) {
        const FIFO: usize = 16;
        /// Ranges scanned between two calls of `between`.
        const POLL_EVERY: u32 = 32;
        let mut fifo = [(0usize, 0usize); FIFO];
        let (mut head, mut len) = (0usize, 0usize);
        let mut total = 0usize;
        let mut since_poll = 0u32;
        loop {
            // Refill the FIFO from the stack, prefetching each range's first line.
            while len < FIFO {
                let Some((start, end)) = stack.items.pop() else {
                    break;
                };
                if start & descr::DESCRIBED != 0 {
                    // One object scanned by its descriptor (see `descr`).
                    self.scan_entry::<PAR>(start, end, stack);
                    budget_bytes = budget_bytes.saturating_sub(DESCRIBED_COST_BYTES);
                    continue;
                }
                let end_now = if end - start > CHUNK_BYTES {
                    stack.push(start + CHUNK_BYTES, end);
                    start + CHUNK_BYTES
                } else {
                    end
                };
                // SAFETY: prefetch has no architectural effect; any address is allowed.
                unsafe {
                    std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                        start as *const i8,
                    )
                };
                fifo[(head + len) % FIFO] = (start, end_now);
                len += 1;
            }
            if len == 0 {
                return (true, total);
            }
            let (start, end) = fifo[head];
            head = (head + 1) % FIFO;
            len -= 1;
            self.scan_range_with::<PAR>(start, end, stack);
            let scanned = end - start;
            total += scanned;
            if scanned >= budget_bytes {
                // Put back what the FIFO holds so the next step continues with it.
                for i in 0..len {
                    let (s, e) = fifo[(head + i) % FIFO];
                    stack.push(s, e);
                }
                return (stack.is_empty(), total);
            }
            budget_bytes -= scanned;
            since_poll += 1;
            if since_poll >= POLL_EVERY {
                since_poll = 0;
                between(stack);
            }
        }
    }
}
