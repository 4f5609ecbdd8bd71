//! Collection, roots, finalizers and statistics on a [`Heap`].

use super::stats::{percentile, GcStats};
use crate::collector::Reason;
use crate::error::GcError;
use crate::finalize::{Finalizer, FinalizerFn, FinalizerOrder};
use crate::heap::Heap;
use std::sync::atomic::Ordering;
use std::time::Duration;

impl Heap {
    /// Collect now: a full stop-the-world collection, or the finish of the incremental
    /// cycle in progress. Finalizers found are queued, not run (see `run_finalizers`).
    /// Does nothing while collection is disabled (`disable`), as bdwgc's `GC_gcollect`.
    pub fn collect(&'static self) -> Result<(), GcError> {
        let g = self.lock();
        if g.gc.disabled > 0 {
            return Ok(());
        }
        let g = self.collect_locked(g, Reason::Explicit)?;
        drop(g);
        Ok(())
    }

    /// Let the collector do the work an allocation slow path would: a mark step of an
    /// incremental cycle, or a collection if the budget is spent.
    /// While the marker threads mark concurrently, there is no step to take here: the
    /// caller gives up its CPU to them instead.
    pub fn collect_a_little(&'static self) -> Result<(), GcError> {
        let g = self.lock();
        let g = self.poll_collector(g)?;
        let waiting = g.gc.cycle_marking_concurrently();
        drop(g);
        if waiting {
            std::thread::yield_now();
        }
        Ok(())
    }

    /// True while some marker thread holds marking work (a concurrent cycle's tracing in
    /// progress; false between jobs).
    pub fn markers_busy(&self) -> bool {
        !self.markers.idle()
    }

    /// True while an incremental cycle is marking.
    pub fn cycle_in_progress(&self) -> bool {
        self.lock().gc.cycle_active()
    }

    /// True when the incremental cycle in progress has marked everything reachable and
    /// will finish at the next allocation slow path (or `collect`).
    pub fn cycle_marking_done(&self) -> bool {
        self.lock().gc.cycle_marking_done()
    }

    /// Stop collections until a matching `enable` (nests). Allocation still works.
    pub fn disable(&self) {
        self.lock().gc.disabled += 1;
    }

    /// Undo one `disable`.
    pub fn enable(&self) {
        let mut g = self.lock();
        g.gc.disabled = g.gc.disabled.saturating_sub(1);
    }

    /// Scan `[start, end)` as a root from now on (memory the collector cannot see, e.g.
    /// from `mmap` or libc's `malloc`, that holds pointers to heap objects).
    pub fn add_roots(&self, start: usize, end: usize) -> Result<(), GcError> {
        if start > end {
            return Err(GcError::Config {
                key: "add_roots",
                value: format!("{start:#x}..{end:#x}"),
                expected: "start <= end",
            });
        }
        self.lock()
            .gc
            .added_roots
            .push((start, end))
            .map_err(|source| GcError::Os {
                op: "mapping the root list",
                source,
            })
    }

    /// Stop scanning every added root range that lies within `[start, end)`.
    pub fn remove_roots(&self, start: usize, end: usize) {
        let mut g = self.lock();
        let roots = &mut g.gc.added_roots;
        let mut w = 0;
        for r in 0..roots.len() {
            let (s, e) = roots.as_slice()[r];
            if !(s >= start && e <= end) {
                roots.as_mut_slice()[w] = (s, e);
                w += 1;
            }
        }
        roots.truncate(w);
    }

    /// Register `func(obj, data)` to run once `obj` (the start of an object of this heap)
    /// becomes unreachable; `None` removes a registration. Returns the previous one.
    pub fn register_finalizer(
        &self,
        obj: usize,
        func: Option<(FinalizerFn, usize)>,
        order: FinalizerOrder,
    ) -> Result<Option<(FinalizerFn, usize)>, GcError> {
        match self.find_object(obj) {
            Some(info) if info.base == obj => {}
            _ => {
                return Err(GcError::InvalidFree {
                    addr: obj,
                    reason: "finalizers need the start of a live heap object",
                })
            }
        }
        let new = func.map(|(func, data)| Finalizer {
            obj,
            func,
            data,
            order,
        });
        let old = self.lock().gc.finalizers.register(obj, new);
        Ok(old.map(|f| (f.func, f.data)))
    }

    /// Turn Java-style finalization (bdwgc's `GC_java_finalization`, on by default) on or
    /// off: whether a queued [`FinalizerOrder::BdwgcNoOrder`] object keeps what it
    /// references alive until its finalizer has run. Applies from the next collection.
    pub fn set_java_finalization(&self, on: bool) {
        self.lock().gc.java_finalization = on;
    }

    /// Whether Java-style finalization is on ([`Heap::set_java_finalization`]).
    pub fn java_finalization(&self) -> bool {
        self.lock().gc.java_finalization
    }

    /// Register a finalizer for a fresh object that has none yet (no search).
    pub(crate) fn register_new_finalizer(&self, f: Finalizer) {
        self.lock().gc.finalizers.push_new(f);
    }

    /// Number of finalizers queued and not yet run.
    pub fn pending_finalizers(&self) -> usize {
        self.lock().gc.finalizers.ready.len()
    }

