//! Where the collector learns which heap pages the program wrote.
//!
//! A [`DirtyTracker`] is armed over a set of page ranges (all dirty state cleared); at a
//! later stop-the-world point `collect_and_rearm` reports every page written since —
//! false positives allowed (and counted), false negatives never — and arms again.
//! The backend is chosen once, when the heap is built ([`open`]); nothing else in the
//! collector branches on it.
//!
//! Backends, one module each: [`none`] (reports everything: the full-rescan baseline),
//! [`mprotect`] (write-protection + SIGSEGV), [`soft_dirty`] (`/proc/self/pagemap` bit 55),
//! [`uffd`] (userfaultfd async write-protect read with `PAGEMAP_SCAN`).

#[cfg(feature = "dune")]
pub mod dune;
pub mod mprotect;
pub mod none;
pub mod soft_dirty;
pub mod uffd;

mod set;

pub use set::DirtySet;

use crate::address::PageRange;
use std::fmt;
use std::str::FromStr;

/// A dirty-page source, named after its mechanism.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// No tracking: every armed page is reported (full rescans); the baseline.
    None,
    /// `mprotect(PROT_READ)` plus a SIGSEGV handler that records and unprotects.
    Mprotect,
    /// The kernel's soft-dirty bits (`clear_refs` + `pagemap` bit 55).
    SoftDirty,
    /// userfaultfd asynchronous write-protect, read and reset with `PAGEMAP_SCAN`.
    Uffd,
    /// Hardware page-table dirty bits read through the Dune layer.
    Dune,
}

impl Backend {
    /// Every backend, in the order `auto` prefers them (best first).
    pub const ALL: [Backend; 5] = [
        Backend::Uffd,
        Backend::SoftDirty,
        Backend::Mprotect,
        Backend::Dune,
        Backend::None,
    ];

    /// The name used by `DUNEGC_DIRTY` and in reports.
    pub const fn name(self) -> &'static str {
        match self {
            Backend::None => "none",
            Backend::Mprotect => "mprotect",
            Backend::SoftDirty => "soft-dirty",
            Backend::Uffd => "uffd",
            Backend::Dune => "dune",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Backend {
    type Err = DirtyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Backend::ALL
            .into_iter()
            .find(|b| b.name() == s)
            .ok_or_else(|| DirtyError::UnknownBackend { name: s.to_owned() })
    }
}

/// How the backend is chosen: one named backend, or the best one this kernel supports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum BackendChoice {
    /// The best supported backend (uffd, then soft-dirty, then mprotect).
    #[default]
    Auto,
    /// Exactly this backend; an unsupported one is an error, never a silent fallback.
    Exactly(Backend),
}

impl FromStr for BackendChoice {
    type Err = DirtyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "auto" {
            Ok(BackendChoice::Auto)
        } else {
            s.parse().map(BackendChoice::Exactly)
        }
    }
}

/// Counters every backend keeps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrackerStats {
    /// Times `arm` ran.
    pub arms: u64,
    /// Times `collect_and_rearm` ran.
    pub collections: u64,
    /// Pages reported dirty, summed over collections.
    pub pages_reported: u64,
    /// Write faults taken by the program (mprotect: SIGSEGVs handled).
    pub write_faults: u64,
}

/// Why a tracker operation failed.
#[derive(Debug)]
pub enum DirtyError {
    /// The kernel or machine lacks what the backend needs. Not a failure of the program:
    /// selection and tests branch on it.
    Unsupported {
        /// The backend.
        backend: Backend,
        /// What is missing, in words.
        reason: String,
    },
    /// A system call failed.
    Os {
        /// The backend.
        backend: Backend,
        /// The operation, e.g. "mprotect(PROT_READ)".
        op: &'static str,
        /// The errno.
        source: std::io::Error,
    },
    /// `DUNEGC_DIRTY` or a builder named no known backend.
    UnknownBackend {
        /// The name given.
        name: String,
    },
}

impl fmt::Display for DirtyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DirtyError::Unsupported { backend, reason } => {
                write!(f, "dirty-tracking backend '{backend}' is unsupported here: {reason}")
            }
            DirtyError::Os { backend, op, source } => write!(f, "{backend}: {op} failed: {source}"),
            DirtyError::UnknownBackend { name } => write!(
                f,
                "unknown dirty-tracking backend '{name}' (expected auto, none, mprotect, soft-dirty, uffd or dune)"
            ),
        }
    }
}

impl std::error::Error for DirtyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DirtyError::Os { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// A source of "which pages were written since I was armed".
///
/// Contract (checked for every backend by `gc-core/tests/dirty_contract.rs`):
/// - after `arm(ranges)`, every page of `ranges` written by the program — or by the kernel
///   on its behalf, if [`DirtyTracker::sees_kernel_writes`] — is reported by the next
///   `collect_and_rearm`; reported pages outside what was written are false positives.
/// - `collect_and_rearm` clears the state of what it reports: the next call reports only
///   pages written after this one. It runs while every mutator is stopped.
/// - if `collect_and_rearm` fails, the caller must treat every armed page as dirty
///   (the destructive read cannot be trusted to be complete).
/// - `disarm` restores ordinary access; calling it when not armed is a no-op.
/// - `collect_and_disarm` reports what `collect_and_rearm` would and leaves the tracker
///   disarmed; the next `arm` tracks exactly the writes made after it.
pub trait DirtyTracker: Send {
    /// Which mechanism this is.
    fn backend(&self) -> Backend;

