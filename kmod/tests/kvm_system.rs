//! kmod against the real /dev/kvm: capabilities, mode detection, VM, memory slots, vCPU.

use kmod::{KmodError, System, Vm};

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

#[test]
fn missing_device_and_non_kvm_device_are_typed_errors() {
    let e = System::open_at(c"/nonexistent/kvm").unwrap_err();
    assert!(matches!(e, KmodError::DeviceMissing), "{e}");
    assert!(e.to_string().contains("/dev/kvm does not exist"));
    let e = System::open_at(c"/dev/null").unwrap_err();
    assert!(
        matches!(
            e,
            KmodError::Unsupported {
                feature: "KVM API version 12",
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn capabilities_mode_vm_slots_vcpu() {
    let Some(sys) = system_or_skip("capabilities_mode_vm_slots_vcpu") else {
        return;
    };
    assert!(sys.phys_bits() >= 47);
    assert!(sys.nr_memslots() >= 32);
    let choice = kmod::mode::choose(&sys, None).unwrap();
    println!("mode: {}", choice.reason);
    let vm = Vm::create(sys).unwrap();
    let buf = vec![0u8; 64 << 10];
    let start = (buf.as_ptr() as u64).next_multiple_of(4096);
    vm.with_memslots(|s, fd| s.register(&mut { fd }, start, 32 << 10))
        .unwrap();
    vm.with_memslots(|s, fd| s.unregister(&mut { fd }, start + 4096, 4096))
        .unwrap();
    assert_eq!(vm.with_memslots(|s, _| s.slots().len()), 2);
    let vcpu = vm.create_vcpu(0).unwrap();
    println!("KVM_CAP_SYNC_REGS in use: {}", vcpu.uses_sync_regs());
    let regs = vcpu.regs().unwrap();
    assert_eq!(regs.rip, 0xfff0, "reset vector");
}

#[test]
fn permission_denied_names_the_fix() {
    if std::env::var("KMOD_PERM_CHILD").is_ok() {
        match System::open() {
            Err(e) => println!("CHILD-ERROR {e}"),
            Ok(_) => println!("CHILD-OPENED"),
        }
        return;
    }
    // Only meaningful as root with /dev/kvm not world-accessible: re-run this test as
    // `nobody`.
    let world_rw = std::fs::metadata("/dev/kvm")
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o006 == 0o006);
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || world_rw.unwrap_or(true) {
        println!(
            "SKIPPED permission_denied_names_the_fix: needs root and a /dev/kvm closed to others"
        );
        return;
    }
    let out = std::os::unix::process::CommandExt::uid(
        &mut std::process::Command::new(std::env::current_exe().unwrap()),
        65534,
    )
    .args(["--exact", "permission_denied_names_the_fix", "--nocapture"])
    .env("KMOD_PERM_CHILD", "1")
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(
            "CHILD-ERROR permission denied opening /dev/kvm: add this user to the `kvm` group"
        ),
        "{stdout}"
    );
}
