//! Guest page tables: 4-level, identity (va == pa), living in process memory. The monitor
//! maps 4 KiB leaves; [`crate::pagetable`] may add huge leaves (2 MiB, 1 GiB), which every
//! operation here handles (kept when a change covers all of one, split otherwise).
//!
//! - [`pte`]     atomic entries and flag bits
//! - [`walker`]  the one walk + `Visitor`
//! - [`frames`]  `FrameAllocator` for table pages
//!
//! Mutation (map/unmap/protect) happens host-side under the process lock; reading and
//! clearing A/D bits is lock-free (atomic per entry) and works from the host or the guest.

pub mod frames;
pub mod pte;
pub mod walker;

use crate::addr::TlbFlush;
use crate::error::DuneError;
use frames::{FrameAllocator, PoolFrames};
use pte::{Pte, A, API, D, P, PS};
use walker::{AnyLeaf, OutOfFrames};

/// PAT bit of a huge leaf.
const PAT_HUGE: u64 = 1 << 12;

/// The process's guest page table.
#[derive(Debug)]
pub struct PageTable {
    root: u64,
    frames: PoolFrames,
}

impl PageTable {
    /// An empty table whose frames come from `frames`.
    pub fn new(mut frames: PoolFrames) -> Result<PageTable, DuneError> {
        let root = frames
            .alloc_zeroed()
            .ok_or(DuneError::OutOfPageTableFrames)?;
        Ok(PageTable { root, frames })
    }

    /// The level-4 table (CR3 value without flag bits).
    pub fn root(&self) -> u64 {
        self.root
    }

    /// The reserved range of page-table frames.
    pub fn frames_range(&self) -> (u64, u64) {
        self.frames.range()
    }

    /// Frames used by tables so far.
    pub fn n_frames_used(&self) -> u64 {
        self.frames.n_frames_used()
    }

    /// Maps `[start, end)` identity with `PROT_*` bits `prot`. PROT_NONE makes the entries
    /// not present but keeps their D bit (ignored by the MMU while P is clear), so a page
    /// written before an mprotect(PROT_NONE) is still reported dirty.
    ///
    /// An entry that was not present becomes present with A set, and D too when writable
    /// ([`pte::fresh_leaf_bits`]): the MMU then has no A/D update to make on the first
    /// access (under shadow paging, a fault and a resync each), and KVM prefetches the
    /// neighbouring shadow entries only for guest entries with A set. A present entry keeps
    /// its A/D bits. A preset D bit is only ever a false positive for the dirty scan (the
    /// arm clears it like any other, then flushes).
    pub fn map(&mut self, start: u64, end: u64, prot: i32) -> Result<(), DuneError> {
        self.map_accessed(start, end, prot).map(|_| ())
    }

    /// [`PageTable::map`], returning whether an entry it replaced was present with its A bit
    /// set. An entry whose A bit is clear at the (atomic) replacement was never used for a
    /// translation — the MMU (and KVM's shadow MMU, prefetches included) sets A before it
    /// caches one — so changing it needs no TLB flush.
    pub fn map_accessed(&mut self, start: u64, end: u64, prot: i32) -> Result<bool, DuneError> {
        self.map_with(start, end, prot, false)
    }

    /// [`PageTable::map_accessed`] for the on-demand fault path: entries set through
    /// [`crate::pagetable`] (software bit [`API`]) keep their value.
    pub fn fill_accessed(&mut self, start: u64, end: u64, prot: i32) -> Result<bool, DuneError> {
        self.map_with(start, end, prot, true)
    }

