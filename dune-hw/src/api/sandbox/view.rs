// Layer 6: public API (dune-hw/LAYERS).
//! A sandbox's own page table: only what was granted is mapped user-accessible; the few
//! pages the CPU needs at CPL0 (IDT, GDT/TSS, monitor stack, exception stubs) are mapped
//! supervisor-only. Nothing else of the host process is mapped at all.

use crate::arch::addr::BYTES_IN_PAGE;
use crate::arch::error::DuneError;
use crate::paging::frames::PoolFrames;
use crate::paging::pte::{P, RW, US};
use crate::paging::PageTable;
use crate::state::dune::Dune;

/// Bytes reserved for a view's table frames (NORESERVE: untouched frames are free). A
/// 64 MiB arena needs ~40 frames; 8 MiB covers ~2,000 tables.
const VIEW_POOL_BYTES: u64 = 8 << 20;

/// The page table of one sandbox.
#[derive(Debug)]
pub(crate) struct View {
    pt: PageTable,
}

impl View {
    /// An empty view whose table frames KVM can read (memory slots registered).
    pub(crate) fn new(d: &Dune) -> Result<View, DuneError> {
        let pt = PageTable::new(PoolFrames::reserve(VIEW_POOL_BYTES)?)?;
        let (start, end) = pt.frames_range();
        d.register_slots(start, end)?;
        Ok(View { pt })
    }

    /// The table frames' range (a memory slot covers it).
    pub(crate) fn pool_range(&self) -> (u64, u64) {
        self.pt.frames_range()
    }

    /// The CR3 value.
    pub(crate) fn root(&self) -> u64 {
        self.pt.root()
    }

    /// Maps `[start, end)` (page-aligned by the caller) user-accessible with `prot`.
    pub(crate) fn map_user(&mut self, start: u64, end: u64, prot: i32) -> Result<(), DuneError> {
        self.pt.map(start, end, prot)
    }

    /// Maps `[start, end)` for CPL0 only (CPL3 code faults on any access).
    pub(crate) fn map_supervisor(
        &mut self,
        start: u64,
        end: u64,
        prot: i32,
    ) -> Result<(), DuneError> {
        self.pt.map(start, end, prot)?;
        let mut va = start;
        while va < end {
            if let Some(p) = self.pt.leaf(va) {
                p.update(&mut |v| v & !US);
            }
            va += BYTES_IN_PAGE;
        }
        Ok(())
    }

    /// Removes `[start, end)`; the caller flushes the vCPU's TLB before it runs again.
    pub(crate) fn unmap(&mut self, start: u64, end: u64) {
        let _flushed_by_caller = self.pt.unmap(start, end);
    }

    /// Whether CPL3 code may read (or, with `write`, write) every byte of
    /// `[addr, addr + len)` through this view: what a syscall argument must satisfy before
    /// the host touches it for the sandbox.
    pub(crate) fn user_can(&self, addr: u64, len: u64, write: bool) -> bool {
        if len == 0 {
            return true;
        }
        let Some(end) = addr.checked_add(len) else {
            return false;
        };
        if end > crate::arch::addr::USER_END {
            return false;
        }
        let need = P | US | if write { RW } else { 0 };
        let mut va = addr & !(BYTES_IN_PAGE - 1);
        while va < end {
            match self.pt.leaf(va) {
                Some(p) if p.get() & need == need => {}
                _ => return false,
            }
            va += BYTES_IN_PAGE;
        }
        true
    }
}

impl Drop for View {
    fn drop(&mut self) {
        let (start, end) = self.pt.frames_range();
        // The frames are freed but the range stays reserved (PROT_NONE), never reused for
        // another view: KVM keeps its shadow pages of these tables (keyed by address) after
        // the host frees them, and a later view whose tables landed at the same addresses
        // would run with this view's stale translations (its rights). privsep's
        // `kvm_escapes` caught that (a read-only grant writable after a read-write view at
        // the same pool address was dropped).
        // SAFETY: the pool belongs to this view's table, which dies with it; no vCPU uses
        // the view any more (a run borrows its sandbox mutably). MAP_FIXED replaces only
        // the pool's own range.
        unsafe {
            libc::mmap(
                start as *mut libc::c_void,
                (end - start) as usize,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_FIXED,
                -1,
                0,
            )
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supervisor_pages_are_not_user_accessible() {
        let mut v = View {
            pt: PageTable::new(PoolFrames::reserve(1 << 20).unwrap()).unwrap(),
        };
        let rw = libc::PROT_READ | libc::PROT_WRITE;
        v.map_user(0x10_0000, 0x10_2000, rw).unwrap();
        v.map_user(0x10_2000, 0x10_3000, libc::PROT_READ).unwrap();
        v.map_supervisor(0x20_0000, 0x20_1000, rw).unwrap();
        assert!(v.user_can(0x10_0ff0, 0x20, true), "spans two RW pages");
        assert!(!v.user_can(0x10_1ff0, 0x20, true), "second page read-only");
        assert!(v.user_can(0x10_1ff0, 0x20, false));
        assert!(!v.user_can(0x20_0000, 1, false), "supervisor only");
        assert!(!v.user_can(0x30_0000, 1, false), "not mapped");
        assert!(!v.user_can(u64::MAX - 4, 16, false), "wraps");
        assert!(v.user_can(0x30_0000, 0, true), "empty range");
        v.unmap(0x10_0000, 0x10_1000);
        assert!(!v.user_can(0x10_0000, 1, false));
    }
}
