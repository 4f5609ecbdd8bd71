//! `DUNEGC_DIRTY=dune` on a program that knows nothing about Dune: the collector enters
//! Dune process-wide at start-up (every thread created afterwards runs in Dune) and uses
//! the hardware dirty bits; the multi-threaded workload checks every object. Without
//! /dev/kvm the program says so and falls back to the best other backend.

use std::process::Command;

#[test]
fn dunegc_dirty_dune_runs_a_whole_program_in_dune() {
    let out = Command::new(env!("CARGO_BIN_EXE_dune_env_program"))
        .env("DUNEGC_DIRTY", "dune")
        .env("DUNEGC_INITIAL_HEAP_SIZE", "2M")
        .output()
        .expect("run the program");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "program failed: {}\n{stdout}\n{stderr}",
        out.status
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("dune-env-program"))
        .expect("result line");
    let kvm = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm");
    if let Err(e) = kvm {
        if std::env::var("DUNEGC_REQUIRE_KVM").as_deref() == Ok("1") {
            panic!("/dev/kvm required (DUNEGC_REQUIRE_KVM=1) but: {e}");
        }
        println!("SKIPPED dunegc_dirty_dune_runs_a_whole_program_in_dune: /dev/kvm: {e} (fallback checked: {line})");
        assert!(
            stderr.contains("dune"),
            "the fallback was not reported: {stderr}"
        );
        return;
    }
    assert!(line.contains("backend=dune"), "{line}\n{stderr}");
    assert!(line.contains("in_dune=true"), "{line}");
    assert!(
        !line.contains("incremental_cycles=0"),
        "no incremental cycle: {line}"
    );
    assert!(!line.contains("arming failed"), "{line}");
    println!("{line}");
}
