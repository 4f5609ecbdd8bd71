//! Wedge on Dune against the process and thread primitives it replaces, side by side in
//! one run (the Dune mode is per process: `DUNEGC_DUNE_MODE`; `scripts/privsep-bench.sh`
//! runs every mode and writes bench-results/privsep.md).
//!
//! - `create_join/*`: an sthread created and joined (on a host thread of its own, and on
//!   the calling thread) vs `fork` + `waitpid` vs `pthread_create` + `pthread_join`;
//!   `view_build_only` is the part of creation that builds the view (no run);
//! - `recycled/round_trip`: one run of a recycled sthread;
//! - `call/*`: a callgate call from inside an sthread (the sthread loops over the calls:
//!   its own run is amortised over them) and from the host, vs a function call, vs a
//!   pipe round trip to another process;
//! - `server/*`: one request of the example server: recycled sthread per request, new
//!   sthread per request, fork per request, no separation.

#![allow(missing_docs)] // criterion_group! generates an undocumented pub fn

#[path = "../examples/signer/mod.rs"]
#[allow(dead_code)]
mod signer;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use privsep::inside::callgate_call;
use privsep::{callgate_create, sthread_create, sthread_run, Ended, Recycler, SPolicy};
use std::time::{Duration, Instant};

fn nothing(x: u64) -> i32 {
    x as i32
}

fn gate_entry(trusted: u64, arg: u64) -> i32 {
    (trusted ^ arg) as i32 & 1
}

/// Calls the gate whose id is in the high 32 bits, (arg & 0xffff_ffff) times.
fn call_gate_n(arg: u64) -> i32 {
    let (gate, n) = (arg >> 32, arg & 0xffff_ffff);
    let mut acc = 0i64;
    for i in 0..n {
        acc += callgate_call(gate, i);
    }
    acc as i32
}

extern "C" fn thread_body(_: *mut libc::c_void) -> *mut libc::c_void {
    core::ptr::null_mut()
}

fn fork_wait() {
    // SAFETY: the child only calls _exit (async-signal-safe).
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: ends the child at once.
        unsafe { libc::_exit(0) };
    }
    assert!(pid > 0, "fork failed");
    let mut st = 0;
    // SAFETY: reaps our child.
    unsafe { libc::waitpid(pid, &mut st, 0) };
}

fn pthread_create_join() {
    let mut t: libc::pthread_t = 0;
    // SAFETY: a thread running a body that returns at once; joined below.
    let r = unsafe {
        libc::pthread_create(
            &mut t,
            core::ptr::null(),
            thread_body,
            core::ptr::null_mut(),
        )
    };
    assert_eq!(r, 0);
    // SAFETY: joins the thread just created.
    unsafe { libc::pthread_join(t, core::ptr::null_mut()) };
}

/// A child process echoing 8-byte messages: (to_child write end, from_child read end, pid).
fn echo_process() -> (i32, i32, i32) {
    let (mut a, mut b) = ([0i32; 2], [0i32; 2]);
    // SAFETY: pipe writes two fds into each array.
    unsafe { assert!(libc::pipe(a.as_mut_ptr()) == 0 && libc::pipe(b.as_mut_ptr()) == 0) };
    // SAFETY: the child only reads, writes and _exits.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let mut m = 0u64;
        // SAFETY: closes the parent's ends in the child (so closing them in the parent
        // ends the loop), then 8-byte reads/writes of a local on our pipes.
        unsafe {
            libc::close(a[1]);
            libc::close(b[0]);
            while libc::read(a[0], (&mut m as *mut u64).cast(), 8) == 8 {
                libc::write(b[1], (&m as *const u64).cast(), 8);
            }
            libc::_exit(0)
        }
    }
    // SAFETY: closing the child's ends in the parent.
    unsafe {
        libc::close(a[0]);
        libc::close(b[1]);
    }
    (a[1], b[0], pid)
}

fn mode() -> String {
    dune_hw::mode().map_or("none".into(), |m| format!("{:?}", m.mode))
}

