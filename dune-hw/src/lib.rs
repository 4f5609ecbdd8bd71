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
//! # Layers
//! One folder of `src/` a layer (the exit loop is one file), bottom first; each opens with a
//! comment naming its layer. A module imports only from its own layer and the layers below it
//! (`dune-hw/LAYERS`; `layercheck` reads every `use crate::`/`super::` path against it in
//! `cargo test`, so a new upward import fails CI; `LAYERS.baseline`, the known exceptions, is
//! empty). Where a lower layer must reach a higher one it calls an unmangled `extern` symbol
//! the higher layer defines: the asm calls `dune_guest_trap` (services/fault), a new thread
//! runs `dune_monitor_run` (monitor), forwarding serves `dune_sandbox_run` (api/sandbox).
//!
//! ```text
//!  top  lib.rs        this tour, the module list, re-exports (no logic)
//!   6   api/          process.rs   enter/exit, enter_process, thread_stats, mode, dirty_view,
//!                                  host-write hook, threads in Dune
//!                     regs.rs      guest_regs: a stopped thread's guest registers (roots)
//!                     pagetable/   the live table as a library: walk, map/protect/unmap,
//!                                  huge leaves, one-pass A/D read-and-clear
//!                     sandbox/     code at CPL3 under its own table view and a syscall policy
//!   5   monitor.rs    the exit loop: dispatches each exit to a service
//!   4   services/     trap.rs      guest exceptions: on-demand mapping, handlers, stepping
//!                     fault.rs     fault handlers as closures; in-guest fault handlers
//!                     syscall.rs   forwarding, address-space updates, host-write reports
//!                     signal/      actions, the forwarded-call window, delivery + sigreturn
//!                     thread.rs    clone/clone3/fork/vfork
//!                     tlb.rs       flush / flush_tlb_all, invlpg, TLB feature report
//!   3   state/        dune.rs      the process: one VM, one guest table, memory slots
//!                     thread_ctx.rs  a thread: its vCPU, stacks, GDT/TSS, counters
//!                     sigstate.rs  a thread's recorded signals and masks
//!                     main_stack.rs, fatal.rs  the main thread's [stack]; fatal dumps
//!   2   paging/       pte.rs walker.rs frames.rs  entries, the one walk, table frames
//!                     table.rs dirty_view.rs      the process table; lock-free A/D view
//!                     maps.rs      allocation-free /proc/self/maps reader
//!   1   arch/         addr.rs error.rs gdt.rs idt.rs  addresses, DuneError, descriptors
//!                     entry/       asm stubs (stubs.rs), frame layouts (frames.rs),
//!                                  hypercall numbers and hypercall()
//!         every `use crate::` points down this picture
//! ```
//!
//! Modules (every old path, such as `dune_hw::tlb` or `dune_hw::dune`, is re-exported here):
//! - [`arch`]     Gva/Gpa/Hva, [`DuneError`], GDT/TSS and IDT descriptors, the asm stubs,
//!   the cost ledger's counters ([`DuneLedger`])
//! - [`paging`]   guest page tables: atomic PTEs, the walker, frames, A/D bits, /proc maps
//! - [`state`]    process state ([`dune`]) and per-thread state (vCPU, stacks, signals)
//! - [`services`] [`trap`], [`fault`], [`syscall`], [`signal`], [`thread`], [`tlb`]
//! - [`monitor`]  the exit loop (host half of the monitor)
//! - [`api`]      [`pagetable`], [`sandbox`], enter/exit and the process-wide queries

pub mod api;
pub mod arch;
pub mod monitor;
pub mod paging;
pub mod services;
pub mod state;

// The modules' paths from before the layer folders (public API, kept).
pub use api::{pagetable, sandbox};
pub use arch::{addr, entry, error, gdt, idt, ledger};
pub use paging::maps;
pub use services::{fault, signal, syscall, thread, tlb, trap};
pub use state::dune;

pub use arch::addr::{Gpa, Gva, Hva};
pub use arch::error::DuneError;
pub use arch::host_counters::{
    event_key as host_event_key, status as host_counter_status, EV_SET_DIRTY, EV_SET_SPTE,
    EV_SPTE_REQUESTED, EV_SYNC_PAGE, EV_UNSYNC_PAGE, EV_USERSPACE_EXIT, EV_WALK, HOST_EVENTS,
    N_HOST_EVENTS,
};
pub use arch::ledger::{ledger, BlockClass, DuneLedger, ExitReason};
pub use kmod::{Mode, ModeChoice};
pub use paging::DirtyView;
pub use services::tlb::TlbFlush;
pub use services::trap::{set_exception_handler, Exception, ExceptionHandler, Trap, TrapAction};
pub use state::dune::{
    in_dune, on_host_side, Dune, HostWrite, HostWriteHook, Options, ThreadStats,
};

// What lib.rs itself used to define, from the layer it belongs to.
pub use api::process::{
    dirty_view, enter, enter_process, enter_process_with, enter_with, every_thread_in_dune, exit,
    mode, n_threads_in_dune, process_wide, set_host_write_hook, thread_stats,
};
pub use api::regs::{guest_regs, GuestRegs};
pub use arch::entry::hypercall;
pub use services::tlb::{flush, flush_tlb_all, flush_tlb_page};
