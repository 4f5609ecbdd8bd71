//! The Dune cost ledger (issue 15): process-wide counters of what being in Dune costs,
//! incremented where each event happens (one relaxed atomic add, times in TSC ticks read
//! with `rdtsc`, which runs natively or is emulated in every mode) and read as a
//! [`DuneLedger`] snapshot.
//!
//! What it counts is what the guest runtime can see: exits to the host (by reason, with
//! the time the monitor spent handling them and the time inside `KVM_RUN`), page faults the
//! monitor resolved, exceptions guest fault handlers resolved without an exit, TLB flushes
//! by kind and their time, fresh leaves mapped into the guest page table, and the D bits
//! the dirty scans found set and cleared. What it cannot see — KVM's shadow-MMU work inside
//! `KVM_RUN` (a first write after a D clear, a refill after a flush) — is estimated by the
//! callers from these counts times unit costs measured in the same binary
//! (`bench-results/dune-ledger.md`).
//!
//! Bottom layer: it imports nothing of the crate, so every layer can count into it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::host_counters::{self, event_key, N_HOST_EVENTS};

/// Why a vCPU exit reached the host-side monitor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitReason {
    /// A forwarded system call (doorbell MMIO write or syscall port).
    Syscall = 0,
    /// A guest exception (page fault, signal-raising fault, a TLB-flush or leave request).
    Exception = 1,
    /// `KVM_RUN` interrupted (a signal for this thread, an immediate exit).
    Interrupted = 2,
    /// A guest access to host memory that was unmapped meanwhile (retried).
    HostMemoryGone = 3,
    /// An access to guest-physical memory no slot backs (MMIO).
    Mmio = 4,
    /// Ring-0: an instruction KVM cannot emulate, stepped natively; or a fatal exit.
    Other = 5,
}

/// Number of [`ExitReason`]s.
pub const N_EXIT_REASONS: usize = 6;

impl ExitReason {
    /// Every reason, in index order.
    pub const ALL: [ExitReason; N_EXIT_REASONS] = [
        ExitReason::Syscall,
        ExitReason::Exception,
        ExitReason::Interrupted,
        ExitReason::HostMemoryGone,
        ExitReason::Mmio,
        ExitReason::Other,
    ];

    /// Short name (used as a key in result lines).
    pub fn name(self) -> &'static str {
        match self {
            ExitReason::Syscall => "syscall",
            ExitReason::Exception => "exception",
            ExitReason::Interrupted => "interrupted",
            ExitReason::HostMemoryGone => "memory_gone",
            ExitReason::Mmio => "mmio",
            ExitReason::Other => "other",
        }
    }
}

/// What a forwarded system call that blocked was (by syscall number): the ledger counts
/// blocked calls by class, so that a report can say which calls waited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockClass {
    /// `futex` (waits: idle marker threads, lock waits, the world-stop handshake).
    Futex = 0,
    /// `nanosleep`, `clock_nanosleep`.
    Sleep = 1,
    /// `poll`, `ppoll`, `select`, `pselect6`, `epoll_wait`, `epoll_pwait`, `epoll_pwait2`.
    Poll = 2,
    /// `read`, `readv`, `pread64`, `preadv`, `preadv2`, `recvfrom`, `recvmsg` (pipes,
    /// sockets, terminals).
    Read = 3,
    /// `wait4`, `waitid`.
    Wait = 4,
    /// `sched_yield`.
    Yield = 5,
    /// Any other call that blocked (an `mmap` waiting for the address-space lock, ...).
    Other = 6,
}

/// Number of [`BlockClass`]es.
pub const N_BLOCK_CLASSES: usize = 7;

impl BlockClass {
    /// Every class, in index order.
    pub const ALL: [BlockClass; N_BLOCK_CLASSES] = [
        BlockClass::Futex,
        BlockClass::Sleep,
        BlockClass::Poll,
        BlockClass::Read,
        BlockClass::Wait,
        BlockClass::Yield,
        BlockClass::Other,
    ];

