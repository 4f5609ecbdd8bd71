//! The PVM paravirtual supervisor ABI against the real /dev/kvm: detection, the self-test,
//! and the mode choice with its fallback. On hosts without PVM the probe must say `NotPvm`
//! and the tests that need PVM print SKIPPED (a failure under DUNEGC_REQUIRE_PVM=1).

use kmod::pvm::{self, PvmStatus};
use kmod::{Mode, System};

/// The open system, or None after printing SKIPPED (a failure under DUNEGC_REQUIRE_KVM=1).
fn system_or_skip(test: &str) -> Option<System> {
    match System::open() {
        Ok(s) => Some(s),
        Err(e) => {
            if std::env::var("DUNEGC_REQUIRE_KVM").as_deref() == Ok("1") {
                panic!("{test}: /dev/kvm required (DUNEGC_REQUIRE_KVM=1) but: {e}");
            }
            println!("SKIPPED {test}: {e}");
            None
        }
    }
}

fn skip_without_pvm(test: &str, why: &str) {
    if std::env::var("DUNEGC_REQUIRE_PVM").as_deref() == Ok("1") {
        panic!("{test}: PVM required (DUNEGC_REQUIRE_PVM=1) but: {why}");
    }
    println!("SKIPPED {test}: {why}");
}

#[test]
fn probe_reports_signature_features_and_self_test() {
    let Some(sys) = system_or_skip("probe_reports_signature_features_and_self_test") else {
        return;
    };
    let status = pvm::probe(&sys).expect("probing never fails on an open /dev/kvm");
    println!("PVM probe: {status:?}");
    assert_eq!(status.is_pvm_host(), pvm::is_pvm_host(&sys).unwrap());
    match status {
        PvmStatus::NotPvm => skip_without_pvm(
            "probe_reports_signature_features_and_self_test",
            "no PVM signature MSR on this host",
        ),
        PvmStatus::Usable {
            features,
            self_test,
        } => {
            assert_eq!(features & pvm::MODE_FLAGS, pvm::MODE_FLAGS);
            // every measured operation took some time, and the user loop ran natively
            assert!(self_test.syscall_round_trip_cycles > 0);
            assert!(self_test.flush_round_trip_cycles > 0);
            assert!(self_test.page_fault_cycles > 0);
            assert!(self_test.exit_round_trip_cycles > self_test.syscall_round_trip_cycles);
            assert!(self_test.loop_1e5_cycles < 2_000_000, "{self_test:?}");
        }
        PvmStatus::Unusable { features, reason } => {
            if std::env::var("DUNEGC_REQUIRE_PVM").as_deref() == Ok("1") {
                panic!("PVM host (features {features:#x}) failed the probe: {reason}");
            }
            println!("PVM host, supervisor mode unusable: {reason}");
        }
    }
}

#[test]
fn detected_mode_is_pvm_where_the_probe_passes() {
    let Some(sys) = system_or_skip("detected_mode_is_pvm_where_the_probe_passes") else {
        return;
    };
    if std::env::var("DUNEGC_DUNE_MODE").is_ok_and(|v| !v.is_empty() && v != "auto") {
        println!("SKIPPED detected_mode_is_pvm_where_the_probe_passes: DUNEGC_DUNE_MODE set");
        return;
    }
    let choice = kmod::mode::choose(&sys, None).unwrap();
    println!("mode: {}", choice.reason);
    match &choice.pvm {
        Some(PvmStatus::Usable { .. }) => assert_eq!(choice.mode, Mode::Pvm),
        Some(PvmStatus::Unusable { .. }) => {
            assert_eq!(choice.mode, Mode::Ring3);
            assert!(choice.reason.contains("fell back to ring-3"));
        }
        Some(PvmStatus::NotPvm) | None => {
            assert!(!choice.pvm_host);
            assert_eq!(choice.mode, Mode::Ring0);
        }
    }
    // forcing ring-3 or ring-0 never probes
    let c3 = kmod::mode::choose(&sys, Some(Mode::Ring3)).unwrap();
    assert_eq!(c3.mode, Mode::Ring3);
    assert!(c3.pvm.is_none());
}

/// Runs this test binary's test `name` in a child process with `env` set; returns its output.
fn run_child(name: &str, env: &[(&str, &str)]) -> String {
    let mut cmd = std::process::Command::new(std::env::current_exe().expect("test binary"));
    cmd.args(["--exact", name, "--nocapture", "--include-ignored"]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("spawn the test binary");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "child {name} failed:\n{text}");
    text
}

/// Child of the fallback tests (ignored on its own): the choices with the environment they set.
#[test]
#[ignore = "run as a child process by a_failing_probe_falls_back_to_ring3_with_a_message"]
fn child_choose_with_injected_failure() {
    let sys = System::open().expect("the parent checked /dev/kvm");
    let auto = kmod::mode::choose(&sys, None).unwrap();
    let forced = kmod::mode::choose(&sys, Some(Mode::Pvm)).unwrap();
    println!("CHOICE auto={:?} forced={:?}", auto.mode, forced.mode);
    println!("REASON {}", forced.reason);
}

#[test]
fn a_failing_probe_falls_back_to_ring3_with_a_message() {
    let Some(sys) = system_or_skip("a_failing_probe_falls_back_to_ring3_with_a_message") else {
        return;
    };
    if !pvm::is_pvm_host(&sys).unwrap() {
        skip_without_pvm(
            "a_failing_probe_falls_back_to_ring3_with_a_message",
            "no PVM signature MSR on this host",
        );
        return;
    }
    let out = run_child(
        "child_choose_with_injected_failure",
        &[("DUNEGC_PVM_SELF_TEST_FAIL", "1"), ("DUNEGC_DUNE_MODE", "")],
    );
    assert!(out.contains("CHOICE auto=Ring3 forced=Ring3"), "{out}");
    assert!(
        out.contains("dune: PVM supervisor mode not used")
            && out.contains("falling back to ring-3 mode"),
        "the fallback is said on stderr: {out}"
    );
    assert!(
        out.contains("fell back to ring-3"),
        "and in the reason: {out}"
    );
}

#[test]
fn a_self_test_that_hangs_is_killed_and_falls_back() {
    let Some(sys) = system_or_skip("a_self_test_that_hangs_is_killed_and_falls_back") else {
        return;
    };
    if !pvm::is_pvm_host(&sys).unwrap() {
        skip_without_pvm(
            "a_self_test_that_hangs_is_killed_and_falls_back",
            "no PVM signature MSR on this host",
        );
        return;
    }
    let t = std::time::Instant::now();
    let out = run_child(
        "child_choose_with_injected_failure",
        &[
            ("DUNEGC_PVM_SELF_TEST_HANG", "1"),
            ("DUNEGC_PVM_SELF_TEST_TIMEOUT_MS", "500"),
            ("DUNEGC_DUNE_MODE", ""),
        ],
    );
    assert!(out.contains("CHOICE auto=Ring3 forced=Ring3"), "{out}");
    assert!(
        out.contains("did not finish within 500 ms (killed)"),
        "the timeout is the reason: {out}"
    );
    // two probes (auto, forced), each bounded by the timeout
    assert!(
        t.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        t.elapsed()
    );
}
