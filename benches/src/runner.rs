//! gc-core's side of the comparison: one workload, one configuration, one process.
//!
//! `dunegc-runner <workload> <scale> <config>` runs [`run`] and prints one line
//! ([`RunResult::to_line`]): `dunegc-result workload=.. scale=.. config=.. key=value ...`,
//! or `dunegc-error <message>` (exit code 2). `dunegc-runner calibrate` prints the unit
//! costs of the Dune ledger's estimates instead ([`crate::calibrate`]). An unsupported dirty-tracking backend is
//! an error whose message says "unsupported" and why; the report shows it as such.
//!
//! Configurations: `malloc` (the system allocator with explicit frees, no collector),
//! `full` (stop-the-world collections), `dune-full` (the same inside Dune mode: the cost
//! of being in Dune without dirty tracking) and `incremental-<backend>`.

use crate::bdwgc::Workload;
use crate::workloads::{gcbench, hashmap, linkedlist, xml, Allocator, GcHeap, SystemMalloc};
use gc_core::{Backend, BackendChoice, HeapBuilder};
use std::time::Instant;

/// The tag starting a result line.
pub const RESULT_TAG: &str = "dunegc-result";
/// The tag starting an error line.
pub const ERROR_TAG: &str = "dunegc-error";

/// A configuration of the Rust workloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Config {
    /// The system allocator (glibc malloc) with explicit frees: no collector at all.
    Malloc,
    /// gc-core, stop-the-world full collections.
    Full,
    /// gc-core's full collector with the workload's thread in Dune mode (entered as for
    /// `incremental-dune`): the cost of being in Dune alone, without dirty tracking.
    DuneFull,
    /// gc-core, incremental marking with this dirty tracker. `none` is gc-core's
    /// full-rescan baseline: with it gc-core does not mark incrementally at all, so it
    /// behaves as `full`.
    Incremental(Backend),
}

impl Config {
    /// Parse `malloc`, `full`, `dune-full` or `incremental-<backend>`.
    pub fn parse(s: &str) -> Option<Config> {
        match s {
            "malloc" => Some(Config::Malloc),
            "full" => Some(Config::Full),
            "dune-full" => Some(Config::DuneFull),
            _ => s
                .strip_prefix("incremental-")
                .and_then(|b| b.parse().ok())
                .map(Config::Incremental),
        }
    }

    /// The name `parse` accepts.
    pub fn name(self) -> String {
        match self {
            Config::Malloc => "malloc".to_owned(),
            Config::Full => "full".to_owned(),
            Config::DuneFull => "dune-full".to_owned(),
            Config::Incremental(b) => format!("incremental-{b}"),
        }
    }
}

/// What one run measured.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunResult {
    /// Wall time of the workload (after the heap is built).
    pub wall_ns: u64,
    /// Collector time (pauses plus incremental mark steps).
    pub gc_ns: u64,
    /// Collections (full + incremental).
    pub collections: u64,
    /// Full stop-the-world collections.
    pub full_collections: u64,
    /// Incremental cycles finished.
    pub incremental_cycles: u64,
    /// Incremental mark steps (run by the allocating thread, not stop-the-world).
    pub mark_steps: u64,
    /// Stop-the-world pauses recorded.
    pub n_pauses: u64,
    /// Sum of the pauses.
    pub total_pause_ns: u64,
    /// Longest pause.
    pub max_pause_ns: u64,
    /// 99th percentile pause.
    pub p99_pause_ns: u64,
    /// Longest incremental mark step.
    pub max_mark_step_ns: u64,
    /// Time in stop-the-world marking (roots, dirty rescans, the parallel drain).
    pub mark_ns: u64,
    /// Markers of stop-the-world marking (the collecting thread included).
    pub markers: u64,
    /// Dirty pages reported per incremental cycle (average).
    pub dirty_pages_per_cycle: u64,
    /// Heap bytes at the end.
    pub heap_bytes: u64,
    /// Bytes allocated over the run.
    pub bytes_allocated: u64,
    /// Peak RSS of the process.
    pub peak_rss_bytes: u64,
    /// The dirty tracker gc-core actually used (`-` when none was opened).
    pub backend: String,
    /// Workload checksum.
    pub checksum: u64,
    /// User CPU time of the process over the workload (`getrusage`, tick-sampled).
    pub utime_ns: u64,
    /// System (host-kernel) CPU time of the process over the workload (`getrusage`,
    /// tick-sampled): shadow-MMU work, exits and forwarded syscalls in Dune; page faults
    /// and syscalls natively.
    pub stime_ns: u64,
    /// The collector's ledger over the workload.
    pub gc_ledger: gc_core::CollectorLedger,
    /// The Dune ledger over the workload (zero outside Dune).
    pub dune: dune_hw::DuneLedger,
    /// Pages written after a D clear that no scan counted by the end of the workload (the
    /// last cycle's tail), read from the guest page table after it (Dune only).
    pub dune_written_tail: u64,
}

