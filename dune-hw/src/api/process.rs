//! Entering and leaving Dune (one thread, or the whole program) and the process-wide
//! queries a collector makes: threads in Dune, this thread's counters, the mode, the D-bit
//! view, the host-write hook. Public API layer; the crate root re-exports every item.

use crate::arch::entry::{self, hypercall};
use crate::arch::error::DuneError;
use crate::monitor;
use crate::paging::DirtyView;
use crate::services::signal;
use crate::state::dune::{
    self, in_dune, Dune, HostWriteHook, Options, ThreadCtx, ThreadStats, CTX,
};
use crate::state::main_stack::grow_main_stack;
use kmod::ModeChoice;

static PROCESS_WIDE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Puts the whole program into Dune mode: the calling thread enters now, and every thread
/// it (or any Dune thread) creates afterwards enters Dune on its own vCPU before its first
/// instruction (see [`thread`](crate::services::thread)). Threads that already exist and stay outside Dune keep
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

/// The mode of this process's Dune VM, if initialised.
pub fn mode() -> Option<ModeChoice> {
    Dune::get().map(|d| d.mode().clone())
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
