//! A program that runs in Dune from `main` (enter_process): signal handlers run inside the
//! guest (interval timer on a busy loop, SIGUSR1 from another process interrupting a blocked
//! read, a page fault recovered by a SIGSEGV handler), the exception-handler API (demand
//! paging, #UD, #BP, #DE, #GP), and munmap by one thread seen by another thread's vCPU.
//! Needs /dev/kvm; no libtest harness (every thread of the process is a Dune thread).

use dune_hw::{DuneError, Exception, Trap, TrapAction};
use std::io::Read;
use std::os::fd::FromRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn main() {
    // a collector-style stop handler installed on the host before entering: it runs on the
    // host side of a Dune thread and reads the guest registers through dune-hw
    install_host_stop_handler();
    match dune_hw::enter_process() {
        Ok(()) => {}
        Err(e @ (DuneError::Kmod(_) | DuneError::Unsupported { .. })) => {
            if std::env::var("DUNEGC_REQUIRE_KVM").as_deref() == Ok("1") {
                panic!("kvm_process: /dev/kvm required (DUNEGC_REQUIRE_KVM=1) but: {e}");
            }
            println!("SKIPPED kvm_process: {e}");
            return;
        }
        Err(e) => panic!("enter_process failed: {e}"),
    }
    assert!(dune_hw::process_wide());
    assert!(
        dune_hw::every_thread_in_dune(),
        "{} in Dune",
        dune_hw::n_threads_in_dune()
    );
    let tests: [(&str, fn()); 17] = [
        (
            "interval_timer_hits_a_busy_loop",
            interval_timer_hits_a_busy_loop,
        ),
        (
            "sigusr1_from_another_process_interrupts_read",
            sigusr1_from_another_process_interrupts_read,
        ),
        (
            "handler_runs_while_a_thread_waits_on_a_condvar",
            handler_runs_while_a_thread_waits_on_a_condvar,
        ),
        (
            "sigsegv_handler_recovers_from_a_guest_page_fault",
            sigsegv_handler_recovers_from_a_guest_page_fault,
        ),
        (
            "exception_handlers_demand_paging_and_traps",
            exception_handlers_demand_paging_and_traps,
        ),
        (
            "munmap_in_one_thread_faults_in_another",
            munmap_in_one_thread_faults_in_another,
        ),
        (
            "stop_a_thread_in_the_guest_and_read_its_registers",
            stop_a_thread_in_the_guest_and_read_its_registers,
        ),
        (
            "host_side_stop_of_four_threads_clear_dirty_and_flush_on_resume",
            host_side_stop_of_four_threads_clear_dirty_and_flush_on_resume,
        ),
        (
            "signal_at_entry_of_a_blocking_read_is_never_lost",
            signal_at_entry_of_a_blocking_read_is_never_lost,
        ),
        (
            "signal_at_entry_of_a_futex_wait_is_never_lost",
            signal_at_entry_of_a_futex_wait_is_never_lost,
        ),
        (
            "realtime_signals_to_a_thread_are_queued_in_order_with_their_values",
            realtime_signals_to_a_thread_are_queued_in_order_with_their_values,
        ),
        (
            "realtime_signals_to_the_process_are_queued_up_to_rlimit_sigpending",
            realtime_signals_to_the_process_are_queued_up_to_rlimit_sigpending,
        ),
        (
            "realtime_signals_to_a_busy_thread_are_not_merged",
            realtime_signals_to_a_busy_thread_are_not_merged,
        ),
        (
            "a_handler_mask_defers_another_recorded_signal",
            a_handler_mask_defers_another_recorded_signal,
        ),
        (
            "sa_restart_from_inside_dune_holds_for_a_thread_outside",
            sa_restart_from_inside_dune_holds_for_a_thread_outside,
        ),
        (
            "sigsuspend_handler_runs_with_the_temporary_mask",
            sigsuspend_handler_runs_with_the_temporary_mask,
        ),
        (
            "forks_under_a_signal_storm_inherit_the_guest_mask",
            forks_under_a_signal_storm_inherit_the_guest_mask,
        ),
    ];
    // `cargo test --test kvm_process -- <substring>` runs the matching tests only
    let filter = std::env::args().nth(1).filter(|a| !a.starts_with('-'));
    for (name, t) in tests {
        if filter.as_deref().is_some_and(|f| !name.contains(f)) {
            continue;
        }
        let t0 = Instant::now();
        t();
        println!(
            "test {name} ... ok ({:.1} ms)",
            t0.elapsed().as_secs_f64() * 1e3
        );
    }
    let in_dune = dune_hw::in_dune();
    let all_in = dune_hw::every_thread_in_dune();
    let stats = dune_hw::exit().expect("exit");
    assert!(all_in, "{} threads in Dune", dune_hw::n_threads_in_dune());
    assert!(in_dune);
    println!("main thread stats {stats:?}");
}

type SigInfoHandler = extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void);

fn install(sig: libc::c_int, h: SigInfoHandler, flags: libc::c_int) {
    // SAFETY: a zeroed sigaction with a valid handler and flags; inside Dune this is the
    // monitor's emulated rt_sigaction.
    unsafe {
        let mut sa: libc::sigaction = core::mem::zeroed();
        sa.sa_sigaction = h as usize;
        sa.sa_flags = libc::SA_SIGINFO | flags;
        assert_eq!(libc::sigaction(sig, &sa, core::ptr::null_mut()), 0);
    }
}

fn uninstall(sig: libc::c_int) {
    // SAFETY: restores the default action.
    unsafe { libc::signal(sig, libc::SIG_DFL) };
}

// ---- SIGALRM interval timer on a busy loop ----
static TICKS: AtomicU64 = AtomicU64::new(0);
static TICK_IN_GUEST_REGS_NONE: AtomicU64 = AtomicU64::new(0);

extern "C" fn on_tick(_s: libc::c_int, _i: *mut libc::siginfo_t, _uc: *mut libc::c_void) {
    if dune_hw::guest_regs().is_none() {
        TICK_IN_GUEST_REGS_NONE.fetch_add(1, Ordering::SeqCst);
    }
    // clobber vector registers: the interrupted loop's floating point must survive
    let x = std::hint::black_box(3.25f64);
    std::hint::black_box(x * x + 1.0);
    TICKS.fetch_add(1, Ordering::SeqCst);
}

fn set_timer(interval_us: i64) {
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: interval_us,
    };
    let it = libc::itimerval {
        it_interval: tv,
        it_value: tv,
    };
    assert_eq!(
        // SAFETY: setitimer reads one itimerval.
        unsafe { libc::setitimer(libc::ITIMER_REAL, &it, core::ptr::null_mut()) },
        0
    );
}

fn interval_timer_hits_a_busy_loop() {
    install(libc::SIGALRM, on_tick, libc::SA_RESTART);
    set_timer(5_000);
    let t0 = Instant::now();
    // busy loop with live floating-point state and no syscalls
    let mut acc = 0.0f64;
    let mut i = 0u64;
    while TICKS.load(Ordering::SeqCst) < 5 && t0.elapsed() < Duration::from_secs(10) {
        for _ in 0..1000 {
            acc += (i as f64) * 0.5;
            i += 1;
        }
    }
    set_timer(0);
    uninstall(libc::SIGALRM);
    let expect = (0..i).map(|k| k as f64 * 0.5).sum::<f64>();
    assert!(
        TICKS.load(Ordering::SeqCst) >= 5,
        "timer ticks {}",
        TICKS.load(Ordering::SeqCst)
    );
    assert_eq!(
        acc, expect,
        "floating-point state preserved across handlers"
    );
    assert_eq!(
        TICK_IN_GUEST_REGS_NONE.load(Ordering::SeqCst),
        TICKS.load(Ordering::SeqCst),
        "handlers ran inside the guest (guest_regs() is None there)"
    );
    assert!(dune_hw::thread_stats().signals >= 5);
    // cost of one signal sent to this thread and handled in the guest
    install(libc::SIGALRM, on_tick, 0);
    // SAFETY: getpid/gettid have no arguments.
    let (pid, tid) = unsafe { (libc::getpid(), libc::syscall(libc::SYS_gettid)) };
    let (s0, t0) = (dune_hw::thread_stats(), Instant::now());
    for _ in 0..100 {
        // SAFETY: tgkill to this very thread with a handled signal.
        unsafe { libc::syscall(libc::SYS_tgkill, pid, tid, libc::SIGALRM) };
    }
    let (s1, dt) = (dune_hw::thread_stats(), t0.elapsed());
    uninstall(libc::SIGALRM);
    assert_eq!(s1.signals - s0.signals, 100);
    println!(
        "  signal round trip {:.1} us, {:.2} exits, {:.2} syscalls each",
        dt.as_secs_f64() * 1e4,
        (s1.exits - s0.exits) as f64 / 100.0,
        (s1.syscalls - s0.syscalls) as f64 / 100.0
    );
}

