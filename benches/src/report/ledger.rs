//! The Dune section's reconciliation (issue 15): the wall-time difference between a run in
//! Dune and its native counterpart (`dune-full` vs `full`, `inc-dune` vs `inc-mprotect`),
//! split into what the ledgers counted and what counts × unit costs estimate, with the
//! unexplained rest printed.
//!
//! Rows (Δ = Dune run − native run; wall-clock ns):
//! - *counted*: the monitor's exit handling (every exit, by the TSC) without the host time
//!   of forwarded calls that blocked (the thread switched out voluntarily: a futex wait of
//!   an idle marker is not on the critical path); the tracker's arm,
//!   stop-the-world-for-arm and collect time (Dune − native, by `Instant`; on CPU time
//!   the collecting thread's `CLOCK_THREAD_CPUTIME_ID`);
//! - *estimated*: exits × (Dune getpid − monitor handling per exit) for the transitions;
//!   writes after a D clear (counted: D bits the MMU set, not preset) × the calibrated
//!   write-after-clear cost; populated fresh heap pages × (first store in Dune to a
//!   populated page − first store natively); host page faults inside `KVM_RUN` (counted
//!   by the vCPU threads' `getrusage`: first touches of host pages that were not
//!   resident) × (first store in Dune to an unpopulated page − natively); the native tracker's write faults × its calibrated
//!   fault cost (subtracted: the native run pays them).
//!
//! Unit costs come from `dunegc-runner calibrate` in the same session
//! ([`crate::calibrate`]); without them only the counted rows are filled.

use crate::calibrate::UnitCosts;
use crate::runner::RunResult;

/// The row of first touches of unpopulated host pages (host page faults inside
/// `KVM_RUN`, counted since Session 6 of `bench-results/dune-ledger.md`).
pub const HOST_FAULT_ROW: &str = "first touches of unpopulated host pages (Dune − native)";

/// The row of the tracker's arm and collect spans.
pub const ARM_ROW: &str = "tracker arm + collect (Dune − native)";

/// The row of the stop-the-world spans around arms.
pub const STOP_ROW: &str = "stopping the world for the arm (Dune − native)";

/// How a row's figure was obtained.
#[derive(Clone, Debug, PartialEq)]
pub enum Basis {
    /// Measured by the ledgers' clocks around the event.
    Counted,
    /// A count times a calibrated unit cost (the formula in words).
    Estimated(String),
}

/// One row of a reconciliation.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// What the row is.
    pub what: &'static str,
    /// How it was obtained.
    pub basis: Basis,
    /// Its share of the difference, ns (negative: the native run pays more).
    pub ns: f64,
}

/// The difference between a Dune run and its native counterpart, explained.
#[derive(Clone, Debug, PartialEq)]
pub struct Reconciliation {
    /// Wall-time difference, ns.
    pub delta_ns: f64,
    /// CPU-time (user + system) difference, ns (cross-check).
    pub delta_cpu_ns: f64,
    /// Host-kernel (system) time difference, ns (cross-check; tick-sampled split).
    pub delta_stime_ns: f64,
    /// The Dune run's vCPU threads' system (host-kernel) time inside `KVM_RUN`, ns
    /// (`getrusage(RUSAGE_THREAD)` around each; cross-check, not a row: it overlaps the
    /// shadow-MMU rows).
    pub run_stime_ns: f64,
    /// Their user time inside `KVM_RUN` (guest execution as the host accounts it), ns.
    pub run_utime_ns: f64,
    /// The rows.
    pub rows: Vec<Row>,
}

impl Reconciliation {
    /// The sum of the rows.
    pub fn explained_ns(&self) -> f64 {
        self.rows.iter().map(|r| r.ns).sum()
    }

    /// Δ minus the rows.
    pub fn unexplained_ns(&self) -> f64 {
        self.delta_ns - self.explained_ns()
    }

    /// The row named `what` (0 when absent), ns.
    pub fn row_ns(&self, what: &str) -> f64 {
        self.rows
            .iter()
            .filter(|r| r.what == what)
            .map(|r| r.ns)
            .sum()
    }

    /// The unexplained rest as a fraction of |Δ| (0 when Δ is 0).
    pub fn unexplained_fraction(&self) -> f64 {
        if self.delta_ns == 0.0 {
            0.0
        } else {
            self.unexplained_ns() / self.delta_ns.abs()
        }
    }
}

