//! dune-sandbox: runs a statically linked Linux program (or, through
//! [`dune_hw::sandbox::Sandbox::run_closure`], a Rust closure) at guest CPL3 under its own
//! page-table view and a syscall policy file, like the Dune paper's sandbox.
//!
//! The isolation itself is [`dune_hw::sandbox`]: only the program's arena (image, heap,
//! mmap area, stack) is mapped in its view; every syscall exits to the host, where the
//! [`FilePolicy`] decides and the sandbox core checks every descriptor and pointer before
//! anything reaches the host kernel; brk/mmap are emulated inside the arena, whose size is
//! the memory limit. The outcome (exit status, denial, fault, timeout) is reported to the
//! caller, whose own memory the program cannot reach.
//!
//! ```text
//! $ cat hello.policy
//! allow brk mmap munmap mprotect arch_prctl set_tid_address set_robust_list rseq
//! allow prlimit64 readlink getrandom newfstatat write writev close openat lseek
//! allow exit_group
//! write /tmp
//! $ gcc -static -O1 -o hello sandbox/tests/programs/hello.c
//! $ dune-sandbox --policy hello.policy --memory-mib 64 --timeout-ms 5000 ./hello /tmp/out
//! ```
//! The command exits with the program's status, or 124 (timeout), 139 (fault), 159 (a call
//! the policy refused with `default kill`), 2 (bad usage, policy file or program); how a run
//! ended that was not a normal exit is printed on stderr (`--verbose`: always, with every
//! refused call).
//!
//! Modules:
//! - [`policy_file`] the policy file format and its [`FilePolicy`]
//! - [`elf`]         static ELF loading and the initial stack
//! - [`runner`]      load + run + report, shared by the command and the tests

pub mod elf;
pub mod policy_file;
pub mod runner;

pub use policy_file::{DefaultAction, FilePolicy, PolicyError};
pub use runner::{run_program, Report, RunOptions};
