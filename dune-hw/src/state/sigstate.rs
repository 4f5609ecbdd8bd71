//! Per-thread signal state (state layer): what the signal service ([`crate::services::signal`])
//! records for a Dune thread and the thread context ([`crate::state::dune::ThreadCtx`])
//! owns. The exit loop and the host trampoline of the same thread share it.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// `ss_flags`: the alternate stack is disabled.
pub(crate) const SS_DISABLE: i32 = 2;
/// Highest signal number.
pub(crate) const NSIG: usize = 64;
/// "No mask": never a real one (the kernel never reports SIGKILL or SIGSTOP as blocked).
pub(crate) const NO_MASK: u64 = u64::MAX;

/// Per-thread signal state, shared between the exit loop and the trampoline (same thread).
pub(crate) struct SigState {
    /// Bit `sig - 1`: recorded by the trampoline, not yet delivered to the guest.
    pub(crate) pending: AtomicU64,
    /// siginfo of each pending signal (written by the trampoline before the bit is set).
    pub(crate) info: UnsafeCell<[[u8; 128]; NSIG + 1]>,
    /// `kvm_run.immediate_exit` of the thread's vCPU.
    pub(crate) immediate_exit: AtomicU64,
    /// The guest's sigaltstack (emulated: the host thread keeps its own).
    pub(crate) alt_sp: AtomicU64,
    pub(crate) alt_size: AtomicU64,
    pub(crate) alt_flags: AtomicU32,
    /// Guest handlers entered and not yet returned through rt_sigreturn.
    pub(crate) handlers_active: AtomicU32,
    /// Bit `sig - 1`: blocked on the host by the trampoline when it recorded `sig` (the
    /// guest does not block it); unblocked when the signal is delivered. The guest's mask
    /// is the host mask without these bits. Always a subset of `pending`.
    pub(crate) held: AtomicU64,
    /// The guest mask while this thread runs a clone (all signals are blocked on the host
    /// then): what a new thread or process starts with. [`NO_MASK`] outside a clone.
    pub(crate) clone_mask: AtomicU64,
    /// A new thread's guest mask, set by the exit loop before its first entry (it starts
    /// with every signal blocked, see [`around_clone`](crate::services::signal::around_clone)); `start_set` says whether to.
    pub(crate) start_mask: AtomicU64,
    pub(crate) start_set: AtomicU32,
    /// The temporary mask of the last forwarded call if it was one that swaps the mask
    /// (rt_sigsuspend, ppoll, pselect6, epoll_pwait, epoll_pwait2, io_pgetevents) and a
    /// recorded signal interrupted it (EINTR): the base of the next handler's mask, as on
    /// Linux. [`NO_MASK`] otherwise.
    pub(crate) call_mask: AtomicU64,
}

// SAFETY: `info` is only accessed by the owning thread (its trampoline writes an entry
// before publishing the pending bit; its exit loop reads it after taking the bit); the
// rest is atomics.
unsafe impl Sync for SigState {}

impl SigState {
    /// The state of a new Dune thread. Created by a Dune thread's clone (which runs inside
    /// [`around_clone`](crate::services::signal::around_clone)), the new thread starts with its creator's guest mask; created by
    /// `enter`, it keeps the thread's own mask.
    pub(crate) fn new() -> SigState {
        let st = SigState::empty();
        let creator = crate::state::dune::SIG.with(|c| c.get());
        if !creator.is_null() {
            // SAFETY: SIG points to the calling thread's live SigState while it is in Dune.
            let m = unsafe { (*creator).clone_mask.load(Ordering::Acquire) };
            if m != NO_MASK {
                st.start_mask.store(m, Ordering::Release);
                st.start_set.store(1, Ordering::Release);
            }
        }
        st
    }

    pub(crate) fn empty() -> SigState {
        SigState {
            pending: AtomicU64::new(0),
            info: UnsafeCell::new([[0; 128]; NSIG + 1]),
            immediate_exit: AtomicU64::new(0),
            alt_sp: AtomicU64::new(0),
            alt_size: AtomicU64::new(0),
            alt_flags: AtomicU32::new(SS_DISABLE as u32),
            handlers_active: AtomicU32::new(0),
            held: AtomicU64::new(0),
            clone_mask: AtomicU64::new(NO_MASK),
            start_mask: AtomicU64::new(0),
            start_set: AtomicU32::new(0),
            call_mask: AtomicU64::new(NO_MASK),
        }
    }

    /// Signals recorded and not yet delivered (bit `sig - 1`).
    pub(crate) fn pending(&self) -> u64 {
        self.pending.load(Ordering::Acquire)
    }

    pub(crate) fn clear_kick(&self) {
        let p = self.immediate_exit.load(Ordering::Acquire) as *mut u8;
        if !p.is_null() {
            // SAFETY: as in `kick`.
            unsafe { core::ptr::write_volatile(p, 0) };
        }
    }

    /// Makes the thread's next KVM_RUN return at once (EINTR), so the exit loop runs its
    /// pre-entry checks (pending signals, TLB flush) again first. Async-signal-safe.
    pub(crate) fn kick(&self) {
        let p = self.immediate_exit.load(Ordering::Acquire) as *mut u8;
        if !p.is_null() {
            // SAFETY: the vCPU's kvm_run page stays mapped as long as the vCPU, which lives
            // at least as long as this state is reachable from the thread.
            unsafe { core::ptr::write_volatile(p, 1) };
        }
    }
}
