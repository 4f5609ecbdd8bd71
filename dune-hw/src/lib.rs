//! dune-hw — the guest runtime of Dune (libdune's role), over [`kmod`].
//!
//! [`enter()`] moves the calling thread into a KVM guest: it continues the *same* Rust code,
//! on the same stack, with the same heap and thread-locals (FS base), because guest-physical
//! == host-virtual and the guest page tables identity-map the process. Syscalls are forwarded
//! to the host (results and errno unchanged), mmap/munmap/mprotect/mremap/brk keep the guest
//! page tables and memory slots in step, and host writes on the guest's behalf go to a hook.
//! [`exit()`] returns the thread to the host.
//!
//! Four modes (chosen once per process, always reported, see [`kmod::mode`]):
//! - **ring-0** (classic Dune): the thread runs at guest CPL0 and could use privileged
//!   instructions directly; on our PVM host CPL0 is emulated, so it is functional but slow.
//! - **ring-3** (PVM hosts whose supervisor ABI fails the probe): the thread runs at guest
//!   CPL3 natively; the CPL0 part is a few stub instructions that exit to the host-side
//!   monitor ([`monitor`]).
//! - **pvm** (default on PVM hosts whose paravirtual supervisor ABI passes the start-up probe,
//!   [`kmod::pvm`]): ring-3 semantics with a native monitor. The program runs in the
//!   hypervisor's paravirtual *user* mode; `syscall` and exceptions (IST 1) enter the
//!   monitor's stubs natively in its *supervisor* mode; a TLB-flush request is answered there
//!   (hypercall + `sysretq`, no exit); the host returns the vCPU to user mode through an
//!   `HC_IRET_FRAME` stub ([`monitor`]).
//! - **pvm-ring0** (forced only): ring-0's layout with the program itself in the supervisor
//!   mode, natively; [`flush_tlb_all`] / [`flush`] are hypercalls in the program's own code.
//!   Findings, experiments and why `pvm` is the default: `dune-hw/PVM.md`.
//!
//! # Measured here (PVM host, nested, AMD EPYC, TSC 2.445 GHz; `benches/benches/dune.rs`)
//! Quiet-machine figures; under load (others building) everything, native included, was
//! up to 25% slower.
//!
//! | work | native | ring-3 | ring-0 (CPL0 emulated) |
//! |---|---|---|---|
//! | LCG loop, 1e6 iterations | 1.300 ms | 1.300-1.314 ms (1.00-1.01x) | 100 iterations: 526 us vs 117 ns (~4,500x) |
//! | getpid round trip | 0.14 us | 27-30 us | 24 us |
//! | pread 4 KiB (/dev/zero) | 0.25 us | 27.5 us | 23.7 us |
//! | TLB flush request | - | 29-30 us (CR3 toggled through sync regs) | 19 us (CR3 reload, emulated) |
//! | mmap 64 KiB + touch + munmap | 7.3 us | 71 us | 53 us |
//! | page fault resolved by the monitor | 1.6-2.3 us (Linux minor fault) | 45 us | 27 us |
//! | first `enter` (VM, sync of all mappings) / later enter+exit | - | 5.8 ms / 0.10 ms | |
//! | read+clear D bits of 4096 pages + flush | - | 0.59-1.16 ms (scan 7-60 cycles/page; the rest is KVM's resync at the flush) | 104 ms (emulated scan) |
//! | first write to each of 4096 pages after the clear | 31-35 us (already dirty) | 11.3-16.9 ms (2.8-4.1 us/page: shadow fault) | 13.6 ms |
//!
//! The PVM modes (issue 11; side by side with these in `bench-results/pvm-modes.md`): **pvm**
//! LCG loop native, getpid 29 us, TLB-flush request 4.3 us (no exit), page fault 46 us, D
//! bits of 4096 pages read+cleared+flushed 0.50 ms, first write after the clear 2.5 us/page;
//! **pvm-ring0** TLB flush 2.4 us, first write after the clear 3.5 us/page (KVM's shadow
//! faults cost more in supervisor mode).
//!
//! A forwarded syscall costs one exit. In ring-3: `syscall` -> LSTAR stub (native, PVM
//! supervisor mode) -> `iretq` -> CPL3 doorbell store (MMIO exit) -> host; registers travel
//! through KVM_CAP_SYNC_REGS (without it: 36 us per getpid). A page fault on memory the
//! guest table does not map yet: exception delivery to the CPL0 stub (emulated), `out`,
//! PROCMAP_QUERY for the VMA (the text of /proc/self/maps cost 60% of the fault), memory
//! slot + page-table update, and the host resumes the faulting code directly.

