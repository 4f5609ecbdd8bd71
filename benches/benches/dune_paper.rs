//! The Dune paper's microbenchmarks (OSDI 2012, Tables 2 and 3), Dune vs Linux in one run,
//! in the mode of this process (`DUNEGC_DUNE_MODE=ring3`, the default, or `ring0`).
//!
//! - `getpid`: syscall round trip.
//! - `page_fault`: Linux, first touch of an anonymous page; Dune, a guest #PF on a
//!   `PROT_NONE` page whose exception handler unprotects it (the monitor maps it on the retry).
//! - `page_walk`: Dune, `dirty_view().entry(va)` (a walk of the guest page table); Linux has
//!   no user-level page walk, the nearest equivalent is reading one `/proc/self/pagemap` entry.
//! - `trap`: a write-protection fault delivered to a handler that makes the page writable
//!   (Linux: SIGSEGV handler calling mprotect; Dune: the exception handler calling mprotect).
//!   The protect before each fault is not timed.
//! - `appel1`: protect one page, write it (trap, the handler unprotects), repeated.
//! - `appel2`: protect [`N_APPEL2`] pages with one call, write each (trap, the handler
//!   unprotects that page); one iteration is the whole round of [`N_APPEL2`] pages.
//!
//! - `syscall_intercept`: ptrace-style interception of every syscall. Linux: a tracer
//!   (`PTRACE_SYSCALL`) stopping a forked child at each getpid's entry and exit; Dune: a
//!   closure in a `dune_hw::sandbox` at CPL3 making getpids, each intercepted in-process
//!   by a policy callback (counts it, allows it) and forwarded. Both time the loop only
//!   (the sandbox's with `rdtsc` inside it; set-up and exit are not timed).
//!
//! - `exception_skip` (not a paper row): exception delivery alone, a `ud2` skipped by a
//!   handler (Linux: SIGILL handler; Dune: fault closure host-side, or guest fault handler).
//!
//! Every Dune row of page_fault, trap, appel1 and appel2 also has a `<mode>_guest_handler`
//! variant: protection through the guest page table (`dune_hw::pagetable`) and a guest fault
//! handler (`dune_hw::fault::set_guest_fault_handler`) that makes the page writable with
//! `pagetable::protect_page_in_guest` — in pvm/pvm-ring0 without any exit (the paper's
//! in-process path); in ring3 the same handler runs host-side.
//!
//! Dune samples enter Dune, time the work inside with `rdtsc`, and leave (see `dune.rs`).

#![allow(missing_docs)] // criterion_group! generates an undocumented pub fn

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use dune_hw::fault::{self, Fault, FaultAction};
use dune_hw::sandbox::{self, Memory, Sandbox, Syscall, Verdict};
use dune_hw::{pagetable, Exception, Gva, Trap, TrapAction};
use dunegc_benches::dune_timing::{getpid, in_dune, Tsc};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Pages protected at once by `appel2` (the paper's N).
const N_APPEL2: usize = 100;
/// Bytes in a page.
const PAGE: usize = 4096;

/// A fresh anonymous mapping of `n_pages` with `prot`.
fn map_pages(n_pages: usize, prot: i32) -> *mut u8 {
    // SAFETY: a fresh anonymous mapping; callers unmap it.
    let p = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            n_pages * PAGE,
            prot,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED, "mmap of {n_pages} pages");
    p.cast()
}

/// mprotect of `n_pages` at `p`; panics if it fails.
fn protect(p: *mut u8, n_pages: usize, prot: i32) {
    // SAFETY: callers pass pages of their own mappings, with no references into them.
    let r = unsafe { libc::mprotect(p.cast(), n_pages * PAGE, prot) };
    assert_eq!(r, 0, "mprotect");
}

/// One write to `p`, which may trap.
fn poke(p: *mut u8) {
    // SAFETY: `p` is in a mapping of ours; a protection fault is handled and retried.
    unsafe { core::ptr::write_volatile(p, 1) };
}

/// The pages the fault handlers may unprotect: [LO, HI).
static FAULT_LO: AtomicU64 = AtomicU64::new(0);
/// End of the handlers' range (exclusive).
static FAULT_HI: AtomicU64 = AtomicU64::new(0);
/// Faults the handlers resolved (a sanity check that the benchmarks trap).
static FAULTS: AtomicU64 = AtomicU64::new(0);

