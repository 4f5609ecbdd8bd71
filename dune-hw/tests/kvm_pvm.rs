//! PVM mode: the application and the monitor stubs run in the hypervisor's paravirtual
//! supervisor mode, natively. Own binary: the mode is per process. On hosts without a usable
//! PVM supervisor ABI the mode falls back to ring-3 (reported); these tests then print
//! SKIPPED (a failure under DUNEGC_REQUIRE_PVM=1).

use dune_hw::{DuneError, Mode, Options};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::Mutex;

/// One test at a time: each enters and leaves on its own thread, the VM is shared.
static SERIAL: Mutex<()> = Mutex::new(());

/// Enters PVM-mode Dune on this thread, or prints SKIPPED and returns false.
fn enter_pvm_or_skip(test: &str) -> bool {
    match dune_hw::enter_with(&Options {
        mode: Some(Mode::Pvm),
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
    if choice.mode != Mode::Pvm {
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
        .write_all(b"written in PVM supervisor mode")
        .unwrap();
    let mut s = String::new();
    std::fs::File::open(&path)
        .unwrap()
        .read_to_string(&mut s)
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    println!("pvm guest: 1e6 LCG in {compute:?}, x={x:#x}, map total {total}, file {s:?}");
    let stats = dune_hw::exit().unwrap();
    // SAFETY: getpid has no arguments.
    assert_eq!(pid, unsafe { libc::getpid() });
    assert_eq!(total, 4950);
    assert_eq!(s, "written in PVM supervisor mode");
    assert_eq!(
        stats.native_steps, 0,
        "nothing is emulated in PVM mode: {stats:?}"
    );
    // native speed: far below the ~2,500x of emulated CPL0
    assert!(
        compute < std::time::Duration::from_millis(200),
        "{compute:?}"
    );
    println!("pvm stats {stats:?}");
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
