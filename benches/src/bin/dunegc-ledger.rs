//! Reads `rep=N dunegc-result ...` and `rep=N dunegc-calibration ...` lines (stdin, from
//! `scripts/dune-ledger.sh`) and prints the Dune ledger and its reconciliation with wall
//! time as markdown (`dunegc_benches::report::ledger`): per workload, `dune-full` against
//! `full` and `incremental-dune` against `incremental-mprotect`, each repetition with the
//! calibration of the same repetition, on wall time and on CPU time: a summary of the
//! unexplained shares (median and range over the repetitions), then the tables of the
//! repetition with the median difference. Beside each share, the share the rows of
//! Session 5 left (without the counted host faults row; on CPU time with the wall-clock
//! arm, collect and stop-the-world spans), for the before/after comparison.

use dunegc_benches::calibrate::UnitCosts;
use dunegc_benches::report::ledger::{
    markdown, reconcile_on, Reconciliation, Target, ARM_ROW, HOST_FAULT_ROW, STOP_ROW,
};
use dunegc_benches::runner::RunResult;
use std::collections::BTreeMap;
use std::io::BufRead;

type Runs = BTreeMap<(String, String), BTreeMap<u32, RunResult>>;

fn main() {
    let mut runs: Runs = BTreeMap::new();
    let mut calib: BTreeMap<u32, UnitCosts> = BTreeMap::new();
    for line in std::io::stdin().lock().lines() {
        let line = line.expect("reading stdin");
        let Some((rep, rest)) = line.split_once(' ') else {
            continue;
        };
        let Some(rep) = rep.strip_prefix("rep=").and_then(|r| r.parse::<u32>().ok()) else {
            eprintln!("dunegc-ledger: skipping a line without rep=N: {line}");
            continue;
        };
        if rest.starts_with(dunegc_benches::calibrate::CALIBRATION_TAG) {
            match UnitCosts::from_line(rest) {
                Ok(u) => {
                    calib.insert(rep, u);
                }
                Err(e) => eprintln!("dunegc-ledger: {e}"),
            }
        } else {
            match RunResult::from_line(rest) {
                Ok((w, _, c, r)) => {
                    runs.entry((w, c)).or_default().insert(rep, r);
                }
                Err(e) => eprintln!("dunegc-ledger: {e}"),
            }
        }
    }
    print_calibration(&calib);
    let workloads: Vec<String> = {
        let mut w: Vec<String> = runs.keys().map(|k| k.0.clone()).collect();
        w.dedup();
        w
    };
    let pairs = [
        ("dune-full", "full"),
        ("incremental-dune", "incremental-mprotect"),
    ];
    let mut summary = String::from(
        "| workload | Dune run − native run | Δ wall (ms) | unexplained of Δ wall: median (range); pooled over the repetitions | before: Session 5 rows | Δ CPU (ms) | unexplained of Δ CPU: median (range); pooled | before: Session 5 rows |\n|---|---|---|---|---|---|---|---|\n",
    );
    let mut details = String::new();
    for w in &workloads {
        details.push_str(&format!("### {w}\n\n"));
        for (dune, native) in pairs {
            let (Some(a), Some(b)) = (
                runs.get(&(w.clone(), dune.to_owned())),
                runs.get(&(w.clone(), native.to_owned())),
            ) else {
                continue;
            };
            let mut cells = Vec::new();
            for target in [Target::Wall, Target::Cpu] {
                let mut recs: Vec<_> = a
                    .iter()
                    .filter_map(|(rep, ra)| {
                        let rb = b.get(rep)?;
                        let r = reconcile_on(target, ra, rb, calib.get(rep));
                        let wall = reconcile_on(Target::Wall, ra, rb, calib.get(rep));
                        let before = before_fraction(target, &r, &wall);
                        Some((*rep, ra, r, before))
                    })
                    .collect();
                if recs.is_empty() {
                    continue;
                }
                recs.sort_by(|x, y| x.2.delta_ns.total_cmp(&y.2.delta_ns));
                let mut fr: Vec<f64> = recs.iter().map(|r| r.2.unexplained_fraction()).collect();
                fr.sort_by(f64::total_cmp);
                let mut bf: Vec<f64> = recs.iter().map(|r| r.3).collect();
                bf.sort_by(f64::total_cmp);
                let (rep, ra, med, _) = &recs[recs.len() / 2];
                // pooled: Σ unexplained / Σ Δ over the repetitions (the native runs' own
                // spread cancels partly where Δ is small against it)
                let pooled = recs.iter().map(|r| r.2.unexplained_ns()).sum::<f64>()
                    / recs
                        .iter()
                        .map(|r| r.2.delta_ns)
                        .sum::<f64>()
                        .abs()
                        .max(1.0);
                cells.push(format!(
                    "{:.0} | {:.0}% ({:.0}% … {:.0}%); pooled {:.0}% | {:.0}% ({:.0}% … {:.0}%)",
                    med.delta_ns / 1e6,
                    100.0 * fr[fr.len() / 2],
                    100.0 * fr[0],
                    100.0 * fr[fr.len() - 1],
                    100.0 * pooled,
                    100.0 * bf[bf.len() / 2],
                    100.0 * bf[0],
                    100.0 * bf[bf.len() - 1]
                ));
                let basis = match target {
                    Target::Wall => "wall time",
                    Target::Cpu => "CPU time",
                };
                details.push_str(&markdown(
                    &format!(
                        "{w}: {dune} − {native}, on {basis}, repetition {rep} (the median Δ of {})",
                        recs.len()
                    ),
                    med,
                ));
                details.push('\n');
                if target == Target::Cpu {
                    details.push_str(&format!(
                        "Ledger of that `{dune}` run (counted; writes after a D clear: {} found by scans + {} after the last scan):\n\n```\n{}\n{}\n```\n\n",
                        ra.dune.dirty_written,
                        ra.dune_written_tail,
                        ra.dune,
                        ra.gc_ledger
                    ));
                }
            }
            summary.push_str(&format!(
                "| {w} | {dune} − {native} | {} |\n",
                cells.join(" | ")
            ));
        }
    }
    println!("{summary}\n{details}");
}

