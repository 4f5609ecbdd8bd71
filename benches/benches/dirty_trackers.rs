//! Per-page cost of each dirty-tracking backend, for 256 and 65,536 armed pages.
//!
//! Groups (each over `none`, `mprotect`, `uffd`, `soft-dirty`; a backend this kernel lacks
//! prints `SKIPPED dirty_trackers/<backend>: <reason>`):
//! - `arm`: arming every page of a populated, writable region (the tracker was disarmed
//!   just before, untimed).
//! - `collect_clean`: `collect_and_rearm` when nothing was written (the cost of looking).
//! - `collect_dirty`: `collect_and_rearm` after writes to every page (256) or to every
//!   64th page (65,536: 1,024 separate dirty pages, the worst case for re-protecting);
//!   the writes themselves are untimed.
//! - `first_write`: one store to every page right after arming: the fault each backend
//!   makes the program take (re-arming between iterations is untimed).
//!
//! Throughput is in pages (armed pages; for `collect_dirty` too), so criterion's
//! "elem/s" is the inverse of the per-page cost. Runs are short: 10 samples, flat sampling.

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use gc_core::dirty::{self, Backend, DirtyError, DirtySet, DirtyTracker};
use gc_core::util::mmap::{Mapping, BYTES_IN_PAGE};
use gc_core::{Page, PageRange};
use std::time::{Duration, Instant};

const SIZES: [usize; 2] = [256, 65_536];
const BACKENDS: [Backend; 4] = [
    Backend::None,
    Backend::Mprotect,
    Backend::Uffd,
    Backend::SoftDirty,
];
/// Pages `collect_dirty` writes at most (spread evenly over the region).
const MAX_DIRTY_PAGES: usize = 1024;

/// A populated region and a tracker for it.
struct Fixture {
    region: Mapping,
    range: PageRange,
    tracker: Box<dyn DirtyTracker>,
    out: DirtySet,
}

impl Fixture {
    /// `None` (after saying why) if the kernel lacks `backend`.
    fn new(backend: Backend, n_pages: usize) -> Option<Fixture> {
        let tracker = match dirty::open(backend) {
            Ok(t) => t,
            Err(DirtyError::Unsupported { reason, .. }) => {
                println!("SKIPPED dirty_trackers/{backend}/{n_pages}: {reason}");
                return None;
            }
            Err(e) => panic!("opening the {backend} tracker failed: {e}"),
        };
        let region = Mapping::new(n_pages * BYTES_IN_PAGE).expect("mmap of the benchmark region");
        let range = PageRange::new(Page::from_aligned(region.start()), n_pages);
        let f = Fixture {
            region,
            range,
            tracker,
            out: DirtySet::new(),
        };
        f.write_every(1);
        Some(f)
    }

    /// One store into every `stride`-th page.
    fn write_every(&self, stride: usize) {
        for i in (0..self.range.n_pages).step_by(stride) {
            let p = (self.region.start() + i * BYTES_IN_PAGE) as *mut u8;
            // SAFETY: inside our own read/write mapping; when armed, the tracker's fault
            // handling (or the kernel's) lets the store complete.
            unsafe { p.write_volatile(i as u8) };
        }
    }

    fn arm(&mut self) {
        self.tracker.arm(&[self.range]).expect("arm");
    }

    fn collect(&mut self) {
        self.out.clear();
        self.tracker
            .collect_and_rearm(&mut self.out)
            .expect("collect_and_rearm");
    }
}

/// Run `routine(fixture, iters) -> measured time` for every backend and size.
fn each_backend(
    c: &mut Criterion,
    group_name: &str,
    mut routine: impl FnMut(&mut Fixture, u64) -> Duration,
) {
    let mut group = c.benchmark_group(group_name);
    group.sampling_mode(SamplingMode::Flat);
    for backend in BACKENDS {
        for n_pages in SIZES {
            let Some(mut f) = Fixture::new(backend, n_pages) else {
                continue;
            };
            group.throughput(Throughput::Elements(n_pages as u64));
            group.bench_function(BenchmarkId::new(backend.name(), n_pages), |b| {
                b.iter_custom(|iters| routine(&mut f, iters))
            });
            f.tracker.disarm().expect("disarm");
        }
    }
    group.finish();
}

