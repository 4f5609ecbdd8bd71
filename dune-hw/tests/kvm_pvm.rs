//! The PVM modes: `pvm` (the program in the hypervisor's paravirtual user mode, the monitor
//! stubs natively in its supervisor mode) in this process, `pvm-ring0` (the program itself in
//! supervisor mode) in a child process (the mode is per process). On hosts without a usable
//! PVM supervisor ABI the mode falls back to ring-3 (reported); these tests then print
//! SKIPPED (a failure under DUNEGC_REQUIRE_PVM=1).

use dune_hw::{DuneError, Mode, Options};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::Mutex;

/// One test at a time: each enters and leaves on its own thread, the VM is shared.
static SERIAL: Mutex<()> = Mutex::new(());

/// The PVM mode under test: `pvm`, or `pvm-ring0` in the child of
/// `pvm_ring0_runs_the_program_in_supervisor_mode`.
fn mode_under_test() -> Mode {
    match std::env::var("DUNEGC_TEST_PVM_MODE").as_deref() {
        Ok("pvm-ring0") => Mode::PvmRing0,
        _ => Mode::Pvm,
    }
}

/// Enters PVM-mode Dune on this thread, or prints SKIPPED and returns false.
fn enter_pvm_or_skip(test: &str) -> bool {
    if let Some(c) = dune_hw::mode().filter(|c| c.mode != mode_under_test()) {
        // an earlier test of this process fell back (the mode is per process)
        if std::env::var("DUNEGC_REQUIRE_PVM").as_deref() == Ok("1") {
            panic!(
                "{test}: PVM required (DUNEGC_REQUIRE_PVM=1) but: {}",
                c.reason
            );
        }
        println!("SKIPPED {test}: {}", c.reason);
        return false;
    }
    match dune_hw::enter_with(&Options {
        mode: Some(mode_under_test()),
        ..Options::default()
    }) {
        Ok(()) => {}
        Err(e @ (DuneError::Kmod(_) | DuneError::Unsupported { .. })) => {
            if std::env::var("DUNEGC_REQUIRE_KVM").as_deref() == Ok("1") {
                panic!("/dev/kvm required: {e}");
            }
            println!("SKIPPED {test}: {e}");
            return false;
        }
        Err(e) => panic!("enter failed: {e}"),
    }
    let choice = dune_hw::mode().expect("initialised by enter");
    if choice.mode != mode_under_test() {
        dune_hw::exit().unwrap();
        if std::env::var("DUNEGC_REQUIRE_PVM").as_deref() == Ok("1") {
            panic!(
                "{test}: PVM required (DUNEGC_REQUIRE_PVM=1) but: {}",
                choice.reason
            );
        }
        println!("SKIPPED {test}: {}", choice.reason);
        return false;
    }
    true
}

#[test]
fn pvm_compute_getpid_flush_files_and_leave() {
    let _s = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !enter_pvm_or_skip("pvm_compute_getpid_flush_files_and_leave") {
        return;
    }
    let t = std::time::Instant::now();
    let mut x = 1u64;
    for i in 0..1_000_000u64 {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(i);
    }
    let compute = t.elapsed();
    // SAFETY: getpid has no arguments.
    let pid = unsafe { libc::getpid() };
    dune_hw::flush_tlb_all();
    dune_hw::flush_tlb_page(dune_hw::Gva(&x as *const u64 as u64));
    let mut m = HashMap::new();
    for i in 0..100u64 {
        m.insert(format!("k{i}"), i);
    }
    let total: u64 = m.values().sum();
    let path = std::env::temp_dir().join(format!("dune-pvm-{}", std::process::id()));
    std::fs::File::create(&path)
        .unwrap()
        .write_all(b"written in a PVM mode")
        .unwrap();
    let mut s = String::new();
    std::fs::File::open(&path)
        .unwrap()
        .read_to_string(&mut s)
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    println!(
        "{} guest: 1e6 LCG in {compute:?}, x={x:#x}, map total {total}, file {s:?}",
        mode_under_test().name()
    );
    let stats = dune_hw::exit().unwrap();
    // SAFETY: getpid has no arguments.
    assert_eq!(pid, unsafe { libc::getpid() });
    assert_eq!(total, 4950);
    assert_eq!(s, "written in a PVM mode");
    assert_eq!(
        stats.native_steps, 0,
        "nothing is emulated in PVM mode: {stats:?}"
    );
    // native speed: far below the ~2,500x of emulated CPL0
    assert!(
        compute < std::time::Duration::from_millis(200),
        "{compute:?}"
    );
    println!("{} stats {stats:?}", mode_under_test().name());
}

static HYPERCALL_TRAPS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// #UD/#BP/#GP handler: counts a hypercall instruction (`int $0x1b`, cd 1b) that trapped in user
/// mode and resumes after it.
fn on_hypercall_trap(t: &mut dune_hw::Trap) -> dune_hw::TrapAction {
    // SAFETY: the faulting code is mapped program text.
    let at = unsafe { core::ptr::read_volatile(t.rip as *const [u8; 2]) };
    // SAFETY: as above, the two bytes before rip (a trap reports the next instruction).
    let before = unsafe { core::ptr::read_volatile((t.rip - 2) as *const [u8; 2]) };
    if at == [0xcd, 0x1b] {
        t.rip += 2;
    } else if before != [0xcd, 0x1b] {
        return dune_hw::TrapAction::Unhandled;
    }
    HYPERCALL_TRAPS.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    dune_hw::TrapAction::Resume
}

