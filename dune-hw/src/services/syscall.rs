// Layer 4: services (dune-hw/LAYERS).
//! Guest syscalls, host side: locate the call site (mode-specific), execute it for the
//! process, keep the guest's page tables and memory slots in step with address-space
//! changes, report host writes, and resume the thread after its `syscall` instruction.

use crate::arch::addr::{read_guest, write_guest, Gva};
use crate::arch::entry::{self, EnterFrame, RING3_SYSCALL_RIP_SLOT, RING3_SYSCALL_RSP_OFFSET};
use crate::arch::ledger;
use crate::services::{signal, thread};
use crate::state::dune::{hypercall, Content, HostWrite, ThreadCtx};
use crate::state::fatal::{fatal, StackBuf};
use kmod::syscall::{self as ks, AddressOp, Class, Coverage, SignalOp, SyscallArgs};
use kmod::Mode;
use std::sync::atomic::Ordering;

const ENOSYS: i64 = 38;

pub(crate) fn handle(ctx: &mut ThreadCtx) {
    let mut regs = match ctx.vcpu().regs() {
        Ok(r) => r,
        Err(e) => fatal(ctx, format_args!("{e}")),
    };
    ctx.stats.syscalls += 1;
    let (ret_rip, user_rsp) = match ctx.mode {
        // SAFETY: the ring-3 LSTAR stub saved the return rip at this slot of the user stack
        // (which is mapped: the stub just wrote it).
        Mode::Ring3 => (
            unsafe { read_guest::<u64>(Gva(regs.rsp + RING3_SYSCALL_RIP_SLOT)) },
            regs.rsp + RING3_SYSCALL_RSP_OFFSET,
        ),
        // pvm: the vCPU stopped at the `out` of the LSTAR stub, right after `syscall`
        Mode::Ring0 | Mode::PvmRing0 | Mode::Pvm => (regs.rcx, regs.rsp),
    };
    let call = SyscallArgs {
        nr: regs.rax,
        args: [regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9],
    };
    if call.nr == ks::nr::RT_SIGRETURN {
        // the ucontext follows the handler's return address, popped by its `ret`
        signal::sigreturn(ctx, user_rsp);
        return;
    }
    let ret = match call.nr {
        // a signal recorded before the call is delivered first (see services/signal)
        _ if ctx.sig().pending() != 0 => signal::CANCELLED,
        hypercall::LEAVE => leave(ctx, &regs, ret_rip, user_rsp),
        // ring-3 (and any mode whose stub did not answer it): the monitor cannot invlpg
        // for the guest, so a one-page request is a full flush
        hypercall::FLUSH_TLB | hypercall::FLUSH_TLB_PAGE => match ctx.flush_tlb() {
            Ok(()) => 0,
            Err(e) => fatal(ctx, format_args!("{e}")),
        },
        hypercall::NOP => 0,
        hypercall::SANDBOX_RUN => {
            // SAFETY: `dune_sandbox_run` is `crate::api::sandbox::cpu::serve_hypercall`; it
            // checks the pointer's alignment and relies, like that function, on
            // SANDBOX_RUN being issued only by `Sandbox::run` on this stopped thread.
            unsafe { dune_sandbox_run(regs.rdi) }
        }
        _ => dispatch(ctx, &call, &regs, ret_rip, user_rsp),
    };
    regs.rax = ret as u64;
    regs.rip = ret_rip;
    regs.rsp = user_rsp;
    regs.rcx = ret_rip;
    regs.rflags = regs.r11;
    if ret == signal::CANCELLED {
        // not run, or restarted (as Linux restarts a call for SA_RESTART): after the
        // handler, the `syscall` runs again
        regs.rax = call.nr;
        regs.rip = ret_rip - 2;
    }
    if let Err(e) = ctx.vcpu_mut().set_regs(&regs) {
        fatal(ctx, format_args!("{e}"))
    }
}

/// Run `f` (a forwarded call), returning its result, the ticks it took and whether the
/// thread switched out voluntarily meanwhile (the call blocked).
fn timed(f: impl FnOnce() -> i64) -> (i64, u64, bool) {
    let switches = ledger::voluntary_switches();
    let t0 = ledger::ticks();
    let ret = f();
    let took = ledger::ticks().wrapping_sub(t0);
    (ret, took, ledger::voluntary_switches() > switches)
}

