// Layer 4: services (dune-hw/LAYERS).
//! Exception handlers for library users: closures receiving the faulting address, the
//! decoded error code and the registers, deciding to resume (possibly with changed
//! registers), skip the instruction, or leave the exception unhandled.
//!
//! Same dispatch point as [`crate::set_exception_handler`] (a process-wide handler per
//! exception, run on the host side of the faulting Dune thread while its guest is stopped,
//! after the monitor's own on-demand mapping found nothing to do), in ring-3 and ring-0
//! mode alike. A closure installed here runs first; if it returns
//! [`FaultAction::Unhandled`], the `fn` handler of [`crate::set_exception_handler`] (if
//! any) runs, then the guest's signal handler, then the process ends with a register dump.
//!
//! A handler may call [`crate::api::pagetable`] (e.g. copy a page and make it writable: the
//! copy-on-write pattern) and [`crate::services::tlb`] (the flush then happens before the guest
//! resumes). It must not take locks the guest code may hold, nor panic.
//!
//! # Guest fault handlers: delivery without an exit
//! [`set_guest_fault_handler`] installs a plain `fn(&mut Fault) -> FaultAction`, first in
//! line (before the closures above), with the same [`Fault`] and [`FaultAction`]. Where our
//! own supervisor code takes the exception natively ([`guest_delivery`]: `pvm`, `pvm-ring0`,
//! and `ring0`, where it is emulated), it runs **in the guest**, on the faulting vCPU's
//! monitor stack (IST 1, one per thread), with the interrupted registers and extended state
//! (XSAVE) saved there, and resumes the program without leaving the guest:
//!
//! ```text
//! program (PV user) --#PF--> IDT gate, IST 1 --> stub (PV supervisor, native): save regs,
//!   xsave, call the dispatcher --> handler --> xrstor --> HC_IRET_FRAME (pvm) / iretq
//! ```
//!
//! It sees: every #DE, #BP, #UD, #GP for which it is installed, and the #PFs the monitor
//! would give the program anyway — faults on pages whose entry the program set through
//! [`crate::api::pagetable`] (not present or not allowing the access). Other page faults
//! (memory not yet in the guest table, spurious shadow-paging faults) go to the monitor
//! first, which calls the same handler host-side if it cannot resolve them.
//! `Unhandled` continues on the host path: the exit, then the closures of
//! [`set_fault_handler`], the `fn` handler of [`crate::set_exception_handler`], the guest's
//! signal handler, the fatal dump (the guest handler is not called a second time).
//!
//! **Rules for a guest handler** (it interrupts arbitrary program code, on a small stack):
//! no locks, no allocation, no syscalls (in `pvm` a syscall from it is a fatal error: the
//! program's user mode is not where it runs), no faults (an exception inside it ends the
//! process with "exception inside a guest fault handler" and both frames, never a hang),
//! no panics; it may touch only memory the guest table maps already. To change a page it
//! calls [`crate::api::pagetable::protect_page_in_guest`] (lock-free, flushes this vCPU's
//! translation with a hypercall / `invlpg`). While it runs, the program's registers are in
//! the frame on the monitor stack; [`crate::guest_regs`] returns them from there for a thread
//! stopped in the handler (not for one stopped in the stub's few save/restore instructions).
//!
//! **In `ring3`** (and where the extended state would not fit the monitor stack) the same
//! handler runs host-side at the same point as the closures, with the same semantics, at the
//! host path's price: every such exception is an exit (~80 µs for a write-protection trap
//! here, against ~10-20 µs in the guest in `pvm`; figures in
//! `bench-results/dune-paper-microbenchmarks.md`). [`ThreadStats::guest_faults`] counts the
//! exceptions resolved in the guest.
//!
//! [`ThreadStats::guest_faults`]: crate::ThreadStats::guest_faults

use crate::arch::addr::Gva;
use crate::arch::entry::GuestTrapFrame;
use crate::paging::pte;
use crate::services::trap::Exception;
use crate::state::dune::Dune;
use kmod::Mode;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

/// A page-fault error code, decoded (Intel SDM vol. 3, 4.7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageFaultCode(pub u64);

