//! Per-thread state (state layer): one vCPU per Dune thread, its GDT/TSS/monitor stack and
//! exit-loop stack, its signal state and counters, and which thread is in Dune now.
//! [`super::dune`] re-exports every item (their historical path).

use super::dune::*;
use crate::arch::addr::Gva;
use crate::arch::entry::{self, EnterFrame, SFMASK};
use crate::arch::error::DuneError;
use crate::arch::gdt;
use crate::state::sigstate::SigState;
use kmod::{Mode, Vcpu};
use kvm_bindings::kvm_segment;
use std::cell::Cell;
use std::sync::atomic::{AtomicU32, Ordering};

/// Counters of one thread's stay in Dune mode.
#[derive(Clone, Copy, Debug, Default)]
pub struct ThreadStats {
    /// vCPU exits handled.
    pub exits: u64,
    /// Syscalls forwarded (or answered) for the guest.
    pub syscalls: u64,
    /// Guest page faults handled by the monitor.
    pub page_faults: u64,
    /// Full TLB flushes performed for this vCPU.
    pub tlb_flushes: u64,
    /// Ring-0 mode: instructions KVM could not emulate, run natively at CPL3 instead.
    pub native_steps: u64,
    /// Signals delivered to guest handlers.
    pub signals: u64,
    /// Threads this thread created (each entered Dune on its own vCPU).
    pub threads_created: u64,
    /// Exceptions resolved by a guest fault handler in the guest, without an exit
    /// ([`crate::services::fault::set_guest_fault_handler`]; counted by the in-guest path itself).
    pub guest_faults: u64,
}

/// Per-thread state: the vCPU and the stacks and tables it needs.
pub(crate) struct ThreadCtx {
    pub(crate) dune: &'static Dune,
    pub(crate) vcpu: Option<Vcpu>,
    pub(crate) frame: EnterFrame,
    pub(crate) mode: Mode,
    pub(crate) loop_stack: u64,
    pub(crate) cpu_pages: u64,
    pub(crate) cpu_pages_len: usize,
    pub(crate) seen_generation: u64,
    /// The CR3 KVM holds for this vCPU as of its last entry (or set by ioctl before it):
    /// what a flush must differ from ([`ThreadCtx::flush_tlb`]).
    pub(crate) cr3_entered: u64,
    /// The CR3 last given to the vCPU (applied at the next entry when the sregs travel in
    /// the shared run page).
    pub(crate) cr3_set: u64,
    pub(crate) pending_error: Option<DuneError>,
    pub(crate) stats: ThreadStats,
    pub(crate) spurious_streak: u32,
    pub(crate) last_fault: u64,
    pub(crate) fs_base: u64,
    /// The current exit is a guest exception (rsp is on the monitor stack).
    pub(crate) in_exception: bool,
    /// Ring-0 mode: one instruction KVM cannot emulate is running natively at CPL3.
    pub(crate) native_step: bool,
    /// `pvm` mode: the vCPU stopped in PV supervisor mode (in a monitor stub); a resume in
    /// the program's code goes through the `iretq` stub ([`crate::monitor`]).
    pub(crate) pvm_supervisor: bool,
    /// Signal state shared with the host signal trampoline (also reachable through SIG).
    pub(crate) sig: Box<SigState>,
    /// Set by a thread that ended inside Dune as its very last store before exit(2): from
    /// then on its exit-loop stack and GDT/TSS pages may be reused.
    pub(crate) exited: AtomicU32,
    /// This thread's host-side KVM tracepoint counters (opened by the exit loop on the
    /// thread that runs the vCPU; None until then, or where they cannot be opened).
    pub(crate) host_counters: Option<crate::arch::host_counters::ThreadCounters>,
    /// The exit loop tried to open [`ThreadCtx::host_counters`] on this thread.
    pub(crate) host_counters_tried: bool,
}

/// Whether the calling thread is in Dune mode.
pub fn in_dune() -> bool {
    CTX.with(|c| !c.get().is_null())
}

/// Whether the calling Dune thread runs on the host side of its exit loop now (an
/// exception handler, a host-write hook, a host signal action) rather than in the guest.
/// False outside Dune mode.
pub fn on_host_side() -> bool {
    let p = CTX.with(|c| c.get());
    if p.is_null() {
        return false;
    }
    let sp: u64;
    // SAFETY: reading rsp has no side effects.
    unsafe { core::arch::asm!("mov {}, rsp", out(reg) sp, options(nomem, nostack)) };
    // SAFETY: the ctx is live while the thread is in Dune mode; loop_stack is plain data.
    unsafe {
        let top = loop_stack_top(&*p);
        sp > (*p).loop_stack && sp <= top
    }
}

