//! The Dune cost ledger counts real events: arm N pages (clear their D bits), write k of
//! them, and the next scan reports exactly k D bits found set; fresh pages mapped into the
//! guest, forwarded syscalls, monitor-resolved faults and flushes are counted where they
//! happen. Own binary: the ledger is process-wide, so nothing else may run in this process
//! meanwhile (one test function).

use dune_hw::{BlockClass, DuneError, ExitReason};

const N_PAGES: usize = 64;

#[test]
fn ledger_counts_the_events_it_names() {
    // initialise the ledger's clock rate before entering (its first snapshot measures it)
    let _ = dune_hw::ledger();
    match dune_hw::enter() {
        Ok(()) => {}
        Err(e @ (DuneError::Kmod(_) | DuneError::Unsupported { .. })) => {
            if std::env::var("DUNEGC_REQUIRE_KVM").as_deref() == Ok("1") {
                panic!("/dev/kvm required: {e}");
            }
            println!("SKIPPED ledger_counts_the_events_it_names: {e}");
            return;
        }
        Err(e) => panic!("enter failed: {e}"),
    }
    let view = dune_hw::dirty_view().expect("Dune is initialised");

    // a fresh mapping, first touched in the guest: its pages become present leaves
    let before = dune_hw::ledger();
    // SAFETY: a fresh anonymous mapping, used only here and unmapped at the end.
    let p = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            N_PAGES * 4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    } as *mut u8;
    assert_ne!(p, libc::MAP_FAILED.cast(), "mmap failed");
    let page = |i: usize| p.wrapping_add(i * 4096);
    for i in 0..N_PAGES {
        // SAFETY: inside the mapping above.
        unsafe { page(i).write_volatile(1) };
    }
    let d = dune_hw::ledger().since(&before);
    assert!(
        d.fresh_pages >= N_PAGES as u64,
        "{N_PAGES} pages first touched, fresh leaves counted: {}",
        d.fresh_pages
    );
    assert!(
        d.exits[ExitReason::Syscall as usize] >= 1,
        "the mmap is a forwarded syscall: {d:?}"
    );

    // arm: clear every D bit of the range (the fresh leaves have D preset), flush
    let (start, end) = (p as u64, p as u64 + (N_PAGES * 4096) as u64);
    let before = dune_hw::ledger();
    let mut cleared_now = 0u64;
    dune_hw::flush(view.collect_and_clear(start, end, &mut |_| cleared_now += 1));
    let d = dune_hw::ledger().since(&before);
    assert_eq!(d.dirty_scanned, N_PAGES as u64, "{d:?}");
    assert_eq!(d.dirty_cleared, cleared_now, "{d:?}");
    assert!(
        cleared_now >= N_PAGES as u64,
        "every fresh writable leaf has D preset (and was written): {d:?}"
    );
    assert_eq!(
        d.flush_local + d.flush_guest_full + d.flush_deferred,
        1,
        "one flush for the range: {d:?}"
    );

    // write k pages, scan again: exactly k D bits found set and cleared
    let written = [0usize, 3, 17, 40, 63];
    // the host counters' events of one KVM_RUN land when it returns: an exit around
    // the writes (a forwarded getpid)
    // SAFETY: getpid has no arguments.
    unsafe { libc::syscall(libc::SYS_getpid) };
    let host_before = dune_hw::ledger();
    for &i in &written {
        // SAFETY: inside the mapping above.
        unsafe { page(i).write_volatile(2) };
    }
    // SAFETY: as above.
    unsafe { libc::syscall(libc::SYS_getpid) };
    let h = dune_hw::ledger().since(&host_before);
    match dune_hw::host_counter_status() {
        Ok(_) if h.host_threads > 0 => {
            // each write after the D clear is one shadow fault: KVM walks the guest
            // table and sets the D bit; nothing else ran on this vCPU meanwhile but the
            // two getpid exits
            let k = written.len() as u64;
            assert!(
                (k..=k + 4).contains(&h.host_events[dune_hw::EV_SET_DIRTY]),
                "{k} writes after a D clear, D bits KVM set: {h:?}"
            );
            assert!(
                (k..=k + 8).contains(&h.host_events[dune_hw::EV_WALK]),
                "{k} shadow faults, guest walks: {h:?}"
            );
            assert!(
                (1..=2).contains(&h.host_events[dune_hw::EV_USERSPACE_EXIT]),
                "one KVM_RUN ended in the window (the second getpid): {h:?}"
            );
        }
        other => println!("host counters not counted here ({other:?}): checks skipped"),
    }
    assert_eq!(
        view.count_written(start, end),
        written.len() as u64,
        "written, not collected yet"
    );
    let before = dune_hw::ledger();
    let mut found = Vec::new();
    dune_hw::flush(view.collect_and_clear(start, end, &mut |va| found.push(va)));
    let d = dune_hw::ledger().since(&before);
    assert_eq!(d.dirty_cleared, written.len() as u64, "{d:?}");
    assert_eq!(
        d.dirty_written,
        written.len() as u64,
        "each was set by the MMU, none preset: {d:?}"
    );
    assert_eq!(found.len(), written.len());
    assert_eq!(view.count_written(start, end), 0, "all collected");
    assert_eq!(d.dirty_scanned, N_PAGES as u64);

    // syscalls: each getpid is one exit with the syscall reason
    let before = dune_hw::ledger();
    for _ in 0..5 {
        // SAFETY: getpid has no arguments.
        unsafe { libc::syscall(libc::SYS_getpid) };
    }
    let d = dune_hw::ledger().since(&before);
    assert_eq!(d.exits[ExitReason::Syscall as usize], 5, "{d:?}");
    assert_eq!(d.forwarded, 5, "getpid never blocks: {d:?}");
    assert_eq!(d.total_blocked(), 0, "{d:?}");
    assert!(d.in_kvm_run > std::time::Duration::ZERO);

    // a forwarded call that blocks (a 3 ms futex wait on a word nobody changes) is counted
    // apart, with its host time, and left out of the unblocked handling time
    let before = dune_hw::ledger();
    let word = std::sync::atomic::AtomicU32::new(0);
    let ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 3_000_000,
    };
    // SAFETY: FUTEX_WAIT on a live aligned word with a live timespec.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            0u32,
            &ts as *const libc::timespec,
        )
    };
    let d = dune_hw::ledger().since(&before);
    assert_eq!(d.blocked[BlockClass::Futex as usize], 1, "{d:?}");
    assert_eq!((d.forwarded, d.total_blocked()), (0, 1), "{d:?}");
    let waited = d.blocked_time[BlockClass::Futex as usize];
    assert!(waited >= std::time::Duration::from_micros(2_500), "{d:?}");
    assert!(
        d.exit_handling_unblocked() + waited <= d.total_exit_handling(),
        "the wait is inside the exit's handling time and left out of the rest: {d:?}"
    );

    // a full flush from guest code
    let before = dune_hw::ledger();
    dune_hw::flush_tlb_all();
    let d = dune_hw::ledger().since(&before);
    assert_eq!(d.flush_guest_full, 1, "{d:?}");

    // first touches of host pages that are not resident: one host page fault each, taken
    // by KVM inside KVM_RUN and counted there; populated ahead, none
    let touched = 40usize;
    let q = fresh_4k_mapping();
    // the counts of one KVM_RUN land when it returns: an exit before each snapshot
    let sync = || {
        // SAFETY: getpid has no arguments.
        unsafe { libc::syscall(libc::SYS_getpid) };
    };
    sync();
    let before = dune_hw::ledger();
    for i in 0..touched {
        // SAFETY: inside the fresh mapping.
        unsafe { q.wrapping_add(i * 4096).write_volatile(1) };
    }
    sync();
    let d = dune_hw::ledger().since(&before);
    assert!(
        (touched as u64..=touched as u64 + 8).contains(&d.host_faults_in_run),
        "{touched} unpopulated pages first touched: {d:?}"
    );
    let r = fresh_4k_mapping();
    // SAFETY: populating our own fresh mapping.
    let rc = unsafe { libc::madvise(r.cast(), N_PAGES * 4096, libc::MADV_POPULATE_WRITE) };
    assert_eq!(rc, 0, "populate");
    sync();
    let before = dune_hw::ledger();
    for i in 0..touched {
        // SAFETY: inside the populated mapping.
        unsafe { r.wrapping_add(i * 4096).write_volatile(1) };
    }
    sync();
    let d = dune_hw::ledger().since(&before);
    assert!(
        d.host_faults_in_run <= 8,
        "populated pages take no host fault: {d:?}"
    );

    // SAFETY: our mappings, no longer used.
    unsafe {
        libc::munmap(p.cast(), N_PAGES * 4096);
        libc::munmap(q.cast(), N_PAGES * 4096);
        libc::munmap(r.cast(), N_PAGES * 4096);
    }
    dune_hw::exit().expect("leave Dune");
}

/// A fresh anonymous mapping of `N_PAGES` pages, kept in 4 KiB host pages (no THP: one
/// host fault per page touched).
fn fresh_4k_mapping() -> *mut u8 {
    // SAFETY: a fresh anonymous mapping; the caller unmaps it.
    let p = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            N_PAGES * 4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED, "mmap failed");
    // SAFETY: advising our own fresh mapping.
    let rc = unsafe { libc::madvise(p, N_PAGES * 4096, libc::MADV_NOHUGEPAGE) };
    assert_eq!(rc, 0, "MADV_NOHUGEPAGE");
    p.cast()
}
