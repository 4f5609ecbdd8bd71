//! Ring-0 mode (classic Dune): functional check only — on PVM hosts every guest CPL0
//! instruction is emulated (~2,500x slower), so the work is tiny. Own binary: the mode is
//! per process.

use dune_hw::{DuneError, Mode, Options};

#[test]
fn ring0_compute_getpid_flush_and_leave() {
    match dune_hw::enter_with(&Options {
        mode: Some(Mode::Ring0),
    }) {
        Ok(()) => {}
        Err(e @ (DuneError::Kmod(_) | DuneError::Unsupported { .. })) => {
            if std::env::var("DUNEGC_REQUIRE_KVM").as_deref() == Ok("1") {
                panic!("/dev/kvm required: {e}");
            }
            println!("SKIPPED ring0_compute_getpid_flush_and_leave: {e}");
            return;
        }
        Err(e) => panic!("enter failed: {e}"),
    }
    let mut x = 1u64;
    for i in 0..200u64 {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(i);
    }
    // SAFETY: getpid has no arguments.
    let pid = unsafe { libc::getpid() };
    let mut cs: u16;
    // SAFETY: reading CS has no side effects.
    unsafe { core::arch::asm!("mov {0:x}, cs", out(reg) cs) };
    dune_hw::flush_tlb_all();
    let stats = dune_hw::exit().unwrap();
    assert_eq!(cs & 3, 0, "CPL0 in ring-0 mode");
    assert_eq!(pid as u32, std::process::id());
    let mut y = 1u64;
    for i in 0..200u64 {
        y = y.wrapping_mul(6364136223846793005).wrapping_add(i);
    }
    assert_eq!(x, y);
    assert!(stats.syscalls >= 1);
    println!("ring-0 stats {stats:?}");
}
