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

// The forwarded-call window (see "Signals at a blocking call" in the module docs).
// dune_sig_call(call: *const [u64; 7] (nr, 6 args), pending: *const u64) -> i64: returns
// the kernel's result, or -ERESTARTNOINTR (never seen by programs) without running the
// call when `*pending` is non-zero on entry or a signal is recorded between the check and
// the `syscall` instruction (the trampoline moves the rip to `dune_sig_call_cancel`).
// Only caller-saved registers are used; rcx and r11 are the syscall's.
core::arch::global_asm!(
    ".pushsection .text.dune_sig_call,\"ax\",@progbits",
    ".p2align 4",
    ".globl dune_sig_call",
    "dune_sig_call:",
    ".globl dune_sig_call_begin",
    "dune_sig_call_begin:",
    "cmp qword ptr [rsi], 0",
    "jne dune_sig_call_cancel",
    "mov rax, [rdi]",
    "mov rsi, [rdi + 16]",
    "mov rdx, [rdi + 24]",
    "mov r10, [rdi + 32]",
    "mov r8, [rdi + 40]",
    "mov r9, [rdi + 48]",
    "mov rdi, [rdi + 8]",
    ".globl dune_sig_call_syscall",
    "dune_sig_call_syscall:",
    "syscall",
    "ret",
    ".globl dune_sig_call_cancel",
    "dune_sig_call_cancel:",
    "mov rax, -513",
    "ret",
    ".popsection",
);

extern "C" {
    fn dune_sig_call(call: *const [u64; 7], pending: *const AtomicU64) -> i64;
    fn dune_sig_call_begin();
    fn dune_sig_call_syscall();
    fn dune_sig_call_cancel();
}

/// Result of a call that did not run because a signal is to be delivered first: the guest
/// re-executes its `syscall` after the handler (the kernel's own ERESTARTNOINTR).
pub(crate) const CANCELLED: i64 = -513;

/// Executes a forwarded call for the guest such that a signal recorded for this thread
/// before the call blocks interrupts it (see the module docs): the result, or
/// [`CANCELLED`].
///
/// # Safety
/// As [`kmod::syscall::execute`]: a call the guest made, classified `Forward`, with the
/// guest's own pointers.
pub(crate) unsafe fn execute_interruptible(
    st: &SigState,
    call: &kmod::syscall::SyscallArgs,
) -> i64 {
    let a = call.args;
    let words = [call.nr, a[0], a[1], a[2], a[3], a[4], a[5]];
    // SAFETY: the caller guarantees the call itself (as for `execute`); the stub reads the
    // seven words and the pending word, both live for the call.
    let ret = unsafe { dune_sig_call(&words, &st.pending) };
    let temporary = if ret == -EINTR && st.pending() != 0 {
        temporary_mask(call)
    } else {
        NO_MASK
    };
    st.call_mask.store(temporary, Ordering::Release);
    ret
}

/// The mask a call that swaps the thread's mask for its duration ran with (it returned
/// EINTR, so the kernel accepted its pointers); [`NO_MASK`] for other calls or none given.
fn temporary_mask(call: &kmod::syscall::SyscallArgs) -> u64 {
    let a = call.args;
    let read = |p: u64| {
        // SAFETY: a sigset (or a {sigset pointer, size} pair) the kernel just read for this
        // call, in the program's memory (GPA == HVA).
        unsafe { read_guest::<u64>(Gva(p)) }
    };
    let set_at = |p: u64| if p == 0 { NO_MASK } else { read(p) };
    // pselect6 and io_pgetevents pass a pointer to {const sigset_t *, size_t}
    let pair_at = |p: u64| if p == 0 { NO_MASK } else { set_at(read(p)) };
    match call.nr {
        130 => set_at(a[0]),        // rt_sigsuspend(mask, size)
        271 => set_at(a[3]),        // ppoll(fds, n, timeout, mask, size)
        281 | 441 => set_at(a[4]),  // epoll_pwait{,2}(fd, events, n, timeout, mask, size)
        270 | 333 => pair_at(a[5]), // pselect6, io_pgetevents: ..., &{mask, size}
        _ => NO_MASK,
    }
}

