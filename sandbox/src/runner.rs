//! Loads a program, runs it under a policy, and reports how it ended.

use crate::elf::{self, ElfError};
use crate::policy_file::FilePolicy;
use dune_hw::sandbox::{Config, Denial, Outcome};
use std::path::Path;
use std::time::Duration;

/// How to run a program.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Memory limit: the arena (image, heap, mmap area, stack).
    pub memory_bytes: u64,
    /// Stack bytes (part of the memory limit).
    pub stack_bytes: u64,
    /// Wall-clock limit.
    pub timeout: Option<Duration>,
    /// Dune options (the mode).
    pub dune: dune_hw::Options,
}

impl Default for RunOptions {
    fn default() -> RunOptions {
        RunOptions {
            memory_bytes: 64 << 20,
            stack_bytes: 1 << 20,
            timeout: Some(Duration::from_secs(10)),
            dune: dune_hw::Options::default(),
        }
    }
}

/// The result of a run.
#[derive(Clone, Debug)]
pub struct Report {
    /// How it ended.
    pub outcome: Outcome,
    /// The calls refused along the way.
    pub denials: Vec<Denial>,
    /// Syscalls intercepted.
    pub syscalls: u64,
}

impl Report {
    /// The exit status the `dune-sandbox` command uses: the program's own, or 124
    /// (timeout), 139 (fault: 128 + SIGSEGV), 159 (denied: 128 + SIGSYS).
    pub fn exit_status(&self) -> i32 {
        match self.outcome {
            Outcome::Exited(c) => c & 0xff,
            Outcome::Timeout { .. } => 124,
            Outcome::Fault { .. } => 139,
            Outcome::Denied { .. } => 159,
        }
    }
}

/// Loads the static program at `path` and runs it with `argv` (`argv[0]` included) and an
/// empty environment under `policy`.
pub fn run_program(
    path: &Path,
    argv: &[&[u8]],
    policy: &mut FilePolicy,
    opts: &RunOptions,
) -> Result<Report, ElfError> {
    let file = std::fs::read(path)
        .map_err(|e| ElfError::Malformed(format!("cannot read {}: {e}", path.display())))?;
    let cfg = Config {
        arena_bytes: opts.memory_bytes,
        arena_addr: None,
        stack_bytes: opts.stack_bytes,
        timeout: opts.timeout,
        max_open_files: 64,
        dune: opts.dune,
    };
    let mut loaded = elf::load(&file, argv, &[], cfg)?;
    let outcome = loaded.sandbox.run(loaded.entry, policy)?;
    Ok(Report {
        outcome,
        denials: loaded.sandbox.denials().to_vec(),
        syscalls: loaded.sandbox.stats().syscalls,
    })
}
