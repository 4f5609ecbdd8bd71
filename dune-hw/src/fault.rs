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
//! A handler may call [`crate::pagetable`] (e.g. copy a page and make it writable: the
//! copy-on-write pattern) and [`crate::tlb`] (the flush then happens before the guest
//! resumes). It must not take locks the guest code may hold, nor panic.

use crate::addr::Gva;
use crate::trap::Exception;
use std::sync::atomic::{AtomicPtr, Ordering};

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

/// Runs the closure for `vector`, if any. `Some(true)`: resume with `regs` (updated);
/// `Some(false)` or `None`: not handled.
pub(crate) fn dispatch(
    vector: u64,
    error: u64,
    cr2: u64,
    regs: &mut kvm_bindings::kvm_regs,
) -> Option<bool> {
    let e = exception_of(vector)?;
    let p = HANDLERS[vector as usize].load(Ordering::Acquire);
    if p.is_null() {
        return None;
    }
    // SAFETY: only `set_fault_handler` stores non-null pointers here, from Box::into_raw,
    // and they are never freed.
    let h: &Handler = unsafe { &*p };
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
            dispatch(2, 0, 0, &mut r),
            None,
            "NMI is not a program exception"
        );
        assert_eq!(
            dispatch(0, 0, 0, &mut r),
            None,
            "no closure installed for #DE"
        );
    }
}