//! # Whole programs in Dune (threads, signals, exceptions)
//! [`enter_process()`] at the top of `main` runs the program in Dune from there to exit:
//! - **threads**: `clone`/`clone3` from a Dune thread (`std::thread::spawn`, scoped threads,
//!   pools) create a host thread that starts in its own exit loop on its own vCPU and enters
//!   the guest before its first instruction ([`thread`]); a thread ending inside Dune parks
//!   its vCPU and hands its exit-loop stack and GDT/TSS pages to the next thread.
//!   `fork`/`vfork`/`posix_spawn` children run **outside** Dune (the VM belongs to the
//!   parent): `Command` works; `enter()` in a forked child fails with `Unsupported`.
//! - **signals** ([`signal`]): `rt_sigaction` inside Dune is emulated; handlers run *in the
//!   guest* on a Linux `rt_sigframe` (siginfo, ucontext with the interrupted registers,
//!   XSAVE state, mask; sigaltstack honoured) and `rt_sigreturn` restores it. Blocked calls
//!   are interrupted (EINTR; restarted after the handler if SA_RESTART, as Linux does).
//!   Guest exceptions nobody handles become SIGSEGV/SIGILL/SIGFPE/SIGTRAP/SIGBUS for the
//!   guest handler. Handlers installed *before* entering stay host actions: they run on the
//!   host side of the interrupted Dune thread, where [`guest_regs`] gives the guest state.
//!   A signal arriving while a thread enters a forwarded blocking call is never lost (the
//!   call is cancelled and restarted after the handler, or interrupted); real-time signals
//!   are queued by the kernel as on Linux (bound: RLIMIT_SIGPENDING, EAGAIN from sigqueue).
//! - **exceptions** ([`set_exception_handler`]): #PF (after on-demand mapping failed), #GP,
//!   #UD, #BP, #DE go to a process-wide handler run on the host side of the faulting thread;
//!   it can change the registers and resume, or map the page (`mmap`) and retry.
//! - **address space**: guest entries are shared by every vCPU; `munmap` removes them
//!   *before* the host unmaps, so once it returns no vCPU reaches the page (KVM's MMU
//!   notifier drops every vCPU's shadow translation synchronously); restrictions
//!   (mprotect, MAP_FIXED) make every vCPU flush before its next entry — unless no changed
//!   entry was ever used for a translation (its A bit was clear when it was atomically
//!   replaced: the MMU, and KVM's shadow MMU including its prefetch, set A before caching).
//!
//! Measured (ring-3, this host, criterion `benches/benches/dune.rs`, side by side):
//!
//! | work | native | ring-3 |
//! |---|---|---|
//! | thread spawn + join | 51-76 us | 591-606 us (~17 exits: the syscalls of glibc/std thread start and exit; vCPU set-up) |
//! | futex ping-pong round trip (2 threads) | 31-43 us | 32-35 us (wake-up latency dominates both) |
//! | signal to self, handler, return | 2.5-3.2 us | 82-89 us (2 exits: the `tgkill`, the `rt_sigreturn`; XSAVE save/restore ~15 us) |
//! | 16-thread program (pool, channels, mutexes, condvar, barrier, files; 2 CPUs) | 23-29 ms | 72-102 ms, identical output |
//! | stopping a thread busy in the guest (signal to handler entry) | | ~1.1 ms incl. the sender's sleep granularity |
//!
//! # For a collector (gc-core)
//! - Call [`enter_process`] before the program starts threads; check [`process_wide`] and,
//!   when arming, [`every_thread_in_dune`] (threads that existed before stay outside Dune
//!   and their writes set no guest D bit; kernel workers such as `kvm-nx-lpage-recovery`,
//!   which KVM adds to the process and which ignore signals, are not counted).
//! - **Stopping a Dune thread**: a signal interrupts its KVM_RUN (or its forwarded blocking
//!   call). With a handler installed *before* entering (a host action), the handler runs on
//!   the host side of its exit loop: [`guest_regs`] returns the interrupted guest registers
//!   and `stack_low` (scan `[stack_low, stack top)`). With a handler installed *inside*
//!   Dune, it runs in the guest: the ucontext holds the guest registers, the handler's own
//!   stack is the guest stack, and [`guest_regs`] returns `None` there.
//! - **TLB after clearing D bits**: [`flush`] / [`flush_tlb_all`] flush this vCPU now and
//!   make every other vCPU flush before its next entry. A thread stopped on its host side
//!   re-enters only through that check; a thread stopped in a guest handler leaves it by
//!   `rt_sigreturn` (an exit), so the interrupted code resumes with a flushed TLB — only
//!   the handler's own code runs before that (it must not write the heap after the resume).
//! - **Host writes**: [`set_host_write_hook`] receives every guest range the host wrote:
//!   forwarded syscalls, signal frames, `CLONE_PARENT_SETTID`/`CHILD_SETTID` tids.
//!   Not reported (never heap memory): the kernel's CLONE_CHILD_CLEARTID store at thread
//!   exit and rseq `cpu_id` updates, both in glibc's thread descriptor.
//! - D bits: [`dirty_view`] (lock-free walk of the shared guest table).
//!
//! # Privileged hardware for library users ([`pagetable`], [`tlb`], [`fault`])
//! The live process table and the CPU features behind it, with the same behaviour in
//! ring-3 and ring-0 mode (the table is process memory in both; only TLB flushes are
//! privileged, and in ring-3 they go through the monitor):
//! - [`pagetable::walk`] -> entry, level (4K/2M/1G), page, physical address;
//!   [`pagetable::map`] / [`pagetable::protect`] / [`pagetable::unmap`] /
//!   [`pagetable::write_protect`] (copy-on-write style) of 4 KiB-aligned ranges the process
//!   has mapped (never more than the host mapping allows); [`pagetable::map_huge`] (2 MiB
//!   leaves; 1 GiB refused here: the vCPU CPUID lacks pdpe1gb);
//!   [`pagetable::read_clear_accessed_dirty`] (one pass over the leaf tables, per-page
//!   bits). Entries set this way carry a software bit the on-demand fault path respects,
//!   so forbidden accesses reach the program's handler; host mmap/mprotect/munmap of the
//!   range replace them. Huge leaves are handled by every walk (kept when a change covers
//!   all of one, split otherwise; a dirty huge leaf reports each of its pages).
//! - [`tlb::invlpg`], [`tlb::invlpg_range`], [`tlb::flush_all`] report the [`tlb::TlbMethod`]
//!   used; [`tlb::features`] reports PCID/INVPCID/PGE/1 GiB/INVLPGB from the vCPU CPUID
//!   table (`cpuid` at PVM guest CPL3 is not intercepted and returns the host's bits:
//!   [`tlb::cpuid_instruction_features`]). PCIDs stay off: one address space, one CR3.
//! - [`fault::set_fault_handler`]: closures with the faulting address, the decoded error
//!   code ([`fault::PageFaultCode`]), the registers, and resume / skip / unhandled.
//! - [`fault::set_guest_fault_handler`]: a plain `fn` with the same [`fault::Fault`] and
//!   actions, run **in the guest without an exit** in `pvm`, `pvm-ring0` (and `ring0`,
//!   emulated) on the vCPU's IST stack; it changes pages with the lock-free
//!   [`pagetable::protect_page_in_guest`]. `Unhandled` continues on the host path; in
//!   `ring3` the same handler runs host-side. Write-protection trap here: 15.5 us in `pvm`
//!   (no exit; the PVM event delivery itself is ~13 us) vs 87 us through the host path and
//!   4.5 us for Linux's SIGSEGV (`bench-results/dune-paper-microbenchmarks.md`).
//!
//! Measured (criterion, `cargo bench --bench dune -- privileged_`, this host):
//!
//! | work | native | ring-3 | ring-0 (CPL0 emulated) |
//! |---|---|---|---|
//! | read+clear A/D, 2048 clean pages, 4 KiB leaves | - | 6.3 us (3.1 ns/page) | 77 ms |
//! | same, 2 MiB leaves | - | 0.27 us | 0.65 ms |
//! | same, 2 MiB leaves all dirty (4 leaves cleared) | - | 29.6 us (a KVM trap per cleared huge leaf: tables holding huge leaves stay write-protected under shadow paging) | 0.75 ms |
//! | invlpg 1 page / range of 16 / full flush | - | 43 / 30 / 32 us (all the monitor's full flush) | 82 / 125 / 62 us (invlpg per page; CR3 reload) |
//! | copy-on-write cycle (protect, write fault, handler copies + unprotects, resume) | 9.1 us (mprotect + SIGSEGV) | 78 us (2 exits: the flush, the fault) | 1.25 ms (the API's own code is emulated too) |
//!
//! # Known limits
//! - System V shared memory and remap_file_pages return ENOSYS inside Dune (message on
//!   stderr). `execve` works: the new program replaces the process and runs outside Dune. `clone(CLONE_VM)` without CLONE_THREAD or CLONE_VFORK (a process sharing
//!   memory, running concurrently outside Dune) returns ENOSYS.
//! - Signals ([`signal`] lists the details): a thread ending with a recorded, undelivered
//!   signal hands process-directed ones (kill, sigqueue, timers) back to the process with
//!   their siginfo; thread-directed ones end with it. A vfork child shares the parent's
//!   TLS: a signal reaching it before exec is recorded for the parent.
//! - Ring-0 mode runs threads and guest signal handlers functionally (`kvm_ring0`; the
//!   13-thread test of `kvm_threads` takes 10.5 s there: every CPL0 instruction is emulated
//!   here); the timer, whole-program and stop tests run ring-3.
//! - Mappings removed or restricted by a thread *outside* Dune are not seen by the guest page
//!   table (additions are found on demand by the fault path); an access through a stale
//!   entry to memory the host unmapped is retried after a flush (KVM_RUN EFAULT) and ends
//!   the process after 1,000 tries.
//! - The main thread's `[stack]` is grown to RLIMIT_STACK (at most 64 MiB) at entry, since
//!   guest accesses do not grow it.
//! - Ring-0 on an emulating host: instructions KVM's emulator cannot run (libc's AVX/EVEX
//!   string functions, SSE, `rdtscp` in the vDSO clock) are stepped natively at CPL3 with
//!   the trap flag (`trap::step_natively`), ~100 us each: ordinary Rust works (a
//!   100-entry HashMap + a file round trip + println: ~0.8 s, 5,400 steps).
//! - Memory slots of unmapped ranges are kept (deleting one zaps every shadow page) until
//!   the slot table is full; mappings over 64 MiB are mapped into the guest on fault, 2 MiB
//!   at a time.
//!
//! Modules:
//! - [`addr`]     Gva, Gpa, Hva; the one GPA==HVA conversion; raw guest reads
//! - [`paging`]   guest page tables: atomic PTEs, the walker, frames, A/D bits
//! - [`tlb`]      flush obligations; invlpg / range / full flush; TLB feature report
//! - [`pagetable`] the live table as a library API: walk, map/unmap/protect, huge pages,
//!   one-pass A/D read-and-clear, copy-on-write protection
//! - [`fault`]    exception handlers as closures (decoded error code, registers, resume);
//!   guest fault handlers delivered in the guest without an exit
//! - [`gdt`], [`idt`] descriptors as pure functions; vectors
//! - [`entry`]    asm: enter/leave on the same stack, LSTAR stubs, exception stubs
//! - [`monitor`]  the exit loop (host half of the monitor)
//! - [`trap`]     guest exceptions: on-demand mapping, spurious faults, the program's
//!   exception handlers, signals for faults, fatal dumps
//! - [`syscall`]  forwarding, address-space updates, host-write reports
//! - [`thread`]   clone/clone3/fork/vfork: new threads enter Dune, new processes do not
//! - [`signal`]   guest signal actions, delivery inside the guest, rt_sigreturn
//! - [`maps`]     allocation-free /proc/self/maps reader
//! - [`dune`]     process and thread state
//! - [`sandbox`]  code at CPL3 under its own page-table view and a syscall policy
//! - [`error`]    [`DuneError`]
//! - `fatal`      fatal dumps of a vCPU thread from a stack buffer (crate-private)
//!
//! # Layers
//! Each module imports only from its own layer and the layers below it (bottom first in
//! `dune-hw/LAYERS`; `layercheck` checks every `use crate::` path against it in
//! `cargo test`, so a new upward import fails CI). The upward imports that remain from
//! before the layers were declared are listed in `dune-hw/LAYERS.baseline`, which may only
//! shrink.
//!
//! ```text
//!  top   lib.rs            enter/exit, flush, guest_regs, ..., re-exports
//!   6    public API        pagetable  sandbox
//!   5    monitor           monitor (the exit loop: dispatches to the services)
//!   4    services          trap  fault  syscall  signal  thread  tlb
//!   3    state             dune (process/thread state)  fatal (fatal dumps)
//!   2    paging            paging (PTEs, walker, frames)  maps
//!   1    arch              addr  error  gdt  idt  entry (asm stubs, frame layouts,
//!                          hypercall numbers; the Rust they call is an `extern` symbol)
//!          every import points down this picture (LAYERS.baseline: the exceptions)
//! ```

