// Layer 4: services (dune-hw/LAYERS).
//! The forwarded-call window ("Signals at a blocking call" in [`super`]'s docs): the
//! asm that checks for a recorded signal right before `syscall`, the temporary masks of
//! mask-swapping calls, clone under a blocked mask, and the hand-back at leave.

use super::*;

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
    pub(super) fn dune_sig_call_cancel();
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
pub(super) fn temporary_mask(call: &kmod::syscall::SyscallArgs) -> u64 {
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
pub(super) fn in_call_window(rip: u64) -> bool {
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