/// Writes after a D clear the Dune run took (counted): the D bits its scans found set by
/// the MMU rather than preset on a fresh leaf, plus those no scan saw by the end (the
/// runner reads them from the guest page table after the workload). Each is one shadow-MMU fault on this host
/// (KVM's `kvmmmu:kvm_mmu_set_dirty_bit` tracepoint counts the same events from outside).
pub fn writes_after_clear(a: &RunResult) -> u64 {
    a.dune.dirty_written + a.dune_written_tail
}

/// What a reconciliation explains.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The wall-time difference, with wall-clock unit costs (both include the waits for a
    /// CPU a loaded machine adds).
    Wall,
    /// The CPU-time difference (`getrusage` user + system), with CPU unit costs: the waits
    /// for a CPU drop out of both sides. The counted arm, collect and stop-the-world rows
    /// are the collecting thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`).
    Cpu,
}

/// Reconciles `dune` (a run in Dune) with `native` (its counterpart outside Dune), on wall
/// time.
pub fn reconcile(dune: &RunResult, native: &RunResult, u: Option<&UnitCosts>) -> Reconciliation {
    reconcile_on(Target::Wall, dune, native, u)
}

/// [`reconcile`] on `target`.
pub fn reconcile_on(
    target: Target,
    dune: &RunResult,
    native: &RunResult,
    u: Option<&UnitCosts>,
) -> Reconciliation {
    let pick = |c: crate::calibrate::Cost| match target {
        Target::Wall => c.wall,
        Target::Cpu => c.cpu,
    };
    let d = &dune.dune;
    let (ga, gb) = (&dune.gc_ledger, &native.gc_ledger);
    let ns = |t: std::time::Duration| t.as_nanos() as f64;
    let mut rows = Vec::new();
    if target == Target::Wall {
        // Forwarded calls that blocked (idle markers' futex waits, summed over threads)
        // are waiting, not work on the critical path: left out (their exits' round trips
        // stay in the transitions row).
        rows.push(Row {
            what: "monitor exit handling, without forwarded calls that blocked",
            basis: Basis::Counted,
            ns: ns(d.exit_handling_unblocked()),
        });
    }
    // on CPU time, the arming/collecting thread's CPU time (without the waits for a CPU
    // and for the threads to stop that the wall-clock spans carry)
    let (arm, stop) = match target {
        Target::Wall => (
            ns(ga.arm_time + ga.collect_time) - ns(gb.arm_time + gb.collect_time),
            ns(ga.arm_stop_world_time) - ns(gb.arm_stop_world_time),
        ),
        Target::Cpu => (
            ns(ga.arm_cpu_time + ga.collect_cpu_time) - ns(gb.arm_cpu_time + gb.collect_cpu_time),
            ns(ga.arm_stop_world_cpu_time) - ns(gb.arm_stop_world_cpu_time),
        ),
    };
    rows.extend([
        Row {
            what: ARM_ROW,
            basis: Basis::Counted,
            ns: arm,
        },
        Row {
            what: STOP_ROW,
            basis: Basis::Counted,
            ns: stop,
        },
    ]);
    if let Some(u) = u {
        let exits = d.total_exits() as f64;
        if target == Target::Wall {
            let transition = (pick(u.dune_getpid) - pick(u.dune_exit_handling)).max(0.0);
            rows.push(Row {
                what: "exit transitions",
                basis: Basis::Estimated(format!(
                    "{exits:.0} exits × {:.1} µs (Dune getpid − its handling)",
                    transition / 1e3
                )),
                ns: exits * transition,
            });
        } else {
            // the counted handling times are wall-clock: on CPU time every exit is
            // estimated as a getpid's extra CPU, and the populate calls (the one heavy
            // forwarded syscall) by their calibrated CPU cost per page
            let extra = (pick(u.dune_getpid) - pick(u.native_getpid)).max(0.0);
            rows.push(Row {
                what: "exits (round trip, handling included)",
                basis: Basis::Estimated(format!(
                    "{exits:.0} exits × {:.1} µs (Dune getpid − native getpid)",
                    extra / 1e3
                )),
                ns: exits * extra,
            });
            let pop = ga.pages_populated as f64;
            rows.push(Row {
                what: "host populate (forwarded madvise)",
                basis: Basis::Estimated(format!(
                    "{pop:.0} pages × {:.2} µs",
                    pick(u.dune_populate) / 1e3
                )),
                ns: pop * pick(u.dune_populate),
            });
        }
        let counted =
            d.host_threads > 0 && d.host_threads_failed == 0 && u.dune_shadow_fault.wall > 0.0;
        if counted {
            shadow_rows_counted(&mut rows, dune, &pick, u);
        } else {
            shadow_rows_estimated(&mut rows, dune, &pick, u);
        }
        let wf = gb.write_faults as f64;
        if wf > 0.0 {
            rows.push(Row {
                what: "native tracker's write faults (paid by the native run)",
                basis: Basis::Estimated(format!(
                    "−{wf:.0} faults × {:.1} µs",
                    pick(u.mprotect_fault) / 1e3
                )),
                ns: -wf * pick(u.mprotect_fault),
            });
        }
    }
    let cpu = |r: &RunResult| (r.utime_ns + r.stime_ns) as f64;
    Reconciliation {
        delta_ns: match target {
            Target::Wall => dune.wall_ns as f64 - native.wall_ns as f64,
            Target::Cpu => cpu(dune) - cpu(native),
        },
        delta_cpu_ns: cpu(dune) - cpu(native),
        delta_stime_ns: dune.stime_ns as f64 - native.stime_ns as f64,
        run_stime_ns: ns(d.run_stime),
        run_utime_ns: ns(d.run_utime),
        rows,
    }
}