/// Makes the handlers' range `[p, p + n_pages)`.
fn set_fault_range(p: *mut u8, n_pages: usize) {
    FAULT_LO.store(p as u64, Ordering::SeqCst);
    FAULT_HI.store(p as u64 + (n_pages * PAGE) as u64, Ordering::SeqCst);
}

/// Unprotects (read-write) the page of `addr` if it is in the handlers' range.
fn unprotect_fault(addr: u64) -> bool {
    if addr < FAULT_LO.load(Ordering::Relaxed) || addr >= FAULT_HI.load(Ordering::Relaxed) {
        return false;
    }
    let page = addr & !(PAGE as u64 - 1);
    // SAFETY: a page of the benchmark's own mapping (checked above).
    let r = unsafe {
        libc::mprotect(
            page as *mut libc::c_void,
            PAGE,
            libc::PROT_READ | libc::PROT_WRITE,
        )
    };
    FAULTS.fetch_add(1, Ordering::Relaxed);
    r == 0
}

/// The Linux SIGSEGV handler: unprotects the faulting page, or falls back to the default
/// action (the retry then kills the process) for a fault outside the range.
extern "C" fn on_segv(_sig: libc::c_int, info: *mut libc::siginfo_t, _uc: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
    let addr = unsafe { (*info).si_addr() } as u64;
    if !unprotect_fault(addr) {
        // SAFETY: restores the default action; the faulting access then ends the process.
        unsafe { libc::signal(libc::SIGSEGV, libc::SIG_DFL) };
    }
}

/// Installs (`true`) or removes (`false`) [`on_segv`] as the host SIGSEGV handler.
fn install_segv(on: bool) {
    // SAFETY: a handler that only calls async-signal-safe mprotect/signal; or SIG_DFL.
    unsafe {
        let mut sa: libc::sigaction = core::mem::zeroed();
        sa.sa_sigaction = if on {
            on_segv as *const () as usize
        } else {
            libc::SIG_DFL
        };
        sa.sa_flags = libc::SA_SIGINFO | libc::SA_NODEFER;
        libc::sigaction(libc::SIGSEGV, &sa, core::ptr::null_mut());
    }
}

/// The Dune exception handler: runs host-side on the faulting thread and unprotects the
/// page; the monitor maps it writable into the guest page table on the retry.
fn on_dune_fault(t: &mut Trap) -> TrapAction {
    if unprotect_fault(t.fault_addr) {
        TrapAction::Resume
    } else {
        TrapAction::Unhandled
    }
}

/// The guest fault handler (`fault::set_guest_fault_handler`): runs in the guest without
/// an exit where the mode allows it (pvm, pvm-ring0, ring0; host-side in ring3) and makes
/// the faulting page writable with the lock-free `pagetable::protect_page_in_guest`.
fn on_guest_fault(f: &mut Fault) -> FaultAction {
    let Some(addr) = f.addr else {
        return FaultAction::Unhandled;
    };
    if addr.0 < FAULT_LO.load(Ordering::Relaxed) || addr.0 >= FAULT_HI.load(Ordering::Relaxed) {
        return FaultAction::Unhandled;
    }
    let page = Gva(addr.0 & !(PAGE as u64 - 1));
    match pagetable::protect_page_in_guest(page, libc::PROT_READ | libc::PROT_WRITE) {
        Ok(_) => {
            FAULTS.fetch_add(1, Ordering::Relaxed);
            GUEST_FAULTS.fetch_add(1, Ordering::Relaxed);
            FaultAction::Resume
        }
        Err(_) => FaultAction::Unhandled,
    }
}

/// Faults resolved by [`on_guest_fault`].
static GUEST_FAULTS: AtomicU64 = AtomicU64::new(0);

/// Write-protection through the guest page table (`pagetable::write_protect`: no syscall;
/// in pvm the TLB flush is the LSTAR stub's hypercall, in pvm-ring0 a hypercall in the
/// program, in ring3 a request to the monitor).
fn guest_protect(p: *mut u8, n_pages: usize) {
    pagetable::write_protect(Gva(p as u64), (n_pages * PAGE) as u64).expect("write_protect");
}

