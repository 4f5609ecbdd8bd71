//! A new sandbox never runs with a dropped sandbox's rights. Regression: a dropped view's
//! page-table frames were unmapped and the next view's were often mapped at the same
//! addresses, where KVM still held its shadow pages of the old tables: a page granted
//! read-only to the new sandbox stayed writable as in the old one (found by privsep).

use dune_hw::sandbox::{Access, AllowAll, Config, Outcome, Sandbox, SandboxError};

#[test]
fn a_read_only_grant_stays_read_only_after_a_read_write_sandbox_is_dropped() {
    let page = Box::new([0u64; 512]);
    let addr = page.as_ptr() as u64;
    for round in 0..4 {
        let mut rw = match Sandbox::new(Config::default()) {
            Ok(s) => s,
            Err(e @ SandboxError::Dune(_)) => {
                if std::env::var("DUNEGC_REQUIRE_KVM").as_deref() == Ok("1") {
                    panic!("/dev/kvm required: {e}");
                }
                println!("SKIPPED a_read_only_grant_stays_read_only_after_a_read_write_sandbox_is_dropped: {e}");
                return;
            }
            Err(e) => panic!("{e}"),
        };
        let store = move || {
            // SAFETY: a store into the granted page (read-write here, read-only below).
            unsafe { core::ptr::write_volatile(addr as *mut u64, round + 1) };
            0
        };
        // SAFETY: the page stays allocated until the end of the test; no reference into
        // it is used while a sandbox runs.
        unsafe { rw.grant(addr, 4096, Access::ReadWrite).unwrap() };
        assert_eq!(
            rw.run_closure(store, &mut AllowAll).unwrap(),
            Outcome::Exited(0)
        );
        drop(rw);
        let mut ro = Sandbox::new(Config::default()).unwrap();
        // SAFETY: as above.
        unsafe { ro.grant(addr, 4096, Access::Read).unwrap() };
        let out = ro
            .run_closure(
                move || {
                    // SAFETY: deliberately a store into a read-only grant: must fault.
                    unsafe { core::ptr::write_volatile(addr as *mut u64, 666) };
                    0
                },
                &mut AllowAll,
            )
            .unwrap();
        assert!(
            matches!(out, Outcome::Fault { vector: 14, addr: Some(a), .. } if a == addr),
            "round {round}: {out}"
        );
        // SAFETY: plain read; no sandbox runs.
        assert_eq!(unsafe { core::ptr::read_volatile(&page[0]) }, round + 1);
    }
}
