//! `GcError`: everything the collector's public API can fail with.

use crate::dirty::DirtyError;
use std::fmt;

/// An error from gc-core.
#[derive(Debug)]
pub enum GcError {
    /// The address space or memory for the heap could not be had.
    OutOfMemory {
        /// Bytes requested when it happened.
        requested_bytes: usize,
    },
    /// The heap would pass its hard size limit (`DUNEGC_MAX_HEAP_SIZE`,
    /// `HeapBuilder::max_heap_bytes`), even after a collection.
    HeapLimit {
        /// Bytes requested when it happened.
        requested_bytes: usize,
        /// The limit in force.
        limit_bytes: usize,
        /// Bytes of pages in spans at the time.
        heap_bytes: usize,
    },
    /// A request larger than the heap can ever satisfy.
    TooLarge {
        /// Bytes requested.
        requested_bytes: usize,
        /// The largest request the heap accepts.
        max_bytes: usize,
    },
    /// `free` of something that is not the start of a live object of this heap.
    InvalidFree {
        /// The address passed.
        addr: usize,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A configuration value (builder or environment variable) is wrong.
    Config {
        /// The setting.
        key: &'static str,
        /// The value given.
        value: String,
        /// What was expected.
        expected: &'static str,
    },
    /// A system call the collector needs failed.
    Os {
        /// What was being done.
        op: &'static str,
        /// The errno.
        source: std::io::Error,
    },
    /// The dirty-tracking backend failed or is unsupported.
    Dirty(DirtyError),
    /// An allocation was made by a thread that holds the heap lock (from inside the
    /// collector): refused rather than deadlocking.
    Reentrant,
    /// An allocation named a scan class that was never registered
    /// (`mark::descr::register_scan_class`).
    BadScanClass {
        /// The scan class given.
        scan: u8,
    },
}

impl fmt::Display for GcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GcError::BadScanClass { scan } => {
                write!(f, "scan class {scan} was never registered")
            }
            GcError::OutOfMemory { requested_bytes } => {
                write!(f, "out of memory allocating {requested_bytes} bytes")
            }
            GcError::HeapLimit { requested_bytes, limit_bytes, heap_bytes } => write!(
                f,
                "out of memory allocating {requested_bytes} bytes: the heap ({heap_bytes} bytes in use) would pass its limit of {limit_bytes} bytes (DUNEGC_MAX_HEAP_SIZE)"
            ),
            GcError::TooLarge { requested_bytes, max_bytes } => write!(
                f,
                "allocation of {requested_bytes} bytes exceeds the heap's maximum object size of {max_bytes} bytes"
            ),
            GcError::InvalidFree { addr, reason } => write!(f, "invalid free of {addr:#x}: {reason}"),
            GcError::Config { key, value, expected } => {
                write!(f, "bad value '{value}' for {key}: expected {expected}")
            }
            GcError::Os { op, source } => write!(f, "{op} failed: {source}"),
            GcError::Dirty(e) => write!(f, "{e}"),
            GcError::Reentrant => {
                f.write_str("allocation refused: this thread holds the heap lock (allocating from inside the collector)")
            }
        }
    }
}

impl std::error::Error for GcError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            GcError::Os { source, .. } => Some(source),
            GcError::Dirty(e) => Some(e),
            _ => None,
        }
    }
}

impl From<DirtyError> for GcError {
    fn from(e: DirtyError) -> Self {
        GcError::Dirty(e)
    }
}
