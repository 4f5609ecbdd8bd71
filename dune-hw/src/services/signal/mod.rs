// Layer 4: services (dune-hw/LAYERS).
//! Signals of Dune threads, delivered to their handlers *inside the guest*.
//!
//! The monitor keeps the guest's signal actions (`rt_sigaction` inside Dune is answered
//! here) and installs one host action per caught signal: `host_trampoline`. On a thread
//! outside Dune the trampoline calls the program's handler directly (the kernel's ucontext
//! is the real one). On a Dune thread it only records the signal as pending (with its
//! siginfo) and sets the vCPU's `immediate_exit`, so KVM_RUN returns at once; the exit loop
//! then builds a Linux `rt_sigframe` (siginfo, ucontext with the interrupted guest
//! registers, XSAVE state, signal mask) on the guest stack (or the guest's sigaltstack) and
//! resumes the guest in the handler; the handler returns through its `sa_restorer`, whose
//! `rt_sigreturn` the monitor answers by restoring what the frame holds.
//!
//! The guest's signal mask *is* the host thread's (rt_sigprocmask, ppoll, pselect6,
//! rt_sigsuspend are forwarded), except for signals the trampoline *holds* (below).
//!
//! # One recorded instance per signal; the kernel keeps the queue
//! The host action blocks every signal while the trampoline runs (trampolines never nest),
//! and the trampoline adds the signal it recorded to the mask its interrupted context
//! resumes with (`uc_sigmask`): the signal is *held*. Further instances stay in the
//! kernel's queues until the monitor has delivered the recorded one, which releases the
//! hold (the handler's own mask then decides, as on Linux). So real-time signals are queued
//! exactly as Linux queues them (each instance, in order, with its own siginfo;
//! thread-directed in the thread's queue, process-directed in the process's, which any
//! thread not blocking the signal may take), and the bound is Linux's own: RLIMIT_SIGPENDING
//! queued signals per user, beyond which `sigqueue` fails with EAGAIN. Standard signals merge
//! in the kernel as on Linux. `held` tells the guest mask apart from the hold: guest mask =
//! host mask without the held bits (a signal the guest itself blocks is never held: it
//! reaches the trampoline only through a temporary mask, rt_sigsuspend or ppoll). Held
//! bits are always a subset of the recorded ones, and no guest code runs while a signal is
//! recorded (the exit loop delivers before every entry; only the monitor's stub
//! instructions run when a signal is recorded with the guest inside them), so the guest
//! never sees a held bit in its mask.
//!
//! Delivering a signal whose handler mask (`sa_mask`, the signal itself) blocks another
//! recorded signal puts that one back into the thread's kernel queue with its siginfo
//! (`rt_tgsigqueueinfo` to itself): it waits, blocked, until the handler returns, as on
//! Linux. Such a requeued real-time instance goes behind instances of the same signal
//! still queued in the thread's queue (the only reordering, and only with two different
//! signals recorded at once).
//!
//! # Signals at a blocking call (no lost wake-up)
//! Linux: a signal pending and not blocked when a thread enters a blocking call interrupts
//! it; a signal arriving during the call interrupts it (EINTR, or a restart after the
//! handler for SA_RESTART). In Dune the call is executed by the monitor on the host, and
//! the trampoline consumes the host signal when it records it, so the kernel cannot know
//! the call should be interrupted. Every syscall exit therefore goes through two checks:
//! 1. `syscall::handle`: a signal recorded already (between the guest's `syscall` and
//!    here, or before) cancels the call: the guest is rewound to its `syscall` instruction
//!    (rax = the call number) and the signal is delivered first; after the handler the
//!    call runs. This is exactly Linux with the signal arriving just before the `syscall`.
//! 2. Forwarded calls run in `dune_sig_call`: `cmp [pending], 0; jne cancel; ...;
//!    syscall`. A trampoline that interrupts the thread with its rip in `[begin, syscall]`
//!    (the check passed, the call has not started) moves the rip to `cancel`, which returns
//!    `CANCELLED` (-ERESTARTNOINTR), handled as in 1 (musl's pthread-cancellation
//!    technique).
//!
//! The interleavings, for a signal S sent to the thread:
//! - S arrives while the guest runs: KVM_RUN returns (EINTR / `immediate_exit`), S is
//!   delivered before the next entry.
//! - S arrives between the exit and the check in 1, or between 1 and `begin`: recorded;
//!   `pending != 0` at 1 or at `begin`: cancelled, S delivered, call restarted.
//! - S arrives in `[begin, syscall]`: recorded, rip moved to `cancel`: as above.
//! - S arrives during the call (the host kernel has started it): the kernel interrupts
//!   it for the trampoline. Host actions carry the guest action's SA_RESTART, so the
//!   kernel applies Linux's own rules: EINTR (ERESTARTNOHAND, ERESTART_RESTARTBLOCK,
//!   ERESTARTSYS without SA_RESTART) comes back to the guest as the call's result and S is
//!   delivered before the guest's next instruction; a restart (ERESTARTSYS with
//!   SA_RESTART, ERESTARTNOINTR) rewinds the host rip to the `syscall` instruction, inside
//!   the window: cancelled, S delivered, and the guest re-executes the call after the
//!   handler.
//! - S arrives after the call returned (rip past `syscall`): recorded; the result goes to
//!   the guest and S is delivered before its next instruction.
//! - S arrives while blocked (not recorded): the kernel keeps it pending; a forwarded
//!   ppoll/pselect6/rt_sigsuspend/rt_sigtimedwait sees it as on Linux.
//! - Clone-family calls (`around_clone`) run with every signal blocked after a last check
//!   (cancelled if a signal is recorded: Linux's ERESTARTNOINTR for fork/clone with a
//!   pending signal), so a new thread or process inherits no held bit; the new thread sets
//!   the guest mask before its first entry, a forked child before it resumes.
//!
//! Handlers the program installed on the host *before* entering (host actions, e.g. a
//! collector's stop signal) run directly on the host side and are not affected. Such a
//! handler that does not block every signal can, by returning, unblock a signal the
//! trampoline held meanwhile: a second instance then finds one recorded and is put back
//! into the kernel's queue (nothing lost, possibly reordered), and a call the kernel
//! restarts after that handler is not checked again (its window was passed).
//!
//! Guest exceptions nobody else handles become the signal Linux would send (page fault ->
//! SIGSEGV with si_addr, #UD -> SIGILL, #DE -> SIGFPE, #BP -> SIGTRAP, #GP -> SIGSEGV),
//! delivered synchronously to the guest handler.
//!
//! On a thread outside Dune the trampoline runs the handler with the mask Linux gives it
//! (the interrupted mask, `sa_mask`, the signal unless SA_NODEFER) and the kernel restarts
//! calls per the action's SA_RESTART.
//!
//! A handler run for a signal that interrupted rt_sigsuspend, ppoll, pselect6,
//! epoll_pwait(2) or io_pgetevents runs with the call's temporary mask plus its `sa_mask`
//! and returns to the thread's own mask (the kernel's frame holds the saved one), as on
//! Linux.
//!
//! Limits:
//! - A thread leaving Dune (`exit()`) with a signal recorded in its last exit puts it back
//!   in its queue (a real-time one behind instances of the same signal queued meanwhile).
//! - A thread ending inside Dune with a recorded process-directed signal (si_code SI_USER,
//!   SI_KERNEL, SI_QUEUE, SI_TIMER) hands it back to the process with its siginfo; others
//!   end with it (a `pthread_sigqueue` to the ending thread also says SI_QUEUE and is
//!   handed on too).
//! - Putting an instance back (the three cases above) takes a queue entry again: at
//!   RLIMIT_SIGPENDING exactly (another sender took the entry it freed) a real-time
//!   instance is dropped, where Linux would have refused that sender with EAGAIN.
//!
//! Tests (`tests/kvm_process.rs`): 1,000 signals at random moments around the entry of a
//! blocking `read` and `futex` wait (with and without SA_RESTART), 100 SIGRTMIN instances
//! with their values (blocked then released, to a busy thread, to the process, and against
//! RLIMIT_SIGPENDING), `sa_mask` deferring a second recorded signal, the temporary mask of
//! rt_sigsuspend, SA_RESTART and the handler mask outside Dune, forks under a signal storm.

