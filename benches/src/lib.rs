//! Shared workloads for dunegc's benchmarks and comparison runner.
//!
//! - [`bdwgc`] — the C workloads on bdwgc, one configuration per child process.
//! - [`calibrate`] — unit costs for the Dune ledger's estimates (`dunegc-runner calibrate`).
//! - [`fresh_pages`] — the fresh-page microbenchmark (first write per page, 64 MiB).
//! - [`report`] — the comparison report: every workload under every configuration.
//! - [`runner`] — gc-core's side: one workload, one configuration, one process.
//! - [`workloads`] — the workloads in Rust (gc-core or the system allocator).

pub mod bdwgc;
pub mod calibrate;
pub mod dirty_probe;
pub mod dune_timing;
pub mod fresh_pages;
pub mod report;
pub mod runner;
pub mod workloads;
