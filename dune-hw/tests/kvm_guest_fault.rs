//! Guest fault handlers (`dune_hw::fault::set_guest_fault_handler`): resolved in the guest
//! without an exit where the mode allows it (`pvm`, `pvm-ring0`, `ring0`), through the host
//! path with the same results in `ring3`; `Unhandled` falls back to the host-side closure,
//! then to the guest's signal handler; a fault inside a handler is a clear fatal error.
//!
//! Handlers are process-wide, so the tests take one lock. Faulting parts that must end the
//! process run in a child (this binary re-executed).

use dune_hw::fault::{self, Fault, FaultAction};
use dune_hw::pagetable;
use dune_hw::{Exception, Gva};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

const CHILD_ENV: &str = "DUNE_HW_GUEST_FAULT_CHILD";
const PAGE: usize = 4096;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// Enters Dune, or prints `SKIPPED` (a failure with `DUNEGC_REQUIRE_KVM=1`).
fn enter_or_skip(test: &str) -> bool {
    match dune_hw::enter() {
        Ok(()) => true,
        Err(e) => {
            if std::env::var("DUNEGC_REQUIRE_KVM").as_deref() == Ok("1") {
                panic!("/dev/kvm required: {e}");
            }
            println!("SKIPPED {test}: {e}");
            false
        }
    }
}

fn mode_line() -> String {
    format!(
        "guest-fault mode: {} guest_delivery={}",
        dune_hw::mode().expect("initialised").mode.name(),
        fault::guest_delivery()
    )
}

fn map_page() -> *mut u8 {
    // SAFETY: a fresh anonymous mapping, unmapped by the test.
    let p = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            PAGE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED);
    p.cast()
}

fn unmap_page(p: *mut u8) {
    // SAFETY: our mapping, no references into it.
    assert_eq!(unsafe { libc::munmap(p.cast(), PAGE) }, 0);
}

static TARGET: AtomicU64 = AtomicU64::new(0);
static HITS: AtomicU64 = AtomicU64::new(0);
static LAST_ERROR: AtomicU64 = AtomicU64::new(0);
static IN_GUEST: AtomicU64 = AtomicU64::new(0);

/// Makes the faulting page of TARGET writable again with the lock-free call.
fn unprotect(f: &mut Fault) -> FaultAction {
    let Some(addr) = f.addr else {
        return FaultAction::Unhandled;
    };
    let page = addr.0 & !(PAGE as u64 - 1);
    if page != TARGET.load(Ordering::Relaxed) {
        return FaultAction::Unhandled;
    }
    HITS.fetch_add(1, Ordering::Relaxed);
    LAST_ERROR.store(f.error_code, Ordering::Relaxed);
    IN_GUEST.store(fault::in_guest_fault_handler() as u64, Ordering::Relaxed);
    match pagetable::protect_page_in_guest(Gva(page), libc::PROT_READ | libc::PROT_WRITE) {
        Ok(_) => FaultAction::Resume,
        Err(_) => FaultAction::Unhandled,
    }
}

