// Layer 4: services (dune-hw/LAYERS).
//! clone, clone3, fork and vfork from a Dune thread.
//!
//! - **A thread** (CLONE_VM | CLONE_THREAD, as `pthread_create` makes): the monitor creates
//!   the child's context (vCPU, GDT/TSS/monitor stack, exit-loop stack) first, gives its
//!   vCPU the parent's registers at the `syscall` with rax = 0, the new stack and the new
//!   TLS, and only then runs the clone on the host with the child's *exit-loop* stack: the
//!   new host thread starts in `thread_entry`, which enters the guest at once, so the
//!   child's first instruction runs in Dune. CLONE_SETTLS is required (the host side of the
//!   thread finds its context through its TLS). The thread's `exit` gives its vCPU back.
//! - **fork** (no CLONE_VM) and **vfork** (CLONE_VM | CLONE_VFORK, as `posix_spawn`
//!   makes): the child is a new process and runs **outside Dune** — a KVM VM belongs to the
//!   process that created it. The child continues on the host with the guest's registers
//!   (rax = 0); in a forked child `in_dune()` is false and `enter()` fails (Unsupported).
//!   Its FPU/SSE state is the host thread's, not the guest's (a rounding mode set inside
//!   Dune is not inherited by a fork child; threads do inherit it).
//!   A vfork child shares the parent's memory and TLS: it should only exec or `_exit`, as
//!   POSIX says.
//! - CLONE_VM without CLONE_THREAD or CLONE_VFORK (a process sharing memory and running
//!   concurrently) is refused with ENOSYS.

use crate::arch::addr::{read_guest, Gva};
use crate::arch::entry::{self, CloneReq};
use crate::state::dune::{self, HostWrite, ThreadCtx};
use crate::state::fatal::{fatal, StackBuf};
use kmod::syscall::CloneOp;
use kvm_bindings::kvm_regs;
use std::sync::atomic::Ordering;

const CLONE_VM: u64 = 0x100;
const CLONE_VFORK: u64 = 0x4000;
const CLONE_THREAD: u64 = 0x10000;
const CLONE_SETTLS: u64 = 0x80000;
const CLONE_PARENT_SETTID: u64 = 0x100000;
const CLONE_PIDFD: u64 = 0x1000;
const CLONE_CHILD_SETTID: u64 = 0x0100_0000;
const SIGCHLD: u64 = 17;
const ENOSYS: i64 = 38;
const EINVAL: i64 = 22;
const EAGAIN: i64 = 11;
/// Bytes of `struct clone_args` we understand (up to `cgroup`, CLONE_ARGS_SIZE_VER2).
const CLONE_ARGS_BYTES: usize = 88;
/// Bytes at the bottom of a thread's exit-loop stack used as the host stack of a fork or
/// vfork child (the exit loop never grows that deep; the parent is stopped in the call).
const CHILD_HOST_STACK_BYTES: u64 = 64 << 10;

/// The call as the guest made it, normalised.
struct Request {
    flags: u64,
    /// Where the kernel stores the child's tid (CLONE_CHILD_SETTID/CLEARTID).
    child_tid: u64,
    /// Guest stack of the child (0: the parent's).
    child_sp: u64,
    parent_tid: u64,
    tls: u64,
}

/// Handles a clone-family call of `ctx`'s guest stopped with `regs` at a `syscall` whose
/// return address is `ret_rip` and stack `user_rsp`. Returns the parent's result.
pub(crate) fn clone(
    ctx: &mut ThreadCtx,
    op: CloneOp,
    a: [u64; 6],
    regs: &kvm_regs,
    ret_rip: u64,
    user_rsp: u64,
) -> i64 {
    let mut args3 = [0u8; CLONE_ARGS_BYTES];
    let req = match op {
        CloneOp::Clone => Request {
            flags: a[0],
            child_tid: a[3],
            child_sp: a[1],
            parent_tid: a[2],
            tls: a[4],
        },
        CloneOp::Clone3 => {
            let n = (a[1] as usize).min(CLONE_ARGS_BYTES);
            if (a[1] as usize) < 64 {
                return -EINVAL;
            }
            for (i, b) in args3.iter_mut().enumerate().take(n) {
                // SAFETY: the program's clone_args of `a[1]` bytes.
                *b = unsafe { read_guest::<u8>(Gva(a[0] + i as u64)) };
            }
            let w =
                |i: usize| u64::from_ne_bytes(args3[8 * i..8 * i + 8].try_into().expect("8 bytes"));
            let (stack, stack_size) = (w(5), w(6));
            Request {
                flags: w(0) | w(4),
                child_tid: w(2),
                child_sp: if stack != 0 { stack + stack_size } else { 0 },
                parent_tid: w(3),
                tls: w(7),
            }
        }
        CloneOp::Fork => Request {
            flags: SIGCHLD,
            child_tid: 0,
            child_sp: 0,
            parent_tid: 0,
            tls: 0,
        },
        CloneOp::Vfork => Request {
            flags: CLONE_VM | CLONE_VFORK | SIGCHLD,
            child_tid: 0,
            child_sp: 0,
            parent_tid: 0,
            tls: 0,
        },
    };
    let mut child = *regs;
    child.rax = 0;
    child.rip = ret_rip;
    child.rcx = ret_rip;
    child.rflags = (regs.r11 & 0x3f_7fd5) | 0x202;
    child.r11 = child.rflags;
    child.rsp = if req.child_sp != 0 {
        req.child_sp
    } else {
        user_rsp
    };
    if req.flags & CLONE_THREAD != 0 {
        return spawn_thread(ctx, op, &req, &child, &mut args3, a);
    }
    if req.flags & CLONE_VM != 0 && req.flags & CLONE_VFORK == 0 {
        let mut b = StackBuf::new();
        b.line(format_args!(
            "dune: clone(CLONE_VM without CLONE_THREAD or CLONE_VFORK) refused with ENOSYS: \
             a process sharing memory cannot run outside Dune safely"
        ));
        b.write_to_stderr();
        return -ENOSYS;
    }
    spawn_process(ctx, op, &req, &child, &mut args3, a)
}

