//! Proof that a real multi-threaded program runs in Dune from `main` to exit: the same
//! program (16 threads on 2 CPUs: a thread pool fed through a channel, producers sharing a
//! mutex-protected map, a condvar hand-off, a barrier, an RwLock, file I/O from every thread)
//! runs once natively and once under `enter_process`, each in its own child process; their
//! outputs must be identical. Needs /dev/kvm; no libtest harness.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier, Condvar, Mutex, RwLock};

const MODE_ENV: &str = "DUNE_HW_PROGRAM_MODE";

fn main() {
    match std::env::var(MODE_ENV).as_deref() {
        Ok("native") => program(false),
        Ok("dune") => program(true),
        _ => parent(),
    }
}

fn parent() {
    let exe = std::env::current_exe().unwrap();
    let run = |mode: &str| {
        let out = std::process::Command::new(&exe)
            .env(MODE_ENV, mode)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{mode} run failed: {stderr}");
        (String::from_utf8(out.stdout).unwrap(), stderr)
    };
    let t0 = std::time::Instant::now();
    let (native, _) = run("native");
    let t_native = t0.elapsed();
    let t1 = std::time::Instant::now();
    let (dune, dune_err) = run("dune");
    let t_dune = t1.elapsed();
    if let Some(l) = dune_err.lines().find(|l| l.starts_with("SKIPPED")) {
        println!("{l}");
        return;
    }
    assert!(
        dune_err.contains("threads outside Dune: 0"),
        "every thread in Dune: {dune_err}"
    );
    assert_eq!(native, dune, "outputs differ");
    assert_eq!(native.lines().count(), 5, "{native}");
    println!(
        "test native_and_dune_outputs_are_identical ... ok (native {t_native:?}, Dune {t_dune:?})"
    );
    for l in dune_err.lines() {
        println!("  {l}");
    }
}

/// Pins the process to (at most) 2 CPUs.
fn two_cpus() {
    // SAFETY: CPU-set manipulation on a local; sched_{get,set}affinity on this thread, before
    // any other thread exists (they inherit it).
    unsafe {
        let mut set: libc::cpu_set_t = core::mem::zeroed();
        libc::sched_getaffinity(0, core::mem::size_of::<libc::cpu_set_t>(), &mut set);
        let mut two: libc::cpu_set_t = core::mem::zeroed();
        let mut n = 0;
        for c in 0..libc::CPU_SETSIZE as usize {
            if n < 2 && libc::CPU_ISSET(c, &set) {
                libc::CPU_SET(c, &mut two);
                n += 1;
            }
        }
        libc::sched_setaffinity(0, core::mem::size_of::<libc::cpu_set_t>(), &two);
    }
}

static OUTSIDE: AtomicUsize = AtomicUsize::new(0);

fn check_here(in_dune_expected: bool) {
    if in_dune_expected && !dune_hw::in_dune() {
        OUTSIDE.fetch_add(1, Ordering::SeqCst);
    }
}

fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

type Job = Box<dyn FnOnce() -> (u64, u64) + Send>;

