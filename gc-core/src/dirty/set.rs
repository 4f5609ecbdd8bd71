//! `DirtySet`: the pages a tracker reported, as sorted, merged runs.

use crate::address::{Page, PageRange};
use crate::util::mmap::MmapVec;

/// A set of pages kept as runs. Backends push pages or runs in any order; `normalize`
/// sorts and merges them. Memory comes from its own mapping, so it can grow while the
/// world is stopped.
#[derive(Debug, Default)]
pub struct DirtySet {
    runs: MmapVec<PageRange>,
    normalized: bool,
}

impl DirtySet {
    /// An empty set.
    pub fn new() -> DirtySet {
        DirtySet {
            runs: MmapVec::new(),
            normalized: true,
        }
    }

    /// Forget every page.
    pub fn clear(&mut self) {
        self.runs.clear();
        self.normalized = true;
    }

    /// Add one page.
    pub fn push_page(&mut self, page: Page) {
        self.push_range(PageRange::new(page, 1));
    }

    /// Add a run of pages, merging with the last run when adjacent.
    pub fn push_range(&mut self, range: PageRange) {
        if range.n_pages == 0 {
            return;
        }
        if let Some(last) = self.runs.as_mut_slice().last_mut() {
            if last.end() == range.start.start() {
                last.n_pages += range.n_pages;
                return;
            }
            if range.start < last.start {
                self.normalized = false;
            }
        }
        self.runs
            .push(range)
            .expect("mapping memory for the dirty set failed");
    }

    /// Sort and merge the runs (idempotent).
    pub fn normalize(&mut self) {
        if self.normalized {
            return;
        }
        let runs = self.runs.as_mut_slice();
        runs.sort_unstable_by_key(|r| r.start);
        let mut w = 0usize;
        for r in 0..runs.len() {
            let cur = runs[r];
            if w > 0 && runs[w - 1].end() >= cur.start.start() {
                let prev = &mut runs[w - 1];
                let end = prev.end().max(cur.end());
                prev.n_pages = end.diff(prev.start.start()) >> crate::util::mmap::LOG_BYTES_IN_PAGE;
            } else {
                runs[w] = cur;
                w += 1;
            }
        }
        self.runs.truncate(w);
        self.normalized = true;
    }

    /// The runs (sorted and merged once `normalize` ran).
    pub fn runs(&self) -> &[PageRange] {
        self.runs.as_slice()
    }

    /// Total pages (counting a page twice if pushed twice and not normalized).
    pub fn n_pages(&self) -> usize {
        self.runs.as_slice().iter().map(|r| r.n_pages).sum()
    }

    /// True if `page` is in the set. Needs `normalize` first.
    pub fn contains(&self, page: Page) -> bool {
        debug_assert!(self.normalized);
        let runs = self.runs.as_slice();
        let i = runs.partition_point(|r| r.start <= page);
        i > 0 && runs[i - 1].contains(page)
    }

    /// Every page, one by one.
    pub fn pages(&self) -> impl Iterator<Item = Page> + '_ {
        self.runs.as_slice().iter().flat_map(|r| r.pages())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(n: usize) -> Page {
        Page::from_aligned(n << 12)
    }

    #[test]
    fn merges_and_sorts() {
        let mut s = DirtySet::new();
        s.push_page(p(10));
        s.push_page(p(11));
        s.push_page(p(3));
        s.push_range(PageRange::new(p(9), 3));
        s.normalize();
        assert_eq!(
            s.runs(),
            &[PageRange::new(p(3), 1), PageRange::new(p(9), 3)]
        );
        assert_eq!(s.n_pages(), 4);
        assert!(s.contains(p(11)) && s.contains(p(3)) && !s.contains(p(12)) && !s.contains(p(4)));
    }
}