    /// True if writes the kernel makes into tracked pages on the process's behalf (the
    /// buffer of `read(2)`) are reported. When false (mprotect), the caller must not arm
    /// pages that may be syscall buffers; it treats them as always dirty instead.
    fn sees_kernel_writes(&self) -> bool;

    /// Start tracking exactly `ranges` (replacing any earlier set), all of them clean.
    fn arm(&mut self, ranges: &[PageRange]) -> Result<(), DirtyError>;

    /// Append to `out` every armed page written since the last arm or collect, and clear
    /// their state so tracking continues.
    fn collect_and_rearm(&mut self, out: &mut DirtySet) -> Result<(), DirtyError>;

    /// Stop tracking and restore ordinary access to every armed page.
    fn disarm(&mut self) -> Result<(), DirtyError>;

    /// The end of a cycle: append to `out` every armed page written since the last arm or
    /// collect (as [`DirtyTracker::collect_and_rearm`]), then stop tracking (as
    /// [`DirtyTracker::disarm`]). Nothing is re-armed in between: a backend whose re-arm
    /// costs the program a fault on its next write to the page (mprotect, uffd: the page
    /// protected again; Dune: a cleared D bit write-protects KVM's shadow entry) leaves it
    /// alone, since the next `arm` starts from a clean state anyway. If it fails, the
    /// caller treats every armed page as dirty, as for `collect_and_rearm`.
    fn collect_and_disarm(&mut self, out: &mut DirtySet) -> Result<(), DirtyError> {
        let collected = self.collect_and_rearm(out);
        let disarmed = self.disarm();
        collected.and(disarmed)
    }

    /// The end of a cycle in two steps, for a backend whose disarm is costly and sound
    /// with the program running: append to `out` what
    /// [`DirtyTracker::collect_and_disarm`] would, but leave the pages tracked; the caller
    /// calls [`DirtyTracker::disarm`] once the world runs again (or `arm` to go on
    /// tracking). Meanwhile a write costs at most a fault that the kernel resolves alone.
    /// Returns false, having done nothing, for a backend without it (the default): the
    /// caller then uses `collect_and_disarm`. If it fails, the caller treats every armed
    /// page as dirty and disarms.
    fn collect_disarm_later(&mut self, out: &mut DirtySet) -> Result<bool, DirtyError> {
        let _ = out;
        Ok(false)
    }

    /// A pre-clean's collect and re-arm in one step, for a backend that can keep its
    /// state: append to `out` what [`DirtyTracker::collect_and_rearm`] would, then track
    /// `ranges` — each the range armed at the same index, or a longer one with the same
    /// start (the heap grew), its added pages clean. Returns false, having done nothing,
    /// when the backend cannot (the default) or the ranges do not fit; the caller then
    /// collects, disarms and arms. If it fails, the tracker is left for the caller to
    /// disarm, and every armed page counts as dirty.
    fn collect_and_grow(
        &mut self,
        out: &mut DirtySet,
        ranges: &[PageRange],
    ) -> Result<bool, DirtyError> {
        let _ = (out, ranges);
        Ok(false)
    }

    /// Counters so far.
    fn stats(&self) -> TrackerStats;

    /// True if `arm` must run while every mutator is stopped (the Dune backend: a vCPU
    /// running guest code keeps cached translations whose dirty bits were just cleared
    /// until it exits, so arming with threads running could lose their writes).
    fn arm_needs_stopped_world(&self) -> bool {
        false
    }
}

/// Open the backend `backend`, or say why it cannot be used here.
pub fn open(backend: Backend) -> Result<Box<dyn DirtyTracker>, DirtyError> {
    match backend {
        Backend::None => Ok(Box::new(none::NoneTracker::new())),
        Backend::Mprotect => Ok(Box::new(mprotect::MprotectTracker::new()?)),
        Backend::SoftDirty => Ok(Box::new(soft_dirty::SoftDirtyTracker::open()?)),
        Backend::Uffd => Ok(Box::new(uffd::UffdTracker::open()?)),
        #[cfg(feature = "dune")]
        Backend::Dune => Ok(Box::new(dune::DuneTracker::open()?)),
        #[cfg(not(feature = "dune"))]
        Backend::Dune => Err(DirtyError::Unsupported {
            backend: Backend::Dune,
            reason: "gc-core was built without its `dune` feature".to_owned(),
        }),
    }
}

/// Open the chosen backend. For `Auto`, the first supported one of [`Backend::ALL`] other
/// than `none` and `dune`, falling back to `none`; the reasons the better ones were
/// skipped are returned so the choice can be reported.
pub fn open_choice(
    choice: BackendChoice,
) -> Result<(Box<dyn DirtyTracker>, Vec<DirtyError>), DirtyError> {
    match choice {
        BackendChoice::Exactly(b) => open(b).map(|t| (t, Vec::new())),
        BackendChoice::Auto => {
            let mut skipped = Vec::new();
            for b in [Backend::Uffd, Backend::SoftDirty, Backend::Mprotect] {
                match open(b) {
                    Ok(t) => return Ok((t, skipped)),
                    Err(e) => skipped.push(e),
                }
            }
            open(Backend::None).map(|t| (t, skipped))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for b in Backend::ALL {
            assert_eq!(b.name().parse::<Backend>().unwrap(), b);
        }
        assert_eq!(
            "auto".parse::<BackendChoice>().unwrap(),
            BackendChoice::Auto
        );
        let err = "fast".parse::<Backend>().unwrap_err().to_string();
        assert!(
            err.contains("unknown dirty-tracking backend 'fast'"),
            "{err}"
        );
    }
}