// ---- SIGUSR1 from another process ----
static USR1: AtomicU64 = AtomicU64::new(0);
static USR1_PID: AtomicU64 = AtomicU64::new(0);

extern "C" fn on_usr1(_s: libc::c_int, info: *mut libc::siginfo_t, _uc: *mut libc::c_void) {
    // SAFETY: a valid siginfo for a kill(2)-sent signal.
    let pid = unsafe { (*info).si_pid() };
    USR1_PID.store(pid as u64, Ordering::SeqCst);
    USR1.fetch_add(1, Ordering::SeqCst);
}

fn block_usr1_here() {
    // SAFETY: sigset manipulation on locals; pthread_sigmask affects this thread only.
    unsafe {
        let mut set: libc::sigset_t = core::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGUSR1);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, core::ptr::null_mut());
    }
}

fn sigusr1_from_another_process_interrupts_read() {
    let mut fds = [0i32; 2];
    // SAFETY: pipe writes two fds.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: fds[0] is ours, moved into the File.
    let mut rd = unsafe { std::fs::File::from_raw_fd(fds[0]) };
    let pid = std::process::id();
    let kill_soon = move || {
        block_usr1_here(); // the signal is for the reader
        std::thread::sleep(Duration::from_millis(30));
        let st = std::process::Command::new("kill")
            .args(["-USR1", &pid.to_string()])
            .status()
            .expect("spawn kill");
        assert!(st.success());
    };
    // 1. without SA_RESTART: the blocked read returns EINTR after the handler
    install(libc::SIGUSR1, on_usr1, 0);
    let killer = std::thread::spawn(kill_soon);
    let mut b = [0u8; 1];
    let r = rd.read(&mut b);
    killer.join().unwrap();
    assert_eq!(r.unwrap_err().kind(), std::io::ErrorKind::Interrupted);
    assert_eq!(USR1.load(Ordering::SeqCst), 1);
    let sender = USR1_PID.load(Ordering::SeqCst);
    assert!(
        sender != 0 && sender != pid as u64,
        "si_pid {sender}: another process"
    );
    // 2. with SA_RESTART: the handler runs, the read restarts and gets the data written later
    install(libc::SIGUSR1, on_usr1, libc::SA_RESTART);
    let wfd = fds[1];
    let killer = std::thread::spawn(move || {
        kill_soon();
        while USR1.load(Ordering::SeqCst) < 2 {
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(10));
        // SAFETY: writes one byte from a local to our pipe.
        unsafe { libc::write(wfd, b"x".as_ptr().cast(), 1) };
    });
    let r = rd.read(&mut b);
    killer.join().unwrap();
    assert_eq!(r.unwrap(), 1);
    assert_eq!(&b, b"x");
    assert_eq!(USR1.load(Ordering::SeqCst), 2);
    uninstall(libc::SIGUSR1);
    // SAFETY: closing our write end.
    unsafe { libc::close(wfd) };
}

// ---- a SIGSEGV handler recovering from a guest page fault ----
static SEGV_ADDR: AtomicU64 = AtomicU64::new(0);

extern "C" fn on_segv(_s: libc::c_int, info: *mut libc::siginfo_t, uc: *mut libc::c_void) {
    // SAFETY: a valid siginfo/ucontext for a SIGSEGV from a fault.
    unsafe {
        SEGV_ADDR.store((*info).si_addr() as u64, Ordering::SeqCst);
        let uc = uc as *mut libc::ucontext_t;
        // skip the faulting 3-byte load (mov rax, [rdi]) and return a marker in rax
        (*uc).uc_mcontext.gregs[libc::REG_RIP as usize] += 3;
        (*uc).uc_mcontext.gregs[libc::REG_RAX as usize] = 0xdead;
    }
}

fn load_u64(p: u64) -> u64 {
    let v: u64;
    // SAFETY: the caller's address; a fault there is what the tests provoke (the handlers
    // skip exactly these 3 bytes: 48 8b 07).
    unsafe {
        core::arch::asm!(".byte 0x48, 0x8b, 0x07", in("rdi") p, out("rax") v, options(nostack))
    };
    v
}

fn sigsegv_handler_recovers_from_a_guest_page_fault() {
    install(libc::SIGSEGV, on_segv, libc::SA_NODEFER);
    // SAFETY: a fresh PROT_NONE page.
    let p = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            4096,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    } as u64;
    let v = load_u64(p + 8);
    assert_eq!(v, 0xdead);
    assert_eq!(SEGV_ADDR.load(Ordering::SeqCst), p + 8);
    let v = load_u64(0x10);
    assert_eq!(v, 0xdead);
    assert_eq!(SEGV_ADDR.load(Ordering::SeqCst), 0x10);
    uninstall(libc::SIGSEGV);
    // SAFETY: our page.
    unsafe { libc::munmap(p as *mut libc::c_void, 4096) };
}

// ---- the exception-handler API ----
static DEMAND_BASE: AtomicU64 = AtomicU64::new(0);
static DEMAND_FAULTS: AtomicU64 = AtomicU64::new(0);
static TRAPS: AtomicU64 = AtomicU64::new(0);

fn demand_pager(t: &mut Trap) -> TrapAction {
    let base = DEMAND_BASE.load(Ordering::SeqCst);
    if t.fault_addr < base || t.fault_addr >= base + (64 << 12) {
        return TrapAction::Unhandled;
    }
    let page = t.fault_addr & !0xfff;
    // SAFETY: replaces one page of our own PROT_NONE reservation.
    let r = unsafe {
        libc::mmap(
            page as *mut libc::c_void,
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
            -1,
            0,
        )
    };
    if r as u64 != page {
        return TrapAction::Unhandled;
    }
    // SAFETY: the page was just mapped writable.
    unsafe { *(page as *mut u64) = page ^ 0x5a5a };
    DEMAND_FAULTS.fetch_add(1, Ordering::SeqCst);
    TrapAction::Resume
}

fn skip_trap(t: &mut Trap) -> TrapAction {
    TRAPS.fetch_add(1 << (4 * t.vector as u64 / 3).min(60), Ordering::SeqCst);
    match t.vector {
        6 => t.rip += 2, // ud2
        0 => {
            t.rip += 3; // div rcx (48 f7 f1)
            t.gprs[0] = 77;
        }
        13 => {
            t.rip += 3; // mov rax, [rdi] with a non-canonical rdi
            t.gprs[0] = 0x6b;
        }
        3 => {} // int3: rip is already after it
        _ => return TrapAction::Unhandled,
    }
    TrapAction::Resume
}

