//! Segregated size classes for small objects, and how many pages a span of each class has.
//!
//! Sizes are multiples of the 16-byte granule: every granule up to 128 bytes, then four
//! steps per power of two up to [`MAX_SMALL_BYTES`]. Powers of two are classes, so an
//! object whose size is a multiple of its alignment (up to a page) is naturally aligned.

use crate::util::mmap::BYTES_IN_PAGE;

/// Allocation granule: object sizes and alignments are multiples of it.
pub const GRANULE_BYTES: usize = 16;
/// log2 of [`GRANULE_BYTES`].
pub const LOG_GRANULE_BYTES: usize = 4;
/// Largest small object; bigger ones get whole pages of their own.
pub const MAX_SMALL_BYTES: usize = 16 * 1024;

const fn build_sizes() -> ([u32; 64], usize) {
    let mut sizes = [0u32; 64];
    let mut n = 0;
    let mut s = GRANULE_BYTES;
    while s <= 128 {
        sizes[n] = s as u32;
        n += 1;
        s += GRANULE_BYTES;
    }
    let mut base = 128;
    while base < MAX_SMALL_BYTES {
        let step = base / 4;
        let mut k = 1;
        while k <= 4 {
            sizes[n] = (base + k * step) as u32;
            n += 1;
            k += 1;
        }
        base *= 2;
    }
    (sizes, n)
}

const SIZES_AND_COUNT: ([u32; 64], usize) = build_sizes();
/// Number of small size classes.
pub const N_CLASSES: usize = SIZES_AND_COUNT.1;
const SIZES: [u32; 64] = SIZES_AND_COUNT.0;

const fn build_lookup() -> [u8; MAX_SMALL_BYTES / GRANULE_BYTES + 1] {
    let mut t = [0u8; MAX_SMALL_BYTES / GRANULE_BYTES + 1];
    let mut g = 0;
    let mut c = 0;
    while g <= MAX_SMALL_BYTES / GRANULE_BYTES {
        while (SIZES[c] as usize) < g * GRANULE_BYTES {
            c += 1;
        }
        t[g] = c as u8;
        g += 1;
    }
    t
}

const LOOKUP: [u8; MAX_SMALL_BYTES / GRANULE_BYTES + 1] = build_lookup();

const fn build_pages() -> [u8; 64] {
    let mut pages = [0u8; 64];
    let mut c = 0;
    while c < N_CLASSES {
        let size = SIZES[c] as usize;
        // At least 16 KiB and 4 objects; then grow until at most 1/16 is wasted.
        let mut n = 4;
        while n * BYTES_IN_PAGE < 4 * size {
            n += 1;
        }
        while (n * BYTES_IN_PAGE) % size > n * BYTES_IN_PAGE / 16 && n < 32 {
            n += 1;
        }
        pages[c] = n as u8;
        c += 1;
    }
    pages
}

const PAGES: [u8; 64] = build_pages();

/// A small size class, by index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SizeClass(pub u8);

impl SizeClass {
    /// The class for an object of `len_bytes` (1 ..= MAX_SMALL_BYTES) aligned to
    /// `align_bytes` (a power of two up to a page), or None if it is not small.
    pub fn for_request(len_bytes: usize, align_bytes: usize) -> Option<SizeClass> {
        let want = len_bytes.max(align_bytes).max(1);
        if want > MAX_SMALL_BYTES {
            return None;
        }
        let mut c = LOOKUP[want.div_ceil(GRANULE_BYTES)] as usize;
        while c < N_CLASSES {
            // align_bytes is a power of two: a mask, not a division (this is the fast path).
            if SIZES[c] as usize & (align_bytes - 1) == 0 {
                return Some(SizeClass(c as u8));
            }
            c += 1;
        }
        None
    }

    /// Bytes in each object of this class.
    pub fn object_bytes(self) -> usize {
        SIZES[self.0 as usize] as usize
    }

    /// Pages in a span of this class.
    pub fn span_pages(self) -> usize {
        PAGES[self.0 as usize] as usize
    }

    /// Objects in a span of this class.
    pub fn objects_per_span(self) -> usize {
        self.span_pages() * BYTES_IN_PAGE / self.object_bytes()
    }

    /// The index.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_are_sorted_granular_and_cover_everything() {
        const { assert!(N_CLASSES > 20 && N_CLASSES < 64) };
        for c in 1..N_CLASSES {
            assert!(SIZES[c] > SIZES[c - 1]);
            assert_eq!(SIZES[c] as usize % GRANULE_BYTES, 0);
        }
        assert_eq!(SIZES[N_CLASSES - 1] as usize, MAX_SMALL_BYTES);
        for len in 1..=MAX_SMALL_BYTES {
            let c = SizeClass::for_request(len, 8).unwrap();
            assert!(c.object_bytes() >= len);
            if c.0 > 0 {
                assert!((SIZES[c.0 as usize - 1] as usize) < len);
            }
        }
        assert!(SizeClass::for_request(MAX_SMALL_BYTES + 1, 8).is_none());
    }

    #[test]
    fn alignment_is_honoured() {
        for align in [16usize, 32, 64, 128, 256, 1024, 4096] {
            for len in [1usize, 17, 100, 1000, 5000] {
                if let Some(c) = SizeClass::for_request(len, align) {
                    assert_eq!(c.object_bytes() % align, 0, "len {len} align {align}");
                    assert!(c.object_bytes() >= len);
                }
            }
        }
    }

    #[test]
    fn spans_waste_little() {
        for c in 0..N_CLASSES {
            let sc = SizeClass(c as u8);
            let bytes = sc.span_pages() * BYTES_IN_PAGE;
            assert!(sc.objects_per_span() >= 1);
            assert!(
                bytes % sc.object_bytes() <= bytes / 8,
                "class {c} wastes too much"
            );
        }
    }
}
