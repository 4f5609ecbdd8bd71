// Layer 6: public API (dune-hw/LAYERS).
//! The live process page table as a library API: walk, map/unmap/protect, huge pages,
//! one-pass A/D read-and-clear, copy-on-write style protection.
//!
//! Every function works on the guest page table that the running Dune process uses (the
//! one the monitor also edits for mmap/munmap/mprotect), from the guest or from the host
//! side of a Dune thread (an exception handler), in ring-3 and ring-0 mode alike: the
//! table lives in process memory, so editing it is a memory write in both modes; only the
//! TLB flush is privileged (ring-0: `invlpg`/CR3 in the guest; ring-3: a request to the
//! monitor, see [`crate::services::tlb`]).
//!
//! # Rules shared with the monitor
//! - The table is an identity map (va == pa). `map`/`protect` set the *guest* protection of
//!   memory the process has mapped on the host; they cannot grant more than the host
//!   mapping allows (KVM maps guest memory through it) and fail with
//!   [`PageTableError::ProtExceedsHost`] if asked to.
//! - Entries set here carry a software bit ([`crate::paging::pte::API`]): the monitor's
//!   on-demand mapping does not widen them, so an access they forbid reaches the program's
//!   fault handler ([`crate::services::fault`]). A host `mmap`/`mprotect`/`munmap` of the range
//!   replaces them (and ends that).
//! - An entry whose A bit is set may be cached by a vCPU: changes to such entries are
//!   followed by a TLB flush (every vCPU, before it next runs guest code; the caller's vCPU
//!   now). Entries never used for a translation need none (the monitor's A-bit rule, see
//!   the crate docs). For the same reason clearing A bits makes every vCPU flush before its
//!   next entry. There are no IPIs: another thread running guest code without exits keeps
//!   its cached translation until its next exit (a syscall, a fault, a signal) — stop the
//!   other threads first when a change must hold for them at once, as a collector does.
//! - Not async-signal-safe: the functions take the page-table lock, like the monitor.

use crate::arch::addr::{Gpa, Gva, BYTES_IN_PAGE, USER_END};
use crate::arch::error::DuneError;
use crate::paging::pte::{self, A, API, D, NX, P, RW, US};
use crate::services::tlb::TlbFlush;
use crate::state::dune::Dune;
use std::fmt;
use std::sync::atomic::Ordering;

mod access_dirty;
mod edit;
mod types;

pub use access_dirty::*;
pub use edit::*;
pub use types::*;

fn dune() -> Result<&'static Dune, PageTableError> {
    Dune::get().ok_or(PageTableError::NotInitialised)
}

/// The leaf entry translating `va` in the live table: the entry, its level, the page; or
/// `None` if no table leads there (memory the monitor has not mapped yet, or not mapped).
/// Lock-free.
pub fn walk(va: Gva) -> Result<Option<Walk>, PageTableError> {
    let d = dune()?;
    Ok(d.dirty_view().lookup(va.0).map(|(entry, level)| {
        let size = PageSize::of_level(level);
        let page = va.0 & !(size.len_bytes() - 1);
        let base = if level == 1 {
            entry & pte::ADDR_MASK
        } else {
            crate::paging::walker::huge_base(level, entry)
        };
        Walk {
            entry,
            size,
            page: Gva(page),
            pa: Gpa(base + (va.0 - page)),
        }
    }))
}