#[test]
fn guest_handler_resolves_a_write_protection_fault_without_an_exit() {
    let _s = serial();
    if !enter_or_skip("guest_handler_resolves_a_write_protection_fault_without_an_exit") {
        return;
    }
    println!("{}", mode_line());
    let p = map_page();
    // SAFETY: our page.
    unsafe { core::ptr::write_volatile(p, 1) };
    TARGET.store(p as u64, Ordering::SeqCst);
    HITS.store(0, Ordering::SeqCst);
    fault::set_guest_fault_handler(Exception::PageFault, Some(unprotect));
    const ROUNDS: u64 = 20;
    let mut exits = 0;
    let mut guest = 0;
    let mut steps = 0;
    for i in 0..ROUNDS {
        pagetable::write_protect(Gva(p as u64), PAGE as u64).expect("write_protect");
        let w = pagetable::walk(Gva(p as u64)).unwrap().unwrap();
        assert!(w.present() && !w.writable() && w.set_by_program());
        let before = dune_hw::thread_stats();
        // SAFETY: our page; the write faults and the handler makes it writable.
        unsafe { core::ptr::write_volatile(p, i as u8 + 2) };
        let after = dune_hw::thread_stats();
        exits += after.exits - before.exits;
        guest += after.guest_faults - before.guest_faults;
        steps += after.native_steps - before.native_steps;
        // SAFETY: our page.
        assert_eq!(unsafe { core::ptr::read_volatile(p) }, i as u8 + 2);
    }
    fault::set_guest_fault_handler(Exception::PageFault, None);
    let code = fault::PageFaultCode(LAST_ERROR.load(Ordering::SeqCst));
    assert!(code.present() && code.write(), "error code {code:?}");
    assert_eq!(
        HITS.load(Ordering::SeqCst),
        ROUNDS,
        "one handler call per write"
    );
    if fault::guest_delivery() {
        // ring0 (CPL0 emulated): instructions KVM's emulator lacks (xsave, SSE) are stepped
        // natively, two exits each; no exit delivers the fault itself
        assert_eq!(exits - 2 * steps, 0, "resolved in the guest: no exit");
        assert_eq!(guest, ROUNDS, "counted by the in-guest path");
        assert_eq!(
            IN_GUEST.load(Ordering::SeqCst),
            1,
            "ran on the monitor stack"
        );
    } else {
        assert!(exits >= ROUNDS, "host path: an exit per fault ({exits})");
        assert_eq!(guest, 0);
        assert_eq!(IN_GUEST.load(Ordering::SeqCst), 0, "ran host-side");
    }
    // the page stays writable without further faults
    // SAFETY: our page.
    unsafe { core::ptr::write_volatile(p, 99) };
    assert_eq!(HITS.load(Ordering::SeqCst), ROUNDS);
    unmap_page(p);
    dune_hw::exit().expect("leave");
}

/// Skips a 2-byte `ud2` and changes rax.
fn skip_ud2(f: &mut Fault) -> FaultAction {
    HITS.fetch_add(1, Ordering::Relaxed);
    f.regs.rax = 0x5eed;
    FaultAction::Skip { len_bytes: 2 }
}

fn ud2_with_rax(v: u64) -> u64 {
    let mut rax = v;
    // SAFETY: `ud2` raises #UD; the installed handler skips it (or the test fails).
    unsafe { core::arch::asm!("ud2", inout("rax") rax) };
    rax
}

#[test]
fn guest_handler_skips_an_invalid_opcode() {
    let _s = serial();
    if !enter_or_skip("guest_handler_skips_an_invalid_opcode") {
        return;
    }
    println!("{}", mode_line());
    HITS.store(0, Ordering::SeqCst);
    fault::set_guest_fault_handler(Exception::InvalidOpcode, Some(skip_ud2));
    let before = dune_hw::thread_stats();
    let rax = ud2_with_rax(1);
    let after = dune_hw::thread_stats();
    fault::set_guest_fault_handler(Exception::InvalidOpcode, None);
    assert_eq!(rax, 0x5eed, "the handler's register change took effect");
    assert_eq!(HITS.load(Ordering::SeqCst), 1);
    if fault::guest_delivery() {
        let steps = after.native_steps - before.native_steps;
        assert_eq!(
            after.exits - before.exits,
            2 * steps,
            "skipped in the guest: no exit (ring0: only native steps)"
        );
        assert_eq!(after.guest_faults, before.guest_faults + 1);
    } else {
        assert!(after.exits > before.exits, "host path");
    }
    dune_hw::exit().expect("leave");
}

static CLOSURE_HITS: AtomicU64 = AtomicU64::new(0);
static SIGNAL_HITS: AtomicU64 = AtomicU64::new(0);

fn decline(_f: &mut Fault) -> FaultAction {
    HITS.fetch_add(1, Ordering::Relaxed);
    FaultAction::Unhandled
}

extern "C" fn on_sigill(_sig: libc::c_int, _info: *mut libc::siginfo_t, uc: *mut libc::c_void) {
    SIGNAL_HITS.fetch_add(1, Ordering::Relaxed);
    let uc = uc.cast::<libc::ucontext_t>();
    // SAFETY: the ucontext the (emulated) kernel passed to an SA_SIGINFO handler.
    unsafe { (*uc).uc_mcontext.gregs[libc::REG_RIP as usize] += 2 };
}

fn sigill_action(handler: usize) {
    // SAFETY: a zeroed sigaction with a valid handler or SIG_DFL.
    unsafe {
        let mut sa: libc::sigaction = core::mem::zeroed();
        sa.sa_sigaction = handler;
        sa.sa_flags = libc::SA_SIGINFO;
        assert_eq!(libc::sigaction(libc::SIGILL, &sa, core::ptr::null_mut()), 0);
    }
}