pub mod addr;
pub mod dune;
pub mod entry;
pub mod error;
mod fatal;
pub mod fault;
pub mod gdt;
pub mod idt;
pub mod ledger;
pub mod maps;
pub mod monitor;
pub mod pagetable;
pub mod paging;
pub mod sandbox;
pub mod signal;
pub mod syscall;
pub mod thread;
pub mod tlb;
pub mod trap;

pub use addr::{Gpa, Gva, Hva};
pub use dune::{
    hypercall, in_dune, on_host_side, Dune, HostWrite, HostWriteHook, Options, ThreadStats,
};
pub use error::DuneError;
pub use kmod::{Mode, ModeChoice};
pub use ledger::{ledger, DuneLedger, ExitReason};
pub use paging::DirtyView;
pub use tlb::TlbFlush;
pub use trap::{set_exception_handler, Exception, ExceptionHandler, Trap, TrapAction};

static PROCESS_WIDE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Puts the whole program into Dune mode: the calling thread enters now, and every thread
/// it (or any Dune thread) creates afterwards enters Dune on its own vCPU before its first
/// instruction (see [`thread`]). Threads that already exist and stay outside Dune keep
/// running on the host, and threads *they* create do too: call this early in `main`, before
/// spawning threads. Idempotent on a thread already in Dune.
pub fn enter_process() -> Result<(), DuneError> {
    enter_process_with(&Options::default())
}

