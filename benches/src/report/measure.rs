//! Running a [`Plan`]: each (workload, configuration, repetition) in a child process (the
//! `dunegc-runner` and `bdwgc-runner` binaries next to this one), with a timeout; the
//! repetitions reduced to medians.

use super::machine::Machine;
use super::plan::{Plan, Subject};
use crate::bdwgc::{BdwgcResult, Workload};
use crate::runner::{self, RunResult};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One run's figures, from either runner.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sample {
    /// Wall time of the workload.
    pub wall_ns: u64,
    /// Time in the collector (bdwgc incremental: a lower bound, its mark steps raise no
    /// events).
    pub gc_ns: u64,
    /// Collections.
    pub collections: u64,
    /// Longest pause.
    pub max_pause_ns: u64,
    /// 99th percentile pause.
    pub p99_pause_ns: u64,
    /// Dirty pages per incremental cycle (gc-core only).
    pub dirty_pages_per_cycle: Option<u64>,
    /// Peak RSS of the process.
    pub peak_rss_bytes: u64,
    /// The workload's checksum.
    pub checksum: u64,
    /// The child process's CPU time in user mode (whole process, set-up included).
    pub user_ns: u64,
    /// The child process's CPU time in the kernel: page faults, signals, `mprotect`,
    /// `PAGEMAP_SCAN` (whole process).
    pub sys_ns: u64,
    /// The child process's minor page faults (whole process).
    pub minor_faults: u64,
    /// The dirty tracker gc-core used, with the Dune mode for the Dune one (`dune/pvm`);
    /// empty for bdwgc.
    pub backend: String,
    /// gc-core's whole result line, the Dune ledger included (None for bdwgc).
    pub run: Option<Box<RunResult>>,
}

impl From<&RunResult> for Sample {
    fn from(r: &RunResult) -> Sample {
        Sample {
            wall_ns: r.wall_ns,
            gc_ns: r.gc_ns,
            collections: r.collections,
            max_pause_ns: r.max_pause_ns,
            p99_pause_ns: r.p99_pause_ns,
            dirty_pages_per_cycle: Some(r.dirty_pages_per_cycle),
            peak_rss_bytes: r.peak_rss_bytes,
            checksum: r.checksum,
            backend: r.backend.clone(),
            run: Some(Box::new(r.clone())),
            ..Sample::default()
        }
    }
}

impl From<&BdwgcResult> for Sample {
    fn from(r: &BdwgcResult) -> Sample {
        Sample {
            wall_ns: r.wall.as_nanos() as u64,
            gc_ns: r.gc_time.as_nanos() as u64,
            collections: r.collections,
            max_pause_ns: r.max_pause.as_nanos() as u64,
            p99_pause_ns: r.p99_pause.as_nanos() as u64,
            dirty_pages_per_cycle: None,
            peak_rss_bytes: r.peak_rss_bytes,
            checksum: r.checksum,
            ..Sample::default()
        }
    }
}

/// Medians over the repetitions of one configuration (each metric independently), plus
/// the spread of wall times.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Repetitions measured.
    pub reps: u32,
    /// Medians.
    pub median: Sample,
    /// Fastest repetition's wall time.
    pub wall_min_ns: u64,
    /// Slowest repetition's wall time.
    pub wall_max_ns: u64,
    /// Every repetition reported the same checksum.
    pub checksums_agree: bool,
    /// Each repetition's wall time, in run order.
    pub walls_ns: Vec<u64>,
}

impl Summary {
    /// Reduce samples (at least one) to medians.
    pub fn of(samples: &[Sample]) -> Summary {
        fn median(mut v: Vec<u64>) -> u64 {
            v.sort_unstable();
            match v.len() {
                0 => 0,
                n if n % 2 == 1 => v[n / 2],
                n => (v[n / 2 - 1] + v[n / 2]) / 2,
            }
        }
        let m = |f: fn(&Sample) -> u64| median(samples.iter().map(f).collect());
        let walls: Vec<u64> = samples.iter().map(|s| s.wall_ns).collect();
        let dirty: Vec<u64> = samples
            .iter()
            .filter_map(|s| s.dirty_pages_per_cycle)
            .collect();
        let first_checksum = samples.first().map_or(0, |s| s.checksum);
        // the ledger of the repetition with the median wall time (ledgers are not medians)
        let mut by_wall: Vec<&Sample> = samples.iter().collect();
        by_wall.sort_by_key(|s| s.wall_ns);
        let median_run = by_wall.get(by_wall.len() / 2).and_then(|s| s.run.clone());
        Summary {
            reps: samples.len() as u32,
            median: Sample {
                wall_ns: m(|s| s.wall_ns),
                gc_ns: m(|s| s.gc_ns),
                collections: m(|s| s.collections),
                max_pause_ns: m(|s| s.max_pause_ns),
                p99_pause_ns: m(|s| s.p99_pause_ns),
                dirty_pages_per_cycle: (!dirty.is_empty()).then(|| median(dirty)),
                peak_rss_bytes: m(|s| s.peak_rss_bytes),
                checksum: first_checksum,
                user_ns: m(|s| s.user_ns),
                sys_ns: m(|s| s.sys_ns),
                minor_faults: m(|s| s.minor_faults),
                backend: samples
                    .first()
                    .map_or_else(String::new, |s| s.backend.clone()),
                run: median_run,
            },
            wall_min_ns: walls.iter().copied().min().unwrap_or(0),
            wall_max_ns: walls.iter().copied().max().unwrap_or(0),
            checksums_agree: samples.iter().all(|s| s.checksum == first_checksum),
            walls_ns: walls,
        }
    }
}