/// (user, system) CPU time of the process so far, in ns.
pub fn cpu_times_ns() -> (u64, u64) {
    // SAFETY: a zeroed rusage is valid output storage for getrusage.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid out-pointer.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let ns = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1000;
    (ns(ru.ru_utime), ns(ru.ru_stime))
}

fn peak_rss_bytes() -> u64 {
    // SAFETY: a zeroed rusage is valid output storage for getrusage.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid out-pointer.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    ru.ru_maxrss as u64 * 1024
}

fn run_workload<A: Allocator>(workload: Workload, scale: u32, alloc: A) -> Result<u64, String> {
    if !workload.scale_range().contains(&scale) {
        return Err(format!(
            "{workload} scale {scale} outside {:?}",
            workload.scale_range()
        ));
    }
    match workload {
        Workload::GcBench => gcbench::run_with(alloc, gcbench::Params::for_scale(scale)),
        Workload::LinkedList => linkedlist::run(alloc, scale),
        Workload::HashMap => hashmap::run(alloc, scale),
        Workload::Xml => xml::run(alloc, scale),
    }
}

/// Run `workload` at `scale` under `config` in this process.
pub fn run(workload: &str, scale: u32, config: Config) -> Result<RunResult, String> {
    let workload =
        Workload::from_name(workload).ok_or_else(|| format!("unknown workload '{workload}'"))?;
    let builder = HeapBuilder::new().from_env().map_err(|e| e.to_string())?;
    let builder = match config {
        Config::Malloc => {
            let t0 = Instant::now();
            let checksum = run_workload(workload, scale, SystemMalloc)?;
            return Ok(RunResult {
                wall_ns: t0.elapsed().as_nanos() as u64,
                peak_rss_bytes: peak_rss_bytes(),
                backend: "-".to_owned(),
                checksum,
                ..RunResult::default()
            });
        }
        Config::Full | Config::DuneFull => {
            builder.incremental(BackendChoice::Exactly(Backend::None))
        }
        Config::Incremental(b) => builder.incremental(BackendChoice::Exactly(b)),
    };
    // The Dune backend needs the workload to run in Dune mode: the runner's only thread
    // enters it before the heap exists (the collector's signal handler is installed first:
    // handlers cannot be installed from inside Dune yet) and leaves it at the end.
    let in_dune = matches!(
        config,
        Config::Incremental(Backend::Dune) | Config::DuneFull
    );
    if in_dune {
        gc_core::world::init()
            .map_err(|e| format!("installing the stop-the-world handler: {e}"))?;
        dune_hw::enter().map_err(|e| {
            if config == Config::DuneFull {
                format!("configuration 'dune-full' is unsupported here: entering Dune mode failed: {e}")
            } else {
                format!(
                    "dirty-tracking backend 'dune' is unsupported here: entering Dune mode failed: {e}"
                )
            }
        })?;
    }
    let heap = builder.build().map_err(|e| e.to_string())?;
    // the CPU times first: their getrusage is an exit in Dune, which lands the counts of
    // the KVM_RUN before it (host faults inside it) in the ledger read next
    let (cpu0, gc0, dune0) = (
        cpu_times_ns(),
        gc_core::collector_ledger(),
        dune_hw::ledger(),
    );
    let t0 = Instant::now();
    let checksum = run_workload(workload, scale, GcHeap(heap))?;
    let wall_ns = t0.elapsed().as_nanos() as u64;
    let (cpu1, gc1, dune1) = (
        cpu_times_ns(),
        gc_core::collector_ledger(),
        dune_hw::ledger(),
    );
    // user space (the lower canonical half): the heap and everything the program mapped
    let dune_written_tail = match dune_hw::dirty_view() {
        Some(v) if in_dune => v.count_written(0, 1 << 47),
        _ => 0,
    };
    // The Dune mode the workload ran in (ring0, ring3, pvm, pvm-ring0: chosen by
    // detection or DUNEGC_DUNE_MODE) goes into the backend name, e.g. `dune/pvm`.
    let dune_mode = dune_hw::mode().map(|m| m.mode.name());
    if in_dune {
        dune_hw::exit().map_err(|e| format!("leaving Dune mode: {e}"))?;
    }
    let s = heap.stats();
    if std::env::var_os("DUNEGC_PAUSE_BREAKDOWN").is_some() {
        // What the longest pause consisted of (scripts/concurrent-marking.sh reads it).
        eprintln!("dunegc-pause longest {}", s.longest_pause);
        eprintln!("dunegc-pause incremental {}", s.longest_incremental_pause);
        eprintln!(
            "dunegc-pause concurrent_cycles={} incremental_cycles={}",
            s.concurrent_cycles, s.incremental_cycles
        );
    }
    Ok(RunResult {
        wall_ns,
        gc_ns: s.gc_time.as_nanos() as u64,
        collections: s.collections(),
        full_collections: s.full_collections,
        incremental_cycles: s.incremental_cycles,
        mark_steps: s.mark_steps,
        n_pauses: s.pauses,
        total_pause_ns: s.total_pause.as_nanos() as u64,
        max_pause_ns: s.max_pause.as_nanos() as u64,
        p99_pause_ns: s.p99_pause.as_nanos() as u64,
        max_mark_step_ns: s.max_mark_step.as_nanos() as u64,
        mark_ns: s.mark_time.as_nanos() as u64,
        markers: s.markers as u64,
        dirty_pages_per_cycle: s.dirty_pages.checked_div(s.incremental_cycles).unwrap_or(0),
        heap_bytes: s.heap_bytes as u64,
        bytes_allocated: s.bytes_allocated,
        peak_rss_bytes: peak_rss_bytes(),
        backend: match (s.backend, dune_mode) {
            (Some(Backend::Dune), Some(mode)) => format!("dune/{mode}"),
            (b, Some(mode)) if config == Config::DuneFull => {
                format!("{}-in-dune/{mode}", b.map_or("-", |b| b.name()))
            }
            (b, _) => b.map_or_else(|| "-".to_owned(), |b| b.name().to_owned()),
        },
        checksum,
        utime_ns: cpu1.0.saturating_sub(cpu0.0),
        stime_ns: cpu1.1.saturating_sub(cpu0.1),
        gc_ledger: gc1.since(&gc0),
        dune: dune1.since(&dune0),
        dune_written_tail,
    })
}