/// [`enter_process`] with options.
pub fn enter_process_with(opts: &Options) -> Result<(), DuneError> {
    if !in_dune() {
        enter_with(opts)?;
    }
    PROCESS_WIDE.store(true, std::sync::atomic::Ordering::Release);
    Ok(())
}

/// Threads of this process in Dune mode now (a thread being created by a Dune thread counts
/// from before its first instruction).
pub fn n_threads_in_dune() -> usize {
    Dune::get().map_or(0, |d| {
        d.live_threads.load(std::sync::atomic::Ordering::Acquire)
    })
}

/// Whether every thread of the process runs in Dune mode now (compares
/// [`n_threads_in_dune`] with `/proc/self/task`, kernel workers such as KVM's
/// `kvm-nx-lpage-recovery` excluded; a thread that is just ending may make it
/// say false for a moment — conservative for a dirty-bit collector). Not for signal
/// handlers (reads a directory).
pub fn every_thread_in_dune() -> bool {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return false;
    };
    let n_tasks = dir
        .filter_map(|e| e.ok())
        .filter(|e| !is_kernel_worker(&e.path()))
        .count();
    n_tasks > 0 && n_threads_in_dune() >= n_tasks
}

/// PF_USER_WORKER: a kernel worker living in the process (KVM's `kvm-nx-lpage-recovery`,
/// io_uring workers); it never runs user code.
const PF_USER_WORKER: u64 = 0x4000;