#[test]
fn unhandled_falls_back_to_the_host_closure_then_to_the_signal() {
    let _s = serial();
    if !enter_or_skip("unhandled_falls_back_to_the_host_closure_then_to_the_signal") {
        return;
    }
    println!("{}", mode_line());
    HITS.store(0, Ordering::SeqCst);
    CLOSURE_HITS.store(0, Ordering::SeqCst);
    SIGNAL_HITS.store(0, Ordering::SeqCst);
    fault::set_guest_fault_handler(Exception::InvalidOpcode, Some(decline));
    fault::set_fault_handler(Exception::InvalidOpcode, |f| {
        CLOSURE_HITS.fetch_add(1, Ordering::Relaxed);
        f.regs.rax = 0xc105;
        FaultAction::Skip { len_bytes: 2 }
    });
    let before = dune_hw::thread_stats();
    let rax = ud2_with_rax(1);
    let after = dune_hw::thread_stats();
    assert_eq!(rax, 0xc105, "the closure resumed");
    assert_eq!(HITS.load(Ordering::SeqCst), 1, "guest handler ran once");
    assert_eq!(CLOSURE_HITS.load(Ordering::SeqCst), 1, "then the closure");
    assert!(after.exits > before.exits, "the closure runs host-side");
    assert_eq!(after.guest_faults, before.guest_faults);

    // no closure: the guest's SIGILL handler (installed inside Dune: it runs in the guest)
    fault::clear_fault_handler(Exception::InvalidOpcode);
    sigill_action(on_sigill as *const () as usize);
    let rax = ud2_with_rax(7);
    sigill_action(libc::SIG_DFL);
    fault::set_guest_fault_handler(Exception::InvalidOpcode, None);
    assert_eq!(rax, 7, "the signal handler only skipped");
    assert_eq!(
        HITS.load(Ordering::SeqCst),
        2,
        "guest handler declined again"
    );
    assert_eq!(CLOSURE_HITS.load(Ordering::SeqCst), 1, "closure removed");
    assert_eq!(SIGNAL_HITS.load(Ordering::SeqCst), 1, "then the signal");
    dune_hw::exit().expect("leave");
}

/// A guest handler that faults itself.
fn fault_again(_f: &mut Fault) -> FaultAction {
    // SAFETY: deliberately invalid: a fault inside a guest fault handler must end the
    // process with a clear message.
    unsafe { core::arch::asm!("ud2") };
    FaultAction::Resume
}

fn run_child(test: &str, env: &[(&str, &str)]) -> std::process::Output {
    let exe = std::env::current_exe().expect("test binary");
    let mut c = Command::new(exe);
    c.args(["--exact", test, "--nocapture", "--test-threads=1"]);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run child")
}