thread_local! {
    pub(crate) static CTX: Cell<*mut ThreadCtx> = const { Cell::new(core::ptr::null_mut()) };
    /// The thread's signal state while it is in Dune mode (read by signal handlers).
    pub(crate) static SIG: Cell<*const SigState> = const { Cell::new(core::ptr::null()) };
}

/// Makes `p` the calling thread's Dune context (null: none).
pub(crate) fn set_current(p: *mut ThreadCtx) {
    let sig = if p.is_null() {
        core::ptr::null()
    } else {
        // SAFETY: `p` is a live ThreadCtx owned by this thread.
        unsafe { &*(*p).sig as *const SigState }
    };
    SIG.with(|c| c.set(sig));
    CTX.with(|c| c.set(p));
}

fn arch_prctl_get(code: i32) -> u64 {
    let mut v = 0u64;
    // SAFETY: ARCH_GET_FS/GS write one u64 to the pointer.
    unsafe { libc::syscall(libc::SYS_arch_prctl, code, &mut v as *mut u64) };
    v
}

pub(crate) use kmod::vcpu::flat_segment as seg;

impl ThreadCtx {
    /// A context for the calling thread (FS/GS bases are the host thread's).
    pub(crate) fn new(dune: &'static Dune) -> Result<Box<ThreadCtx>, DuneError> {
        ThreadCtx::with_bases(dune, arch_prctl_get(0x1003), arch_prctl_get(0x1004))
    }

    /// A context whose guest starts with these FS/GS bases (a thread being created).
    pub(crate) fn with_bases(
        dune: &'static Dune,
        fs_base: u64,
        gs_base: u64,
    ) -> Result<Box<ThreadCtx>, DuneError> {
        let mode = dune.mode.mode;
        let idle = dune
            .idle_vcpus
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop();
        let vcpu = match idle {
            Some(v) => v,
            None => dune
                .vm
                .create_vcpu(dune.next_vcpu.fetch_add(1, Ordering::AcqRel))?,
        };
        // page 0: GDT at +0, TSS at +0x800; page 1: the PVM vif page; then the monitor stack
        let cpu_pages_len = 2 * 4096 + MONITOR_STACK_BYTES;
        let (loop_stack, cpu_pages) = match dune.take_retired() {
            Some(r) => r,
            None => {
                let loop_stack = mmap_anon(
                    LOOP_STACK_BYTES,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_NORESERVE | libc::MAP_STACK,
                    "mmap(exit-loop stack)",
                )?;
                let cpu_pages = mmap_anon(
                    cpu_pages_len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    0,
                    "mmap(GDT/TSS/monitor stack)",
                );
                match cpu_pages {
                    Ok(c) => (loop_stack, c),
                    Err(e) => {
                        // SAFETY: the stack mapped just above; nothing uses it.
                        unsafe { libc::munmap(loop_stack as *mut libc::c_void, LOOP_STACK_BYTES) };
                        return Err(e);
                    }
                }
            }
        };
        let mut ctx = Box::new(ThreadCtx {
            dune,
            vcpu: Some(vcpu),
            frame: EnterFrame::default(),
            mode,
            loop_stack,
            cpu_pages,
            cpu_pages_len,
            // force a flush before the first entry (a reused vCPU may cache old translations)
            seen_generation: u64::MAX,
            cr3_entered: dune.root,
            cr3_set: dune.root,
            pending_error: None,
            stats: ThreadStats::default(),
            spurious_streak: 0,
            last_fault: 0,
            fs_base,
            in_exception: false,
            native_step: false,
            pvm_supervisor: false,
            sig: Box::new(SigState::new()),
            exited: AtomicU32::new(0),
            host_counters: None,
            host_counters_tried: false,
        });
        let tss = cpu_pages + 0x800;
        let stack_top = cpu_pages + cpu_pages_len as u64;
        // SAFETY: cpu_pages is a fresh writable mapping of cpu_pages_len bytes.
        unsafe {
            crate::arch::addr::write_guest(Gva(cpu_pages), gdt::gdt(tss));
        }
        // SAFETY: as above; the TSS fits in the first page at +0x800.
        unsafe { crate::arch::addr::write_guest(Gva(tss), gdt::tss(stack_top, stack_top)) };
        dune.map_range(
            cpu_pages,
            cpu_pages + cpu_pages_len as u64,
            libc::PROT_READ | libc::PROT_WRITE,
            Content::Fresh,
        )?;
        ctx.setup_vcpu(tss, gs_base)?;
        let ie = ctx.vcpu_mut().immediate_exit_ptr() as u64;
        ctx.sig.immediate_exit.store(ie, Ordering::Release);
        Ok(ctx)
    }