/// Whether a trampoline interrupted `rip` inside the call window, where the call has not
/// started (or the kernel rewound it to restart: ERESTARTSYS with SA_RESTART,
/// ERESTARTNOINTR).
fn in_call_window(rip: u64) -> bool {
    let begin = dune_sig_call_begin as *const () as usize as u64;
    let syscall = dune_sig_call_syscall as *const () as usize as u64;
    (begin..=syscall).contains(&rip)
}

/// Runs a clone-family call (`f`) the way Linux does with respect to signals: not at all
/// while a signal is recorded for the thread ([`CANCELLED`]: it restarts after the
/// handler), and with every signal blocked on the host meanwhile, so the new thread or
/// process inherits no signal the trampoline held for this one. The new thread sets its
/// guest mask before its first entry ([`SigState::new`], [`deliver_pending`]); a new
/// process calls [`forked_child_mask`].
pub(crate) fn around_clone(ctx: &mut ThreadCtx, f: impl FnOnce(&mut ThreadCtx) -> i64) -> i64 {
    let st = ctx.sig();
    let host = block_all();
    if st.pending() != 0 {
        sigmask_set(host);
        return CANCELLED;
    }
    // nothing recorded, so nothing held: the host mask is the guest's
    st.clone_mask.store(host, Ordering::Release);
    let r = f(ctx);
    st.clone_mask.store(NO_MASK, Ordering::Release);
    sigmask_set(host);
    r
}

/// In a process forked (or vforked) by a Dune thread, before anything else: the guest mask
/// of the parent (the child started with every signal blocked).
pub(crate) fn forked_child_mask() {
    let st = crate::state::dune::SIG.with(|c| c.get());
    if !st.is_null() {
        // SAFETY: the parent's SigState (a copy after fork; shared and stable after vfork,
        // whose parent waits).
        let m = unsafe { (*st).clone_mask.load(Ordering::Acquire) };
        if m != NO_MASK {
            sigmask_set(m);
        }
    }
}

/// A thread leaving Dune (`exit()`) with signals recorded after its last delivery: they go
/// back to its kernel queue (with their siginfo) and are unblocked, so the host action (the
/// trampoline, now outside Dune) runs the handler natively.
pub(crate) fn release_on_leave(st: &SigState) {
    let host = block_all();
    let pend = st.pending.swap(0, Ordering::AcqRel);
    for sig in 1..=NSIG {
        if pend & bit(sig) != 0 {
            // SAFETY: this thread's slot, published before the bit we just took.
            let info = unsafe { &(*st.info.get())[sig] };
            requeue_to_self(sig, info);
        }
    }
    let held = st.held.swap(0, Ordering::AcqRel);
    sigmask_set(host & !held);
}

/// The host action standing for guest handler `a`.
fn host_action_for(a: &KSigaction) -> KSigaction {
    KSigaction {
        handler: host_trampoline as *const () as usize as u64,
        flags: SA_SIGINFO | SA_RESTORER | (a.flags & (SA_ONSTACK | SA_RESTART)),
        restorer: entry::dune_host_restorer as *const () as usize as u64,
        // no trampoline interrupts another (each edits the mask its interrupted context
        // resumes with); a native run sets the guest action's mask itself
        mask: u64::MAX,
    }
}

