// Layer 4: services (dune-hw/LAYERS).
//! Guest exceptions, handled host-side: a page fault on memory the process has mapped is
//! resolved (slot + page table, on demand); a spurious fault (a shadow-paging artefact) is
//! retried after a flush; anything else ends the process with a register dump.

use crate::arch::addr::{read_guest, Gva};
use crate::arch::entry::{self, ExceptionFrame};
use crate::arch::idt;
use crate::paging::maps;
use crate::paging::pte;
use crate::state::dune::ThreadCtx;
use crate::state::fatal::{fatal, fatal_at};

use std::sync::atomic::{AtomicUsize, Ordering};

const PF_WRITE: u64 = 1 << 1;

/// The exceptions a program may handle itself ([`set_exception_handler`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exception {
    /// #DE, vector 0.
    DivideError,
    /// #BP (int3), vector 3.
    Breakpoint,
    /// #UD, vector 6.
    InvalidOpcode,
    /// #GP, vector 13.
    GeneralProtection,
    /// #PF, vector 14 (after the monitor's own on-demand mapping found nothing to map).
    PageFault,
}

impl Exception {
    /// The vector.
    pub fn vector(self) -> u8 {
        match self {
            Exception::DivideError => 0,
            Exception::Breakpoint => 3,
            Exception::InvalidOpcode => 6,
            Exception::GeneralProtection => 13,
            Exception::PageFault => 14,
        }
    }
}

/// A guest exception as an exception handler sees (and may change) it.
#[derive(Clone, Copy, Debug)]
pub struct Trap {
    /// Vector number.
    pub vector: u8,
    /// Error code (0 for vectors without one).
    pub error: u64,
    /// Page faults: the faulting address (CR2).
    pub fault_addr: u64,
    /// rax, rbx, rcx, rdx, rsi, rdi, rbp, rsp, r8..r15 of the interrupted code.
    pub gprs: [u64; 16],
    /// Where the exception happened (#BP: after the int3); the code resumes here.
    pub rip: u64,
    /// RFLAGS.
    pub rflags: u64,
}

/// What an exception handler decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrapAction {
    /// Resume the interrupted code with the (possibly changed) registers. For a page
    /// fault with `rip` unchanged this retries the access: map the page first.
    Resume,
    /// Not handled: the guest's signal handler (if any) gets the signal Linux would send,
    /// otherwise the process ends with a register dump.
    Unhandled,
}

/// An exception handler. It runs on the host side of the faulting thread (in its exit
/// loop), natively, while the guest is stopped: it may make syscalls (e.g. `mmap` with
/// MAP_FIXED to map the page a fault wants: the monitor maps new memory into the guest on
/// the retry), but it must not take locks the guest may hold, nor panic.
pub type ExceptionHandler = fn(&mut Trap) -> TrapAction;

static HANDLERS: [AtomicUsize; 32] = [const { AtomicUsize::new(0) }; 32];

/// Installs (or removes) the process-wide handler of `e` for every Dune thread. A closure
/// installed with [`crate::services::fault::set_fault_handler`] runs before it.
pub fn set_exception_handler(e: Exception, h: Option<ExceptionHandler>) {
    HANDLERS[e.vector() as usize].store(h.map_or(0, |f| f as usize), Ordering::Release);
}

fn handler_of(vector: u64) -> Option<ExceptionHandler> {
    let h = HANDLERS.get(vector as usize)?.load(Ordering::Acquire);
    // SAFETY: only `set_exception_handler` stores here, always a valid ExceptionHandler.
    (h != 0).then(|| unsafe { core::mem::transmute::<usize, ExceptionHandler>(h) })
}