/// The shadow-MMU rows without host counters (tracepoints not available, or a
/// calibration without the per-walk unit): the guest-visible counts × unit costs.
fn shadow_rows_estimated(
    rows: &mut Vec<Row>,
    dune: &RunResult,
    pick: &dyn Fn(crate::calibrate::Cost) -> f64,
    u: &UnitCosts,
) {
    let d = &dune.dune;
    let ga = &dune.gc_ledger;
    let wac = writes_after_clear(dune) as f64;
    rows.push(Row {
        what: "shadow faults: writes after a D clear",
        basis: Basis::Estimated(format!(
            "{wac:.0} counted writes after a D clear × {:.1} µs",
            pick(u.dune_write_after_clear) / 1e3
        )),
        ns: wac * pick(u.dune_write_after_clear).max(0.0),
    });
    // heap pages: populated ahead in Dune (the populate call itself is a forwarded
    // syscall, inside the exit handling), first-touched natively in the native run
    let populated = (ga.pages_populated.min(d.fresh_pages)) as f64;
    rows.push(Row {
        what: "first stores to fresh heap pages (Dune − native)",
        basis: Basis::Estimated(format!(
            "{populated:.0} populated pages × ({:.1} − {:.1} µs)",
            pick(u.dune_fresh_populated) / 1e3,
            pick(u.native_fresh) / 1e3,
        )),
        ns: populated * (pick(u.dune_fresh_populated) - pick(u.native_fresh)),
    });
    // the other first touches: of host pages that were not resident (thread stacks,
    // runtime mappings, fault windows outside the populated heap), each one host page
    // fault KVM takes inside KVM_RUN, counted by the host's fault counter
    let faults = d.host_faults_in_run as f64;
    rows.push(Row {
        what: HOST_FAULT_ROW,
        basis: Basis::Estimated(format!(
            "{faults:.0} counted host page faults inside KVM_RUN × ({:.1} − {:.1} µs)",
            pick(u.dune_fresh) / 1e3,
            pick(u.native_fresh) / 1e3,
        )),
        ns: faults * (pick(u.dune_fresh) - pick(u.native_fresh)).max(0.0),
    });
}

/// The row of shadow-MMU faults the host counted.
pub const SHADOW_ROW: &str = "shadow-MMU faults (host-counted guest walks)";

/// The row of resyncs the host counted.
pub const RESYNC_ROW: &str = "shadow-MMU resyncs outside arms (host-counted)";