/// The host action of every signal: see the module docs.
extern "C" fn host_trampoline(sig: libc::c_int, info: *mut libc::siginfo_t, uc: *mut libc::c_void) {
    let sig_u = sig as usize;
    if sig_u == 0 || sig_u > NSIG {
        return;
    }
    let st = crate::state::dune::SIG.with(|c| c.get());
    if st.is_null() || CTX.with(|c| c.get()).is_null() {
        run_natively(sig_u, info, uc);
        return;
    }
    // SAFETY: the kernel passes a valid siginfo.
    let code = unsafe { (*info).si_code };
    if code > 0
        && matches!(
            sig,
            libc::SIGSEGV | libc::SIGBUS | libc::SIGILL | libc::SIGFPE | libc::SIGTRAP
        )
    {
        const MSG: &[u8] =
            b"dune: fatal: a synchronous fault in the exit loop (host side of a Dune thread)\n";
        // SAFETY: writing a static message to fd 2.
        unsafe { libc::write(2, MSG.as_ptr().cast(), MSG.len()) };
        std::process::abort();
    }
    // SAFETY: SIG points to this thread's live SigState while CTX is set.
    let st = unsafe { &*st };
    let b = bit(sig_u);
    if st.pending() & b == 0 {
        // SAFETY: only this thread touches `info` (its exit loop, which this handler
        // interrupted, or a trampoline, which cannot nest: the host action blocks all);
        // the slot of `sig` is free (its bit is clear) and read only after the bit is set.
        unsafe {
            core::ptr::copy_nonoverlapping(
                info as *const u8,
                (*st.info.get())[sig_u].as_mut_ptr(),
                128,
            )
        };
        st.pending.fetch_or(b, Ordering::AcqRel);
    } else {
        // One instance is recorded already: possible only if a host handler of the
        // program (installed before entering) unblocked `sig` on its return. This one goes
        // back to the kernel's queue (a standard signal merges there, as on Linux).
        // SAFETY: the kernel passes a valid 128-byte siginfo.
        let copy: [u8; 128] = unsafe { core::ptr::read(info as *const [u8; 128]) };
        requeue_to_self(sig_u, &copy);
    }
    let uc = uc as *mut libc::ucontext_t;
    // SAFETY: the kernel passes a valid ucontext for an SA_SIGINFO handler; the first 8
    // bytes of uc_sigmask are the kernel's mask, restored by rt_sigreturn on return.
    unsafe {
        let mask = core::ptr::addr_of_mut!((*uc).uc_sigmask) as *mut u64;
        if *mask & b == 0 {
            // hold `sig`: further instances stay queued in the kernel until this one is
            // delivered
            *mask |= b;
            st.held.fetch_or(b, Ordering::AcqRel);
        }
    }
    // SAFETY: as above; REG_RIP is the interrupted host rip.
    unsafe {
        let rip = &mut (*uc).uc_mcontext.gregs[libc::REG_RIP as usize];
        if in_call_window(*rip as u64) {
            *rip = dune_sig_call_cancel as *const () as usize as i64;
        }
    }
    st.kick();
}

fn run_natively(sig: usize, info: *mut libc::siginfo_t, uc: *mut libc::c_void) {
    let a = ACTIONS[sig].load();
    if a.handler == SIG_DFL || a.handler == SIG_IGN {
        return;
    }
    if a.flags & SA_RESETHAND != 0 {
        reset_to_default(sig);
    }
    // the mask Linux gives the handler (the host action blocked everything)
    // SAFETY: the kernel passes a valid ucontext; uc_sigmask's first 8 bytes are the mask of
    // the interrupted code.
    let before = unsafe {
        *(core::ptr::addr_of!((*(uc as *const libc::ucontext_t)).uc_sigmask) as *const u64)
    };
    let nodefer = if a.flags & SA_NODEFER != 0 {
        0
    } else {
        bit(sig)
    };
    sigmask_set(before | a.mask | nodefer);
    if a.flags & SA_SIGINFO != 0 {
        // SAFETY: the program installed this SA_SIGINFO handler for `sig`.
        let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            unsafe { core::mem::transmute(a.handler as usize) };
        f(sig as libc::c_int, info, uc)
    } else {
        // SAFETY: the program installed this plain handler for `sig`.
        let f: extern "C" fn(libc::c_int) = unsafe { core::mem::transmute(a.handler as usize) };
        f(sig as libc::c_int)
    }
}

fn reset_to_default(sig: usize) {
    let dfl = KSigaction::default();
    ACTIONS[sig].store(&dfl);
    raw_sigaction(sig as u64, &dfl, core::ptr::null_mut());
}

/// rt_sigaction(sig, act, oldact, sigsetsize) from the guest.
pub(crate) fn sigaction(ctx: &ThreadCtx, a: [u64; 6]) -> i64 {
    let (sig, act, oact, size) = (a[0] as usize, a[1], a[2], a[3]);
    if size != 8 || sig == 0 || sig > NSIG {
        return -EINVAL;
    }
    let _serial = ACTION_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let mut old = KSigaction::default();
    if ACTIONS[sig].installed.load(Ordering::Acquire) != 0 {
        old = ACTIONS[sig].load();
    } else {
        let r = raw_sigaction(sig as u64, core::ptr::null(), &mut old);
        if r < 0 {
            return r;
        }
    }
    if act != 0 {
        if sig == libc::SIGKILL as usize || sig == libc::SIGSTOP as usize {
            return -EINVAL;
        }
        // SAFETY: the program passed a pointer to its struct sigaction (kernel layout).
        let new: KSigaction = unsafe { read_guest(Gva(act)) };
        let host = if new.handler == SIG_DFL || new.handler == SIG_IGN {
            new
        } else {
            if new.flags & SA_RESTORER == 0 {
                // x86_64 Linux delivers only with a restorer (libc always sets one)
                return -EINVAL;
            }
            host_action_for(&new)
        };
        let r = raw_sigaction(sig as u64, &host, core::ptr::null_mut());
        if r < 0 {
            return r;
        }
        ACTIONS[sig].store(&new);
    }
    if oact != 0 {
        // SAFETY: the program passed a pointer for the old action.
        unsafe { write_guest(Gva(oact), old) };
        ctx.dune.report_host_write(HostWrite::Range {
            start: Gva(oact),
            len_bytes: core::mem::size_of::<KSigaction>() as u64,
        });
    }
    0
}