fn exception_handlers_demand_paging_and_traps() {
    // SAFETY: a fresh PROT_NONE reservation of 64 pages.
    let base = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            64 << 12,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    } as u64;
    DEMAND_BASE.store(base, Ordering::SeqCst);
    dune_hw::set_exception_handler(Exception::PageFault, Some(demand_pager));
    let mut sum = 0u64;
    for i in 0..64u64 {
        let page = base + (i << 12);
        sum = sum.wrapping_add(load_u64(page));
        assert_eq!(load_u64(page), page ^ 0x5a5a);
    }
    dune_hw::set_exception_handler(Exception::PageFault, None);
    assert_eq!(DEMAND_FAULTS.load(Ordering::SeqCst), 64);
    assert_eq!(
        sum,
        (0..64u64).fold(0u64, |s, i| s.wrapping_add((base + (i << 12)) ^ 0x5a5a))
    );
    // SAFETY: our reservation.
    unsafe { libc::munmap(base as *mut libc::c_void, 64 << 12) };

    for e in [
        Exception::InvalidOpcode,
        Exception::DivideError,
        Exception::GeneralProtection,
        Exception::Breakpoint,
    ] {
        dune_hw::set_exception_handler(e, Some(skip_trap));
    }
    // SAFETY: each instruction traps and the handler resumes after it.
    unsafe { core::arch::asm!("ud2") };
    let q: u64;
    // SAFETY: as above (divide by zero; the handler sets rax = 77).
    unsafe {
        core::arch::asm!(".byte 0x48, 0xf7, 0xf1", inout("rax") 5u64 => q, inout("rdx") 0u64 => _, in("rcx") 0u64, options(nostack))
    };
    let g = load_u64(0x8000_0000_0000_0000); // non-canonical: #GP
                                             // SAFETY: int3 traps; the handler resumes after it.
    unsafe { core::arch::asm!("int3") };
    for e in [
        Exception::InvalidOpcode,
        Exception::DivideError,
        Exception::GeneralProtection,
        Exception::Breakpoint,
    ] {
        dune_hw::set_exception_handler(e, None);
    }
    assert_eq!(q, 77);
    assert_eq!(g, 0x6b);
    let t = TRAPS.load(Ordering::SeqCst);
    let count = |v: u64| (t >> (4 * v / 3).min(60)) & 0xf;
    assert_eq!(
        (count(6), count(0), count(13), count(3)),
        (1, 1, 1, 1),
        "traps {t:#x}"
    );
}

// ---- munmap by one thread, seen by another thread's vCPU ----
static STOP_READER: AtomicBool = AtomicBool::new(false);
static UNMAPPED: AtomicBool = AtomicBool::new(false);
static READER_FAULTS: AtomicU64 = AtomicU64::new(0);
static AFTER_UNMAP_FAULTED: AtomicBool = AtomicBool::new(false);
static WATCH: AtomicU64 = AtomicU64::new(0);

fn count_watch_fault(t: &mut Trap) -> TrapAction {
    if t.fault_addr & !0xfff != WATCH.load(Ordering::SeqCst) {
        return TrapAction::Unhandled;
    }
    READER_FAULTS.fetch_add(1, Ordering::SeqCst);
    t.rip += 3;
    t.gprs[0] = 0;
    TrapAction::Resume
}

fn munmap_in_one_thread_faults_in_another() {
    // SAFETY: a fresh RW page.
    let p = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    } as u64;
    // SAFETY: our page.
    unsafe { *(p as *mut u64) = 0x1234 };
    WATCH.store(p, Ordering::SeqCst);
    dune_hw::set_exception_handler(Exception::PageFault, Some(count_watch_fault));
    let reader = std::thread::spawn(move || {
        let mut reads = 0u64;
        // the reader's vCPU caches the translation: it reads without exits
        while !UNMAPPED.load(Ordering::SeqCst) {
            assert!(matches!(load_u64(p), 0x1234 | 0));
            reads += 1;
        }
        // munmap has returned in the other thread: this access must fault
        let before = READER_FAULTS.load(Ordering::SeqCst);
        let v = load_u64(p);
        AFTER_UNMAP_FAULTED.store(
            READER_FAULTS.load(Ordering::SeqCst) > before && v == 0,
            Ordering::SeqCst,
        );
        while !STOP_READER.load(Ordering::SeqCst) {
            std::hint::spin_loop();
        }
        reads
    });
    std::thread::sleep(Duration::from_millis(20));
    // SAFETY: our page; the reader's accesses after this are expected to fault.
    assert_eq!(unsafe { libc::munmap(p as *mut libc::c_void, 4096) }, 0);
    UNMAPPED.store(true, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(5));
    STOP_READER.store(true, Ordering::SeqCst);
    let reads = reader.join().unwrap();
    dune_hw::set_exception_handler(Exception::PageFault, None);
    assert!(reads > 0);
    assert!(
        AFTER_UNMAP_FAULTED.load(Ordering::SeqCst),
        "no stale translation after munmap ({reads} reads before)"
    );
}

// ---- a collector-style stop: signal a thread busy in the guest, read its registers ----
static STOP_ACK: AtomicU64 = AtomicU64::new(0);
static STOP_RSP: AtomicU64 = AtomicU64::new(0);
static STOP_R12: AtomicU64 = AtomicU64::new(0);
static RESUME: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop(_s: libc::c_int, _i: *mut libc::siginfo_t, uc: *mut libc::c_void) {
    // inside the guest: the ucontext holds the interrupted guest registers
    let uc = uc as *const libc::ucontext_t;
    // SAFETY: a valid ucontext from the monitor's signal frame.
    unsafe {
        STOP_RSP.store(
            (*uc).uc_mcontext.gregs[libc::REG_RSP as usize] as u64,
            Ordering::SeqCst,
        );
        STOP_R12.store(
            (*uc).uc_mcontext.gregs[libc::REG_R12 as usize] as u64,
            Ordering::SeqCst,
        );
    }
    STOP_ACK.fetch_add(1, Ordering::SeqCst);
    while !RESUME.load(Ordering::SeqCst) {
        std::hint::spin_loop();
    }
}

fn stop_a_thread_in_the_guest_and_read_its_registers() {
    install(libc::SIGPWR, on_stop, libc::SA_RESTART);
    let (tx, rx) = std::sync::mpsc::channel();
    let worker = std::thread::spawn(move || {
        let marker = 0u64;
        let here = &marker as *const u64 as u64;
        // SAFETY: pthread_self has no preconditions.
        tx.send((unsafe { libc::pthread_self() } as u64, here))
            .unwrap();
        // spin with a known value in r12 until stopped and resumed
        // SAFETY: the loop only reads an atomic's address and compares.
        unsafe {
            core::arch::asm!(
                "mov r12, 0x5151",
                "2:",
                "cmp byte ptr [{flag}], 0",
                "je 2b",
                flag = in(reg) RESUME.as_ptr(),
                out("r12") _,
            )
        };
        std::hint::black_box(&marker);
    });
    let (thread, here) = rx.recv().unwrap();
    std::thread::sleep(Duration::from_millis(10));
    assert_eq!(
        // SAFETY: the worker is alive (joined below).
        unsafe { libc::pthread_kill(thread as libc::pthread_t, libc::SIGPWR) },
        0
    );
    let t0 = Instant::now();
    while STOP_ACK.load(Ordering::SeqCst) == 0 && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(1));
    }
    let stop_latency = t0.elapsed();
    RESUME.store(true, Ordering::SeqCst);
    worker.join().unwrap();
    uninstall(libc::SIGPWR);
    assert_eq!(STOP_ACK.load(Ordering::SeqCst), 1);
    assert_eq!(STOP_R12.load(Ordering::SeqCst), 0x5151);
    let rsp = STOP_RSP.load(Ordering::SeqCst);
    assert!(
        rsp <= here && here - rsp < 4096,
        "interrupted rsp {rsp:#x}, a local at {here:#x}"
    );
    println!("  stop latency {:.0} us", stop_latency.as_secs_f64() * 1e6);
}

// ---- a host-side stop of several Dune threads (gc-core's SIGPWR path): guest registers
// through dune_hw::guest_regs(), D bits cleared while stopped, re-set after the resume ----
const N_WORKERS: usize = 4;
const MARK: u64 = 0x7e57_0000;
static HS_ACKS: AtomicU64 = AtomicU64::new(0);
static HS_RESUME: AtomicBool = AtomicBool::new(false);
static HS_STOP: AtomicBool = AtomicBool::new(false);
static HS_RSP: [AtomicU64; N_WORKERS] = [const { AtomicU64::new(0) }; N_WORKERS];
static HS_FOUND: [AtomicU64; N_WORKERS] = [const { AtomicU64::new(0) }; N_WORKERS];