#[test]
fn fault_inside_a_guest_handler_is_a_clear_fatal_error() {
    const NAME: &str = "fault_inside_a_guest_handler_is_a_clear_fatal_error";
    if std::env::var(CHILD_ENV).is_ok() {
        if enter_or_skip(NAME) {
            println!("{}", mode_line());
            fault::set_guest_fault_handler(Exception::InvalidOpcode, Some(fault_again));
            ud2_with_rax(0);
            println!("not reached");
        }
        return;
    }
    let out = run_child(NAME, &[(CHILD_ENV, "1")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if let Some(l) = stdout.lines().find(|l| l.starts_with("SKIPPED")) {
        println!("{l}");
        return;
    }
    assert!(!out.status.success(), "{stdout} {stderr}");
    assert!(!stdout.contains("not reached"), "{stdout}");
    if stdout.contains("guest_delivery=true") {
        assert!(
            stderr.contains("exception inside a guest fault handler: #UD (vector 6)")
                && stderr.contains("while handling #UD (vector 6)")
                && stderr.contains("rip="),
            "clear report with both frames and a register dump: {stderr}"
        );
    } else {
        // host path (ring-3): the handler's ud2 is a host SIGILL of the exit loop
        use std::os::unix::process::ExitStatusExt;
        assert!(
            stdout.contains("guest_delivery=false"),
            "mode printed: {stdout}"
        );
        assert_eq!(out.status.signal(), Some(libc::SIGILL), "{stdout} {stderr}");
    }
}

#[test]
fn ring3_gives_the_same_results_through_the_host_path() {
    for test in [
        "guest_handler_resolves_a_write_protection_fault_without_an_exit",
        "guest_handler_skips_an_invalid_opcode",
        "unhandled_falls_back_to_the_host_closure_then_to_the_signal",
    ] {
        let out = run_child(test, &[("DUNEGC_DUNE_MODE", "ring3")]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if let Some(l) = stdout.lines().find(|l| l.starts_with("SKIPPED")) {
            println!("{l}");
            return;
        }
        assert!(out.status.success(), "{test} in ring3: {stdout} {stderr}");
        assert!(
            stdout.contains("guest-fault mode: ring3 guest_delivery=false"),
            "{test} ran in ring3 on the host path: {stdout}"
        );
        assert!(stdout.contains("1 passed"), "{test}: {stdout}");
    }
}

/// A guest handler that makes a syscall (forbidden: in `pvm` it runs in supervisor mode).
fn syscall_in_handler(f: &mut Fault) -> FaultAction {
    // SAFETY: getpid has no arguments; deliberately called from a guest handler.
    unsafe { libc::syscall(libc::SYS_getpid) };
    f.regs.rax = 0x5ca1;
    FaultAction::Skip { len_bytes: 2 }
}

#[test]
fn syscall_inside_a_guest_handler_is_a_clear_fatal_error_in_pvm() {
    const NAME: &str = "syscall_inside_a_guest_handler_is_a_clear_fatal_error_in_pvm";
    if std::env::var(CHILD_ENV).is_ok() {
        if enter_or_skip(NAME) {
            println!("{}", mode_line());
            fault::set_guest_fault_handler(Exception::InvalidOpcode, Some(syscall_in_handler));
            let rax = ud2_with_rax(0);
            println!("resumed rax={rax:#x}");
        }
        return;
    }
    let out = run_child(NAME, &[(CHILD_ENV, "1")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if let Some(l) = stdout.lines().find(|l| l.starts_with("SKIPPED")) {
        println!("{l}");
        return;
    }
    if stdout.contains("guest-fault mode: pvm guest_delivery=true") {
        assert!(!out.status.success(), "{stdout} {stderr}");
        assert!(
            stderr.contains("syscall from a guest fault handler"),
            "clear report: {stderr}"
        );
        assert!(!stdout.contains("resumed"), "{stdout}");
    } else {
        // pvm-ring0 / ring0 (the program's own privilege level) and ring3 (host-side): the
        // rule is the same, but the call happens to work
        assert!(out.status.success(), "{stdout} {stderr}");
        assert!(stdout.contains("resumed rax=0x5ca1"), "{stdout}");
    }
}

static THREAD_HITS: AtomicU64 = AtomicU64::new(0);
static PAGES_LO: AtomicU64 = AtomicU64::new(0);
static PAGES_HI: AtomicU64 = AtomicU64::new(0);

/// Unprotects any page of [PAGES_LO, PAGES_HI).
fn unprotect_range(f: &mut Fault) -> FaultAction {
    let Some(addr) = f.addr else {
        return FaultAction::Unhandled;
    };
    if addr.0 < PAGES_LO.load(Ordering::Relaxed) || addr.0 >= PAGES_HI.load(Ordering::Relaxed) {
        return FaultAction::Unhandled;
    }
    THREAD_HITS.fetch_add(1, Ordering::Relaxed);
    let page = Gva(addr.0 & !(PAGE as u64 - 1));
    match pagetable::protect_page_in_guest(page, libc::PROT_READ | libc::PROT_WRITE) {
        Ok(_) => FaultAction::Resume,
        Err(_) => FaultAction::Unhandled,
    }
}

#[test]
fn threads_take_guest_faults_on_their_own_exception_stacks() {
    let _s = serial();
    if !enter_or_skip("threads_take_guest_faults_on_their_own_exception_stacks") {
        return;
    }
    println!("{}", mode_line());
    const THREADS: usize = 4;
    const ROUNDS: u64 = 50;
    let len = THREADS * PAGE;
    // SAFETY: a fresh anonymous mapping, unmapped below.
    let base = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    } as u64;
    assert_ne!(base as *mut libc::c_void, libc::MAP_FAILED);
    PAGES_LO.store(base, Ordering::SeqCst);
    PAGES_HI.store(base + len as u64, Ordering::SeqCst);
    THREAD_HITS.store(0, Ordering::SeqCst);
    fault::set_guest_fault_handler(Exception::PageFault, Some(unprotect_range));
    let results: Vec<(u64, u64)> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..THREADS)
            .map(|t| {
                s.spawn(move || {
                    let p = (base + (t * PAGE) as u64) as *mut u64;
                    let mut guest = 0;
                    for i in 0..ROUNDS {
                        pagetable::write_protect(Gva(p as u64), PAGE as u64)
                            .expect("write_protect");
                        let before = dune_hw::thread_stats();
                        // SAFETY: this thread's page of the mapping.
                        unsafe { core::ptr::write_volatile(p, i * 1000 + t as u64) };
                        guest += dune_hw::thread_stats().guest_faults - before.guest_faults;
                        // SAFETY: as above.
                        assert_eq!(unsafe { core::ptr::read_volatile(p) }, i * 1000 + t as u64);
                    }
                    (guest, dune_hw::in_dune() as u64)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().expect("thread")).collect()
    });
    fault::set_guest_fault_handler(Exception::PageFault, None);
    assert_eq!(THREAD_HITS.load(Ordering::SeqCst), THREADS as u64 * ROUNDS);
    for (t, (guest, in_dune)) in results.iter().enumerate() {
        assert_eq!(*in_dune, 1, "thread {t} ran in Dune");
        let want = if fault::guest_delivery() { ROUNDS } else { 0 };
        assert_eq!(*guest, want, "thread {t}: faults resolved in the guest");
    }
    // SAFETY: our mapping, no references into it.
    assert_eq!(unsafe { libc::munmap(base as *mut libc::c_void, len) }, 0);
    dune_hw::exit().expect("leave");
}

/// Two full flushes of one vCPU in one exit must not cancel: in ring-3 the monitor flushes by
/// changing CR3, and once a vCPU has run KVM applies only the last CR3 written before the
/// next entry, so toggling one bit twice (the flush hypercall of `write_protect`, then the
/// flush for another thread's generation bump before the entry) flushed nothing and the
/// write after `write_protect` went through a stale writable translation. A host thread
/// outside Dune bumps the flush generation all the time, so nearly every flush hypercall is
/// followed by a generation flush in the same exit.
#[test]
fn flushes_in_one_exit_do_not_cancel() {
    let _s = serial();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    // outside Dune: `flush_all` only bumps the generation (every vCPU flushes at its next entry)
    let hammer = std::thread::spawn(move || {
        while !stop2.load(Ordering::Relaxed) {
            dune_hw::tlb::flush_all();
            std::hint::spin_loop();
        }
    });
    let stop_hammer = || {
        stop.store(true, Ordering::Relaxed);
    };
    if !enter_or_skip("flushes_in_one_exit_do_not_cancel") {
        stop_hammer();
        hammer.join().expect("hammer");
        return;
    }
    println!("{}", mode_line());
    const ROUNDS: u64 = 1000;
    let p = map_page();
    PAGES_LO.store(p as u64, Ordering::SeqCst);
    PAGES_HI.store(p as u64 + PAGE as u64, Ordering::SeqCst);
    THREAD_HITS.store(0, Ordering::SeqCst);
    fault::set_guest_fault_handler(Exception::PageFault, Some(unprotect_range));
    let mut missed = 0u64;
    for i in 0..ROUNDS {
        let before = THREAD_HITS.load(Ordering::SeqCst);
        pagetable::write_protect(Gva(p as u64), PAGE as u64).expect("write_protect");
        // SAFETY: our page.
        unsafe { core::ptr::write_volatile(p.cast::<u64>(), i) };
        if THREAD_HITS.load(Ordering::SeqCst) == before {
            missed += 1;
        }
        // SAFETY: as above.
        assert_eq!(unsafe { core::ptr::read_volatile(p.cast::<u64>()) }, i);
    }
    fault::set_guest_fault_handler(Exception::PageFault, None);
    stop_hammer();
    hammer.join().expect("hammer");
    let flushes = dune_hw::thread_stats().tlb_flushes;
    // SAFETY: our mapping, no references into it.
    assert_eq!(unsafe { libc::munmap(p.cast(), PAGE) }, 0);
    dune_hw::exit().expect("leave");
    println!(
        "writes after write_protect that did not fault: {missed}/{ROUNDS} ({flushes} flushes)"
    );
    assert_eq!(
        missed, 0,
        "writes after write_protect that did not fault, of {ROUNDS}"
    );
}