/// stack_t (x86_64).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct StackT {
    sp: u64,
    flags: i32,
    _pad: i32,
    size: u64,
}

fn on_alt_stack(st: &SigState, rsp: u64) -> bool {
    let (sp, size) = (
        st.alt_sp.load(Ordering::Acquire),
        st.alt_size.load(Ordering::Acquire),
    );
    st.alt_flags.load(Ordering::Acquire) as i32 & SS_DISABLE == 0 && rsp > sp && rsp - sp <= size
}

/// sigaltstack(ss, old_ss) from the guest (emulated: the host thread keeps its own).
pub(crate) fn sigaltstack(ctx: &ThreadCtx, a: [u64; 6], user_rsp: u64) -> i64 {
    let st = ctx.sig();
    let on = on_alt_stack(st, user_rsp);
    if a[1] != 0 {
        let flags = st.alt_flags.load(Ordering::Acquire) as i32;
        let old = StackT {
            sp: st.alt_sp.load(Ordering::Acquire),
            flags: if on { SS_ONSTACK } else { flags },
            _pad: 0,
            size: st.alt_size.load(Ordering::Acquire),
        };
        // SAFETY: the program passed a pointer to its stack_t.
        unsafe { write_guest(Gva(a[1]), old) };
        ctx.dune.report_host_write(HostWrite::Range {
            start: Gva(a[1]),
            len_bytes: 24,
        });
    }
    if a[0] != 0 {
        // SAFETY: the program passed a pointer to its stack_t.
        let new: StackT = unsafe { read_guest(Gva(a[0])) };
        if on {
            return -EPERM;
        }
        let kind = new.flags & !SS_AUTODISARM;
        if kind != 0 && kind != SS_DISABLE && kind != SS_ONSTACK {
            return -EINVAL;
        }
        if kind == SS_DISABLE {
            st.alt_flags.store(SS_DISABLE as u32, Ordering::Release);
        } else {
            if new.size < MINSIGSTKSZ {
                return -ENOMEM;
            }
            st.alt_sp.store(new.sp, Ordering::Release);
            st.alt_size.store(new.size, Ordering::Release);
            st.alt_flags.store(0, Ordering::Release);
        }
    }
    0
}

/// The kernel's sigcontext (x86_64) = glibc's mcontext_t.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct SigContext {
    r8: u64,
    r9: u64,
    r10: u64,
    r11: u64,
    r12: u64,
    r13: u64,
    r14: u64,
    r15: u64,
    rdi: u64,
    rsi: u64,
    rbp: u64,
    rbx: u64,
    rdx: u64,
    rax: u64,
    rcx: u64,
    rsp: u64,
    rip: u64,
    eflags: u64,
    cs: u16,
    gs: u16,
    fs: u16,
    ss: u16,
    err: u64,
    trapno: u64,
    oldmask: u64,
    cr2: u64,
    fpstate: u64,
    reserved1: [u64; 8],
}

/// The kernel's ucontext (x86_64): glibc's ucontext_t up to an 8-byte uc_sigmask.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct UContext {
    flags: u64,
    link: u64,
    stack: StackT,
    mcontext: SigContext,
    sigmask: u64,
}

/// The kernel's rt_sigframe (x86_64): the handler's return address, then ucontext, siginfo.
#[repr(C)]
#[derive(Clone, Copy)]
struct RtSigFrame {
    pretcode: u64,
    uc: UContext,
    info: [u8; 128],
}