    /// The class of system call `nr` (x86_64 numbers).
    pub fn of(nr: u64) -> BlockClass {
        match nr as i64 {
            libc::SYS_futex => BlockClass::Futex,
            libc::SYS_nanosleep | libc::SYS_clock_nanosleep => BlockClass::Sleep,
            libc::SYS_poll
            | libc::SYS_ppoll
            | libc::SYS_select
            | libc::SYS_pselect6
            | libc::SYS_epoll_wait
            | libc::SYS_epoll_pwait
            | libc::SYS_epoll_pwait2 => BlockClass::Poll,
            libc::SYS_read
            | libc::SYS_readv
            | libc::SYS_pread64
            | libc::SYS_preadv
            | libc::SYS_preadv2
            | libc::SYS_recvfrom
            | libc::SYS_recvmsg => BlockClass::Read,
            libc::SYS_wait4 | libc::SYS_waitid => BlockClass::Wait,
            libc::SYS_sched_yield => BlockClass::Yield,
            _ => BlockClass::Other,
        }
    }

    /// Short name (used as a key in result lines).
    pub fn name(self) -> &'static str {
        match self {
            BlockClass::Futex => "futex",
            BlockClass::Sleep => "sleep",
            BlockClass::Poll => "poll",
            BlockClass::Read => "read",
            BlockClass::Wait => "wait",
            BlockClass::Yield => "yield",
            BlockClass::Other => "other",
        }
    }
}

/// A snapshot of the process's Dune cost ledger. Times are wall-clock durations measured
/// with the TSC around the event; nothing here is estimated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DuneLedger {
    /// Exits by [`ExitReason`] (index = `reason as usize`).
    pub exits: [u64; N_EXIT_REASONS],
    /// Time the host-side monitor spent handling those exits (from `KVM_RUN` returning to
    /// the next `KVM_RUN`), by reason.
    pub exit_handling: [Duration; N_EXIT_REASONS],
    /// Forwarded system calls (executed by the monitor for the program: plain forwarded
    /// calls and address-space calls, `mmap`/`munmap`/`madvise`/`mprotect`/`brk`) that did
    /// not block.
    pub forwarded: u64,
    /// Time in those calls on the host (inside the syscall exits' handling time).
    pub forwarded_time: Duration,
    /// Forwarded system calls that blocked — the thread switched out voluntarily while
    /// the host executed them (`getrusage(RUSAGE_THREAD)` `ru_nvcsw` rose) — by
    /// [`BlockClass`].
    pub blocked: [u64; N_BLOCK_CLASSES],
    /// Time in those calls on the host, by class (inside the syscall exits' handling
    /// time): waiting, not the cost of being in Dune. Summed over threads, so it can
    /// exceed the run's wall time.
    pub blocked_time: [Duration; N_BLOCK_CLASSES],
    /// Time inside `KVM_RUN`: guest execution plus everything the host kernel does on the
    /// guest's behalf without an exit to user space (shadow faults, resyncs).
    pub in_kvm_run: Duration,
    /// Guest page faults the monitor resolved (mapped the page and resumed).
    pub monitor_faults: u64,
    /// Exceptions a guest fault handler resolved in the guest, without an exit.
    pub guest_faults: u64,
    /// Page-granular flushes on the calling vCPU (`invlpg`, `HC_FLUSH_TLB_ONE`, the pvm
    /// one-page request).
    pub flush_local: u64,
    /// Pages those page-granular flushes invalidated.
    pub flush_local_pages: u64,
    /// Full flushes requested from guest code (pvm/ring-3 hypercall, pvm-ring0
    /// `HC_FLUSH_TLB`, ring-0 CR3 reload).
    pub flush_guest_full: u64,
    /// Full flushes deferred to the next guest entry (requested from the host side).
    pub flush_deferred: u64,
    /// Full flushes the monitor performed by changing a vCPU's CR3 through KVM (KVM drops
    /// the shadow roots).
    pub flush_monitor: u64,
    /// Time in flushes requested from guest code (`dune_hw::flush`, `flush_tlb_all`; in
    /// ring-3 mode this includes the exit and the monitor's CR3 change that serve them).
    pub flush_time: Duration,
    /// Time in the monitor's CR3 changes (host side).
    pub flush_monitor_time: Duration,
    /// 4 KiB leaf entries that became present in the guest page table (fresh pages mapped
    /// into the guest by the mapping and fault paths; huge leaves set through
    /// [`crate::pagetable`] are not counted).
    pub fresh_pages: u64,
    /// Leaf entries (4 KiB pages) the dirty scans (`DirtyView::collect_and_clear`) visited.
    pub dirty_scanned: u64,
    /// D bits those scans found set and cleared (4 KiB pages).
    pub dirty_cleared: u64,
    /// Of those, the D bits the MMU set (not preset on a fresh leaf,
    /// `paging::pte::PRESET_D`): writes after a D clear, each a shadow-MMU fault under
    /// shadow paging (huge leaves count as written).
    pub dirty_written: u64,
    /// Host page faults taken inside `KVM_RUN` (the vCPU thread's
    /// `getrusage(RUSAGE_THREAD)` minor + major faults, read around each `KVM_RUN`): KVM
    /// faulting in, for its shadow MMU, a host page the guest touched that was not
    /// resident — the first touch of a fresh leaf whose host page was not populated
    /// (A/D are preset on fresh leaves, so the guest page table cannot tell which were
    /// touched; the host's fault counter can).
    pub host_faults_in_run: u64,
    /// Host-side KVM tracepoint events counted on the vCPU threads
    /// ([`crate::arch::host_counters::HOST_EVENTS`], same index): per-thread perf events
    /// read by the monitor after every `KVM_RUN`. All zero where they could not be
    /// opened ([`DuneLedger::host_threads_failed`]).
    pub host_events: [u64; N_HOST_EVENTS],
    /// vCPU threads whose host counters were opened.
    pub host_threads: u64,
    /// vCPU threads whose host counters could not be opened
    /// ([`crate::host_counter_status`] says why).
    pub host_threads_failed: u64,
    /// User time of the vCPU threads inside `KVM_RUN` (`getrusage(RUSAGE_THREAD)` around
    /// each; the host accounts guest execution as user time).
    pub run_utime: Duration,
    /// System (host-kernel) time of the vCPU threads inside `KVM_RUN` (same source).
    pub run_stime: Duration,
}