fn arm(c: &mut Criterion) {
    each_backend(c, "arm", |f, iters| {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            f.tracker.disarm().expect("disarm");
            let t = Instant::now();
            f.arm();
            total += t.elapsed();
        }
        total
    });
}

fn collect_clean(c: &mut Criterion) {
    each_backend(c, "collect_clean", |f, iters| {
        f.arm();
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            f.out.clear();
            let t = Instant::now();
            f.tracker
                .collect_and_rearm(&mut f.out)
                .expect("collect_and_rearm");
            total += t.elapsed();
        }
        total
    });
}

fn collect_dirty(c: &mut Criterion) {
    each_backend(c, "collect_dirty", |f, iters| {
        f.arm();
        let stride = (f.range.n_pages / MAX_DIRTY_PAGES).max(1);
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            f.write_every(stride);
            f.out.clear();
            let t = Instant::now();
            f.tracker
                .collect_and_rearm(&mut f.out)
                .expect("collect_and_rearm");
            total += t.elapsed();
        }
        total
    });
}

fn first_write(c: &mut Criterion) {
    each_backend(c, "first_write", |f, iters| {
        f.arm();
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            let t = Instant::now();
            f.write_every(1);
            total += t.elapsed();
            f.collect();
        }
        total
    });
}

/// Every backend, the Dune one included (its probe runs inside Dune mode), measured the
/// same way in child processes (`dirty-probe`), printed side by side with ratios to
/// mprotect: nanoseconds per page.
fn side_by_side(_c: &mut Criterion) {
    use dunegc_benches::dirty_probe::{from_line, PerPage};
    let mut rows: Vec<(String, PerPage)> = Vec::new();
    for backend in ["none", "mprotect", "uffd", "soft-dirty", "dune"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_dirty-probe"))
            .arg(backend)
            .output();
        let text = match &out {
            Ok(o) => String::from_utf8_lossy(&o.stdout).into_owned(),
            Err(e) => format!("dirty-probe-error {e}"),
        };
        for line in text.lines() {
            if let Some(r) = from_line(line) {
                rows.push(r);
            } else if let Some(e) = line.strip_prefix("dirty-probe-error ") {
                println!("SKIPPED dirty_trackers/side_by_side/{backend}: {e}");
            }
        }
    }
    println!("\nPer-page cost, ns (median), side by side; ratio to mprotect in brackets");
    println!(
        "{:<10} {:>7} {:>16} {:>16} {:>16} {:>16}",
        "backend", "pages", "arm", "collect clean", "collect dirty", "first write"
    );
    for (b, p) in &rows {
        let base = rows
            .iter()
            .find(|(m, q)| m == "mprotect" && q.n_pages == p.n_pages)
            .map(|(_, q)| *q);
        let cell = |v: f64, f: fn(&PerPage) -> f64| match base {
            Some(m) if f(&m) > 0.0 => format!("{v:.1} ({:.2}x)", v / f(&m)),
            _ => format!("{v:.1}"),
        };
        println!(
            "{:<10} {:>7} {:>16} {:>16} {:>16} {:>16}",
            b,
            p.n_pages,
            cell(p.arm_ns, |q| q.arm_ns),
            cell(p.collect_clean_ns, |q| q.collect_clean_ns),
            cell(p.collect_dirty_ns, |q| q.collect_dirty_ns),
            cell(p.first_write_ns, |q| q.first_write_ns)
        );
    }
}

/// The benchmark group (in a private module: `criterion_group!` makes an undocumented
/// `pub fn`).
mod group {
    use super::*;

    criterion_group! {
        name = dirty_trackers;
        config = Criterion::default()
            .sample_size(10)
            .warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(2));
        targets = arm, collect_clean, collect_dirty, first_write, side_by_side
    }
}
criterion_main!(group::dirty_trackers);
