//! The mark stack: ranges (and described objects) still to scan. Below the heap (the collector's state holds
//! one); the marking that fills it is in [`crate::mark`].

use crate::util::mmap::MmapVec;

/// Ranges still to scan, `[start, end)`, word-aligned.
#[derive(Debug, Default)]
pub struct MarkStack {
    pub(super) items: MmapVec<(usize, usize)>,
}

impl MarkStack {
    /// An empty stack.
    pub fn new() -> MarkStack {
        MarkStack::default()
    }

    /// Push a range to scan.
    #[inline]
    pub fn push(&mut self, start: usize, end: usize) {
        if start < end {
            self.items
                .push((start, end))
                .expect("mapping memory for the mark stack failed");
        }
    }

    /// Push an entry taken from another mark stack as it is (a range or a described
    /// entry): what parallel marking uses to publish and steal work.
    #[inline]
    pub(crate) fn push_raw(&mut self, entry: (usize, usize)) {
        self.items
            .push(entry)
            .expect("mapping memory for the mark stack failed");
    }

    /// Push a described entry `(start | descr::DESCRIBED, descriptor)` (see
    /// [`crate::mark::descr`]).
    #[inline]
    pub fn push_described(&mut self, tagged_start: usize, descr: usize) {
        self.items
            .push((tagged_start, descr))
            .expect("mapping memory for the mark stack failed");
    }

    /// True when nothing is left to scan.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Ranges waiting.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Forget everything (a cycle was abandoned).
    pub fn clear(&mut self) {
        self.items.clear();
    }
}