fn spawn_thread(
    ctx: &mut ThreadCtx,
    op: CloneOp,
    req: &Request,
    child_regs: &kvm_regs,
    args3: &mut [u8; CLONE_ARGS_BYTES],
    a: [u64; 6],
) -> i64 {
    if req.flags & CLONE_SETTLS == 0 || req.flags & CLONE_VM == 0 {
        let mut b = StackBuf::new();
        b.line(format_args!(
            "dune: clone(CLONE_THREAD) without CLONE_SETTLS or CLONE_VM refused with EINVAL \
             (the host side of a Dune thread needs its own TLS)"
        ));
        b.write_to_stderr();
        return -EINVAL;
    }
    let d = ctx.dune;
    let gs = match ctx.vcpu().sregs() {
        Ok(s) => s.gs.base,
        Err(e) => fatal(ctx, format_args!("{e}")),
    };
    let mut c = match ThreadCtx::with_bases(d, req.tls, gs) {
        Ok(c) => c,
        Err(e) => {
            let mut b = StackBuf::new();
            b.line(format_args!("dune: clone refused with EAGAIN: {e}"));
            b.write_to_stderr();
            return -EAGAIN;
        }
    };
    if let Err(e) = c.vcpu_mut().set_regs(child_regs) {
        fatal(ctx, format_args!("{e}"))
    }
    // the child inherits the FPU/SSE/AVX state (control words, MXCSR) as on Linux
    if let Err(e) = ctx.vcpu().xsave().and_then(|x| c.vcpu().set_xsave(&x)) {
        fatal(ctx, format_args!("{e}"))
    }
    let (stack_top, stack_base) = (dune::loop_stack_top(&c), c.loop_stack);
    let p = Box::into_raw(c);
    let mut req_host = CloneReq {
        nr: 56,
        args: [req.flags, stack_top, a[2], a[3], req.tls],
        child_fn: thread_entry,
        child_arg: p as u64,
    };
    if op == CloneOp::Clone3 {
        args3[40..48].copy_from_slice(&stack_base.to_ne_bytes());
        args3[48..56].copy_from_slice(&(stack_top - stack_base).to_ne_bytes());
        req_host.nr = 435;
        req_host.args = [
            args3.as_ptr() as u64,
            a[1].min(CLONE_ARGS_BYTES as u64),
            0,
            0,
            0,
        ];
    }
    d.live_threads.fetch_add(1, Ordering::AcqRel);
    // SAFETY: the child starts on its own exit-loop stack in `thread_entry`, which takes
    // ownership of the context `p`; CLONE_SETTLS gives it its own TLS.
    let tid = unsafe { entry::dune_clone(&req_host) };
    if tid < 0 {
        d.live_threads.fetch_sub(1, Ordering::AcqRel);
        // SAFETY: no child was created: the context is ours again.
        drop(unsafe { Box::from_raw(p) });
        return tid;
    }
    ctx.stats.threads_created += 1;
    report_tids(ctx, req, op, args3);
    tid
}

fn report_tids(ctx: &ThreadCtx, req: &Request, op: CloneOp, args3: &[u8; CLONE_ARGS_BYTES]) {
    if req.flags & CLONE_PARENT_SETTID != 0 && req.parent_tid != 0 {
        ctx.dune.report_host_write(HostWrite::Range {
            start: Gva(req.parent_tid),
            len_bytes: 4,
        });
    }
    // a thread shares our memory: the kernel's store of its tid is a host write
    if req.flags & (CLONE_CHILD_SETTID | CLONE_VM) == CLONE_CHILD_SETTID | CLONE_VM
        && req.child_tid != 0
    {
        ctx.dune.report_host_write(HostWrite::Range {
            start: Gva(req.child_tid),
            len_bytes: 4,
        });
    }
    if req.flags & CLONE_PIDFD != 0 {
        let at = match op {
            CloneOp::Clone3 => u64::from_ne_bytes(args3[8..16].try_into().expect("8 bytes")),
            _ => req.parent_tid,
        };
        if at != 0 {
            ctx.dune.report_host_write(HostWrite::Range {
                start: Gva(at),
                len_bytes: 8,
            });
        }
    }
}

