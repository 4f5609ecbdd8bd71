//! The page-table API's types (public API layer): page sizes, the result of a walk, what a
//! change did, and the errors.

use super::*;

/// The size of the page a leaf entry maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PageSize {
    /// 4 KiB (a level-1 entry).
    Size4K,
    /// 2 MiB (a level-2 entry with PS).
    Size2M,
    /// 1 GiB (a level-3 entry with PS).
    Size1G,
}

impl PageSize {
    /// Bytes mapped.
    pub fn len_bytes(self) -> u64 {
        match self {
            PageSize::Size4K => 4 << 10,
            PageSize::Size2M => 2 << 20,
            PageSize::Size1G => 1 << 30,
        }
    }
    /// The page-table level of the leaf (1, 2, 3).
    pub fn level(self) -> u32 {
        match self {
            PageSize::Size4K => 1,
            PageSize::Size2M => 2,
            PageSize::Size1G => 3,
        }
    }
    pub(super) fn of_level(level: u32) -> PageSize {
        match level {
            3 => PageSize::Size1G,
            2 => PageSize::Size2M,
            _ => PageSize::Size4K,
        }
    }
}

/// The leaf entry translating an address (see [`walk`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Walk {
    /// The raw entry.
    pub entry: u64,
    /// The size of the page it maps (its level).
    pub size: PageSize,
    /// First address of that page.
    pub page: Gva,
    /// The physical address `va` translates to (identity map: equal to `va` when present).
    pub pa: Gpa,
}

impl Walk {
    /// P: the entry translates.
    pub fn present(&self) -> bool {
        self.entry & P != 0
    }
    /// R/W: writes allowed.
    pub fn writable(&self) -> bool {
        self.entry & RW != 0
    }
    /// U/S: CPL3 accesses allowed.
    pub fn user(&self) -> bool {
        self.entry & US != 0
    }
    /// NX: instruction fetches forbidden.
    pub fn no_execute(&self) -> bool {
        self.entry & NX != 0
    }
    /// A: used for a translation since it was last cleared.
    pub fn accessed(&self) -> bool {
        self.entry & A != 0
    }
    /// D: written since it was last cleared (kept while not present).
    pub fn dirty(&self) -> bool {
        self.entry & D != 0
    }
    /// Whether the program set this entry through this module (software bit).
    pub fn set_by_program(&self) -> bool {
        self.entry & API != 0
    }
}

/// Why a page-table operation was refused or failed.
#[derive(Debug)]
pub enum PageTableError {
    /// Dune is not initialised in this process (no page table yet).
    NotInitialised,
    /// `start`/`len_bytes` are not multiples of `align_bytes`, or the range is empty.
    Unaligned {
        /// First byte asked for.
        start: u64,
        /// Length asked for.
        len_bytes: u64,
        /// Required alignment.
        align_bytes: u64,
    },
    /// The range leaves the 47-bit user half (or wraps).
    OutsideUserHalf {
        /// First byte asked for.
        start: u64,
        /// Length asked for.
        len_bytes: u64,
    },
    /// `addr` is not mapped by the process on the host.
    NotHostMapped {
        /// First unmapped address met.
        addr: u64,
    },
    /// The host mapping at `addr` does not allow `prot`.
    ProtExceedsHost {
        /// Where.
        addr: u64,
        /// What the host mapping allows (`PROT_*`).
        host_prot: i32,
        /// What was asked (`PROT_*`).
        prot: i32,
    },
    /// The range overlaps memory the runtime itself needs mapped as it is.
    Reserved {
        /// Where.
        addr: u64,
        /// What lives there.
        what: &'static str,
    },
    /// [`protect_page_in_guest`]: the page has no 4 KiB entry set by the program through
    /// this module (set it with [`protect`], [`write_protect`], [`map`] or [`unmap`] first).
    NotProgramPage {
        /// The page.
        addr: u64,
    },
    /// The CPU (as the guest sees it) or this runtime lacks a feature.
    Unsupported {
        /// What.
        feature: &'static str,
        /// Why, with the observed value.
        reason: String,
    },
    /// Creating tables or memory slots failed.
    Dune(DuneError),
}

impl fmt::Display for PageTableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PageTableError::NotInitialised => {
                write!(f, "Dune is not initialised in this process (call enter first)")
            }
            PageTableError::Unaligned {
                start,
                len_bytes,
                align_bytes,
            } => write!(
                f,
                "range {start:#x} + {len_bytes:#x} is empty or not aligned to {align_bytes:#x} bytes"
            ),
            PageTableError::OutsideUserHalf { start, len_bytes } => write!(
                f,
                "range {start:#x} + {len_bytes:#x} is outside the user half (below {USER_END:#x})"
            ),
            PageTableError::NotHostMapped { addr } => {
                write!(f, "{addr:#x} is not mapped by the process")
            }
            PageTableError::ProtExceedsHost {
                addr,
                host_prot,
                prot,
            } => write!(
                f,
                "protection {prot:#x} at {addr:#x} exceeds the host mapping's {host_prot:#x}"
            ),
            PageTableError::Reserved { addr, what } => {
                write!(f, "{addr:#x} belongs to the Dune runtime ({what})")
            }
            PageTableError::NotProgramPage { addr } => write!(
                f,
                "{addr:#x} has no 4 KiB entry set by the program (pagetable::protect first)"
            ),
            PageTableError::Unsupported { feature, reason } => {
                write!(f, "unsupported: {feature}: {reason}")
            }
            PageTableError::Dune(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for PageTableError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PageTableError::Dune(e) => Some(e),
            _ => None,
        }
    }
}

impl From<DuneError> for PageTableError {
    fn from(e: DuneError) -> Self {
        PageTableError::Dune(e)
    }
}

/// What a change did about the TLB.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Change {
    /// A changed entry had been used for a translation, so the TLB was flushed (the
    /// caller's vCPU now when it runs in the guest; every other vCPU, and the caller's when
    /// called from its host side, before its next entry into the guest).
    pub flushed: bool,
}