fn is_kernel_worker(task: &std::path::Path) -> bool {
    let Ok(stat) = std::fs::read_to_string(task.join("stat")) else {
        return false;
    };
    // fields after the command name (which may contain spaces): state is field 3, flags 9
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return false;
    };
    rest.split_whitespace()
        .nth(6)
        .and_then(|f| f.parse::<u64>().ok())
        .is_some_and(|flags| flags & PF_USER_WORKER != 0)
}

/// Whether [`enter_process`] succeeded in this process.
pub fn process_wide() -> bool {
    PROCESS_WIDE.load(std::sync::atomic::Ordering::Acquire)
}

use dune::{ThreadCtx, CTX};

/// Enters Dune mode on the calling thread with default options (mode detected).
pub fn enter() -> Result<(), DuneError> {
    enter_with(&Options::default())
}

/// Enters Dune mode on the calling thread. On success the thread is running inside the
/// guest when this returns.
pub fn enter_with(opts: &Options) -> Result<(), DuneError> {
    if in_dune() {
        return Err(DuneError::AlreadyEntered);
    }
    let d = Dune::get_or_init(opts)?;
    grow_main_stack();
    let ctx = ThreadCtx::new(d)?;
    d.live_threads
        .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    let p = Box::into_raw(ctx);
    dune::set_current(p);
    // SAFETY: `p` is live and owned through CTX; the trampoline saves our callee-saved
    // registers and return address into its frame and runs the exit loop on the loop stack,
    // which belongs to the ctx. It "returns" either in the guest (0) or on the host (1).
    let r = unsafe {
        entry::dune_enter_trampoline(
            &mut (*p).frame,
            monitor::loop_entry,
            dune::loop_stack_top(&*p),
        )
    };
    if r == 0 {
        return Ok(());
    }
    dune::set_current(core::ptr::null_mut());
    d.live_threads
        .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    // SAFETY: the loop gave the ctx back (it resumed the host); we own it again.
    let mut ctx = unsafe { Box::from_raw(p) };
    Err(ctx.pending_error.take().unwrap_or(DuneError::NotEntered))
}

