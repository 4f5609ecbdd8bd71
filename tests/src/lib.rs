//! Helpers shared by the cross-crate integration tests in `tests/tests/`.

/// Enter Dune on this thread, or say why not: `Ok(false)` after printing
/// `SKIPPED <test>: <reason>`. With `DUNEGC_REQUIRE_KVM=1` (CI) a skip is a failure.
pub fn enter_dune_or_skip(test: &str) -> Result<bool, String> {
    match dune_hw::enter() {
        Ok(()) => Ok(true),
        Err(e) if std::env::var("DUNEGC_REQUIRE_KVM").as_deref() == Ok("1") => Err(format!(
            "{test}: /dev/kvm required (DUNEGC_REQUIRE_KVM=1) but: {e}"
        )),
        Err(e) => {
            println!("SKIPPED {test}: {e}");
            Ok(false)
        }
    }
}