const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<SigContext>() == 256);
    assert!(offset_of!(SigContext, rip) == 16 * 8);
    assert!(offset_of!(SigContext, fpstate) == 23 * 8);
    assert!(offset_of!(UContext, mcontext) == 40);
    assert!(offset_of!(UContext, sigmask) == 296);
    assert!(offset_of!(RtSigFrame, uc) == 8);
    assert!(offset_of!(RtSigFrame, info) == 312);
};

const UC_FP_XSTATE: u64 = 1;
const UC_SIGCONTEXT_SS: u64 = 2;
const UC_STRICT_RESTORE_SS: u64 = 4;
const FP_XSTATE_MAGIC1: u32 = 0x4650_5853;
const FP_XSTATE_MAGIC2: u32 = 0x4650_5845;

/// Bytes of the XSAVE area for the features the guest may use (CPUID 0xD.0 EBX on the
/// host, whose XCR0 includes the guest's).
fn xstate_bytes() -> u64 {
    let r = core::arch::x86_64::__cpuid_count(0xd, 0);
    (r.ebx as u64).clamp(576, 4096)
}

/// What interrupted the guest when a signal is delivered.
pub(crate) struct Interrupted {
    /// The interrupted registers (rsp/rip/rflags those of the interrupted code).
    pub(crate) regs: kvm_regs,
    /// Exception vector and error code (trapno/err in the sigcontext), fault address.
    pub(crate) trapno: u64,
    pub(crate) err: u64,
    pub(crate) cr2: u64,
}

/// Delivers the lowest pending signal if the guest is at a point where it can take one
/// (not inside the monitor's stubs). Called by the exit loop before every entry.
pub(crate) fn deliver_pending(ctx: &mut ThreadCtx) {
    let st = ctx.sig();
    if st.start_set.load(Ordering::Acquire) != 0 {
        // a new thread's first pass: it started with every signal blocked
        st.start_set.store(0, Ordering::Release);
        sigmask_set(st.start_mask.load(Ordering::Acquire));
    }
    let pend = st.pending();
    if pend == 0 || ctx.native_step {
        return;
    }
    let regs = match ctx.vcpu().regs() {
        Ok(r) => r,
        Err(e) => fatal(ctx, format_args!("{e}")),
    };
    if entry::in_monitor_code(regs.rip) {
        return; // it exits shortly (syscall doorbell, exception port); delivered then
    }
    if crate::state::dune::on_monitor_stack(ctx, regs.rsp) {
        return; // a guest fault handler: delivered at the program's next exit
    }
    let sig = pend.trailing_zeros() as usize + 1;
    st.pending.fetch_and(!bit(sig), Ordering::AcqRel);
    let mut info = [0u8; 128];
    // SAFETY: this thread's slot, published before the bit we just took.
    info.copy_from_slice(unsafe { &(*st.info.get())[sig] });
    let at = Interrupted {
        regs,
        trapno: 0,
        err: 0,
        cr2: 0,
    };
    deliver(ctx, sig, &info, &at);
    // The kick that recorded this signal is served: enter the guest without a spurious
    // EINTR exit. A signal recorded after the load below kicks again itself.
    st.clear_kick();
    if st.pending() != 0 {
        st.kick();
    }
}

/// Whether the guest may write `[low, high)`: its page-table entries say so (a memory
/// read per page), or else the host mapping does (entries not created yet).
fn guest_writable(ctx: &ThreadCtx, low: u64, high: u64) -> bool {
    use crate::paging::pte::{P, RW};
    let view = ctx.dune.dirty_view();
    let mut page = low & !0xfff;
    while page < high {
        let e = view.entry(page);
        if e & (P | RW) != (P | RW)
            && crate::paging::maps::find_fast(page).is_none_or(|m| m.prot & libc::PROT_WRITE == 0)
        {
            return false;
        }
        page += 4096;
    }
    true
}

