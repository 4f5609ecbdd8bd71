//! An unhandled guest fault ends the process with a clear message and a register dump,
//! never a hang. The faulting part runs in a child process (this test binary re-executed).

use std::process::Command;

const CHILD_ENV: &str = "DUNE_HW_FAULT_CHILD";

/// Runs `test` of this binary in a child process with CHILD_ENV set.
fn run_child(test: &str) -> std::process::Output {
    let exe = std::env::current_exe().unwrap();
    Command::new(exe)
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .output()
        .unwrap()
}

#[test]
fn invalid_opcode_aborts_with_a_register_dump() {
    if std::env::var(CHILD_ENV).is_ok() {
        if enter_in_child("invalid_opcode_aborts_with_a_register_dump") {
            // SAFETY: deliberately invalid: the monitor must turn it into a clear abort.
            unsafe { core::arch::asm!("ud2") };
        }
        return;
    }
    let out = run_child("invalid_opcode_aborts_with_a_register_dump");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if let Some(l) = stdout.lines().find(|l| l.starts_with("SKIPPED")) {
        println!("{l}");
        return;
    }
    assert!(!out.status.success());
    assert!(
        stderr.contains("unhandled guest exception #UD (vector 6)"),
        "stderr: {stderr}"
    );
    assert!(
        stderr.contains("code at rip: [0f, 0b"),
        "the ud2 itself: {stderr}"
    );
}

fn enter_in_child(test: &str) -> bool {
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

#[test]
fn unhandled_fault_aborts_with_a_register_dump() {
    if std::env::var(CHILD_ENV).is_ok() {
        child();
        return;
    }
    let out = run_child("unhandled_fault_aborts_with_a_register_dump");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if let Some(l) = stdout.lines().find(|l| l.starts_with("SKIPPED")) {
        println!("{l}");
        return;
    }
    assert!(
        !out.status.success(),
        "child must not succeed: {stdout} {stderr}"
    );
    assert!(
        stderr.contains("unhandled guest page fault"),
        "stderr: {stderr}"
    );
    assert!(stderr.contains("address 0x10"), "stderr: {stderr}");
    assert!(stderr.contains("rip="), "register dump: {stderr}");
}

fn child() {
    match dune_hw::enter() {
        Ok(()) => {}
        Err(e) => {
            if std::env::var("DUNEGC_REQUIRE_KVM").as_deref() == Ok("1") {
                panic!("/dev/kvm required: {e}");
            }
            println!("SKIPPED unhandled_fault_aborts_with_a_register_dump: {e}");
            return;
        }
    }
    // SAFETY: deliberately invalid: the monitor must turn it into a clear abort.
    unsafe { core::ptr::write_volatile(0x10 as *mut u64, 1) };
    println!("not reached");
}

#[test]
fn stack_overflow_in_a_dune_thread_hits_the_guard_page() {
    if std::env::var(CHILD_ENV).is_ok() {
        if enter_in_child("stack_overflow_in_a_dune_thread_hits_the_guard_page") {
            #[allow(unconditional_recursion)]
            fn deep(n: u64) -> u64 {
                let pad = std::hint::black_box([n; 64]);
                deep(pad[7] + 1) + pad[3]
            }
            let t = std::thread::Builder::new()
                .stack_size(256 << 10)
                .spawn(|| deep(0))
                .unwrap();
            println!("not reached {:?}", t.join());
        }
        return;
    }
    let out = run_child("stack_overflow_in_a_dune_thread_hits_the_guard_page");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if let Some(l) = stdout.lines().find(|l| l.starts_with("SKIPPED")) {
        println!("{l}");
        return;
    }
    assert!(!out.status.success(), "{stdout} {stderr}");
    assert!(!stdout.contains("not reached"), "{stdout}");
    assert!(
        stderr.contains("unhandled guest page fault (SIGSEGV)") && stderr.contains("write"),
        "the guard page below the thread's stack faults: {stderr}"
    );
}

#[test]
fn execve_replaces_the_program_which_runs_outside_dune() {
    if std::env::var(CHILD_ENV).is_ok() {
        if enter_in_child("execve_replaces_the_program_which_runs_outside_dune") {
            use std::os::unix::process::CommandExt;
            let e = std::process::Command::new("/bin/sh")
                .args([
                    "-c",
                    "echo exec from Dune; for f in /proc/$$/fd/*; do readlink $f; done | grep -c kvm",
                ])
                .exec();
            println!("exec failed: {e}");
        }
        return;
    }
    let out = run_child("execve_replaces_the_program_which_runs_outside_dune");
    let stdout = String::from_utf8_lossy(&out.stdout);
    if let Some(l) = stdout.lines().find(|l| l.starts_with("SKIPPED")) {
        println!("{l}");
        return;
    }
    // no KVM fd (VM, vCPU, /dev/kvm) survived the exec: grep counts 0 (and exits 1)
    assert!(stdout.ends_with("exec from Dune\n0\n"), "{stdout}");
}
