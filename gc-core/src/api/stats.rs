//! Statistics: a snapshot of the collector's counters, with pause percentiles.

use crate::collector::PausePhases;
use crate::dirty::Backend;
use std::fmt;
use std::time::Duration;

/// A snapshot of a heap's statistics.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GcStats {
    /// Full stop-the-world collections.
    pub full_collections: u64,
    /// Incremental cycles finished.
    pub incremental_cycles: u64,
    /// Incremental mark steps.
    pub mark_steps: u64,
    /// Stop-the-world pauses recorded.
    pub pauses: u64,
    /// Longest pause.
    pub max_pause: Duration,
    /// 99th percentile pause.
    pub p99_pause: Duration,
    /// Sum of pauses.
    pub total_pause: Duration,
    /// Time in collector work (pauses plus incremental mark steps).
    pub gc_time: Duration,
    /// Longest incremental mark step (it delays only the allocating thread).
    pub max_mark_step: Duration,
    /// Bytes of pages holding objects now.
    pub heap_bytes: usize,
    /// Bytes in live objects after the last collection.
    pub live_bytes: u64,
    /// Bytes allocated so far (small objects as handed out, large ones in whole pages).
    pub bytes_allocated: u64,
    /// Bytes reclaimed by the collector.
    pub bytes_swept: u64,
    /// Bytes freed explicitly.
    pub bytes_freed_explicitly: u64,
    /// Dirty pages the tracker reported, over all cycles.
    pub dirty_pages: u64,
    /// Dirty pages in the last cycle.
    pub last_dirty_pages: u64,
    /// Pages rescanned because the tracker did not cover them.
    pub unarmed_pages: u64,
    /// Threads skipped by stop-the-world (they blocked the suspend signal).
    pub threads_skipped: u64,
    /// Finalizers queued so far.
    pub finalizers_queued: u64,
    /// The dirty-tracking backend in use (None until incremental mode first needs it).
    pub backend: Option<Backend>,
    /// Why that backend: skipped better ones, fallbacks.
    pub backend_note: String,
    /// Markers of stop-the-world marking, the collecting thread included.
    pub markers: usize,
    /// Helper marker threads running (markers - 1 once the first collection started them).
    pub marker_threads: usize,
    /// Helper marker threads running in Dune mode.
    pub markers_in_dune: usize,
    /// Bytes scanned by each marker (index 0: the collecting thread), over the heap's life.
    pub marker_scanned_bytes: Vec<u64>,
    /// Successful work steals between markers.
    pub steals: u64,
    /// Time in stop-the-world marking (roots, dirty rescans, the parallel drain).
    pub mark_time: Duration,
    /// Incremental cycles marked on the marker threads while the program ran.
    pub concurrent_cycles: u64,
    /// Pre-cleaning pauses of concurrent cycles (counted among the pauses).
    pub precleans: u64,
    /// Finishing pauses abandoned at the time limit, the cycle going on (bdwgc's
    /// abandoned world-stopped marking; counted among the pauses).
    pub abandoned_finishes: u64,
    /// What the longest pause consisted of.
    pub longest_pause: PausePhases,
    /// What the longest finishing pause of an incremental cycle consisted of.
    pub longest_incremental_pause: PausePhases,
}

impl GcStats {
    /// Total collections (full + incremental).
    pub fn collections(&self) -> u64 {
        self.full_collections + self.incremental_cycles
    }
}

/// The `p`-th percentile (0..=100) of `values` (sorted in place).
pub fn percentile(values: &mut [u64], p: f64) -> u64 {
    if values.is_empty() {
        return 0;
    }
    values.sort_unstable();
    let rank = ((p / 100.0) * (values.len() - 1) as f64).round() as usize;
    values[rank.min(values.len() - 1)]
}

impl fmt::Display for GcStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let backend = self.backend.map_or("not chosen yet", |b| b.name());
        writeln!(f, "dunegc statistics")?;
        writeln!(
            f,
            "  dirty tracking      {backend}{}",
            if self.backend_note.is_empty() {
                String::new()
            } else {
                format!(" ({})", self.backend_note)
            }
        )?;
        writeln!(
            f,
            "  collections         {} full, {} incremental ({} mark steps)",
            self.full_collections, self.incremental_cycles, self.mark_steps
        )?;
        writeln!(
            f,
            "  pauses              max {:?}, p99 {:?}, total {:?}",
            self.max_pause, self.p99_pause, self.total_pause
        )?;
        writeln!(
            f,
            "  collector time      {:?} (longest mark step {:?})",
            self.gc_time, self.max_mark_step
        )?;
        writeln!(
            f,
            "  heap                {} KiB in use, {} KiB live after last collection",
            self.heap_bytes >> 10,
            self.live_bytes >> 10
        )?;
        writeln!(
            f,
            "  bytes               {} allocated, {} swept, {} freed explicitly",
            self.bytes_allocated, self.bytes_swept, self.bytes_freed_explicitly
        )?;
        writeln!(
            f,
            "  marking             {} markers ({} threads, {} in Dune), {:?} stop-the-world, {} steals",
            self.markers, self.marker_threads, self.markers_in_dune, self.mark_time, self.steals
        )?;
        writeln!(
            f,
            "  concurrent marking  {} of {} incremental cycles, {} pre-cleaning pauses, {} finishes abandoned",
            self.concurrent_cycles, self.incremental_cycles, self.precleans, self.abandoned_finishes
        )?;
        writeln!(f, "  longest pause       {}", self.longest_pause)?;
        writeln!(
            f,
            "  longest inc. pause  {}",
            self.longest_incremental_pause
        )?;
        write!(
            f,
            "  dirty pages         {} reported ({} in the last cycle), {} unarmed",
            self.dirty_pages, self.last_dirty_pages, self.unarmed_pages
        )
    }
}

impl fmt::Display for PausePhases {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |ns: u64| ns as f64 / 1e6;
        write!(
            f,
            "{:.3} ms = stop {:.3} + dirty/clear {:.3} + roots {:.3} + drain {:.3} + finalize {:.3} + sweep {:.3} + resume {:.3}",
            ms(self.total_ns),
            ms(self.stop_ns),
            ms(self.dirty_ns),
            ms(self.roots_ns),
            ms(self.drain_ns),
            ms(self.finalize_ns),
            ms(self.sweep_ns),
            ms(self.resume_ns)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let mut v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&mut v, 99.0), 99);
        assert_eq!(percentile(&mut v, 100.0), 100);
        assert_eq!(percentile(&mut [], 99.0), 0);
    }
}