/// The unexplained share of `r` with the rows of Session 5: without the counted host
/// faults row and, on CPU time, with the wall-clock arm, collect and stop-the-world
/// spans of `wall` (the same pair on wall time) instead of their CPU time.
fn before_fraction(target: Target, r: &Reconciliation, wall: &Reconciliation) -> f64 {
    let mut rest = r.unexplained_ns() + r.row_ns(HOST_FAULT_ROW);
    if target == Target::Cpu {
        for w in [ARM_ROW, STOP_ROW] {
            rest += r.row_ns(w) - wall.row_ns(w);
        }
    }
    if r.delta_ns == 0.0 {
        0.0
    } else {
        rest / r.delta_ns.abs()
    }
}

fn print_calibration(calib: &BTreeMap<u32, UnitCosts>) {
    if calib.is_empty() {
        println!("No calibration lines: only counted rows.\n");
        return;
    }
    println!("Unit costs (`dunegc-runner calibrate`, per page or call; wall / CPU µs; one line per repetition):\n");
    println!("| rep | native fresh | mprotect fault | native getpid | Dune fresh | Dune populate | Dune fresh populated | Dune write after D clear | Dune refill after flush | Dune getpid | monitor handling |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for (rep, u) in calib {
        let c = |x: dunegc_benches::calibrate::Cost| {
            format!("{:.1} / {:.1}", x.wall / 1e3, x.cpu / 1e3)
        };
        println!(
            "| {rep} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            c(u.native_fresh),
            c(u.mprotect_fault),
            c(u.native_getpid),
            c(u.dune_fresh),
            c(u.dune_populate),
            c(u.dune_fresh_populated),
            c(u.dune_write_after_clear),
            c(u.dune_refill),
            c(u.dune_getpid),
            c(u.dune_exit_handling)
        );
    }
    println!();
}
