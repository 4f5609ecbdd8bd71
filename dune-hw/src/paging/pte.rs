// Layer 2: paging (dune-hw/LAYERS).
//! Page-table entries: `AtomicU64` with x86 flag bits. Accessed/dirty bits are cleared by
//! atomic RMW so a concurrent hardware (or shadow-MMU) update is never lost. The raw table
//! derefs live here.

use std::sync::atomic::{AtomicU64, Ordering};

/// Present.
pub const P: u64 = 1 << 0;
/// Writable.
pub const RW: u64 = 1 << 1;
/// User-accessible.
pub const US: u64 = 1 << 2;
/// Accessed (set by the MMU).
pub const A: u64 = 1 << 5;
/// Dirty (set by the MMU on the first write).
pub const D: u64 = 1 << 6;
/// Page size (a huge leaf at level 2/3).
pub const PS: u64 = 1 << 7;
/// Software bit 9 (ignored by the MMU): the entry was set through [`crate::api::pagetable`] (a
/// protection or unmapping the program chose); the monitor's on-demand mapping never widens
/// it, so an access it forbids reaches the program's fault handler. Host mmap/mprotect/munmap
/// of the range replace the entry (and drop the bit).
pub const API: u64 = 1 << 9;
/// Software bit 10 (ignored by the MMU), with [`API`]: the host mapping allowed writing
/// when the program set this entry, so [`crate::api::pagetable::protect_page_in_guest`] may make
/// it writable without asking the host (which a guest fault handler cannot).
pub const HOST_W: u64 = 1 << 10;
/// Software bit 11 (ignored by the MMU): the D bit of this leaf was preset when it was
/// mapped fresh ([`fresh_leaf_bits`]), not set by a write. Cleared with D, so a D bit found
/// set without it was set by the MMU: a write after a D clear (the ledger counts those,
/// [`crate::arch::ledger::DuneLedger::dirty_written`]). Bookkeeping only: nothing else reads it.
pub const PRESET_D: u64 = 1 << 11;
/// No-execute (needs EFER.NXE).
pub const NX: u64 = 1 << 63;
/// Physical-address bits of an entry.
pub const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;
/// Entries per table.
pub const ENTRIES: usize = 512;

/// Flags for a leaf mapping with the given `PROT_*` bits (none => not present).
pub fn leaf_flags(prot: i32) -> u64 {
    if prot & (libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC) == 0 {
        return 0;
    }
    let mut f = P | US;
    if prot & libc::PROT_WRITE != 0 {
        f |= RW;
    }
    if prot & libc::PROT_EXEC == 0 {
        f |= NX;
    }
    f
}

/// The A/D bits a leaf entry that was not present gets when it is mapped with leaf flags
/// `flags` (from [`leaf_flags`]): A, and D (marked [`PRESET_D`]) when writable; none for a
/// non-present entry. Never applied to a present entry, whose A/D bits record real
/// accesses.
pub fn fresh_leaf_bits(flags: u64) -> u64 {
    if flags & P == 0 {
        0
    } else if flags & RW != 0 {
        A | D | PRESET_D
    } else {
        A
    }
}

/// Flags of a non-leaf entry: permissive, the leaf decides.
pub const TABLE_FLAGS: u64 = P | RW | US;

/// One page-table entry.
#[repr(transparent)]
#[derive(Debug, Default)]
pub struct Pte(AtomicU64);

