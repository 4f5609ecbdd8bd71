//! Shared by the KVM test files: skip (visibly) where Dune cannot run.

use privsep::{PrivsepError, Recycler, SPolicy};

/// `true` if sthreads can run here; otherwise prints `SKIPPED <test>: <why>` (and panics
/// with DUNEGC_REQUIRE_KVM=1, as the other KVM suites do).
pub fn dune_available(test: &str) -> bool {
    match Recycler::new(&SPolicy::new()) {
        Ok(_) => true,
        Err(e @ PrivsepError::Sandbox(_)) if e.is_dune_unavailable() => {
            if std::env::var("DUNEGC_REQUIRE_KVM").as_deref() == Ok("1") {
                panic!("/dev/kvm required: {e}");
            }
            println!("SKIPPED {test}: {e}");
            false
        }
        Err(e) => panic!("{e}"),
    }
}