use crate::arch::addr::{read_guest, write_guest, Gva};
use crate::arch::entry;
use crate::state::dune::{HostWrite, ThreadCtx, CTX};
use crate::state::fatal::fatal;
use crate::state::sigstate::{SigState, NO_MASK, NSIG, SS_DISABLE};
use kvm_bindings::kvm_regs;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

mod actions;
mod call;
mod frame;

pub(crate) use actions::*;
pub(crate) use call::*;
pub(crate) use frame::*;

const SIG_DFL: u64 = 0;
const SIG_IGN: u64 = 1;
const SA_SIGINFO: u64 = 4;
const SA_ONSTACK: u64 = 0x0800_0000;
const SA_RESTART: u64 = 0x1000_0000;
const SA_NODEFER: u64 = 0x4000_0000;
const SA_RESETHAND: u64 = 0x8000_0000;
const SA_RESTORER: u64 = 0x0400_0000;
const SS_ONSTACK: i32 = 1;
const SS_AUTODISARM: i32 = 1 << 31;
const MINSIGSTKSZ: u64 = 2048;
const EINTR: i64 = 4;
const EINVAL: i64 = 22;
const EPERM: i64 = 1;
const ENOMEM: i64 = 12;
/// RFLAGS bits a signal handler may change through its ucontext (Linux FIX_EFLAGS).
const FIX_EFLAGS: u64 = 0x50dd5;