/// The shadow-MMU rows with the host counters: every shadow fault KVM took on the vCPU
/// threads (`kvm_mmu_pagetable_walk`, counted) × the calibrated cost of one; the host page
/// faults inside `KVM_RUN` (counted) at a native fault's cost; the native run's first
/// stores to the heap pages the Dune run populated (it pays them in the populate,
/// inside the exit handling) subtracted. In runs that arm, the arms' own page-table
/// write faults (`kvm_mmu_unsync_page`, one each) and resyncs are inside the counted arm
/// and collect spans and are left out here.
fn shadow_rows_counted(
    rows: &mut Vec<Row>,
    dune: &RunResult,
    pick: &dyn Fn(crate::calibrate::Cost) -> f64,
    u: &UnitCosts,
) {
    use dune_hw::{EV_SYNC_PAGE, EV_UNSYNC_PAGE, EV_WALK};
    let d = &dune.dune;
    let ga = &dune.gc_ledger;
    let arms = ga.arms > 0;
    let walks = d.host_events[EV_WALK];
    let unsync = if arms {
        d.host_events[EV_UNSYNC_PAGE]
    } else {
        0
    };
    let faults = walks.saturating_sub(unsync) as f64;
    rows.push(Row {
        what: SHADOW_ROW,
        basis: Basis::Estimated(format!(
            "{faults:.0} guest walks counted by kvmmmu:kvm_mmu_pagetable_walk on the vCPU threads{} × {:.2} µs (calibrated per walk)",
            if arms { format!(" ({walks} − {unsync} unsync faults inside the arms)") } else { String::new() },
            pick(u.dune_shadow_fault) / 1e3
        )),
        ns: faults * pick(u.dune_shadow_fault),
    });
    if !arms {
        let syncs = d.host_events[EV_SYNC_PAGE] as f64;
        rows.push(Row {
            what: RESYNC_ROW,
            basis: Basis::Estimated(format!(
                "{syncs:.0} kvm_mmu_sync_page × {:.1} µs (calibrated per table)",
                pick(u.dune_resync) / 1e3
            )),
            ns: syncs * pick(u.dune_resync).max(0.0),
        });
    }
    let hf = d.host_faults_in_run as f64;
    rows.push(Row {
        what: HOST_FAULT_ROW,
        basis: Basis::Estimated(format!(
            "{hf:.0} counted host page faults inside KVM_RUN × {:.1} µs (native first store; the shadow fault is in the walks)",
            pick(u.native_fresh) / 1e3
        )),
        ns: hf * pick(u.native_fresh),
    });
    let populated = (ga.pages_populated.min(d.fresh_pages)) as f64;
    rows.push(Row {
        what: "first stores to the heap pages the Dune run populated (paid by the native run)",
        basis: Basis::Estimated(format!(
            "−{populated:.0} pages × {:.1} µs (native first store)",
            pick(u.native_fresh) / 1e3
        )),
        ns: -populated * pick(u.native_fresh),
    });
}

fn ms(ns: f64) -> String {
    format!("{:.1}", ns / 1e6)
}