/// Benchmarks one protect/trap workload on Linux and in Dune (host path: mprotect + the
/// host-side exception handler; guest path: `pagetable` + the guest fault handler).
/// `body(p, n)` / `guest_body(p, n)` run `n` iterations on the `n_pages` at `p` and return
/// TSC ticks.
fn bench_traps(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    m: &str,
    tsc: Tsc,
    n_pages: usize,
    body: fn(*mut u8, u64) -> u64,
    guest_body: fn(*mut u8, u64) -> u64,
) {
    let p = map_pages(n_pages, libc::PROT_READ | libc::PROT_WRITE);
    for i in 0..n_pages {
        // SAFETY: inside the mapping.
        poke(unsafe { p.add(i * PAGE) });
    }
    set_fault_range(p, n_pages);
    install_segv(true);
    g.bench_function(format!("{name}/linux"), |b| {
        b.iter_custom(|iters| tsc.to_duration(body(p, iters)))
    });
    install_segv(false);
    dune_hw::set_exception_handler(Exception::PageFault, Some(on_dune_fault));
    g.bench_function(format!("{name}/{m}"), |b| {
        b.iter_custom(|iters| in_dune(&tsc, &mut |n| body(p, n), iters))
    });
    dune_hw::set_exception_handler(Exception::PageFault, None);
    fault::set_guest_fault_handler(Exception::PageFault, Some(on_guest_fault));
    g.bench_function(format!("{name}/{m}_guest_handler"), |b| {
        b.iter_custom(|iters| in_dune(&tsc, &mut |n| guest_body(p, n), iters))
    });
    fault::set_guest_fault_handler(Exception::PageFault, None);
    set_fault_range(core::ptr::null_mut(), 0);
    if dune_hw::enter().is_ok() {
        // SAFETY: our mapping, no references into it. Unmapped inside Dune so that the
        // guest page table forgets it too.
        unsafe { libc::munmap(p.cast(), n_pages * PAGE) };
        dune_hw::exit().expect("leave Dune");
    }
}

/// trap: protect (untimed), then one write that traps to the handler, which unprotects.
fn trap_body(p: *mut u8, n: u64) -> u64 {
    let mut ticks = 0;
    for _ in 0..n {
        protect(p, 1, libc::PROT_READ);
        let t = Tsc::now();
        poke(p);
        ticks += Tsc::now() - t;
    }
    ticks
}

/// appel1: protect one page, trap on it, unprotect in the handler; all timed.
fn appel1_body(p: *mut u8, n: u64) -> u64 {
    let t = Tsc::now();
    for _ in 0..n {
        protect(p, 1, libc::PROT_READ);
        poke(p);
    }
    Tsc::now() - t
}

/// appel2: protect N pages at once, then trap on each (the handler unprotects it).
fn appel2_body(p: *mut u8, n: u64) -> u64 {
    let t = Tsc::now();
    for _ in 0..n {
        protect(p, N_APPEL2, libc::PROT_READ);
        for i in 0..N_APPEL2 {
            // SAFETY: inside the N_APPEL2-page mapping.
            poke(unsafe { p.add(i * PAGE) });
        }
    }
    Tsc::now() - t
}

/// trap, guest path: write-protect in the guest table (untimed), one write that traps to
/// the guest fault handler.
fn trap_guest_body(p: *mut u8, n: u64) -> u64 {
    let mut ticks = 0;
    for _ in 0..n {
        guest_protect(p, 1);
        let t = Tsc::now();
        poke(p);
        ticks += Tsc::now() - t;
    }
    ticks
}

/// appel1, guest path: write-protect one page in the guest table, trap, the guest handler
/// unprotects; all timed.
fn appel1_guest_body(p: *mut u8, n: u64) -> u64 {
    let t = Tsc::now();
    for _ in 0..n {
        guest_protect(p, 1);
        poke(p);
    }
    Tsc::now() - t
}

/// appel2, guest path: write-protect N pages with one call, trap on each.
fn appel2_guest_body(p: *mut u8, n: u64) -> u64 {
    let t = Tsc::now();
    for _ in 0..n {
        guest_protect(p, N_APPEL2);
        for i in 0..N_APPEL2 {
            // SAFETY: inside the N_APPEL2-page mapping.
            poke(unsafe { p.add(i * PAGE) });
        }
    }
    Tsc::now() - t
}