extern "C" fn host_stop(_s: libc::c_int, _i: *mut libc::siginfo_t, _uc: *mut libc::c_void) {
    if let Some(g) = dune_hw::guest_regs() {
        // r12 holds MARK + worker index in the interrupted guest code
        let r12 = g.gprs[12];
        if (MARK..MARK + N_WORKERS as u64).contains(&r12) {
            let i = (r12 - MARK) as usize;
            HS_RSP[i].store(g.gprs[7], Ordering::SeqCst);
            HS_FOUND[i].store(1, Ordering::SeqCst);
        }
    }
    HS_ACKS.fetch_add(1, Ordering::SeqCst);
    while !HS_RESUME.load(Ordering::SeqCst) {
        std::hint::spin_loop();
    }
}

fn install_host_stop_handler() {
    // SAFETY: installed before entering Dune: a host action; the handler only uses atomics.
    unsafe {
        let mut sa: libc::sigaction = core::mem::zeroed();
        sa.sa_sigaction = host_stop as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
        libc::sigfillset(&mut sa.sa_mask);
        assert_eq!(libc::sigaction(libc::SIGURG, &sa, core::ptr::null_mut()), 0);
    }
}

fn host_side_stop_of_four_threads_clear_dirty_and_flush_on_resume() {
    // SAFETY: a fresh RW page the workers write.
    let page = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    } as u64;
    let (tx, rx) = std::sync::mpsc::channel();
    let workers: Vec<_> = (0..N_WORKERS as u64)
        .map(|i| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let marker = 0u64;
                // SAFETY: pthread_self has no preconditions.
                let me = unsafe { libc::pthread_self() } as u64;
                tx.send((i, me, &marker as *const u64 as u64)).unwrap();
                // write the page in a loop (no exits) with MARK + i in r12, until told
                // to stop
                // SAFETY: writes our own word of the shared page; reads an atomic flag.
                unsafe {
                    core::arch::asm!(
                        "mov r12, {mark}",
                        "2:",
                        "inc qword ptr [{slot}]",
                        "cmp byte ptr [{flag}], 0",
                        "je 2b",
                        mark = in(reg) MARK + i,
                        slot = in(reg) page + 8 * i,
                        flag = in(reg) HS_STOP.as_ptr(),
                        out("r12") _,
                    )
                };
                std::hint::black_box(&marker);
            })
        })
        .collect();
    let mut ids: Vec<(u64, u64, u64)> = (0..N_WORKERS).map(|_| rx.recv().unwrap()).collect();
    ids.sort();
    // Wait until every worker is inside its loop (its word has moved: r12 holds its mark),
    // not merely started: on a loaded machine a worker can still be on its way there.
    let t_loop = Instant::now();
    for i in 0..N_WORKERS as u64 {
        let word = (page + 8 * i) as *const u64;
        // SAFETY: the page is mapped for the whole test; the worker increments this word.
        while unsafe { core::ptr::read_volatile(word) } == 0 {
            assert!(
                t_loop.elapsed() < Duration::from_secs(10),
                "worker {i} never reached its loop"
            );
            std::thread::yield_now();
        }
    }
    for &(_, t, _) in &ids {
        assert_eq!(
            // SAFETY: the workers are alive (joined below).
            unsafe { libc::pthread_kill(t as libc::pthread_t, libc::SIGURG) },
            0
        );
    }
    let t0 = Instant::now();
    while HS_ACKS.load(Ordering::SeqCst) < N_WORKERS as u64 && t0.elapsed() < Duration::from_secs(5)
    {
        std::hint::spin_loop();
    }
    let stop_all = t0.elapsed();
    // world stopped: clear the page's D bit; the stopped vCPUs flush before they resume
    let view = dune_hw::dirty_view().expect("initialised");
    let mut was_dirty = false;
    let flush = view.collect_and_clear(page, page + 4096, &mut |_| was_dirty = true);
    dune_hw::flush(flush);
    let clear_after = {
        let mut d = false;
        view.for_each_dirty(page, page + 4096, &mut |_| d = true);
        d
    };
    // SAFETY: reading the workers' counters (plain loads of a page we own).
    let before: Vec<u64> = (0..N_WORKERS as u64)
        .map(|i| unsafe { *((page + 8 * i) as *const u64) })
        .collect();
    HS_RESUME.store(true, Ordering::SeqCst);
    // until every worker wrote again (4 spinning workers share 2 CPUs with us)
    let t1 = Instant::now();
    let counter = |i: usize| {
        // SAFETY: a plain load of a worker's counter in a page we own.
        unsafe { core::ptr::read_volatile((page + 8 * i as u64) as *const u64) }
    };
    while (0..N_WORKERS).any(|i| counter(i) == before[i]) && t1.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(1));
    }
    HS_STOP.store(true, Ordering::SeqCst);
    for w in workers {
        w.join().unwrap();
    }
    let mut dirty_again = false;
    view.for_each_dirty(page, page + 4096, &mut |_| dirty_again = true);
    // SAFETY: as above.
    let after: Vec<u64> = (0..N_WORKERS as u64)
        .map(|i| unsafe { *((page + 8 * i) as *const u64) })
        .collect();
    assert_eq!(HS_ACKS.load(Ordering::SeqCst), N_WORKERS as u64);
    for (i, &(_, _, local)) in ids.iter().enumerate() {
        assert_eq!(
            HS_FOUND[i].load(Ordering::SeqCst),
            1,
            "worker {i}: guest r12 seen"
        );
        let rsp = HS_RSP[i].load(Ordering::SeqCst);
        assert!(
            rsp <= local && local - rsp < 4096,
            "worker {i}: guest rsp {rsp:#x}, a local at {local:#x}"
        );
        assert!(after[i] > before[i], "worker {i} ran after the resume");
    }
    assert!(
        was_dirty && !clear_after,
        "the workers dirtied the page; the clear took"
    );
    assert!(
        dirty_again,
        "writes after the resume set the D bit again (no stale translation)"
    );
    println!(
        "  stop of {N_WORKERS} threads {:.0} us",
        stop_all.as_secs_f64() * 1e6
    );
    // SAFETY: our page; the workers are joined.
    unsafe { libc::munmap(page as *mut libc::c_void, 4096) };
}

// ---- a thread blocked in a futex (condvar wait) runs its handler, then keeps waiting ----
static WAIT_SIG: AtomicU64 = AtomicU64::new(0);

extern "C" fn on_wait_sig(_s: libc::c_int, _i: *mut libc::siginfo_t, _uc: *mut libc::c_void) {
    WAIT_SIG.fetch_add(1, Ordering::SeqCst);
}

fn handler_runs_while_a_thread_waits_on_a_condvar() {
    use std::sync::{Arc, Condvar, Mutex};
    install(libc::SIGUSR2, on_wait_sig, libc::SA_RESTART);
    let pair = Arc::new((Mutex::new(false), Condvar::new()));
    let p2 = pair.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        // SAFETY: pthread_self has no preconditions.
        tx.send(unsafe { libc::pthread_self() } as u64).unwrap();
        let (m, c) = &*p2;
        let mut ready = m.lock().unwrap();
        let mut wakeups = 0u32;
        while !*ready {
            ready = c.wait(ready).unwrap();
            wakeups += 1;
        }
        (
            WAIT_SIG.load(Ordering::SeqCst),
            wakeups,
            dune_hw::thread_stats().signals,
        )
    });
    let t = rx.recv().unwrap();
    std::thread::sleep(Duration::from_millis(20)); // the waiter is in FUTEX_WAIT
    assert_eq!(
        // SAFETY: the waiter is alive (joined below).
        unsafe { libc::pthread_kill(t as libc::pthread_t, libc::SIGUSR2) },
        0
    );
    let t0 = Instant::now();
    while WAIT_SIG.load(Ordering::SeqCst) == 0 && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(1));
    }
    let handled_while_blocked = WAIT_SIG.load(Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(10));
    {
        let (m, c) = &*pair;
        *m.lock().unwrap() = true;
        c.notify_one();
    }
    let (seen, _wakeups, signals) = waiter.join().unwrap();
    uninstall(libc::SIGUSR2);
    assert_eq!(
        handled_while_blocked, 1,
        "the handler ran while the thread was blocked"
    );
    assert_eq!(seen, 1);
    assert_eq!(signals, 1, "delivered in the guest of the waiting thread");
}