impl DuneLedger {
    /// All exits.
    pub fn total_exits(&self) -> u64 {
        self.exits.iter().sum()
    }

    /// All exit-handling time.
    pub fn total_exit_handling(&self) -> Duration {
        self.exit_handling.iter().sum()
    }

    /// All forwarded calls that blocked.
    pub fn total_blocked(&self) -> u64 {
        self.blocked.iter().sum()
    }

    /// Time in forwarded calls that blocked, all classes.
    pub fn total_blocked_time(&self) -> Duration {
        self.blocked_time.iter().sum()
    }

    /// Exit-handling time without the time forwarded calls spent blocked: the monitor's
    /// own work plus the host work of calls that ran without waiting.
    pub fn exit_handling_unblocked(&self) -> Duration {
        self.total_exit_handling()
            .saturating_sub(self.total_blocked_time())
    }

    /// `self - earlier`, field by field (saturating): the events between two snapshots.
    pub fn since(&self, earlier: &DuneLedger) -> DuneLedger {
        let mut d = DuneLedger {
            forwarded: self.forwarded.saturating_sub(earlier.forwarded),
            forwarded_time: self.forwarded_time.saturating_sub(earlier.forwarded_time),
            in_kvm_run: self.in_kvm_run.saturating_sub(earlier.in_kvm_run),
            monitor_faults: self.monitor_faults.saturating_sub(earlier.monitor_faults),
            guest_faults: self.guest_faults.saturating_sub(earlier.guest_faults),
            flush_local: self.flush_local.saturating_sub(earlier.flush_local),
            flush_local_pages: self
                .flush_local_pages
                .saturating_sub(earlier.flush_local_pages),
            flush_guest_full: self
                .flush_guest_full
                .saturating_sub(earlier.flush_guest_full),
            flush_deferred: self.flush_deferred.saturating_sub(earlier.flush_deferred),
            flush_monitor: self.flush_monitor.saturating_sub(earlier.flush_monitor),
            flush_time: self.flush_time.saturating_sub(earlier.flush_time),
            flush_monitor_time: self
                .flush_monitor_time
                .saturating_sub(earlier.flush_monitor_time),
            fresh_pages: self.fresh_pages.saturating_sub(earlier.fresh_pages),
            dirty_scanned: self.dirty_scanned.saturating_sub(earlier.dirty_scanned),
            dirty_cleared: self.dirty_cleared.saturating_sub(earlier.dirty_cleared),
            dirty_written: self.dirty_written.saturating_sub(earlier.dirty_written),
            host_faults_in_run: self
                .host_faults_in_run
                .saturating_sub(earlier.host_faults_in_run),
            host_events: std::array::from_fn(|i| {
                self.host_events[i].saturating_sub(earlier.host_events[i])
            }),
            // state, not events: how many vCPU threads count (or not) as of `self`
            host_threads: self.host_threads,
            host_threads_failed: self.host_threads_failed,
            run_utime: self.run_utime.saturating_sub(earlier.run_utime),
            run_stime: self.run_stime.saturating_sub(earlier.run_stime),
            ..DuneLedger::default()
        };
        for i in 0..N_EXIT_REASONS {
            d.exits[i] = self.exits[i].saturating_sub(earlier.exits[i]);
            d.exit_handling[i] = self.exit_handling[i].saturating_sub(earlier.exit_handling[i]);
        }
        for i in 0..N_BLOCK_CLASSES {
            d.blocked[i] = self.blocked[i].saturating_sub(earlier.blocked[i]);
            d.blocked_time[i] = self.blocked_time[i].saturating_sub(earlier.blocked_time[i]);
        }
        d
    }