impl PageFaultCode {
    /// P: the page was present (a protection violation); clear: not present.
    pub fn present(self) -> bool {
        self.0 & 1 != 0
    }
    /// W/R: the access was a write.
    pub fn write(self) -> bool {
        self.0 & 2 != 0
    }
    /// U/S: the access was made at CPL3 (ring-3 mode's guest code; clear in ring-0 mode).
    pub fn user(self) -> bool {
        self.0 & 4 != 0
    }
    /// RSVD: a reserved bit was set in an entry.
    pub fn reserved_bit(self) -> bool {
        self.0 & 8 != 0
    }
    /// I/D: the access was an instruction fetch.
    pub fn fetch(self) -> bool {
        self.0 & 16 != 0
    }
    /// PK: a protection key forbade the access.
    pub fn protection_key(self) -> bool {
        self.0 & 32 != 0
    }
    /// SS: a shadow-stack access.
    pub fn shadow_stack(self) -> bool {
        self.0 & 64 != 0
    }
}

/// The interrupted code's registers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[allow(missing_docs)] // the register names are the docs
pub struct Registers {
    pub rax: u64,
    pub rbx: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub rbp: u64,
    pub rsp: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
    /// The faulting instruction (#BP: the one after the `int3`).
    pub rip: u64,
    /// RFLAGS (only the arithmetic flags, DF and AC are taken back on resume).
    pub rflags: u64,
}

/// A guest exception as a [`set_fault_handler`] closure sees (and may change) it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    /// Which exception.
    pub exception: Exception,
    /// The raw error code (0 for exceptions without one).
    pub error_code: u64,
    /// Page faults: the faulting address (CR2).
    pub addr: Option<Gva>,
    /// The interrupted code's registers; changes take effect on [`FaultAction::Resume`]
    /// and [`FaultAction::Skip`].
    pub regs: Registers,
}

impl Fault {
    /// The decoded error code of a page fault (`None` for other exceptions).
    pub fn page_fault(&self) -> Option<PageFaultCode> {
        (self.exception == Exception::PageFault).then_some(PageFaultCode(self.error_code))
    }
}

/// What a fault handler decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultAction {
    /// Resume at `regs.rip` with the (possibly changed) registers; for a page fault with
    /// `rip` unchanged this retries the access (change the mapping first).
    Resume,
    /// Resume after the faulting instruction, `len_bytes` long (the handler knows the
    /// instruction; x86 lengths are 1-15 bytes).
    Skip {
        /// Length of the faulting instruction.
        len_bytes: u64,
    },
    /// Not handled here: the next handler in line (see the module docs).
    Unhandled,
}

type Handler = Box<dyn Fn(&mut Fault) -> FaultAction + Send + Sync + 'static>;

static HANDLERS: [AtomicPtr<Handler>; 32] = [const { AtomicPtr::new(core::ptr::null_mut()) }; 32];

/// Installs `handler` for exception `e` in every Dune thread of the process (replacing the
/// closure installed before). A replaced closure is never freed: another thread may be
/// running it (a few bytes per replacement).
pub fn set_fault_handler<F>(e: Exception, handler: F)
where
    F: Fn(&mut Fault) -> FaultAction + Send + Sync + 'static,
{
    let p = Box::into_raw(Box::new(Box::new(handler) as Handler));
    HANDLERS[e.vector() as usize].store(p, Ordering::Release);
}

/// Removes the closure for `e` (see [`set_fault_handler`]).
pub fn clear_fault_handler(e: Exception) {
    HANDLERS[e.vector() as usize].store(core::ptr::null_mut(), Ordering::Release);
}

/// A guest fault handler (see the module docs): runs in the guest where
/// [`guest_delivery`] holds, host-side otherwise; it must not lock, allocate, make
/// syscalls, fault or panic.
pub type GuestFaultHandler = fn(&mut Fault) -> FaultAction;

static GUEST_HANDLERS: [AtomicUsize; 32] = [const { AtomicUsize::new(0) }; 32];

/// Installs (`Some`) or removes (`None`) the process-wide guest fault handler of `e` for
/// every Dune thread (see the module docs). Takes effect at the next exception.
pub fn set_guest_fault_handler(e: Exception, h: Option<GuestFaultHandler>) {
    let v = e.vector() as usize;
    GUEST_HANDLERS[v].store(h.map_or(0, |f| f as usize), Ordering::Release);
    crate::arch::entry::GUEST_VECTORS[v].store(h.is_some() as u8, Ordering::Release);
}

fn guest_handler_of(vector: u64) -> Option<GuestFaultHandler> {
    let h = GUEST_HANDLERS.get(vector as usize)?.load(Ordering::Acquire);
    // SAFETY: only `set_guest_fault_handler` stores here, always a valid GuestFaultHandler.
    (h != 0).then(|| unsafe { core::mem::transmute::<usize, GuestFaultHandler>(h) })
}

/// Whether guest fault handlers run in the guest, without an exit, in this process (`pvm`,
/// `pvm-ring0`, `ring0`); false in `ring3` (host path) and before Dune is initialised.
pub fn guest_delivery() -> bool {
    Dune::get().is_some_and(|d| d.guest_delivery)
}

