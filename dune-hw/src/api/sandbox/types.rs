//! What a sandbox is configured with and reports (public API layer): [`Config`], the
//! outcome of a run, denials, counters, entry points, access kinds and the errors.

use super::*;

/// How a sandbox is built.
#[derive(Clone, Debug)]
pub struct Config {
    /// Bytes of the arena (image + heap + mmap area + stack): the sandbox's memory limit.
    pub arena_bytes: u64,
    /// Place the arena at this address (a static non-PIE program linked there); `None`:
    /// anywhere.
    pub arena_addr: Option<u64>,
    /// Bytes of stack at the top of the arena.
    pub stack_bytes: u64,
    /// End a run after this long (wall clock).
    pub timeout: Option<Duration>,
    /// Files the sandbox may have open at once (they are host descriptors: the limit keeps
    /// it from exhausting the process's table); beyond it, opens fail with EMFILE.
    pub max_open_files: usize,
    /// Options for initialising Dune if this process has not yet (the mode).
    pub dune: Options,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            arena_bytes: 64 << 20,
            arena_addr: None,
            stack_bytes: 1 << 20,
            timeout: None,
            max_open_files: 64,
            dune: Options::default(),
        }
    }
}

/// Errors setting up or running a sandbox (what the sandboxed code does is an
/// [`Outcome`], never an error).
#[derive(Debug)]
pub enum SandboxError {
    /// Dune (the VM, a vCPU, memory slots, page tables) failed.
    Dune(DuneError),
    /// An OS call failed.
    Os {
        /// The call.
        op: &'static str,
        /// The errno.
        source: std::io::Error,
    },
    /// An address range given to the sandbox is unusable.
    BadRange {
        /// What the range was for.
        what: &'static str,
        /// Start.
        start: u64,
        /// Length.
        len_bytes: u64,
        /// Why.
        reason: &'static str,
    },
}

impl fmt::Display for SandboxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SandboxError::Dune(e) => write!(f, "sandbox: {e}"),
            SandboxError::Os { op, source } => write!(f, "sandbox: {op} failed: {source}"),
            SandboxError::BadRange {
                what,
                start,
                len_bytes,
                reason,
            } => write!(
                f,
                "sandbox: {what} [{start:#x}, +{len_bytes:#x}) is unusable: {reason}"
            ),
        }
    }
}

impl std::error::Error for SandboxError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SandboxError::Dune(e) => Some(e),
            SandboxError::Os { source, .. } => Some(source),
            SandboxError::BadRange { .. } => None,
        }
    }
}

impl From<DuneError> for SandboxError {
    fn from(e: DuneError) -> Self {
        SandboxError::Dune(e)
    }
}

impl From<kmod::KmodError> for SandboxError {
    fn from(e: kmod::KmodError) -> Self {
        SandboxError::Dune(e.into())
    }
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The code called `exit`/`exit_group` (or a closure returned) with this status.
    Exited(i32),
    /// The policy ended the run ([`Verdict::Kill`]).
    Denied {
        /// The syscall's name.
        syscall: &'static str,
        /// Its number.
        nr: u64,
        /// The policy's reason.
        reason: String,
    },
    /// A CPU exception (access outside the view, privileged instruction, ...).
    Fault {
        /// Vector (14 = #PF, 13 = #GP, 6 = #UD; 8 with `what` "triple fault").
        vector: u8,
        /// Its mnemonic.
        name: &'static str,
        /// The error code the CPU pushed (0 if none).
        error_code: u64,
        /// Where.
        rip: u64,
        /// The faulting address of a #PF.
        addr: Option<u64>,
        /// A description.
        what: &'static str,
    },
    /// The run exceeded [`Config::timeout`].
    Timeout {
        /// The limit.
        after: Duration,
    },
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Exited(c) => write!(f, "exited with status {c}"),
            Outcome::Denied {
                syscall,
                nr,
                reason,
            } => write!(f, "killed: syscall {syscall} ({nr}) denied: {reason}"),
            Outcome::Fault {
                vector,
                name,
                error_code,
                rip,
                addr,
                what,
            } => {
                write!(
                    f,
                    "fault {name} (vector {vector}, error {error_code:#x}) at rip {rip:#x}: {what}"
                )?;
                if let Some(a) = addr {
                    write!(f, ", address {a:#x}")?;
                }
                Ok(())
            }
            Outcome::Timeout { after } => write!(f, "timed out after {after:?}"),
        }
    }
}

/// A syscall the sandbox was refused (by the policy or by the core).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denial {
    /// The call.
    pub call: Syscall,
    /// Its name.
    pub syscall: &'static str,
    /// The errno returned (0 if the run was ended).
    pub errno: i32,
    /// Why.
    pub reason: String,
}

/// Counters of a sandbox's runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SandboxStats {
    /// vCPU exits.
    pub exits: u64,
    /// Syscalls intercepted.
    pub syscalls: u64,
}

/// Where a run starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Entry {
    /// First instruction.
    pub rip: u64,
    /// Stack pointer.
    pub rsp: u64,
    /// rdi, rsi, rdx (first arguments).
    pub args: [u64; 3],
}

/// How access to a granted range is given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Read only.
    Read,
    /// Read and write.
    ReadWrite,
    /// Read and execute.
    ReadExec,
}

impl Access {
    pub(super) fn prot(self) -> i32 {
        match self {
            Access::Read => libc::PROT_READ,
            Access::ReadWrite => libc::PROT_READ | libc::PROT_WRITE,
            Access::ReadExec => libc::PROT_READ | libc::PROT_EXEC,
        }
    }
}