fn dispatch(
    ctx: &mut ThreadCtx,
    call: &SyscallArgs,
    regs: &kvm_bindings::kvm_regs,
    ret_rip: u64,
    user_rsp: u64,
) -> i64 {
    match ks::classify(call.nr) {
        Class::Clone(op) => signal::around_clone(ctx, |ctx| {
            thread::clone(ctx, op, call.args, regs, ret_rip, user_rsp)
        }),
        Class::Signal(SignalOp::Action) => signal::sigaction(ctx, call.args),
        Class::Signal(SignalOp::AltStack) => signal::sigaltstack(ctx, call.args, user_rsp),
        Class::Signal(SignalOp::Return) => unreachable!("rt_sigreturn is handled by `handle`"),
        Class::Forward => {
            // The ledger splits forwarded calls into those that blocked (the thread
            // switched out voluntarily meanwhile: a futex wait, a sleep, a read of an
            // empty pipe) and the rest: blocked time is waiting, not the cost of Dune.
            let (ret, took, blocked) = timed(|| {
                // SAFETY: `classify` said Forward: the call cannot break the exit loop;
                // its pointers are the program's own (GPA == HVA).
                unsafe { signal::execute_interruptible(ctx.sig(), call) }
            });
            ledger::forwarded_call(call.nr, took, blocked);
            report_host_writes(ctx, call, ret);
            ret
        }
        Class::AddressSpace(op) => {
            // (mmap, munmap, madvise — the heap's populate calls — mprotect, brk: the
            // host call and the guest page-table update, timed and split the same way)
            let (ret, took, blocked) = timed(|| address_space(ctx, op, call));
            ledger::forwarded_call(call.nr, took, blocked);
            ret
        }
        Class::ArchPrctl => arch_prctl(ctx, call),
        Class::ThreadExit => {
            // The thread ends inside the guest: give its vCPU back (KVM cannot destroy a
            // single vCPU, so it is reused), retire the context (we still run on its loop
            // stack), and exit on the host; the last store before exit(2) marks the stacks
            // reusable by the next thread.
            // no handler may run on the loop stack once it can be reused
            let all = u64::MAX;
            // SAFETY: rt_sigprocmask reads 8 bytes from `all`; this thread is ending.
            unsafe {
                libc::syscall(
                    libc::SYS_rt_sigprocmask,
                    libc::SIG_SETMASK,
                    &all as *const u64,
                    core::ptr::null_mut::<u64>(),
                    8usize,
                )
            };
            // (after blocking: nothing is recorded any more, the redirected ones go to
            // other threads)
            signal::redirect_pending_on_exit(ctx.sig());
            ctx.dune.park_vcpu(ctx.vcpu.take());
            // (read after the KVM_RUN that brought this call: nothing is left to count)
            ctx.host_counters = None;
            crate::state::dune::set_current(core::ptr::null_mut());
            let flag = ctx.exited.as_ptr();
            ctx.dune.live_threads.fetch_sub(1, Ordering::AcqRel);
            ctx.dune.retire(ctx as *mut ThreadCtx);
            // SAFETY: exit(2) does not return; the context stays allocated (retired) until
            // another thread sees the flag, which is stored with no stack use afterwards.
            unsafe { entry::dune_exit_thread(flag, call.args[0]) }
        }
        Class::ProcessExit => {
            // SAFETY: exit_group(2) does not return.
            unsafe { ks::execute(call) };
            unreachable!("exit_group returned")
        }
        Class::Unsupported(why) => {
            let mut b = StackBuf::new();
            b.line(format_args!(
                "dune: syscall {} refused with ENOSYS: {why}",
                call.nr
            ));
            b.write_to_stderr();
            -ENOSYS
        }
    }
}

