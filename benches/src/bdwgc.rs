//! bdwgc, the peer collector: the comparison workloads run on Debian's
//! `libgc-dev` (installed by `scripts/setup.sh`).
//!
//! The workloads are C (`benches/c/`, built by `build.rs`). bdwgc is a
//! process-wide singleton that must choose incremental mode before its first
//! allocation, so each configuration runs in a child process: the
//! `bdwgc-runner` binary of this crate, which runs one workload and prints
//! one result line ([`BdwgcResult::to_line`]).
//!
//! ```no_run
//! use dunegc_benches::bdwgc::{self, Mode, Workload};
//!
//! let full = bdwgc::run(Workload::GcBench, 16, Mode::Full)?;
//! let inc = bdwgc::run(Workload::GcBench, 16, Mode::Incremental)?;
//! println!("{:?} vs {:?}", full.wall, inc.wall);
//! # Ok::<(), bdwgc::Error>(())
//! ```
//!
//! What the figures mean (see `benches/c/runtime.c`): a pause is the time the
//! single mutator thread spends inside one collection, from bdwgc's
//! collection events; `gc_time` sums them. In incremental mode bdwgc also
//! marks in small steps inside `GC_MALLOC` without raising events, so there
//! `gc_time` is a lower bound; compare wall times. bdwgc's environment
//! variables (`GC_MARKERS`, `GC_INITIAL_HEAP_SIZE`, ...) reach the child.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

/// Environment variable naming the runner binary explicitly.
pub const RUNNER_ENV: &str = "DUNEGC_BDWGC_RUNNER";
/// The runner binary's name (without the platform's executable suffix).
pub const RUNNER_NAME: &str = "bdwgc-runner";

const RESULT_TAG: &str = "bdwgc-result";
const ERROR_TAG: &str = "bdwgc-error";

/// A comparison workload (issue 9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Workload {
    /// Boehm's GCBench. Scale: the max tree depth (16 = the classic).
    GcBench,
    /// Long linked lists built, traversed, partly dropped. Scale: thousands
    /// of nodes per list.
    LinkedList,
    /// A chained hash map with churn. Scale: thousands of keys.
    HashMap,
    /// Generate, parse into a DOM, query, drop an XML document. Scale:
    /// thousands of `<item>` elements per document.
    Xml,
}

impl Workload {
    /// Every workload, in report order.
    pub const ALL: [Workload; 4] = [
        Workload::GcBench,
        Workload::LinkedList,
        Workload::HashMap,
        Workload::Xml,
    ];

