//! Runs the whole comparison — every workload under the malloc baseline, gc-core full,
//! gc-core incremental with each dirty tracker (none, mprotect, soft-dirty, uffd, dune)
//! and bdwgc full and incremental — each run in a child process, and reports medians.
//!
//! ```text
//! dunegc-report demo   [--out DIR] [--reps N] [--timeout SECS]
//! dunegc-report report [--out DIR] [--reps N] [--timeout SECS] [--intro FILE]
//! dunegc-report tiny   [--out DIR]    (smallest scales, one repetition: a smoke test)
//! ```
//! `demo`: short scales, prints the report to stdout, writes files only with `--out`.
//! `report`: the stored scales; writes `<date>-<machine>.md` and two SVG plots into
//! `--out` (default `bench-results`) and prints the markdown too. `--intro FILE` puts a
//! hand-written paragraph above the computed summary. Unsupported configurations appear
//! as "unsupported: <reason>"; the exit code is 1 if any configuration failed or reported
//! a wrong checksum.

use dunegc_benches::report::{self, markdown, Kind, Machine, Outcome, Plan, Runners};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str =
    "usage: dunegc-report <demo|report|tiny> [--out DIR] [--reps N] [--timeout SECS] [--intro FILE]";

struct Args {
    kind: Kind,
    out: Option<PathBuf>,
    reps: Option<u32>,
    timeout: Duration,
    intro: Option<PathBuf>,
}

fn parse_args(args: &[String]) -> Result<Args, String> {
    let mut it = args.iter();
    let kind = match it.next().map(String::as_str) {
        Some("demo") => Kind::Demo,
        Some("report") => Kind::Report,
        Some("tiny") => Kind::Tiny,
        Some(other) => return Err(format!("unknown subcommand '{other}'")),
        None => return Err("missing subcommand".to_owned()),
    };
    let mut a = Args {
        kind,
        out: None,
        reps: None,
        timeout: Duration::from_secs(180),
        intro: None,
    };
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--out" => a.out = Some(PathBuf::from(value()?)),
            "--reps" => {
                let v = value()?;
                a.reps = Some(
                    v.parse()
                        .ok()
                        .filter(|&n| n > 0)
                        .ok_or_else(|| format!("bad --reps '{v}'"))?,
                );
            }
            "--timeout" => {
                let v = value()?;
                a.timeout =
                    Duration::from_secs(v.parse().map_err(|_| format!("bad --timeout '{v}'"))?);
            }
            "--intro" => a.intro = Some(PathBuf::from(value()?)),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown option '{other}'")),
        }
    }
    Ok(a)
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let args = match parse_args(&argv) {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("dunegc-report: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let intro = match &args.intro {
        Some(p) => match std::fs::read_to_string(p) {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("dunegc-report: reading {} failed: {e}", p.display());
                return ExitCode::from(2);
            }
        },
        None => None,
    };
    let runners = match Runners::locate() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("dunegc-report: {e}");
            return ExitCode::from(2);
        }
    };
    let mut plan = Plan::new(args.kind);
    if let Some(reps) = args.reps {
        plan.reps = reps;
    }
    let machine = Machine::collect();
    eprintln!(
        "dunegc-report {}: {} workloads × {} configurations × {} repetitions on {} ({} CPUs)",
        args.kind.name(),
        plan.workloads.len(),
        plan.subjects.len(),
        plan.reps,
        machine.cpu_model,
        machine.logical_cpus
    );
    let mut progress = |done: usize, total: usize, what: &str| {
        eprintln!("[{done:>3}/{total}] {what}");
    };
    let results = report::run_plan(&plan, &runners, machine, args.timeout, &mut progress);

    let out_dir = match (args.kind, &args.out) {
        (_, Some(d)) => Some(d.clone()),
        (Kind::Report, None) => Some(PathBuf::from("bench-results")),
        (Kind::Demo | Kind::Tiny, None) => None,
    };
    let written = match &out_dir {
        Some(dir) => match report::write_files(dir, &results, intro.as_deref()) {
            Ok(w) => Some(w),
            Err(e) => {
                eprintln!("dunegc-report: {e}");
                return ExitCode::from(2);
            }
        },
        None => None,
    };
    println!(
        "{}",
        markdown::render(&results, &markdown::PlotLinks::default(), intro.as_deref())
    );
    if let Some(w) = written {
        eprintln!("wrote {}", w.markdown.display());
        for s in &w.svgs {
            eprintln!("wrote {}", s.display());
        }
    }
    let bad = results
        .cells
        .iter()
        .any(|c| matches!(c.outcome, Outcome::Failed(_)))
        || markdown::summary_paragraph(&results).contains("CHECKSUM MISMATCH");
    if bad {
        eprintln!("dunegc-report: some configurations failed or disagreed (see the report)");
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
