//! Threads created inside Dune enter Dune on their own vCPU before their first instruction;
//! fork/vfork children run outside Dune. Needs /dev/kvm.

use dune_hw::DuneError;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};

/// Enters Dune on this thread, or prints SKIPPED and returns None.
fn enter_or_skip(test: &str) -> Option<()> {
    match dune_hw::enter() {
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
fn spawned_scoped_and_pooled_threads_run_in_dune() {
    if enter_or_skip("spawned_scoped_and_pooled_threads_run_in_dune").is_none() {
        return;
    }
    let n0 = dune_hw::n_threads_in_dune();
    // std::thread::spawn: each child is in Dune from its first instruction
    let handles: Vec<_> = (0..8u64)
        .map(|i| {
            std::thread::spawn(move || {
                let v: Vec<u64> = (0..10_000).map(|x| x * i).collect();
                (dune_hw::in_dune(), v.iter().sum::<u64>())
            })
        })
        .collect();
    let results: Vec<(bool, u64)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    // scoped threads sharing a counter, a mutex + condvar hand-off, a channel
    let counter = AtomicU64::new(0);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..1000 {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                assert!(dune_hw::in_dune());
            });
        }
    });
    let pair = Arc::new((Mutex::new(0u32), Condvar::new()));
    let (tx, rx) = mpsc::channel();
    let p2 = pair.clone();
    let waiter = std::thread::spawn(move || {
        let (m, c) = &*p2;
        let mut g = m.lock().unwrap();
        while *g < 5 {
            g = c.wait(g).unwrap();
        }
        tx.send(*g * 10).unwrap();
        dune_hw::thread_stats()
    });
    for _ in 0..5 {
        std::thread::sleep(std::time::Duration::from_millis(2));
        let (m, c) = &*pair;
        *m.lock().unwrap() += 1;
        c.notify_one();
    }
    let got = rx.recv().unwrap();
    let n_during = dune_hw::n_threads_in_dune();
    let waiter_stats = waiter.join().unwrap();
    let stats = dune_hw::exit().unwrap();
    for (i, (in_dune, sum)) in results.iter().enumerate() {
        assert!(in_dune, "thread {i} ran outside Dune");
        assert_eq!(*sum, (0..10_000u64).sum::<u64>() * i as u64);
    }
    assert_eq!(counter.load(Ordering::Relaxed), 4000);
    assert_eq!(got, 50);
    assert!(
        n_during > n0 || n0 > 1,
        "the waiter counts: {n0} -> {n_during}"
    );
    assert!(waiter_stats.syscalls > 0, "{waiter_stats:?}");
    assert_eq!(stats.threads_created, 13, "{stats:?}");
    println!("stats {stats:?}; waiter {waiter_stats:?}");
}

fn n_mappings() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .count()
}

#[test]
fn ended_threads_give_back_their_vcpu_and_stacks() {
    if enter_or_skip("ended_threads_give_back_their_vcpu_and_stacks").is_none() {
        return;
    }
    // warm up (first threads map their stacks), then many spawn+join rounds
    for _ in 0..4 {
        std::thread::spawn(dune_hw::in_dune).join().unwrap();
    }
    let before = n_mappings();
    let mut all_in = true;
    for _ in 0..200 {
        all_in &= std::thread::spawn(dune_hw::in_dune).join().unwrap();
    }
    let after = n_mappings();
    dune_hw::exit().unwrap();
    assert!(all_in);
    // leaking would add 2 mappings per thread (400); the other tests of this binary run
    // concurrently and map a few of their own
    assert!(
        after <= before + 64,
        "mappings grew from {before} to {after} over 200 threads"
    );
}

#[test]
fn fork_child_runs_outside_dune_and_command_spawns() {
    if enter_or_skip("fork_child_runs_outside_dune_and_command_spawns").is_none() {
        return;
    }
    // SAFETY: the child only calls async-signal-safe functions and _exit.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let code = if dune_hw::in_dune() { 1 } else { 42 };
        // SAFETY: ends the child without running the parent's atexit handlers.
        unsafe { libc::_exit(code) };
    }
    assert!(pid > 0, "fork failed");
    let mut status = 0;
    // SAFETY: waits for our child.
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    // posix_spawn (clone with CLONE_VM | CLONE_VFORK) + exec
    let out = std::process::Command::new("/bin/echo")
        .arg("spawned from Dune")
        .output();
    let in_dune = dune_hw::in_dune();
    dune_hw::exit().unwrap();
    assert!(in_dune);
    assert_eq!(r, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 42,
        "status {status:#x}"
    );
    let out = out.expect("Command::output from Dune");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "spawned from Dune\n");
}

#[test]
fn a_new_thread_inherits_the_rounding_mode() {
    if enter_or_skip("a_new_thread_inherits_the_rounding_mode").is_none() {
        return;
    }
    // MXCSR rounding control = round toward zero
    let mut old = 0u32;
    // SAFETY: stmxcsr/ldmxcsr on a local; only the rounding mode changes.
    unsafe {
        core::arch::asm!("stmxcsr [{p}]", p = in(reg) &mut old, options(nostack));
        let rz = old | (3 << 13);
        core::arch::asm!("ldmxcsr [{p}]", p = in(reg) &rz, options(nostack));
    }
    let child = std::thread::spawn(|| {
        let mut m = 0u32;
        // SAFETY: stmxcsr to a local.
        unsafe { core::arch::asm!("stmxcsr [{p}]", p = in(reg) &mut m, options(nostack)) };
        m
    })
    .join()
    .unwrap();
    // SAFETY: restores the saved MXCSR.
    unsafe { core::arch::asm!("ldmxcsr [{p}]", p = in(reg) &old, options(nostack)) };
    dune_hw::exit().unwrap();
    assert_eq!(child & (3 << 13), 3 << 13, "child MXCSR {child:#x}");
}
