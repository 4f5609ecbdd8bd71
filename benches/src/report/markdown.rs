//! The report as markdown: a summary paragraph, the machine, the method, a ratio table
//! across workloads and one table per workload. Pure: [`Results`] in, text out.

use super::measure::{Outcome, Results, Summary};
use super::plan::Subject;
use crate::bdwgc::{Mode, Workload};
use crate::runner::Config;
use gc_core::Backend;
use std::fmt::Write as _;

/// `write!` into a String (which cannot fail).
macro_rules! out {
    ($dst:expr, $($arg:tt)*) => {
        $dst.write_fmt(format_args!($($arg)*)).expect("writing to a String cannot fail")
    };
}

/// `writeln!` into a String.
macro_rules! outln {
    ($dst:expr, $($arg:tt)*) => {{
        out!($dst, $($arg)*);
        $dst.push('\n');
    }};
}

/// File names of the plots, relative to the markdown file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlotLinks {
    /// Wall time per workload per configuration.
    pub time_svg: Option<String>,
    /// Max and p99 pause per configuration.
    pub pauses_svg: Option<String>,
}

fn ms(ns: u64) -> String {
    let v = ns as f64 / 1e6;
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn ratio(a: u64, b: u64) -> Option<f64> {
    (a > 0 && b > 0).then(|| a as f64 / b as f64)
}

fn fmt_ratio(r: Option<f64>) -> String {
    r.map_or_else(|| "–".to_owned(), |r| format!("{r:.2}×"))
}

fn geomean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| (v.iter().map(|x| x.ln()).sum::<f64>() / v.len() as f64).exp())
}

/// The checksum every configuration of `workload` must report: the C version's on
/// bdwgc (full), else the first measured one.
fn reference_checksum(r: &Results, workload: Workload) -> Option<u64> {
    r.summary(workload, Subject::Bdwgc(Mode::Full))
        .or_else(|| {
            r.cells
                .iter()
                .filter(|c| c.workload == workload)
                .find_map(|c| match &c.outcome {
                    Outcome::Measured(s) => Some(s),
                    _ => None,
                })
        })
        .map(|s| s.median.checksum)
}

/// Geomean over workloads of `metric(subject) / metric(baseline(subject))`, over the
/// workloads where both were measured.
fn geomean_ratio(
    r: &Results,
    subject: Subject,
    baseline: impl Fn(Subject) -> Subject,
    metric: fn(&Summary) -> u64,
) -> Option<f64> {
    let v: Vec<f64> = r
        .plan
        .workloads
        .iter()
        .filter_map(|&(w, _)| {
            let a = r.summary(w, subject)?;
            let b = r.summary(w, baseline(subject))?;
            ratio(metric(a), metric(b))
        })
        .collect();
    geomean(&v)
}

fn wall(s: &Summary) -> u64 {
    s.median.wall_ns
}

fn max_pause(s: &Summary) -> u64 {
    s.median.max_pause_ns
}

/// The reason `subject` is unsupported, if it is in every workload.
fn unsupported_reason(r: &Results, subject: Subject) -> Option<&str> {
    let mut reason = None;
    for c in r.cells.iter().filter(|c| c.subject == subject) {
        match &c.outcome {
            Outcome::Unsupported(why) => reason = Some(why.as_str()),
            _ => return None,
        }
    }
    reason
}

