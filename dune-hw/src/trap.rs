//! Guest exceptions, handled host-side: a page fault on memory the process has mapped is
//! resolved (slot + page table, on demand); a spurious fault (a shadow-paging artefact) is
//! retried after a flush; anything else ends the process with a register dump.

use crate::addr::{read_guest, Gva};
use crate::dune::ThreadCtx;
use crate::entry::ExceptionFrame;
use crate::idt;
use crate::maps;
use crate::monitor::{fatal, fatal_at};
use crate::paging::pte;

const PF_WRITE: u64 = 1 << 1;
const PF_FETCH: u64 = 1 << 4;

/// Whether a leaf entry allows an access with page-fault error code `err`.
pub fn entry_allows(entry: u64, err: u64) -> bool {
    entry & pte::P != 0
        && (err & PF_WRITE == 0 || entry & pte::RW != 0)
        && (err & PF_FETCH == 0 || entry & pte::NX == 0)
}

/// Whether a host mapping with `prot` allows an access with error code `err`.
pub fn prot_allows(prot: i32, err: u64) -> bool {
    prot & (libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC) != 0
        && (err & PF_WRITE == 0 || prot & libc::PROT_WRITE != 0)
        && (err & PF_FETCH == 0 || prot & libc::PROT_EXEC != 0)
}

pub(crate) fn handle(ctx: &mut ThreadCtx) {
    let regs = match ctx.vcpu().regs() {
        Ok(r) => r,
        Err(e) => fatal(ctx, format_args!("{e}")),
    };
    // SAFETY: the CPL0 stub just pushed an ExceptionFrame at rsp on the monitor stack, a
    // mapping owned by this ThreadCtx.
    let f: ExceptionFrame = unsafe { read_guest(Gva(regs.rsp)) };
    if f.vector == 1 && ctx.native_step {
        end_native_step(ctx, regs, &f);
        return;
    }
    if f.vector == 14 {
        let cr2 = match ctx.vcpu().sregs() {
            Ok(s) => s.cr2,
            Err(e) => fatal(ctx, format_args!("{e}")),
        };
        ctx.stats.page_faults += 1;
        if resolve_page_fault(ctx, cr2, f.error) {
            return_from_exception(ctx, regs, &f);
            return;
        }
        fatal_at(
            ctx,
            Some(&f),
            format_args!(
                "unhandled guest page fault (SIGSEGV): address {cr2:#x}, error {:#x} ({} {}), at rip {:#x}, rsp {:#x}",
                f.error,
                if f.error & PF_WRITE != 0 { "write" } else if f.error & PF_FETCH != 0 { "fetch" } else { "read" },
                if f.error & 1 != 0 { "protection" } else { "not-present" },
                f.rip,
                f.rsp
            ),
        );
    }
    fatal_at(
        ctx,
        Some(&f),
        format_args!(
            "unhandled guest exception {} (vector {}), error {:#x}, at rip {:#x}, rsp {:#x}",
            idt::name(f.vector),
            f.vector,
            f.error,
            f.rip,
            f.rsp
        ),
    )
}

const TF: u64 = 1 << 8;

/// Ring-0 mode on an emulating host: KVM's emulator cannot run an instruction (AVX in libc's
/// string functions, `rdtscp` in the vDSO). Run that one instruction natively at CPL3 — same
/// page tables (every entry is user-accessible), same registers — with the trap flag set;
/// the #DB after it returns to CPL0 in [`end_native_step`]. Privileged instructions fault
/// at CPL3 and end as a fatal exception, as they should not reach here.
pub(crate) fn step_natively(ctx: &mut ThreadCtx) {
    let mut r = match ctx.vcpu().regs() {
        Ok(r) => r,
        Err(e) => fatal(ctx, format_args!("{e}")),
    };
    let mut s = match ctx.vcpu().sregs() {
        Ok(s) => s,
        Err(e) => fatal(ctx, format_args!("{e}")),
    };
    r.rflags |= TF;
    s.cs = crate::dune::seg(crate::gdt::USER_CS, 11, 3, true, 0);
    s.ss = crate::dune::seg(crate::gdt::USER_SS, 3, 3, false, 0);
    ctx.native_step = true;
    ctx.stats.native_steps += 1;
    if let Err(e) = ctx.vcpu_mut().set_regs(&r) {
        fatal(ctx, format_args!("{e}"))
    }
    if let Err(e) = ctx.vcpu_mut().set_sregs(&s) {
        fatal(ctx, format_args!("{e}"))
    }
}