// ---- a signal sent at any moment around the entry of a blocking forwarded call ----
// Linux: a signal sent to a thread that does not block it runs its handler promptly, also
// when the thread is just entering a blocking call (the call is interrupted or not entered).
// In Dune the monitor records the signal on the host side; a recording that races with the
// forwarded call's entry must not leave the call blocked with the handler not run.
// The sender is a forked child (outside Dune: native timing, one syscall per send), in step
// with the blocking Dune thread through a shared page.
const RACE_ROUNDS: u64 = 1000;
/// Most rounds a failing run goes on for after the third lost signal (keeps it short).
const RACE_MAX_LOST: u64 = 3;
/// How long a round waits for the handler before declaring the signal lost.
const RACE_TIMEOUT: Duration = Duration::from_millis(500);

/// The page shared by the blocking thread (and its handler) and the sending child.
#[repr(C)]
struct Race {
    armed: AtomicU64,
    handled: AtomicU64,
    done: AtomicU64,
    eintr: AtomicU64,
    n_lost: AtomicU64,
    lost: [AtomicU64; RACE_MAX_LOST as usize],
    /// Futex word of the futex variant (low half of a u64 for alignment).
    word: AtomicU64,
    pipe: [i32; 2],
}

static RACE: std::sync::atomic::AtomicPtr<Race> =
    std::sync::atomic::AtomicPtr::new(core::ptr::null_mut());

fn race() -> &'static Race {
    // SAFETY: set to a live shared mapping before any round starts; never unmapped while
    // in use (unmapped after the blocker and the child are done).
    unsafe { &*RACE.load(Ordering::SeqCst) }
}

extern "C" fn on_race(_s: libc::c_int, _i: *mut libc::siginfo_t, _uc: *mut libc::c_void) {
    race().handled.fetch_add(1, Ordering::SeqCst);
}

fn tsc() -> u64 {
    // SAFETY: rdtsc has no preconditions (not intercepted in the guest).
    unsafe { core::arch::x86_64::_rdtsc() }
}

fn wait_until(what: impl Fn() -> bool, timeout: Duration) -> bool {
    let t0 = Instant::now();
    while !what() {
        if t0.elapsed() > timeout {
            return false;
        }
        std::hint::spin_loop();
    }
    true
}

/// The sending child: per round, waits until the blocker announced it, waits a random
/// 0-30 us (the span of the guest `syscall`, the exit and the host call's entry), sends
/// SIGUSR1, waits for the handler (or declares the signal lost), then `unblock`s.
/// Only async-signal-safe calls (it is forked from a multi-threaded process).
fn race_sender(pid: i32, tid: i64, ticks_per_us: u64, unblock: fn(u64)) -> ! {
    let r = race();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64 ^ tsc();
    for round in 1..=RACE_ROUNDS {
        if !wait_until(|| r.armed.load(Ordering::SeqCst) == round, RACE_TIMEOUT * 4) {
            // SAFETY: ends the child.
            unsafe { libc::_exit(2) };
        }
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let until = tsc() + (rng % 30) * ticks_per_us;
        while tsc() < until {
            std::hint::spin_loop();
        }
        // SAFETY: tgkill to the blocking thread of our parent (alive until we are done).
        if unsafe { libc::syscall(libc::SYS_tgkill, pid, tid, libc::SIGUSR1) } != 0 {
            // SAFETY: ends the child.
            unsafe { libc::_exit(3) };
        }
        if !wait_until(|| r.handled.load(Ordering::SeqCst) >= round, RACE_TIMEOUT) {
            let n = r.n_lost.fetch_add(1, Ordering::SeqCst);
            if n < RACE_MAX_LOST {
                r.lost[n as usize].store(round, Ordering::SeqCst);
            }
        }
        unblock(round);
        if !wait_until(|| r.done.load(Ordering::SeqCst) == round, RACE_TIMEOUT * 4) {
            // SAFETY: ends the child.
            unsafe { libc::_exit(4) };
        }
        if r.n_lost.load(Ordering::SeqCst) >= RACE_MAX_LOST {
            // the blocker sees `n_lost` and stops after this round
            break;
        }
    }
    // SAFETY: ends the child without running the parent's exit handlers.
    unsafe { libc::_exit(0) }
}

/// Runs up to [`RACE_ROUNDS`] rounds of: the blocker thread (in Dune) announces a round and
/// calls `block` (which returns once `unblock` was called, looping over EINTR); the sender
/// (a forked child) signals it at a random moment around the call's entry.
fn race_signal_with_blocking_call(flags: libc::c_int, block: fn(u64), unblock: fn(u64)) {
    install(libc::SIGUSR1, on_race, flags);
    let r = race();
    for a in [&r.armed, &r.handled, &r.done, &r.eintr, &r.n_lost, &r.word] {
        a.store(0, Ordering::SeqCst);
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let blocker = std::thread::spawn(move || {
        let r = race();
        // SAFETY: gettid has no arguments.
        tx.send(unsafe { libc::syscall(libc::SYS_gettid) }).unwrap();
        for round in 1..=RACE_ROUNDS {
            r.armed.store(round, Ordering::SeqCst);
            block(round);
            r.done.store(round, Ordering::SeqCst);
            if r.n_lost.load(Ordering::SeqCst) >= RACE_MAX_LOST {
                break;
            }
        }
    });
    let tid = rx.recv().unwrap();
    // SAFETY: getpid has no arguments.
    let pid = unsafe { libc::getpid() };
    // ticks per microsecond, measured against the monotonic clock
    let (c0, t0) = (tsc(), Instant::now());
    std::thread::sleep(Duration::from_millis(5));
    let ticks_per_us = (tsc() - c0) / (t0.elapsed().as_micros() as u64).max(1);
    // SAFETY: the child runs `race_sender` (raw syscalls and atomics only) and _exits.
    let child = unsafe { libc::fork() };
    assert!(child >= 0, "fork");
    if child == 0 {
        race_sender(pid, tid, ticks_per_us, unblock);
    }
    blocker.join().unwrap();
    let mut status = 0;
    // SAFETY: waits for our own child.
    assert_eq!(unsafe { libc::waitpid(child, &mut status, 0) }, child);
    uninstall(libc::SIGUSR1);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "sender child: status {status:#x} (2: round not started, 3: tgkill failed, 4: the \
         blocked call did not return after the wake-up)"
    );
    let n_lost = r.n_lost.load(Ordering::SeqCst);
    let lost: Vec<u64> = r.lost[..n_lost.min(RACE_MAX_LOST) as usize]
        .iter()
        .map(|a| a.load(Ordering::SeqCst))
        .collect();
    assert_eq!(
        n_lost, 0,
        "signal sent at a blocking call's entry was not handled within {RACE_TIMEOUT:?} \
         (the call blocked with the signal recorded) in rounds {lost:?}"
    );
    assert_eq!(r.handled.load(Ordering::SeqCst), RACE_ROUNDS);
    println!(
        "  {RACE_ROUNDS} rounds, {} calls interrupted (EINTR)",
        r.eintr.load(Ordering::SeqCst)
    );
}

/// Maps the shared page for a race test; the returned guard unmaps it.
struct RacePage(*mut libc::c_void);

impl RacePage {
    fn new() -> RacePage {
        // SAFETY: a fresh shared anonymous page (zeroed: a valid Race of zeros).
        let p = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED);
        const _: () = assert!(core::mem::size_of::<Race>() <= 4096);
        RACE.store(p.cast(), Ordering::SeqCst);
        RacePage(p)
    }
}

impl Drop for RacePage {
    fn drop(&mut self) {
        RACE.store(core::ptr::null_mut(), Ordering::SeqCst);
        // SAFETY: our page; the blocker and the child are done with it.
        unsafe { libc::munmap(self.0, 4096) };
    }
}