impl RunResult {
    /// The result line, `dunegc-result workload=.. scale=.. config=.. ...`.
    pub fn to_line(&self, workload: &str, scale: u32, config: Config) -> String {
        let fields: [(&str, String); 22] = [
            ("workload", workload.to_owned()),
            ("scale", scale.to_string()),
            ("config", config.name()),
            ("wall_ns", self.wall_ns.to_string()),
            ("gc_ns", self.gc_ns.to_string()),
            ("collections", self.collections.to_string()),
            ("max_pause_ns", self.max_pause_ns.to_string()),
            ("p99_pause_ns", self.p99_pause_ns.to_string()),
            (
                "dirty_pages_per_cycle",
                self.dirty_pages_per_cycle.to_string(),
            ),
            ("heap_bytes", self.heap_bytes.to_string()),
            ("peak_rss_bytes", self.peak_rss_bytes.to_string()),
            ("checksum", self.checksum.to_string()),
            ("full_collections", self.full_collections.to_string()),
            ("incremental_cycles", self.incremental_cycles.to_string()),
            ("mark_steps", self.mark_steps.to_string()),
            ("n_pauses", self.n_pauses.to_string()),
            ("total_pause_ns", self.total_pause_ns.to_string()),
            ("max_mark_step_ns", self.max_mark_step_ns.to_string()),
            ("bytes_allocated", self.bytes_allocated.to_string()),
            ("mark_ns", self.mark_ns.to_string()),
            ("markers", self.markers.to_string()),
            ("backend", self.backend.clone()),
        ];
        let mut line = RESULT_TAG.to_owned();
        for (k, v) in fields {
            line.push(' ');
            line.push_str(k);
            line.push('=');
            line.push_str(&v);
        }
        // the ledger (issue 15): CPU times, the collector's counters, and in Dune the VM's
        let mut num = |k: &str, v: u64| line.push_str(&format!(" {k}={v}"));
        num("utime_ns", self.utime_ns);
        num("stime_ns", self.stime_ns);
        for (k, v) in self.gc_ledger.to_pairs() {
            num(k, v);
        }
        if self.dune != dune_hw::DuneLedger::default() {
            for (k, v) in self.dune.to_pairs() {
                num(&k, v);
            }
            num("dune_written_tail", self.dune_written_tail);
        }
        line
    }