/// How a configuration fared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Measured.
    Measured(Summary),
    /// Not available here (a backend the kernel or build lacks); the reason.
    Unsupported(String),
    /// It ran and failed (crash, timeout, self-check); what happened.
    Failed(String),
}

/// One cell of the report: a workload under a configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cell {
    /// The workload.
    pub workload: Workload,
    /// Its scale.
    pub scale: u32,
    /// The configuration.
    pub subject: Subject,
    /// The figures, or why there are none.
    pub outcome: Outcome,
}

/// A finished run of a plan.
#[derive(Clone, Debug, PartialEq)]
pub struct Results {
    /// The plan that ran.
    pub plan: Plan,
    /// Where.
    pub machine: Machine,
    /// When it started, UTC (`YYYY-MM-DD HH:MM`).
    pub started_utc: String,
    /// How long the whole run took.
    pub elapsed: Duration,
    /// The load averages when the run ended (the machine's hold the start).
    pub load_average_at_end: String,
    /// bdwgc's version, if it ran.
    pub bdwgc_version: Option<String>,
    /// How bdwgc's incremental mode tracked dirty pages, if it ran.
    pub bdwgc_incremental_tracking: Option<String>,
    /// Every (workload, configuration), in plan order.
    pub cells: Vec<Cell>,
    /// The Dune ledger's unit costs (`dunegc-runner calibrate`, run once before the plan
    /// when it has Dune configurations), or why there are none.
    pub calibration: Result<crate::calibrate::UnitCosts, String>,
}

impl Results {
    /// The cell of `workload` under `subject`.
    pub fn cell(&self, workload: Workload, subject: Subject) -> Option<&Cell> {
        self.cells
            .iter()
            .find(|c| c.workload == workload && c.subject == subject)
    }

    /// The medians of `workload` under `subject`, if measured.
    pub fn summary(&self, workload: Workload, subject: Subject) -> Option<&Summary> {
        match &self.cell(workload, subject)?.outcome {
            Outcome::Measured(s) => Some(s),
            _ => None,
        }
    }
}

/// The two runner binaries.
#[derive(Clone, Debug)]
pub struct Runners {
    /// `dunegc-runner`.
    pub dunegc: PathBuf,
    /// `bdwgc-runner`.
    pub bdwgc: PathBuf,
}

impl Runners {
    /// Find both next to the current executable (or in its parent directory, for test
    /// executables in `target/<profile>/deps/`).
    pub fn locate() -> Result<Runners, String> {
        Ok(Runners {
            dunegc: sibling("dunegc-runner")?,
            bdwgc: sibling("bdwgc-runner")?,
        })
    }
}

fn sibling(name: &str) -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe failed: {e}"))?;
    let file = format!("{name}{}", std::env::consts::EXE_SUFFIX);
    let mut tried = Vec::new();
    let mut dir = exe.parent();
    for _ in 0..2 {
        let Some(d) = dir else { break };
        let p = d.join(&file);
        if p.is_file() {
            return Ok(p);
        }
        tried.push(p);
        dir = d.parent();
    }
    Err(format!(
        "{name} not found (tried {tried:?}); build it with `cargo build --release -p dunegc-benches --bins`"
    ))
}

/// What a child printed, and how it ended.
struct ChildOutput {
    stdout: String,
    stderr: String,
    status: String,
    usage: ChildUsage,
}

/// CPU time and faults of one child, from `getrusage(RUSAGE_CHILDREN)` before and after
/// waiting for it (children run one at a time, so the difference is this child's).
#[derive(Clone, Copy, Debug, Default)]
struct ChildUsage {
    user_ns: u64,
    sys_ns: u64,
    minor_faults: u64,
}

