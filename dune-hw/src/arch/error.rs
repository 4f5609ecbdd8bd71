// Layer 1: arch (dune-hw/LAYERS).
//! [`DuneError`].

use std::fmt;
use std::io;

/// Errors of the guest runtime.
#[derive(Debug)]
pub enum DuneError {
    /// The host side failed (no /dev/kvm, permission, capability, ioctl).
    Kmod(kmod::KmodError),
    /// An OS call made while setting up failed.
    Os {
        /// The call.
        op: &'static str,
        /// The errno.
        source: io::Error,
    },
    /// This thread is already in Dune mode.
    AlreadyEntered,
    /// This thread is not in Dune mode.
    NotEntered,
    /// The page-table frame pool is exhausted.
    OutOfPageTableFrames,
    /// A feature this runtime needs is missing.
    Unsupported {
        /// What.
        feature: &'static str,
        /// Why, with the observed value.
        reason: String,
    },
}

impl fmt::Display for DuneError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DuneError::Kmod(e) => write!(f, "{e}"),
            DuneError::Os { op, source } => write!(f, "{op} failed: {source}"),
            DuneError::AlreadyEntered => write!(f, "this thread is already in Dune mode"),
            DuneError::NotEntered => write!(f, "this thread is not in Dune mode"),
            DuneError::OutOfPageTableFrames => {
                write!(f, "the guest page-table frame pool is exhausted")
            }
            DuneError::Unsupported { feature, reason } => {
                write!(f, "unsupported: {feature}: {reason}")
            }
        }
    }
}

impl std::error::Error for DuneError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DuneError::Kmod(e) => Some(e),
            DuneError::Os { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<kmod::KmodError> for DuneError {
    fn from(e: kmod::KmodError) -> Self {
        DuneError::Kmod(e)
    }
}