fn report_host_writes(ctx: &ThreadCtx, call: &SyscallArgs, ret: i64) {
    let d = ctx.dune;
    let r64 = |p: u64| {
        // SAFETY: `host_writes` only reads cells (iovecs, length words) the kernel just
        // accepted as valid user memory for this call (it returned success).
        unsafe { read_guest::<u64>(Gva(p)) }
    };
    let r32 = |p: u64| {
        // SAFETY: as above.
        unsafe { read_guest::<u32>(Gva(p)) }
    };
    let cov = ks::host_writes(call, ret, &r64, &r32, &mut |p, n| {
        d.report_host_write(HostWrite::Range {
            start: Gva(p),
            len_bytes: n,
        })
    });
    if cov == Coverage::Unknown {
        d.report_host_write(HostWrite::Unknown { nr: call.nr });
    }
}

fn is_err(ret: i64) -> bool {
    (-4095..0).contains(&ret)
}

fn prot_of_entry(e: u64) -> i32 {
    use crate::paging::pte::{NX, P, RW};
    if e & P == 0 {
        return libc::PROT_NONE;
    }
    let mut p = libc::PROT_READ;
    if e & RW != 0 {
        p |= libc::PROT_WRITE;
    }
    if e & NX == 0 {
        p |= libc::PROT_EXEC;
    }
    p
}

fn address_space(ctx: &mut ThreadCtx, op: AddressOp, call: &SyscallArgs) -> i64 {
    let d = ctx.dune;
    let a = call.args;
    let up = |x: u64| x.next_multiple_of(4096);
    // For mremap the old protection comes from the guest entry of the first page.
    let old_prot = if op == AddressOp::Mremap {
        prot_of_entry(d.guest_entry(a[0]))
    } else {
        0
    };
    // munmap: the guest entries go first. Then, when the host munmap has returned, no vCPU
    // can reach the pages: KVM's MMU notifier drops every vCPU's shadow translation of them
    // (synchronously), and the next walk of the guest table finds no entry (#PF). In the
    // other order another vCPU could walk a present guest entry to a host page that no
    // longer exists (KVM_RUN fails with EFAULT).
    let mut unmapped_used = false;
    if op == AddressOp::Munmap && a[0] & 0xfff == 0 && a[1] != 0 {
        unmapped_used = d.unmap_range(a[0], a[0] + up(a[1]));
    }
    // SAFETY: an address-space call of the program itself; the host side is updated below.
    let ret = unsafe { ks::execute(call) };
    if is_err(ret) {
        return ret;
    }
    let r = match op {
        AddressOp::Mmap => {
            // MAP_FIXED may replace a mapping other vCPUs have cached: all flush
            let fixed = a[3] & libc::MAP_FIXED as u64 != 0;
            if fixed {
                d.generation.fetch_add(1, Ordering::AcqRel);
            }
            d.map_range(
                ret as u64,
                ret as u64 + up(a[1]),
                a[2] as i32,
                Content::Fresh,
            )
            .map(|_| fixed)
        }
        AddressOp::Munmap => Ok(unmapped_used),
        AddressOp::Mprotect => {
            let (s, e) = (a[0], a[0] + up(a[1]));
            // entries never used for a translation (A clear) cannot be cached anywhere
            d.map_range(s, e, a[2] as i32, Content::Kept)
                .inspect(|&used| {
                    if used {
                        d.generation.fetch_add(1, Ordering::AcqRel);
                    }
                })
        }
        AddressOp::Mremap => {
            let (old, old_len, new_len, new) = (a[0], up(a[1]), up(a[2]), ret as u64);
            if new != old {
                // the kernel moved the pages: their content is a host write at `new`
                d.unmap_range(old, old + old_len);
                d.report_host_write(HostWrite::Range {
                    start: Gva(new),
                    len_bytes: new_len.min(old_len),
                });
                d.map_range(new, new + new_len, old_prot, Content::Fresh)
                    .map(|_| true)
            } else if new_len < old_len {
                d.unmap_range(old + new_len, old + old_len);
                Ok(true)
            } else if new_len > old_len {
                d.map_range(old + old_len, old + new_len, old_prot, Content::Fresh)
                    .map(|_| true)
            } else {
                Ok(false)
            }
        }
        AddressOp::Brk => {
            let old = d.brk.swap(ret as u64, Ordering::AcqRel);
            let (o, n) = (up(old), up(ret as u64));
            if n > o {
                d.map_range(o, n, libc::PROT_READ | libc::PROT_WRITE, Content::Fresh)
                    .map(|_| false)
            } else if n < o {
                d.unmap_range(n, o);
                Ok(true)
            } else {
                Ok(false)
            }
        }
    };
    match r {
        Ok(true) => {
            if let Err(e) = ctx.flush_tlb() {
                fatal(ctx, format_args!("{e}"))
            }
        }
        Ok(false) => {}
        Err(e) => fatal(
            ctx,
            format_args!(
                "guest address-space update after syscall {} failed: {e}",
                call.nr
            ),
        ),
    }
    ret
}

