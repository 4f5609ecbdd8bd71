//! Side bitmaps: one bit per 16-byte granule of the heap reservation, kept outside the
//! heap's pages (as in MMTk's side metadata) so that marking never writes to heap pages —
//! the dirty trackers would otherwise see every marked page as written.

use super::size_class::LOG_GRANULE_BYTES;
use crate::util::mmap::Mapping;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

/// A bit per granule over `[base, base + covered_bytes)`.
#[derive(Debug)]
pub struct SideBitmap {
    map: Mapping,
    base: usize,
}

impl SideBitmap {
    /// A zeroed bitmap for `covered_bytes` of heap starting at `base`.
    pub fn new(base: usize, covered_bytes: usize) -> io::Result<SideBitmap> {
        let bits = covered_bytes >> LOG_GRANULE_BYTES;
        Ok(SideBitmap {
            map: Mapping::new(bits.div_ceil(8))?,
            base,
        })
    }

    #[inline]
    fn word_and_mask(&self, addr: usize) -> (&AtomicU64, u64) {
        let bit = (addr - self.base) >> LOG_GRANULE_BYTES;
        let words = self.map.start() as *const AtomicU64;
        debug_assert!((bit >> 6) * 8 < self.map.len_bytes());
        // SAFETY: `addr` lies in the covered range (callers look it up in the heap first),
        // so the word index is inside the mapping, which lives as long as &self and is only
        // accessed through atomics.
        let word = unsafe { &*words.add(bit >> 6) };
        (word, 1u64 << (bit & 63))
    }

    /// Bytes of heap one bitmap word covers (64 granules); windows of this size aligned
    /// to it (the reservation is aligned far more) each map to one word.
    pub const WINDOW_BYTES: usize = 64 << LOG_GRANULE_BYTES;

    /// The word holding the bits of the window `[window, window + WINDOW_BYTES)`; bit `i`
    /// is the granule at `window + 16 * i`. `window` must be aligned to `WINDOW_BYTES`.
    #[inline]
    pub fn window_word(&self, window: usize) -> &AtomicU64 {
        debug_assert!(window.is_multiple_of(Self::WINDOW_BYTES));
        self.word_and_mask(window).0
    }

    /// Is the bit for `addr` set?
    #[inline]
    pub fn get(&self, addr: usize) -> bool {
        let (w, m) = self.word_and_mask(addr);
        w.load(Ordering::Acquire) & m != 0
    }

    /// Set the bit atomically; true if it was clear before.
    #[inline]
    pub fn set_atomic(&self, addr: usize) -> bool {
        let (w, m) = self.word_and_mask(addr);
        w.fetch_or(m, Ordering::AcqRel) & m == 0
    }

    /// Set the bit when only one thread writes this bitmap (the marker); true if it was
    /// clear before. Cheaper than `set_atomic`: no locked instruction.
    #[inline]
    pub fn set_single_writer(&self, addr: usize) -> bool {
        let (w, m) = self.word_and_mask(addr);
        let old = w.load(Ordering::Relaxed);
        if old & m != 0 {
            return false;
        }
        w.store(old | m, Ordering::Relaxed);
        true
    }

    /// Set the bit when several markers may set bits of the same word at once: a load
    /// first (most words met are already marked), then an atomic OR. True if this call
    /// set it.
    #[inline]
    pub fn set_parallel(&self, addr: usize) -> bool {
        let (w, m) = self.word_and_mask(addr);
        if w.load(Ordering::Relaxed) & m != 0 {
            return false;
        }
        w.fetch_or(m, Ordering::Relaxed) & m == 0
    }

    /// Clear the bit atomically; true if it was set before.
    #[inline]
    pub fn clear_atomic(&self, addr: usize) -> bool {
        let (w, m) = self.word_and_mask(addr);
        w.fetch_and(!m, Ordering::AcqRel) & m != 0
    }

    /// The words covering `[start, end)`; both must be multiples of 64 granules (1 KiB),
    /// which page-aligned ranges are.
    pub fn words(&self, start: usize, end: usize) -> &[AtomicU64] {
        debug_assert!((start - self.base).is_multiple_of(64 << LOG_GRANULE_BYTES));
        debug_assert!((end - self.base).is_multiple_of(64 << LOG_GRANULE_BYTES));
        let first = (start - self.base) >> (LOG_GRANULE_BYTES + 6);
        let n = (end - start) >> (LOG_GRANULE_BYTES + 6);
        let words = self.map.start() as *const AtomicU64;
        // SAFETY: the range is inside the covered heap, hence inside the mapping; atomics
        // make shared access sound.
        unsafe { std::slice::from_raw_parts(words.add(first), n) }
    }

    /// Clear every bit for `[start, end)` (page-aligned).
    pub fn clear_range(&self, start: usize, end: usize) {
        for w in self.words(start, end) {
            w.store(0, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_get_clear() {
        let base = 0x1000_0000;
        let b = SideBitmap::new(base, 1 << 20).unwrap();
        assert!(!b.get(base + 32));
        assert!(b.set_atomic(base + 32));
        assert!(!b.set_atomic(base + 32));
        assert!(b.get(base + 32) && !b.get(base + 16) && !b.get(base + 48));
        assert!(b.set_single_writer(base + 4096));
        assert!(!b.set_single_writer(base + 4096));
        assert_eq!(
            b.words(base, base + 8192)
                .iter()
                .map(|w| w.load(Ordering::Relaxed).count_ones())
                .sum::<u32>(),
            2
        );
        assert!(b.clear_atomic(base + 32));
        b.clear_range(base, base + 8192);
        assert!(!b.get(base + 4096));
    }
}