/// The automatic "what this shows" paragraph, computed from the figures.
pub fn summary_paragraph(r: &Results) -> String {
    let mut s = String::new();
    let inc = |b| Subject::Dunegc(Config::Incremental(b));
    let base = |_| Subject::BASELINE;
    let mut backends: Vec<(Backend, f64)> = [Backend::SoftDirty, Backend::Uffd, Backend::Dune]
        .into_iter()
        .filter_map(|b| Some((b, geomean_ratio(r, inc(b), base, wall)?)))
        .collect();
    backends.sort_by(|a, b| a.1.total_cmp(&b.1));
    if !backends.is_empty() {
        let parts: Vec<String> = backends
            .iter()
            .map(|(b, x)| format!("{b} {x:.2}×"))
            .collect();
        out!(
            s,
            "Against the mprotect backend (gc-core incremental, geometric mean of wall-time \
             ratios over the workloads; below 1 is faster): {}. ",
            parts.join(", ")
        );
    }
    let full = Subject::Dunegc(Config::Full);
    if let Some(x) = geomean_ratio(r, full, base, wall) {
        out!(
            s,
            "gc-core's stop-the-world collector runs at {x:.2}× the mprotect baseline's \
             wall time"
        );
        if let (Some(pf), Some(pi)) = (
            geomean_ratio(r, full, base, max_pause),
            geomean_ratio(r, inc(Backend::Uffd), base, max_pause),
        ) {
            let pauses = if pf > 1.2 * pi {
                "incremental marking shortens the longest pause"
            } else {
                "incremental marking does not shorten the longest pause overall"
            };
            let throughput = if x < 0.95 {
                "and costs throughput"
            } else if x > 1.05 {
                "and even gains throughput"
            } else {
                "at about the same throughput"
            };
            out!(
                s,
                " and has {pf:.2}× its max pause (uffd: {pi:.2}×): {pauses} {throughput}"
            );
        }
        s.push_str(". ");
        // Workloads where incremental marking did not help the longest pause.
        let no_help: Vec<String> = r
            .plan
            .workloads
            .iter()
            .filter_map(|&(w, _)| {
                let f = r.summary(w, full)?;
                let i = r.summary(w, inc(Backend::Uffd))?;
                (i.median.max_pause_ns * 10 >= f.median.max_pause_ns * 8).then(|| {
                    format!(
                        "{w} ({} ms incremental vs {} ms full; {} dirty pages per cycle)",
                        ms(i.median.max_pause_ns),
                        ms(f.median.max_pause_ns),
                        i.median.dirty_pages_per_cycle.unwrap_or(0)
                    )
                })
            })
            .collect();
        if !no_help.is_empty() {
            out!(
                s,
                "Incremental marking (uffd) left the longest pause within 20% of the full \
                 collector's on: {}. ",
                no_help.join(", ")
            );
        }
    }
    let sys = |x: &Summary| x.median.sys_ns;
    let sys_parts: Vec<String> = [Backend::Mprotect, Backend::Uffd]
        .into_iter()
        .filter_map(|b| {
            let x = geomean_ratio(r, inc(b), |_| full, sys)?;
            Some(format!("inc-{b} {x:.1}×"))
        })
        .collect();
    if !sys_parts.is_empty() {
        out!(
            s,
            "Kernel CPU time of the whole process relative to gc-core full (write faults, \
             signals and tracker system calls show up here): {}. ",
            sys_parts.join(", ")
        );
    }
    let peer = |x: Subject| x.bdwgc_peer();
    let vs_bdwgc: Vec<String> = [full, inc(Backend::Mprotect), inc(Backend::Uffd)]
        .into_iter()
        .filter_map(|x| {
            let t = geomean_ratio(r, x, peer, wall)?;
            Some(format!("{x} {t:.2}× {}", peer(x)))
        })
        .collect();
    if !vs_bdwgc.is_empty() {
        out!(
            s,
            "Against bdwgc on the same programs written in C (wall time, geometric mean): {}. ",
            vs_bdwgc.join(", ")
        );
    }
    if let Some(x) = geomean_ratio(r, Subject::Dunegc(Config::Malloc), base, wall) {
        out!(
            s,
            "glibc malloc with explicit frees (no collector) takes {x:.2}× the mprotect \
             baseline's time. "
        );
    }
    let unsupported: Vec<String> = Subject::all()
        .into_iter()
        .filter_map(|x| Some(format!("{x} ({})", unsupported_reason(r, x)?)))
        .collect();
    if !unsupported.is_empty() {
        out!(s, "Not measured here: {}. ", unsupported.join("; "));
    }
    if unsupported_reason(r, inc(Backend::Dune)).is_some() {
        s.push_str(
            "Without the Dune backend this run cannot show where hardware dirty bits win or \
             lose; it is the baseline the Dune column will be read against. ",
        );
    }
    let failed: Vec<String> = r
        .cells
        .iter()
        .filter_map(|c| match &c.outcome {
            Outcome::Failed(why) => Some(format!("{} on {} ({why})", c.subject, c.workload)),
            _ => None,
        })
        .collect();
    if !failed.is_empty() {
        out!(s, "FAILED: {}. ", failed.join("; "));
    }
    let mismatches = checksum_mismatches(r);
    if !mismatches.is_empty() {
        out!(
            s,
            "CHECKSUM MISMATCH (a wrong result, see the tables): {}. ",
            mismatches.join("; ")
        );
    }
    out!(
        s,
        "The machine has {} logical CPUs shared with other work while this ran, so single \
         figures are noisy (the spread column shows the range over {} repetitions).",
        r.machine.logical_cpus,
        r.plan.reps
    );
    s
}