fn read_one_byte(_round: u64) {
    let fd = race().pipe[0];
    let mut b = [0u8; 1];
    loop {
        // SAFETY: reads one byte into a local.
        let n = unsafe { libc::read(fd, b.as_mut_ptr().cast(), 1) };
        if n == 1 {
            return;
        }
        let e = std::io::Error::last_os_error();
        assert_eq!(e.kind(), std::io::ErrorKind::Interrupted, "read: {e}");
        race().eintr.fetch_add(1, Ordering::SeqCst);
    }
}

fn write_one_byte(_round: u64) {
    let fd = race().pipe[1];
    // SAFETY: writes one byte from a static.
    unsafe { libc::write(fd, b"x".as_ptr().cast(), 1) };
}

fn signal_at_entry_of_a_blocking_read_is_never_lost() {
    let page = RacePage::new();
    let mut fds = [0i32; 2];
    // SAFETY: pipe writes two fds.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: the page is ours and nobody else uses it yet.
    unsafe { (*RACE.load(Ordering::SeqCst)).pipe = fds };
    // without SA_RESTART (EINTR, the reader loops), then with it (the read restarts)
    race_signal_with_blocking_call(0, read_one_byte, write_one_byte);
    race_signal_with_blocking_call(libc::SA_RESTART, read_one_byte, write_one_byte);
    // SAFETY: closing our fds.
    unsafe {
        libc::close(fds[0]);
        libc::close(fds[1]);
    }
    drop(page);
}

fn futex_wait_for(round: u64) {
    let r = race();
    loop {
        let seen = r.word.load(Ordering::SeqCst);
        if seen >= round {
            return;
        }
        // SAFETY: FUTEX_WAIT (shared: the waker is another process) on the low half of a
        // word of the shared page, no timeout.
        let n = unsafe {
            libc::syscall(
                libc::SYS_futex,
                r.word.as_ptr(),
                libc::FUTEX_WAIT,
                seen as u32,
                core::ptr::null::<libc::timespec>(),
            )
        };
        if n != 0 {
            let e = std::io::Error::last_os_error().raw_os_error();
            assert!(
                matches!(e, Some(libc::EINTR | libc::EAGAIN)),
                "futex: {e:?}"
            );
            if e == Some(libc::EINTR) {
                r.eintr.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
}

fn futex_wake_for(round: u64) {
    let r = race();
    r.word.store(round, Ordering::SeqCst);
    // SAFETY: FUTEX_WAKE on the shared word.
    unsafe { libc::syscall(libc::SYS_futex, r.word.as_ptr(), libc::FUTEX_WAKE, 1) };
}

fn signal_at_entry_of_a_futex_wait_is_never_lost() {
    let page = RacePage::new();
    race_signal_with_blocking_call(0, futex_wait_for, futex_wake_for);
    race_signal_with_blocking_call(libc::SA_RESTART, futex_wait_for, futex_wake_for);
    drop(page);
}

// ---- real-time signals are queued: every instance, in order, with its own value ----
const N_QUEUED: usize = 100;
static RT_COUNT: AtomicU64 = AtomicU64::new(0);
static RT_VALUES: [AtomicU64; 2 * N_QUEUED] = [const { AtomicU64::new(0) }; 2 * N_QUEUED];
static RT_CODES: AtomicU64 = AtomicU64::new(0);

extern "C" fn on_rt(_s: libc::c_int, info: *mut libc::siginfo_t, _uc: *mut libc::c_void) {
    // SAFETY: a valid siginfo: si_code at 8, si_value at 24 (the _rt member).
    let (code, value) = unsafe {
        let p = info as *const u8;
        (
            (p.add(8) as *const i32).read(),
            (p.add(24) as *const u64).read(),
        )
    };
    if code != libc::SI_QUEUE {
        RT_CODES.fetch_add(1, Ordering::SeqCst);
    }
    let i = RT_COUNT.fetch_add(1, Ordering::SeqCst) as usize;
    if i < RT_VALUES.len() {
        RT_VALUES[i].store(value, Ordering::SeqCst);
    }
}

fn rt_reset() {
    RT_COUNT.store(0, Ordering::SeqCst);
    RT_CODES.store(0, Ordering::SeqCst);
    for v in &RT_VALUES {
        v.store(u64::MAX, Ordering::SeqCst);
    }
}

static THIS_PID: AtomicU64 = AtomicU64::new(0);

/// A siginfo as sigqueue(3) makes it (SI_QUEUE, our pid and uid, `value`).
fn queue_info(sig: libc::c_int, value: u64) -> [u64; 16] {
    let mut info = [0u64; 16];
    // SAFETY: getpid/getuid have no arguments.
    let (pid, uid) = unsafe { (libc::getpid() as u32, libc::getuid()) };
    info[0] = sig as u32 as u64; // si_signo, si_errno = 0
    info[1] = libc::SI_QUEUE as u32 as u64; // si_code
    info[2] = pid as u64 | (uid as u64) << 32;
    info[3] = value;
    info
}

/// sigqueue to thread `tid` of this process (the parent's, when called in a child).
fn sigqueue_thread(tid: i64, sig: libc::c_int, value: u64) -> i64 {
    let info = queue_info(sig, value);
    // SAFETY: rt_tgsigqueueinfo reads one siginfo from a local.
    unsafe {
        libc::syscall(
            libc::SYS_rt_tgsigqueueinfo,
            THIS_PID.load(Ordering::SeqCst),
            tid,
            sig,
            info.as_ptr(),
        )
    }
}

fn sigqueue_process(sig: libc::c_int, value: u64) -> i64 {
    let info = queue_info(sig, value);
    // SAFETY: rt_sigqueueinfo reads one siginfo from a local.
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigqueueinfo,
            libc::getpid(),
            sig,
            info.as_ptr(),
        )
    }
}

fn set_blocked(sig: libc::c_int, blocked: bool) {
    // SAFETY: sigset manipulation on locals; this thread's mask only.
    unsafe {
        let mut set: libc::sigset_t = core::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, sig);
        let how = if blocked {
            libc::SIG_BLOCK
        } else {
            libc::SIG_UNBLOCK
        };
        assert_eq!(libc::pthread_sigmask(how, &set, core::ptr::null_mut()), 0);
    }
}

fn assert_values_in_order(n: usize, what: &str) {
    assert!(
        wait_until(
            || RT_COUNT.load(Ordering::SeqCst) >= n as u64,
            Duration::from_secs(5)
        ),
        "{what}: {} of {n} instances handled",
        RT_COUNT.load(Ordering::SeqCst)
    );
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(
        RT_COUNT.load(Ordering::SeqCst),
        n as u64,
        "{what}: handler runs"
    );
    let got: Vec<u64> = (0..n)
        .map(|i| RT_VALUES[i].load(Ordering::SeqCst))
        .collect();
    let want: Vec<u64> = (0..n as u64).map(|v| 1000 + v).collect();
    assert_eq!(got, want, "{what}: values in sending order");
    assert_eq!(
        RT_CODES.load(Ordering::SeqCst),
        0,
        "{what}: si_code SI_QUEUE"
    );
}

fn realtime_signals_to_a_thread_are_queued_in_order_with_their_values() {
    THIS_PID.store(std::process::id() as u64, Ordering::SeqCst);
    let sig = libc::SIGRTMIN();
    install(sig, on_rt, 0);
    rt_reset();
    // SAFETY: gettid has no arguments.
    let me = unsafe { libc::syscall(libc::SYS_gettid) };
    // queued while blocked, then released at once
    set_blocked(sig, true);
    for v in 0..N_QUEUED as u64 {
        assert_eq!(sigqueue_thread(me, sig, 1000 + v), 0);
    }
    set_blocked(sig, false);
    assert_values_in_order(N_QUEUED, "blocked, then unblocked");
    // sent to this very thread while unblocked (each one interrupts at the send's return)
    rt_reset();
    for v in 0..N_QUEUED as u64 {
        assert_eq!(sigqueue_thread(me, sig, 1000 + v), 0);
    }
    assert_values_in_order(N_QUEUED, "unblocked, to self");
    uninstall(sig);
}

