//! The Rust workloads against their C twins, and the report pipeline.
//!
//! - Each Rust workload at a tiny scale through `dunegc-runner` (malloc, full,
//!   incremental-mprotect, incremental-uffd) reports the checksum the C version reports
//!   on bdwgc at the same scale.
//! - The markdown and SVG generation on fixed input.
//! - `dunegc-report tiny` end to end (every configuration, smallest scales).
//!
//! Needs bdwgc (`scripts/setup.sh` installs libgc-dev). A backend this kernel lacks
//! (uffd before Linux 6.7) prints `SKIPPED` for that configuration.

use dunegc_benches::bdwgc::{Mode, Runner, Workload};
use dunegc_benches::report::{
    markdown, svg, Kind, Machine, Outcome, Plan, Results, Sample, Subject, Summary,
};
use dunegc_benches::runner::{Config, RunResult, ERROR_TAG};
use gc_core::Backend;
use std::process::Command;
use std::time::Duration;

/// Run one Rust configuration; None if it is unsupported here.
fn run_rust(workload: Workload, scale: u32, config: &str) -> Option<RunResult> {
    let out = Command::new(env!("CARGO_BIN_EXE_dunegc-runner"))
        .args([workload.name(), &scale.to_string(), config])
        // A small heap, so that tiny scales collect (and mark incrementally) too.
        .env("DUNEGC_INITIAL_HEAP_SIZE", "256K")
        .output()
        .expect("dunegc-runner starts");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().next().unwrap_or_default();
    if let Some(msg) = line.strip_prefix(ERROR_TAG) {
        assert!(
            msg.contains("unsupported"),
            "{workload} {scale} {config} failed: {msg}"
        );
        println!("SKIPPED {workload} {config}: {msg}");
        return None;
    }
    let (w, s, c, r) = RunResult::from_line(line)
        .unwrap_or_else(|e| panic!("{e}; stderr: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(
        (w.as_str(), s, c.as_str()),
        (workload.name(), scale, config)
    );
    Some(r)
}

fn c_checksum(workload: Workload, scale: u32) -> u64 {
    Runner::at(env!("CARGO_BIN_EXE_bdwgc-runner"))
        .run(workload, scale, Mode::Full)
        .unwrap_or_else(|e| panic!("bdwgc {workload} {scale}: {e}"))
        .checksum
}

fn same_checksums_as_c(workload: Workload, scale: u32) {
    let want = c_checksum(workload, scale);
    for config in [
        "malloc",
        "full",
        "dune-full",
        "incremental-mprotect",
        "incremental-uffd",
    ] {
        let Some(r) = run_rust(workload, scale, config) else {
            continue;
        };
        assert_eq!(r.checksum, want, "{workload} {scale} {config}: {r:?}");
        if config != "malloc" {
            assert!(
                r.collections >= 1,
                "{workload} {config}: no collection: {r:?}"
            );
            assert!(r.p99_pause_ns <= r.max_pause_ns, "{r:?}");
            assert!(r.gc_ns <= r.wall_ns, "{r:?}");
        }
        if config == "dune-full" {
            // gc-core's full collector (backend none), run inside Dune: `none-in-dune/<mode>`
            assert!(r.backend.starts_with("none-in-dune/"), "{r:?}");
        }
        if config.starts_with("incremental-") {
            assert_eq!(
                r.backend,
                config.trim_start_matches("incremental-"),
                "{r:?}"
            );
        }
    }
}

#[test]
fn gcbench_matches_c() {
    same_checksums_as_c(Workload::GcBench, 8);
}

#[test]
fn linkedlist_matches_c() {
    same_checksums_as_c(Workload::LinkedList, 3);
}

#[test]
fn hashmap_matches_c() {
    same_checksums_as_c(Workload::HashMap, 3);
}

#[test]
fn xml_matches_c() {
    same_checksums_as_c(Workload::Xml, 2);
}

#[test]
fn unknown_arguments_are_errors() {
    let out = Command::new(env!("CARGO_BIN_EXE_dunegc-runner"))
        .args(["xml", "1", "incremental-bogus"])
        .output()
        .expect("dunegc-runner starts");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with(ERROR_TAG));
}

fn summary(wall_ms: u64, max_pause_us: u64, checksum: u64) -> Outcome {
    Outcome::Measured(Summary {
        reps: 3,
        median: Sample {
            wall_ns: wall_ms * 1_000_000,
            gc_ns: wall_ms * 100_000,
            collections: 7,
            max_pause_ns: max_pause_us * 1000,
            p99_pause_ns: max_pause_us * 900,
            dirty_pages_per_cycle: Some(42),
            peak_rss_bytes: 64 << 20,
            checksum,
            user_ns: wall_ms * 800_000,
            sys_ns: wall_ms * 150_000,
            minor_faults: 1234,
            backend: String::new(),
            run: None,
        },
        wall_min_ns: wall_ms * 900_000,
        wall_max_ns: wall_ms * 1_200_000,
        checksums_agree: true,
        walls_ns: vec![wall_ms * 900_000, wall_ms * 1_000_000, wall_ms * 1_200_000],
    })
}