/// A thread ends inside Dune with signals recorded but not delivered: those sent to the
/// process (kill, interval timers: si_code SI_USER, SI_KERNEL, SI_TIMER) go back to the
/// process for another thread, as Linux would deliver them; thread-directed ones end with
/// the thread.
pub(crate) fn redirect_pending_on_exit(st: &SigState) {
    let pend = st.pending.swap(0, Ordering::AcqRel);
    for sig in 1..=NSIG {
        if pend & bit(sig) == 0 {
            continue;
        }
        // SAFETY: this thread's slot, published before the bit we just took.
        let info = unsafe { &(*st.info.get())[sig] };
        let code = i32::from_ne_bytes([info[8], info[9], info[10], info[11]]);
        // SI_USER, SI_KERNEL, SI_QUEUE (sigqueue(3) is process-directed), SI_TIMER
        if matches!(code, 0 | 0x80 | -1 | -2) {
            // SAFETY: rt_sigqueueinfo to our own process (any si_code is allowed there)
            // reads one 128-byte siginfo: the instance goes back with its value.
            unsafe {
                libc::syscall(
                    libc::SYS_rt_sigqueueinfo,
                    libc::getpid(),
                    sig,
                    info.as_ptr(),
                )
            };
        }
    }
}

/// The guest action of `sig` if it is a handler the guest installed inside Dune.
fn guest_handler(sig: usize) -> Option<KSigaction> {
    if ACTIONS[sig].installed.load(Ordering::Acquire) == 0 {
        return None;
    }
    let a = ACTIONS[sig].load();
    (a.handler != SIG_DFL && a.handler != SIG_IGN).then_some(a)
}

/// A guest exception turned into a signal: delivered now if the guest has a handler for
/// it and does not block it; false otherwise (the caller ends the process).
pub(crate) fn deliver_fault(
    ctx: &mut ThreadCtx,
    sig: i32,
    code: i32,
    addr: u64,
    at: &Interrupted,
) -> bool {
    let s = sig as usize;
    let guest_mask = sigmask_get() & !ctx.sig().held.load(Ordering::Acquire);
    if guest_handler(s).is_none() || guest_mask & bit(s) != 0 {
        return false;
    }
    let mut info = [0u8; 128];
    info[0..4].copy_from_slice(&sig.to_ne_bytes());
    info[8..12].copy_from_slice(&code.to_ne_bytes());
    info[16..24].copy_from_slice(&addr.to_ne_bytes());
    deliver(ctx, s, &info, at)
}

