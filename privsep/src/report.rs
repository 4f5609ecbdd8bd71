//! What a compartment's run reports: how it ended ([`Ended`]) and every refused action
//! ([`Violation`]), oldest first. A fault or a refusal is an outcome, never a panic or a
//! corruption of the parent; [`Report::check`] turns it into a typed error.

use crate::error::PrivsepError;
use crate::tag::tag_at;
use dune_hw::sandbox::Outcome;
use std::fmt;

/// What kind of access faulted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// A load outside the granted memory.
    Read,
    /// A store outside the granted memory or into a read-only tag.
    Write,
    /// An instruction fetch outside the granted code.
    Execute,
    /// A privileged instruction (`mov cr3`, `cli`, `hlt`, port I/O): #GP at CPL3.
    Privileged,
    /// Any other exception (#UD, #DE, a triple fault, ...).
    Other,
}

/// How an sthread (or callgate) run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ended {
    /// Its body returned this value (or it called `exit`).
    Exited(i32),
    /// A CPU exception ended it.
    Fault {
        /// The access.
        kind: FaultKind,
        /// The faulting address (page faults).
        addr: Option<u64>,
        /// The instruction.
        rip: u64,
        /// The tag that holds `addr`, if it is another tag's memory.
        in_tag: Option<u64>,
        /// The sandbox's description.
        what: String,
    },
    /// A syscall its policy does not allow ended it.
    Killed {
        /// The call.
        syscall: &'static str,
        /// Why.
        reason: String,
    },
    /// It ran past its policy's timeout.
    Timeout,
}

/// One refused action of a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Violation {
    /// A syscall outside the allowed set (the run was ended).
    Syscall {
        /// Its name.
        name: &'static str,
        /// Its number.
        nr: u64,
    },
    /// A file descriptor outside the grant, or without the right the call needs (EBADF).
    Fd {
        /// The descriptor.
        fd: u64,
        /// The call.
        syscall: &'static str,
    },
    /// A call to a callgate not in the policy (EPERM).
    ForgedGate {
        /// The id the sthread named.
        id: u64,
    },
    /// A child asked for rights its parent lacks (EPERM), or named no valid tag (EINVAL).
    ChildRefused {
        /// Why.
        what: String,
    },
    /// A child sthread or callgate this run started ended other than by returning.
    Nested {
        /// `"child"` or `"callgate"`.
        what: &'static str,
        /// How it ended.
        ended: Ended,
    },
}

/// The result of one run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// How it ended.
    pub ended: Ended,
    /// What was refused, oldest first.
    pub violations: Vec<Violation>,
}

impl Report {
    /// The exit value if the run returned normally with nothing refused; otherwise the
    /// typed error: [`PrivsepError::Fault`], or [`PrivsepError::PolicyViolation`].
    pub fn check(&self) -> Result<i32, PrivsepError> {
        match &self.ended {
            Ended::Fault { .. } => Err(PrivsepError::Fault {
                what: self.ended.to_string(),
            }),
            Ended::Exited(v) if self.violations.is_empty() => Ok(*v),
            _ => Err(PrivsepError::PolicyViolation {
                what: match self.violations.first() {
                    Some(v) => format!("{v:?}"),
                    None => self.ended.to_string(),
                },
            }),
        }
    }
}

impl fmt::Display for Ended {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ended::Exited(v) => write!(f, "returned {v}"),
            Ended::Fault {
                kind,
                addr,
                rip,
                in_tag,
                what,
            } => {
                write!(f, "{kind:?} fault at rip {rip:#x}: {what}")?;
                if let Some(a) = addr {
                    write!(f, ", address {a:#x}")?;
                }
                if let Some(t) = in_tag {
                    write!(f, " (memory of tag {t}, not granted)")?;
                }
                Ok(())
            }
            Ended::Killed { syscall, reason } => write!(f, "killed at {syscall}: {reason}"),
            Ended::Timeout => write!(f, "timed out"),
        }
    }
}

impl From<Outcome> for Ended {
    fn from(o: Outcome) -> Ended {
        match o {
            Outcome::Exited(v) => Ended::Exited(v),
            Outcome::Denied {
                syscall, reason, ..
            } => Ended::Killed { syscall, reason },
            Outcome::Timeout { .. } => Ended::Timeout,
            Outcome::Fault {
                vector,
                error_code,
                rip,
                addr,
                what,
                ..
            } => {
                let kind = match vector {
                    14 if error_code & 16 != 0 => FaultKind::Execute,
                    14 if error_code & 2 != 0 => FaultKind::Write,
                    14 => FaultKind::Read,
                    13 => FaultKind::Privileged,
                    _ => FaultKind::Other,
                };
                Ended::Fault {
                    kind,
                    addr,
                    rip,
                    in_tag: addr.and_then(tag_at).map(|t| t.id),
                    what: what.to_string(),
                }
            }
        }
    }
}
