//! Marking: the mark stack and the conservative scan.
//!
//! Any aligned word that points into an allocated object (interior pointers included,
//! unless [`interior`] says otherwise) marks it; traced objects are pushed as ranges to
//! scan, or, for objects of a registered scan class, as described entries that
//! [`descr`] interprets. Mark bits live in a side bitmap;
//! only the collecting thread writes them (under the heap lock), so setting one needs no
//! locked instruction.

pub mod descr;
pub mod interior;
pub(crate) mod stack;

use crate::heap::Heap;
pub use stack::MarkStack;

/// Largest piece of one object scanned before the rest is pushed back (keeps marking
/// steps short when objects are large).
const CHUNK_BYTES: usize = 64 << 10;

/// What scanning one described entry counts against a marking step's budget.
const DESCRIBED_COST_BYTES: usize = 128;

impl Heap {
    /// Mark the object `word` points into, if any; push it if it is traced.
    #[inline]
    pub(crate) fn mark_word(&self, word: usize, stack: &mut MarkStack) {
        self.mark_word_from(word, stack, false);
    }

    /// [`Heap::mark_word`] for a word from a thread's stack or registers
    /// (`from_stack`: any interior pointer counts) or from anywhere else.
    #[inline(always)]
    fn mark_word_from(&self, word: usize, stack: &mut MarkStack, from_stack: bool) {
        if word.wrapping_sub(self.base) >= self.end - self.base {
            return;
        }
        if let Some(info) = self.find_object(word) {
            if !from_stack && !interior::accepts(word - info.base, info.kind) {
                return;
            }
            if self.marks.set_single_writer(info.base) && info.kind.is_traced() {
                self.push_object(info.base, info.len_bytes, info.span, stack);
            }
        }
    }

    /// Mark from a word of a thread's registers (any interior pointer counts).
    pub(crate) fn mark_stack_word(&self, word: usize, stack: &mut MarkStack) {
        self.mark_word_from(word, stack, true);
    }

    /// Mark everything a thread's stack `[start, end)` points to (any interior pointer
    /// counts, as in bdwgc).
    pub(crate) fn scan_stack_range(&self, start: usize, end: usize, stack: &mut MarkStack) {
        let mut p = (start + 7) & !7;
        while p + 8 <= end {
            // SAFETY: as in scan_range: a readable stack range, read as a plain word.
            let w = unsafe { std::ptr::read_volatile(p as *const usize) };
            self.mark_word_from(w, stack, true);
            p += 8;
        }
    }

    /// Mark everything `[start, end)` points to (the range itself is not an object).
    pub(crate) fn scan_range(&self, start: usize, end: usize, stack: &mut MarkStack) {
        let mut p = (start + 7) & !7;
        while p + 8 <= end {
            // SAFETY: callers pass readable ranges (heap objects, stacks, static data);
            // other threads may write the word concurrently, so read it volatile, as a
            // plain machine word — any value is acceptable to a conservative scan.
            let w = unsafe { std::ptr::read_volatile(p as *const usize) };
            self.mark_word(w, stack);
            p += 8;
        }
    }

    /// Scan from the mark stack until it is empty or `budget_bytes` were scanned.
    /// Returns true if the stack is empty.
    ///
    /// Marking a tree is a chain of dependent cache misses (pop, load, find the children,
    /// pop a child, load ...). Ranges popped from the stack first go through a small FIFO
    /// and are prefetched on the way in, so several misses are in flight at once (Cher,
    /// Hosking and Vijaykumar's prefetch-on-grey buffer).
    pub(crate) fn drain(&self, stack: &mut MarkStack, mut budget_bytes: usize) -> bool {
        const FIFO: usize = 16;
        let mut fifo = [(0usize, 0usize); FIFO];
        let (mut head, mut len) = (0usize, 0usize);
        loop {
            // Refill the FIFO from the stack, prefetching each range's first line.
            while len < FIFO {
                let Some((start, end)) = stack.items.pop() else {
                    break;
                };
                if start & descr::DESCRIBED != 0 {
                    // One object scanned by its descriptor (see `descr`).
                    self.scan_entry(start, end, stack);
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
                return true;
            }
            let (start, end) = fifo[head];
            head = (head + 1) % FIFO;
            len -= 1;
            self.scan_range(start, end, stack);
            let scanned = end - start;
            if scanned >= budget_bytes {
                // Put back what the FIFO holds so the next step continues with it.
                for i in 0..len {
                    let (s, e) = fifo[(head + i) % FIFO];
                    stack.push(s, e);
                }
                return stack.is_empty();
            }
            budget_bytes -= scanned;
        }
    }
}