fn deliver(ctx: &mut ThreadCtx, sig: usize, info: &[u8; 128], at: &Interrupted) -> bool {
    let st = ctx.sig();
    let b = bit(sig);
    // with every signal blocked, nothing is recorded or held meanwhile
    let host = block_all();
    let held = st.held.load(Ordering::Acquire);
    let guest_mask = host & !held;
    let a = ACTIONS[sig].load();
    if a.handler == SIG_IGN {
        st.held.fetch_and(!b, Ordering::AcqRel);
        sigmask_set(host & !(held & b));
        return true;
    }
    if a.handler == SIG_DFL || ACTIONS[sig].installed.load(Ordering::Acquire) == 0 {
        // the action changed after the signal was recorded: the host now has the default
        // action; let the kernel apply it to this instance
        st.held.fetch_and(!b, Ordering::AcqRel);
        requeue_to_self(sig, info);
        sigmask_set(host & !(held & b));
        return true;
    }
    let r = &at.regs;
    let on_alt = on_alt_stack(st, r.rsp);
    let mut sp = if a.flags & SA_ONSTACK != 0
        && st.alt_flags.load(Ordering::Acquire) as i32 & SS_DISABLE == 0
        && !on_alt
    {
        st.alt_sp.load(Ordering::Acquire) + st.alt_size.load(Ordering::Acquire)
    } else {
        r.rsp - 128
    };
    // XSAVE state (64-byte aligned) with its software header, then the frame
    let xbytes = xstate_bytes();
    let xsave = match ctx.vcpu().xsave() {
        Ok(x) => x,
        Err(e) => fatal(ctx, format_args!("{e}")),
    };
    sp = (sp - xbytes - 4) & !63;
    let fp = sp;
    let frame_bytes = core::mem::size_of::<RtSigFrame>() as u64;
    sp = ((sp - frame_bytes) & !15) - 8;
    let low = sp;
    let top = fp + xbytes + 4;
    if !guest_writable(ctx, low, top) {
        fatal(
            ctx,
            format_args!(
                "signal {sig}: no writable stack for the signal frame at {low:#x} (SIGSEGV)"
            ),
        );
    }
    let mut xs = [0u8; 4096];
    for (i, w) in xsave.region.iter().enumerate() {
        xs[4 * i..4 * i + 4].copy_from_slice(&w.to_ne_bytes());
    }
    let xcr0 = ctx.dune.xcr0;
    xs[464..468].copy_from_slice(&FP_XSTATE_MAGIC1.to_ne_bytes());
    xs[468..472].copy_from_slice(&((xbytes + 4) as u32).to_ne_bytes());
    xs[472..480].copy_from_slice(&xcr0.to_ne_bytes());
    xs[480..484].copy_from_slice(&(xbytes as u32).to_ne_bytes());
    // SAFETY: [fp, fp + xbytes + 4) lies in a writable mapping of the program (checked
    // above: the frame range starts and ends in writable stack memory below the
    // interrupted rsp, or on the guest's registered alternate stack).
    unsafe {
        core::ptr::copy_nonoverlapping(xs.as_ptr(), fp as *mut u8, xbytes as usize);
    }
    // SAFETY: as above.
    unsafe { write_guest(Gva(fp + xbytes), FP_XSTATE_MAGIC2) };
    let old_mask = guest_mask;
    let (cs, ss) = match ctx.mode {
        kmod::Mode::Ring3 | kmod::Mode::Pvm => {
            (crate::arch::gdt::USER_CS, crate::arch::gdt::USER_SS)
        }
        kmod::Mode::Ring0 | kmod::Mode::PvmRing0 => {
            (crate::arch::gdt::KERNEL_CS, crate::arch::gdt::KERNEL_SS)
        }
    };
    let alt_flags = st.alt_flags.load(Ordering::Acquire) as i32;
    let frame = RtSigFrame {
        pretcode: a.restorer,
        uc: UContext {
            flags: UC_FP_XSTATE | UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS,
            link: 0,
            stack: StackT {
                sp: st.alt_sp.load(Ordering::Acquire),
                flags: if on_alt { SS_ONSTACK } else { alt_flags },
                _pad: 0,
                size: st.alt_size.load(Ordering::Acquire),
            },
            mcontext: SigContext {
                r8: r.r8,
                r9: r.r9,
                r10: r.r10,
                r11: r.r11,
                r12: r.r12,
                r13: r.r13,
                r14: r.r14,
                r15: r.r15,
                rdi: r.rdi,
                rsi: r.rsi,
                rbp: r.rbp,
                rbx: r.rbx,
                rdx: r.rdx,
                rax: r.rax,
                rcx: r.rcx,
                rsp: r.rsp,
                rip: r.rip,
                eflags: r.rflags,
                cs,
                gs: 0,
                fs: 0,
                ss,
                err: at.err,
                trapno: at.trapno,
                oldmask: old_mask,
                cr2: at.cr2,
                fpstate: fp,
                reserved1: [0; 8],
            },
            sigmask: old_mask,
        },
        info: *info,
    };
    // SAFETY: [low, low + frame_bytes) is in the writable range checked above.
    unsafe { write_guest(Gva(low), frame) };
    ctx.dune.report_host_write(HostWrite::Range {
        start: Gva(low),
        len_bytes: top - low,
    });
    // the handler's mask: after rt_sigsuspend/ppoll/... interrupted by this signal, based on
    // the call's temporary mask (the frame restores the thread's own), as on Linux
    let base = match st.call_mask.swap(NO_MASK, Ordering::AcqRel) {
        NO_MASK => old_mask,
        temporary => temporary,
    };
    let mut m = base | a.mask;
    if a.flags & SA_NODEFER == 0 {
        m |= b;
    }
    // Other recorded signals that the handler's mask blocks wait until it returns, as on
    // Linux: they go back to the kernel's queue (blocked there), so that nothing is recorded
    // while guest code runs and the entry check of every call cannot cancel the handler's.
    let parked = st.pending() & m & !b;
    for other in 1..=NSIG {
        if parked & bit(other) != 0 {
            // SAFETY: this thread's slot, published before its bit.
            let oinfo = unsafe { &(*st.info.get())[other] };
            requeue_to_self(other, oinfo);
        }
    }
    st.pending.fetch_and(!parked, Ordering::AcqRel);
    // the remaining recorded signals stay held until their own delivery, right after this
    let still_held = held & !b & !parked;
    st.held.store(still_held, Ordering::Release);
    sigmask_set(m | still_held);
    if a.flags & SA_RESETHAND != 0 {
        let _serial = ACTION_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        reset_to_default(sig);
    }
    let mut n = *r;
    n.rdi = sig as u64;
    n.rsi = low + core::mem::offset_of!(RtSigFrame, info) as u64;
    n.rdx = low + core::mem::offset_of!(RtSigFrame, uc) as u64;
    n.rax = 0;
    n.rsp = low;
    n.rip = a.handler;
    n.rflags = (r.rflags & !(0x400 | 0x100 | 0x10000)) | 0x202;
    set_user_state(ctx, &n);
    st.handlers_active.fetch_add(1, Ordering::AcqRel);
    ctx.stats.signals += 1;
    true
}