fn children_usage() -> ChildUsage {
    // SAFETY: a zeroed rusage is valid output storage for getrusage.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_CHILDREN with a valid out-pointer.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    let ns = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1000;
    ChildUsage {
        user_ns: ns(ru.ru_utime),
        sys_ns: ns(ru.ru_stime),
        minor_faults: ru.ru_minflt as u64,
    }
}

/// Run `path args` with a timeout; kill it (only this child, by its pid) if it overruns.
fn run_child(path: &Path, args: &[String], timeout: Duration) -> Result<ChildOutput, String> {
    let before = children_usage();
    let mut child = Command::new(path)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting {} failed: {e}", path.display()))?;
    let mut out = child.stdout.take().expect("stdout was piped");
    let mut err = child.stderr.take().expect("stderr was piped");
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        out.read_to_string(&mut s).map(|_| s)
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        err.read_to_string(&mut s).map(|_| s)
    });
    let t0 = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status.to_string(),
            Ok(None) if t0.elapsed() > timeout => {
                child
                    .kill()
                    .map_err(|e| format!("killing the overrunning child failed: {e}"))?;
                child
                    .wait()
                    .map_err(|e| format!("waiting for the killed child failed: {e}"))?;
                break format!("killed after the {}s timeout", timeout.as_secs());
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(format!("waiting for {} failed: {e}", path.display())),
        }
    };
    let stdout = out_reader
        .join()
        .map_err(|_| "stdout reader panicked".to_owned())?
        .map_err(|e| format!("reading the child's stdout failed: {e}"))?;
    let stderr = err_reader
        .join()
        .map_err(|_| "stderr reader panicked".to_owned())?
        .map_err(|e| format!("reading the child's stderr failed: {e}"))?;
    let after = children_usage();
    Ok(ChildOutput {
        stdout,
        stderr,
        status,
        usage: ChildUsage {
            user_ns: after.user_ns.saturating_sub(before.user_ns),
            sys_ns: after.sys_ns.saturating_sub(before.sys_ns),
            minor_faults: after.minor_faults.saturating_sub(before.minor_faults),
        },
    })
}

/// One repetition's result.
enum Rep {
    /// A sample, with bdwgc's version and (incremental mode) dirty tracking.
    Sample(Sample, Option<(String, Option<String>)>),
    Unsupported(String),
    Failed(String),
}