/// Whether the calling code runs in a guest fault handler (on this thread's monitor
/// stack, in the guest). Lock-free.
pub fn in_guest_fault_handler() -> bool {
    let p = crate::state::dune::CTX.with(|c| c.get());
    if p.is_null() {
        return false;
    }
    let sp: u64;
    // SAFETY: reading rsp has no side effects.
    unsafe { core::arch::asm!("mov {}, rsp", out(reg) sp, options(nomem, nostack)) };
    // SAFETY: the ctx is live while the thread is in Dune mode; its stack bounds are plain
    // data that only its own thread writes (at creation).
    crate::state::dune::on_monitor_stack(unsafe { &*p }, sp)
}

/// In a guest fault handler: drops this vCPU's translation of `page` (pvm, pvm-ring0: the
/// `HC_FLUSH_TLB_ONE` hypercall, allowed in the supervisor mode the handler runs in;
/// ring0: `invlpg` at CPL0).
pub(crate) fn flush_page_in_guest_handler(page: u64) {
    let Some(d) = Dune::get() else { return };
    match d.mode.mode {
        Mode::Pvm | Mode::PvmRing0 => crate::services::tlb::pvm_flush_tlb_page(page),
        Mode::Ring0 => {
            // SAFETY: a guest fault handler in ring-0 mode runs at CPL0; invlpg only drops a
            // translation.
            unsafe { core::arch::asm!("invlpg [{}]", in(reg) page, options(nostack)) }
        }
        Mode::Ring3 => {}
    }
}

fn read_cr2() -> u64 {
    let cr2: u64;
    // SAFETY: called only in a guest fault handler's dispatcher, which runs at CPL0 (ring0,
    // emulated) or in PV supervisor mode (pvm, pvm-ring0; trapped and emulated there).
    unsafe { core::arch::asm!("mov {}, cr2", out(reg) cr2, options(nomem, nostack)) };
    cr2
}

/// The in-guest path's dispatcher, called by the exception stubs of
/// [`crate::arch::entry::exception_stub_guest`] on the monitor stack with the saved frame.
/// Returns 1 to resume with the (updated) frame, 0 to continue on the host path (with
/// [`crate::arch::entry::VECTOR_DECLINED`] set in the frame when the handler declined).
/// Unmangled: `entry` declares it as an `extern` symbol (the arch layer imports nothing
/// from the services).
#[no_mangle]
pub(crate) extern "C" fn dune_guest_trap(f: &mut GuestTrapFrame) -> u64 {
    let Some(e) = exception_of(f.vector) else {
        return 0;
    };
    let Some(h) = guest_handler_of(f.vector) else {
        return 0;
    };
    let cr2 = if e == Exception::PageFault {
        let cr2 = read_cr2();
        let Some(d) = Dune::get() else { return 0 };
        let entry = d.dirty_view().entry(cr2);
        // only what the monitor would give the program: an entry the program set, which
        // forbids this access (anything else: on-demand mapping, spurious fault)
        if entry & pte::API == 0 || crate::services::trap::entry_allows(entry, f.error) {
            return 0;
        }
        cr2
    } else {
        0
    };
    let mut fault = Fault {
        exception: e,
        error_code: f.error,
        addr: (e == Exception::PageFault).then_some(Gva(cr2)),
        regs: Registers {
            rax: f.rax,
            rbx: f.rbx,
            rcx: f.rcx,
            rdx: f.rdx,
            rsi: f.rsi,
            rdi: f.rdi,
            rbp: f.rbp,
            rsp: f.rsp,
            r8: f.r8,
            r9: f.r9,
            r10: f.r10,
            r11: f.r11,
            r12: f.r12,
            r13: f.r13,
            r14: f.r14,
            r15: f.r15,
            rip: f.rip,
            rflags: f.rflags,
        },
    };
    let skip = match h(&mut fault) {
        FaultAction::Unhandled => {
            f.vector |= crate::arch::entry::VECTOR_DECLINED;
            return 0;
        }
        FaultAction::Resume => 0,
        FaultAction::Skip { len_bytes } => len_bytes,
    };
    let g = fault.regs;
    (f.rax, f.rbx, f.rcx, f.rdx) = (g.rax, g.rbx, g.rcx, g.rdx);
    (f.rsi, f.rdi, f.rbp, f.rsp) = (g.rsi, g.rdi, g.rbp, g.rsp);
    (f.r8, f.r9, f.r10, f.r11) = (g.r8, g.r9, g.r10, g.r11);
    (f.r12, f.r13, f.r14, f.r15) = (g.r12, g.r13, g.r14, g.r15);
    f.rip = g.rip.wrapping_add(skip);
    f.rflags = (g.rflags & RESUME_RFLAGS) | 0x202;
    let p = crate::state::dune::CTX.with(|c| c.get());
    if !p.is_null() {
        // SAFETY: this thread's own context; the host side of the thread is inside KVM_RUN
        // (it reads the counters only after the vCPU stops).
        unsafe { (*p).stats.guest_faults += 1 };
    }
    crate::arch::ledger::guest_fault();
    1
}

