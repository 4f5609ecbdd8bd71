//! The collector's side of the Dune cost ledger (issue 15): what dirty tracking and heap
//! growth cost the collector, counted where it happens, for every backend alike (so the
//! Dune backend's figures can be set beside mprotect's). Process-wide relaxed atomics (one
//! add per event; no allocation, safe while the world is stopped), read as a
//! [`CollectorLedger`] snapshot. The VM-side counters (exits, flushes, D bits) are
//! `dune_hw::DuneLedger`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A snapshot of the collector's ledger (since the process started; [`CollectorLedger::since`]
/// for a span). Every figure is counted, none estimated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CollectorLedger {
    /// Tracker arms (start of an incremental cycle).
    pub arms: u64,
    /// Pages handed to the tracker's arms, summed over the arms.
    pub pages_armed: u64,
    /// Time in the tracker's arm (for Dune: the D-bit clear walk and its TLB flush).
    pub arm_time: Duration,
    /// Time stopping and restarting the world around arms that need it (Dune).
    pub arm_stop_world_time: Duration,
    /// CPU time of the arming thread in the arms (`CLOCK_THREAD_CPUTIME_ID`: without the
    /// waits for a CPU a loaded machine adds to [`CollectorLedger::arm_time`]).
    pub arm_cpu_time: Duration,
    /// CPU time of the arming thread stopping and restarting the world (its waits for
    /// the threads to stop are not CPU time).
    pub arm_stop_world_cpu_time: Duration,
    /// Tracker collections (end of an incremental cycle).
    pub collects: u64,
    /// Time in the tracker's collect (for Dune: the D-bit read-and-clear walk, its flush
    /// and the host-write log).
    pub collect_time: Duration,
    /// CPU time of the collecting thread in those collects.
    pub collect_cpu_time: Duration,
    /// Dirty pages the collections reported.
    pub pages_reported: u64,
    /// Write faults the tracker made the program take between arms and collects
    /// (mprotect: SIGSEGVs handled; zero for the fault-free backends).
    pub write_faults: u64,
    /// Successful `madvise(MADV_POPULATE_WRITE)` calls (heap growth in Dune mode).
    pub populate_calls: u64,
    /// Pages those calls populated on the host.
    pub pages_populated: u64,
    /// Time in those calls (each is a forwarded system call inside Dune).
    pub populate_time: Duration,
}

impl CollectorLedger {
    /// `self - earlier`, field by field (saturating).
    pub fn since(&self, e: &CollectorLedger) -> CollectorLedger {
        CollectorLedger {
            arms: self.arms.saturating_sub(e.arms),
            pages_armed: self.pages_armed.saturating_sub(e.pages_armed),
            arm_time: self.arm_time.saturating_sub(e.arm_time),
            arm_stop_world_time: self
                .arm_stop_world_time
                .saturating_sub(e.arm_stop_world_time),
            arm_cpu_time: self.arm_cpu_time.saturating_sub(e.arm_cpu_time),
            arm_stop_world_cpu_time: self
                .arm_stop_world_cpu_time
                .saturating_sub(e.arm_stop_world_cpu_time),
            collect_cpu_time: self.collect_cpu_time.saturating_sub(e.collect_cpu_time),
            collects: self.collects.saturating_sub(e.collects),
            collect_time: self.collect_time.saturating_sub(e.collect_time),
            pages_reported: self.pages_reported.saturating_sub(e.pages_reported),
            write_faults: self.write_faults.saturating_sub(e.write_faults),
            populate_calls: self.populate_calls.saturating_sub(e.populate_calls),
            pages_populated: self.pages_populated.saturating_sub(e.pages_populated),
            populate_time: self.populate_time.saturating_sub(e.populate_time),
        }
    }