fn realtime_signals_to_a_busy_thread_are_not_merged() {
    THIS_PID.store(std::process::id() as u64, Ordering::SeqCst);
    let sig = libc::SIGRTMIN() + 2;
    install(sig, on_rt, 0);
    rt_reset();
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let busy = std::thread::spawn(move || {
        // SAFETY: gettid has no arguments.
        tx.send(unsafe { libc::syscall(libc::SYS_gettid) }).unwrap();
        let mut spins = 0u64;
        while !stop2.load(Ordering::SeqCst) {
            spins = std::hint::black_box(spins + 1);
        }
        spins
    });
    let tid = rx.recv().unwrap();
    std::thread::sleep(Duration::from_millis(5));
    // sent by a child process (outside Dune, so at native speed): all 100 arrive while the
    // busy thread takes the first ones
    // SAFETY: the child only makes raw syscalls (async-signal-safe) and _exits.
    let child = unsafe { libc::fork() };
    assert!(child >= 0);
    if child == 0 {
        let mut failed = 0;
        for v in 0..N_QUEUED as u64 {
            if sigqueue_thread(tid, sig, 1000 + v) != 0 {
                failed = 1;
            }
        }
        // SAFETY: ends the child without running the parent's exit handlers.
        unsafe { libc::_exit(failed) };
    }
    let mut status = 0;
    // SAFETY: waits for our own child.
    assert_eq!(unsafe { libc::waitpid(child, &mut status, 0) }, child);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "sender: {status:#x}"
    );
    let r = std::panic::catch_unwind(|| assert_values_in_order(N_QUEUED, "to a busy thread"));
    stop.store(true, Ordering::SeqCst);
    busy.join().unwrap();
    uninstall(sig);
    if let Err(e) = r {
        std::panic::resume_unwind(e);
    }
}

fn realtime_signals_to_the_process_are_queued_up_to_rlimit_sigpending() {
    let sig = libc::SIGRTMIN() + 1;
    install(sig, on_rt, 0);
    rt_reset();
    // this is the process's only thread now: a process-directed signal comes here
    set_blocked(sig, true);
    for v in 0..N_QUEUED as u64 {
        assert_eq!(sigqueue_process(sig, 1000 + v), 0);
    }
    set_blocked(sig, false);
    assert_values_in_order(N_QUEUED, "to the process");
    // Linux bounds queued signals by RLIMIT_SIGPENDING (per user): sigqueue fails with
    // EAGAIN beyond it, and every accepted instance is delivered
    rt_reset();
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read or write one struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_SIGPENDING, &mut old), 0);
        let low = libc::rlimit {
            rlim_cur: 40,
            rlim_max: old.rlim_max,
        };
        assert_eq!(libc::setrlimit(libc::RLIMIT_SIGPENDING, &low), 0);
    }
    set_blocked(sig, true);
    let mut accepted = 0usize;
    let mut refused = 0usize;
    for v in 0..N_QUEUED as u64 {
        if sigqueue_process(sig, 1000 + accepted as u64) == 0 {
            accepted += 1;
        } else {
            assert_eq!(
                std::io::Error::last_os_error().raw_os_error(),
                Some(libc::EAGAIN),
                "sigqueue #{v}"
            );
            refused += 1;
        }
    }
    set_blocked(sig, false);
    // SAFETY: restores the limit read above.
    unsafe { assert_eq!(libc::setrlimit(libc::RLIMIT_SIGPENDING, &old), 0) };
    assert!(
        (1..=41).contains(&accepted) && refused == N_QUEUED - accepted,
        "accepted {accepted}, refused {refused} with RLIMIT_SIGPENDING 40"
    );
    assert_values_in_order(accepted, "to the process, with RLIMIT_SIGPENDING 40");
    uninstall(sig);
    println!("  RLIMIT_SIGPENDING 40: {accepted} queued, {refused} refused with EAGAIN");
}

// ---- a handler's sa_mask defers another signal recorded with it until it returns ----
static FIRST_RUNS: AtomicU64 = AtomicU64::new(0);
static OTHER_RUNS: AtomicU64 = AtomicU64::new(0);
static OTHER_RUNS_SEEN_BY_FIRST: AtomicU64 = AtomicU64::new(u64::MAX);

extern "C" fn on_first(_s: libc::c_int, _i: *mut libc::siginfo_t, _uc: *mut libc::c_void) {
    OTHER_RUNS_SEEN_BY_FIRST.store(OTHER_RUNS.load(Ordering::SeqCst), Ordering::SeqCst);
    // a call while the other signal waits: it must run (not be held back for it)
    // SAFETY: getpid has no arguments.
    std::hint::black_box(unsafe { libc::getpid() });
    FIRST_RUNS.fetch_add(1, Ordering::SeqCst);
}

extern "C" fn on_other(_s: libc::c_int, _i: *mut libc::siginfo_t, _uc: *mut libc::c_void) {
    OTHER_RUNS.fetch_add(1, Ordering::SeqCst);
}

fn a_handler_mask_defers_another_recorded_signal() {
    // SAFETY: a zeroed sigaction with a valid handler, SA_SIGINFO and a mask of SIGUSR2.
    unsafe {
        let mut sa: libc::sigaction = core::mem::zeroed();
        sa.sa_sigaction = on_first as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaddset(&mut sa.sa_mask, libc::SIGUSR2);
        assert_eq!(
            libc::sigaction(libc::SIGUSR1, &sa, core::ptr::null_mut()),
            0
        );
    }
    install(libc::SIGUSR2, on_other, 0);
    // both pending at once: SIGUSR1 (lower) first; its handler blocks SIGUSR2
    // SAFETY: sigset manipulation on locals; tgkill to this very thread.
    unsafe {
        let mut set: libc::sigset_t = core::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGUSR1);
        libc::sigaddset(&mut set, libc::SIGUSR2);
        assert_eq!(
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, core::ptr::null_mut()),
            0
        );
        let (pid, tid) = (libc::getpid(), libc::syscall(libc::SYS_gettid));
        libc::syscall(libc::SYS_tgkill, pid, tid, libc::SIGUSR2);
        libc::syscall(libc::SYS_tgkill, pid, tid, libc::SIGUSR1);
        assert_eq!(
            libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, core::ptr::null_mut()),
            0
        );
    }
    uninstall(libc::SIGUSR1);
    uninstall(libc::SIGUSR2);
    assert_eq!(FIRST_RUNS.load(Ordering::SeqCst), 1);
    assert_eq!(OTHER_RUNS.load(Ordering::SeqCst), 1);
    assert_eq!(
        OTHER_RUNS_SEEN_BY_FIRST.load(Ordering::SeqCst),
        0,
        "SIGUSR2 ran inside SIGUSR1's handler although its sa_mask blocks it"
    );
}

// ---- SA_RESTART of an action installed inside Dune, for a thread that left Dune ----
static OUTSIDE_RUNS: AtomicU64 = AtomicU64::new(0);
static OUTSIDE_MASKED: AtomicU64 = AtomicU64::new(0);

extern "C" fn on_outside(_s: libc::c_int, _i: *mut libc::siginfo_t, _uc: *mut libc::c_void) {
    // run natively on the host (the thread is outside Dune), with the mask Linux gives:
    // the signal itself and sa_mask (SIGUSR2) blocked, nothing else added
    let mut m = 0u64;
    // SAFETY: rt_sigprocmask writes 8 bytes to `m`.
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_BLOCK,
            core::ptr::null::<u64>(),
            &mut m as *mut u64,
            8usize,
        )
    };
    let want = 1u64 << (libc::SIGUSR1 - 1) | 1u64 << (libc::SIGUSR2 - 1);
    OUTSIDE_MASKED.store(m & (want | 1u64 << (libc::SIGALRM - 1)), Ordering::SeqCst);
    OUTSIDE_RUNS.fetch_add(1, Ordering::SeqCst);
}