    fn map_with(
        &mut self,
        start: u64,
        end: u64,
        prot: i32,
        keep_api: bool,
    ) -> Result<bool, DuneError> {
        let flags = pte::leaf_flags(prot);
        let mut accessed = false;
        // SAFETY: root and all tables are frames of `self.frames`, which lives as long as self.
        let stats = unsafe {
            walker::walk_with(
                self.root,
                start,
                end,
                Some(&mut self.frames),
                true,
                &mut AnyLeaf(|p: &Pte, level: u32, va: u64, _lo: u64, _hi: u64| {
                    if level > 1 {
                        // a huge leaf the program set: kept on the fault path, else split
                        return keep_api && p.get() & API != 0;
                    }
                    let old = p.update(&mut |old| {
                        if keep_api && old & API != 0 {
                            old
                        } else if flags == 0 {
                            old & D
                        } else if old & P == 0 {
                            va | flags | pte::fresh_leaf_bits(flags) | (old & D)
                        } else {
                            va | flags | (old & (A | D))
                        }
                    });
                    accessed |= old & (pte::P | A) == pte::P | A;
                    true
                }),
            )
        }
        .map_err(|_| DuneError::OutOfPageTableFrames)?;
        Ok(accessed || stats.split_accessed)
    }

    /// Changes the protection of the *present* entries of `[start, end)` only (tables are
    /// not created; absent entries stay absent): for large mappings mapped lazily, on fault.
    /// Keeps A/D bits. Needs a TLB flush.
    #[must_use = "reduced permissions take effect only after the flush"]
    pub fn protect_present(&mut self, start: u64, end: u64, prot: i32) -> TlbFlush {
        self.protect_present_accessed(start, end, prot).0
    }

    /// [`PageTable::protect_present`], also saying whether a changed entry had its A bit
    /// set (see [`PageTable::map_accessed`]).
    #[must_use = "reduced permissions take effect only after the flush"]
    pub fn protect_present_accessed(
        &mut self,
        start: u64,
        end: u64,
        prot: i32,
    ) -> (TlbFlush, bool) {
        let flags = pte::leaf_flags(prot);
        let mut accessed = false;
        let r = self.split_walk(start, end, &mut |va: u64, p: &Pte| {
            let old = p.update(&mut |old| {
                if old & pte::P == 0 {
                    old
                } else if flags == 0 {
                    old & D
                } else {
                    va | flags | (old & (A | D))
                }
            });
            accessed |= old & (pte::P | A) == pte::P | A;
        });
        (TlbFlush::range(start, end), accessed || r)
    }

    /// Walks the existing entries of `[start, end)` with `leaf`, splitting the huge leaves
    /// the range covers only in part; returns whether a split or removed huge leaf had its
    /// A bit set. Should the frame pool run out while splitting, the huge leaves left are
    /// made not present (D kept): the monitor maps their pages again on demand (4 KiB,
    /// with the host's protection).
    fn split_walk(&mut self, start: u64, end: u64, leaf: &mut dyn FnMut(u64, &Pte)) -> bool {
        // SAFETY: root and all tables are frames of `self.frames`, alive as long as self.
        let r = unsafe {
            walker::walk_with(
                self.root,
                start,
                end,
                Some(&mut self.frames),
                false,
                &mut AnyLeaf(|p: &Pte, level: u32, va: u64, _lo: u64, _hi: u64| {
                    if level == 1 {
                        leaf(va, p);
                    }
                    level == 1
                }),
            )
        };
        match r {
            Ok(st) => st.split_accessed,
            Err(OutOfFrames) => {
                // SAFETY: as above; no allocation.
                unsafe {
                    walker::visit(
                        self.root,
                        start,
                        end,
                        &mut AnyLeaf(|p: &Pte, level: u32, va: u64, _lo: u64, _hi: u64| {
                            if level == 1 {
                                leaf(va, p);
                            } else {
                                p.update(&mut |old| old & D);
                            }
                            true
                        }),
                    )
                };
                true
            }
        }
    }

    /// Changes the protection of `[start, end)`; keeps A/D bits. Needs a TLB flush.
    #[must_use = "reduced permissions take effect only after the flush"]
    pub fn protect(&mut self, start: u64, end: u64, prot: i32) -> Result<TlbFlush, DuneError> {
        self.map(start, end, prot)?;
        Ok(TlbFlush::range(start, end))
    }

