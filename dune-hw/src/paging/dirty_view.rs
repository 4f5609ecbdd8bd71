//! The lock-free A/D-bit view of a page table (paging layer): the collector's side, usable
//! from the host or the guest.

use super::pte::{self, Pte, A, API, D, P};
use super::walker::{self, AnyLeaf};
use crate::arch::addr::TlbFlush;

/// Lock-free view of a page table for A/D-bit work (the collector's side).
#[derive(Clone, Copy, Debug)]
pub struct DirtyView {
    root: u64,
}

impl DirtyView {
    /// # Safety
    /// `root` must be the root of a [`PageTable`](super::PageTable) that outlives this view.
    pub unsafe fn new(root: u64) -> DirtyView {
        DirtyView { root }
    }

    /// Calls `f(page)` for each page in `[start, end)` whose D bit is set, and clears it.
    /// Iterates the leaf tables (one pass, no per-page walk). A dirty huge leaf reports
    /// every page of it inside the range; it is cleared only when the range covers it
    /// entirely (clearing would lose the bit of its pages outside the range). The cleared
    /// bits take effect only after the returned flush.
    #[must_use = "cleared D bits stay clear in the TLB until it is flushed"]
    pub fn collect_and_clear(&self, start: u64, end: u64, f: &mut dyn FnMut(u64)) -> TlbFlush {
        let (mut scanned, mut cleared, mut written) = (0u64, 0u64, 0u64);
        let mut v = AnyLeaf(|p: &Pte, level: u32, base: u64, lo: u64, hi: u64| {
            scanned += (hi - lo) / 4096;
            if level == 1 {
                if let Some(preset) = p.take_dirty_preset() {
                    cleared += 1;
                    written += u64::from(!preset);
                    f(lo)
                }
                return true;
            }
            let whole = lo == base && hi == base + walker::span_bytes(level);
            if (whole && p.take_dirty()) || (!whole && p.is_dirty()) {
                cleared += u64::from(whole) * ((hi - lo) / 4096);
                written += u64::from(whole) * ((hi - lo) / 4096);
                let mut va = lo;
                while va < hi {
                    f(va);
                    va += 4096;
                }
            }
            true
        });
        // SAFETY: the root outlives this view (constructor duty); no allocation.
        unsafe { walker::visit(self.root, start, end, &mut v) };
        crate::arch::ledger::dirty_scan(scanned, cleared, written);
        TlbFlush::range(start, end)
    }

    /// 4 KiB pages of `[start, end)` whose D bit the MMU set (not preset on a fresh leaf,
    /// [`pte::PRESET_D`]) and no scan has cleared yet: writes after a D clear that
    /// [`DirtyView::collect_and_clear`] has not counted (yet). Read-only.
    pub fn count_written(&self, start: u64, end: u64) -> u64 {
        let mut n = 0;
        self.for_each_leaf(start, end, &mut |_va, n_pages, e| {
            if e & (P | D | pte::PRESET_D) == P | D {
                n += n_pages;
            }
        });
        n
    }

    /// Sets the D bit of every present, writable 4 KiB leaf of `[start, end)` that lacks it
    /// (entries that have it, huge leaves and absent entries are only read: no table write)
    /// and returns how many it set. Under shadow paging this is what lets the MMU write
    /// those pages again without a fault once the returned flush has made KVM resync the
    /// entries: the end of dirty tracking. A D bit set here is a false positive for a scan
    /// made before the next clear (marked [`pte::PRESET_D`], so the ledger does not count it
    /// as a write).
    #[must_use = "the shadow MMU sees the set bits only after the flush"]
    pub fn set_dirty(&self, start: u64, end: u64) -> (TlbFlush, u64) {
        let mut n = 0;
        let mut v = AnyLeaf(|p: &Pte, level: u32, _base: u64, _lo: u64, _hi: u64| {
            if level == 1 && p.get() & (P | pte::RW | D) == P | pte::RW {
                // marked preset: the ledger counts only D bits the MMU sets as writes
                p.set_bits(D | pte::PRESET_D);
                n += 1;
            }
            true
        });
        // SAFETY: the root outlives this view (constructor duty); no allocation.
        unsafe { walker::visit(self.root, start, end, &mut v) };
        (TlbFlush::range(start, end), n)
    }

    /// Calls `f(page)` for each dirty page in `[start, end)` without clearing.
    pub fn for_each_dirty(&self, start: u64, end: u64, f: &mut dyn FnMut(u64)) {
        self.for_each_page_with(start, end, D, f)
    }

    /// Calls `f(page)` for each present page in `[start, end)`.
    pub fn for_each_present(&self, start: u64, end: u64, f: &mut dyn FnMut(u64)) {
        self.for_each_page_with(start, end, P, f)
    }