fn program(dune: bool) {
    two_cpus();
    if dune {
        if let Err(e) = dune_hw::enter_process() {
            if std::env::var("DUNEGC_REQUIRE_KVM").as_deref() == Ok("1") {
                panic!("kvm_program: /dev/kvm required (DUNEGC_REQUIRE_KVM=1) but: {e}");
            }
            eprintln!("SKIPPED native_and_dune_outputs_are_identical: {e}");
            return;
        }
    }
    let t0 = std::time::Instant::now();
    let mut threads = 0usize;

    // 1. a thread pool of 4 workers fed through a channel, results through another
    let (job_tx, job_rx) = mpsc::sync_channel::<Job>(8);
    let job_rx = Arc::new(Mutex::new(job_rx));
    let (res_tx, res_rx) = mpsc::channel();
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let rx = job_rx.clone();
            let tx = res_tx.clone();
            std::thread::spawn(move || {
                check_here(dune);
                loop {
                    let job = rx.lock().unwrap().recv();
                    match job {
                        Ok(j) => tx.send(j()).unwrap(),
                        Err(_) => break,
                    }
                }
            })
        })
        .collect();
    threads += workers.len();
    drop(res_tx);
    for i in 0..64u64 {
        job_tx
            .send(Box::new(move || {
                let v: Vec<u8> = (0..4096u64).map(|k| (k * i % 251) as u8).collect();
                (i, fnv(&v))
            }))
            .unwrap();
    }
    drop(job_tx);
    let mut results: Vec<(u64, u64)> = res_rx.iter().collect();
    for w in workers {
        w.join().unwrap();
    }
    results.sort();
    let pool_sum = results.iter().fold(0u64, |s, r| s.wrapping_add(r.1));
    println!("pool: {} jobs, checksum {pool_sum:#x}", results.len());

    // 2. producers sharing a mutex-protected map, a barrier between phases, an RwLock
    let map = Arc::new(Mutex::new(BTreeMap::new()));
    let barrier = Arc::new(Barrier::new(6));
    let config = Arc::new(RwLock::new(3u64));
    let producers: Vec<_> = (0..6u64)
        .map(|t| {
            let map = map.clone();
            let barrier = barrier.clone();
            let config = config.clone();
            std::thread::spawn(move || {
                check_here(dune);
                for k in 0..500u64 {
                    *map.lock().unwrap().entry(k % 97).or_insert(0u64) += t * k;
                }
                barrier.wait();
                let m = *config.read().unwrap();
                for k in 0..500u64 {
                    *map.lock().unwrap().entry(1000 + k % 13).or_insert(0u64) += m * t + k;
                }
            })
        })
        .collect();
    threads += producers.len();
    for p in producers {
        p.join().unwrap();
    }
    let m = map.lock().unwrap();
    let total: u64 = m.values().sum();
    println!("map: {} keys, total {total}", m.len());
    drop(m);

    // 3. a condvar hand-off (ping-pong 200 rounds between two threads)
    let state = Arc::new((Mutex::new((0u64, false)), Condvar::new()));
    let s2 = state.clone();
    let ponger = std::thread::spawn(move || {
        check_here(dune);
        let (m, c) = &*s2;
        for _ in 0..200 {
            let mut g = m.lock().unwrap();
            while !g.1 {
                g = c.wait(g).unwrap();
            }
            g.0 += 1;
            g.1 = false;
            c.notify_all();
        }
    });
    threads += 1;
    {
        let (m, c) = &*state;
        for _ in 0..200 {
            let mut g = m.lock().unwrap();
            g.1 = true;
            c.notify_all();
            while g.1 {
                g = c.wait(g).unwrap();
            }
        }
    }
    ponger.join().unwrap();
    println!("condvar: {} round trips", state.0.lock().unwrap().0);

    // 4. file I/O from 5 threads (write, fsync, read back), scoped
    let dir = std::env::temp_dir().join(format!("dune-hw-program-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sums: Vec<u64> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..5u64)
            .map(|t| {
                let dir = &dir;
                s.spawn(move || {
                    check_here(dune);
                    let path = dir.join(format!("t{t}.bin"));
                    let data: Vec<u8> =
                        (0..100_000u64).map(|k| (k * (t + 3) % 256) as u8).collect();
                    let mut f = std::fs::File::create(&path).unwrap();
                    f.write_all(&data).unwrap();
                    f.sync_all().unwrap();
                    let mut back = Vec::new();
                    std::fs::File::open(&path)
                        .unwrap()
                        .read_to_end(&mut back)
                        .unwrap();
                    assert_eq!(back, data);
                    fnv(&back)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    threads += 5;
    std::fs::remove_dir_all(&dir).unwrap();
    println!("files: {sums:x?}");
    println!("threads: {threads}");
    let elapsed = t0.elapsed();
    check_here(dune);
    if dune {
        let stats = dune_hw::exit().unwrap();
        eprintln!(
            "threads outside Dune: {}; main thread {stats:?}; mode {:?}; {elapsed:?}",
            OUTSIDE.load(Ordering::SeqCst),
            dune_hw::mode().map(|m| m.mode)
        );
    }
}
