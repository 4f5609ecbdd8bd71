//! One-pass read-and-clear of the accessed/dirty bits (public API layer).

use super::*;

/// The A and D bits of each 4 KiB page of a range, as [`read_clear_accessed_dirty`] found
/// them before clearing.
#[must_use = "the bits were cleared: they exist only here now"]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessDirty {
    /// First page.
    pub start: Gva,
    /// Pages covered.
    pub n_pages: u64,
    accessed: Vec<u64>,
    dirty: Vec<u64>,
}

impl AccessDirty {
    fn new(start: Gva, n_pages: u64) -> AccessDirty {
        let words = n_pages.div_ceil(64) as usize;
        AccessDirty {
            start,
            n_pages,
            accessed: vec![0; words],
            dirty: vec![0; words],
        }
    }
    fn index(&self, page: Gva) -> Option<usize> {
        let i = page.0.checked_sub(self.start.0)? / BYTES_IN_PAGE;
        (i < self.n_pages).then_some(i as usize)
    }
    /// Whether `page` (inside the range) had its A bit set.
    pub fn accessed(&self, page: Gva) -> bool {
        self.index(page)
            .is_some_and(|i| self.accessed[i / 64] & (1 << (i % 64)) != 0)
    }
    /// Whether `page` (inside the range) had its D bit set.
    pub fn dirty(&self, page: Gva) -> bool {
        self.index(page)
            .is_some_and(|i| self.dirty[i / 64] & (1 << (i % 64)) != 0)
    }
    /// The pages whose D bit was set, in address order.
    pub fn dirty_pages(&self) -> impl Iterator<Item = Gva> + '_ {
        (0..self.n_pages)
            .filter(|&i| self.dirty[(i / 64) as usize] & (1 << (i % 64)) != 0)
            .map(|i| Gva(self.start.0 + i * BYTES_IN_PAGE))
    }
    /// How many pages had their A bit set.
    pub fn n_accessed(&self) -> u64 {
        self.accessed.iter().map(|w| w.count_ones() as u64).sum()
    }
    /// How many pages had their D bit set.
    pub fn n_dirty(&self) -> u64 {
        self.dirty.iter().map(|w| w.count_ones() as u64).sum()
    }
}

/// Reads and clears the accessed and dirty bits of `[start, start + len_bytes)` (4 KiB
/// aligned, inside the user half) in one pass over the leaf tables (no per-page walk; a
/// huge leaf counts for each of its pages and is cleared only if the range covers it
/// entirely). Pages without an entry read as neither. The returned flush must be
/// performed ([`crate::services::tlb::flush`], or [`crate::services::tlb::flush_all`]) before the cleared bits can
/// be set again by a vCPU that cached the translation; every vCPU other than the caller's
/// flushes before its next entry into the guest anyway (cleared A bits would otherwise
/// defeat the monitor's flush avoidance).
pub fn read_clear_accessed_dirty(
    start: Gva,
    len_bytes: u64,
) -> Result<(AccessDirty, TlbFlush), PageTableError> {
    let mut out = AccessDirty::new(start, len_bytes / BYTES_IN_PAGE);
    let flush = read_clear_accessed_dirty_with(start, len_bytes, &mut |va, n, bits| {
        let first = (va - start.0) / BYTES_IN_PAGE;
        for i in first..first + n {
            let (w, b) = ((i / 64) as usize, 1u64 << (i % 64));
            if bits & A != 0 {
                out.accessed[w] |= b;
            }
            if bits & D != 0 {
                out.dirty[w] |= b;
            }
        }
    })?;
    Ok((out, flush))
}

/// [`read_clear_accessed_dirty`] without allocation: `f(va, n_pages, bits)` for each leaf
/// entry met, where `bits` is the entry before the clear (test [`pte::A`], [`pte::D`]) and
/// `[va, va + n_pages * 4 KiB)` the part of the range it maps.
#[must_use = "cleared bits stay clear in the TLB until it is flushed"]
pub fn read_clear_accessed_dirty_with(
    start: Gva,
    len_bytes: u64,
    f: &mut dyn FnMut(u64, u64, u64),
) -> Result<TlbFlush, PageTableError> {
    let d = dune()?;
    if len_bytes == 0
        || !start.0.is_multiple_of(BYTES_IN_PAGE)
        || !len_bytes.is_multiple_of(BYTES_IN_PAGE)
    {
        return Err(PageTableError::Unaligned {
            start: start.0,
            len_bytes,
            align_bytes: BYTES_IN_PAGE,
        });
    }
    let end = match start.0.checked_add(len_bytes) {
        Some(e) if e <= USER_END => e,
        _ => {
            return Err(PageTableError::OutsideUserHalf {
                start: start.0,
                len_bytes,
            })
        }
    };
    let mut any_accessed = false;
    let flush = d
        .dirty_view()
        .read_clear_accessed_dirty(start.0, end, &mut |va, n, bits| {
            any_accessed |= bits & A != 0;
            f(va, n, bits)
        });
    if any_accessed {
        // a vCPU may cache a translation whose entry now has A clear: make every vCPU
        // flush before it next enters, as the monitor's A-bit rule requires
        d.generation.fetch_add(1, Ordering::AcqRel);
    }
    Ok(flush)
}
