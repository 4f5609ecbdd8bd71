//! TLB flush obligations. Under shadow paging (our PVM host) and on real hardware alike, a
//! cleared D bit or a removed mapping takes effect only after invlpg or a CR3 reload.

/// A pending flush of `[start, end)`. Perform it with [`crate::flush`] (or fold it into a
/// stop-the-world, where every vCPU flushes before it resumes).
#[must_use = "changed entries stay cached until the flush"]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TlbFlush {
    /// First byte.
    pub start: u64,
    /// End (exclusive).
    pub end: u64,
}

impl TlbFlush {
    /// A flush of `[start, end)`.
    pub fn range(start: u64, end: u64) -> TlbFlush {
        TlbFlush { start, end }
    }

    /// Pages covered.
    pub fn n_pages(&self) -> u64 {
        (self.end.saturating_sub(self.start)).div_ceil(4096)
    }

    /// Merges two obligations into one covering both.
    pub fn merge(self, other: TlbFlush) -> TlbFlush {
        TlbFlush {
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }
}

/// Above this many pages a full flush (CR3 reload) is cheaper than invlpg per page (ring-0).
pub const INVLPG_MAX_PAGES: u64 = 32;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_and_count() {
        let f = TlbFlush::range(0x1000, 0x3000).merge(TlbFlush::range(0x8000, 0x9000));
        assert_eq!(f, TlbFlush::range(0x1000, 0x9000));
        assert_eq!(f.n_pages(), 8);
    }
}
