//! Runs one workload on bdwgc in this process and prints one result line.
//!
//! Usage: `bdwgc-runner <gcbench|linkedlist|hashmap|xml> <scale> <full|incremental>`
//!
//! bdwgc initialises once per process, so each configuration gets its own
//! process; `dunegc_benches::bdwgc::run` spawns this binary and parses the
//! line. Exit codes: 0 result, 1 workload failed, 2 usage, 3 bdwgc not built in.

use std::process::ExitCode;

use dunegc_benches::bdwgc::{self, Error, Mode, Workload};

fn usage(msg: &str) -> ExitCode {
    eprintln!("bdwgc-runner: {msg}");
    eprintln!("usage: bdwgc-runner <gcbench|linkedlist|hashmap|xml> <scale> <full|incremental>");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [workload, scale, mode] = args.as_slice() else {
        return usage("expected 3 arguments");
    };
    let Some(workload) = Workload::from_name(workload) else {
        return usage(&format!("unknown workload {workload:?}"));
    };
    let Ok(scale) = scale.parse::<u32>() else {
        return usage(&format!("scale {scale:?} is not a number"));
    };
    let Some(mode) = Mode::from_name(mode) else {
        return usage(&format!("unknown mode {mode:?}"));
    };
    match bdwgc::run_in_this_process(workload, scale, mode) {
        Ok(result) => {
            println!("{}", result.to_line());
            ExitCode::SUCCESS
        }
        Err(Error::Workload { code, .. }) => {
            println!("{}", bdwgc::error_line(workload, mode, code));
            ExitCode::from(1)
        }
        Err(Error::Unsupported { .. }) => {
            println!("{}", bdwgc::unsupported_line());
            ExitCode::from(3)
        }
        Err(e) => usage(&e.to_string()),
    }
}