/// Executes the PVM TLB-flush hypercall: returns its rax (0 in supervisor mode; in user
/// mode it traps and the handler skips it, leaving rax unchanged).
fn try_hypercall() -> u64 {
    let r: u64;
    // SAFETY: in supervisor mode a TLB flush; in user mode an exception the test's handler
    // skips. Either way no register but rax changes.
    unsafe {
        core::arch::asm!("int 0x1b", inlateout("rax") kmod::pvm::HC_FLUSH_TLB => r, options(nostack))
    };
    r
}

#[test]
fn the_program_runs_in_the_mode_it_says() {
    let _s = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !enter_pvm_or_skip("the_program_runs_in_the_mode_it_says") {
        return;
    }
    dune_hw::set_exception_handler(dune_hw::Exception::Breakpoint, Some(on_hypercall_trap));
    dune_hw::set_exception_handler(dune_hw::Exception::InvalidOpcode, Some(on_hypercall_trap));
    dune_hw::set_exception_handler(
        dune_hw::Exception::GeneralProtection,
        Some(on_hypercall_trap),
    );
    let before = HYPERCALL_TRAPS.load(std::sync::atomic::Ordering::Acquire);
    let rax = try_hypercall();
    // after a TLB-flush request (pvm: answered in supervisor mode, sysretq back) and a
    // forwarded syscall (an exit, the host's return through HC_IRET_FRAME)
    dune_hw::flush_tlb_all();
    let rax2 = try_hypercall();
    // SAFETY: getppid has no arguments.
    unsafe { libc::getppid() };
    let rax3 = try_hypercall();
    let trapped = HYPERCALL_TRAPS.load(std::sync::atomic::Ordering::Acquire) - before;
    dune_hw::set_exception_handler(dune_hw::Exception::Breakpoint, None);
    dune_hw::set_exception_handler(dune_hw::Exception::InvalidOpcode, None);
    dune_hw::set_exception_handler(dune_hw::Exception::GeneralProtection, None);
    dune_hw::exit().unwrap();
    println!(
        "{}: hypercall from the program: rax {rax:#x} {rax2:#x} {rax3:#x}, trapped {trapped}",
        mode_under_test().name()
    );
    match mode_under_test() {
        // user mode: the hypercall is refused (an exception), the flush happens through the
        // monitor's stub instead
        Mode::Pvm => assert_eq!(trapped, 3, "the program must not run in supervisor mode"),
        _ => assert_eq!(
            (trapped, rax, rax2, rax3),
            (0, 0, 0, 0),
            "supervisor mode: the hypercall works"
        ),
    }
}

#[test]
fn pvm_ring0_runs_the_program_in_supervisor_mode() {
    if std::env::var("DUNEGC_TEST_PVM_MODE").is_ok() {
        return; // already the child
    }
    let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--test-threads=1",
            "--nocapture",
            "pvm_compute_getpid_flush_files_and_leave",
            "the_program_runs_in_the_mode_it_says",
        ])
        .env("DUNEGC_TEST_PVM_MODE", "pvm-ring0")
        .output()
        .expect("spawn the test binary");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    if text.contains("SKIPPED") {
        println!("{text}");
        return;
    }
    assert!(
        text.contains("pvm-ring0: hypercall from the program: rax 0x0 0x0 0x0, trapped 0"),
        "{text}"
    );
    assert!(text.contains("pvm-ring0 stats"), "{text}");
}

/// Child of `a_failed_probe_runs_the_program_in_ring3` (ignored on its own).
#[test]
#[ignore = "run as a child process by a_failed_probe_runs_the_program_in_ring3"]
fn child_enter_with_injected_probe_failure() {
    dune_hw::enter_with(&Options {
        mode: Some(Mode::Pvm),
        ..Options::default()
    })
    .expect("falls back instead of failing");
    // SAFETY: getpid has no arguments.
    let pid = unsafe { libc::getpid() };
    let choice = dune_hw::mode().expect("initialised");
    dune_hw::exit().unwrap();
    println!(
        "MODE {} PID-OK {}",
        choice.mode.name(),
        pid == std::process::id() as i32
    );
}

#[test]
fn a_failed_probe_runs_the_program_in_ring3() {
    if kmod::System::open().is_err()
        || !kmod::pvm::is_pvm_host(&kmod::System::open().unwrap()).unwrap()
    {
        if std::env::var("DUNEGC_REQUIRE_PVM").as_deref() == Ok("1") {
            panic!("PVM required (DUNEGC_REQUIRE_PVM=1) but this host has none");
        }
        println!("SKIPPED a_failed_probe_runs_the_program_in_ring3: no PVM host");
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "child_enter_with_injected_probe_failure",
            "--nocapture",
            "--include-ignored",
        ])
        .env("DUNEGC_PVM_SELF_TEST_FAIL", "1")
        .output()
        .expect("spawn the test binary");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("MODE ring3 PID-OK true"), "{text}");
    assert!(text.contains("falling back to ring-3 mode"), "{text}");
}