    /// The ledger as `key=value` pairs (keys prefixed `gc_`, times in ns) for result lines.
    pub fn to_pairs(&self) -> Vec<(&'static str, u64)> {
        let ns = |d: Duration| d.as_nanos() as u64;
        vec![
            ("gc_arms", self.arms),
            ("gc_pages_armed", self.pages_armed),
            ("gc_arm_ns", ns(self.arm_time)),
            ("gc_arm_stop_world_ns", ns(self.arm_stop_world_time)),
            ("gc_collects", self.collects),
            ("gc_collect_ns", ns(self.collect_time)),
            ("gc_arm_cpu_ns", ns(self.arm_cpu_time)),
            ("gc_arm_stop_world_cpu_ns", ns(self.arm_stop_world_cpu_time)),
            ("gc_collect_cpu_ns", ns(self.collect_cpu_time)),
            ("gc_pages_reported", self.pages_reported),
            ("gc_write_faults", self.write_faults),
            ("gc_populate_calls", self.populate_calls),
            ("gc_pages_populated", self.pages_populated),
            ("gc_populate_ns", ns(self.populate_time)),
        ]
    }

    /// Reads back [`CollectorLedger::to_pairs`] (absent keys are zero).
    pub fn from_pairs(get: &dyn Fn(&str) -> Option<u64>) -> CollectorLedger {
        let n = |k: &str| get(k).unwrap_or(0);
        let t = |k: &str| Duration::from_nanos(n(k));
        CollectorLedger {
            arms: n("gc_arms"),
            pages_armed: n("gc_pages_armed"),
            arm_time: t("gc_arm_ns"),
            arm_stop_world_time: t("gc_arm_stop_world_ns"),
            collects: n("gc_collects"),
            collect_time: t("gc_collect_ns"),
            arm_cpu_time: t("gc_arm_cpu_ns"),
            arm_stop_world_cpu_time: t("gc_arm_stop_world_cpu_ns"),
            collect_cpu_time: t("gc_collect_cpu_ns"),
            pages_reported: n("gc_pages_reported"),
            write_faults: n("gc_write_faults"),
            populate_calls: n("gc_populate_calls"),
            pages_populated: n("gc_pages_populated"),
            populate_time: t("gc_populate_ns"),
        }
    }
}

impl std::fmt::Display for CollectorLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "collector ledger (counted)")?;
        writeln!(
            f,
            "  arms                {} ({} pages armed), {:?} arming ({:?} CPU), {:?} stopping the world for it ({:?} CPU)",
            self.arms,
            self.pages_armed,
            self.arm_time,
            self.arm_cpu_time,
            self.arm_stop_world_time,
            self.arm_stop_world_cpu_time
        )?;
        writeln!(
            f,
            "  collects            {} ({} dirty pages reported), {:?} ({:?} CPU); {} tracker write faults",
            self.collects,
            self.pages_reported,
            self.collect_time,
            self.collect_cpu_time,
            self.write_faults
        )?;
        write!(
            f,
            "  host populate       {} calls, {} pages, {:?}",
            self.populate_calls, self.pages_populated, self.populate_time
        )
    }
}

static ARMS: AtomicU64 = AtomicU64::new(0);
static PAGES_ARMED: AtomicU64 = AtomicU64::new(0);
static ARM_NS: AtomicU64 = AtomicU64::new(0);
static ARM_STOP_WORLD_NS: AtomicU64 = AtomicU64::new(0);
static COLLECTS: AtomicU64 = AtomicU64::new(0);
static COLLECT_NS: AtomicU64 = AtomicU64::new(0);
static ARM_CPU_NS: AtomicU64 = AtomicU64::new(0);
static ARM_STOP_WORLD_CPU_NS: AtomicU64 = AtomicU64::new(0);
static COLLECT_CPU_NS: AtomicU64 = AtomicU64::new(0);
static PAGES_REPORTED: AtomicU64 = AtomicU64::new(0);
static WRITE_FAULTS: AtomicU64 = AtomicU64::new(0);
/// The tracker's cumulative write-fault count at the last arm.
static WRITE_FAULTS_AT_ARM: AtomicU64 = AtomicU64::new(0);
static POPULATE_CALLS: AtomicU64 = AtomicU64::new(0);
static PAGES_POPULATED: AtomicU64 = AtomicU64::new(0);
static POPULATE_NS: AtomicU64 = AtomicU64::new(0);

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// Wall and CPU time of one span (see [`thread_cpu`]).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Span {
    /// Wall-clock time.
    pub(crate) wall: Duration,
    /// CPU time of the calling thread.
    pub(crate) cpu: Duration,
}