    /// The ledger as `key=value` pairs (keys prefixed `dune_`, times in ns) for result
    /// lines; [`DuneLedger::from_pairs`] reads them back.
    pub fn to_pairs(&self) -> Vec<(String, u64)> {
        let mut v = Vec::new();
        for r in ExitReason::ALL {
            v.push((format!("dune_exits_{}", r.name()), self.exits[r as usize]));
            v.push((
                format!("dune_exit_{}_ns", r.name()),
                self.exit_handling[r as usize].as_nanos() as u64,
            ));
        }
        let ns = |d: Duration| d.as_nanos() as u64;
        v.push(("dune_forwarded".to_owned(), self.forwarded));
        v.push(("dune_forwarded_ns".to_owned(), ns(self.forwarded_time)));
        for c in BlockClass::ALL {
            v.push((
                format!("dune_blocked_{}", c.name()),
                self.blocked[c as usize],
            ));
            v.push((
                format!("dune_blocked_{}_ns", c.name()),
                ns(self.blocked_time[c as usize]),
            ));
        }
        v.extend([
            ("dune_kvm_run_ns".to_owned(), ns(self.in_kvm_run)),
            ("dune_monitor_faults".to_owned(), self.monitor_faults),
            ("dune_guest_faults".to_owned(), self.guest_faults),
            ("dune_flush_local".to_owned(), self.flush_local),
            ("dune_flush_local_pages".to_owned(), self.flush_local_pages),
            ("dune_flush_guest_full".to_owned(), self.flush_guest_full),
            ("dune_flush_deferred".to_owned(), self.flush_deferred),
            ("dune_flush_monitor".to_owned(), self.flush_monitor),
            ("dune_flush_ns".to_owned(), ns(self.flush_time)),
            (
                "dune_flush_monitor_ns".to_owned(),
                ns(self.flush_monitor_time),
            ),
            ("dune_fresh_pages".to_owned(), self.fresh_pages),
            ("dune_dirty_scanned".to_owned(), self.dirty_scanned),
            ("dune_dirty_cleared".to_owned(), self.dirty_cleared),
            ("dune_dirty_written".to_owned(), self.dirty_written),
            (
                "dune_host_faults_in_run".to_owned(),
                self.host_faults_in_run,
            ),
            ("dune_host_threads".to_owned(), self.host_threads),
            (
                "dune_host_threads_failed".to_owned(),
                self.host_threads_failed,
            ),
            ("dune_run_utime_ns".to_owned(), ns(self.run_utime)),
            ("dune_run_stime_ns".to_owned(), ns(self.run_stime)),
        ]);
        for i in 0..N_HOST_EVENTS {
            v.push((format!("dune_host_{}", event_key(i)), self.host_events[i]));
        }
        v
    }