    fn for_each_page_with(&self, start: u64, end: u64, bit: u64, f: &mut dyn FnMut(u64)) {
        let mut v = AnyLeaf(|p: &Pte, _level: u32, _base: u64, lo: u64, hi: u64| {
            if p.get() & bit != 0 {
                let mut va = lo;
                while va < hi {
                    f(va);
                    va += 4096;
                }
            }
            true
        });
        // SAFETY: the root outlives this view (constructor duty); no allocation.
        unsafe { walker::visit(self.root, start, end, &mut v) };
    }

    /// Reads and clears the A and D bits of `[start, end)` in one pass over the leaf
    /// tables: `f(va, n_pages, old)` for each leaf entry there (present or not), where
    /// `old` is the entry before the clear (test it with [`pte::A`](super::pte::A), [`pte::D`](super::pte::D)) and
    /// `[va, va + n_pages * 4 KiB)` the part of the range it maps (more than one page for
    /// a huge leaf). A huge leaf only partly inside the range is reported but not cleared.
    /// Allocation-free. Clearing A bits is only safe with the TLB flushed before the monitor
    /// next relies on them (see [`crate::api::pagetable::read_clear_accessed_dirty`]).
    #[must_use = "cleared bits stay clear in the TLB until it is flushed"]
    pub fn read_clear_accessed_dirty(
        &self,
        start: u64,
        end: u64,
        f: &mut dyn FnMut(u64, u64, u64),
    ) -> TlbFlush {
        let mut v = AnyLeaf(|p: &Pte, level: u32, base: u64, lo: u64, hi: u64| {
            let old = if level == 1 || (lo == base && hi == base + walker::span_bytes(level)) {
                p.take_bits(A | D)
            } else {
                p.get()
            };
            f(lo, (hi - lo) / 4096, old);
            true
        });
        // SAFETY: the root outlives this view (constructor duty); no allocation.
        unsafe { walker::visit(self.root, start, end, &mut v) };
        TlbFlush::range(start, end)
    }

    /// Calls `f(va, n_pages, entry)` for each existing leaf entry of `[start, end)` (as
    /// [`DirtyView::read_clear_accessed_dirty`], without clearing).
    pub fn for_each_leaf(&self, start: u64, end: u64, f: &mut dyn FnMut(u64, u64, u64)) {
        let mut v = AnyLeaf(|p: &Pte, _level: u32, _base: u64, lo: u64, hi: u64| {
            f(lo, (hi - lo) / 4096, p.get());
            true
        });
        // SAFETY: the root outlives this view (constructor duty); no allocation.
        unsafe { walker::visit(self.root, start, end, &mut v) };
    }

    /// The leaf entry covering `va` and its level (1: 4 KiB, 2: 2 MiB, 3: 1 GiB); `None` if
    /// its tables are missing.
    pub fn lookup(&self, va: u64) -> Option<(u64, u32)> {
        // SAFETY: the root outlives this view (constructor duty).
        unsafe { walker::lookup(self.root, va) }.map(|(p, l)| (p.get(), l))
    }

    /// Atomically replaces the 4 KiB leaf entry of `page` by `f(old)` if its tables exist and
    /// it carries [`API`] (an entry the program set); `f` returns `None` to leave it as it
    /// is. Returns the old entry, or `None` if there was no such entry or `f` declined.
    /// Lock-free and allocation-free (usable from a guest fault handler): table frames are
    /// never freed, and a concurrent update by the monitor is not lost (compare-exchange).
    pub fn update_api_leaf(&self, page: u64, f: &mut dyn FnMut(u64) -> Option<u64>) -> Option<u64> {
        // SAFETY: the root outlives this view (constructor duty).
        let (p, level) = unsafe { walker::lookup(self.root, page) }?;
        if level != 1 {
            return None;
        }
        let mut old = p.get();
        loop {
            if old & API == 0 {
                return None;
            }
            let new = f(old)?;
            match p.compare_exchange(old, new) {
                Ok(()) => return Some(old),
                Err(now) => old = now,
            }
        }
    }

    /// Sets the D bit of `page` again (restores a destructive read that could not be used).
    pub fn restore_dirty(&self, page: u64) {
        // SAFETY: as above.
        if let Some(p) = unsafe { walker::leaf(self.root, page) } {
            if p.is_present() {
                p.set_bits(D)
            }
        }
    }

    /// The raw leaf entry of `va` (a huge leaf's for a page under one; 0 if its tables are
    /// missing).
    pub fn entry(&self, va: u64) -> u64 {
        // SAFETY: as above.
        unsafe { walker::leaf(self.root, va) }.map_or(0, |p| p.get())
    }
}