/// `n` `ud2`s, each skipped by a handler; returns TSC ticks.
fn ud2_body(n: u64) -> u64 {
    let t = Tsc::now();
    for _ in 0..n {
        // SAFETY: `ud2` raises #UD; the installed handler (SIGILL handler, fault closure or
        // guest fault handler) resumes after it.
        unsafe { core::arch::asm!("ud2", options(nostack)) };
    }
    Tsc::now() - t
}

/// Skips the 2-byte `ud2` (guest fault handler / fault closure).
fn skip_ud2(_f: &mut Fault) -> FaultAction {
    FaultAction::Skip { len_bytes: 2 }
}

/// Linux SIGILL handler: skips the 2-byte `ud2`.
extern "C" fn on_sigill(_sig: libc::c_int, _info: *mut libc::siginfo_t, uc: *mut libc::c_void) {
    let uc = uc.cast::<libc::ucontext_t>();
    // SAFETY: the ucontext the kernel passed to an SA_SIGINFO handler.
    unsafe { (*uc).uc_mcontext.gregs[libc::REG_RIP as usize] += 2 };
}

/// Installs [`on_sigill`] (`true`) or the default action.
fn install_sigill(on: bool) {
    // SAFETY: a handler that only edits its ucontext; or SIG_DFL.
    unsafe {
        let mut sa: libc::sigaction = core::mem::zeroed();
        sa.sa_sigaction = if on {
            on_sigill as *const () as usize
        } else {
            libc::SIG_DFL
        };
        sa.sa_flags = libc::SA_SIGINFO | libc::SA_NODEFER;
        libc::sigaction(libc::SIGILL, &sa, core::ptr::null_mut());
    }
}

/// Linux: a forked child makes `n` getpids under a `PTRACE_SYSCALL` tracer (stopped at
/// each entry and exit); returns the time from the first resume to the child's exit.
fn ptrace_getpids(tsc: &Tsc, n: u64) -> Duration {
    // SAFETY: the child runs only raw syscalls (async-signal-safe) and _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork");
    if pid == 0 {
        // SAFETY: raw syscalls in the child, then _exit; nothing of the parent's state used.
        unsafe {
            libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0);
            libc::raise(libc::SIGSTOP);
            for _ in 0..n {
                libc::syscall(libc::SYS_getpid);
            }
            libc::_exit(0)
        }
    }
    let mut status = 0;
    // SAFETY: waits for our child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert!(libc::WIFSTOPPED(status), "child stopped itself");
    // SAFETY: our stopped tracee.
    unsafe {
        libc::ptrace(
            libc::PTRACE_SETOPTIONS,
            pid,
            0,
            libc::PTRACE_O_TRACESYSGOOD | libc::PTRACE_O_EXITKILL,
        )
    };
    let t = Tsc::now();
    let mut stops = 0u64;
    loop {
        // SAFETY: resume our tracee to its next syscall stop.
        unsafe { libc::ptrace(libc::PTRACE_SYSCALL, pid, 0, 0) };
        // SAFETY: waits for our child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
            break;
        }
        stops += 1;
    }
    let d = tsc.since(t);
    assert!(stops >= 2 * n, "{stops} syscall stops for {n} getpids");
    d
}

/// Dune: `n` getpids from a closure at CPL3 in `sb`, each intercepted by a policy that
/// counts and allows it; returns the loop's time as measured inside the sandbox.
fn sandbox_getpids(sb: &mut Sandbox, tsc: &Tsc, n: u64) -> Duration {
    let (_start, end) = sb.arena();
    // the lowest page of the sandbox's 1 MiB stack: mapped read-write, unused by the loop
    let cell = end - (1 << 20);
    let mut seen = 0u64;
    let mut policy = |c: &Syscall, _m: &Memory<'_>| {
        seen += (c.nr == libc::SYS_getpid as u64) as u64;
        Verdict::Allow
    };
    let out = sb
        .run_closure(
            move || {
                let t = Tsc::now();
                for _ in 0..n {
                    black_box(sandbox::sys::getpid());
                }
                let d = Tsc::now() - t;
                // SAFETY: `cell` is in the sandbox's stack, mapped read-write in its view.
                unsafe { core::ptr::write_volatile(cell as *mut u64, d) };
                0
            },
            &mut policy,
        )
        .expect("sandbox run");
    assert_eq!(out, sandbox::Outcome::Exited(0));
    assert_eq!(seen, n, "every getpid intercepted");
    let (start, _) = sb.arena();
    let off = (cell - start) as usize;
    let ticks = u64::from_le_bytes(sb.arena_mut()[off..off + 8].try_into().expect("8 bytes"));
    tsc.to_duration(ticks)
}