fn last_lines(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

fn run_once(
    runners: &Runners,
    workload: Workload,
    scale: u32,
    subject: Subject,
    timeout: Duration,
) -> Rep {
    let (path, mode_arg) = match subject {
        Subject::Dunegc(c) => (&runners.dunegc, c.name()),
        Subject::Bdwgc(m) => (&runners.bdwgc, m.name().to_owned()),
    };
    let args = [workload.name().to_owned(), scale.to_string(), mode_arg];
    let out = match run_child(path, &args, timeout) {
        Ok(o) => o,
        Err(e) => return Rep::Failed(e),
    };
    let with_usage = |mut s: Sample| {
        s.user_ns = out.usage.user_ns;
        s.sys_ns = out.usage.sys_ns;
        s.minor_faults = out.usage.minor_faults;
        s
    };
    let failed = |what: &str| {
        Rep::Failed(format!(
            "{what} ({}; stderr: {})",
            out.status,
            last_lines(&out.stderr, 3)
        ))
    };
    for line in out.stdout.lines() {
        if line.starts_with(runner::RESULT_TAG) {
            return match RunResult::from_line(line) {
                Ok((_, _, _, r)) => Rep::Sample(with_usage(Sample::from(&r)), None),
                Err(e) => failed(&e),
            };
        }
        if let Some(msg) = line.strip_prefix(runner::ERROR_TAG) {
            let msg = msg.trim().to_owned();
            return if msg.contains("unsupported") {
                Rep::Unsupported(msg)
            } else {
                Rep::Failed(msg)
            };
        }
        if line.starts_with("bdwgc-result") {
            return match BdwgcResult::from_line(line) {
                Ok(r) => {
                    let tracking = r.incremental_active.then(|| {
                        if r.write_protects_heap {
                            "write-protects the heap (mprotect + SIGSEGV, as dunegc inc-mprotect)"
                        } else {
                            "does not write-protect the heap (soft-dirty or /proc dirty bits)"
                        }
                        .to_owned()
                    });
                    Rep::Sample(
                        with_usage(Sample::from(&r)),
                        Some((r.bdwgc_version.clone(), tracking)),
                    )
                }
                Err(e) => failed(&e.to_string()),
            };
        }
        if line.starts_with("bdwgc-error") {
            return if line.contains("kind=unsupported") {
                Rep::Unsupported(
                    "bdwgc was not found when the benches were built: run scripts/setup.sh"
                        .to_owned(),
                )
            } else {
                Rep::Failed(line.to_owned())
            };
        }
    }
    failed("no result line")
}

/// Progress callback: (done, total, what just finished).
pub type Progress<'a> = &'a mut dyn FnMut(usize, usize, &str);

/// `dunegc-runner calibrate`, when the plan has a configuration in Dune.
fn calibrate(
    plan: &Plan,
    runners: &Runners,
    timeout: Duration,
) -> Result<crate::calibrate::UnitCosts, String> {
    use crate::runner::Config;
    let in_dune = |s: &Subject| {
        matches!(
            s,
            Subject::Dunegc(Config::DuneFull | Config::Incremental(gc_core::Backend::Dune))
        )
    };
    if !plan.subjects.iter().any(in_dune) {
        return Err("the plan has no configuration in Dune".to_owned());
    }
    let out = run_child(&runners.dunegc, &["calibrate".to_owned()], timeout)?;
    let line = out.stdout.lines().next().unwrap_or("");
    crate::calibrate::UnitCosts::from_line(line)
        .map_err(|e| format!("calibration failed ({}): {e}", out.status))
}

/// Run `plan`: repetitions outermost (so machine noise spreads over all
/// configurations), a configuration found unsupported or failed is not retried.
pub fn run_plan(
    plan: &Plan,
    runners: &Runners,
    machine: Machine,
    timeout: Duration,
    progress: Progress<'_>,
) -> Results {
    let t0 = Instant::now();
    let started_utc = super::utc_now_string();
    let calibration = calibrate(plan, runners, timeout);
    let n = plan.workloads.len() * plan.subjects.len();
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); n];
    let mut verdict: Vec<Option<Outcome>> = vec![None; n];
    let mut bdwgc_version = None;
    let mut bdwgc_incremental_tracking = None;
    let total = n * plan.reps as usize;
    let mut done = 0;
    for _ in 0..plan.reps {
        for (wi, &(workload, scale)) in plan.workloads.iter().enumerate() {
            for (si, &subject) in plan.subjects.iter().enumerate() {
                let i = wi * plan.subjects.len() + si;
                done += 1;
                if verdict[i].is_some() {
                    continue;
                }
                let rep = run_once(runners, workload, scale, subject, timeout);
                let what = format!("{workload} {scale} {subject}");
                match rep {
                    Rep::Sample(s, bdwgc) => {
                        if let Some((version, tracking)) = bdwgc {
                            bdwgc_version = Some(version);
                            if tracking.is_some() {
                                bdwgc_incremental_tracking = tracking;
                            }
                        }
                        progress(
                            done,
                            total,
                            &format!("{what}: {:.1} ms", s.wall_ns as f64 / 1e6),
                        );
                        samples[i].push(s);
                    }
                    Rep::Unsupported(r) => {
                        progress(done, total, &format!("{what}: unsupported"));
                        verdict[i] = Some(Outcome::Unsupported(r));
                    }
                    Rep::Failed(r) => {
                        progress(done, total, &format!("{what}: FAILED {r}"));
                        verdict[i] = Some(Outcome::Failed(r));
                    }
                }
            }
        }
    }
    let mut cells = Vec::with_capacity(n);
    for (wi, &(workload, scale)) in plan.workloads.iter().enumerate() {
        for (si, &subject) in plan.subjects.iter().enumerate() {
            let i = wi * plan.subjects.len() + si;
            let outcome = match verdict[i].take() {
                Some(v) => v,
                None => Outcome::Measured(Summary::of(&samples[i])),
            };
            cells.push(Cell {
                workload,
                scale,
                subject,
                outcome,
            });
        }
    }
    Results {
        plan: plan.clone(),
        machine,
        started_utc,
        elapsed: t0.elapsed(),
        load_average_at_end: super::machine::load_average(),
        bdwgc_version,
        bdwgc_incremental_tracking,
        cells,
        calibration,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(wall_ns: u64, checksum: u64) -> Sample {
        Sample {
            wall_ns,
            max_pause_ns: wall_ns / 10,
            dirty_pages_per_cycle: Some(wall_ns / 100),
            checksum,
            ..Sample::default()
        }
    }

    #[test]
    fn medians_and_spread() {
        let s = Summary::of(&[sample(300, 1), sample(100, 1), sample(200, 1)]);
        assert_eq!(s.median.wall_ns, 200);
        assert_eq!(s.median.max_pause_ns, 20);
        assert_eq!(s.median.dirty_pages_per_cycle, Some(2));
        assert_eq!((s.wall_min_ns, s.wall_max_ns, s.reps), (100, 300, 3));
        assert_eq!(s.walls_ns, [300, 100, 200]);
        assert!(s.checksums_agree);
        let s = Summary::of(&[sample(100, 1), sample(200, 2)]);
        assert_eq!(s.median.wall_ns, 150);
        assert!(!s.checksums_agree);
    }
}
