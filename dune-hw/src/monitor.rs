// Layer 5: monitor (dune-hw/LAYERS).
//! The host half of the monitor: the exit loop of one vCPU, on its own stack.
//!
//! Ring-3 mode's CPL0 code is a handful of stub instructions (see [`crate::arch::entry`]) because
//! guest CPL0 is emulated on PVM hosts: every decision is taken here, natively, on the host.
//! In `pvm` mode the same stubs run natively in the hypervisor's supervisor mode; the loop
//! tracks whether the vCPU stopped there and returns it to user mode through the
//! `HC_IRET_FRAME` stub when a handler resumes the program (`pvm_return_to_user`).

use crate::arch::entry::{self, EnterFrame, EXCEPTION_PORT, SYSCALL_DOORBELL_VALUE, SYSCALL_PORT};
use crate::arch::host_counters;
use crate::arch::ledger::{self, ExitReason};
use crate::services::{syscall, trap};
use crate::state::dune::ThreadCtx;
use crate::state::fatal::fatal;
use kmod::Exit;
use std::sync::atomic::Ordering;

/// Entered on the loop stack by `dune_enter_trampoline`. Never returns: it resumes the host
/// with `dune_resume_host` (leave, or a failure before the first entry) or aborts.
pub(crate) extern "C" fn loop_entry(_frame: *mut EnterFrame) -> ! {
    let p = crate::state::dune::CTX.with(|c| c.get());
    // SAFETY: `enter_with` stored a live, exclusively owned ThreadCtx in CTX before calling
    // the trampoline; nothing else touches it until this loop resumes the host.
    let ctx = unsafe { &mut *p };
    if let Err(e) = start_guest(ctx) {
        ctx.pending_error = Some(e);
        // SAFETY: `frame` holds the host state saved by the trampoline.
        unsafe { entry::dune_resume_host(&ctx.frame, 1) }
    }
    run(ctx)
}

fn start_guest(ctx: &mut ThreadCtx) -> Result<(), crate::arch::error::DuneError> {
    let f = ctx.frame;
    let mut r = ctx.vcpu().regs()?;
    r.rip = f.rip;
    r.rsp = f.rsp;
    r.rbx = f.rbx;
    r.rbp = f.rbp;
    r.r12 = f.r12;
    r.r13 = f.r13;
    r.r14 = f.r14;
    r.r15 = f.r15;
    r.rax = 0; // enter() returns Ok in the guest
    r.rflags = 0x202;
    ctx.vcpu_mut().set_regs(&r)?;
    Ok(())
}

/// `pvm` mode: the vCPU is in PV supervisor mode (stopped in a monitor stub) and the
/// registers the exit handlers left say "continue in the program": the host cannot switch a
/// vCPU to user mode itself (nor does a trapped `iretq`), so it resumes the vCPU at the
/// `HC_IRET_FRAME` stub with a frame (the program's rax, rbx, rdi, rip, rflags, rsp and the
/// user selectors) at the top of the monitor stack. Every other register already holds the
/// program's value (the hypercall preserves them). A vCPU left in a stub (its own return
/// path) is not touched.
fn pvm_return_to_user(ctx: &mut ThreadCtx) {
    let mut r = match ctx.vcpu().regs() {
        Ok(r) => r,
        Err(e) => fatal(ctx, format_args!("{e}")),
    };
    if entry::in_monitor_code(r.rip) {
        return;
    }
    // 16-byte aligned, below the top of the monitor stack (the exception frame the
    // handlers consumed may be overwritten)
    let frame_at = (ctx.cpu_pages + ctx.cpu_pages_len as u64 - 64) & !15;
    let frame = entry::PvmIretFrame {
        rax: r.rax,
        rbx: r.rbx,
        rdi: r.rdi,
        rip: r.rip,
        cs: crate::arch::gdt::USER_CS as u64,
        rflags: r.rflags,
        rsp: r.rsp,
        ss: crate::arch::gdt::USER_SS as u64,
    };
    // SAFETY: the top of this thread's monitor stack: mapped, writable, and not in use (the
    // vCPU is stopped and resumes at the stub, which reads exactly this frame).
    unsafe { crate::arch::addr::write_guest(crate::arch::addr::Gva(frame_at), frame) };
    r.rip = entry::pvm_iret();
    r.rax = kmod::pvm::HC_IRET_FRAME;
    r.rbx = frame_at;
    r.rsp = frame_at;
    r.rflags = 0x2;
    if let Err(e) = ctx.vcpu_mut().set_regs(&r) {
        fatal(ctx, format_args!("{e}"))
    }
}

/// `pvm`: a syscall from a guest fault handler (it runs in supervisor mode on the monitor
/// stack; the host would resume it in user mode) ends the process with a clear message.
fn syscall_in_guest_handler_is_fatal(ctx: &ThreadCtx) {
    let rsp = match ctx.vcpu().regs() {
        Ok(r) => r.rsp,
        Err(e) => fatal(ctx, format_args!("{e}")),
    };
    if crate::state::dune::on_monitor_stack(ctx, rsp) {
        fatal(
            ctx,
            format_args!(
                "syscall from a guest fault handler (rsp {rsp:#x} on the monitor stack): guest \
                 fault handlers must not make syscalls"
            ),
        );
    }
}

