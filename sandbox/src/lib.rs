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
//! Modules:
//! - [`policy_file`] the policy file format and its [`FilePolicy`]
//! - [`elf`]         static ELF loading and the initial stack
//! - [`runner`]      load + run + report, shared by the command and the tests

pub mod elf;
pub mod policy_file;
pub mod runner;

pub use policy_file::{DefaultAction, FilePolicy, PolicyError};
pub use runner::{run_program, Report, RunOptions};