/// The reconciliation as a markdown table (ms) under a `title` line.
pub fn markdown(title: &str, r: &Reconciliation) -> String {
    let mut s = format!(
        "**{title}**: Δ {} ms (Δ CPU {} ms, of which host-kernel Δ {} ms, getrusage; the Dune \
         run's vCPU threads inside KVM_RUN: {} ms system, {} ms user)\n\n\
         | share of Δ | how | ms |\n|---|---|---|\n",
        ms(r.delta_ns),
        ms(r.delta_cpu_ns),
        ms(r.delta_stime_ns),
        ms(r.run_stime_ns),
        ms(r.run_utime_ns)
    );
    for row in &r.rows {
        let how = match &row.basis {
            Basis::Counted => "counted".to_owned(),
            Basis::Estimated(f) => format!("estimated: {f}"),
        };
        s.push_str(&format!("| {} | {how} | {} |\n", row.what, ms(row.ns)));
    }
    s.push_str(&format!(
        "| **unexplained** | Δ − rows | **{}** ({:.0}% of Δ) |\n",
        ms(r.unexplained_ns()),
        100.0 * r.unexplained_fraction()
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calibrate::Cost;

    #[test]
    fn rows_add_up_and_the_rest_is_unexplained() {
        let mut dune = RunResult {
            wall_ns: 10_000_000,
            ..RunResult::default()
        };
        dune.dune.exits[0] = 10;
        // 160 µs of handling, 60 µs of it in a forwarded call that blocked (not counted)
        dune.dune.exit_handling[0] = std::time::Duration::from_micros(160);
        dune.dune.blocked[0] = 1;
        dune.dune.blocked_time[0] = std::time::Duration::from_micros(60);
        dune.dune.dirty_cleared = 150;
        dune.dune.dirty_written = 100;
        dune.dune.fresh_pages = 50;
        dune.dune.host_faults_in_run = 10;
        dune.gc_ledger.pages_populated = 20;
        // 1 ms arming by the wall clock, 0.2 ms of it on the CPU
        dune.gc_ledger.arm_time = std::time::Duration::from_millis(1);
        dune.gc_ledger.arm_cpu_time = std::time::Duration::from_micros(200);
        let native = RunResult {
            wall_ns: 4_000_000,
            ..RunResult::default()
        };
        let c = |wall| Cost { wall, cpu: wall };
        let u = UnitCosts {
            dune_getpid: c(20_000.0),
            dune_exit_handling: c(10_000.0),
            dune_write_after_clear: c(30_000.0),
            dune_fresh_populated: c(5_000.0),
            dune_fresh: c(9_000.0),
            native_fresh: c(1_000.0),
            ..UnitCosts::default()
        };
        let r = reconcile(&dune, &native, Some(&u));
        // 100 µs unblocked handling + 1 ms arming + 10 × 10 µs transitions + 100 × 30 µs
        // + 20 populated × 4 µs + 10 host faults × 8 µs
        assert!((r.explained_ns() - 4_360_000.0).abs() < 1.0, "{r:?}");
        assert!((r.unexplained_ns() - 1_640_000.0).abs() < 1.0);
        assert_eq!(r.row_ns(HOST_FAULT_ROW), 80_000.0);
        let md = markdown("t", &r);
        assert!(
            md.contains("unexplained") && md.contains("estimated"),
            "{md}"
        );
        // without unit costs only the counted rows remain
        assert_eq!(reconcile(&dune, &native, None).rows.len(), 3);
        // on CPU time: Δ is the getrusage difference, the estimates use CPU unit costs
        let mut dune_cpu = dune.clone();
        dune_cpu.utime_ns = 5_000_000;
        let r = reconcile_on(Target::Cpu, &dune_cpu, &native, Some(&u));
        assert_eq!(r.delta_ns, 5_000_000.0);
        // 0.2 ms arming CPU + 10 exits × 20 µs + 100 × 30 µs + 20 × 4 µs + 10 × 8 µs (no
        // counted handling row)
        assert!((r.explained_ns() - 3_560_000.0).abs() < 1.0, "{r:?}");
    }

    #[test]
    fn host_counted_walks_replace_the_guest_side_estimates() {
        let mut dune = RunResult {
            wall_ns: 10_000_000,
            ..RunResult::default()
        };
        dune.dune.host_threads = 1;
        dune.dune.host_events[dune_hw::EV_WALK] = 200;
        dune.dune.host_events[dune_hw::EV_UNSYNC_PAGE] = 5;
        dune.dune.host_events[dune_hw::EV_SYNC_PAGE] = 4;
        dune.dune.host_faults_in_run = 10;
        dune.dune.fresh_pages = 50;
        dune.dune.dirty_written = 100; // not priced: the walks include these faults
        dune.gc_ledger.pages_populated = 20;
        let native = RunResult {
            wall_ns: 4_000_000,
            ..RunResult::default()
        };
        let c = |wall| Cost { wall, cpu: wall };
        let u = UnitCosts {
            dune_shadow_fault: c(10_000.0),
            dune_resync: c(50_000.0),
            dune_write_after_clear: c(30_000.0),
            native_fresh: c(1_000.0),
            ..UnitCosts::default()
        };
        let r = reconcile(&dune, &native, Some(&u));
        // no arms: 200 walks × 10 µs + 4 syncs × 50 µs + 10 host faults × 1 µs − 20 × 1 µs
        assert_eq!(r.row_ns(SHADOW_ROW), 2_000_000.0, "{r:?}");
        assert_eq!(r.row_ns(RESYNC_ROW), 200_000.0);
        assert!((r.explained_ns() - 2_190_000.0).abs() < 1.0, "{r:?}");
        // with arms: the unsync faults and the resyncs are inside the arm span
        dune.gc_ledger.arms = 2;
        let r = reconcile(&dune, &native, Some(&u));
        assert_eq!(r.row_ns(SHADOW_ROW), 1_950_000.0, "{r:?}");
        assert_eq!(r.row_ns(RESYNC_ROW), 0.0);
        // a thread that could not count: back to the guest-side estimates
        dune.dune.host_threads_failed = 1;
        let r = reconcile(&dune, &native, Some(&u));
        assert_eq!(r.row_ns(SHADOW_ROW), 0.0);
        assert_eq!(
            r.row_ns("shadow faults: writes after a D clear"),
            3_000_000.0
        );
    }
}