/// Most bytes of the main thread's stack made part of `[stack]` below the current frame
/// before entering (bounded by RLIMIT_STACK): the kernel grows `[stack]` only for host
/// accesses, and the guest page table maps the stack as it is. Only the lowest page is
/// touched; the rest costs nothing until used.
const MAIN_STACK_HEADROOM_BYTES: u64 = 64 << 20;

/// On the main thread, touches the page [`MAIN_STACK_HEADROOM_BYTES`] below the current
/// frame so the kernel grows `[stack]` down to it now (a guest access below the stack as
/// mapped at entry would be an unhandled fault).
#[inline(never)]
fn grow_main_stack() {
    let sp: u64;
    // SAFETY: reading rsp has no side effects.
    unsafe { core::arch::asm!("mov {}, rsp", out(reg) sp, options(nomem, nostack)) };
    let Some(m) = maps::find(sp) else { return };
    if !m.is_main_stack {
        return;
    }
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one struct.
    if unsafe { libc::getrlimit(libc::RLIMIT_STACK, &mut limit) } != 0 {
        return;
    }
    // stay well inside RLIMIT_STACK (counted from the top of the stack)
    let used = m.end - sp;
    let room = limit.rlim_cur.saturating_sub(used + (64 << 10));
    let target = (sp - MAIN_STACK_HEADROOM_BYTES.min(room)) & !0xfff;
    if target < m.start {
        // SAFETY: an address below the stack pointer within the stack's growth range
        // (inside RLIMIT_STACK): the kernel extends `[stack]` down to it; no object lives
        // there yet, and the read has no other effect.
        unsafe { core::ptr::read_volatile(target as *const u8) };
    }
}

/// Leaves Dune mode: the thread continues on the host.
pub fn exit() -> Result<ThreadStats, DuneError> {
    if !in_dune() {
        return Err(DuneError::NotEntered);
    }
    hypercall(dune::hypercall::LEAVE);
    let p = CTX.with(|c| c.get());
    dune::set_current(core::ptr::null_mut());
    // SAFETY: the monitor resumed us on the host; the ctx (and its vCPU) is ours to drop.
    let ctx = unsafe { Box::from_raw(p) };
    ctx.dune
        .live_threads
        .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    // signals recorded after the last delivery: the host action (the trampoline) now runs
    // the handler natively
    signal::release_on_leave(ctx.sig());
    Ok(ctx.stats)
}

/// The calling thread's counters (zero outside Dune mode).
pub fn thread_stats() -> ThreadStats {
    let p = CTX.with(|c| c.get());
    if p.is_null() {
        return ThreadStats::default();
    }
    // SAFETY: the ctx is live while the thread is in Dune mode; we only copy plain counters
    // (the monitor updates them only while this thread is stopped in an exit).
    unsafe { (*p).stats }
}

