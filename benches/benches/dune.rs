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

    // The privileged-hardware API (issue 7; `cargo bench --bench dune -- privileged_`).
    // ad_read_clear: one pass reading and clearing A+D of 2048 pages (8 MiB) through
    // `pagetable::read_clear_accessed_dirty_with`, mapped with 4 KiB leaves (the monitor's)
    // or with 2 MiB leaves (`pagetable::map_huge`). `clean`: entries already clear (the
    // common case for a collector: the traversal alone); `dirty`: a write to each 2 MiB
    // leaf and a flush before each (untimed) scan, so every leaf is cleared.
    const N_SCAN: u64 = 2048;
    const M2: u64 = 2 << 20;
    let huge_raw: Vec<u8> = vec![0; (N_SCAN * 4096 + M2) as usize];
    let huge = (huge_raw.as_ptr() as u64).next_multiple_of(M2);
    for i in 0..N_SCAN {
        // SAFETY: inside `huge_raw`, which outlives the benches.
        unsafe { core::ptr::write_volatile((huge + i * 4096) as *mut u8, 1) };
    }
    let huge_ok = dune_hw::pagetable::map_huge(
        dune_hw::Gva(huge),
        N_SCAN * 4096,
        libc::PROT_READ | libc::PROT_WRITE,
        dune_hw::pagetable::PageSize::Size2M,
    );
    if let Err(e) = &huge_ok {
        eprintln!("SKIPPED privileged 2 MiB rows: {e}");
    }
    let huge_start = huge_ok.ok().map(|_| huge);
    let scan = |start: u64| {
        let mut dirty = 0u64;
        let f = dune_hw::pagetable::read_clear_accessed_dirty_with(
            dune_hw::Gva(start),
            N_SCAN * 4096,
            &mut |_va, np, bits| {
                if bits & dune_hw::paging::pte::D != 0 {
                    dirty += np
                }
            },
        )
        .expect("valid range");
        (dirty, f)
    };
    for (leaf, start, dirty_rows) in [("4k", Some(base), false), ("2m", huge_start, true)] {
        let Some(start) = start else { continue };
        g.bench_function(
            format!("privileged_ad_read_clear_{N_SCAN}_pages_{leaf}_clean/{m}"),
            |b| {
                b.iter_custom(|iters| {
                    in_dune(
                        &tsc,
                        &mut |n| {
                            // entries exist (the 4 KiB ones are mapped on first touch) and
                            // are clear
                            for i in 0..N_SCAN {
                                // SAFETY: inside the buffer, which outlives the benches.
                                unsafe {
                                    core::ptr::read_volatile((start + i * 4096) as *const u8)
                                };
                            }
                            dune_hw::flush(scan(start).1);
                            let mut ticks = 0;
                            for _ in 0..n {
                                let t = Tsc::now();
                                let (dirty, f) = scan(start);
                                ticks += Tsc::now() - t;
                                black_box(dirty);
                                dune_hw::flush(f);
                            }
                            ticks
                        },
                        iters,
                    )
                })
            },
        );
        if !dirty_rows {
            continue;
        }
        g.bench_function(
            format!("privileged_ad_read_clear_{N_SCAN}_pages_{leaf}_dirty/{m}"),
            |b| {
                b.iter_custom(|iters| {
                    in_dune(
                        &tsc,
                        &mut |n| {
                            let mut ticks = 0;
                            for _ in 0..n {
                                for l in 0..N_SCAN * 4096 / M2 {
                                    // SAFETY: inside `huge_raw`.
                                    unsafe {
                                        core::ptr::write_volatile((start + l * M2) as *mut u8, 2)
                                    };
                                }
                                let t = Tsc::now();
                                let (dirty, f) = scan(start);
                                ticks += Tsc::now() - t;
                                assert_eq!(dirty, N_SCAN, "every leaf was written");
                                dune_hw::flush(f);
                            }
                            ticks
                        },
                        iters,
                    )
                })
            },
        );
    }
    // TLB requests alone (no refill): invlpg of one page, of a 16-page range, full flush.
    type TlbOp = (&'static str, fn(u64) -> dune_hw::tlb::TlbMethod);
    let tlb_ops: [TlbOp; 3] = [
        ("invlpg_1_page", |a| dune_hw::tlb::invlpg(dune_hw::Gva(a))),
        ("invlpg_range_16_pages", |a| {
            dune_hw::tlb::invlpg_range(dune_hw::Gva(a), 16 * 4096)
        }),
        ("flush_all", |_| dune_hw::tlb::flush_all()),
    ];
    for (name, op) in tlb_ops {
        g.bench_function(format!("privileged_tlb_{name}/{m}"), |b| {
            b.iter_custom(|iters| {
                in_dune(
                    &tsc,
                    &mut |n| {
                        let t = Tsc::now();
                        for _ in 0..n {
                            black_box(op(base));
                        }
                        Tsc::now() - t
                    },
                    iters,
                )
            })
        });
    }
    // Copy-on-write cycle on one page: write-protect it, write to it, the fault handler
    // copies the page aside and makes it writable, the write resumes. Native: the same
    // with mprotect and a SIGSEGV handler.
    cow_benches(&mut g, &tsc, m);
    drop(huge_raw);

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

static COW_PAGE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static COW_COPY: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

extern "C" fn on_cow_segv(_sig: libc::c_int, _info: *mut libc::siginfo_t, _uc: *mut libc::c_void) {
    let page = COW_PAGE.load(std::sync::atomic::Ordering::Relaxed);
    let copy = COW_COPY.load(std::sync::atomic::Ordering::Relaxed);
    // SAFETY: both are pages of the bench's mapping; the page is readable.
    unsafe {
        core::ptr::copy_nonoverlapping(page as *const u8, copy as *mut u8, 4096);
        libc::mprotect(
            page as *mut libc::c_void,
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
        );
    }
}

fn cow_benches(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    tsc: &Tsc,
    m: &str,
) {
    // SAFETY: a fresh anonymous mapping of two pages.
    let p = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            8192,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED);
    let (page, copy) = (p as u64, p as u64 + 4096);
    COW_PAGE.store(page, std::sync::atomic::Ordering::Relaxed);
    COW_COPY.store(copy, std::sync::atomic::Ordering::Relaxed);
    g.bench_function("privileged_cow_fault_copy_resume/native", |b| {
        // SAFETY: a plain sigaction with an extern "C" handler.
        unsafe {
            let mut sa: libc::sigaction = core::mem::zeroed();
            sa.sa_sigaction = on_cow_segv as *const () as usize;
            sa.sa_flags = libc::SA_SIGINFO;
            libc::sigaction(libc::SIGSEGV, &sa, core::ptr::null_mut());
        }
        b.iter(|| {
            // SAFETY: our page; the write faults once, the handler restores write access.
            unsafe {
                libc::mprotect(page as *mut libc::c_void, 4096, libc::PROT_READ);
                core::ptr::write_volatile(page as *mut u64, 1);
            }
        });
        // SAFETY: back to the default action.
        unsafe { libc::signal(libc::SIGSEGV, libc::SIG_DFL) };
    });
    dune_hw::fault::set_fault_handler(dune_hw::Exception::PageFault, move |f| {
        let Some(a) = f.addr else {
            return dune_hw::fault::FaultAction::Unhandled;
        };
        if a.0 & !4095 != page {
            return dune_hw::fault::FaultAction::Unhandled;
        }
        // SAFETY: pages of the bench's mapping; the guest is stopped.
        unsafe { core::ptr::copy_nonoverlapping(page as *const u8, copy as *mut u8, 4096) };
        match dune_hw::pagetable::protect(a.page_down(), 4096, libc::PROT_READ | libc::PROT_WRITE) {
            Ok(_) => dune_hw::fault::FaultAction::Resume,
            Err(_) => dune_hw::fault::FaultAction::Unhandled,
        }
    });
    g.bench_function(format!("privileged_cow_fault_copy_resume/{m}"), |b| {
        b.iter_custom(|iters| {
            in_dune(
                tsc,
                &mut |n| {
                    let t = Tsc::now();
                    for _ in 0..n {
                        let _ = dune_hw::pagetable::write_protect(dune_hw::Gva(page), 4096)
                            .expect("our page");
                        // SAFETY: our page; the fault handler makes it writable again.
                        unsafe { core::ptr::write_volatile(page as *mut u64, 1) };
                    }
                    Tsc::now() - t
                },
                iters,
            )
        })
    });
    dune_hw::fault::clear_fault_handler(dune_hw::Exception::PageFault);
    // SAFETY: our mapping, unused from here.
    unsafe { libc::munmap(p, 8192) };
}

criterion_group!(benches, bench);
criterion_main!(benches);