    /// Reads back [`DuneLedger::to_pairs`]; `get(key)` returns the value or None (absent
    /// keys are zero).
    pub fn from_pairs(get: &dyn Fn(&str) -> Option<u64>) -> DuneLedger {
        let n = |k: &str| get(k).unwrap_or(0);
        let t = |k: &str| Duration::from_nanos(n(k));
        let mut d = DuneLedger {
            forwarded: n("dune_forwarded"),
            forwarded_time: t("dune_forwarded_ns"),
            in_kvm_run: t("dune_kvm_run_ns"),
            monitor_faults: n("dune_monitor_faults"),
            guest_faults: n("dune_guest_faults"),
            flush_local: n("dune_flush_local"),
            flush_local_pages: n("dune_flush_local_pages"),
            flush_guest_full: n("dune_flush_guest_full"),
            flush_deferred: n("dune_flush_deferred"),
            flush_monitor: n("dune_flush_monitor"),
            flush_time: t("dune_flush_ns"),
            flush_monitor_time: t("dune_flush_monitor_ns"),
            fresh_pages: n("dune_fresh_pages"),
            dirty_scanned: n("dune_dirty_scanned"),
            dirty_cleared: n("dune_dirty_cleared"),
            dirty_written: n("dune_dirty_written"),
            host_faults_in_run: n("dune_host_faults_in_run"),
            host_events: std::array::from_fn(|i| n(&format!("dune_host_{}", event_key(i)))),
            host_threads: n("dune_host_threads"),
            host_threads_failed: n("dune_host_threads_failed"),
            run_utime: t("dune_run_utime_ns"),
            run_stime: t("dune_run_stime_ns"),
            ..DuneLedger::default()
        };
        for r in ExitReason::ALL {
            d.exits[r as usize] = n(&format!("dune_exits_{}", r.name()));
            d.exit_handling[r as usize] = t(&format!("dune_exit_{}_ns", r.name()));
        }
        for c in BlockClass::ALL {
            d.blocked[c as usize] = n(&format!("dune_blocked_{}", c.name()));
            d.blocked_time[c as usize] = t(&format!("dune_blocked_{}_ns", c.name()));
        }
        d
    }
}

