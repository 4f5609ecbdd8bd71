//! Changing the live table (public API layer): map, protect, unmap, write-protect, huge
//! leaves, and the lock-free one-page protect a guest fault handler uses; each checks the
//! range against the host mapping and performs its TLB flush.

use super::*;

/// Checks a range: aligned to `align_bytes`, non-empty, inside the user half, outside the
/// runtime's own memory, mapped by the process with at least `prot`. Returns the end.
pub(super) fn check_range(
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
pub(super) fn entries_allow(d: &Dune, start: u64, end: u64, prot: i32) -> bool {
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
pub(super) fn host_allows_write(d: &Dune, start: u64, end: u64) -> bool {
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
pub(super) fn shoot_down(d: &Dune, start: u64, end: u64) {
    if crate::state::dune::in_dune() && !crate::state::dune::on_host_side() {
        crate::services::tlb::flush(TlbFlush::range(start, end));
    } else {
        d.generation.fetch_add(1, Ordering::AcqRel);
    }
}

pub(super) fn apply(
    start: Gva,
    len_bytes: u64,
    prot: i32,
    check_prot: i32,
) -> Result<Change, PageTableError> {
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
