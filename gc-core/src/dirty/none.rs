//! Backend `none`: no tracking at all. Every armed page is reported dirty, so an
//! incremental cycle degenerates into a full rescan; the collector uses it for plain
//! stop-the-world collections. It is the baseline every other backend is compared with.

use super::{Backend, DirtyError, DirtySet, DirtyTracker, TrackerStats};
use crate::address::PageRange;
use crate::util::mmap::MmapVec;

/// The no-tracking baseline.
#[derive(Debug, Default)]
pub struct NoneTracker {
    armed: MmapVec<PageRange>,
    stats: TrackerStats,
}

impl NoneTracker {
    /// A tracker that reports every armed page.
    pub fn new() -> NoneTracker {
        NoneTracker::default()
    }
}

impl DirtyTracker for NoneTracker {
    fn backend(&self) -> Backend {
        Backend::None
    }

    fn sees_kernel_writes(&self) -> bool {
        true
    }

    fn arm(&mut self, ranges: &[PageRange]) -> Result<(), DirtyError> {
        self.armed.clear();
        for r in ranges {
            self.armed.push(*r).map_err(|source| DirtyError::Os {
                backend: Backend::None,
                op: "mmap",
                source,
            })?;
        }
        self.stats.arms += 1;
        Ok(())
    }

    fn collect_and_rearm(&mut self, out: &mut DirtySet) -> Result<(), DirtyError> {
        for r in self.armed.as_slice() {
            out.push_range(*r);
            self.stats.pages_reported += r.n_pages as u64;
        }
        self.stats.collections += 1;
        Ok(())
    }

    fn disarm(&mut self) -> Result<(), DirtyError> {
        self.armed.clear();
        Ok(())
    }

    fn stats(&self) -> TrackerStats {
        self.stats
    }
}
