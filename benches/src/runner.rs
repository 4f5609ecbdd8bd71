//! gc-core's side of the comparison: one workload, one configuration, one process.

use crate::workloads::gcbench;
use gc_core::{Backend, BackendChoice, HeapBuilder};
use std::time::Instant;

/// A gc-core configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Config {
    /// Stop-the-world full collections.
    Full,
    /// Incremental marking with this dirty tracker.
    Incremental(Backend),
}

impl Config {
    /// Parse `full` or `incremental-<backend>`.
    pub fn parse(s: &str) -> Option<Config> {
        if s == "full" {
            return Some(Config::Full);
        }
        s.strip_prefix("incremental-")
            .and_then(|b| b.parse().ok())
            .map(Config::Incremental)
    }

    /// The name `parse` accepts.
    pub fn name(self) -> String {
        match self {
            Config::Full => "full".to_owned(),
            Config::Incremental(b) => format!("incremental-{b}"),
        }
    }
}

/// What one run measured.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunResult {
    /// Wall time of the workload.
    pub wall_ns: u64,
    /// Collector time (pauses plus mark steps).
    pub gc_ns: u64,
    /// Collections (full + incremental).
    pub collections: u64,
    /// Longest pause.
    pub max_pause_ns: u64,
    /// 99th percentile pause.
    pub p99_pause_ns: u64,
    /// Dirty pages reported per incremental cycle (average).
    pub dirty_pages_per_cycle: u64,
    /// Heap bytes at the end.
    pub heap_bytes: u64,
    /// Peak RSS of the process.
    pub peak_rss_bytes: u64,
    /// Workload checksum.
    pub checksum: u64,
}

fn peak_rss_bytes() -> u64 {
    // SAFETY: a zeroed rusage is valid output storage for getrusage.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid out-pointer.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    ru.ru_maxrss as u64 * 1024
}

/// Run `workload` at `scale` under `config` in this process.
pub fn run(workload: &str, scale: u32, config: Config) -> Result<RunResult, String> {
    let builder = HeapBuilder::new().from_env().map_err(|e| e.to_string())?;
    let builder = match config {
        Config::Full => builder.incremental(BackendChoice::Exactly(Backend::None)),
        Config::Incremental(b) => builder.incremental(BackendChoice::Exactly(b)),
    };
    let heap = builder.build().map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    let checksum = match workload {
        "gcbench" => {
            if !(4..=20).contains(&scale) {
                return Err(format!("gcbench scale {scale} outside 4..=20"));
            }
            gcbench::run(heap, gcbench::Params::for_scale(scale))?
        }
        other => return Err(format!("unknown workload '{other}'")),
    };
    let wall_ns = t0.elapsed().as_nanos() as u64;
    let s = heap.stats();
    Ok(RunResult {
        wall_ns,
        gc_ns: s.gc_time.as_nanos() as u64,
        collections: s.collections(),
        max_pause_ns: s.max_pause.as_nanos() as u64,
        p99_pause_ns: s.p99_pause.as_nanos() as u64,
        dirty_pages_per_cycle: s.dirty_pages.checked_div(s.incremental_cycles).unwrap_or(0),
        heap_bytes: s.heap_bytes as u64,
        peak_rss_bytes: peak_rss_bytes(),
        checksum,
    })
}

/// Parse the runner's arguments, run, and format the result line.
pub fn main_with_args(args: &[String]) -> Result<String, String> {
    let [workload, scale, config] = args else {
        return Err(
            "usage: dunegc-runner <workload> <scale> <full|incremental-BACKEND>".to_owned(),
        );
    };
    let scale: u32 = scale.parse().map_err(|_| format!("bad scale '{scale}'"))?;
    let config = Config::parse(config).ok_or_else(|| format!("bad config '{config}'"))?;
    let r = run(workload, scale, config)?;
    Ok(format!(
        "dunegc-result workload={workload} scale={scale} config={} wall_ns={} gc_ns={} collections={} max_pause_ns={} p99_pause_ns={} dirty_pages_per_cycle={} heap_bytes={} peak_rss_bytes={} checksum={}",
        config.name(),
        r.wall_ns,
        r.gc_ns,
        r.collections,
        r.max_pause_ns,
        r.p99_pause_ns,
        r.dirty_pages_per_cycle,
        r.heap_bytes,
        r.peak_rss_bytes,
        r.checksum
    ))
}
