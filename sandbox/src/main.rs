//! `dune-sandbox [--policy FILE] [--memory-mib N] [--timeout-ms N] [--mode ring3|ring0|pvm|pvm-ring0]
//! [--verbose] PROGRAM [ARGS...]`: runs a static program in ring 3 under its own page
//! table and a syscall policy; prints how it ended on stderr; exits with the program's
//! status, 124 (timeout), 139 (fault), 159 (denied) or 2 (bad usage, policy or program).

use dune_sandbox::{run_program, FilePolicy, RunOptions};
use std::path::PathBuf;
use std::time::Duration;

const USAGE: &str = "usage: dune-sandbox [--policy FILE] [--memory-mib N] [--timeout-ms N] \
                     [--mode ring3|ring0|pvm|pvm-ring0] [--verbose] PROGRAM [ARGS...]";

fn fail(msg: &str) -> ! {
    eprintln!("dune-sandbox: {msg}");
    std::process::exit(2)
}

fn number(flag: &str, v: Option<String>) -> u64 {
    v.and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fail(&format!("{flag} needs a number\n{USAGE}")))
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut opts = RunOptions::default();
    let mut policy_path: Option<PathBuf> = None;
    let mut verbose = false;
    let program = loop {
        let Some(a) = args.next() else { fail(USAGE) };
        match a.as_str() {
            "--policy" => policy_path = Some(args.next().unwrap_or_else(|| fail(USAGE)).into()),
            "--memory-mib" => opts.memory_bytes = number(&a, args.next()) << 20,
            "--timeout-ms" => opts.timeout = Some(Duration::from_millis(number(&a, args.next()))),
            "--mode" => {
                opts.dune.mode = Some(
                    match args.next().as_deref().and_then(dune_hw::Mode::from_name) {
                        Some(m) => m,
                        None => fail(&format!(
                            "--mode is ring3, ring0, pvm or pvm-ring0\n{USAGE}"
                        )),
                    },
                )
            }
            "--verbose" => verbose = true,
            "--help" | "-h" => {
                println!("{USAGE}");
                return;
            }
            s if s.starts_with("--") => fail(&format!("unknown option {s}\n{USAGE}")),
            _ => break a,
        }
    };
    let mut policy = match &policy_path {
        Some(p) => FilePolicy::load(p).unwrap_or_else(|e| fail(&e.to_string())),
        None => FilePolicy::parse("allow exit_group").unwrap_or_else(|e| fail(&e.to_string())),
    };
    let rest: Vec<String> = args.collect();
    let argv: Vec<&[u8]> = std::iter::once(program.as_bytes())
        .chain(rest.iter().map(|s| s.as_bytes()))
        .collect();
    let report = match run_program(program.as_ref(), &argv, &mut policy, &opts) {
        Ok(r) => r,
        Err(e) => fail(&format!("{program}: {e}")),
    };
    for d in &report.denials {
        if verbose || d.errno == 0 {
            eprintln!(
                "dune-sandbox: denied {} ({}){}: {}",
                d.syscall,
                d.call.nr,
                if d.errno != 0 {
                    format!(" with errno {}", d.errno)
                } else {
                    String::new()
                },
                d.reason
            );
        }
    }
    if verbose || !matches!(report.outcome, dune_hw::sandbox::Outcome::Exited(_)) {
        eprintln!(
            "dune-sandbox: {program}: {} ({} syscalls)",
            report.outcome, report.syscalls
        );
    }
    std::process::exit(report.exit_status())
}