impl std::fmt::Display for DuneLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "dune ledger (counted in the guest runtime)")?;
        write!(f, "  exits               {}", self.total_exits())?;
        for r in ExitReason::ALL {
            let i = r as usize;
            if self.exits[i] > 0 {
                write!(
                    f,
                    ", {} {} ({:?})",
                    r.name(),
                    self.exits[i],
                    self.exit_handling[i]
                )?;
            }
        }
        writeln!(f)?;
        write!(
            f,
            "  forwarded calls     {} ran without blocking ({:?} on the host), {} blocked ({:?})",
            self.forwarded,
            self.forwarded_time,
            self.total_blocked(),
            self.total_blocked_time()
        )?;
        for c in BlockClass::ALL {
            let i = c as usize;
            if self.blocked[i] > 0 {
                write!(
                    f,
                    ", {} {} ({:?})",
                    c.name(),
                    self.blocked[i],
                    self.blocked_time[i]
                )?;
            }
        }
        writeln!(f)?;
        writeln!(
            f,
            "  time in KVM_RUN     {:?} ({} host page faults inside it)",
            self.in_kvm_run, self.host_faults_in_run
        )?;
        writeln!(
            f,
            "  faults              {} resolved by the monitor, {} by guest handlers",
            self.monitor_faults, self.guest_faults
        )?;
        writeln!(
            f,
            "  TLB flushes         {} local ({} pages), {} full from the guest ({:?} in guest flush calls), {} deferred, {} by the monitor ({:?})",
            self.flush_local,
            self.flush_local_pages,
            self.flush_guest_full,
            self.flush_time,
            self.flush_deferred,
            self.flush_monitor,
            self.flush_monitor_time
        )?;
        write!(
            f,
            "  pages               {} fresh leaves mapped, {} scanned, {} D bits found set and cleared ({} set by writes, {} preset)",
            self.fresh_pages,
            self.dirty_scanned,
            self.dirty_cleared,
            self.dirty_written,
            self.dirty_cleared - self.dirty_written.min(self.dirty_cleared)
        )?;
        writeln!(f)?;
        write!(
            f,
            "  vCPU threads        {:?} user, {:?} system inside KVM_RUN (getrusage)",
            self.run_utime, self.run_stime
        )?;
        writeln!(f)?;
        if self.host_threads == 0 {
            write!(
                f,
                "  host KVM events     not counted ({} vCPU threads could not open the tracepoints)",
                self.host_threads_failed
            )
        } else {
            write!(
                f,
                "  host KVM events     (tracepoints on {} vCPU threads{})",
                self.host_threads,
                if self.host_threads_failed > 0 {
                    format!(", {} not counted", self.host_threads_failed)
                } else {
                    String::new()
                }
            )?;
            for i in 0..N_HOST_EVENTS {
                write!(f, " {} {}", event_key(i), self.host_events[i])?;
            }
            Ok(())
        }
    }
}

struct Counters {
    forwarded: AtomicU64,
    forwarded_ticks: AtomicU64,
    blocked: [AtomicU64; N_BLOCK_CLASSES],
    blocked_ticks: [AtomicU64; N_BLOCK_CLASSES],
    exits: [AtomicU64; N_EXIT_REASONS],
    exit_ticks: [AtomicU64; N_EXIT_REASONS],
    kvm_run_ticks: AtomicU64,
    monitor_faults: AtomicU64,
    guest_faults: AtomicU64,
    flush_local: AtomicU64,
    flush_local_pages: AtomicU64,
    flush_guest_full: AtomicU64,
    flush_deferred: AtomicU64,
    flush_monitor: AtomicU64,
    flush_ticks: AtomicU64,
    flush_monitor_ticks: AtomicU64,
    fresh_pages: AtomicU64,
    dirty_scanned: AtomicU64,
    dirty_cleared: AtomicU64,
    dirty_written: AtomicU64,
    host_faults_in_run: AtomicU64,
}

static C: Counters = Counters {
    forwarded: AtomicU64::new(0),
    forwarded_ticks: AtomicU64::new(0),
    blocked: [const { AtomicU64::new(0) }; N_BLOCK_CLASSES],
    blocked_ticks: [const { AtomicU64::new(0) }; N_BLOCK_CLASSES],
    exits: [const { AtomicU64::new(0) }; N_EXIT_REASONS],
    exit_ticks: [const { AtomicU64::new(0) }; N_EXIT_REASONS],
    kvm_run_ticks: AtomicU64::new(0),
    monitor_faults: AtomicU64::new(0),
    guest_faults: AtomicU64::new(0),
    flush_local: AtomicU64::new(0),
    flush_local_pages: AtomicU64::new(0),
    flush_guest_full: AtomicU64::new(0),
    flush_deferred: AtomicU64::new(0),
    flush_monitor: AtomicU64::new(0),
    flush_ticks: AtomicU64::new(0),
    flush_monitor_ticks: AtomicU64::new(0),
    fresh_pages: AtomicU64::new(0),
    dirty_scanned: AtomicU64::new(0),
    dirty_cleared: AtomicU64::new(0),
    dirty_written: AtomicU64::new(0),
    host_faults_in_run: AtomicU64::new(0),
};