/// The guest registers of the calling Dune thread while it is stopped on its host side
/// (in a signal handler that interrupted the exit loop, or in a host-write hook): what a
/// collector must scan as the thread's roots, since the host registers there belong to the
/// exit loop. `None` outside Dune mode. Async-signal-safe once the thread has run in the
/// guest (registers come from the shared `kvm_run` page).
///
/// It also makes the thread's next entry into the guest go through the exit loop's checks
/// first (a kick of `immediate_exit`): a stop signal can arrive after the loop checked for
/// a pending TLB flush and before it entered the guest; a collector that clears D bits
/// while the thread waits in its handler must have that flush happen before the thread's
/// guest code runs again, and the kick guarantees it.
pub fn guest_regs() -> Option<GuestRegs> {
    let p = CTX.with(|c| c.get());
    if p.is_null() {
        return None;
    }
    // Inside a guest signal handler (not on the exit-loop stack) the registers are in the
    // handler's ucontext, and the vCPU's are stale.
    let sp: u64;
    // SAFETY: reading rsp has no side effects.
    unsafe { core::arch::asm!("mov {}, rsp", out(reg) sp, options(nomem, nostack)) };
    // SAFETY: the ctx is live while the thread is in Dune mode; loop_stack is plain data.
    let on_loop_stack = unsafe {
        let top = dune::loop_stack_top(&*p);
        sp > (*p).loop_stack && sp <= top
    };
    // SAFETY: as above; sig() is the thread's own state.
    let sig = unsafe { (*p).sig() };
    if !on_loop_stack
        && sig
            .handlers_active
            .load(std::sync::atomic::Ordering::Acquire)
            > 0
    {
        return None;
    }
    // SAFETY: the ctx is live while the thread is in Dune mode; the exit loop it belongs to
    // is suspended on this same thread while we read (a signal handler or a hook runs on
    // top of it), so nothing writes these fields concurrently.
    let (vcpu, in_exception) = unsafe { ((*p).vcpu.as_ref()?, (*p).in_exception) };
    sig.kick();
    let mut r = vcpu.regs().ok()?;
    if r.rip == entry::pvm_iret() {
        // `pvm`, about to return to user mode: the program's rip/rsp/rflags are in the frame
        // SAFETY: the monitor wrote a PvmIretFrame at rsp on the monitor stack before entering.
        let f: entry::PvmIretFrame = unsafe { addr::read_guest(Gva(r.rsp)) };
        r.rax = f.rax;
        r.rbx = f.rbx;
        r.rdi = f.rdi;
        r.rip = f.rip;
        r.rsp = f.rsp;
        r.rflags = f.rflags;
    }
    // SAFETY: as above (plain data of the suspended exit loop's context).
    let ctx = unsafe { &*p };
    let top = ctx.cpu_pages + ctx.cpu_pages_len as u64;
    let frame_at = top - entry::GUEST_FRAME_OFFSET;
    if !in_exception
        && dune::on_monitor_stack(ctx, r.rsp)
        && r.rsp < frame_at
        && !entry::in_monitor_code(r.rip)
    {
        // in a guest fault handler: the interrupted program's registers are in the frame the
        // in-guest stub saved (the handler's own stack holds only copies of them)
        // SAFETY: the in-guest path wrote a GuestTrapFrame there before calling the handler.
        let f: entry::GuestTrapFrame = unsafe { addr::read_guest(Gva(frame_at)) };
        return Some(GuestRegs {
            gprs: [
                f.rax, f.rbx, f.rcx, f.rdx, f.rsi, f.rdi, f.rbp, f.rsp, f.r8, f.r9, f.r10, f.r11,
                f.r12, f.r13, f.r14, f.r15,
            ],
            rip: f.rip,
            stack_low: f.rsp.saturating_sub(128),
        });
    }
    let mut user_rsp = r.rsp;
    if in_exception {
        // SAFETY: the CPL0 stub pushed an ExceptionFrame at rsp on the monitor stack.
        let f: entry::ExceptionFrame = unsafe { addr::read_guest(Gva(r.rsp)) };
        user_rsp = f.rsp;
    }
    Some(GuestRegs {
        gprs: [
            r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp, user_rsp, r.r8, r.r9, r.r10, r.r11,
            r.r12, r.r13, r.r14, r.r15,
        ],
        rip: r.rip,
        // the red zone below rsp may hold live values; in ring-3 a syscall exit's rsp is
        // already below it (the LSTAR stub stepped over it)
        stack_low: user_rsp.saturating_sub(128).min(r.rsp),
    })
}

/// A Dune thread's guest registers (see [`guest_regs`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestRegs {
    /// rax, rbx, rcx, rdx, rsi, rdi, rbp, rsp, r8..r15 (rsp: the interrupted code's).
    pub gprs: [u64; 16],
    /// Where the guest is stopped (a monitor stub during an exception).
    pub rip: u64,
    /// Lowest stack address that may hold live data (rsp minus the red zone).
    pub stack_low: u64,
}

/// The mode of this process's Dune VM, if initialised.
pub fn mode() -> Option<ModeChoice> {
    Dune::get().map(|d| d.mode().clone())
}

/// Issues a Dune hypercall (a syscall with a Dune-private number) and returns rax.
pub fn hypercall(nr: u64) -> u64 {
    let r: u64;
    // SAFETY: in Dune mode the monitor answers it; outside, Linux answers ENOSYS. The
    // syscall instruction clobbers rcx and r11; LEAVE may resume with only callee-saved
    // registers intact, hence clobber_abi("C").
    unsafe {
        core::arch::asm!("syscall", inlateout("rax") nr => r, clobber_abi("C"));
    }
    r
}

