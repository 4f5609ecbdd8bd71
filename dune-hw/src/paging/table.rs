//! The process's guest page table (paging layer): mapping, unmapping and protecting ranges
//! host-side under the process lock, huge leaves kept or split, A/D bits and flush obligations.

use super::frames::{FrameAllocator, PoolFrames};
use super::pte;
use super::pte::{Pte, A, API, D, P, PS};
use super::walker::{self, AnyLeaf, OutOfFrames};
use crate::arch::addr::TlbFlush;
use crate::arch::error::DuneError;

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
    /// [`crate::api::pagetable`] (software bit [`API`]) keep their value.
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
        let mut fresh = 0u64;
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
                            va | flags | (old & (A | D | pte::PRESET_D))
                        }
                    });
                    accessed |= old & (pte::P | A) == pte::P | A;
                    // the update above made a fresh leaf present (counted once, after the
                    // atomic update: its closure may run again on contention)
                    fresh += u64::from(flags != 0 && old & P == 0 && !(keep_api && old & API != 0));
                    true
                }),
            )
        }
        .map_err(|_| DuneError::OutOfPageTableFrames)?;
        crate::arch::ledger::fresh_pages(fresh);
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

    /// Sets `[start, end)` (4 KiB aligned) to `prot` for the program ([`crate::api::pagetable`]):
    /// creates missing tables and marks the entries [`API`] (the on-demand fault path keeps
    /// them). A huge leaf the range covers entirely keeps its size; one it covers in part
    /// is split. PROT_NONE makes entries not present, keeping D. Returns whether a changed
    /// entry had been used for a translation (see [`PageTable::map_accessed`]).
    ///
    /// `host_w`: the host mapping allows writing the whole range (recorded as
    /// [`pte::HOST_W`] in the 4 KiB entries, for [`DirtyView::update_api_leaf`](super::DirtyView::update_api_leaf)).
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
