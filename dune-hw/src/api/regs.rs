//! The guest registers of a Dune thread stopped on its host side: what a collector scans as
//! the thread's roots. Public API layer; the crate root re-exports both items.

use crate::arch::addr::{self, Gva};
use crate::arch::entry;
use crate::state::dune::{self, CTX};

/// The guest registers of the calling Dune thread while it is stopped on its host side
/// (in a signal handler that interrupted the exit loop, or in a host-write hook): what a
/// collector must scan as the thread's roots, since the host registers there belong to the
/// exit loop. `None` outside Dune mode. Async-signal-safe once the thread has run in the
/// guest (registers come from the shared `kvm_run` page).
///
/// It also makes the thread's next entry into the guest go through the exit loop's checks
/// first (a kick of `immediate_exit`): a stop signal can arrive after the loop checked for
/// a pending TLB flush and before it entered the guest; a collector that clears D bits
/// while the thread waits in its handler must have that flush happen before the thread's
/// guest code runs again, and the kick guarantees it.
pub fn guest_regs() -> Option<GuestRegs> {
    let p = CTX.with(|c| c.get());
    if p.is_null() {
        return None;
    }
    // Inside a guest signal handler (not on the exit-loop stack) the registers are in the
    // handler's ucontext, and the vCPU's are stale.
    let sp: u64;
    // SAFETY: reading rsp has no side effects.
    unsafe { core::arch::asm!("mov {}, rsp", out(reg) sp, options(nomem, nostack)) };
    // SAFETY: the ctx is live while the thread is in Dune mode; loop_stack is plain data.
    let on_loop_stack = unsafe {
        let top = dune::loop_stack_top(&*p);
        sp > (*p).loop_stack && sp <= top
    };
    // SAFETY: as above; sig() is the thread's own state.
    let sig = unsafe { (*p).sig() };
    if !on_loop_stack
        && sig
            .handlers_active
            .load(std::sync::atomic::Ordering::Acquire)
            > 0
    {
        return None;
    }
    // SAFETY: the ctx is live while the thread is in Dune mode; the exit loop it belongs to
    // is suspended on this same thread while we read (a signal handler or a hook runs on
    // top of it), so nothing writes these fields concurrently.
    let (vcpu, in_exception) = unsafe { ((*p).vcpu.as_ref()?, (*p).in_exception) };
    sig.kick();
    let mut r = vcpu.regs().ok()?;
    if r.rip == entry::pvm_iret() {
        // `pvm`, about to return to user mode: the program's rip/rsp/rflags are in the frame
        // SAFETY: the monitor wrote a PvmIretFrame at rsp on the monitor stack before entering.
        let f: entry::PvmIretFrame = unsafe { addr::read_guest(Gva(r.rsp)) };
        r.rax = f.rax;
        r.rbx = f.rbx;
        r.rdi = f.rdi;
        r.rip = f.rip;
        r.rsp = f.rsp;
        r.rflags = f.rflags;
    }
    // SAFETY: as above (plain data of the suspended exit loop's context).
    let ctx = unsafe { &*p };
    let top = ctx.cpu_pages + ctx.cpu_pages_len as u64;
    let frame_at = top - entry::GUEST_FRAME_OFFSET;
    if !in_exception
        && dune::on_monitor_stack(ctx, r.rsp)
        && r.rsp < frame_at
        && !entry::in_monitor_code(r.rip)
    {
        // in a guest fault handler: the interrupted program's registers are in the frame the
        // in-guest stub saved (the handler's own stack holds only copies of them)
        // SAFETY: the in-guest path wrote a GuestTrapFrame there before calling the handler.
        let f: entry::GuestTrapFrame = unsafe { addr::read_guest(Gva(frame_at)) };
        return Some(GuestRegs {
            gprs: [
                f.rax, f.rbx, f.rcx, f.rdx, f.rsi, f.rdi, f.rbp, f.rsp, f.r8, f.r9, f.r10, f.r11,
                f.r12, f.r13, f.r14, f.r15,
            ],
            rip: f.rip,
            stack_low: f.rsp.saturating_sub(128),
        });
    }
    let mut user_rsp = r.rsp;
    if in_exception {
        // SAFETY: the CPL0 stub pushed an ExceptionFrame at rsp on the monitor stack.
        let f: entry::ExceptionFrame = unsafe { addr::read_guest(Gva(r.rsp)) };
        user_rsp = f.rsp;
    }
    Some(GuestRegs {
        gprs: [
            r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp, user_rsp, r.r8, r.r9, r.r10, r.r11,
            r.r12, r.r13, r.r14, r.r15,
        ],
        rip: r.rip,
        // the red zone below rsp may hold live values; in ring-3 a syscall exit's rsp is
        // already below it (the LSTAR stub stepped over it)
        stack_low: user_rsp.saturating_sub(128).min(r.rsp),
    })
}

/// A Dune thread's guest registers (see [`guest_regs`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestRegs {
    /// rax, rbx, rcx, rdx, rsi, rdi, rbp, rsp, r8..r15 (rsp: the interrupted code's).
    pub gprs: [u64; 16],
    /// Where the guest is stopped (a monitor stub during an exception).
    pub rip: u64,
    /// Lowest stack address that may hold live data (rsp minus the red zone).
    pub stack_low: u64,
}