fn checksum_mismatches(r: &Results) -> Vec<String> {
    r.cells
        .iter()
        .filter_map(|c| {
            let Outcome::Measured(s) = &c.outcome else {
                return None;
            };
            let want = reference_checksum(r, c.workload)?;
            (s.median.checksum != want || !s.checksums_agree)
                .then(|| format!("{} on {}", c.subject, c.workload))
        })
        .collect()
}

/// The whole report.
pub fn render(r: &Results, plots: &PlotLinks, intro: Option<&str>) -> String {
    let mut s = String::new();
    outln!(
        s,
        "# dunegc comparison — {} run, {} UTC, {}\n",
        r.plan.kind.name(),
        r.started_utc,
        r.machine.file_stem()
    );
    if let Some(intro) = intro {
        outln!(s, "{}\n", intro.trim());
    }
    outln!(
        s,
        "**What the figures show (computed).** {}\n",
        summary_paragraph(r)
    );

    let m = &r.machine;
    outln!(s, "## Machine\n");
    outln!(s, "| | |\n|---|---|");
    outln!(s, "| CPU | {} |", m.cpu_model);
    outln!(s, "| logical CPUs | {} |", m.logical_cpus);
    outln!(
        s,
        "| memory | {:.1} GiB |",
        m.mem_total_bytes as f64 / (1u64 << 30) as f64
    );
    outln!(s, "| kernel | {} |", m.kernel);
    outln!(
        s,
        "| virtualization | {} |",
        if m.under_hypervisor {
            "this machine is itself a guest (cpuinfo: hypervisor)"
        } else {
            "bare metal (no hypervisor flag)"
        }
    );
    outln!(s, "| KVM | {} |", m.kvm);
    outln!(
        s,
        "| load average (1/5/15 min) | {} at the start, {} at the end |",
        m.load_average,
        r.load_average_at_end
    );
    let dune = Subject::Dunegc(Config::Incremental(Backend::Dune));
    outln!(
        s,
        "| Dune backend | {} |",
        unsupported_reason(r, dune).map_or_else(
            || {
                let mode = r
                    .cells
                    .iter()
                    .filter(|c| c.subject == dune)
                    .find_map(|c| match &c.outcome {
                        Outcome::Measured(s) => s.median.backend.strip_prefix("dune/"),
                        _ => None,
                    })
                    .unwrap_or("unknown");
                format!("measured in Dune mode `{mode}` (see the dunegc inc-dune rows)")
            },
            |why| format!("unsupported: {why}")
        )
    );
    outln!(
        s,
        "| bdwgc | {}{} |",
        r.bdwgc_version.as_deref().unwrap_or("not run"),
        r.bdwgc_incremental_tracking
            .as_deref()
            .map_or_else(String::new, |t| format!("; its incremental mode {t}"))
    );
    let scales: Vec<String> = r
        .plan
        .workloads
        .iter()
        .map(|(w, sc)| format!("{w} {sc}"))
        .collect();
    outln!(
        s,
        "| run | {} repetitions per configuration, scales: {}; took {:.0} s |\n",
        r.plan.reps,
        scales.join(", "),
        r.elapsed.as_secs_f64()
    );

    outln!(s, "## Method\n");
    s.push_str(
        "- Every (workload, configuration, repetition) runs in its own process \
         (`dunegc-runner`, `bdwgc-runner`); repetitions are interleaved across \
         configurations; each metric is the median over repetitions; *spread* is \
         (slowest − fastest) / median wall time.\n\
         - The Rust workloads mirror the C ones allocation for allocation (same object \
         sizes, same checksums; the *check* column compares with the C version on bdwgc). \
         *malloc* is the Rust workload on glibc malloc, freeing explicitly what the GC \
         versions drop.\n\
         - Ratios: to **dunegc inc-mprotect** (the mprotect baseline), and to **bdwgc in the \
         same mode** (incremental configurations against bdwgc incremental, the rest \
         against bdwgc full).\n\
         - Pauses: gc-core's stop-the-world pauses from its statistics (incremental mark \
         steps run on the allocating thread and count in GC time, not as pauses); bdwgc's \
         from its collection events. bdwgc's incremental GC time misses its mark steps \
         (they raise no event): a lower bound. With few pauses p99 is the max (bdwgc \
         takes the nearest rank, gc-core rounds the rank: the max below 51 pauses).\n\
         - *dunegc inc-none* is gc-core's `none` tracker, which turns incremental marking \
         off: it is the same collector as *dunegc full* (a check on noise).\n\
         - Dirty pages/cycle: pages the tracker reported per incremental cycle (gc-core only).\n\
         - *sys ms* and *minor faults*: the whole child process's kernel CPU time and minor \
         page faults (`getrusage` of the child, set-up included); write-protection faults \
         and their signals land here.\n\n",
    );

    outln!(s, "## Wall time relative to the mprotect baseline\n");
    let mut header = "| configuration |".to_owned();
    let mut rule = "|---|".to_owned();
    for (w, sc) in &r.plan.workloads {
        out!(header, " {w} ({sc}) |");
        rule.push_str("---:|");
    }
    header.push_str(" geomean |");
    rule.push_str("---:|");
    outln!(s, "{header}\n{rule}");
    for &subject in &r.plan.subjects {
        out!(s, "| {subject} |");
        if let Some(why) = unsupported_reason(r, subject) {
            // The full reason is in the workload tables; keep the part after "here: ".
            let short = why.rsplit_once("here: ").map_or(why, |(_, r)| r);
            out!(s, " unsupported: {short} |");
            for _ in 1..r.plan.workloads.len() {
                s.push_str(" |");
            }
            s.push_str(" |\n");
            continue;
        }
        for &(w, _) in &r.plan.workloads {
            let x = r
                .summary(w, subject)
                .zip(r.summary(w, Subject::BASELINE))
                .and_then(|(a, b)| ratio(wall(a), wall(b)));
            out!(s, " {} |", fmt_ratio(x));
        }
        outln!(
            s,
            " {} |",
            fmt_ratio(geomean_ratio(r, subject, |_| Subject::BASELINE, wall))
        );
    }
    s.push('\n');

    for &(w, scale) in &r.plan.workloads {
        workload_table(&mut s, r, w, scale);
    }

    dune_ledger_section(&mut s, r);

    raw_walls(&mut s, r);

    if plots.time_svg.is_some() || plots.pauses_svg.is_some() {
        outln!(s, "## Plots\n");
        if let Some(p) = &plots.time_svg {
            outln!(
                s,
                "Wall time per workload and configuration (median; whiskers: fastest and \
                 slowest repetition):\n\n![wall time]({p})\n"
            );
        }
        if let Some(p) = &plots.pauses_svg {
            outln!(
                s,
                "Pauses per configuration: max (dark) and p99 (light), medians over \
                 repetitions:\n\n![pauses]({p})\n"
            );
        }
    }
    s
}

