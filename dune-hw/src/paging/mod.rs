//! Guest page tables: 4-level, identity (va == pa), 4 KiB leaves, living in process memory.
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

use crate::error::DuneError;
use crate::tlb::TlbFlush;
use frames::{FrameAllocator, PoolFrames};
use pte::{Pte, A, D};

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
    pub fn map(&mut self, start: u64, end: u64, prot: i32) -> Result<(), DuneError> {
        self.map_accessed(start, end, prot).map(|_| ())
    }

    /// [`PageTable::map`], returning whether an entry it replaced was present with its A bit
    /// set. An entry whose A bit is clear at the (atomic) replacement was never used for a
    /// translation — the MMU (and KVM's shadow MMU, prefetches included) sets A before it
    /// caches one — so changing it needs no TLB flush.
    pub fn map_accessed(&mut self, start: u64, end: u64, prot: i32) -> Result<bool, DuneError> {
        let flags = pte::leaf_flags(prot);
        let mut accessed = false;
        // SAFETY: root and all tables are frames of `self.frames`, which lives as long as self.
        unsafe {
            walker::walk(
                self.root,
                start,
                end,
                Some(&mut self.frames),
                &mut |va: u64, p: &Pte| {
                    let old = p.update(&mut |old| {
                        if flags == 0 {
                            old & D
                        } else {
                            va | flags | (old & (A | D))
                        }
                    });
                    accessed |= old & (pte::P | A) == pte::P | A;
                },
            )
        }
        .map_err(|_| DuneError::OutOfPageTableFrames)?;
        Ok(accessed)
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
        // SAFETY: as in `map`; no allocation.
        unsafe {
            walker::visit(self.root, start, end, &mut |va: u64, p: &Pte| {
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
            })
        };
        (TlbFlush::range(start, end), accessed)
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
        // SAFETY: as in `map`; no allocation (missing tables are skipped).
        unsafe {
            walker::visit(self.root, start, end, &mut |_va: u64, p: &Pte| {
                let old = p.update(&mut |_| 0);
                accessed |= old & (pte::P | A) == pte::P | A;
            })
        };
        (TlbFlush::range(start, end), accessed)
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
    /// Iterates the leaf tables (one pass, no per-page walk). The cleared bits take effect
    /// only after the returned flush.
    #[must_use = "cleared D bits stay clear in the TLB until it is flushed"]
    pub fn collect_and_clear(&self, start: u64, end: u64, f: &mut dyn FnMut(u64)) -> TlbFlush {
        // SAFETY: the root outlives this view (constructor duty); no allocation.
        unsafe {
            walker::visit(self.root, start, end, &mut |va: u64, p: &Pte| {
                if p.take_dirty() {
                    f(va)
                }
            })
        };
        TlbFlush::range(start, end)
    }

    /// Calls `f(page)` for each dirty page in `[start, end)` without clearing.
    pub fn for_each_dirty(&self, start: u64, end: u64, f: &mut dyn FnMut(u64)) {
        // SAFETY: as above.
        unsafe {
            walker::visit(self.root, start, end, &mut |va: u64, p: &Pte| {
                if p.is_dirty() {
                    f(va)
                }
            })
        };
    }

    /// Calls `f(page)` for each present page in `[start, end)`.
    pub fn for_each_present(&self, start: u64, end: u64, f: &mut dyn FnMut(u64)) {
        // SAFETY: as above.
        unsafe {
            walker::visit(self.root, start, end, &mut |va: u64, p: &Pte| {
                if p.is_present() {
                    f(va)
                }
            })
        };
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

    /// The raw leaf entry of `va` (0 if its tables are missing).
    pub fn entry(&self, va: u64) -> u64 {
        // SAFETY: as above.
        unsafe { walker::leaf(self.root, va) }.map_or(0, |p| p.get())
    }
}

#[cfg(test)]
mod tests {
    use super::pte::{NX, P, RW, US};
    use super::*;

    #[test]
    fn map_protect_unmap_and_dirty_scan() {
        let frames = PoolFrames::reserve(1 << 20).unwrap();
        let mut pt = PageTable::new(frames).unwrap();
        pt.map(0x40_0000, 0x40_4000, libc::PROT_READ | libc::PROT_WRITE)
            .unwrap();
        assert_eq!(
            pt.leaf(0x40_1000).unwrap().get(),
            0x40_1000 | P | RW | US | NX
        );
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
            0x80_0000 | P | US | NX | D
        );
        let _f = pt.protect_present(0x80_0000, 0x80_2000, libc::PROT_READ | libc::PROT_WRITE);
        assert_eq!(
            pt.leaf(0x80_0000).unwrap().get(),
            0x80_0000 | P | US | RW | NX | D
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
}
