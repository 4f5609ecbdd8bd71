//! Ordinary Rust inside Dune (ring-3 mode, the default here). Needs /dev/kvm.

use dune_hw::{DuneError, Mode, Options};

/// Enters Dune on this thread, or prints SKIPPED and returns None.
fn enter_or_skip(test: &str, mode: Option<Mode>) -> Option<()> {
    match dune_hw::enter_with(&Options { mode }) {
        Ok(()) => Some(()),
        Err(e @ (DuneError::Kmod(_) | DuneError::Unsupported { .. })) => {
            if std::env::var("DUNEGC_REQUIRE_KVM").as_deref() == Ok("1") {
                panic!("{test}: /dev/kvm required (DUNEGC_REQUIRE_KVM=1) but: {e}");
            }
            println!("SKIPPED {test}: {e}");
            None
        }
        Err(e) => panic!("{test}: enter failed: {e}"),
    }
}

#[test]
fn getpid_and_println_inside() {
    let host_pid = std::process::id();
    if enter_or_skip("getpid_and_println_inside", Some(Mode::Ring3)).is_none() {
        return;
    }
    let pid = std::process::id();
    println!("hello from inside Dune, pid {pid}");
    let stats = dune_hw::exit().expect("exit");
    assert_eq!(pid, host_pid);
    assert!(stats.syscalls >= 2, "{stats:?}");
    println!("stats {stats:?}");
}
