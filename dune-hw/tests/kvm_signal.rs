//! A signal arriving while the thread runs in the guest interrupts KVM_RUN; its handler runs
//! on the host side of the thread (the exit loop) and the guest then continues. Own binary:
//! it installs a process-wide handler.

use dune_hw::DuneError;
use std::sync::atomic::{AtomicU64, Ordering};

static FIRED: AtomicU64 = AtomicU64::new(0);
static IN_GUEST: AtomicU64 = AtomicU64::new(0);
static STACK_LOW: AtomicU64 = AtomicU64::new(0);

extern "C" fn on_alarm(_sig: libc::c_int) {
    // the handler runs on the host side of the Dune thread: the guest's registers are the
    // interrupted code's
    if let Some(r) = dune_hw::guest_regs() {
        STACK_LOW.store(r.stack_low, Ordering::SeqCst);
    }
    FIRED.fetch_add(1, Ordering::SeqCst);
}

#[test]
fn sigalrm_during_guest_compute_is_handled_and_the_guest_continues() {
    // SAFETY: installing an async-signal-safe handler (one atomic add) for SIGALRM.
    unsafe {
        let mut sa: libc::sigaction = core::mem::zeroed();
        sa.sa_sigaction = on_alarm as *const () as usize;
        libc::sigaction(libc::SIGALRM, &sa, core::ptr::null_mut());
    }
    // another thread sends SIGALRM to this one 20 ms after we are in the guest
    // (thread-directed, so it must interrupt this thread's KVM_RUN)
    // SAFETY: pthread_self has no preconditions.
    let me = unsafe { libc::pthread_self() } as usize;
    let killer = std::thread::spawn(move || {
        while IN_GUEST.load(Ordering::SeqCst) == 0 {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        // SAFETY: `me` is alive (it joins us below).
        unsafe { libc::pthread_kill(me as libc::pthread_t, libc::SIGALRM) }
    });
    // (spawned before entering: clone is not supported inside Dune yet)
    match dune_hw::enter() {
        Ok(()) => {}
        Err(e @ (DuneError::Kmod(_) | DuneError::Unsupported { .. })) => {
            if std::env::var("DUNEGC_REQUIRE_KVM").as_deref() == Ok("1") {
                panic!("/dev/kvm required: {e}");
            }
            println!(
                "SKIPPED sigalrm_during_guest_compute_is_handled_and_the_guest_continues: {e}"
            );
            return;
        }
        Err(e) => panic!("enter failed: {e}"),
    }
    IN_GUEST.store(1, Ordering::SeqCst);
    // busy loop in the guest (no exits) until the handler ran, bounded by ~5 s of TSC
    // SAFETY: rdtsc has no preconditions.
    let t0 = unsafe { core::arch::x86_64::_rdtsc() };
    let mut spins = 0u64;
    let here = &spins as *const u64 as u64;
    while FIRED.load(Ordering::SeqCst) == 0 {
        spins += 1;
        // SAFETY: as above.
        if unsafe { core::arch::x86_64::_rdtsc() } - t0 > 12_000_000_000 {
            break;
        }
    }
    let stats = dune_hw::exit().unwrap();
    assert_eq!(killer.join().unwrap(), 0);
    assert_eq!(
        FIRED.load(Ordering::SeqCst),
        1,
        "handler ran once ({spins} spins)"
    );
    let low = STACK_LOW.load(Ordering::SeqCst);
    assert!(
        low != 0 && low <= here && here - low < (1 << 20),
        "guest stack_low {low:#x}, a local at {here:#x}"
    );
    assert!(
        stats.exits >= 2,
        "the signal interrupted KVM_RUN: {stats:?}"
    );
    println!("stats {stats:?}");
}
