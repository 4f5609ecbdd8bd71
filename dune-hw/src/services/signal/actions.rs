// Layer 4: services (dune-hw/LAYERS).
//! Signal actions: `rt_sigaction` and `sigaltstack` emulated for the guest, the one host
//! action per caught signal (`host_trampoline`, which records a signal for the exit loop or
//! runs the handler natively outside Dune).

use super::*;

/// The host action standing for guest handler `a`.
pub(super) fn host_action_for(a: &KSigaction) -> KSigaction {
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
pub(super) extern "C" fn host_trampoline(
    sig: libc::c_int,
    info: *mut libc::siginfo_t,
    uc: *mut libc::c_void,
) {
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

pub(super) fn run_natively(sig: usize, info: *mut libc::siginfo_t, uc: *mut libc::c_void) {
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

pub(super) fn reset_to_default(sig: usize) {
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
pub(super) struct StackT {
    pub(super) sp: u64,
    pub(super) flags: i32,
    pub(super) _pad: i32,
    pub(super) size: u64,
}

pub(super) fn on_alt_stack(st: &SigState, rsp: u64) -> bool {
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