/// The kernel's `struct sigaction` (x86_64).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct KSigaction {
    handler: u64,
    flags: u64,
    restorer: u64,
    mask: u64,
}

/// One guest action; atomics so the trampoline reads it without a lock.
struct GuestAction {
    /// 0 = never set from inside Dune (the host's action is the truth).
    installed: AtomicU64,
    handler: AtomicU64,
    flags: AtomicU64,
    restorer: AtomicU64,
    mask: AtomicU64,
}

#[allow(clippy::declare_interior_mutable_const)]
const NO_ACTION: GuestAction = GuestAction {
    installed: AtomicU64::new(0),
    handler: AtomicU64::new(0),
    flags: AtomicU64::new(0),
    restorer: AtomicU64::new(0),
    mask: AtomicU64::new(0),
};
static ACTIONS: [GuestAction; NSIG + 1] = [NO_ACTION; NSIG + 1];
/// Serialises rt_sigaction (read-modify-write of a guest action and its host action).
static ACTION_LOCK: Mutex<()> = Mutex::new(());

impl GuestAction {
    fn load(&self) -> KSigaction {
        KSigaction {
            handler: self.handler.load(Ordering::Acquire),
            flags: self.flags.load(Ordering::Acquire),
            restorer: self.restorer.load(Ordering::Acquire),
            mask: self.mask.load(Ordering::Acquire),
        }
    }
    fn store(&self, a: &KSigaction) {
        self.flags.store(a.flags, Ordering::Release);
        self.restorer.store(a.restorer, Ordering::Release);
        self.mask.store(a.mask, Ordering::Release);
        self.handler.store(a.handler, Ordering::Release);
        self.installed.store(1, Ordering::Release);
    }
}

fn raw_sigaction(sig: u64, act: *const KSigaction, old: *mut KSigaction) -> i64 {
    // SAFETY: rt_sigaction reads/writes at most one kernel sigaction at each non-null
    // pointer; both point to locals of the caller or are null.
    unsafe { libc::syscall(libc::SYS_rt_sigaction, sig, act, old, 8usize) as i64 }
}

fn sigmask_get() -> u64 {
    let mut old = 0u64;
    // SAFETY: rt_sigprocmask writes 8 bytes to `old`.
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_BLOCK,
            core::ptr::null::<u64>(),
            &mut old as *mut u64,
            8usize,
        )
    };
    old
}

fn sigmask_set(m: u64) {
    // SAFETY: rt_sigprocmask reads 8 bytes from `m`.
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &m as *const u64,
            core::ptr::null_mut::<u64>(),
            8usize,
        )
    };
}

/// Blocks every signal on the calling thread; returns the mask before. While they are
/// blocked no trampoline runs on this thread, so `pending` and `held` stay as they are.
fn block_all() -> u64 {
    let all = u64::MAX;
    let mut old = 0u64;
    // SAFETY: rt_sigprocmask reads 8 bytes from `all` and writes 8 bytes to `old`.
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &all as *const u64,
            &mut old as *mut u64,
            8usize,
        )
    };
    old
}

fn gettid() -> i64 {
    // SAFETY: gettid has no arguments.
    unsafe { libc::syscall(libc::SYS_gettid) }
}

/// Puts a signal instance back into the calling thread's kernel queue with its siginfo
/// (async-signal-safe). The kernel takes it as sent by this process (allowed for any
/// si_code) and counts it against RLIMIT_SIGPENDING like any queued signal.
fn requeue_to_self(sig: usize, info: &[u8; 128]) -> i64 {
    // SAFETY: rt_tgsigqueueinfo reads one 128-byte siginfo from `info`; the target is the
    // calling thread itself.
    unsafe {
        libc::syscall(
            libc::SYS_rt_tgsigqueueinfo,
            libc::getpid(),
            gettid(),
            sig,
            info.as_ptr(),
        )
    }
}

fn bit(sig: usize) -> u64 {
    1u64 << (sig - 1)
}