fn sa_restart_from_inside_dune_holds_for_a_thread_outside() {
    // SAFETY: a zeroed sigaction with a valid handler, SA_SIGINFO | SA_RESTART, a mask of
    // SIGUSR2; inside Dune (emulated rt_sigaction).
    unsafe {
        let mut sa: libc::sigaction = core::mem::zeroed();
        sa.sa_sigaction = on_outside as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaddset(&mut sa.sa_mask, libc::SIGUSR2);
        assert_eq!(
            libc::sigaction(libc::SIGUSR1, &sa, core::ptr::null_mut()),
            0
        );
    }
    let mut fds = [0i32; 2];
    // SAFETY: pipe writes two fds.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let rfd = fds[0];
    let (tx, rx) = std::sync::mpsc::channel();
    let outside = std::thread::spawn(move || {
        dune_hw::exit().expect("leave Dune");
        // SAFETY: gettid has no arguments.
        tx.send(unsafe { libc::syscall(libc::SYS_gettid) }).unwrap();
        let mut b = [0u8; 1];
        // SAFETY: reads one byte into a local.
        let n = unsafe { libc::read(rfd, b.as_mut_ptr().cast(), 1) };
        let err = std::io::Error::last_os_error();
        (n, err.raw_os_error(), b[0])
    });
    let tid = rx.recv().unwrap();
    std::thread::sleep(Duration::from_millis(20)); // blocked in read, on the host
                                                   // SAFETY: tgkill to a live thread of this process (joined below).
    unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, libc::SIGUSR1) };
    assert!(wait_until(
        || OUTSIDE_RUNS.load(Ordering::SeqCst) == 1,
        Duration::from_secs(5)
    ));
    std::thread::sleep(Duration::from_millis(10));
    // SAFETY: writes one byte from a static to our pipe.
    unsafe { libc::write(fds[1], b"y".as_ptr().cast(), 1) };
    let (n, errno, byte) = outside.join().unwrap();
    uninstall(libc::SIGUSR1);
    // SAFETY: closing our fds.
    unsafe {
        libc::close(fds[0]);
        libc::close(fds[1]);
    }
    assert_eq!(
        (n, byte),
        (1, b'y'),
        "the read restarted after the handler (SA_RESTART), errno {errno:?}"
    );
    assert_eq!(
        OUTSIDE_MASKED.load(Ordering::SeqCst),
        1u64 << (libc::SIGUSR1 - 1) | 1u64 << (libc::SIGUSR2 - 1),
        "the native handler's mask: the signal and sa_mask (not everything)"
    );
}

// ---- a handler run from rt_sigsuspend gets the temporary mask; the thread's comes back ----
static SUSPEND_HANDLER_MASK: AtomicU64 = AtomicU64::new(u64::MAX);

fn thread_mask() -> u64 {
    let mut m = 0u64;
    // SAFETY: rt_sigprocmask writes 8 bytes to `m`.
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_BLOCK,
            core::ptr::null::<u64>(),
            &mut m as *mut u64,
            8usize,
        )
    };
    m
}

extern "C" fn on_suspend(_s: libc::c_int, _i: *mut libc::siginfo_t, _uc: *mut libc::c_void) {
    SUSPEND_HANDLER_MASK.store(thread_mask(), Ordering::SeqCst);
}

fn sigsuspend_handler_runs_with_the_temporary_mask() {
    let (usr1, usr2) = (1u64 << (libc::SIGUSR1 - 1), 1u64 << (libc::SIGUSR2 - 1));
    install(libc::SIGUSR1, on_suspend, 0);
    set_blocked(libc::SIGUSR1, true);
    set_blocked(libc::SIGUSR2, true);
    // SAFETY: tgkill to this very thread (blocked: it stays pending).
    unsafe {
        libc::syscall(
            libc::SYS_tgkill,
            libc::getpid(),
            libc::syscall(libc::SYS_gettid),
            libc::SIGUSR1,
        )
    };
    let before = thread_mask();
    let temporary = before & !(usr1 | usr2);
    // SAFETY: rt_sigsuspend reads 8 bytes of mask from a local.
    let r = unsafe { libc::syscall(libc::SYS_rt_sigsuspend, &temporary as *const u64, 8usize) };
    let err = std::io::Error::last_os_error().raw_os_error();
    let after = thread_mask();
    set_blocked(libc::SIGUSR1, false);
    set_blocked(libc::SIGUSR2, false);
    uninstall(libc::SIGUSR1);
    assert_eq!((r, err), (-1, Some(libc::EINTR)));
    assert_eq!(after, before, "the thread's mask is back after the handler");
    assert_eq!(
        SUSPEND_HANDLER_MASK.load(Ordering::SeqCst) & (usr1 | usr2),
        usr1,
        "the handler's mask is the temporary one (SIGUSR2 open) plus the signal"
    );
}

// ---- processes forked while signals pour in start with the program's mask ----
// The monitor holds a signal it recorded blocked on the host until it is delivered; a fork
// must not hand that hold to the child (whose mask would block the signal forever).
const N_FORKS: usize = 60;
static STORM_HANDLED: AtomicU64 = AtomicU64::new(0);

extern "C" fn on_storm(_s: libc::c_int, _i: *mut libc::siginfo_t, _uc: *mut libc::c_void) {
    STORM_HANDLED.fetch_add(1, Ordering::SeqCst);
}

fn forks_under_a_signal_storm_inherit_the_guest_mask() {
    install(libc::SIGUSR1, on_storm, libc::SA_RESTART);
    let page = RacePage::new();
    let r = race();
    r.done.store(0, Ordering::SeqCst);
    // SAFETY: getpid/gettid have no arguments.
    let (pid, tid) = unsafe { (libc::getpid(), libc::syscall(libc::SYS_gettid)) };
    // the storm: a native child signals this thread every ~20 us until told to stop
    // SAFETY: the child makes raw syscalls and reads an atomic of the shared page only.
    let sender = unsafe { libc::fork() };
    assert!(sender >= 0);
    if sender == 0 {
        let r = race();
        while r.done.load(Ordering::SeqCst) == 0 {
            // SAFETY: tgkill to our parent's thread; nanosleep of a local timespec.
            unsafe {
                libc::syscall(libc::SYS_tgkill, pid, tid, libc::SIGUSR1);
                let ts = libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 20_000,
                };
                libc::nanosleep(&ts, core::ptr::null_mut());
            }
        }
        // SAFETY: ends the child.
        unsafe { libc::_exit(0) };
    }
    let usr1 = 1u64 << (libc::SIGUSR1 - 1);
    let mut blocked_in = Vec::new();
    for i in 0..N_FORKS {
        // SAFETY: the child only reads its mask and _exits.
        let child = unsafe { libc::fork() };
        if child == 0 {
            let blocked = thread_mask() & usr1 != 0;
            // SAFETY: ends the child.
            unsafe { libc::_exit(blocked as i32) };
        }
        assert!(child > 0, "fork #{i}");
        let mut status = 0;
        // SAFETY: waits for our own child (SA_RESTART: not interrupted by the storm).
        assert_eq!(unsafe { libc::waitpid(child, &mut status, 0) }, child);
        assert!(libc::WIFEXITED(status), "child #{i}: {status:#x}");
        if libc::WEXITSTATUS(status) != 0 {
            blocked_in.push(i);
        }
    }
    r.done.store(1, Ordering::SeqCst);
    let mut status = 0;
    // SAFETY: waits for our own child.
    assert_eq!(unsafe { libc::waitpid(sender, &mut status, 0) }, sender);
    let handled = STORM_HANDLED.load(Ordering::SeqCst);
    uninstall(libc::SIGUSR1);
    drop(page);
    assert!(
        blocked_in.is_empty(),
        "children started with SIGUSR1 blocked (the parent's hold leaked): {blocked_in:?}"
    );
    assert_eq!(
        thread_mask() & usr1,
        0,
        "the parent's mask is its own again"
    );
    assert!(handled > 0, "the storm reached the handler");
    println!("  {N_FORKS} forks, {handled} signals handled meanwhile");
}