/// Flushes the guest TLB of every vCPU: this thread's now (ring-0: CR3 reload in the
/// guest; ring-3: a request to the monitor; pvm: the `HC_FLUSH_TLB` hypercall, no exit),
/// every other vCPU before its next entry into the guest.
///
/// A vCPU running guest code right now keeps its cached translations until it exits, so a
/// caller that cleared D bits must have stopped the other Dune threads first (a stopped
/// Dune thread waits on the host side of its exit loop and flushes when it resumes): then
/// no write after the clear can go unrecorded.
pub fn flush_tlb_all() {
    let Some(d) = Dune::get() else { return };
    d.generation
        .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    if !in_dune() || on_host_side() {
        // the exit loop flushes this vCPU before it resumes the guest
        ledger::flush_deferred();
        return;
    }
    let t0 = ledger::ticks();
    match d.mode().mode {
        Mode::Ring0 => {
            // SAFETY: at guest CPL0 (ring-0 mode) reloading CR3 with its own value only
            // flushes non-global TLB entries.
            unsafe {
                core::arch::asm!("mov {t}, cr3", "mov cr3, {t}", t = out(reg) _, options(nostack))
            }
        }
        // pvm: the LSTAR stub answers it in supervisor mode with the hypercall, no exit
        Mode::Ring3 | Mode::Pvm => {
            hypercall(dune::hypercall::FLUSH_TLB);
        }
        Mode::PvmRing0 => pvm_flush_tlb(),
    }
    ledger::flush_guest_full();
    ledger::flush_time(ledger::ticks().wrapping_sub(t0));
}

/// `pvm`: asks the supervisor-mode syscall stub to flush this vCPU's translation of the
/// page holding `va` (`HC_FLUSH_TLB_ONE`, no exit).
pub(crate) fn pvm_request_flush_page(va: u64) {
    // SAFETY: in pvm mode the LSTAR stub answers this Dune-private number in supervisor
    // mode and returns with `sysretq`; `syscall` clobbers rcx and r11, the stub rax only
    // (rdi and rbx are exchanged back), clobber_abi("C") covers more than that.
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") dune::hypercall::FLUSH_TLB_PAGE => _,
            in("rdi") va,
            clobber_abi("C")
        );
    }
}

/// `pvm-ring0` (the thread runs in PVM supervisor mode): the flush hypercall, answered
/// without leaving the guest.
fn pvm_flush_tlb() {
    let r: u64;
    // SAFETY: in pvm-ring0 mode the thread runs in the paravirtual supervisor mode, where
    // `int $0x1b` is a hypercall (the self-test checked that it preserves every register but
    // rax); HC_FLUSH_TLB only drops this vCPU's cached translations.
    unsafe {
        core::arch::asm!("int 0x1b", inlateout("rax") kmod::pvm::HC_FLUSH_TLB => r, options(nostack))
    };
    if r != 0 {
        hypercall(dune::hypercall::FLUSH_TLB);
    }
}

/// `pvm-ring0`: flush one page's translation (hypercall in the guest).
pub(crate) fn pvm_flush_tlb_page(va: u64) {
    let r: u64;
    // SAFETY: as in `pvm_flush_tlb`; HC_FLUSH_TLB_ONE takes the address in rbx (rbx is
    // reserved by LLVM, hence the xchg around the call) and only drops a translation.
    unsafe {
        core::arch::asm!(
            "xchg {va}, rbx",
            "int 0x1b",
            "xchg {va}, rbx",
            va = inout(reg) va => _,
            inlateout("rax") kmod::pvm::HC_FLUSH_TLB_ONE => r,
            options(nostack)
        )
    };
    if r != 0 {
        pvm_flush_tlb();
    }
}

/// Performs a flush obligation on every vCPU (see [`flush_tlb_all`]); for small ranges on
/// this vCPU ring-0 uses invlpg per page, pvm-ring0 the `HC_FLUSH_TLB_ONE` hypercall per
/// page, and pvm, for one page, a request its supervisor-mode stub answers with that
/// hypercall (no exit). Allocation-free (usable in stop-the-world and
/// fault paths).
pub fn flush(f: TlbFlush) {
    if Dune::get().is_none() {
        return;
    }
    if tlb::flush_pages_here(f.start, f.end, tlb::INVLPG_MAX_PAGES).is_none() {
        flush_tlb_all()
    }
}

/// Flushes the translation of the page containing `va` (ring-0: invlpg; pvm:
/// `HC_FLUSH_TLB_ONE`; ring-3: a full flush by the monitor, which cannot invlpg for the
/// guest) on every vCPU.
pub fn flush_tlb_page(va: Gva) {
    flush(TlbFlush::range(
        va.page_down().0,
        va.page_down().0 + addr::BYTES_IN_PAGE,
    ))
}

/// The lock-free A/D-bit view of the process's guest page table, if initialised.
pub fn dirty_view() -> Option<DirtyView> {
    Dune::get().map(|d| d.dirty_view())
}

/// Installs (or removes) the hook receiving guest memory the host wrote on the guest's
/// behalf. Initialises nothing: returns false if Dune is not initialised yet.
pub fn set_host_write_hook(hook: Option<HostWriteHook>) -> bool {
    match Dune::get() {
        Some(d) => {
            d.set_host_write_hook(hook);
            true
        }
        None => false,
    }
}
