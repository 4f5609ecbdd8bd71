//! Runs one comparison workload on gc-core in this process and prints one result line:
//! `dunegc-result workload=.. config=.. wall_ns=.. gc_ns=.. collections=.. ...`.
//!
//! Usage: `dunegc-runner <workload> <scale> <config>` where config is `full` (stop-the-world
//! collections) or `incremental-<backend>` (`incremental-uffd`, `incremental-mprotect`, ...).
//! Each configuration runs in its own process so that heaps, signal handlers and
//! trackers never mix.

use dunegc_benches::runner;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match runner::main_with_args(&args[1..]) {
        Ok(line) => println!("{line}"),
        Err(e) => {
            println!("dunegc-error {e}");
            eprintln!("dunegc-runner: {e}");
            std::process::exit(2);
        }
    }
}