/// The #DB after a native step: back to CPL0 after the instruction, trap flag cleared.
fn end_native_step(ctx: &mut ThreadCtx, mut regs: kvm_bindings::kvm_regs, f: &ExceptionFrame) {
    regs.rip = f.rip;
    regs.rsp = f.rsp;
    regs.rflags = f.rflags & !TF;
    ctx.native_step = false;
    let mut s = match ctx.vcpu().sregs() {
        Ok(s) => s,
        Err(e) => fatal(ctx, format_args!("{e}")),
    };
    s.cs = crate::dune::seg(crate::gdt::KERNEL_CS, 11, 0, true, 0);
    s.ss = crate::dune::seg(crate::gdt::KERNEL_SS, 3, 0, false, 0);
    if let Err(e) = ctx.vcpu_mut().set_regs(&regs) {
        fatal(ctx, format_args!("{e}"))
    }
    if let Err(e) = ctx.vcpu_mut().set_sregs(&s) {
        fatal(ctx, format_args!("{e}"))
    }
}

/// Resumes the interrupted code directly from the host — what the stub's `add; iretq`
/// would do, without two emulated instructions (measured: guest page fault 61 -> 45 us).
/// The general registers are the interrupted ones (the stubs preserve them).
fn return_from_exception(
    ctx: &mut ThreadCtx,
    mut regs: kvm_bindings::kvm_regs,
    f: &ExceptionFrame,
) {
    regs.rip = f.rip;
    regs.rsp = f.rsp;
    regs.rflags = f.rflags;
    if let Err(e) = ctx.vcpu_mut().set_regs(&regs) {
        fatal(ctx, format_args!("{e}"))
    }
    if ctx.mode == kmod::Mode::Ring3 {
        let mut s = match ctx.vcpu().sregs() {
            Ok(s) => s,
            Err(e) => fatal(ctx, format_args!("{e}")),
        };
        s.cs = crate::dune::seg(crate::gdt::USER_CS, 11, 3, true, 0);
        s.ss = crate::dune::seg(crate::gdt::USER_SS, 3, 3, false, 0);
        if let Err(e) = ctx.vcpu_mut().set_sregs(&s) {
            fatal(ctx, format_args!("{e}"))
        }
    }
}

fn resolve_page_fault(ctx: &mut ThreadCtx, addr: u64, err: u64) -> bool {
    let page = addr & !0xfff;
    let entry = ctx.dune.guest_entry(page);
    if entry_allows(entry, err) {
        // Spurious (PVM reflects a shadow miss once; or a stale shadow entry): flush, retry.
        ctx.spurious_streak = if ctx.last_fault == page {
            ctx.spurious_streak + 1
        } else {
            1
        };
        ctx.last_fault = page;
        if ctx.spurious_streak > 4 {
            return false;
        }
        return ctx.flush_tlb().is_ok();
    }
    ctx.spurious_streak = 0;
    ctx.last_fault = page;
    // On demand: memory the process mapped outside our view (another thread, a mapping made
    // before a syscall we did not see).
    match maps::find_fast(addr) {
        Some(m) if prot_allows(m.prot, err) && m.end <= crate::addr::USER_END => {
            // not-present -> present needs no flush (a stale shadow entry shows up as a
            // spurious fault, which flushes)
            ctx.dune
                .map_fault_window(addr, m.start, m.end, m.prot)
                .is_ok()
        }
        _ => false,
    }
}

/// An access reached a guest-physical address without a memory slot (not the doorbell).
/// This cannot be completed: KVM treats the access as MMIO that userspace finished (and PVM
/// reports only the page of a CPL3 access), so resuming would lose the access. Every path
/// that maps a guest page registers its slot first, so this means the process unmapped
/// memory behind the guest's back (a thread outside Dune).
pub(crate) fn handle_unbacked(ctx: &mut ThreadCtx, gpa: u64) {
    fatal(
        ctx,
        format_args!(
            "guest access to {gpa:#x}, which has no memory slot (unmapped outside Dune?) (SIGSEGV)"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paging::pte::{NX, P, RW, US};

    #[test]
    fn access_checks() {
        assert!(entry_allows(P | US, 0));
        assert!(!entry_allows(P | US, PF_WRITE));
        assert!(entry_allows(P | US | RW, PF_WRITE | 4));
        assert!(!entry_allows(P | NX, PF_FETCH));
        assert!(!entry_allows(0, 0));
        assert!(prot_allows(libc::PROT_READ, 0));
        assert!(!prot_allows(libc::PROT_READ, PF_WRITE));
        assert!(!prot_allows(libc::PROT_NONE, 0));
    }
}