/// The Dune section's ledger (issue 15): for each workload, `dune-full` against `full` and
/// `inc-dune` against `inc-mprotect` (the median-wall repetitions), reconciled by
/// [`super::ledger`]; absent when nothing ran in Dune.
fn dune_ledger_section(s: &mut String, r: &Results) {
    let pairs = [
        (Config::DuneFull, Config::Full),
        (
            Config::Incremental(Backend::Dune),
            Config::Incremental(Backend::Mprotect),
        ),
    ];
    let run = |w, c| {
        r.summary(w, Subject::Dunegc(c))
            .and_then(|x| x.median.run.as_deref())
    };
    let any = r.plan.workloads.iter().any(|&(w, _)| {
        pairs
            .iter()
            .any(|&(a, b)| run(w, a).is_some() && run(w, b).is_some())
    });
    if !any {
        return;
    }
    outln!(
        s,
        "## Dune ledger: where the Dune runs' extra time goes
"
    );
    outln!(
        s,
        "Each table takes the median-wall repetition of a configuration in Dune and of its \
         native counterpart and splits the wall-time difference Δ into rows. *Counted* rows \
         come from the ledgers (`dune_hw::DuneLedger`, `gc_core::CollectorLedger`: TSC or \
         `Instant` around each event); *estimated* rows are ledger counts × unit costs \
         measured by `dunegc-runner calibrate` in this run (KVM's shadow-MMU work inside \
         `KVM_RUN` cannot be counted from the guest; the host page faults KVM takes inside \
         it — first touches of host pages that were not resident — are counted by the \
         vCPU threads' `getrusage` around each `KVM_RUN`). Δ CPU and host-kernel Δ are \
         `getrusage` of the runner (the user/system split is tick-sampled). Each pair is \
         reconciled on wall time and on CPU time (user + system: the waits for a CPU of a \
         loaded machine drop out). The rest is printed as *unexplained*, not hidden. \
         `scripts/dune-ledger.sh` repeats this over interleaved repetitions.\n"
    );
    let calibration = r.calibration.as_ref().ok();
    if let Err(why) = &r.calibration {
        outln!(s, "No unit costs ({why}): only the counted rows.\n");
    }
    for &(w, _) in &r.plan.workloads {
        for (a, b) in pairs {
            let (Some(ra), Some(rb)) = (run(w, a), run(w, b)) else {
                continue;
            };
            for (target, basis) in [
                (super::ledger::Target::Wall, "wall time"),
                (super::ledger::Target::Cpu, "CPU time"),
            ] {
                let rec = super::ledger::reconcile_on(target, ra, rb, calibration);
                let title = format!("{w}: {} − {}, on {basis}", a.name(), b.name());
                outln!(s, "{}", super::ledger::markdown(&title, &rec));
            }
            outln!(s, "```\n{}\n{}\n```\n", ra.dune, ra.gc_ledger);
        }
    }
}