/// Two workloads, every configuration: mprotect 100 ms, uffd 80 ms, the rest 50 ms;
/// soft-dirty and dune unsupported; one wrong checksum.
fn fixed_results() -> Results {
    let mut plan = Plan::new(Kind::Report);
    plan.workloads = vec![(Workload::GcBench, 16), (Workload::Xml, 50)];
    plan.reps = 3;
    let mut cells = Vec::new();
    for &(workload, scale) in &plan.workloads {
        for &subject in &plan.subjects {
            let outcome = match subject {
                Subject::Dunegc(Config::Incremental(Backend::SoftDirty)) => Outcome::Unsupported(
                    "dirty-tracking backend 'soft-dirty' is unsupported here: no CONFIG_MEM_SOFT_DIRTY"
                        .to_owned(),
                ),
                Subject::Dunegc(Config::Incremental(Backend::Dune)) => Outcome::Unsupported(
                    "dirty-tracking backend 'dune' is unsupported here: the Dune backend needs the dune feature"
                        .to_owned(),
                ),
                Subject::Dunegc(Config::Incremental(Backend::Mprotect)) => summary(100, 500, 7),
                Subject::Dunegc(Config::Incremental(Backend::Uffd)) => summary(80, 400, 7),
                Subject::Bdwgc(Mode::Incremental) if workload == Workload::Xml => {
                    summary(50, 2000, 8)
                }
                _ => summary(50, 2000, 7),
            };
            cells.push(dunegc_benches::report::measure::Cell {
                workload,
                scale,
                subject,
                outcome,
            });
        }
    }
    Results {
        plan,
        machine: Machine {
            hostname: "testhost".to_owned(),
            cpu_model: "Test CPU".to_owned(),
            logical_cpus: 2,
            mem_total_bytes: 4 << 30,
            kernel: "Linux 6.99".to_owned(),
            under_hypervisor: true,
            kvm: "no /dev/kvm".to_owned(),
            load_average: "1.00 0.50 0.25".to_owned(),
        },
        started_utc: "2026-01-02 03:04".to_owned(),
        elapsed: Duration::from_secs(90),
        load_average_at_end: "2.00 1.00 0.50".to_owned(),
        bdwgc_version: Some("8.2.2".to_owned()),
        bdwgc_incremental_tracking: Some("write-protects the heap".to_owned()),
        cells,
        calibration: Err("the plan has no configuration in Dune".to_owned()),
    }
}

#[test]
fn markdown_names_the_dune_mode_it_measured() {
    let mut r = fixed_results();
    for c in &mut r.cells {
        if c.subject == Subject::Dunegc(Config::Incremental(Backend::Dune)) {
            let mut o = summary(90, 300, 7);
            if let Outcome::Measured(s) = &mut o {
                s.median.backend = "dune/pvm".to_owned();
            }
            c.outcome = o;
        }
    }
    let md = markdown::render(&r, &markdown::PlotLinks::default(), None);
    assert!(
        md.contains(
            "| Dune backend | measured in Dune mode `pvm` (see the dunegc inc-dune rows) |"
        ),
        "{md}"
    );
}

#[test]
fn markdown_reconciles_the_dune_ledger_when_runs_carry_one() {
    let mut r = fixed_results();
    let md = markdown::render(&r, &markdown::PlotLinks::default(), None);
    assert!(
        !md.contains("## Dune ledger"),
        "no ledger, no section: {md}"
    );
    for c in &mut r.cells {
        let wall_ms = match c.subject {
            Subject::Dunegc(Config::DuneFull) => 80,
            Subject::Dunegc(Config::Full) => 50,
            _ => continue,
        };
        let mut run = dunegc_benches::runner::RunResult {
            wall_ns: wall_ms * 1_000_000,
            ..Default::default()
        };
        run.dune.exits[dune_hw::ExitReason::Syscall as usize] = 3;
        run.dune.exit_handling[dune_hw::ExitReason::Syscall as usize] = Duration::from_millis(10);
        let mut o = summary(wall_ms, 300, 7);
        if let Outcome::Measured(s) = &mut o {
            s.median.run = Some(Box::new(run));
        }
        c.outcome = o;
    }
    let md = markdown::render(&r, &markdown::PlotLinks::default(), None);
    assert!(md.contains("## Dune ledger"), "{md}");
    // Δ 30 ms, 10 ms of it counted exit handling: 20 ms unexplained, printed
    assert!(
        md.contains(
            "| monitor exit handling, without forwarded calls that blocked | counted | 10.0 |"
        ),
        "{md}"
    );
    assert!(md.contains("**20.0** (67% of Δ)"), "{md}");
    assert!(md.contains("No unit costs"), "{md}");
}