fn bench(c: &mut Criterion) {
    if let Err(e) = dune_hw::enter() {
        eprintln!("SKIPPED dune_paper benches: {e}");
        return;
    }
    dune_hw::exit().expect("leave Dune");
    let choice = dune_hw::mode().expect("initialised");
    let m = choice.mode.name();
    eprintln!("dune mode: {}", choice.reason);
    let ring0 = choice.mode == dune_hw::Mode::Ring0;
    let tsc = Tsc::calibrate();

    let mut g = c.benchmark_group("dune_paper");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(if ring0 { 200 } else { 500 }))
        .measurement_time(Duration::from_secs(2));

    // ---- Table 2: getpid, page fault, page walk ----
    g.bench_function("getpid/linux", |b| b.iter(getpid));
    g.bench_function(format!("getpid/{m}"), |b| {
        b.iter_custom(|iters| {
            in_dune(
                &tsc,
                &mut |n| {
                    let t = Tsc::now();
                    for _ in 0..n {
                        black_box(getpid());
                    }
                    Tsc::now() - t
                },
                iters,
            )
        })
    });

    g.bench_function("page_fault/linux", |b| {
        b.iter_custom(|iters| {
            let p = map_pages(iters as usize, libc::PROT_READ | libc::PROT_WRITE);
            let t = Tsc::now();
            for i in 0..iters as usize {
                // SAFETY: inside the mapping.
                poke(unsafe { p.add(i * PAGE) });
            }
            let d = tsc.to_duration(Tsc::now() - t);
            // SAFETY: our mapping.
            unsafe { libc::munmap(p.cast(), iters as usize * PAGE) };
            d
        })
    });
    // Dune: a PROT_NONE reservation; each first touch is a guest #PF that the monitor
    // cannot resolve, so the exception handler unprotects the page and the monitor maps it
    // into the guest page table on the retry. Chunks keep the reservation small.
    let chunk_pages: u64 = if ring0 { 16 } else { 256 };
    dune_hw::set_exception_handler(Exception::PageFault, Some(on_dune_fault));
    g.bench_function(format!("page_fault/{m}"), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(chunk_pages);
                left -= n;
                let p = map_pages(n as usize, libc::PROT_NONE);
                set_fault_range(p, n as usize);
                total += in_dune(
                    &tsc,
                    &mut |k| {
                        let t = Tsc::now();
                        for i in 0..k as usize {
                            // SAFETY: inside the reservation; the handler unprotects.
                            poke(unsafe { p.add(i * PAGE) });
                        }
                        let d = Tsc::now() - t;
                        // SAFETY: our mapping, no references into it; unmapped inside
                        // Dune so that the guest page table forgets it too.
                        unsafe { libc::munmap(p.cast(), n as usize * PAGE) };
                        d
                    },
                    n,
                );
            }
            set_fault_range(core::ptr::null_mut(), 0);
            total
        })
    });
    dune_hw::set_exception_handler(Exception::PageFault, None);
    // Guest path: a read-write mapping made inside Dune, removed from the guest table with
    // `pagetable::unmap` (untimed); each first touch is a not-present #PF on an entry the
    // program set, which the guest fault handler makes present (no exit in pvm/pvm-ring0;
    // KVM's shadow fault then populates the host page).
    fault::set_guest_fault_handler(Exception::PageFault, Some(on_guest_fault));
    g.bench_function(format!("page_fault/{m}_guest_handler"), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(chunk_pages);
                left -= n;
                total += in_dune(
                    &tsc,
                    &mut |k| {
                        let p = map_pages(k as usize, libc::PROT_READ | libc::PROT_WRITE);
                        pagetable::unmap(Gva(p as u64), k * PAGE as u64).expect("unmap");
                        set_fault_range(p, k as usize);
                        let t = Tsc::now();
                        for i in 0..k as usize {
                            // SAFETY: inside the mapping; the guest handler maps the page.
                            poke(unsafe { p.add(i * PAGE) });
                        }
                        let d = Tsc::now() - t;
                        // SAFETY: our mapping, no references into it (unmapped in Dune).
                        unsafe { libc::munmap(p.cast(), k as usize * PAGE) };
                        d
                    },
                    n,
                );
            }
            set_fault_range(core::ptr::null_mut(), 0);
            total
        })
    });
    fault::set_guest_fault_handler(Exception::PageFault, None);

    // Page walk of a mapped page.
    let page = map_pages(1, libc::PROT_READ | libc::PROT_WRITE);
    poke(page);
    let va = page as u64;
    let pagemap = std::fs::File::open("/proc/self/pagemap").expect("/proc/self/pagemap");
    let pm_fd = std::os::fd::AsRawFd::as_raw_fd(&pagemap);
    g.bench_function("page_walk/linux_pagemap", |b| {
        b.iter(|| {
            let mut e = 0u64;
            // SAFETY: reads one 8-byte entry into `e`.
            let r = unsafe {
                libc::pread(
                    pm_fd,
                    (&mut e as *mut u64).cast(),
                    8,
                    ((va / PAGE as u64) * 8) as libc::off_t,
                )
            };
            black_box((r, e))
        })
    });
    g.bench_function(format!("page_walk/{m}"), |b| {
        b.iter_custom(|iters| {
            in_dune(
                &tsc,
                &mut |n| {
                    let view = dune_hw::dirty_view().expect("in Dune");
                    poke(page); // mapped in the guest page table
                                // each walk's address depends on the previous entry (bit 63 moves
                                // it within the page): latency of one walk, not overlapped walks
                    let mut cur = va;
                    let t = Tsc::now();
                    for _ in 0..n {
                        cur = va + (black_box(view.entry(cur)) >> 63);
                    }
                    let d = Tsc::now() - t;
                    black_box(cur);
                    d
                },
                iters,
            )
        })
    });
    drop(pagemap);
    if dune_hw::enter().is_ok() {
        // SAFETY: our page, no references into it; unmapped inside Dune (see above).
        unsafe { libc::munmap(page.cast(), PAGE) };
        dune_hw::exit().expect("leave Dune");
    }

    // ---- ptrace-style syscall interception ----
    g.bench_function("syscall_intercept/linux_ptrace", |b| {
        b.iter_custom(|iters| ptrace_getpids(&tsc, iters))
    });
    let mut sb = Sandbox::new(sandbox::Config::default()).expect("sandbox");
    g.bench_function(format!("syscall_intercept/{m}_sandbox"), |b| {
        b.iter_custom(|iters| sandbox_getpids(&mut sb, &tsc, iters))
    });
    drop(sb);

    // ---- exception delivery alone: ud2 skipped by a handler (no page-table work) ----
    install_sigill(true);
    g.bench_function("exception_skip/linux", |b| {
        b.iter_custom(|iters| tsc.to_duration(ud2_body(iters)))
    });
    install_sigill(false);
    fault::set_fault_handler(Exception::InvalidOpcode, skip_ud2);
    g.bench_function(format!("exception_skip/{m}"), |b| {
        b.iter_custom(|iters| in_dune(&tsc, &mut ud2_body, iters))
    });
    fault::clear_fault_handler(Exception::InvalidOpcode);
    fault::set_guest_fault_handler(Exception::InvalidOpcode, Some(skip_ud2));
    g.bench_function(format!("exception_skip/{m}_guest_handler"), |b| {
        b.iter_custom(|iters| in_dune(&tsc, &mut ud2_body, iters))
    });
    fault::set_guest_fault_handler(Exception::InvalidOpcode, None);

    // ---- Table 3: trap, appel1, appel2 ----
    bench_traps(&mut g, "trap", m, tsc, 1, trap_body, trap_guest_body);
    bench_traps(&mut g, "appel1", m, tsc, 1, appel1_body, appel1_guest_body);
    bench_traps(
        &mut g,
        &format!("appel2_{N_APPEL2}_pages"),
        m,
        tsc,
        N_APPEL2,
        appel2_body,
        appel2_guest_body,
    );
    eprintln!(
        "dune_paper: {} faults handled ({} by the guest fault handler; guest delivery: {})",
        FAULTS.load(Ordering::Relaxed),
        GUEST_FAULTS.load(Ordering::Relaxed),
        fault::guest_delivery()
    );

    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
