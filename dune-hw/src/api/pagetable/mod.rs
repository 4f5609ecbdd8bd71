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
    fn of_level(level: u32) -> PageSize {
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

/// Checks a range: aligned to `align_bytes`, non-empty, inside the user half, outside the
/// runtime's own memory, mapped by the process with at least `prot`. Returns the end.
fn check_range(
    d: &Dune,
    start: Gva,
    len_bytes: u64,
    align_bytes: u64,
    prot: i32,
) -> Result<u64, PageTableError> {
    let s = start.0;
    if len_bytes == 0 || !s.is_multiple_of(align_bytes) || !len_bytes.is_multiple_of(align_bytes) {
        return Err(PageTableError::Unaligned {
            start: s,
            len_bytes,
            align_bytes,
        });
    }
    let end = match s.checked_add(len_bytes) {
        Some(e) if e <= USER_END => e,
        _ => {
            return Err(PageTableError::OutsideUserHalf {
                start: s,
                len_bytes,
            })
        }
    };
    let (pool_start, pool_end) =
        d.pt.lock()
            .unwrap_or_else(|p| p.into_inner())
            .frames_range();
    let reserved = [
        (pool_start, pool_end, "page-table frames"),
        (d.doorbell, d.doorbell + BYTES_IN_PAGE, "doorbell page"),
        (d.idt, d.idt + BYTES_IN_PAGE, "IDT"),
        (d.sandbox_idt, d.sandbox_idt + BYTES_IN_PAGE, "sandbox IDT"),
    ];
    for (rs, re, what) in reserved {
        if s < re && rs < end {
            return Err(PageTableError::Reserved {
                addr: s.max(rs),
                what,
            });
        }
    }
    let wanted = prot & (libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC);
    if entries_allow(d, s, end, wanted) {
        // every page is mapped in the guest with at least `prot` already: the monitor set
        // those entries from the host mapping (or the program, within it), so the host
        // allows it too — no VMA query (three forwarded syscalls from the guest)
        return Ok(end);
    }
    let mut a = s;
    while a < end {
        let m =
            crate::paging::maps::find_fast(a).ok_or(PageTableError::NotHostMapped { addr: a })?;
        // PROT_EXEC implies readable on x86; a write-only host mapping is readable too
        let host = m.prot | if m.prot != 0 { libc::PROT_READ } else { 0 };
        if wanted & !host != 0 || m.prot == libc::PROT_NONE {
            return Err(PageTableError::ProtExceedsHost {
                addr: a,
                host_prot: m.prot,
                prot,
            });
        }
        a = m.end;
    }
    Ok(end)
}

/// Whether every page of `[start, end)` has a present guest entry allowing `prot`.
fn entries_allow(d: &Dune, start: u64, end: u64, prot: i32) -> bool {
    let mut need = P;
    if prot & libc::PROT_WRITE != 0 {
        need |= RW;
    }
    let mut covered = 0u64;
    let mut ok = true;
    d.dirty_view()
        .for_each_leaf(start, end, &mut |_va, n_pages, e| {
            if e & need == need && (prot & libc::PROT_EXEC == 0 || e & NX == 0) {
                covered += n_pages;
            } else {
                ok = false;
            }
        });
    ok && covered == (end - start) / BYTES_IN_PAGE
}

/// Whether the host mapping allows writing all of `[start, end)`: the guest entries say so
/// already (writable, or set by the program while the host allowed writing), or the
/// host's VMAs do. Remembered in the entries ([`pte::HOST_W`]) for
/// [`protect_page_in_guest`].
fn host_allows_write(d: &Dune, start: u64, end: u64) -> bool {
    let mut known = 0u64;
    d.dirty_view()
        .for_each_leaf(start, end, &mut |_va, n_pages, e| {
            if e & P != 0 && e & RW != 0 || e & (API | pte::HOST_W) == API | pte::HOST_W {
                known += n_pages;
            }
        });
    if known == (end - start) / BYTES_IN_PAGE {
        return true;
    }
    let mut a = start;
    while a < end {
        match crate::paging::maps::find_fast(a) {
            Some(m) if m.prot & libc::PROT_WRITE != 0 => a = m.end,
            _ => return false,
        }
    }
    true
}

/// Makes every vCPU flush before its next entry and flushes the caller's vCPU now when it
/// runs in the guest (from the host side of a Dune thread the exit loop flushes before it
/// resumes the guest).
fn shoot_down(d: &Dune, start: u64, end: u64) {
    if crate::state::dune::in_dune() && !crate::state::dune::on_host_side() {
        crate::services::tlb::flush(TlbFlush::range(start, end));
    } else {
        d.generation.fetch_add(1, Ordering::AcqRel);
    }
}

fn apply(start: Gva, len_bytes: u64, prot: i32, check_prot: i32) -> Result<Change, PageTableError> {
    let d = dune()?;
    let end = check_range(d, start, len_bytes, BYTES_IN_PAGE, check_prot)?;
    if prot != libc::PROT_NONE {
        d.ensure_slots(start.0, end)?;
    }
    let host_w = prot & libc::PROT_WRITE != 0 || host_allows_write(d, start.0, end);
    let accessed =
        d.pt.lock()
            .unwrap_or_else(|p| p.into_inner())
            .api_set(start.0, end, prot, host_w)?;
    if accessed {
        shoot_down(d, start.0, end);
    }
    Ok(Change { flushed: accessed })
}

/// Maps `[start, start + len_bytes)` (4 KiB aligned, memory the process has mapped) into
/// the guest with `prot` (`PROT_*`), now, whatever the monitor had there. Huge leaves the
/// range covers entirely stay huge; others are split. On an identity table mapping and
/// protecting are the same operation: see [`protect`].
pub fn map(start: Gva, len_bytes: u64, prot: i32) -> Result<Change, PageTableError> {
    apply(start, len_bytes, prot, prot)
}

/// Sets the protection of `[start, start + len_bytes)` (4 KiB aligned, mapped by the
/// process with at least `prot`) to `prot`; A/D bits are kept. An access the new
/// protection forbids raises a page fault that goes to the program's handler
/// ([`crate::services::fault::set_fault_handler`]), not to the monitor's on-demand mapping.
pub fn protect(start: Gva, len_bytes: u64, prot: i32) -> Result<Change, PageTableError> {
    apply(start, len_bytes, prot, prot)
}

/// Removes `[start, start + len_bytes)` (4 KiB aligned, mapped by the process) from the
/// guest: accesses fault (error code: not present) to the program's handler until the
/// program maps it again ([`map`], or a host mmap/mprotect). D bits are kept (a page
/// written before is still reported dirty).
pub fn unmap(start: Gva, len_bytes: u64) -> Result<Change, PageTableError> {
    apply(start, len_bytes, libc::PROT_NONE, libc::PROT_NONE)
}

/// Sets the protection of the one 4 KiB page at `page` to `prot` (`PROT_NONE`, `PROT_READ`,
/// `PROT_READ | PROT_WRITE`) **without locks, allocation or syscalls**: the subset of this
/// module a guest fault handler ([`crate::services::fault::set_guest_fault_handler`]) may call, also
/// usable anywhere else in a Dune thread.
///
/// Only entries the program set before through [`map`], [`protect`], [`write_protect`] or
/// [`unmap`] (which checked the host mapping) can be changed — anything else fails with
/// [`PageTableError::NotProgramPage`] — and `PROT_WRITE` only where the host mapping allowed
/// writing when that entry was set ([`PageTableError::ProtExceedsHost`] otherwise). The
/// execute permission stays what the entry had (a page made present again from `PROT_NONE`
/// is not executable); `PROT_EXEC` in `prot` is ignored. A/D bits are kept.
///
/// TLB: in a guest fault handler this vCPU's translation of the page is flushed at once
/// (pvm/pvm-ring0: the `HC_FLUSH_TLB_ONE` hypercall; ring-0: `invlpg`), no exit; elsewhere as
/// [`protect`] does. A restriction of an entry that had been used for a translation also
/// makes every other vCPU flush before its next entry (see the module docs: no IPIs).
pub fn protect_page_in_guest(page: Gva, prot: i32) -> Result<Change, PageTableError> {
    let d = dune()?;
    if !page.0.is_multiple_of(BYTES_IN_PAGE) {
        return Err(PageTableError::Unaligned {
            start: page.0,
            len_bytes: BYTES_IN_PAGE,
            align_bytes: BYTES_IN_PAGE,
        });
    }
    if page.0 >= USER_END {
        return Err(PageTableError::OutsideUserHalf {
            start: page.0,
            len_bytes: BYTES_IN_PAGE,
        });
    }
    let flags = pte::leaf_flags(prot & (libc::PROT_READ | libc::PROT_WRITE));
    let mut refused_write = false;
    let old = d.dirty_view().update_api_leaf(page.0, &mut |old| {
        if flags & RW != 0 && old & pte::HOST_W == 0 {
            refused_write = true;
            return None;
        }
        let keep = old & (A | D | API | pte::HOST_W);
        Some(if flags == 0 {
            keep & !A
        } else {
            let nx = if old & P != 0 { old & NX } else { NX };
            page.0 | (flags & !NX) | nx | keep
        })
    });
    let Some(old) = old else {
        if refused_write {
            return Err(PageTableError::ProtExceedsHost {
                addr: page.0,
                host_prot: libc::PROT_READ,
                prot,
            });
        }
        return Err(PageTableError::NotProgramPage { addr: page.0 });
    };
    let restricted = old & P != 0 && (flags & P == 0 || (old & RW != 0 && flags & RW == 0));
    let accessed = old & (P | A) == P | A;
    if restricted && accessed {
        d.generation.fetch_add(1, Ordering::AcqRel);
    }
    if crate::services::fault::in_guest_fault_handler() {
        crate::services::fault::flush_page_in_guest_handler(page.0);
    } else if restricted && accessed {
        shoot_down(d, page.0, page.0 + BYTES_IN_PAGE);
    } else if crate::state::dune::in_dune() && !crate::state::dune::on_host_side() {
        // a widened entry: drop a stale (shadow) translation of this page only
        crate::services::tlb::flush(TlbFlush::range(page.0, page.0 + BYTES_IN_PAGE));
    }
    Ok(Change {
        flushed: restricted && accessed,
    })
}

/// Copy-on-write style protection: makes `[start, start + len_bytes)` read-only for the
/// guest (executable if the host mapping is), so the first write to each page faults to
/// the program's handler, which can copy the page and make it writable again with
/// [`protect`] (or [`map`]) before resuming the write.
pub fn write_protect(start: Gva, len_bytes: u64) -> Result<Change, PageTableError> {
    // executable as the guest entry is (or, without one, as the host mapping is)
    let exec = match walk(start)? {
        Some(w) if w.present() => {
            if w.no_execute() {
                0
            } else {
                libc::PROT_EXEC
            }
        }
        _ => crate::paging::maps::find_fast(start.0).map_or(0, |m| m.prot & libc::PROT_EXEC),
    };
    apply(
        start,
        len_bytes,
        libc::PROT_READ | exec,
        libc::PROT_READ | exec,
    )
}

/// Maps `[start, start + len_bytes)` with huge leaves of `size` (2 MiB or 1 GiB): the range
/// must be aligned to the page size and mapped by the process (one or more host mappings)
/// with at least `prot`, which must allow access. The host backing need not be huge pages:
/// KVM's shadow paging maps a guest huge leaf with whatever the host has (checked by
/// `tests/kvm_privileged.rs`). 1 GiB leaves need CPUID `pdpe1gb` in the guest.
pub fn map_huge(
    start: Gva,
    len_bytes: u64,
    prot: i32,
    size: PageSize,
) -> Result<Change, PageTableError> {
    let d = dune()?;
    if size == PageSize::Size4K {
        return map(start, len_bytes, prot);
    }
    if prot & (libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC) == 0 {
        return Err(PageTableError::Unsupported {
            feature: "a huge leaf with PROT_NONE",
            reason: "use unmap (4 KiB entries keep their D bits)".into(),
        });
    }
    if size == PageSize::Size1G && !crate::services::tlb::guest_cpuid_1g_pages() {
        return Err(PageTableError::Unsupported {
            feature: "1 GiB pages",
            reason: "the guest CPUID lacks pdpe1gb".into(),
        });
    }
    let end = check_range(d, start, len_bytes, size.len_bytes(), prot)?;
    d.ensure_slots(start.0, end)?;
    let accessed = d.pt.lock().unwrap_or_else(|p| p.into_inner()).map_huge(
        start.0,
        end,
        prot,
        size.level(),
    )?;
    if accessed {
        shoot_down(d, start.0, end);
    }
    Ok(Change { flushed: accessed })
}

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