/// The signal Linux sends for a user-mode exception: (signal, si_code, si_addr).
fn signal_for(vector: u64, error: u64, cr2: u64, rip: u64) -> Option<(i32, i32, u64)> {
    Some(match vector {
        0 => (libc::SIGFPE, 1, rip), // FPE_INTDIV
        16 | 19 => (libc::SIGFPE, 0, rip),
        1 | 3 => (libc::SIGTRAP, 0x80, 0), // SI_KERNEL
        6 => (libc::SIGILL, 2, rip),       // ILL_ILLOPN
        13 => (libc::SIGSEGV, 0x80, 0),
        17 => (libc::SIGBUS, 1, cr2), // BUS_ADRALN
        14 => (libc::SIGSEGV, if error & 1 != 0 { 2 } else { 1 }, cr2), // ACCERR : MAPERR
        _ => return None,
    })
}

/// Runs the program's exception handler, then its signal handler, for an exception the
/// monitor could not resolve. True if the guest can continue.
fn dispatch_to_program(
    ctx: &mut ThreadCtx,
    regs: &kvm_bindings::kvm_regs,
    f: &ExceptionFrame,
    cr2: u64,
    declined: bool,
) -> bool {
    let mut r = *regs;
    r.rip = f.rip;
    r.rsp = f.rsp;
    r.rflags = f.rflags;
    let mut c = r;
    if crate::services::fault::dispatch(f.vector, f.error, cr2, &mut c, declined) == Some(true) {
        let frame = ExceptionFrame {
            rip: c.rip,
            rsp: c.rsp,
            rflags: (c.rflags & 0x50dd5) | 0x202,
            ..*f
        };
        return_from_exception(ctx, c, &frame);
        return true;
    }
    if let Some(h) = handler_of(f.vector) {
        let mut t = Trap {
            vector: f.vector as u8,
            error: f.error,
            fault_addr: cr2,
            gprs: [
                r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp, r.rsp, r.r8, r.r9, r.r10, r.r11,
                r.r12, r.r13, r.r14, r.r15,
            ],
            rip: r.rip,
            rflags: r.rflags,
        };
        if h(&mut t) == TrapAction::Resume {
            let g = t.gprs;
            (r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp, r.rsp) =
                (g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7]);
            (r.r8, r.r9, r.r10, r.r11, r.r12, r.r13, r.r14, r.r15) =
                (g[8], g[9], g[10], g[11], g[12], g[13], g[14], g[15]);
            let frame = ExceptionFrame {
                rip: t.rip,
                rsp: r.rsp,
                rflags: (t.rflags & 0x50dd5) | 0x202,
                ..*f
            };
            return_from_exception(ctx, r, &frame);
            return true;
        }
    }
    let Some((sig, code, addr)) = signal_for(f.vector, f.error, cr2, f.rip) else {
        return false;
    };
    let at = crate::services::signal::Interrupted {
        regs: r,
        trapno: f.vector,
        err: f.error,
        cr2,
    };
    crate::services::signal::deliver_fault(ctx, sig, code, addr, &at)
}
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
    let mut f: ExceptionFrame = unsafe { read_guest(Gva(regs.rsp)) };
    if f.vector & entry::VECTOR_NESTED != 0 {
        f.vector &= 0xff;
        nested_in_guest_handler(ctx, &regs, &f);
    }
    let declined = f.vector & entry::VECTOR_DECLINED != 0;
    f.vector &= 0xff;
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
            crate::arch::ledger::monitor_fault();
            return_from_exception(ctx, regs, &f);
            return;
        }
        if dispatch_to_program(ctx, &regs, &f, cr2, declined) {
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
    if f.vector == 6 && ctx.mode == kmod::Mode::Ring0 {
        if !ctx.native_step {
            // KVM's emulator refused an instruction with #UD (MOVBE in libc's memcmp, on a
            // host whose KVM only emulates MOVBE): the CPU may have it, so run it natively
            // once. A #UD there too is the program's own.
            let mut r = regs;
            r.rip = f.rip;
            r.rsp = f.rsp;
            r.rflags = f.rflags;
            step_natively_with(ctx, r);
            return;
        }
        leave_native_step(ctx);
        f.rflags &= !TF;
    }
    if dispatch_to_program(ctx, &regs, &f, 0, declined) {
        return;
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

/// An exception inside a guest fault handler (the in-guest stubs saw the interrupted rsp on
/// the monitor stack): the handler broke its rules; report both frames and end the process.
fn nested_in_guest_handler(
    ctx: &ThreadCtx,
    regs: &kvm_bindings::kvm_regs,
    f: &ExceptionFrame,
) -> ! {
    // the stub pushed `f` at IST top - 56; the interrupted program's frame is at IST top -
    // GUEST_FRAME_OFFSET
    let outer_at = regs.rsp + 56 - entry::GUEST_FRAME_OFFSET;
    let outer: Option<entry::GuestTrapFrame> = crate::state::dune::on_monitor_stack(ctx, outer_at)
        // SAFETY: inside this thread's monitor stack (checked), where the in-guest path
        // saved the frame of the exception whose handler faulted.
        .then(|| unsafe { read_guest(Gva(outer_at)) });
    let cr2 = if f.vector == 14 {
        ctx.vcpu().sregs().map_or(0, |s| s.cr2)
    } else {
        0
    };
    let (ov, orip, oerr) = outer.map_or((0, 0, 0), |o| (o.vector & 0xff, o.rip, o.error));
    fatal_at(
        ctx,
        Some(f),
        format_args!(
            "exception inside a guest fault handler: {} (vector {}), error {:#x}, address \
             {cr2:#x}, at rip {:#x} - while handling {} (vector {ov}), error {oerr:#x}, of the \
             program at rip {orip:#x}; a guest fault handler must not fault",
            idt::name(f.vector),
            f.vector,
            f.error,
            f.rip,
            idt::name(ov),
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
    let r = match ctx.vcpu().regs() {
        Ok(r) => r,
        Err(e) => fatal(ctx, format_args!("{e}")),
    };
    step_natively_with(ctx, r);
}

/// [`step_natively`] from the registers `r` (the instruction at `r.rip`).
fn step_natively_with(ctx: &mut ThreadCtx, mut r: kvm_bindings::kvm_regs) {
    let mut s = match ctx.vcpu().sregs() {
        Ok(s) => s,
        Err(e) => fatal(ctx, format_args!("{e}")),
    };
    r.rflags |= TF;
    s.cs = crate::state::dune::seg(crate::arch::gdt::USER_CS, 11, 3, true, 0);
    s.ss = crate::state::dune::seg(crate::arch::gdt::USER_SS, 3, 3, false, 0);
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
    leave_native_step(ctx);
    if let Err(e) = ctx.vcpu_mut().set_regs(&regs) {
        fatal(ctx, format_args!("{e}"))
    }
}

/// Ends a native step: the CPL0 code and stack segments again.
fn leave_native_step(ctx: &mut ThreadCtx) {
    ctx.native_step = false;
    let mut s = match ctx.vcpu().sregs() {
        Ok(s) => s,
        Err(e) => fatal(ctx, format_args!("{e}")),
    };
    s.cs = crate::state::dune::seg(crate::arch::gdt::KERNEL_CS, 11, 0, true, 0);
    s.ss = crate::state::dune::seg(crate::arch::gdt::KERNEL_SS, 3, 0, false, 0);
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
    if ctx.mode.app_in_user_mode() {
        let mut s = match ctx.vcpu().sregs() {
            Ok(s) => s,
            Err(e) => fatal(ctx, format_args!("{e}")),
        };
        s.cs = crate::state::dune::seg(crate::arch::gdt::USER_CS, 11, 3, true, 0);
        s.ss = crate::state::dune::seg(crate::arch::gdt::USER_SS, 3, 3, false, 0);
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
    if entry & pte::API != 0 {
        // the program chose this protection (`pagetable`): its fault handler decides
        return false;
    }
    // On demand: memory the process mapped outside our view (another thread, a mapping made
    // before a syscall we did not see).
    match maps::find_fast(addr) {
        Some(m) if prot_allows(m.prot, err) && m.end <= crate::arch::addr::USER_END => {
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