fn add(c: &AtomicU64, n: u64) {
    if n != 0 {
        c.fetch_add(n, Ordering::Relaxed);
    }
}

/// The TSC now (the ledger's clock: `rdtsc` works in every Dune mode and on the host).
pub fn ticks() -> u64 {
    // SAFETY: rdtsc has no preconditions.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Nanoseconds per TSC tick, measured once against `Instant` (5 ms busy wait).
fn ns_per_tick() -> f64 {
    static RATE: OnceLock<f64> = OnceLock::new();
    *RATE.get_or_init(|| {
        let (t0, c0) = (Instant::now(), ticks());
        while t0.elapsed() < Duration::from_millis(5) {
            std::hint::spin_loop();
        }
        let (t1, c1) = (Instant::now(), ticks());
        (t1 - t0).as_nanos() as f64 / (c1 - c0).max(1) as f64
    })
}

fn to_duration(t: u64) -> Duration {
    Duration::from_nanos((t as f64 * ns_per_tick()) as u64)
}

/// One exit handled: its reason and the ticks of `KVM_RUN` before it and of its handling.
pub(crate) fn exit(reason: ExitReason, run_ticks: u64, handling_ticks: u64) {
    add(&C.exits[reason as usize], 1);
    add(&C.exit_ticks[reason as usize], handling_ticks);
    add(&C.kvm_run_ticks, run_ticks);
}

/// Voluntary context switches of the calling thread so far (`getrusage(RUSAGE_THREAD)`;
/// the monitor reads it around a forwarded call to learn whether the call blocked).
pub(crate) fn voluntary_switches() -> i64 {
    // SAFETY: a zeroed rusage is valid; getrusage writes it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_THREAD with a valid out pointer.
    if unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) } != 0 {
        return -1;
    }
    ru.ru_nvcsw
}

/// `n` host page faults were taken inside one `KVM_RUN`.
pub(crate) fn faults_in_run(n: u64) {
    add(&C.host_faults_in_run, n);
}

/// A forwarded call `nr` that took `ticks` on the host; `blocked` if the thread switched
/// out voluntarily meanwhile.
pub(crate) fn forwarded_call(nr: u64, ticks: u64, blocked: bool) {
    if blocked {
        let c = BlockClass::of(nr) as usize;
        add(&C.blocked[c], 1);
        add(&C.blocked_ticks[c], ticks);
    } else {
        add(&C.forwarded, 1);
        add(&C.forwarded_ticks, ticks);
    }
}

/// A guest page fault the monitor resolved.
pub(crate) fn monitor_fault() {
    add(&C.monitor_faults, 1);
}

/// An exception a guest fault handler resolved without an exit.
pub(crate) fn guest_fault() {
    add(&C.guest_faults, 1);
}

/// A page-granular flush of `n_pages` on this vCPU.
pub(crate) fn flush_local(n_pages: u64) {
    add(&C.flush_local, 1);
    add(&C.flush_local_pages, n_pages);
}

/// A full flush requested from guest code.
pub(crate) fn flush_guest_full() {
    add(&C.flush_guest_full, 1);
}

/// A full flush deferred to the next guest entry.
pub(crate) fn flush_deferred() {
    add(&C.flush_deferred, 1);
}

/// A full flush by the monitor (CR3 changed through KVM), which took `t` ticks.
pub(crate) fn flush_monitor(t: u64) {
    add(&C.flush_monitor, 1);
    add(&C.flush_monitor_ticks, t);
}

/// `t` ticks spent in a flush call.
pub(crate) fn flush_time(t: u64) {
    add(&C.flush_ticks, t);
}

/// `n` leaves became present in the guest page table.
pub(crate) fn fresh_pages(n: u64) {
    add(&C.fresh_pages, n);
}

/// A dirty scan visited `scanned` pages and found and cleared `cleared` D bits, `written`
/// of them set by the MMU.
pub(crate) fn dirty_scan(scanned: u64, cleared: u64, written: u64) {
    add(&C.dirty_scanned, scanned);
    add(&C.dirty_cleared, cleared);
    add(&C.dirty_written, written);
}