    /// Unmaps `[start, end)`. Needs a TLB flush.
    #[must_use = "the mapping stays usable through stale TLB entries until the flush"]
    pub fn unmap(&mut self, start: u64, end: u64) -> TlbFlush {
        self.unmap_accessed(start, end).0
    }

    /// [`PageTable::unmap`], also saying whether a removed entry had its A bit set (see
    /// [`PageTable::map_accessed`]): if none had, no vCPU can hold a translation of them.
    #[must_use = "the mapping stays usable through stale TLB entries until the flush"]
    pub fn unmap_accessed(&mut self, start: u64, end: u64) -> (TlbFlush, bool) {
        let mut accessed = false;
        let r = self.split_walk(start, end, &mut |_va: u64, p: &Pte| {
            let old = p.update(&mut |_| 0);
            accessed |= old & (pte::P | A) == pte::P | A;
        });
        (TlbFlush::range(start, end), accessed || r)
    }

    /// Sets `[start, end)` (4 KiB aligned) to `prot` for the program ([`crate::pagetable`]):
    /// creates missing tables and marks the entries [`API`] (the on-demand fault path keeps
    /// them). A huge leaf the range covers entirely keeps its size; one it covers in part
    /// is split. PROT_NONE makes entries not present, keeping D. Returns whether a changed
    /// entry had been used for a translation (see [`PageTable::map_accessed`]).
    ///
    /// `host_w`: the host mapping allows writing the whole range (recorded as
    /// [`pte::HOST_W`] in the 4 KiB entries, for [`DirtyView::update_api_leaf`]).
    pub fn api_set(
        &mut self,
        start: u64,
        end: u64,
        prot: i32,
        host_w: bool,
    ) -> Result<bool, DuneError> {
        let flags = pte::leaf_flags(prot);
        let hw = if host_w { pte::HOST_W } else { 0 };
        let mut accessed = false;
        // SAFETY: root and all tables are frames of `self.frames`, alive as long as self.
        let stats = unsafe {
            walker::walk_with(
                self.root,
                start,
                end,
                Some(&mut self.frames),
                true,
                &mut AnyLeaf(|p: &Pte, level: u32, base: u64, lo: u64, hi: u64| {
                    if level == 1 {
                        let old = p.update(&mut |old| {
                            if flags == 0 {
                                (old & D) | API | hw
                            } else {
                                base | flags | API | hw | (old & (A | D))
                            }
                        });
                        accessed |= old & (P | A) == P | A;
                        return true;
                    }
                    if flags == 0 || lo != base || hi != base + walker::span_bytes(level) {
                        return false;
                    }
                    let old = p.update(&mut |old| {
                        walker::huge_base(level, old)
                            | flags
                            | PS
                            | API
                            | (old & (A | D | PAT_HUGE))
                    });
                    accessed |= old & A != 0;
                    true
                }),
            )
        }
        .map_err(|_| DuneError::OutOfPageTableFrames)?;
        Ok(accessed || stats.split_accessed)
    }

    /// Maps `[start, end)` identity with huge leaves of `level` (2: 2 MiB, 3: 1 GiB) and
    /// `prot` (not PROT_NONE), marked [`API`]. The range must be aligned to the leaf size
    /// (checked by the caller). Whatever the entries held is replaced: a table of smaller
    /// entries is folded in (its A/D bits carried over to the leaf; its frames are not
    /// reused). Returns whether a replaced entry had been used for a translation.
    pub fn map_huge(
        &mut self,
        start: u64,
        end: u64,
        prot: i32,
        level: u32,
    ) -> Result<bool, DuneError> {
        let flags = pte::leaf_flags(prot);
        debug_assert!(flags != 0 && (level == 2 || level == 3));
        let root = self.root;
        let mut accessed = false;
        // SAFETY: root and all tables are frames of `self.frames`, alive as long as self.
        unsafe {
            walker::for_each_entry_at(
                root,
                start,
                end,
                level,
                &mut self.frames,
                &mut |va: u64, p: &Pte| {
                    let cur = p.get();
                    let mut bits = 0;
                    if walker::is_huge_leaf(level, cur) {
                        bits = cur & (A | D);
                    } else if cur & P != 0 {
                        // a table: fold the A/D bits of everything under it
                        // SAFETY: the table is one of ours (caller duty of the walk).
                        walker::visit(
                            root,
                            va,
                            va + walker::span_bytes(level),
                            &mut AnyLeaf(|q: &Pte, _l: u32, _b: u64, _lo: u64, _hi: u64| {
                                let e = q.get();
                                if e & P != 0 {
                                    bits |= e & A
                                }
                                bits |= e & D;
                                true
                            }),
                        );
                    }
                    let old = p.update(&mut |_| va | flags | PS | API | bits);
                    accessed |= old & P != 0 && bits & A != 0;
                },
            )
        }
        .map_err(|_| DuneError::OutOfPageTableFrames)?;
        Ok(accessed)
    }