/// The exit loop of a new thread's context `ctx` (a `*mut ThreadCtx`), for the thread
/// service below (`crate::services::thread`), which declares it `extern` so that it does not
/// import this layer.
#[no_mangle]
extern "C" fn dune_monitor_run(ctx: u64) -> ! {
    // SAFETY: the thread service passes the context its creator handed over
    // (Box::into_raw), installed as this thread's current one; nothing else references it.
    let ctx = unsafe { &mut *(ctx as *mut ThreadCtx) };
    run(ctx)
}

/// The ledger's name for an exit.
fn exit_reason(exit: &Exit, doorbell: u64) -> ExitReason {
    match exit {
        Exit::MmioWrite { gpa, value }
            if gpa & !0xfff == doorbell && *value == SYSCALL_DOORBELL_VALUE =>
        {
            ExitReason::Syscall
        }
        Exit::IoOut {
            port: SYSCALL_PORT, ..
        } => ExitReason::Syscall,
        Exit::IoOut {
            port: EXCEPTION_PORT,
            ..
        } => ExitReason::Exception,
        Exit::Interrupted => ExitReason::Interrupted,
        Exit::HostMemoryGone => ExitReason::HostMemoryGone,
        Exit::MmioWrite { .. } | Exit::MmioRead { .. } => ExitReason::Mmio,
        _ => ExitReason::Other,
    }
}

/// The exit loop of one vCPU.
pub(crate) fn run(ctx: &mut ThreadCtx) -> ! {
    let doorbell = ctx.dune.doorbell;
    let mut gone_streak = 0u32;
    // the last exit, recorded in the ledger when the loop comes back to KVM_RUN
    let mut last: Option<(ExitReason, u64, u64)> = None;
    if !ctx.host_counters_tried {
        // on the thread that runs this vCPU: the counters count the calling thread
        ctx.host_counters_tried = true;
        ctx.host_counters = crate::arch::host_counters::ThreadCounters::open();
    }
    loop {
        crate::services::signal::deliver_pending(ctx);
        if ctx.dune.generation.load(Ordering::Acquire) != ctx.seen_generation {
            if let Err(e) = ctx.flush_tlb() {
                fatal(ctx, format_args!("TLB flush before entry failed: {e}"));
            }
        }
        if ctx.pvm_supervisor {
            pvm_return_to_user(ctx);
        }
        let t0 = ledger::ticks();
        if let Some((reason, run_ticks, t1)) = last {
            ledger::exit(reason, run_ticks, t0.wrapping_sub(t1));
        }
        ctx.note_entry();
        let usage0 = host_counters::thread_usage();
        let exit = match ctx.vcpu_mut().run() {
            Ok(e) => e,
            Err(e) => fatal(ctx, format_args!("{e}")),
        };
        let t1 = ledger::ticks();
        if let (Some((f0, u0, s0)), Some((f1, u1, s1))) = (usage0, host_counters::thread_usage()) {
            ledger::faults_in_run(f1.saturating_sub(f0));
            host_counters::time_in_run(u1.saturating_sub(u0), s1.saturating_sub(s0));
        }
        if let Some(h) = ctx.host_counters.as_mut() {
            h.update();
        }
        last = Some((exit_reason(&exit, doorbell), t1.wrapping_sub(t0), t1));
        if ctx.mode == kmod::Mode::Pvm {
            // the program runs in user mode, only the monitor's stubs in supervisor mode
            ctx.pvm_supervisor = match ctx.vcpu().regs() {
                Ok(r) => entry::in_monitor_code(r.rip),
                Err(e) => fatal(ctx, format_args!("{e}")),
            };
        }
        ctx.stats.exits += 1;
        if exit != Exit::HostMemoryGone {
            gone_streak = 0;
        }
        match exit {
            Exit::MmioWrite { gpa, value }
                if gpa & !0xfff == doorbell && value == SYSCALL_DOORBELL_VALUE =>
            {
                syscall::handle(ctx)
            }
            Exit::IoOut {
                port: SYSCALL_PORT, ..
            } => {
                if ctx.mode == kmod::Mode::Pvm {
                    syscall_in_guest_handler_is_fatal(ctx);
                }
                syscall::handle(ctx)
            }
            Exit::IoOut {
                port: EXCEPTION_PORT,
                ..
            } => {
                ctx.in_exception = true;
                trap::handle(ctx);
                ctx.in_exception = false;
            }
            Exit::Interrupted => {}
            Exit::HostMemoryGone => {
                // a mapping removed while this vCPU walked a guest entry to it (mremap,
                // brk, or a thread outside Dune): retry once the entry is gone
                gone_streak += 1;
                if gone_streak > 1000 {
                    fatal(
                        ctx,
                        format_args!(
                            "guest access to host memory that no longer exists (unmapped \
                             outside Dune?) (SIGSEGV)"
                        ),
                    );
                }
                if let Err(e) = ctx.flush_tlb() {
                    fatal(ctx, format_args!("{e}"));
                }
                // SAFETY: sched_yield has no arguments.
                unsafe { libc::sched_yield() };
                continue;
            }
            Exit::MmioWrite { gpa, .. } | Exit::MmioRead { gpa } => trap::handle_unbacked(ctx, gpa),
            Exit::InternalError { suberror: 1 }
                if ctx.mode == kmod::Mode::Ring0 && !ctx.native_step =>
            {
                trap::step_natively(ctx)
            }
            Exit::InternalError { suberror } => fatal(
                ctx,
                format_args!(
                    "KVM internal error {suberror} (1 = an instruction KVM cannot emulate, even \
                     when stepped natively at CPL3)"
                ),
            ),
            other => fatal(ctx, format_args!("unexpected exit {other:?}")),
        }
    }
}