fn benches(c: &mut Criterion) {
    let none = SPolicy::new();
    let mut rec = match Recycler::new(&none) {
        Ok(r) => r,
        Err(e) => {
            println!("SKIPPED privsep benches: {e}");
            return;
        }
    };
    println!("privsep bench dune mode: {}", mode());
    let mut g = c.benchmark_group("create_join");
    g.bench_function("sthread_own_thread", |b| {
        b.iter(|| {
            let s = sthread_create(&none, nothing, 3).unwrap();
            assert_eq!(s.join().unwrap().ended, Ended::Exited(3));
        })
    });
    g.bench_function("sthread_calling_thread", |b| {
        b.iter(|| {
            assert_eq!(
                sthread_run(&none, nothing, 3).unwrap().ended,
                Ended::Exited(3)
            )
        })
    });
    g.bench_function("view_build_only", |b| {
        b.iter(|| black_box(Recycler::new(&none).unwrap()))
    });
    g.bench_function("fork_waitpid", |b| b.iter(fork_wait));
    g.bench_function("pthread_create_join", |b| b.iter(pthread_create_join));
    g.finish();

    let mut g = c.benchmark_group("recycled");
    g.bench_function("round_trip", |b| {
        b.iter(|| assert_eq!(rec.run(nothing, 5).unwrap().ended, Ended::Exited(5)))
    });
    g.finish();

    let gate = callgate_create(gate_entry, &none, 1).unwrap();
    let mut caller = SPolicy::new();
    caller.allow_gate(&gate);
    let mut crec = Recycler::new(&caller).unwrap();
    let (to, from, pid) = echo_process();
    let mut g = c.benchmark_group("call");
    g.bench_function("callgate_from_sthread", |b| {
        b.iter_custom(|iters| {
            let n = iters.min(0xffff_ffff);
            let t = Instant::now();
            let r = crec.run(call_gate_n, (gate.id() << 32) | n).unwrap();
            let d = t.elapsed();
            assert!(matches!(r.ended, Ended::Exited(_)), "{}", r.ended);
            d.mul_f64(iters as f64 / n as f64)
        })
    });
    g.bench_function("callgate_from_host", |b| {
        b.iter(|| black_box(gate.call(black_box(2)).unwrap()))
    });
    g.bench_function("function_call", |b| {
        let f: fn(u64, u64) -> i32 = black_box(gate_entry);
        b.iter(|| black_box(f(black_box(1), black_box(2))))
    });
    g.bench_function("pipe_round_trip_process", |b| {
        b.iter(|| {
            let mut m = 7u64;
            // SAFETY: 8-byte write/read of a local on our pipes to the echo child.
            unsafe {
                libc::write(to, (&m as *const u64).cast(), 8);
                libc::read(from, (&mut m as *mut u64).cast(), 8);
            }
            black_box(m)
        })
    });
    g.finish();
    // SAFETY: closing our pipe ends the echo child; reap it.
    unsafe {
        libc::close(to);
        libc::close(from);
        libc::waitpid(pid, core::ptr::null_mut(), 0);
    }

    let key = *b"server secret key, 32 bytes long";
    let mut server = signer::Server::new(key).unwrap();
    let req: &[u8] = b"SIGN a request of some forty bytes or so";
    let want = signer::handle_plain(&key, req);
    let mut g = c.benchmark_group("server");
    g.bench_function("recycled_sthread_per_request", |b| {
        b.iter(|| assert_eq!(server.handle(req).unwrap(), want))
    });
    g.bench_function("new_sthread_per_request", |b| {
        b.iter(|| assert_eq!(server.handle_fresh(req).unwrap(), want))
    });
    g.bench_function("fork_per_request", |b| {
        b.iter(|| assert_eq!(signer::handle_forked(&key, req), want))
    });
    g.bench_function("no_separation", |b| {
        b.iter(|| assert_eq!(signer::handle_plain(&key, black_box(req)), want))
    });
    g.finish();
}

criterion_group! {
    name = privsep;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    targets = benches
}
criterion_main!(privsep);
