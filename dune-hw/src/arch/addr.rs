// Layer 1: arch (dune-hw/LAYERS).
//! Guest and host addresses. Guest-physical == host-virtual and guest page tables are an
//! identity map, so all three are the same number; the newtypes say which role it plays.
//! The raw reads of guest memory from the host side live here.

/// Page size of every guest mapping (4 KiB leaves).
pub const BYTES_IN_PAGE: u64 = 4096;
/// log2 of [`BYTES_IN_PAGE`].
pub const LOG_BYTES_IN_PAGE: u32 = 12;
/// First address above the 47-bit user half.
pub const USER_END: u64 = 1 << 47;

/// A guest-virtual address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Gva(pub u64);
/// A guest-physical address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Gpa(pub u64);
/// A host-virtual address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hva(pub u64);

impl Gva {
    /// The address of a pointer.
    pub fn of<T: ?Sized>(p: *const T) -> Gva {
        Gva(p as *const u8 as u64)
    }
    /// Rounded down to its page.
    pub fn page_down(self) -> Gva {
        Gva(self.0 & !(BYTES_IN_PAGE - 1))
    }
    /// Rounded up to a page boundary.
    pub fn page_up(self) -> Gva {
        Gva(self.0.next_multiple_of(BYTES_IN_PAGE))
    }
    /// The guest-physical address it maps to (identity map).
    pub fn to_gpa(self) -> Gpa {
        Gpa(self.0)
    }
}

impl Gpa {
    /// The host address backing it: the one GPA == HVA conversion.
    pub fn to_hva(self) -> Hva {
        Hva(self.0)
    }
}

impl Hva {
    /// The guest-physical address that a memory slot gives this host address.
    pub fn to_gpa(self) -> Gpa {
        Gpa(self.0)
    }
}

/// Reads a `T` of guest memory at `gva` from the host side (or from the guest itself).
///
/// # Safety
/// `gva` must be mapped readable in this process (guest memory is process memory) and hold
/// a valid `T`; another vCPU may be writing it, hence the volatile read of plain data.
pub unsafe fn read_guest<T: Copy>(gva: Gva) -> T {
    // SAFETY: the caller guarantees the address is mapped and holds a T; GPA == HVA makes the
    // guest address a valid host pointer.
    unsafe { core::ptr::read_volatile(gva.0 as *const T) }
}

/// Writes a `T` into guest memory at `gva`.
///
/// # Safety
/// `gva` must be mapped writable in this process and nobody may hold a Rust reference to it.
pub unsafe fn write_guest<T: Copy>(gva: Gva, value: T) {
    // SAFETY: as for `read_guest`, plus writability guaranteed by the caller.
    unsafe { core::ptr::write_volatile(gva.0 as *mut T, value) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding() {
        assert_eq!(Gva(0x1234).page_down(), Gva(0x1000));
        assert_eq!(Gva(0x1234).page_up(), Gva(0x2000));
        assert_eq!(Gva(0x2000).page_up(), Gva(0x2000));
        assert_eq!(
            Gva(0x7f00_0000_1000).to_gpa().to_hva(),
            Hva(0x7f00_0000_1000)
        );
    }
}

/// A pending flush of `[start, end)`. Perform it with [`crate::flush`] (or fold it into a
/// stop-the-world, where every vCPU flushes before it resumes).
#[must_use = "changed entries stay cached until the flush"]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TlbFlush {
    /// First byte.
    pub start: u64,
    /// End (exclusive).
    pub end: u64,
}

impl TlbFlush {
    /// A flush of `[start, end)`.
    pub fn range(start: u64, end: u64) -> TlbFlush {
        TlbFlush { start, end }
    }

    /// Pages covered.
    pub fn n_pages(&self) -> u64 {
        (self.end.saturating_sub(self.start)).div_ceil(4096)
    }

    /// Merges two obligations into one covering both.
    pub fn merge(self, other: TlbFlush) -> TlbFlush {
        TlbFlush {
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }
}
