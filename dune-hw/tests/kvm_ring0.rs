//! Ring-0 mode (classic Dune): functional check only — on PVM hosts every guest CPL0
//! instruction is emulated (~2,500x slower), so the work is tiny. Own binary: the mode is
//! per process. Instructions KVM's emulator cannot run (libc's AVX/EVEX string functions,
//! SSE in hashbrown, `rdtscp` in the vDSO clock) are stepped natively at CPL3 by the
//! monitor, so ordinary Rust works, slowly.

use dune_hw::{DuneError, Mode, Options};
use std::collections::HashMap;
use std::io::{Read, Write};

/// Enters ring-0 Dune on this thread, or prints SKIPPED and returns false.
fn enter_ring0_or_skip(test: &str) -> bool {
    match dune_hw::enter_with(&Options {
        mode: Some(Mode::Ring0),
        ..Options::default()
    }) {
        Ok(()) => true,
        Err(e @ (DuneError::Kmod(_) | DuneError::Unsupported { .. })) => {
            if std::env::var("DUNEGC_REQUIRE_KVM").as_deref() == Ok("1") {
                panic!("/dev/kvm required: {e}");
            }
            println!("SKIPPED {test}: {e}");
            false
        }
        Err(e) => panic!("enter failed: {e}"),
    }
}

#[test]
fn ring0_collections_format_files_clock() {
    if !enter_ring0_or_skip("ring0_collections_format_files_clock") {
        return;
    }
    let t = std::time::Instant::now();
    let mut m = HashMap::new();
    for i in 0..100u64 {
        m.insert(format!("k{i}"), i);
    }
    let total: u64 = m.values().sum();
    let path = std::env::temp_dir().join(format!("dune-ring0-{}", std::process::id()));
    std::fs::File::create(&path)
        .unwrap()
        .write_all(b"written at CPL0")
        .unwrap();
    let mut s = String::new();
    std::fs::File::open(&path)
        .unwrap()
        .read_to_string(&mut s)
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    println!(
        "ring-0 guest: map total {total}, file {s:?}, {:?}",
        t.elapsed()
    );
    let stats = dune_hw::exit().unwrap();
    assert_eq!(total, 4950);
    assert_eq!(s, "written at CPL0");
    assert!(stats.native_steps > 0, "{stats:?}");
    println!("ring-0 stats {stats:?}");
}

#[test]
fn ring0_compute_getpid_flush_and_leave() {
    match dune_hw::enter_with(&Options {
        mode: Some(Mode::Ring0),
        ..Options::default()
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
    let mut v: Vec<u64> = Vec::with_capacity(16);
    for i in 0..10 {
        v.push(i);
    }
    let b = Box::new(5u64);
    // a large allocation: malloc mmaps it, the monitor maps it into the guest page table
    let mut big: Vec<u64> = Vec::with_capacity(1 << 18);
    big.push(7);
    let last = big.as_ptr() as u64 + (1 << 21) - 8;
    let entry = dune_hw::dirty_view().unwrap().entry(last & !0xfff);
    drop(big);
    let msg = b"written by a ring-0 guest\n";
    // SAFETY: writing our own buffer to stdout.
    let written = unsafe { libc::write(1, msg.as_ptr().cast(), msg.len()) };
    // dirty bit set by a write, cleared, set again after invlpg (ring-0: executed directly)
    let view = dune_hw::dirty_view().unwrap();
    // SAFETY: a fresh anonymous page (no memset: libc's is AVX-512 here).
    let p = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    } as u64;
    // SAFETY: p is our fresh RW page.
    unsafe { core::ptr::write_volatile(p as *mut u8, 1) };
    let d_first = view.entry(p) & 0x40;
    let mut n_dirty = 0;
    let _covered_by_the_page_flush = view.collect_and_clear(p, p + 4096, &mut |_| n_dirty += 1);
    dune_hw::flush_tlb_page(dune_hw::Gva(p));
    let d_cleared = view.entry(p) & 0x40;
    // SAFETY: as above.
    unsafe { core::ptr::write_volatile(p as *mut u8, 2) };
    let d_again = view.entry(p) & 0x40;
    let stats = dune_hw::exit().unwrap();
    assert_eq!((d_first, n_dirty, d_cleared, d_again), (0x40, 1, 0, 0x40));
    assert_eq!(v.iter().sum::<u64>() + *b, 50);
    assert_eq!(
        entry & 3,
        3,
        "big allocation mapped RW in the guest: {entry:#x}"
    );
    assert_eq!(written, msg.len() as isize);
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

static RING0_SIG: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

extern "C" fn on_ring0_sig(sig: libc::c_int) {
    RING0_SIG.fetch_add(sig as u64, std::sync::atomic::Ordering::SeqCst);
}

#[test]
fn ring0_signal_handler_and_thread() {
    if !enter_ring0_or_skip("ring0_signal_handler_and_thread") {
        return;
    }
    // a handler installed inside Dune runs in the guest (at CPL0 here)
    // SAFETY: a plain handler (one atomic add) for SIGUSR1, installed through the monitor.
    unsafe {
        let mut sa: libc::sigaction = core::mem::zeroed();
        sa.sa_sigaction = on_ring0_sig as *const () as usize;
        libc::sigaction(libc::SIGUSR1, &sa, core::ptr::null_mut());
    }
    // SAFETY: raise to this very thread.
    unsafe { libc::raise(libc::SIGUSR1) };
    let got = RING0_SIG.load(std::sync::atomic::Ordering::SeqCst);
    // a thread created at CPL0 enters Dune on its own vCPU
    let child_in_dune = std::thread::spawn(dune_hw::in_dune).join().unwrap();
    let stats = dune_hw::exit().unwrap();
    // SAFETY: restores the default action on the host.
    unsafe { libc::signal(libc::SIGUSR1, libc::SIG_DFL) };
    assert_eq!(got, libc::SIGUSR1 as u64);
    assert!(child_in_dune);
    assert_eq!(stats.signals, 1, "{stats:?}");
}
