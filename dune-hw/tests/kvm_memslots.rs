//! Memory-slot eviction: with a small slot budget, many mappings made and removed inside
//! Dune still work (unused slots are deleted when the table is full). Own binary: the slot
//! budget is per process.

use dune_hw::{DuneError, Options};

#[test]
fn many_mappings_with_a_small_slot_budget() {
    // enough for the process's current mappings plus ~2 rounds of the mappings below
    let n_maps = std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .count();
    let opts = Options {
        max_memslots: Some(n_maps + 40),
        ..Options::default()
    };
    let base = 0x3000_0000_0000u64;
    match dune_hw::enter_with(&opts) {
        Ok(()) => {}
        Err(e @ (DuneError::Kmod(_) | DuneError::Unsupported { .. })) => {
            if std::env::var("DUNEGC_REQUIRE_KVM").as_deref() == Ok("1") {
                panic!("/dev/kvm required: {e}");
            }
            println!("SKIPPED many_mappings_with_a_small_slot_budget: {e}");
            return;
        }
        Err(e) => panic!("enter failed: {e}"),
    }
    let mut sum = 0u64;
    for round in 0..8u64 {
        // 16 live mappings at a time, each its own VMA (and slot), then all removed
        let mut maps = Vec::with_capacity(16);
        for i in 0..16u64 {
            // a new address every round (a hint, not MAP_FIXED): new slots each round
            let hint = base + round * (1 << 30) + i * (1 << 20);
            // SAFETY: fresh anonymous mapping (the hint is not MAP_FIXED), unmapped below.
            let p = unsafe {
                libc::mmap(
                    hint as *mut libc::c_void,
                    3 * 4096,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            } as *mut u64;
            // SAFETY: inside the mapping; guard the neighbours so VMAs do not merge.
            unsafe {
                libc::mprotect(p.cast(), 4096, libc::PROT_NONE);
                core::ptr::write_volatile(p.add(512), round * 100 + i);
            }
            maps.push(p);
        }
        for &p in &maps {
            // SAFETY: written above.
            sum += unsafe { core::ptr::read_volatile(p.add(512)) };
            // SAFETY: our mapping.
            unsafe { libc::munmap(p.cast(), 3 * 4096) };
        }
    }
    let slots = dune_hw::Dune::get().unwrap().n_memslots();
    dune_hw::exit().unwrap();
    assert!(slots <= n_maps + 40, "{slots} slots");
    let expect: u64 = (0..8u64)
        .flat_map(|r| (0..16u64).map(move |i| r * 100 + i))
        .sum();
    assert_eq!(sum, expect);
}