/// RFLAGS bits a handler may change (arithmetic flags, TF, DF, OF, RF, AC).
const RESUME_RFLAGS: u64 = 0x50dd5;

fn exception_of(vector: u64) -> Option<Exception> {
    Some(match vector {
        0 => Exception::DivideError,
        3 => Exception::Breakpoint,
        6 => Exception::InvalidOpcode,
        13 => Exception::GeneralProtection,
        14 => Exception::PageFault,
        _ => return None,
    })
}

/// Host path: runs the guest fault handler for `vector` (unless the in-guest path already
/// ran it: `declined`), then the closure, if any. `Some(true)`: resume with `regs`
/// (updated); `Some(false)` or `None`: not handled.
pub(crate) fn dispatch(
    vector: u64,
    error: u64,
    cr2: u64,
    regs: &mut kvm_bindings::kvm_regs,
    declined: bool,
) -> Option<bool> {
    if !declined {
        if let Some(g) = guest_handler_of(vector) {
            if run(vector, error, cr2, regs, &g)? {
                return Some(true);
            }
        }
    }
    let p = HANDLERS.get(vector as usize)?.load(Ordering::Acquire);
    if p.is_null() {
        return None;
    }
    // SAFETY: only `set_fault_handler` stores non-null pointers here, from Box::into_raw,
    // and they are never freed.
    let h: &Handler = unsafe { &*p };
    run(vector, error, cr2, regs, h)
}

fn run(
    vector: u64,
    error: u64,
    cr2: u64,
    regs: &mut kvm_bindings::kvm_regs,
    h: &dyn Fn(&mut Fault) -> FaultAction,
) -> Option<bool> {
    let e = exception_of(vector)?;
    let r = &*regs;
    let mut f = Fault {
        exception: e,
        error_code: error,
        addr: (e == Exception::PageFault).then_some(Gva(cr2)),
        regs: Registers {
            rax: r.rax,
            rbx: r.rbx,
            rcx: r.rcx,
            rdx: r.rdx,
            rsi: r.rsi,
            rdi: r.rdi,
            rbp: r.rbp,
            rsp: r.rsp,
            r8: r.r8,
            r9: r.r9,
            r10: r.r10,
            r11: r.r11,
            r12: r.r12,
            r13: r.r13,
            r14: r.r14,
            r15: r.r15,
            rip: r.rip,
            rflags: r.rflags,
        },
    };
    let skip = match h(&mut f) {
        FaultAction::Unhandled => return Some(false),
        FaultAction::Resume => 0,
        FaultAction::Skip { len_bytes } => len_bytes,
    };
    let g = f.regs;
    (regs.rax, regs.rbx, regs.rcx, regs.rdx) = (g.rax, g.rbx, g.rcx, g.rdx);
    (regs.rsi, regs.rdi, regs.rbp, regs.rsp) = (g.rsi, g.rdi, g.rbp, g.rsp);
    (regs.r8, regs.r9, regs.r10, regs.r11) = (g.r8, g.r9, g.r10, g.r11);
    (regs.r12, regs.r13, regs.r14, regs.r15) = (g.r12, g.r13, g.r14, g.r15);
    regs.rip = g.rip.wrapping_add(skip);
    regs.rflags = g.rflags;
    Some(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_fault_code_decodes_the_sdm_bits() {
        let c = PageFaultCode(0b10111);
        assert!(c.present() && c.write() && c.user() && c.fetch());
        assert!(!c.reserved_bit() && !c.protection_key() && !c.shadow_stack());
        let c = PageFaultCode(0);
        assert!(!c.present() && !c.write() && !c.user() && !c.fetch());
    }

    #[test]
    fn only_handled_vectors_dispatch() {
        let mut r = kvm_bindings::kvm_regs::default();
        assert_eq!(
            dispatch(2, 0, 0, &mut r, false),
            None,
            "NMI is not a program exception"
        );
        assert_eq!(
            dispatch(0, 0, 0, &mut r, false),
            None,
            "no closure installed for #DE"
        );
    }
}
