// Layer 4: services (dune-hw/LAYERS).
//! Delivery inside the guest: the Linux `rt_sigframe` (siginfo, ucontext, XSAVE state,
//! mask) built on the guest stack, delivery of recorded and fault signals, `rt_sigreturn`.

use super::*;

/// The kernel's sigcontext (x86_64) = glibc's mcontext_t.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct SigContext {
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
pub(super) struct UContext {
    flags: u64,
    link: u64,
    stack: StackT,
    mcontext: SigContext,
    sigmask: u64,
}

/// The kernel's rt_sigframe (x86_64): the handler's return address, then ucontext, siginfo.
#[repr(C)]
#[derive(Clone, Copy)]
pub(super) struct RtSigFrame {
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

pub(super) const UC_FP_XSTATE: u64 = 1;
pub(super) const UC_SIGCONTEXT_SS: u64 = 2;
pub(super) const UC_STRICT_RESTORE_SS: u64 = 4;
pub(super) const FP_XSTATE_MAGIC1: u32 = 0x4650_5853;
pub(super) const FP_XSTATE_MAGIC2: u32 = 0x4650_5845;

/// Bytes of the XSAVE area for the features the guest may use (CPUID 0xD.0 EBX on the
/// host, whose XCR0 includes the guest's).
pub(super) fn xstate_bytes() -> u64 {
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
pub(super) fn guest_writable(ctx: &ThreadCtx, low: u64, high: u64) -> bool {
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
pub(super) fn guest_handler(sig: usize) -> Option<KSigaction> {
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

pub(super) fn deliver(ctx: &mut ThreadCtx, sig: usize, info: &[u8; 128], at: &Interrupted) -> bool {
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
pub(super) fn set_user_state(ctx: &mut ThreadCtx, regs: &kvm_regs) {
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