    /// Parse a line written by [`RunResult::to_line`]: (workload, scale, config, result).
    pub fn from_line(line: &str) -> Result<(String, u32, String, RunResult), String> {
        let rest = line
            .strip_prefix(RESULT_TAG)
            .ok_or_else(|| format!("not a {RESULT_TAG} line: {line:?}"))?;
        let mut kv = std::collections::HashMap::new();
        for field in rest.split_whitespace() {
            let (k, v) = field
                .split_once('=')
                .ok_or_else(|| format!("field without '=' in {line:?}: {field}"))?;
            kv.insert(k, v);
        }
        let get = |k: &str| -> Result<&str, String> {
            kv.get(k)
                .copied()
                .ok_or_else(|| format!("missing {k} in {line:?}"))
        };
        let num = |k: &str| -> Result<u64, String> {
            get(k)?
                .parse()
                .map_err(|_| format!("bad number for {k} in {line:?}"))
        };
        // Fields added after the first version default to 0 when absent.
        let opt = |k: &str| -> Result<u64, String> {
            if kv.contains_key(k) {
                num(k)
            } else {
                Ok(0)
            }
        };
        let r = RunResult {
            wall_ns: num("wall_ns")?,
            gc_ns: num("gc_ns")?,
            collections: num("collections")?,
            full_collections: opt("full_collections")?,
            incremental_cycles: opt("incremental_cycles")?,
            mark_steps: opt("mark_steps")?,
            n_pauses: opt("n_pauses")?,
            total_pause_ns: opt("total_pause_ns")?,
            max_pause_ns: num("max_pause_ns")?,
            p99_pause_ns: num("p99_pause_ns")?,
            max_mark_step_ns: opt("max_mark_step_ns")?,
            mark_ns: opt("mark_ns")?,
            markers: opt("markers")?,
            dirty_pages_per_cycle: num("dirty_pages_per_cycle")?,
            heap_bytes: num("heap_bytes")?,
            bytes_allocated: opt("bytes_allocated")?,
            peak_rss_bytes: num("peak_rss_bytes")?,
            backend: kv.get("backend").copied().unwrap_or("-").to_owned(),
            checksum: num("checksum")?,
            utime_ns: opt("utime_ns")?,
            stime_ns: opt("stime_ns")?,
            gc_ledger: gc_core::CollectorLedger::from_pairs(&|k| {
                kv.get(k).and_then(|v| v.parse().ok())
            }),
            dune: dune_hw::DuneLedger::from_pairs(&|k| kv.get(k).and_then(|v| v.parse().ok())),
            dune_written_tail: opt("dune_written_tail")?,
        };
        let scale = get("scale")?
            .parse()
            .map_err(|_| format!("bad scale in {line:?}"))?;
        Ok((
            get("workload")?.to_owned(),
            scale,
            get("config")?.to_owned(),
            r,
        ))
    }
}

/// Parse the runner's arguments, run, and format the result line.
pub fn main_with_args(args: &[String]) -> Result<String, String> {
    if let [c] = args {
        if c == "calibrate" {
            return crate::calibrate::measure().map(|u| u.to_line());
        }
    }
    let [workload, scale, config] = args else {
        return Err(
            "usage: dunegc-runner <gcbench|linkedlist|hashmap|xml> <scale> <malloc|full|dune-full|incremental-BACKEND>, or dunegc-runner calibrate"
                .to_owned(),
        );
    };
    let scale: u32 = scale.parse().map_err(|_| format!("bad scale '{scale}'"))?;
    let config = Config::parse(config).ok_or_else(|| format!("bad config '{config}'"))?;
    let r = run(workload, scale, config)?;
    Ok(r.to_line(workload, scale, config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_round_trip() {
        for c in [
            Config::Malloc,
            Config::Full,
            Config::DuneFull,
            Config::Incremental(Backend::Uffd),
            Config::Incremental(Backend::SoftDirty),
        ] {
            assert_eq!(Config::parse(&c.name()), Some(c));
        }
        assert_eq!(Config::parse("incremental-bogus"), None);
    }

    #[test]
    fn result_line_round_trips() {
        let r = RunResult {
            wall_ns: 5,
            gc_ns: 4,
            collections: 3,
            full_collections: 1,
            incremental_cycles: 2,
            mark_steps: 9,
            n_pauses: 3,
            total_pause_ns: 3,
            max_pause_ns: 2,
            p99_pause_ns: 1,
            max_mark_step_ns: 1,
            mark_ns: 6,
            markers: 2,
            dirty_pages_per_cycle: 7,
            heap_bytes: 4096,
            bytes_allocated: 8192,
            peak_rss_bytes: 1 << 20,
            backend: "uffd".to_owned(),
            checksum: 42,
            utime_ns: 11,
            stime_ns: 12,
            gc_ledger: gc_core::CollectorLedger {
                arms: 2,
                pages_armed: 100,
                ..Default::default()
            },
            dune: dune_hw::DuneLedger {
                fresh_pages: 9,
                dirty_cleared: 3,
                ..Default::default()
            },
            dune_written_tail: 4,
        };
        let line = r.to_line("xml", 2, Config::Incremental(Backend::Uffd));
        let (w, s, c, back) = RunResult::from_line(&line).expect("parses");
        assert_eq!((w.as_str(), s, c.as_str()), ("xml", 2, "incremental-uffd"));
        assert_eq!(back, r);
    }
}