fn workload_table(s: &mut String, r: &Results, w: Workload, scale: u32) {
    outln!(s, "## {w} (scale {scale})\n");
    outln!(
        s,
        "| configuration | wall ms | spread | × mprotect | × bdwgc | GC ms | collections | \
         max pause ms | p99 pause ms | max pause × bdwgc | dirty pages/cycle | sys ms | minor faults | peak RSS MiB | check |"
    );
    outln!(
        s,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    );
    let want = reference_checksum(r, w);
    for &subject in &r.plan.subjects {
        let Some(cell) = r.cell(w, subject) else {
            continue;
        };
        let sm = match &cell.outcome {
            Outcome::Unsupported(why) => {
                outln!(
                    s,
                    "| {subject} | unsupported: {why} | | | | | | | | | | | | | |"
                );
                continue;
            }
            Outcome::Failed(why) => {
                outln!(s, "| {subject} | FAILED: {why} | | | | | | | | | | | | | |");
                continue;
            }
            Outcome::Measured(sm) => sm,
        };
        let md = &sm.median;
        let base = r.summary(w, Subject::BASELINE);
        let peer = r.summary(w, subject.bdwgc_peer());
        let spread = if md.wall_ns > 0 {
            format!(
                "{:.0}%",
                100.0 * (sm.wall_max_ns - sm.wall_min_ns) as f64 / md.wall_ns as f64
            )
        } else {
            "–".to_owned()
        };
        let gc = |v: u64| {
            if subject.collects() {
                ms(v)
            } else {
                "–".to_owned()
            }
        };
        let check = match want {
            Some(x) if x == md.checksum && sm.checksums_agree => "ok".to_owned(),
            Some(x) => format!("MISMATCH {} ≠ {x}", md.checksum),
            None => "–".to_owned(),
        };
        outln!(
            s,
            "| {subject} | {} | {spread} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.0} | {check} |",
            ms(md.wall_ns),
            fmt_ratio(base.and_then(|b| ratio(md.wall_ns, b.median.wall_ns))),
            fmt_ratio(peer.and_then(|b| ratio(md.wall_ns, b.median.wall_ns))),
            gc(md.gc_ns),
            if subject.collects() {
                md.collections.to_string()
            } else {
                "–".to_owned()
            },
            gc(md.max_pause_ns),
            gc(md.p99_pause_ns),
            if subject.collects() {
                fmt_ratio(peer.and_then(|b| ratio(md.max_pause_ns, b.median.max_pause_ns)))
            } else {
                "–".to_owned()
            },
            md.dirty_pages_per_cycle
                .filter(|_| subject.is_incremental())
                .map_or_else(|| "–".to_owned(), |d| d.to_string()),
            ms(md.sys_ns),
            md.minor_faults,
            md.peak_rss_bytes as f64 / (1u64 << 20) as f64,
        );
    }
    s.push('\n');
}

/// Every repetition's wall time, so outliers behind a median stay visible.
fn raw_walls(s: &mut String, r: &Results) {
    outln!(s, "## Every repetition's wall time (ms, in run order)\n");
    outln!(
        s,
        "| workload | configuration | wall times |\n|---|---|---|"
    );
    for &(w, _) in &r.plan.workloads {
        for &subject in &r.plan.subjects {
            if let Some(sm) = r.summary(w, subject) {
                let walls: Vec<String> = sm.walls_ns.iter().map(|&ns| ms(ns)).collect();
                outln!(s, "| {w} | {subject} | {} |", walls.join(", "));
            }
        }
    }
    s.push('\n');
}