#[test]
fn markdown_on_fixed_input() {
    let r = fixed_results();
    let links = markdown::PlotLinks {
        time_svg: Some("t.svg".to_owned()),
        pauses_svg: Some("p.svg".to_owned()),
    };
    let md = markdown::render(&r, &links, Some("Hand-written intro."));
    assert!(md.starts_with(
        "# dunegc comparison — report run, 2026-01-02 03:04 UTC, testhost-test-cpu-2cpu\n"
    ));
    assert!(md.contains("Hand-written intro."));
    // Ratios to the mprotect baseline, per workload and as a geometric mean.
    assert!(
        md.contains("| dunegc inc-uffd | 0.80× | 0.80× | 0.80× |"),
        "{md}"
    );
    assert!(md.contains("| dunegc inc-mprotect | 1.00× | 1.00× | 1.00× |"));
    assert!(
        md.contains("| dunegc dune-full | 0.50× | 0.50× | 0.50× |"),
        "{md}"
    );
    assert!(md.contains("uffd 0.80×"), "{md}");
    // Unsupported backends say so, with the reason.
    assert!(
        md.contains("| dunegc inc-dune | unsupported: the Dune backend needs the dune feature |")
    );
    assert!(md.contains("| Dune backend | unsupported: "));
    // A workload row: wall 80 ms, spread 30%, 0.80× mprotect, 1.60× bdwgc inc.
    assert!(
        md.contains("| dunegc inc-uffd | 80.0 | 30% | 0.80× | 1.60× | 8.00 | 7 | 0.40 | 0.36 | 0.20× | 42 | 12.0 | 1234 | 64 | ok |"),
        "{md}"
    );
    // The wrong checksum is flagged, in the row and in the summary.
    assert!(md.contains("MISMATCH 8 ≠ 7"));
    assert!(md.contains("CHECKSUM MISMATCH"));
    assert!(md.contains("![wall time](t.svg)") && md.contains("![pauses](p.svg)"));
    assert!(md.contains("| bdwgc | 8.2.2; its incremental mode write-protects the heap |"));
    assert!(md.contains("| 1.00 0.50 0.25 at the start, 2.00 1.00 0.50 at the end |"));
    assert!(
        md.contains("| xml | dunegc inc-uffd | 72.0, 80.0, 96.0 |"),
        "{md}"
    );
    // Every table row has as many cells as its header.
    for table in md
        .split("\n\n")
        .filter(|t| t.starts_with("| configuration"))
    {
        let mut widths = table.lines().map(|l| l.matches('|').count());
        let header = widths.next().expect("a header");
        assert!(widths.all(|w| w == header), "{table}");
    }
}

#[test]
fn svg_on_fixed_input() {
    let r = fixed_results();
    for (svg, bars) in [
        (svg::time_plot(&r), 2 * 8), // 10 configurations, 2 unsupported, 2 panels
        (svg::pause_plot(&r), 2 * 7), // without malloc
    ] {
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(
            svg.matches("<rect ").count(),
            1 + bars + if svg.contains("p99") { bars } else { 0 },
            "{svg}"
        );
        assert_eq!(svg.matches("unsupported here").count(), 4);
        assert_eq!(svg.matches('<').count(), svg.matches('>').count());
        assert!(svg.contains("gcbench (scale 16)") && svg.contains("xml (scale 50)"));
    }
}

#[test]
fn report_binary_runs_every_configuration() {
    let dir = std::env::temp_dir().join(format!("dunegc-report-test-{}", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_dunegc-report"))
        .args(["tiny", "--out"])
        .arg(&dir)
        .output()
        .expect("dunegc-report starts");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for subject in Subject::all() {
        assert!(
            stdout.contains(&format!("| {subject} |")),
            "{subject} missing:\n{stdout}"
        );
    }
    assert!(
        !stdout.contains("FAILED") && !stdout.contains("MISMATCH"),
        "{stdout}"
    );
    let files: Vec<String> = std::fs::read_dir(&dir)
        .expect("the report directory exists")
        .map(|e| {
            e.expect("readable entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(files.len(), 3, "{files:?}");
    assert!(files.iter().any(|f| f.ends_with("-time.svg")));
    assert!(files.iter().any(|f| f.ends_with("-pauses.svg")));
    assert!(files.iter().any(|f| f.ends_with(".md")));
    std::fs::remove_dir_all(&dir).expect("cleanup");
}