    /// The name used on the runner's command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Workload::GcBench => "gcbench",
            Workload::LinkedList => "linkedlist",
            Workload::HashMap => "hashmap",
            Workload::Xml => "xml",
        }
    }

    /// The inverse of [`Workload::name`].
    pub fn from_name(name: &str) -> Option<Workload> {
        Workload::ALL.into_iter().find(|w| w.name() == name)
    }

    /// The scale of a full comparison run (about a second or less each on
    /// bdwgc here; GCBench at 16 is the classic).
    pub fn full_scale(self) -> u32 {
        match self {
            Workload::GcBench => 16,
            Workload::LinkedList => 200,
            Workload::HashMap => 100,
            Workload::Xml => 50,
        }
    }

    /// The scales the C code accepts.
    pub fn scale_range(self) -> std::ops::RangeInclusive<u32> {
        match self {
            Workload::GcBench => 4..=20,
            Workload::LinkedList | Workload::HashMap => 1..=100_000,
            Workload::Xml => 1..=10_000,
        }
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How bdwgc collects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Stop-the-world full collections (bdwgc's default).
    Full,
    /// `GC_enable_incremental()` before `GC_INIT()`; the run fails unless
    /// `GC_is_incremental_mode()` then reports it on.
    Incremental,
}

impl Mode {
    /// The name used on the runner's command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Full => "full",
            Mode::Incremental => "incremental",
        }
    }

    /// The inverse of [`Mode::name`].
    pub fn from_name(name: &str) -> Option<Mode> {
        [Mode::Full, Mode::Incremental]
            .into_iter()
            .find(|m| m.name() == name)
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The measurements of one bdwgc run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BdwgcResult {
    /// What ran.
    pub workload: Workload,
    /// At what scale.
    pub scale: u32,
    /// In which mode (as requested and, checked, as active).
    pub mode: Mode,
    /// bdwgc's version, "major.minor.micro".
    pub bdwgc_version: String,
    /// The workload from just after `GC_INIT` to its end.
    pub wall: Duration,
    /// Sum of pauses (a lower bound in incremental mode, see the module doc).
    pub gc_time: Duration,
    /// `GC_get_full_gc_total_time()`: full collections only, ms resolution.
    pub full_gc_time: Duration,
    /// Collections completed during the workload (`GC_get_gc_no()` delta).
    pub collections: u64,
    /// Pauses observed.
    pub n_pauses: u64,
    /// The longest pause.
    pub max_pause: Duration,
    /// Nearest-rank 99th percentile of the pauses.
    pub p99_pause: Duration,
    /// The longest span with the world stopped (part of some pause).
    pub max_world_stopped: Duration,
    /// `GC_get_heap_size()` at the end.
    pub heap_len_bytes: u64,
    /// The largest `GC_get_heap_size()` seen after a pause, or at the end.
    pub peak_heap_len_bytes: u64,
    /// The child's peak resident set (`ru_maxrss`).
    pub peak_rss_bytes: u64,
    /// Workload-defined check value (see `benches/c/workloads.h`).
    pub checksum: u64,
    /// `GC_is_incremental_mode()` during the run.
    pub incremental_active: bool,
    /// Incremental mode is on and `GC_incremental_protection_needs()` says
    /// bdwgc write-protects heap pages (mprotect-based dirty tracking).
    pub write_protects_heap: bool,
    /// `GC_get_parallel()`: marker threads besides the collecting one.
    pub parallel_markers: u32,
}

/// What can go wrong running a workload on bdwgc.
#[derive(Debug)]
pub enum Error {
    /// bdwgc was not installed when this crate was built.
    Unsupported {
        /// What is missing.
        feature: &'static str,
        /// Why, and the fix.
        reason: String,
    },
    /// The runner binary was not found.
    RunnerNotFound {
        /// The paths tried.
        searched: Vec<PathBuf>,
    },
    /// Starting or waiting for the runner failed.
    Spawn {
        /// The runner.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The workload reported a failure (see `benches/c/workloads.h`).
    Workload {
        /// The workload.
        workload: Workload,
        /// The mode.
        mode: Mode,
        /// The C return code.
        code: i32,
    },
    /// The scale is outside [`Workload::scale_range`].
    BadScale {
        /// The workload.
        workload: Workload,
        /// The scale asked for.
        scale: u32,
    },
    /// The runner exited without a result line.
    RunnerFailed {
        /// Its exit status.
        status: ExitStatus,
        /// Its standard error.
        stderr: String,
    },
    /// A result line that does not parse.
    Parse {
        /// The line.
        line: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl Error {
    fn workload_code_meaning(code: i32) -> &'static str {
        match code {
            1 => "bdwgc was already initialised in this process",
            2 => "GC_enable_incremental() did not turn incremental mode on",
            3 => "the workload's self-check failed (live data lost or corrupted)",
            4 => "GC_MALLOC returned NULL (out of memory)",
            5 => "scale out of the supported range",
            _ => "unknown error code",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Unsupported { feature, reason } => write!(f, "{feature} unsupported: {reason}"),
            Error::RunnerNotFound { searched } => write!(
                f,
                "{RUNNER_NAME} not found (tried {searched:?}); build it with \
                 `cargo build --release -p dunegc-benches --bin {RUNNER_NAME}` or set {RUNNER_ENV}"
            ),
            Error::Spawn { path, source } => {
                write!(f, "running {} failed: {source}", path.display())
            }
            Error::Workload {
                workload,
                mode,
                code,
            } => write!(
                f,
                "bdwgc {workload} ({mode}) failed with code {code}: {}",
                Error::workload_code_meaning(*code)
            ),
            Error::BadScale { workload, scale } => write!(
                f,
                "scale {scale} out of range {:?} for {workload}",
                workload.scale_range()
            ),
            Error::RunnerFailed { status, stderr } => {
                write!(f, "{RUNNER_NAME} exited with {status} and no result")?;
                if !stderr.trim().is_empty() {
                    write!(f, ": {}", stderr.trim())?;
                }
                Ok(())
            }
            Error::Parse { line, reason } => {
                write!(f, "unparsable {RUNNER_NAME} output ({reason}): {line:?}")
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Spawn { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Run `workload` at `scale` on bdwgc in `mode`, in a child process, with
/// the runner found by [`Runner::locate`].
pub fn run(workload: Workload, scale: u32, mode: Mode) -> Result<BdwgcResult, Error> {
    Runner::locate()?.run(workload, scale, mode)
}

/// The `bdwgc-runner` executable.
#[derive(Debug, Clone)]
pub struct Runner {
    path: PathBuf,
}

impl Runner {
    /// A runner at a known path (tests: `env!("CARGO_BIN_EXE_bdwgc-runner")`).
    pub fn at(path: impl Into<PathBuf>) -> Runner {
        Runner { path: path.into() }
    }

    /// Find the runner: `$DUNEGC_BDWGC_RUNNER`, else next to the current
    /// executable, else in its parent directory (test and bench executables
    /// live in `target/<profile>/deps/`, binaries in `target/<profile>/`).
    pub fn locate() -> Result<Runner, Error> {
        if let Some(path) = std::env::var_os(RUNNER_ENV) {
            return Ok(Runner::at(path));
        }
        let file_name = format!("{RUNNER_NAME}{}", std::env::consts::EXE_SUFFIX);
        let mut searched = Vec::new();
        if let Ok(exe) = std::env::current_exe() {
            let mut dir = exe.parent();
            for _ in 0..2 {
                let Some(d) = dir else { break };
                let candidate = d.join(&file_name);
                if candidate.is_file() {
                    return Ok(Runner::at(candidate));
                }
                searched.push(candidate);
                dir = d.parent();
            }
        }
        Err(Error::RunnerNotFound { searched })
    }

    /// The runner's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Run one configuration in a child process.
    pub fn run(&self, workload: Workload, scale: u32, mode: Mode) -> Result<BdwgcResult, Error> {
        if !workload.scale_range().contains(&scale) {
            return Err(Error::BadScale { workload, scale });
        }
        let output = Command::new(&self.path)
            .arg(workload.name())
            .arg(scale.to_string())
            .arg(mode.name())
            .output()
            .map_err(|source| Error::Spawn {
                path: self.path.clone(),
                source,
            })?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let line = stdout
            .lines()
            .find(|l| l.starts_with(RESULT_TAG) || l.starts_with(ERROR_TAG));
        match line {
            Some(line) if line.starts_with(RESULT_TAG) => BdwgcResult::from_line(line),
            Some(line) => Err(parse_error_line(line)),
            None => Err(Error::RunnerFailed {
                status: output.status,
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            }),
        }
    }
}

impl BdwgcResult {
    /// The runner's output line: `bdwgc-result key=value ...`.
    pub fn to_line(&self) -> String {
        let ns = |d: Duration| d.as_nanos().to_string();
        let fields: [(&str, String); 21] = [
            ("workload", self.workload.name().to_owned()),
            ("scale", self.scale.to_string()),
            ("mode", self.mode.name().to_owned()),
            ("bdwgc_version", self.bdwgc_version.clone()),
            ("wall_ns", ns(self.wall)),
            ("gc_ns", ns(self.gc_time)),
            ("full_gc_ns", ns(self.full_gc_time)),
            ("collections", self.collections.to_string()),
            ("n_pauses", self.n_pauses.to_string()),
            ("max_pause_ns", ns(self.max_pause)),
            ("p99_pause_ns", ns(self.p99_pause)),
            ("max_world_stopped_ns", ns(self.max_world_stopped)),
            ("heap_bytes", self.heap_len_bytes.to_string()),
            ("peak_heap_bytes", self.peak_heap_len_bytes.to_string()),
            ("peak_rss_bytes", self.peak_rss_bytes.to_string()),
            ("checksum", self.checksum.to_string()),
            (
                "incremental_active",
                u8::from(self.incremental_active).to_string(),
            ),
            (
                "write_protects_heap",
                u8::from(self.write_protects_heap).to_string(),
            ),
            ("parallel_markers", self.parallel_markers.to_string()),
            ("unit", "ns".to_owned()),
            ("v", "1".to_owned()),
        ];
        let mut line = RESULT_TAG.to_owned();
        for (key, value) in fields {
            line.push(' ');
            line.push_str(key);
            line.push('=');
            line.push_str(&value);
        }
        line
    }

    /// Parse a line written by [`BdwgcResult::to_line`].
    pub fn from_line(line: &str) -> Result<BdwgcResult, Error> {
        let fields = Fields::parse(line, RESULT_TAG)?;
        let workload = fields.get("workload")?;
        let mode = fields.get("mode")?;
        Ok(BdwgcResult {
            workload: Workload::from_name(workload)
                .ok_or_else(|| fields.err(format!("unknown workload {workload}")))?,
            scale: fields.num("scale")?,
            mode: Mode::from_name(mode)
                .ok_or_else(|| fields.err(format!("unknown mode {mode}")))?,
            bdwgc_version: fields.get("bdwgc_version")?.to_owned(),
            wall: fields.duration("wall_ns")?,
            gc_time: fields.duration("gc_ns")?,
            full_gc_time: fields.duration("full_gc_ns")?,
            collections: fields.num("collections")?,
            n_pauses: fields.num("n_pauses")?,
            max_pause: fields.duration("max_pause_ns")?,
            p99_pause: fields.duration("p99_pause_ns")?,
            max_world_stopped: fields.duration("max_world_stopped_ns")?,
            heap_len_bytes: fields.num("heap_bytes")?,
            peak_heap_len_bytes: fields.num("peak_heap_bytes")?,
            peak_rss_bytes: fields.num("peak_rss_bytes")?,
            checksum: fields.num("checksum")?,
            incremental_active: fields.num::<u8>("incremental_active")? != 0,
            write_protects_heap: fields.num::<u8>("write_protects_heap")? != 0,
            parallel_markers: fields.num("parallel_markers")?,
        })
    }
}

/// The runner's failure line for a workload error.
pub fn error_line(workload: Workload, mode: Mode, code: i32) -> String {
    format!("{ERROR_TAG} kind=workload workload={workload} mode={mode} code={code}")
}

/// The runner's failure line when bdwgc was not built in.
pub fn unsupported_line() -> String {
    format!("{ERROR_TAG} kind=unsupported")
}

fn parse_error_line(line: &str) -> Error {
    let parsed = (|| {
        let fields = Fields::parse(line, ERROR_TAG)?;
        match fields.get("kind")? {
            "unsupported" => Ok(unsupported()),
            "workload" => {
                let workload = fields.get("workload")?;
                let mode = fields.get("mode")?;
                Ok(Error::Workload {
                    workload: Workload::from_name(workload)
                        .ok_or_else(|| fields.err(format!("unknown workload {workload}")))?,
                    mode: Mode::from_name(mode)
                        .ok_or_else(|| fields.err(format!("unknown mode {mode}")))?,
                    code: fields.num("code")?,
                })
            }
            other => Err(fields.err(format!("unknown error kind {other}"))),
        }
    })();
    parsed.unwrap_or_else(|e| e)
}

fn unsupported() -> Error {
    Error::Unsupported {
        feature: "bdwgc",
        reason: "libgc-dev (bdw-gc) was not installed when dunegc-benches was built; \
                 run scripts/setup.sh and rebuild"
            .to_owned(),
    }
}

/// `key=value` pairs after a tag.
struct Fields<'a> {
    line: &'a str,
    pairs: Vec<(&'a str, &'a str)>,
}

impl<'a> Fields<'a> {
    fn parse(line: &'a str, tag: &str) -> Result<Fields<'a>, Error> {
        let mut words = line.split_whitespace();
        let err = |reason: String| Error::Parse {
            line: line.to_owned(),
            reason,
        };
        if words.next() != Some(tag) {
            return Err(err(format!("does not start with {tag}")));
        }
        let pairs = words
            .map(|w| {
                w.split_once('=')
                    .ok_or_else(|| err(format!("{w:?} is not key=value")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Fields { line, pairs })
    }

    fn err(&self, reason: String) -> Error {
        Error::Parse {
            line: self.line.to_owned(),
            reason,
        }
    }

    fn get(&self, key: &str) -> Result<&'a str, Error> {
        self.pairs
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
            .ok_or_else(|| self.err(format!("no {key}")))
    }

    fn num<T: std::str::FromStr>(&self, key: &str) -> Result<T, Error> {
        let v = self.get(key)?;
        v.parse()
            .map_err(|_| self.err(format!("{key}={v} is not a number")))
    }

    fn duration(&self, key: &str) -> Result<Duration, Error> {
        self.num(key).map(Duration::from_nanos)
    }
}

/// Run `workload` on bdwgc in this process: for the `bdwgc-runner` binary.
///
/// bdwgc initialises once per process, so only the first call can succeed;
/// later calls return [`Error::Workload`] with code 1 (nothing unsafe
/// happens). Use [`run`] everywhere else.
pub fn run_in_this_process(
    workload: Workload,
    scale: u32,
    mode: Mode,
) -> Result<BdwgcResult, Error> {
    if !workload.scale_range().contains(&scale) {
        return Err(Error::BadScale { workload, scale });
    }
    ffi::run(workload, scale, mode)
}

#[cfg(dunegc_no_bdwgc)]
mod ffi {
    use super::{unsupported, BdwgcResult, Error, Mode, Workload};

    pub(super) fn run(_: Workload, _: u32, _: Mode) -> Result<BdwgcResult, Error> {
        Err(unsupported())
    }
}

#[cfg(not(dunegc_no_bdwgc))]
mod ffi {
    use std::ffi::{c_char, c_int, CStr};
    use std::time::Duration;

    use super::{BdwgcResult, Error, Mode, Workload};

    /// `struct dunegc_bdwgc_metrics` in benches/c/workloads.h.
    #[repr(C)]
    #[derive(Default)]
    struct Metrics {
        wall_ns: u64,
        gc_ns: u64,
        full_gc_total_ms: u64,
        collections: u64,
        n_pauses: u64,
        n_pauses_dropped: u64,
        max_pause_ns: u64,
        p99_pause_ns: u64,
        max_stopped_ns: u64,
        heap_bytes: u64,
        peak_heap_bytes: u64,
        peak_rss_bytes: u64,
        checksum: u64,
        incremental: i32,
        protection_needs: i32,
        parallel_markers: i32,
        reserved: i32,
    }

    type WorkloadFn = unsafe extern "C" fn(u32, c_int, *mut Metrics) -> c_int;

    extern "C" {
        fn dunegc_bdwgc_gcbench(scale: u32, incremental: c_int, out: *mut Metrics) -> c_int;
        fn dunegc_bdwgc_linkedlist(scale: u32, incremental: c_int, out: *mut Metrics) -> c_int;
        fn dunegc_bdwgc_hashmap(scale: u32, incremental: c_int, out: *mut Metrics) -> c_int;
        fn dunegc_bdwgc_xml(scale: u32, incremental: c_int, out: *mut Metrics) -> c_int;
        fn dunegc_bdwgc_version() -> *const c_char;
    }

    /// `GC_PROTECTS_POINTER_HEAP` in gc.h.
    const GC_PROTECTS_POINTER_HEAP: i32 = 1;

    pub(super) fn run(workload: Workload, scale: u32, mode: Mode) -> Result<BdwgcResult, Error> {
        let entry: WorkloadFn = match workload {
            Workload::GcBench => dunegc_bdwgc_gcbench,
            Workload::LinkedList => dunegc_bdwgc_linkedlist,
            Workload::HashMap => dunegc_bdwgc_hashmap,
            Workload::Xml => dunegc_bdwgc_xml,
        };
        let mut m = Metrics::default();
        // SAFETY: `entry` is one of the workload functions declared above
        // with their C signature; `m` is a live, writable, correctly laid
        // out (repr(C), mirrors workloads.h) Metrics for the whole call. The
        // C side initialises bdwgc at most once per process and returns
        // code 1 instead of re-initialising.
        let code = unsafe { entry(scale, c_int::from(mode == Mode::Incremental), &mut m) };
        if code != 0 {
            return Err(Error::Workload {
                workload,
                mode,
                code,
            });
        }
        // SAFETY: dunegc_bdwgc_version returns a pointer to a static,
        // NUL-terminated buffer that this single-threaded caller reads
        // before any other call could rewrite it.
        let version = unsafe { CStr::from_ptr(dunegc_bdwgc_version()) };
        Ok(BdwgcResult {
            workload,
            scale,
            mode,
            bdwgc_version: version.to_string_lossy().into_owned(),
            wall: Duration::from_nanos(m.wall_ns),
            gc_time: Duration::from_nanos(m.gc_ns),
            full_gc_time: Duration::from_millis(m.full_gc_total_ms),
            collections: m.collections,
            n_pauses: m.n_pauses,
            max_pause: Duration::from_nanos(m.max_pause_ns),
            p99_pause: Duration::from_nanos(m.p99_pause_ns),
            max_world_stopped: Duration::from_nanos(m.max_stopped_ns),
            heap_len_bytes: m.heap_bytes,
            peak_heap_len_bytes: m.peak_heap_bytes,
            peak_rss_bytes: m.peak_rss_bytes,
            checksum: m.checksum,
            incremental_active: m.incremental != 0,
            write_protects_heap: m.incremental != 0
                && m.protection_needs & GC_PROTECTS_POINTER_HEAP != 0,
            parallel_markers: u32::try_from(m.parallel_markers).unwrap_or(0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> BdwgcResult {
        BdwgcResult {
            workload: Workload::Xml,
            scale: 3,
            mode: Mode::Incremental,
            bdwgc_version: "8.2.2".to_owned(),
            wall: Duration::from_nanos(123_456_789),
            gc_time: Duration::from_nanos(23_456_789),
            full_gc_time: Duration::from_millis(7),
            collections: 12,
            n_pauses: 12,
            max_pause: Duration::from_nanos(4_000_001),
            p99_pause: Duration::from_nanos(3_999_999),
            max_world_stopped: Duration::from_nanos(3_500_000),
            heap_len_bytes: 1 << 24,
            peak_heap_len_bytes: 1 << 25,
            peak_rss_bytes: 40 << 20,
            checksum: 42,
            incremental_active: true,
            write_protects_heap: true,
            parallel_markers: 0,
        }
    }

    #[test]
    fn result_line_round_trips() {
        let r = sample();
        assert_eq!(BdwgcResult::from_line(&r.to_line()).expect("parses"), r);
    }

    #[test]
    fn malformed_lines_are_parse_errors() {
        let line = sample().to_line().replace("checksum=42", "checksum=x");
        assert!(matches!(
            BdwgcResult::from_line(&line),
            Err(Error::Parse { .. })
        ));
        assert!(matches!(
            BdwgcResult::from_line("nonsense"),
            Err(Error::Parse { .. })
        ));
        let line = sample().to_line().replace(" scale=3", "");
        assert!(matches!(
            BdwgcResult::from_line(&line),
            Err(Error::Parse { .. })
        ));
    }

    #[test]
    fn error_lines_map_to_errors() {
        let e = parse_error_line(&error_line(Workload::GcBench, Mode::Incremental, 2));
        assert!(matches!(
            e,
            Error::Workload {
                workload: Workload::GcBench,
                mode: Mode::Incremental,
                code: 2
            }
        ));
        assert!(e.to_string().contains("incremental"));
        assert!(matches!(
            parse_error_line(&unsupported_line()),
            Error::Unsupported {
                feature: "bdwgc",
                ..
            }
        ));
    }

    #[test]
    fn names_round_trip() {
        for w in Workload::ALL {
            assert_eq!(Workload::from_name(w.name()), Some(w));
            assert!(w.scale_range().contains(&w.full_scale()));
        }
        for m in [Mode::Full, Mode::Incremental] {
            assert_eq!(Mode::from_name(m.name()), Some(m));
        }
    }

    #[test]
    fn bad_scale_is_rejected_before_spawning() {
        let runner = Runner::at("/nonexistent/bdwgc-runner");
        assert!(matches!(
            runner.run(Workload::GcBench, 99, Mode::Full),
            Err(Error::BadScale { .. })
        ));
        assert!(matches!(
            runner.run(Workload::GcBench, 6, Mode::Full),
            Err(Error::Spawn { .. })
        ));
    }
}