    /// The leaf entry mapping `va`, if its tables exist.
    pub fn leaf(&self, va: u64) -> Option<&Pte> {
        // SAFETY: tables are frames of `self.frames`, alive as long as `&self`.
        unsafe { walker::leaf(self.root, va) }
    }
}

/// Lock-free view of a page table for A/D-bit work (the collector's side).
#[derive(Clone, Copy, Debug)]
pub struct DirtyView {
    root: u64,
}

impl DirtyView {
    /// # Safety
    /// `root` must be the root of a [`PageTable`] that outlives this view.
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
        let mut v = AnyLeaf(|p: &Pte, level: u32, base: u64, lo: u64, hi: u64| {
            if level == 1 {
                if p.take_dirty() {
                    f(lo)
                }
                return true;
            }
            let whole = lo == base && hi == base + walker::span_bytes(level);
            if (whole && p.take_dirty()) || (!whole && p.is_dirty()) {
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
        TlbFlush::range(start, end)
    }

    /// Sets the D bit of every present, writable 4 KiB leaf of `[start, end)` that lacks it
    /// (entries that have it, huge leaves and absent entries are only read: no table write)
    /// and returns how many it set. Under shadow paging this is what lets the MMU write
    /// those pages again without a fault once the returned flush has made KVM resync the
    /// entries: the end of dirty tracking. A D bit set here is a false positive for a scan
    /// made before the next clear.
    #[must_use = "the shadow MMU sees the set bits only after the flush"]
    pub fn set_dirty(&self, start: u64, end: u64) -> (TlbFlush, u64) {
        let mut n = 0;
        let mut v = AnyLeaf(|p: &Pte, level: u32, _base: u64, _lo: u64, _hi: u64| {
            if level == 1 && p.get() & (P | pte::RW | D) == P | pte::RW {
                p.set_bits(D);
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
    /// `old` is the entry before the clear (test it with [`pte::A`], [`pte::D`]) and
    /// `[va, va + n_pages * 4 KiB)` the part of the range it maps (more than one page for
    /// a huge leaf). A huge leaf only partly inside the range is reported but not cleared.
    /// Allocation-free. Clearing A bits is only safe with the TLB flushed before the monitor
    /// next relies on them (see [`crate::pagetable::read_clear_accessed_dirty`]).
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

#[cfg(test)]
mod tests {
    use super::pte::{NX, P, RW, US};
    use super::*;

    /// Clears the A/D bits of the 4 KiB leaves of `[start, end)`: the state of entries
    /// nothing used since an arm.
    fn clear_accessed_dirty(pt: &PageTable, start: u64, end: u64) {
        for va in (start..end).step_by(4096) {
            pt.leaf(va).unwrap().take_bits(A | D);
        }
    }

    #[test]
    fn fresh_leaves_get_a_and_d_preset_and_present_ones_keep_theirs() {
        let frames = PoolFrames::reserve(1 << 20).unwrap();
        let mut pt = PageTable::new(frames).unwrap();
        let rw = libc::PROT_READ | libc::PROT_WRITE;
        pt.map(0x40_0000, 0x40_1000, rw).unwrap();
        pt.map(0x40_1000, 0x40_2000, libc::PROT_READ).unwrap();
        assert_eq!(
            pt.leaf(0x40_0000).unwrap().get(),
            0x40_0000 | P | RW | US | NX | A | D,
            "writable: A and D"
        );
        assert_eq!(
            pt.leaf(0x40_1000).unwrap().get(),
            0x40_1000 | P | US | NX | A,
            "read-only: A only"
        );
        // the fault path presets too
        pt.fill_accessed(0x40_2000, 0x40_3000, rw).unwrap();
        assert_eq!(pt.leaf(0x40_2000).unwrap().get() & (A | D), A | D);
        // an arm clears them; a later change of a present entry does not set them again
        clear_accessed_dirty(&pt, 0x40_0000, 0x40_3000);
        pt.map(0x40_0000, 0x40_3000, rw).unwrap();
        pt.fill_accessed(0x40_0000, 0x40_3000, rw).unwrap();
        for va in [0x40_0000, 0x40_1000, 0x40_2000] {
            assert_eq!(pt.leaf(va).unwrap().get() & (A | D), 0, "{va:#x}");
        }
        // SAFETY: pt outlives the view.
        let view = unsafe { DirtyView::new(pt.root()) };
        let mut got = Vec::new();
        let _f = view.collect_and_clear(0x40_0000, 0x40_3000, &mut |p| got.push(p));
        assert!(got.is_empty(), "nothing reported after the clear: {got:x?}");
        // not present (PROT_NONE) then present again: a fresh entry, D preset
        let _f = pt.protect(0x40_1000, 0x40_2000, libc::PROT_NONE).unwrap();
        assert_eq!(pt.leaf(0x40_1000).unwrap().get(), 0);
        pt.map(0x40_1000, 0x40_2000, rw).unwrap();
        let _f = view.collect_and_clear(0x40_0000, 0x40_3000, &mut |p| got.push(p));
        assert_eq!(got, vec![0x40_1000], "a false positive, never a lost write");
    }

    #[test]
    fn set_dirty_marks_only_present_writable_clean_leaves() {
        let frames = PoolFrames::reserve(1 << 20).unwrap();
        let mut pt = PageTable::new(frames).unwrap();
        let rw = libc::PROT_READ | libc::PROT_WRITE;
        pt.map(0x40_0000, 0x40_3000, rw).unwrap();
        pt.map(0x40_3000, 0x40_4000, libc::PROT_READ).unwrap();
        pt.map(0x40_4000, 0x40_5000, libc::PROT_NONE).unwrap();
        clear_accessed_dirty(&pt, 0x40_0000, 0x40_5000);
        pt.leaf(0x40_1000).unwrap().set_bits(D);
        // SAFETY: pt outlives the view.
        let view = unsafe { DirtyView::new(pt.root()) };
        let (_f, n) = view.set_dirty(0x40_0000, 0x40_6000);
        assert_eq!(n, 2, "the two clean writable pages");
        for (va, d) in [
            (0x40_0000, D),
            (0x40_1000, D),
            (0x40_2000, D),
            (0x40_3000, 0),
            (0x40_4000, 0),
        ] {
            assert_eq!(pt.leaf(va).unwrap().get() & D, d, "{va:#x}");
        }
        // a later scan reports them (false positives until the next clear), and a clear
        // after it leaves nothing set
        let mut got = Vec::new();
        let _f = view.collect_and_clear(0x40_0000, 0x40_6000, &mut |p| got.push(p));
        assert_eq!(got, vec![0x40_0000, 0x40_1000, 0x40_2000]);
        let mut again = Vec::new();
        view.for_each_dirty(0x40_0000, 0x40_6000, &mut |p| again.push(p));
        assert!(again.is_empty(), "{again:x?}");
    }

    #[test]
    fn map_protect_unmap_and_dirty_scan() {
        let frames = PoolFrames::reserve(1 << 20).unwrap();
        let mut pt = PageTable::new(frames).unwrap();
        pt.map(0x40_0000, 0x40_4000, libc::PROT_READ | libc::PROT_WRITE)
            .unwrap();
        assert_eq!(
            pt.leaf(0x40_1000).unwrap().get(),
            0x40_1000 | P | RW | US | NX | A | D
        );
        clear_accessed_dirty(&pt, 0x40_0000, 0x40_4000);
        pt.leaf(0x40_2000).unwrap().set_bits(D);
        let _f = pt.protect(0x40_2000, 0x40_3000, libc::PROT_READ).unwrap();
        assert_eq!(
            pt.leaf(0x40_2000).unwrap().get(),
            0x40_2000 | P | US | NX | D,
            "D kept"
        );
        // SAFETY: pt outlives the view.
        let view = unsafe { DirtyView::new(pt.root()) };
        let mut got = Vec::new();
        let _f = view.collect_and_clear(0x40_0000, 0x40_4000, &mut |p| got.push(p));
        assert_eq!(got, vec![0x40_2000]);
        assert_eq!(view.entry(0x40_2000) & D, 0);
        view.restore_dirty(0x40_2000);
        assert_ne!(view.entry(0x40_2000) & D, 0);
        let _f = pt.unmap(0x40_0000, 0x40_4000);
        assert_eq!(view.entry(0x40_1000), 0);
        assert!(pt.n_frames_used() == 4, "root + 3 levels");
    }

    #[test]
    fn prot_none_keeps_dirty_and_protect_present_skips_absent() {
        let frames = PoolFrames::reserve(1 << 20).unwrap();
        let mut pt = PageTable::new(frames).unwrap();
        pt.map(0x80_0000, 0x80_2000, libc::PROT_READ | libc::PROT_WRITE)
            .unwrap();
        clear_accessed_dirty(&pt, 0x80_0000, 0x80_2000);
        pt.leaf(0x80_0000).unwrap().set_bits(D);
        let _f = pt.protect(0x80_0000, 0x80_2000, libc::PROT_NONE).unwrap();
        assert_eq!(pt.leaf(0x80_0000).unwrap().get(), D, "not present, D kept");
        assert_eq!(pt.leaf(0x80_1000).unwrap().get(), 0);
        // lazily mapped range: only present entries change, none are created
        let _f = pt.protect_present(0x80_0000, 0x4000_0000, libc::PROT_READ);
        assert_eq!(pt.leaf(0x80_0000).unwrap().get(), D);
        assert!(pt.leaf(0x2000_0000).is_none());
        pt.map(0x80_0000, 0x80_1000, libc::PROT_READ).unwrap();
        assert_eq!(
            pt.leaf(0x80_0000).unwrap().get(),
            0x80_0000 | P | US | NX | A | D,
            "present again: A preset, D kept"
        );
        let _f = pt.protect_present(0x80_0000, 0x80_2000, libc::PROT_READ | libc::PROT_WRITE);
        assert_eq!(
            pt.leaf(0x80_0000).unwrap().get(),
            0x80_0000 | P | US | RW | NX | A | D
        );
        assert_eq!(pt.leaf(0x80_1000).unwrap().get(), 0, "absent stays absent");
    }

    #[test]
    fn only_entries_used_for_a_translation_need_a_flush() {
        let frames = PoolFrames::reserve(1 << 20).unwrap();
        let mut pt = PageTable::new(frames).unwrap();
        let rw = libc::PROT_READ | libc::PROT_WRITE;
        assert!(
            !pt.map_accessed(0xc0_0000, 0xc0_4000, rw).unwrap(),
            "new entries"
        );
        // new entries have A preset: a change needs a flush until it is cleared
        assert!(pt.map_accessed(0xc0_0000, 0xc0_4000, rw).unwrap());
        clear_accessed_dirty(&pt, 0xc0_0000, 0xc0_4000);
        assert!(!pt
            .map_accessed(0xc0_0000, 0xc0_4000, libc::PROT_READ)
            .unwrap());
        pt.leaf(0xc0_1000).unwrap().set_bits(A);
        let (_f, used) = pt.protect_present_accessed(0xc0_0000, 0xc0_2000, libc::PROT_NONE);
        assert!(used, "an accessed entry was restricted");
        let (_f, used) = pt.unmap_accessed(0xc0_2000, 0xc0_4000);
        assert!(!used, "never accessed");
        pt.map(0xc0_2000, 0xc0_3000, rw).unwrap();
        pt.leaf(0xc0_2000).unwrap().set_bits(A | D);
        assert!(pt
            .map_accessed(0xc0_2000, 0xc0_3000, libc::PROT_READ)
            .unwrap());
        assert_ne!(pt.leaf(0xc0_2000).unwrap().get() & D, 0, "D kept");
        let (_f, used) = pt.unmap_accessed(0xc0_2000, 0xc0_3000);
        assert!(used);
        assert_eq!(pt.leaf(0xc0_2000).unwrap().get(), 0);
    }

    #[test]
    fn api_entries_survive_the_fault_path_and_huge_leaves_are_handled() {
        let frames = PoolFrames::reserve(1 << 20).unwrap();
        let mut pt = PageTable::new(frames).unwrap();
        let rw = libc::PROT_READ | libc::PROT_WRITE;
        let base = 0x4000_0000u64;
        pt.map(base, base + 0x4000, rw).unwrap();
        clear_accessed_dirty(&pt, base, base + 0x4000);
        pt.leaf(base).unwrap().set_bits(A | D);
        assert!(
            pt.api_set(base, base + 0x1000, libc::PROT_READ, true)
                .unwrap(),
            "A was set"
        );
        assert_eq!(
            pt.leaf(base).unwrap().get(),
            base | P | US | NX | API | pte::HOST_W | A | D
        );
        // the on-demand path keeps it; an mprotect-like map replaces it
        pt.fill_accessed(base, base + 0x4000, rw).unwrap();
        assert_eq!(pt.leaf(base).unwrap().get() & (RW | API), API);
        pt.map(base, base + 0x1000, rw).unwrap();
        assert_eq!(pt.leaf(base).unwrap().get() & (RW | API), RW);
        // unmap by the program: not present, D kept, marked
        assert!(!pt
            .api_set(base + 0x1000, base + 0x2000, libc::PROT_NONE, true)
            .unwrap());
        assert_eq!(pt.leaf(base + 0x1000).unwrap().get(), API | pte::HOST_W);
        // the lock-free update (guest fault handlers) changes only entries the program set
        // SAFETY: pt outlives the view.
        let v = unsafe { DirtyView::new(pt.root()) };
        assert_eq!(
            v.update_api_leaf(base + 0x2000, &mut |o| Some(o | RW)),
            None
        );
        assert_eq!(
            v.update_api_leaf(base + 0x1000, &mut |o| Some(o | (base + 0x1000) | P | RW)),
            Some(API | pte::HOST_W)
        );
        assert_eq!(
            v.entry(base + 0x1000),
            (base + 0x1000) | P | RW | API | pte::HOST_W
        );
        assert_eq!(v.update_api_leaf(base + 0x1000, &mut |_| None), None);

        // a huge leaf over the 4 KiB table folds its A/D bits
        let huge = base + (2 << 20);
        pt.map(huge, huge + 0x2000, rw).unwrap();
        clear_accessed_dirty(&pt, huge, huge + 0x2000);
        pt.leaf(huge + 0x1000).unwrap().set_bits(D);
        assert!(!pt.map_huge(huge, huge + (4 << 20), rw, 2).unwrap());
        // SAFETY: pt outlives the view.
        let view = unsafe { DirtyView::new(pt.root()) };
        assert_eq!(
            view.lookup(huge + 0x1234),
            Some((huge | P | RW | US | NX | PS | API | D, 2))
        );
        // a dirty scan covering part of it reports its pages there and does not clear it
        let mut got = Vec::new();
        let _f = view.collect_and_clear(huge + 0x1f_e000, huge + 0x20_2000, &mut |p| got.push(p));
        assert_eq!(got, vec![huge + 0x1f_e000, huge + 0x1f_f000]);
        assert_ne!(view.entry(huge) & D, 0, "partly covered: kept");
        let mut runs = Vec::new();
        let _f = view.read_clear_accessed_dirty(huge, huge + (2 << 20), &mut |va, n, b| {
            runs.push((va, n, b & (A | D)))
        });
        assert_eq!(runs, vec![(huge, 512, D)]);
        assert_eq!(view.entry(huge) & D, 0, "wholly covered: cleared");
        // protecting all of one keeps it huge; protecting part splits it
        assert!(!pt
            .api_set(huge, huge + (2 << 20), libc::PROT_READ, true)
            .unwrap());
        assert_eq!(view.lookup(huge).unwrap().1, 2);
        assert_eq!(view.lookup(huge).unwrap().0 & RW, 0);
        view.lookup(huge + (2 << 20)).unwrap();
        pt.leaf(huge + (2 << 20)).unwrap().set_bits(A);
        assert!(pt
            .api_set(
                huge + (2 << 20),
                huge + (2 << 20) + 0x1000,
                libc::PROT_NONE,
                true
            )
            .unwrap());
        assert_eq!(
            view.lookup(huge + (2 << 20)),
            Some((API | pte::HOST_W, 1)),
            "PROT_NONE keeps only D (and the program's marks)"
        );
        assert_eq!(
            view.lookup(huge + (2 << 20) + 0x1000),
            Some(((huge + (2 << 20) + 0x1000) | P | RW | US | NX | API | A, 1))
        );
        // a host munmap over part of the other one splits it and clears only that part
        let (_f, used) = pt.unmap_accessed(huge + 0x1000, huge + 0x2000);
        assert!(!used, "never accessed");
        assert_eq!(view.lookup(huge + 0x1000), Some((0, 1)));
        assert_eq!(view.lookup(huge).unwrap().1, 1);
        let mut n = 0;
        view.for_each_present(huge, huge + (4 << 20), &mut |_| n += 1);
        assert_eq!(n, 1024 - 2);
    }

    #[test]
    fn gigabyte_leaves_map_scan_and_split() {
        let frames = PoolFrames::reserve(1 << 20).unwrap();
        let mut pt = PageTable::new(frames).unwrap();
        let rw = libc::PROT_READ | libc::PROT_WRITE;
        let g = 1u64 << 30;
        let base = 8 * g;
        pt.map(base + 0x5000, base + 0x6000, rw).unwrap();
        pt.leaf(base + 0x5000).unwrap().set_bits(A | D);
        assert!(
            pt.map_huge(base, base + g, rw, 3).unwrap(),
            "an accessed entry replaced"
        );
        // SAFETY: pt outlives the view.
        let view = unsafe { DirtyView::new(pt.root()) };
        let (e, level) = view.lookup(base + 0x1234_5678).unwrap();
        assert_eq!(
            (e, level),
            (base | P | RW | US | NX | PS | API | A | D, 3),
            "A/D folded"
        );
        let mut runs = Vec::new();
        let _f = view.read_clear_accessed_dirty(base, base + g, &mut |va, n, b| {
            runs.push((va, n, b & (A | D)))
        });
        assert_eq!(runs, vec![(base, 262_144, A | D)]);
        // a host mprotect of one page splits 1 GiB -> 2 MiB -> 4 KiB on its path only
        let (_f, _used) =
            pt.protect_present_accessed(base + g / 2, base + g / 2 + 0x1000, libc::PROT_READ);
        assert_eq!(
            view.lookup(base + g / 2).unwrap(),
            ((base + g / 2) | P | US | NX, 1)
        );
        assert_eq!(view.lookup(base + g / 2 + 0x1000).unwrap().1, 1);
        assert_eq!(view.lookup(base + g / 2 + (2 << 20)).unwrap().1, 2);
        assert_eq!(view.lookup(base).unwrap().1, 2);
        let mut n = 0u64;
        view.for_each_present(base, base + g, &mut |_| n += 1);
        assert_eq!(n, 262_144, "still all mapped");
    }
}
