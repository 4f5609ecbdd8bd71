//! Shared workloads for dunegc's benchmarks and comparison runner.

pub mod bdwgc;
pub mod runner;
pub mod workloads;