    pub(crate) fn vcpu(&self) -> &Vcpu {
        self.vcpu
            .as_ref()
            .expect("the vCPU lives until the thread leaves Dune mode")
    }

    pub(crate) fn vcpu_mut(&mut self) -> &mut Vcpu {
        self.vcpu
            .as_mut()
            .expect("the vCPU lives until the thread leaves Dune mode")
    }

    /// The signal state.
    pub(crate) fn sig(&self) -> &'static SigState {
        // SAFETY: the box lives as long as the ctx, and a ctx outlives every use of its
        // signal state by its thread (contexts of threads that end in Dune are never freed).
        unsafe { &*(&*self.sig as *const SigState) }
    }

    fn setup_vcpu(&mut self, tss: u64, gs: u64) -> Result<(), DuneError> {
        let d = self.dune;
        let lstar = match self.mode {
            Mode::Ring3 => entry::lstar_ring3(),
            Mode::Ring0 | Mode::PvmRing0 => entry::lstar_ring0(),
            Mode::Pvm => entry::lstar_pvm(),
        };
        let (fs, cpu_pages) = (self.fs_base, self.cpu_pages);
        let vcpu = self.vcpu_mut();
        vcpu.reset_sync();
        vcpu.set_msrs(&[
            (0xc000_0081, gdt::STAR),
            (0xc000_0082, lstar),
            (0xc000_0084, SFMASK),
        ])?;
        let mut s = vcpu.sregs()?;
        match d.mode.mode {
            Mode::Ring3 => {
                s.cs = seg(gdt::USER_CS, 11, 3, true, 0);
                s.ss = seg(gdt::USER_SS, 3, 3, false, 0);
                s.ds = s.ss;
                s.es = s.ss;
                s.fs = seg(0, 3, 3, false, fs);
                s.gs = seg(0, 3, 3, false, gs);
            }
            // PVM: every vCPU starts in supervisor mode (a host cannot select user mode);
            // in `pvm` the monitor's iret stub enters user mode before the program runs
            Mode::Ring0 | Mode::PvmRing0 | Mode::Pvm => {
                s.cs = seg(gdt::KERNEL_CS, 11, 0, true, 0);
                s.ss = seg(gdt::KERNEL_SS, 3, 0, false, 0);
                s.ds = s.ss;
                s.es = s.ss;
                s.fs = seg(0, 3, 0, false, fs);
                s.gs = seg(0, 3, 0, false, gs);
            }
        }
        s.ldt = kvm_segment {
            unusable: 1,
            ..Default::default()
        };
        s.tr = kvm_segment {
            base: tss,
            limit: gdt::TSS_LEN_BYTES as u32 - 1,
            selector: gdt::TSS_SEL,
            type_: 11,
            present: 1,
            ..Default::default()
        };
        s.gdt.base = cpu_pages;
        s.gdt.limit = (gdt::GDT_ENTRIES * 8 - 1) as u16;
        s.idt.base = d.idt;
        s.idt.limit = 256 * 16 - 1;
        s.cr0 = 0x8005_0033; // PG | AM | WP | NE | ET | MP | PE
        s.cr3 = d.root;
        s.cr4 = d.cr4;
        s.efer = 0xd01; // NXE | LMA | LME | SCE
        vcpu.set_sregs(&s)?;
        if d.xcr0 != 0 {
            vcpu.set_xcr0(d.xcr0)?;
        }
        if d.mode.mode.is_pvm() {
            // the paravirtual supervisor mode: this vCPU's code (application and monitor
            // stubs alike) runs natively from its first instruction; the vif page (virtual
            // IF) is the thread's own (page 1 of its CPU pages)
            vcpu.set_msrs(&[(
                kmod::pvm::MSR_PVM_MODE,
                (cpu_pages + 4096) | kmod::pvm::MODE_FLAGS | kmod::pvm::MODE_HOST_ENABLED,
            )])?;
            // `pvm`: the first entry goes through the monitor's return to user mode
            self.pvm_supervisor = d.mode.mode == Mode::Pvm;
        }
        Ok(())
    }

    /// Full flush of this vCPU's TLB from the host: a CR3 that differs from the one KVM
    /// holds for the vCPU (the PWT/PCD bits change, a no-op for the identity map's memory
    /// type) makes KVM drop its shadow roots and resync them at the next entry.
    ///
    /// Once the vCPU has run, `set_sregs` only writes the shared run page (sync regs) and
    /// KVM applies the *last* value written at the next `KVM_RUN`: two flushes in one exit
    /// that toggled the same bit (a flush hypercall, then the generation check before the
    /// entry) put back the entry CR3 and flushed nothing — the ring-3 flake of
    /// `threads_take_guest_faults_on_their_own_exception_stacks` (regression test:
    /// `tests/kvm_guest_fault.rs` `flushes_in_one_exit_do_not_cancel`). Each flush
    /// therefore picks a CR3 that differs both from the entry CR3 and from the one an
    /// earlier flush of this exit set, whether KVM applies it now (ioctl) or at the entry.
    pub(crate) fn flush_tlb(&mut self) -> Result<(), DuneError> {
        let t0 = crate::arch::ledger::ticks();
        let entered = self.cr3_entered;
        let vcpu = self.vcpu_mut();
        let mut s = vcpu.sregs()?;
        s.cr3 = next_flush_cr3(entered, s.cr3);
        vcpu.set_sregs(&s)?;
        self.cr3_set = s.cr3;
        crate::arch::ledger::flush_monitor(crate::arch::ledger::ticks().wrapping_sub(t0));
        self.stats.tlb_flushes += 1;
        self.seen_generation = self.dune.generation.load(Ordering::Acquire);
        Ok(())
    }

    /// Records that the vCPU enters the guest now with whatever CR3 the last flush set
    /// (the exit loop calls it before every `KVM_RUN`).
    pub(crate) fn note_entry(&mut self) {
        self.cr3_entered = self.cr3_set;
    }
}