    /// Run every queued finalizer on the calling thread (outside the heap lock). Returns
    /// how many ran. Objects become collectable again once their finalizer ran.
    pub fn run_finalizers(&self) -> usize {
        let mut ran = 0;
        loop {
            let next = {
                let mut g = self.lock();
                let f = g.gc.finalizers.ready.pop();
                if f.is_none() {
                    self.finalizers_pending.store(false, Ordering::Release);
                }
                f
            };
            let Some(f) = next else { return ran };
            // SAFETY: the registrant promised `func` may be called once with `obj` and
            // `data` when `obj` is unreachable; the object is still allocated (it was kept
            // alive while queued) and the queue hands each entry out exactly once.
            unsafe { (f.func)(f.obj, f.data) };
            ran += 1;
        }
    }

    /// True if finalizers are queued (cheap; no lock).
    pub fn has_pending_finalizers(&self) -> bool {
        self.finalizers_pending.load(Ordering::Acquire)
    }

    /// Block until finalizers are queued or `timeout` passes.
    pub fn wait_for_finalizers(&self, timeout: Duration) {
        let g = self
            .finalizer_lock
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if self.has_pending_finalizers() {
            return;
        }
        drop(
            self.finalizer_wakeup
                .wait_timeout(g, timeout)
                .unwrap_or_else(|e| e.into_inner()),
        );
    }

    /// A snapshot of the statistics.
    pub fn stats(&self) -> GcStats {
        // Allocate the copies before taking the lock: allocating under it could re-enter
        // the heap's slow path and deadlock.
        let (n_pauses, n_note) = {
            let g = self.lock();
            (g.gc.pauses.len(), g.gc.backend_note.len())
        };
        let mut pauses_ns: Vec<u64> = Vec::with_capacity(n_pauses + 64);
        let mut note_bytes: Vec<u8> = Vec::with_capacity(n_note + 256);
        let pool = &self.markers;
        let marker_scanned_bytes: Vec<u64> = pool
            .markers()
            .iter()
            .map(|m| m.scanned_bytes.load(Ordering::Relaxed))
            .collect();
        let steals = pool
            .markers()
            .iter()
            .map(|m| m.steals.load(Ordering::Relaxed))
            .sum();
        let markers_in_dune = pool.markers()[1..]
            .iter()
            .filter(|m| m.in_dune.load(Ordering::Acquire))
            .count();
        let g = self.lock();
        let c = g.gc.stats;
        let p = g.gc.pauses.as_slice();
        pauses_ns.extend_from_slice(&p[p.len().saturating_sub(pauses_ns.capacity())..]);
        let n = g.gc.backend_note.as_slice();
        note_bytes.extend_from_slice(&n[..n.len().min(note_bytes.capacity())]);
        let backend = g.gc.backend;
        let heap_bytes = Heap::heap_bytes(&g);
        drop(g);
        let mut sorted = pauses_ns;
        let p99 = percentile(&mut sorted, 99.0);
        let max = sorted.last().copied().unwrap_or(0);
        let total: u64 = sorted.iter().sum();
        GcStats {
            full_collections: c.full_collections,
            incremental_cycles: c.incremental_cycles,
            mark_steps: c.mark_steps,
            pauses: sorted.len() as u64,
            max_pause: Duration::from_nanos(max),
            p99_pause: Duration::from_nanos(p99),
            total_pause: Duration::from_nanos(total),
            gc_time: Duration::from_nanos(c.gc_time_ns),
            max_mark_step: Duration::from_nanos(c.max_step_ns),
            heap_bytes,
            live_bytes: c.live_bytes,
            bytes_allocated: c.bytes_allocated,
            bytes_swept: c.bytes_swept,
            bytes_freed_explicitly: c.bytes_freed_explicitly,
            dirty_pages: c.dirty_pages,
            last_dirty_pages: c.last_dirty_pages,
            unarmed_pages: c.unarmed_pages,
            threads_skipped: c.threads_skipped,
            finalizers_queued: c.finalizers_queued,
            backend,
            backend_note: String::from_utf8_lossy(&note_bytes).into_owned(),
            markers: pool.n(),
            marker_threads: pool.helpers(),
            markers_in_dune,
            marker_scanned_bytes,
            steals,
            mark_time: Duration::from_nanos(c.stw_mark_ns),
            concurrent_cycles: c.concurrent_cycles,
            precleans: c.precleans,
            abandoned_finishes: c.abandoned_finishes,
            longest_pause: c.longest_pause,
            longest_incremental_pause: c.longest_incremental_pause,
        }
    }

    /// Print the statistics to stderr if `DUNEGC_PRINT_STATS` (or the builder) asked for it.
    pub fn print_stats_if_enabled(&self) {
        if self.options.print_stats {
            eprintln!("{}", self.stats());
            eprintln!("{}", crate::util::ledger::collector_ledger());
            #[cfg(feature = "dune")]
            if dune_hw::dirty_view().is_some() {
                eprintln!("{}", dune_hw::ledger());
            }
        }
    }

    /// The start of the object containing `addr`, if it is allocated (bdwgc's `GC_base`).
    pub fn base_of(&self, addr: usize) -> Option<usize> {
        self.find_object(addr).map(|i| i.base)
    }

    /// Usable bytes of the object containing `addr` (bdwgc's `GC_size`).
    pub fn size_of(&self, addr: usize) -> Option<usize> {
        self.find_object(addr).map(|i| i.len_bytes)
    }

    /// Bytes of pages that hold objects.
    pub fn heap_size(&self) -> usize {
        Heap::heap_bytes(&self.lock())
    }

    /// Total collections so far.
    pub fn gc_count(&self) -> u64 {
        let g = self.lock();
        g.gc.stats.full_collections + g.gc.stats.incremental_cycles
    }
}
