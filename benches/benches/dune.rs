//! Dune costs side by side with the same work on the host, per mode.
//! The mode is per process: run with DUNEGC_DUNE_MODE=pvm (default on PVM hosts whose
//! supervisor ABI passes the start-up probe), ring3 or ring0; `scripts/bench-modes.sh` runs
//! all three and bench-results/pvm-modes.md has the figures.
//! Every Dune sample enters Dune, times the work inside with `Instant`, and leaves, so
//! criterion's own analysis runs on the host. Ring-0 is emulated on PVM hosts: its compute
//! work is scaled down.

#![allow(missing_docs)] // criterion_group! generates an undocumented pub fn

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use dunegc_benches::dune_timing::{getpid, in_dune, Tsc};
use std::time::{Duration, Instant};

fn lcg(n: u64) -> u64 {
    let mut x = 1u64;
    for i in 0..n {
        x = black_box(x.wrapping_mul(6364136223846793005).wrapping_add(i));
    }
    x
}

/// Round trips of a futex ping-pong between the calling thread and a partner thread.
fn futex_ping_pong(rounds: u64) {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;
    fn wait(w: &AtomicU32, v: u32) {
        while w.load(Ordering::Acquire) == v {
            // SAFETY: FUTEX_WAIT_PRIVATE on a live atomic of ours.
            unsafe {
                libc::syscall(
                    libc::SYS_futex,
                    w.as_ptr(),
                    libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
                    v,
                    core::ptr::null::<libc::timespec>(),
                )
            };
        }
    }
    fn wake(w: &AtomicU32) {
        // SAFETY: FUTEX_WAKE_PRIVATE on a live atomic of ours.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                w.as_ptr(),
                libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
                1,
            )
        };
    }
    // word: even = ping's turn is done (pong's turn), odd = pong done
    let word = Arc::new(AtomicU32::new(0));
    let w2 = word.clone();
    let partner = std::thread::spawn(move || {
        for i in 0..rounds as u32 {
            wait(&w2, 2 * i);
            w2.store(2 * i + 2, Ordering::Release);
            wake(&w2);
        }
    });
    for i in 0..rounds as u32 {
        word.store(2 * i + 1, Ordering::Release);
        wake(&word);
        wait(&word, 2 * i + 1);
    }
    partner.join().expect("partner");
}

static SIG_HITS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