/// The new thread's host side: adopt the context and run its exit loop (the vCPU already
/// holds the child's guest registers).
extern "C" fn thread_entry(p: u64) -> ! {
    let p = p as *mut ThreadCtx;
    dune::set_current(p);
    // SAFETY: the parent handed this context over (Box::into_raw) and keeps no reference;
    // `dune_monitor_run` (the monitor's exit loop, defined in `crate::monitor`) takes it
    // over as the thread's own, exactly as `monitor::run` does.
    unsafe { dune_monitor_run(p as u64) }
}

// Defined by the layer above: `crate::monitor::dune_monitor_run`, exported unmangled under
// this name, so that creating a thread does not import the exit loop the thread runs.
extern "C" {
    /// Runs the exit loop of the thread context at `ctx` (a `*mut ThreadCtx` this thread
    /// owns and has installed as current) on this thread. Never returns.
    fn dune_monitor_run(ctx: u64) -> !;
}

fn spawn_process(
    ctx: &mut ThreadCtx,
    op: CloneOp,
    req: &Request,
    child_regs: &kvm_regs,
    args3: &mut [u8; CLONE_ARGS_BYTES],
    a: [u64; 6],
) -> i64 {
    // The child continues on the host: its FS base must be the guest's.
    let fs = match ctx.vcpu().sregs() {
        Ok(s) => s.fs.base,
        Err(e) => fatal(ctx, format_args!("{e}")),
    };
    // The child's host stack: the bottom of this thread's exit-loop stack; the registers it
    // resumes with are copied to its top (for a vfork child the parent's frames stay intact).
    let host_top = ctx.loop_stack + CHILD_HOST_STACK_BYTES;
    let regs_at = (host_top - core::mem::size_of::<ChildStart>() as u64) & !63;
    let start = ChildStart {
        regs: *child_regs,
        fs,
        vfork: (req.flags & CLONE_VM != 0) as u64,
    };
    // SAFETY: the bottom 64 KiB of our own exit-loop stack, never reached by the loop.
    unsafe { crate::arch::addr::write_guest(Gva(regs_at), start) };
    let sp = regs_at - 64;
    let mut req_host = CloneReq {
        nr: 56,
        args: [req.flags, sp, a[2], a[3], req.tls],
        child_fn: process_child_entry,
        child_arg: regs_at,
    };
    match op {
        CloneOp::Clone3 => {
            args3[40..48].copy_from_slice(&ctx.loop_stack.to_ne_bytes());
            args3[48..56].copy_from_slice(&(sp - ctx.loop_stack).to_ne_bytes());
            req_host.nr = 435;
            req_host.args = [
                args3.as_ptr() as u64,
                a[1].min(CLONE_ARGS_BYTES as u64),
                0,
                0,
                0,
            ];
        }
        CloneOp::Fork | CloneOp::Vfork => {
            req_host.args = [req.flags, sp, 0, 0, 0];
        }
        CloneOp::Clone => {}
    }
    // SAFETY: the child starts on the private stack area prepared above in
    // `process_child_entry` and never returns into this frame.
    let pid = unsafe { entry::dune_clone(&req_host) };
    if pid > 0 {
        report_tids(ctx, req, op, args3);
    }
    pid
}

/// What a fork/vfork child resumes with.
#[repr(C)]
#[derive(Clone, Copy)]
struct ChildStart {
    regs: kvm_regs,
    fs: u64,
    vfork: u64,
}

extern "C" fn process_child_entry(p: u64) -> ! {
    crate::services::signal::forked_child_mask();
    // SAFETY: `spawn_process` wrote a ChildStart at `p` before the clone.
    let s: ChildStart = unsafe { crate::arch::addr::read_guest(Gva(p)) };
    if s.vfork == 0 {
        // a copy of the process: no VM here; the TLS is the child's own copy
        dune::FORKED_CHILD.store(true, Ordering::Release);
        dune::set_current(core::ptr::null_mut());
    }
    // SAFETY: ARCH_SET_FS with the base the guest code uses (the same memory).
    unsafe { libc::syscall(libc::SYS_arch_prctl, 0x1002, s.fs) };
    // SAFETY: the guest's registers at its clone call, with rax = 0: valid host state for
    // the same code and memory.
    unsafe { entry::dune_resume_host_regs(&s.regs) }
}
