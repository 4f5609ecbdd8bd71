//! Sandboxes in a ring-0 process (CPL0 is emulated on PVM hosts: kept tiny). The sandbox
//! itself runs at CPL3 on its own vCPU; the caller asks from outside Dune and from a Dune
//! thread at CPL0 (the hypercall goes through the ring-0 syscall path).

use dune_hw::sandbox::{
    sys, AllowAll, Config, Memory, Outcome, Sandbox, SandboxError, Syscall, Verdict,
};

#[test]
fn ring0_process_runs_a_sandbox_with_the_same_api() {
    let cfg = Config {
        dune: dune_hw::Options {
            mode: Some(dune_hw::Mode::Ring0),
            ..Default::default()
        },
        ..Config::default()
    };
    let mut sb = match Sandbox::new(cfg) {
        Ok(s) => s,
        Err(e @ SandboxError::Dune(_)) => {
            if std::env::var("DUNEGC_REQUIRE_KVM").as_deref() == Ok("1") {
                panic!("/dev/kvm required: {e}");
            }
            println!("SKIPPED ring0_process_runs_a_sandbox_with_the_same_api: {e}");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    assert_eq!(dune_hw::mode().unwrap().mode, dune_hw::Mode::Ring0);
    let mut deny = |c: &Syscall, _m: &Memory<'_>| {
        if c.name() == "getpid" {
            Verdict::Deny(libc::EACCES)
        } else {
            Verdict::Allow
        }
    };
    let out = sb.run_closure(|| sys::getpid() as i32, &mut deny).unwrap();
    assert_eq!(out, Outcome::Exited(-libc::EACCES));
    dune_hw::enter().unwrap();
    let inside = sb.run_closure(|| sys::getpid() as i32, &mut AllowAll);
    let fault = sb.run_closure(
        || {
            // SAFETY: deliberately privileged at CPL3.
            unsafe { core::arch::asm!("hlt") };
            0
        },
        &mut AllowAll,
    );
    dune_hw::exit().unwrap();
    assert_eq!(inside.unwrap(), Outcome::Exited(std::process::id() as i32));
    assert!(matches!(fault.unwrap(), Outcome::Fault { vector: 13, .. }));
}