extern "C" fn on_usr2(_sig: libc::c_int) {
    SIG_HITS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

fn install_usr2() {
    // SAFETY: a plain handler (one atomic add) for SIGUSR2; inside Dune this is the
    // monitor's emulated rt_sigaction (the handler then runs in the guest).
    unsafe {
        let mut sa: libc::sigaction = core::mem::zeroed();
        sa.sa_sigaction = on_usr2 as *const () as usize;
        libc::sigaction(libc::SIGUSR2, &sa, core::ptr::null_mut());
    }
}

/// Sends SIGUSR2 to thread `tid` of process `pid` (the caller): the handler has run when
/// this returns. One syscall plus the delivery and the handler's rt_sigreturn.
fn signal_round_trip(pid: i64, tid: i64) {
    // SAFETY: tgkill to this very thread with a handled signal.
    unsafe { libc::syscall(libc::SYS_tgkill, pid, tid, libc::SIGUSR2) };
}

fn pid_tid() -> (i64, i64) {
    // SAFETY: getpid/gettid have no arguments.
    unsafe {
        (
            libc::syscall(libc::SYS_getpid),
            libc::syscall(libc::SYS_gettid),
        )
    }
}

fn bench(c: &mut Criterion) {
    // initialise once to learn the mode
    if let Err(e) = dune_hw::enter() {
        eprintln!("SKIPPED dune benches: {e}");
        return;
    }
    dune_hw::exit().expect("leave Dune");
    let mode = dune_hw::mode().expect("initialised").mode;
    let m = mode.name();
    eprintln!(
        "dune mode: {}",
        dune_hw::mode().expect("initialised").reason
    );
    let tsc = Tsc::calibrate();
    let compute_n: u64 = if mode == dune_hw::Mode::Ring0 {
        100
    } else {
        1_000_000
    };

    let mut g = c.benchmark_group("dune");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));

    g.bench_function(format!("compute_lcg_{compute_n}/native"), |b| {
        b.iter(|| lcg(black_box(compute_n)))
    });
    g.bench_function(format!("compute_lcg_{compute_n}/{m}"), |b| {
        b.iter_custom(|iters| {
            in_dune(
                &tsc,
                &mut |n| {
                    let t = Tsc::now();
                    for _ in 0..n {
                        black_box(lcg(black_box(compute_n)));
                    }
                    Tsc::now() - t
                },
                iters,
            )
        })
    });

    g.bench_function("getpid/native", |b| b.iter(getpid));
    g.bench_function(format!("getpid/{m}"), |b| {
        b.iter_custom(|iters| {
            in_dune(
                &tsc,
                &mut |n| {
                    let t = Tsc::now();
                    for _ in 0..n {
                        black_box(getpid());
                    }
                    Tsc::now() - t
                },
                iters,
            )
        })
    });

    let zero = std::fs::File::open("/dev/zero").expect("/dev/zero");
    let fd = std::os::fd::AsRawFd::as_raw_fd(&zero);
    let mut buf = vec![0u8; 4096];
    let bp = buf.as_mut_ptr();
    let read4k = move || {
        // SAFETY: reading 4 KiB into our own 4 KiB buffer.
        unsafe { libc::pread(fd, bp.cast(), 4096, 0) }
    };
    g.bench_function("read_4k/native", |b| b.iter(read4k));
    g.bench_function(format!("read_4k/{m}"), |b| {
        b.iter_custom(|iters| {
            in_dune(
                &tsc,
                &mut |n| {
                    let t = Tsc::now();
                    for _ in 0..n {
                        black_box(read4k());
                    }
                    Tsc::now() - t
                },
                iters,
            )
        })
    });

    g.bench_function(format!("tlb_flush_request/{m}"), |b| {
        b.iter_custom(|iters| {
            in_dune(
                &tsc,
                &mut |n| {
                    let t = Tsc::now();
                    for _ in 0..n {
                        dune_hw::flush_tlb_all();
                    }
                    Tsc::now() - t
                },
                iters,
            )
        })
    });

    // Address-space change: mmap 64 KiB, touch a page, munmap (guest page tables, memory
    // slot and TLB flush are updated by the monitor in Dune).
    let map_touch_unmap = || {
        // SAFETY: fresh anonymous mapping, unmapped before returning.
        unsafe {
            let p = libc::mmap(
                core::ptr::null_mut(),
                65536,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            ) as *mut u8;
            core::ptr::write_volatile(p, 1);
            libc::munmap(p.cast(), 65536);
        }
    };
    g.bench_function("mmap_touch_munmap_64k/native", |b| b.iter(map_touch_unmap));
    g.bench_function(format!("mmap_touch_munmap_64k/{m}"), |b| {
        b.iter_custom(|iters| {
            in_dune(
                &tsc,
                &mut |n| {
                    let t = Tsc::now();
                    for _ in 0..n {
                        map_touch_unmap();
                    }
                    Tsc::now() - t
                },
                iters,
            )
        })
    });

    // Page fault. Native: first touch of a fresh anonymous page (a Linux minor fault).
    // Dune: a guest #PF the monitor resolves — pages mapped by the host while no thread was
    // in Dune, one VMA each, are missing from the guest page table until touched.
    g.bench_function("page_fault/native", |b| {
        b.iter_custom(|iters| {
            let len = iters as usize * 4096;
            // SAFETY: fresh anonymous mapping, unmapped below.
            let p = unsafe {
                libc::mmap(
                    core::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            } as *mut u8;
            let t = Tsc::now();
            for i in 0..iters as usize {
                // SAFETY: inside the mapping.
                unsafe { core::ptr::write_volatile(p.add(i * 4096), 1) };
            }
            let d = tsc.since(t);
            // SAFETY: our mapping.
            unsafe { libc::munmap(p.cast(), len) };
            d
        })
    });
    g.bench_function(format!("page_fault/{m}"), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(64);
                left -= n;
                let len = n as usize * 8192;
                // SAFETY: fresh mapping; every other page made RW so each is its own VMA.
                let p = unsafe {
                    libc::mmap(
                        core::ptr::null_mut(),
                        len,
                        libc::PROT_NONE,
                        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                        -1,
                        0,
                    )
                } as *mut u8;
                for i in 0..n as usize {
                    // SAFETY: inside our mapping.
                    unsafe {
                        libc::mprotect(
                            p.add(i * 8192).cast(),
                            4096,
                            libc::PROT_READ | libc::PROT_WRITE,
                        )
                    };
                }
                // unmapped inside Dune so that the guest page table forgets it too
                total += in_dune(
                    &tsc,
                    &mut |k| {
                        let t = Tsc::now();
                        for i in 0..k as usize {
                            // SAFETY: a RW page of our mapping.
                            unsafe { core::ptr::write_volatile(p.add(i * 8192), 1) };
                        }
                        let d = Tsc::now() - t;
                        // SAFETY: our mapping, no references into it.
                        unsafe { libc::munmap(p.cast(), len) };
                        d
                    },
                    n,
                );
            }
            total
        })
    });

    // Dirty bits (the collector's use): 4096 pages of a buffer, inside Dune.
    // collect = read and clear the D bits of the range + the TLB flush that makes them
    // effective; first_write = the first write to each page after that (a shadow-paging
    // fault on PVM hosts, nothing on EPT/NPT).
    const N_PAGES: usize = 4096;
    let buf: Vec<u8> = vec![0; N_PAGES * 4096 + 4096];
    let base = (buf.as_ptr() as u64).next_multiple_of(4096);
    let touch_all = move || {
        for i in 0..N_PAGES as u64 {
            // SAFETY: inside `buf`, which outlives the benches.
            unsafe { core::ptr::write_volatile((base + i * 4096) as *mut u8, 1) };
        }
    };
    g.bench_function(format!("dirty_collect_and_clear_4096_pages/{m}"), |b| {
        b.iter_custom(|iters| {
            in_dune(
                &tsc,
                &mut |n| {
                    let view = dune_hw::dirty_view().expect("in Dune");
                    let mut ticks = 0;
                    for _ in 0..n {
                        touch_all();
                        let t = Tsc::now();
                        let mut dirty = 0u64;
                        dune_hw::flush(view.collect_and_clear(
                            base,
                            base + (N_PAGES * 4096) as u64,
                            &mut |_| dirty += 1,
                        ));
                        ticks += Tsc::now() - t;
                        black_box(dirty);
                    }
                    ticks
                },
                iters,
            )
        })
    });
    g.bench_function(
        format!("dirty_first_write_4096_pages_after_clear/{m}"),
        |b| {
            b.iter_custom(|iters| {
                in_dune(
                    &tsc,
                    &mut |n| {
                        let view = dune_hw::dirty_view().expect("in Dune");
                        let mut ticks = 0;
                        for _ in 0..n {
                            touch_all();
                            dune_hw::flush(view.collect_and_clear(
                                base,
                                base + (N_PAGES * 4096) as u64,
                                &mut |_| {},
                            ));
                            let t = Tsc::now();
                            touch_all();
                            ticks += Tsc::now() - t;
                        }
                        ticks
                    },
                    iters,
                )
            })
        },
    );
    g.bench_function("dirty_first_write_4096_pages/native", |b| b.iter(touch_all));
    // TLB shootdown strategies for the collector's arm (issue 8): clear the D bits of N
    // pages, make the clear effective with one strategy, then write the N pages again (a
    // write that must set D again — the refill cost counts). `range` is dune_hw::flush of
    // the range (ring-0: invlpg per page up to tlb::INVLPG_MAX_PAGES, else a CR3 reload;
    // pvm-ring0: HC_FLUSH_TLB_ONE per page up to the same limit; ring-3 and pvm: the
    // monitor's full flush, the only one a CPL3 guest can ask for), `all` is flush_tlb_all
    // (ring-0: CR3 reload; pvm-ring0: HC_FLUSH_TLB; ring-3: the monitor's full flush; pvm:
    // the same request answered by the native supervisor stub with HC_FLUSH_TLB).
    for n_pages in [1u64, 16, 256] {
        for strategy in ["range", "all"] {
            g.bench_function(
                format!("tlb_strategy_{strategy}_{n_pages}_pages/{m}"),
                |b| {
                    b.iter_custom(|iters| {
                        in_dune(
                            &tsc,
                            &mut |n| {
                                let view = dune_hw::dirty_view().expect("in Dune");
                                let end = base + n_pages * 4096;
                                let mut ticks = 0;
                                for _ in 0..n {
                                    for i in 0..n_pages {
                                        // SAFETY: inside `buf`, which outlives the benches.
                                        unsafe {
                                            core::ptr::write_volatile(
                                                (base + i * 4096) as *mut u8,
                                                2,
                                            )
                                        };
                                    }
                                    let t = Tsc::now();
                                    let f = view.collect_and_clear(base, end, &mut |_| {});
                                    if strategy == "range" {
                                        dune_hw::flush(f);
                                    } else {
                                        dune_hw::flush_tlb_all();
                                    }
                                    for i in 0..n_pages {
                                        // SAFETY: as above.
                                        unsafe {
                                            core::ptr::write_volatile(
                                                (base + i * 4096) as *mut u8,
                                                3,
                                            )
                                        };
                                    }
                                    ticks += Tsc::now() - t;
                                }
                                ticks
                            },
                            iters,
                        )
                    })
                },
            );
        }
    }

    drop(buf);

    // threads, futexes, signals (issue 6): each Dune sample runs on a Dune thread whose
    // children enter Dune on their own vCPUs
    g.bench_function("thread_spawn_join/native", |b| {
        b.iter(|| std::thread::spawn(|| black_box(1)).join())
    });
    g.bench_function(format!("thread_spawn_join/{m}"), |b| {
        b.iter_custom(|iters| {
            in_dune(
                &tsc,
                &mut |n| {
                    let t = Tsc::now();
                    for _ in 0..n {
                        black_box(std::thread::spawn(|| black_box(1)).join().ok());
                    }
                    Tsc::now() - t
                },
                iters,
            )
        })
    });
    g.bench_function("futex_ping_pong_round_trip/native", |b| {
        b.iter_custom(|iters| {
            let t = Instant::now();
            futex_ping_pong(iters);
            t.elapsed()
        })
    });
    g.bench_function(format!("futex_ping_pong_round_trip/{m}"), |b| {
        b.iter_custom(|iters| {
            in_dune(
                &tsc,
                &mut |n| {
                    let t = Tsc::now();
                    futex_ping_pong(n);
                    Tsc::now() - t
                },
                iters,
            )
        })
    });
    install_usr2();
    g.bench_function("signal_round_trip/native", |b| {
        let (pid, tid) = pid_tid();
        b.iter(|| signal_round_trip(pid, tid))
    });
    g.bench_function(format!("signal_round_trip/{m}"), |b| {
        b.iter_custom(|iters| {
            in_dune(
                &tsc,
                &mut |n| {
                    install_usr2(); // from inside: the handler runs in the guest
                    let (pid, tid) = pid_tid();
                    let t = Tsc::now();
                    for _ in 0..n {
                        signal_round_trip(pid, tid);
                    }
                    Tsc::now() - t
                },
                iters,
            )
        })
    });
    install_usr2();

    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