/// The calling thread's CPU time so far (`clock_gettime(CLOCK_THREAD_CPUTIME_ID)`; a
/// system call, forwarded inside Dune; zero if it fails).
pub(crate) fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a valid out pointer.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// One arm of `pages` pages that took `arm` (plus `stop_world` around it); the tracker
/// had counted `write_faults` faults (cumulatively) then.
pub(crate) fn arm(pages: u64, arm: Span, stop_world: Span, write_faults: u64) {
    WRITE_FAULTS_AT_ARM.store(write_faults, Ordering::Relaxed);
    add(&ARMS, 1);
    add(&PAGES_ARMED, pages);
    add(&ARM_NS, arm.wall.as_nanos() as u64);
    add(&ARM_STOP_WORLD_NS, stop_world.wall.as_nanos() as u64);
    add(&ARM_CPU_NS, arm.cpu.as_nanos() as u64);
    add(&ARM_STOP_WORLD_CPU_NS, stop_world.cpu.as_nanos() as u64);
}

/// One collect that reported `pages` dirty pages in `t`; the tracker has counted
/// `write_faults` faults (cumulatively) now.
pub(crate) fn collect(pages: u64, t: Span, write_faults: u64) {
    add(
        &WRITE_FAULTS,
        write_faults.saturating_sub(WRITE_FAULTS_AT_ARM.load(Ordering::Relaxed)),
    );
    add(&COLLECTS, 1);
    add(&PAGES_REPORTED, pages);
    add(&COLLECT_NS, t.wall.as_nanos() as u64);
    add(&COLLECT_CPU_NS, t.cpu.as_nanos() as u64);
}

/// One successful host populate of `pages` pages that took `t`.
pub(crate) fn populate(pages: u64, t: Duration) {
    add(&POPULATE_CALLS, 1);
    add(&PAGES_POPULATED, pages);
    add(&POPULATE_NS, t.as_nanos() as u64);
}

/// The collector's ledger so far.
pub fn collector_ledger() -> CollectorLedger {
    let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let t = |c: &AtomicU64| Duration::from_nanos(l(c));
    CollectorLedger {
        arms: l(&ARMS),
        pages_armed: l(&PAGES_ARMED),
        arm_time: t(&ARM_NS),
        arm_stop_world_time: t(&ARM_STOP_WORLD_NS),
        collects: l(&COLLECTS),
        collect_time: t(&COLLECT_NS),
        arm_cpu_time: t(&ARM_CPU_NS),
        arm_stop_world_cpu_time: t(&ARM_STOP_WORLD_CPU_NS),
        collect_cpu_time: t(&COLLECT_CPU_NS),
        pages_reported: l(&PAGES_REPORTED),
        write_faults: l(&WRITE_FAULTS),
        populate_calls: l(&POPULATE_CALLS),
        pages_populated: l(&PAGES_POPULATED),
        populate_time: t(&POPULATE_NS),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_round_trip() {
        let a = CollectorLedger {
            arms: 2,
            pages_armed: 10,
            arm_time: Duration::from_nanos(7),
            arm_cpu_time: Duration::from_nanos(5),
            arm_stop_world_cpu_time: Duration::from_nanos(3),
            collect_cpu_time: Duration::from_nanos(2),
            pages_populated: 512,
            ..CollectorLedger::default()
        };
        let p = a.to_pairs();
        let b = CollectorLedger::from_pairs(&|k| p.iter().find(|x| x.0 == k).map(|x| x.1));
        assert_eq!(a, b);
        assert_eq!(b.since(&a), CollectorLedger::default());
    }

    #[test]
    fn thread_cpu_counts_work_not_sleep() {
        let c0 = thread_cpu();
        std::thread::sleep(Duration::from_millis(20));
        let slept = thread_cpu().saturating_sub(c0);
        let c1 = thread_cpu();
        let t = std::time::Instant::now();
        while t.elapsed() < Duration::from_millis(20) {
            std::hint::spin_loop();
        }
        let spun = thread_cpu().saturating_sub(c1);
        assert!(
            slept < Duration::from_millis(5),
            "sleep is not CPU: {slept:?}"
        );
        assert!(spun > Duration::from_millis(1), "spinning is CPU: {spun:?}");
    }
}