/// Resumes the guest with `regs` in the program's own code (user CS/SS in ring-3 mode).
fn set_user_state(ctx: &mut ThreadCtx, regs: &kvm_regs) {
    if let Err(e) = ctx.vcpu_mut().set_regs(regs) {
        fatal(ctx, format_args!("{e}"))
    }
    if ctx.mode.app_in_user_mode() && ctx.in_exception {
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

/// rt_sigreturn from the guest: `uc_addr` is the ucontext of the frame (the user rsp at
/// the restorer's `syscall`).
pub(crate) fn sigreturn(ctx: &mut ThreadCtx, uc_addr: u64) {
    let uc_bytes = core::mem::size_of::<UContext>() as u64;
    if !guest_writable(ctx, uc_addr, uc_addr + uc_bytes) {
        fatal(
            ctx,
            format_args!("rt_sigreturn with no signal frame at {uc_addr:#x} (SIGSEGV)"),
        );
    }
    // SAFETY: the frame this thread's handler returned from, in mapped memory.
    let uc: UContext = unsafe { read_guest(Gva(uc_addr)) };
    let m = &uc.mcontext;
    let mut r = match ctx.vcpu().regs() {
        Ok(r) => r,
        Err(e) => fatal(ctx, format_args!("{e}")),
    };
    r.r8 = m.r8;
    r.r9 = m.r9;
    r.r10 = m.r10;
    r.r11 = m.r11;
    r.r12 = m.r12;
    r.r13 = m.r13;
    r.r14 = m.r14;
    r.r15 = m.r15;
    r.rdi = m.rdi;
    r.rsi = m.rsi;
    r.rbp = m.rbp;
    r.rbx = m.rbx;
    r.rdx = m.rdx;
    r.rax = m.rax;
    r.rcx = m.rcx;
    r.rsp = m.rsp;
    r.rip = m.rip;
    r.rflags = (0x202 & !FIX_EFLAGS) | (m.eflags & FIX_EFLAGS);
    if m.fpstate != 0 {
        let xbytes = xstate_bytes() as usize;
        let mut xs = [0u8; 4096];
        // SAFETY: the frame's XSAVE area (xbytes long) that `deliver` wrote; the handler
        // may have changed it, as on Linux.
        unsafe { core::ptr::copy_nonoverlapping(m.fpstate as *const u8, xs.as_mut_ptr(), xbytes) };
        let mut x = kvm_bindings::kvm_xsave::default();
        for (i, w) in x.region.iter_mut().enumerate() {
            *w = u32::from_ne_bytes([xs[4 * i], xs[4 * i + 1], xs[4 * i + 2], xs[4 * i + 3]]);
        }
        if let Err(e) = ctx.vcpu().set_xsave(&x) {
            fatal(ctx, format_args!("{e}"))
        }
    }
    let st = ctx.sig();
    // the frame's mask; recorded signals stay held until delivered
    block_all();
    sigmask_set(uc.sigmask | st.held.load(Ordering::Acquire));
    if !on_alt_stack(st, m.rsp) && uc.stack.flags & SS_DISABLE == 0 && uc.stack.size >= MINSIGSTKSZ
    {
        st.alt_sp.store(uc.stack.sp, Ordering::Release);
        st.alt_size.store(uc.stack.size, Ordering::Release);
        st.alt_flags.store(0, Ordering::Release);
    }
    // a handler that left by a long jump never returns here: the count only saturates
    if st.handlers_active.load(Ordering::Acquire) > 0 {
        st.handlers_active.fetch_sub(1, Ordering::AcqRel);
    }
    if let Err(e) = ctx.vcpu_mut().set_regs(&r) {
        fatal(ctx, format_args!("{e}"))
    }
}