impl Pte {
    /// The raw value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }
    /// Replaces the value.
    pub fn set(&self, v: u64) {
        self.0.store(v, Ordering::Release)
    }
    /// Present?
    pub fn is_present(&self) -> bool {
        self.get() & P != 0
    }
    /// The frame (or next table) it points to.
    pub fn addr(&self) -> u64 {
        self.get() & ADDR_MASK
    }
    /// Dirty?
    pub fn is_dirty(&self) -> bool {
        self.get() & D != 0
    }
    /// Clears D and returns whether it was set (atomic: a concurrent MMU update of A is kept).
    pub fn take_dirty(&self) -> bool {
        self.take_dirty_preset().is_some()
    }
    /// Clears D (and [`PRESET_D`]): None if D was clear, else whether it had been preset
    /// (`Some(false)`: the MMU set it, a write).
    pub fn take_dirty_preset(&self) -> Option<bool> {
        let old = self.0.fetch_and(!(D | PRESET_D), Ordering::AcqRel);
        (old & D != 0).then_some(old & PRESET_D != 0)
    }
    /// Clears A and returns whether it was set.
    pub fn take_accessed(&self) -> bool {
        self.0.fetch_and(!A, Ordering::AcqRel) & A != 0
    }
    /// Clears the bits of `mask` and returns the entry before (atomic). An entry with none
    /// of them set is only read: no write to the table (under shadow paging a write to a
    /// table KVM keeps write-protected, such as one holding huge leaves, is a trap). A bit
    /// the MMU sets after that read stays set, to be seen by the next call.
    pub fn take_bits(&self, mask: u64) -> u64 {
        // a cleared D bit is no longer a preset one
        let mask = if mask & D != 0 { mask | PRESET_D } else { mask };
        let now = self.get();
        if now & mask == 0 {
            return now;
        }
        self.0.fetch_and(!mask, Ordering::AcqRel)
    }
    /// Replaces the entry with `f(old)` atomically (a concurrent MMU update of A/D is never
    /// lost: `f` runs again on the newer value) and returns the old value.
    pub fn update(&self, f: &mut dyn FnMut(u64) -> u64) -> u64 {
        let mut old = self.get();
        loop {
            match self
                .0
                .compare_exchange_weak(old, f(old), Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return old,
                Err(now) => old = now,
            }
        }
    }
    /// Replaces `old` by `new` if the entry still holds `old`; otherwise returns what it
    /// holds now.
    pub fn compare_exchange(&self, old: u64, new: u64) -> Result<(), u64> {
        self.0
            .compare_exchange(old, new, Ordering::AcqRel, Ordering::Acquire)
            .map(|_| ())
    }
    /// Sets the bits in `mask` (used to restore D bits after a failed collection).
    pub fn set_bits(&self, mask: u64) {
        self.0.fetch_or(mask, Ordering::AcqRel);
    }
}

/// The 512 entries of the table in frame `frame`.
///
/// # Safety
/// `frame` must be a page-table frame from this crate's [`super::frames::FrameAllocator`], which stays
/// mapped (and is never freed) for the lifetime `'a`.
pub unsafe fn table<'a>(frame: u64) -> &'a [Pte; ENTRIES] {
    // SAFETY: the caller guarantees a live, 4 KiB-aligned frame of 512 u64 entries; Pte is a
    // transparent AtomicU64, so shared references allow concurrent atomic access.
    unsafe { &*(frame as *const [Pte; ENTRIES]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_bits_match_the_sdm() {
        assert_eq!(P | RW | US, 7);
        assert_eq!(A, 0x20);
        assert_eq!(D, 0x40);
        assert_eq!(NX, 0x8000_0000_0000_0000);
    }

    #[test]
    fn prot_to_flags() {
        assert_eq!(leaf_flags(libc::PROT_NONE), 0);
        assert_eq!(leaf_flags(libc::PROT_READ), P | US | NX);
        assert_eq!(
            leaf_flags(libc::PROT_READ | libc::PROT_WRITE),
            P | US | RW | NX
        );
        assert_eq!(leaf_flags(libc::PROT_READ | libc::PROT_EXEC), P | US);
    }

    #[test]
    fn take_dirty_is_destructive_and_keeps_other_bits() {
        let p = Pte::default();
        p.set(0x5000 | P | RW | A | D);
        assert!(p.take_dirty());
        assert!(!p.take_dirty());
        assert_eq!(p.get(), 0x5000 | P | RW | A);
        assert_eq!(p.addr(), 0x5000);
        // a preset D bit is told apart from one the MMU set, and cleared with it
        p.set(0x5000 | P | RW | A | D | PRESET_D);
        assert_eq!(p.take_dirty_preset(), Some(true));
        assert_eq!(p.get(), 0x5000 | P | RW | A);
        p.set_bits(D);
        assert_eq!(p.take_dirty_preset(), Some(false));
        assert_eq!(p.take_dirty_preset(), None);
        p.set_bits(D);
        assert!(p.is_dirty());
    }
}
