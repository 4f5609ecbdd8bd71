//! Timing code that runs inside Dune, shared by the Dune benchmarks (`benches/dune.rs`,
//! `benches/dune_paper.rs`).

use std::time::{Duration, Instant};

/// Guest-safe clock: `rdtsc` (KVM's emulator handles it in ring-0 mode; the vDSO clock uses
/// `rdtscp`, which it does not), converted with a rate calibrated on the host.
#[derive(Clone, Copy, Debug)]
pub struct Tsc {
    ns_per_tick: f64,
}

impl Tsc {
    /// Measures the TSC rate against `Instant` over 50 ms.
    pub fn calibrate() -> Tsc {
        let (t0, c0) = (Instant::now(), Tsc::now());
        std::thread::sleep(Duration::from_millis(50));
        let (t1, c1) = (Instant::now(), Tsc::now());
        Tsc {
            ns_per_tick: (t1 - t0).as_nanos() as f64 / (c1 - c0) as f64,
        }
    }

    /// The current TSC.
    pub fn now() -> u64 {
        // SAFETY: rdtsc has no preconditions.
        unsafe { core::arch::x86_64::_rdtsc() }
    }

    /// `ticks` as a duration.
    pub fn to_duration(self, ticks: u64) -> Duration {
        Duration::from_nanos((ticks as f64 * self.ns_per_tick) as u64)
    }

    /// Time since the TSC read `t0`.
    pub fn since(self, t0: u64) -> Duration {
        self.to_duration(Tsc::now() - t0)
    }
}

/// Runs `f(iters)` inside Dune and returns the time it reports in TSC ticks (converted on
/// the host: float code is not emulated in ring-0 mode), or zero if Dune is unavailable
/// (after printing `SKIPPED` with the reason).
pub fn in_dune(tsc: &Tsc, f: &mut dyn FnMut(u64) -> u64, iters: u64) -> Duration {
    if let Err(e) = dune_hw::enter() {
        eprintln!("SKIPPED dune benches: {e}");
        return Duration::ZERO;
    }
    let ticks = f(iters);
    dune_hw::exit().expect("leave Dune");
    tsc.to_duration(ticks)
}

/// getpid as a raw system call (the syscall round trip of the benchmarks).
pub fn getpid() -> i64 {
    // SAFETY: getpid has no arguments.
    unsafe { libc::syscall(libc::SYS_getpid) }
}