fn arch_prctl(ctx: &mut ThreadCtx, call: &SyscallArgs) -> i64 {
    const SET_GS: u64 = 0x1001;
    const SET_FS: u64 = 0x1002;
    const GET_FS: u64 = 0x1003;
    const GET_GS: u64 = 0x1004;
    let (code, arg) = (call.args[0], call.args[1]);
    if !(SET_GS..=GET_GS).contains(&code) {
        // SAFETY: other arch_prctl codes (CET, XCOMP, CPUID faulting queries) are per-process
        // or harmless for the host thread.
        return unsafe { ks::execute(call) };
    }
    let vcpu = ctx.vcpu();
    let mut s = match vcpu.sregs() {
        Ok(s) => s,
        Err(e) => fatal(ctx, format_args!("{e}")),
    };
    match code {
        SET_FS => s.fs.base = arg,
        SET_GS => s.gs.base = arg,
        // SAFETY: the program passed a pointer to a u64 for the result (arch_prctl contract);
        // it is its own memory.
        GET_FS => unsafe { write_guest(Gva(arg), s.fs.base) },
        // SAFETY: as above.
        _ => unsafe { write_guest(Gva(arg), s.gs.base) },
    }
    if code == GET_FS || code == GET_GS {
        ctx.dune.report_host_write(HostWrite::Range {
            start: Gva(arg),
            len_bytes: 8,
        });
    }
    if code == SET_FS || code == SET_GS {
        if code == SET_FS {
            ctx.fs_base = arg;
        }
        if let Err(e) = ctx.vcpu_mut().set_sregs(&s) {
            fatal(ctx, format_args!("{e}"))
        }
    }
    0
}

/// Leaves Dune mode: the thread continues on the host right after the LEAVE hypercall, with
/// the guest's callee-saved registers and stack.
fn leave(ctx: &mut ThreadCtx, regs: &kvm_bindings::kvm_regs, ret_rip: u64, user_rsp: u64) -> ! {
    ctx.frame = EnterFrame {
        rbx: regs.rbx,
        rbp: regs.rbp,
        r12: regs.r12,
        r13: regs.r13,
        r14: regs.r14,
        r15: regs.r15,
        rip: ret_rip,
        rsp: user_rsp,
    };
    // A thread-local base the guest installed (arch_prctl inside Dune) becomes the host's.
    // The exit loop uses no thread-locals after this point.
    if let Ok(s) = ctx.vcpu().sregs() {
        for (code, base) in [(0x1002, s.fs.base), (0x1001, s.gs.base)] {
            let get = if code == 0x1002 { 0x1003 } else { 0x1004 };
            let mut now = 0u64;
            // SAFETY: ARCH_GET_FS/GS write one u64.
            unsafe { libc::syscall(libc::SYS_arch_prctl, get, &mut now as *mut u64) };
            if now != base {
                // SAFETY: the guest thread itself asked for this base (arch_prctl inside
                // Dune); it continues on the host right after.
                unsafe { libc::syscall(libc::SYS_arch_prctl, code, base) };
            }
        }
    }
    // SAFETY: the frame describes the guest thread's own state at its LEAVE call site, which
    // is valid host state (same memory, same code).
    unsafe { entry::dune_resume_host(&ctx.frame, 0) }
}

// Defined by the public API layer: `crate::api::sandbox::cpu::serve_hypercall`, exported
// unmangled under this name, so that forwarding does not import the sandbox above it.
extern "C" {
    /// The monitor's side of `Sandbox::run`: runs the request at `p`; 0 or -errno.
    fn dune_sandbox_run(p: u64) -> i64;
}