/// The cache-control bits of CR3 (PWT, PCD) the flushes vary.
const CR3_FLUSH_BITS: [u64; 2] = [1 << 3, 1 << 4];

/// The CR3 a flush sets: `entry` (the CR3 of the last entry) with PWT and/or PCD changed,
/// never `entry` itself and never `current` (what an earlier flush of the same exit set).
pub(crate) fn next_flush_cr3(entry: u64, current: u64) -> u64 {
    let mask = CR3_FLUSH_BITS[0] | CR3_FLUSH_BITS[1];
    let base = entry & !mask;
    (0..4u64)
        .map(|k| base | (((entry & mask) >> 3) ^ k) << 3)
        .find(|&c| c != entry && c != current)
        .expect("three of the four values differ from entry and current")
}

impl Drop for ThreadCtx {
    fn drop(&mut self) {
        if let Some(v) = self.vcpu.take() {
            // every register is set again by the next `ThreadCtx::new` / `start_guest`
            self.dune
                .idle_vcpus
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(v);
        }
        if self.cpu_pages != 0 {
            let (start, end) = (self.cpu_pages, self.cpu_pages + self.cpu_pages_len as u64);
            // Only reached on the host stack (never while the exit loop runs on `loop_stack`).
            self.dune.unmap_range(start, end);
            // SAFETY: the mapping was created by `new` and nothing refers to it any more:
            // the vCPU that used the GDT/TSS/stack was parked above.
            unsafe {
                libc::munmap(self.cpu_pages as *mut libc::c_void, self.cpu_pages_len);
            }
        }
        if self.loop_stack != 0 {
            // SAFETY: created by `new`; the loop stack is idle (we are not running on it).
            unsafe { libc::munmap(self.loop_stack as *mut libc::c_void, LOOP_STACK_BYTES) };
        }
    }
}

/// Whether `rsp` lies on this thread's monitor stack (IST 1): the code there is a monitor
/// stub or a guest fault handler, never the program itself.
pub(crate) fn on_monitor_stack(ctx: &ThreadCtx, rsp: u64) -> bool {
    let top = ctx.cpu_pages + ctx.cpu_pages_len as u64;
    rsp < top && rsp >= top - MONITOR_STACK_BYTES as u64
}

/// Top of the exit-loop stack.
pub(crate) fn loop_stack_top(ctx: &ThreadCtx) -> u64 {
    (ctx.loop_stack + LOOP_STACK_BYTES as u64) & !15
}

#[cfg(test)]
mod tests {
    use super::next_flush_cr3;

    #[test]
    fn a_flush_cr3_differs_from_the_entry_and_the_pending_one() {
        let root = 0x7f12_3456_7000u64;
        let values: Vec<u64> = (0..4u64).map(|k| root | k << 3).collect();
        for &entry in &values {
            let mut current = entry;
            for _ in 0..8 {
                let next = next_flush_cr3(entry, current);
                assert_ne!(next, entry);
                assert_ne!(next, current);
                assert_eq!(next & !(3 << 3), root, "only PWT/PCD change");
                current = next;
            }
        }
    }
}
