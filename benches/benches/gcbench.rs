//! GCBench side by side, in one run: the system allocator (explicit frees), gc-core with
//! full collections, gc-core incremental with every dirty tracker available here, and
//! bdwgc (Debian's libgc) full and incremental.
//!
//! Every configuration runs in its own child process (bdwgc can be initialised once per
//! process, and trackers install process-wide handlers); each criterion iteration is one
//! complete GCBench run and its time is the workload's own wall time reported by the
//! child (`iter_custom`), so process start-up is not counted. After the group, a table of
//! medians with ratios to bdwgc full is printed: wall time, GC time, max pause.
//!
//! `DUNEGC_GCBENCH_SCALE` sets the depth (default 16, the classic).

use criterion::{criterion_main, Criterion};
use dunegc_benches::bdwgc::{Mode, Runner, Workload};
use dunegc_benches::runner::RunResult;
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

#[derive(Clone, Copy, Debug, Default)]
struct Sample {
    wall: Duration,
    gc: Duration,
    max_pause: Duration,
}

static SAMPLES: Mutex<Vec<(String, Vec<Sample>)>> = Mutex::new(Vec::new());

fn scale() -> u32 {
    std::env::var("DUNEGC_GCBENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(16)
}

fn run_dunegc(config: &str) -> Result<Sample, String> {
    let out = Command::new(env!("CARGO_BIN_EXE_dunegc-runner"))
        .args(["gcbench", &scale().to_string(), config])
        .output()
        .map_err(|e| format!("spawning dunegc-runner: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("dunegc-"))
        .ok_or("dunegc-runner printed nothing")?;
    let (_, _, _, r): (String, u32, String, RunResult) = RunResult::from_line(line)?;
    Ok(Sample {
        wall: Duration::from_nanos(r.wall_ns),
        gc: Duration::from_nanos(r.gc_ns),
        max_pause: Duration::from_nanos(r.max_pause_ns),
    })
}

fn run_bdwgc(mode: Mode) -> Result<Sample, String> {
    let r = Runner::at(env!("CARGO_BIN_EXE_bdwgc-runner"))
        .run(Workload::GcBench, scale(), mode)
        .map_err(|e| e.to_string())?;
    Ok(Sample {
        wall: r.wall,
        gc: r.gc_time,
        max_pause: r.max_pause,
    })
}

fn bench_config(c: &mut Criterion, name: &str, run: &dyn Fn() -> Result<Sample, String>) {
    // Probe once: an unsupported configuration is reported and skipped, not faked.
    if let Err(e) = run() {
        println!("SKIPPED gcbench/{name}: {e}");
        return;
    }
    let mut group = c.benchmark_group("gcbench");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_millis(500));
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let s = run().unwrap_or_else(|e| panic!("gcbench/{name} failed: {e}"));
                total += s.wall;
                let mut all = SAMPLES.lock().unwrap_or_else(|e| e.into_inner());
                match all.iter_mut().find(|(n, _)| n == name) {
                    Some((_, v)) => v.push(s),
                    None => all.push((name.to_owned(), vec![s])),
                }
            }
            total
        })
    });
    group.finish();
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn print_table() {
    let all = SAMPLES.lock().unwrap_or_else(|e| e.into_inner());
    let med = |name: &str, f: fn(&Sample) -> Duration| {
        all.iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| median(v.iter().map(f).collect()))
    };
    let base = med("bdwgc-full", |s| s.wall);
    let base_gc = med("bdwgc-full", |s| s.gc);
    println!(
        "\nGCBench (depth {}), medians; ratios to bdwgc full",
        scale()
    );
    println!(
        "{:<24} {:>10} {:>8} {:>10} {:>8} {:>11}",
        "configuration", "wall ms", "ratio", "GC ms", "ratio", "max pause"
    );
    for (name, v) in all.iter() {
        let wall = median(v.iter().map(|s| s.wall).collect());
        let gc = median(v.iter().map(|s| s.gc).collect());
        let pause = median(v.iter().map(|s| s.max_pause).collect());
        let ratio = |x: Duration, b: Option<Duration>| {
            b.map_or("-".to_owned(), |b| {
                format!("{:.2}x", x.as_secs_f64() / b.as_secs_f64().max(1e-9))
            })
        };
        println!(
            "{:<24} {:>10.1} {:>8} {:>10.1} {:>8} {:>8.2} ms",
            name,
            wall.as_secs_f64() * 1e3,
            ratio(wall, base),
            gc.as_secs_f64() * 1e3,
            ratio(gc, base_gc),
            pause.as_secs_f64() * 1e3
        );
    }
}

fn gcbench(c: &mut Criterion) {
    for config in [
        "malloc",
        "full",
        "incremental-mprotect",
        "incremental-uffd",
        "incremental-soft-dirty",
        "incremental-dune",
    ] {
        bench_config(c, config, &|| run_dunegc(config));
    }
    bench_config(c, "bdwgc-full", &|| run_bdwgc(Mode::Full));
    bench_config(c, "bdwgc-incremental", &|| run_bdwgc(Mode::Incremental));
    print_table();
}

/// The benchmark group (in a private module: `criterion_group!` makes an undocumented
/// `pub fn`).
mod group {
    criterion::criterion_group!(benches, super::gcbench);
}

criterion_main!(group::benches);