/// The ledger so far (since the process started; use [`DuneLedger::since`] for a span).
/// Counters from other threads are read with relaxed loads: a snapshot taken while other
/// threads run may be a few events behind.
pub fn ledger() -> DuneLedger {
    let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let mut d = DuneLedger {
        forwarded: l(&C.forwarded),
        forwarded_time: to_duration(l(&C.forwarded_ticks)),
        in_kvm_run: to_duration(l(&C.kvm_run_ticks)),
        monitor_faults: l(&C.monitor_faults),
        guest_faults: l(&C.guest_faults),
        flush_local: l(&C.flush_local),
        flush_local_pages: l(&C.flush_local_pages),
        flush_guest_full: l(&C.flush_guest_full),
        flush_deferred: l(&C.flush_deferred),
        flush_monitor: l(&C.flush_monitor),
        flush_time: to_duration(l(&C.flush_ticks)),
        flush_monitor_time: to_duration(l(&C.flush_monitor_ticks)),
        fresh_pages: l(&C.fresh_pages),
        dirty_scanned: l(&C.dirty_scanned),
        dirty_cleared: l(&C.dirty_cleared),
        dirty_written: l(&C.dirty_written),
        host_faults_in_run: l(&C.host_faults_in_run),
        ..DuneLedger::default()
    };
    let (events, threads, failed, utime, stime) = host_counters::snapshot();
    d.host_events = events;
    d.host_threads = threads;
    d.host_threads_failed = failed;
    d.run_utime = Duration::from_nanos(utime);
    d.run_stime = Duration::from_nanos(stime);
    for i in 0..N_EXIT_REASONS {
        d.exits[i] = l(&C.exits[i]);
        d.exit_handling[i] = to_duration(l(&C.exit_ticks[i]));
    }
    for i in 0..N_BLOCK_CLASSES {
        d.blocked[i] = l(&C.blocked[i]);
        d.blocked_time[i] = to_duration(l(&C.blocked_ticks[i]));
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_round_trip_and_since_subtracts() {
        let mut a = DuneLedger {
            monitor_faults: 3,
            fresh_pages: 7,
            dirty_cleared: 2,
            host_faults_in_run: 11,
            flush_time: Duration::from_nanos(50),
            host_threads: 2,
            run_stime: Duration::from_nanos(300),
            ..DuneLedger::default()
        };
        a.host_events[host_counters::EV_WALK] = 40;
        a.exits[ExitReason::Syscall as usize] = 9;
        a.exit_handling[ExitReason::Syscall as usize] = Duration::from_nanos(900);
        a.blocked[BlockClass::Futex as usize] = 4;
        a.blocked_time[BlockClass::Futex as usize] = Duration::from_nanos(700);
        a.forwarded = 5;
        let pairs = a.to_pairs();
        let back = DuneLedger::from_pairs(&|k| pairs.iter().find(|p| p.0 == k).map(|p| p.1));
        assert_eq!(back, a);
        let mut b = a;
        b.fresh_pages += 5;
        b.host_faults_in_run += 2;
        b.host_events[host_counters::EV_WALK] += 6;
        b.run_stime += Duration::from_nanos(100);
        b.exits[ExitReason::Exception as usize] += 1;
        let d = b.since(&a);
        assert_eq!(
            (
                d.fresh_pages,
                d.total_exits(),
                d.monitor_faults,
                d.host_faults_in_run
            ),
            (5, 1, 0, 2)
        );
        assert_eq!(d.host_events[host_counters::EV_WALK], 6);
        assert_eq!(
            (d.host_threads, d.run_stime),
            (2, Duration::from_nanos(100))
        );
        assert_eq!(a.exit_handling_unblocked(), Duration::from_nanos(200));
        assert_eq!(BlockClass::of(libc::SYS_futex as u64), BlockClass::Futex);
        assert_eq!(BlockClass::of(libc::SYS_getpid as u64), BlockClass::Other);
    }
}
