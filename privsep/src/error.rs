//! Typed errors of the privilege-separation API (what an sthread *does* is a
//! [`crate::Report`]; [`crate::Report::check`] turns a bad one into one of these).

use dune_hw::sandbox::SandboxError;
use std::fmt;

/// Everything that can go wrong creating or running compartments.
#[derive(Debug)]
pub enum PrivsepError {
    /// A tag that does not exist (or not in the policy it was named through).
    InvalidTag {
        /// The tag id given.
        id: u64,
        /// Why it is invalid.
        reason: &'static str,
    },
    /// A child (sthread or policy) asked for more than its parent holds.
    RightsEscalation {
        /// What was asked beyond the parent's rights.
        what: String,
    },
    /// An sthread did something its policy forbids (a syscall, an fd, a callgate).
    PolicyViolation {
        /// What it did.
        what: String,
    },
    /// An sthread ended with a CPU exception (memory outside its tags, a privileged
    /// instruction).
    Fault {
        /// The sandbox's description of the fault.
        what: String,
    },
    /// A tag has no room for an allocation.
    OutOfTagMemory {
        /// The tag.
        tag: u64,
        /// Bytes asked.
        requested: u64,
        /// Bytes left.
        free: u64,
    },
    /// A tag's allocator header no longer holds a valid state (an sthread with write
    /// rights overwrote it); nothing is allocated from it any more.
    TagCorrupted {
        /// The tag.
        tag: u64,
    },
    /// An argument outside what the API accepts.
    BadArgument {
        /// What was wrong.
        what: &'static str,
    },
    /// The Dune sandbox underneath failed (no /dev/kvm, memory slots, an OS call).
    Sandbox(SandboxError),
    /// An OS call of this crate failed.
    Os {
        /// The call.
        op: &'static str,
        /// The errno.
        source: std::io::Error,
    },
}

impl fmt::Display for PrivsepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrivsepError::InvalidTag { id, reason } => write!(f, "invalid tag {id}: {reason}"),
            PrivsepError::RightsEscalation { what } => write!(f, "rights escalation: {what}"),
            PrivsepError::PolicyViolation { what } => write!(f, "policy violation: {what}"),
            PrivsepError::Fault { what } => write!(f, "fault inside the sthread: {what}"),
            PrivsepError::OutOfTagMemory {
                tag,
                requested,
                free,
            } => write!(f, "tag {tag}: {requested} bytes asked, {free} left"),
            PrivsepError::TagCorrupted { tag } => {
                write!(f, "tag {tag}: allocator header overwritten")
            }
            PrivsepError::BadArgument { what } => write!(f, "bad argument: {what}"),
            PrivsepError::Sandbox(e) => write!(f, "{e}"),
            PrivsepError::Os { op, source } => write!(f, "{op} failed: {source}"),
        }
    }
}

impl std::error::Error for PrivsepError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PrivsepError::Sandbox(e) => Some(e),
            PrivsepError::Os { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<SandboxError> for PrivsepError {
    fn from(e: SandboxError) -> Self {
        PrivsepError::Sandbox(e)
    }
}

impl PrivsepError {
    /// Whether this is the sandbox's "Dune is unavailable" error (no /dev/kvm): tests
    /// print SKIPPED on it.
    pub fn is_dune_unavailable(&self) -> bool {
        matches!(self, PrivsepError::Sandbox(SandboxError::Dune(_)))
    }
}
