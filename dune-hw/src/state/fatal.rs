//! Fatal errors of a vCPU thread: a message and a register dump written from a stack
//! buffer (fault paths must not allocate), then abort. Part of the per-thread state layer,
//! so that the services and the monitor above can all report through it.

use crate::state::dune::ThreadCtx;
use core::fmt::Write;

/// A formatter into a fixed stack buffer (fault paths must not allocate).
pub(crate) struct StackBuf {
    buf: [u8; 4096],
    len: usize,
}

impl StackBuf {
    pub(crate) fn new() -> StackBuf {
        StackBuf {
            buf: [0; 4096],
            len: 0,
        }
    }
    /// Appends a formatted line. Output beyond the buffer is cut; a `Display` impl that
    /// fails only shortens the message (nothing to recover on a fatal path).
    pub(crate) fn line(&mut self, args: core::fmt::Arguments<'_>) {
        if self.write_fmt(args).is_err() || self.write_str("\n").is_err() {
            self.len = self.len.min(self.buf.len());
        }
    }

    pub(crate) fn write_to_stderr(&self) {
        // SAFETY: writing our own initialised bytes to fd 2.
        unsafe { libc::write(2, self.buf.as_ptr().cast(), self.len) };
    }
}

impl Write for StackBuf {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// Prints `what` and a register dump of the vCPU, then aborts the process.
pub(crate) fn fatal(ctx: &ThreadCtx, what: core::fmt::Arguments<'_>) -> ! {
    fatal_at(ctx, None, what)
}

/// Like [`fatal`] for a guest exception: `frame` is what the CPU pushed, so the dump shows
/// the faulting rip/rsp/rflags (the general registers are the faulting ones: the CPL0 stubs
/// preserve them) and the code at the faulting rip.
pub(crate) fn fatal_at(
    ctx: &ThreadCtx,
    frame: Option<&crate::arch::entry::ExceptionFrame>,
    what: core::fmt::Arguments<'_>,
) -> ! {
    let mut b = StackBuf::new();
    b.line(format_args!(
        "dune: fatal in {} mode: {what}",
        ctx.mode.name()
    ));
    let regs = ctx.vcpu.as_ref().and_then(|v| v.regs().ok());
    let mut code_rip = None;
    if let Some(r) = regs {
        let (rip, rsp, rflags) = match frame {
            Some(f) => (f.rip, f.rsp, f.rflags),
            None => (r.rip, r.rsp, r.rflags),
        };
        code_rip = Some(rip);
        b.line(format_args!(
            "  rip={rip:#018x} rsp={rsp:#018x} rflags={rflags:#x}\n  rax={:#x} rbx={:#x} rcx={:#x} rdx={:#x}\n  rsi={:#x} rdi={:#x} rbp={:#x}\n  r8={:#x} r9={:#x} r10={:#x} r11={:#x}\n  r12={:#x} r13={:#x} r14={:#x} r15={:#x}",
            r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp, r.r8, r.r9, r.r10, r.r11, r.r12,
            r.r13, r.r14, r.r15
        ));
    }
    if let Some(s) = ctx.vcpu.as_ref().and_then(|v| v.sregs().ok()) {
        b.line(format_args!(
            "  cs={:#x} ss={:#x} cr0={:#x} cr2={:#x} cr3={:#x} cr4={:#x} efer={:#x} fs.base={:#x}",
            s.cs.selector, s.ss.selector, s.cr0, s.cr2, s.cr3, s.cr4, s.efer, s.fs.base
        ));
    }
    if let Some(rip) = code_rip {
        if crate::paging::maps::find(rip)
            .is_some_and(|m| m.prot & libc::PROT_READ != 0 && rip + 16 <= m.end)
        {
            // SAFETY: the 16 bytes at rip are inside a readable mapping of this process.
            let code: [u8; 16] =
                unsafe { crate::arch::addr::read_guest(crate::arch::addr::Gva(rip)) };
            b.line(format_args!("  code at rip: {code:02x?}"));
        }
    }
    b.write_to_stderr();
    std::process::abort()
}
