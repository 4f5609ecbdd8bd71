//! An unhandled guest fault ends the process with a clear message and a register dump,
//! never a hang. The faulting part runs in a child process (this test binary re-executed).

use std::process::Command;

const CHILD_ENV: &str = "DUNE_HW_FAULT_CHILD";

#[test]
fn unhandled_fault_aborts_with_a_register_dump() {
    if std::env::var(CHILD_ENV).is_ok() {
        child();
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .args([
            "--exact",
            "unhandled_fault_aborts_with_a_register_dump",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .output()
        .unwrap();
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
