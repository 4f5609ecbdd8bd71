//! What the collector keeps between collections ([`GcState`], held by the heap) and its
//! counters. Below the heap, which owns it; the collection itself is in [`crate::collector`].

use crate::dirty::{self, Backend, BackendChoice, DirtySet, DirtyTracker};
use crate::error::GcError;
use crate::finalize::{Finalizer, Finalizers};
use crate::heap::kind::N_SPACES;
use crate::mark::stack::MarkStack;
use crate::options::Options;
use crate::util::mmap::MmapVec;
use crate::world::ThreadRoots;

/// Why a collection ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Allocation since the last collection passed the budget.
    Threshold,
    /// The program asked (`collect()`).
    Explicit,
    /// An allocation found no space.
    OutOfSpace,
}

/// Raw counters, kept under the heap lock.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counters {
    /// Stop-the-world full collections.
    pub full_collections: u64,
    /// Incremental cycles finished.
    pub incremental_cycles: u64,
    /// Incremental mark steps taken.
    pub mark_steps: u64,
    /// Nanoseconds in collector work (pauses plus mark steps).
    pub gc_time_ns: u64,
    /// Longest mark step.
    pub max_step_ns: u64,
    /// Bytes ever allocated (as flushed from thread caches and large allocations).
    pub bytes_allocated: u64,
    /// Bytes reclaimed by sweeping.
    pub bytes_swept: u64,
    /// Bytes freed explicitly (large objects; small ones are counted per thread).
    pub bytes_freed_explicitly: u64,
    /// Bytes in live objects after the last collection.
    pub live_bytes: u64,
    /// Dirty pages reported, summed over finished incremental cycles.
    pub dirty_pages: u64,
    /// Dirty pages in the last cycle (its pre-cleans and its finish).
    pub last_dirty_pages: u64,
    /// Pages that counted as dirty because they were not armed.
    pub unarmed_pages: u64,
    /// Threads skipped by stop-the-world because they blocked the signal.
    pub threads_skipped: u64,
    /// Finalizers queued.
    pub finalizers_queued: u64,
    /// Nanoseconds of stop-the-world marking (roots, dirty rescans, drain).
    pub stw_mark_ns: u64,
    /// Incremental cycles whose marking ran on the marker threads concurrently with the
    /// program (mostly-concurrent marking).
    pub concurrent_cycles: u64,
    /// Pre-cleaning pauses of concurrent cycles (short stops that take the dirty pages
    /// so far and re-arm, so that the markers rescan them while the program runs).
    pub precleans: u64,
    /// Finishing pauses abandoned at the time limit (see
    /// [`crate::collector::hooks::Policy::max_prior_attempts`]); the cycle went on.
    pub abandoned_finishes: u64,
    /// What the longest pause so far consisted of.
    pub longest_pause: PausePhases,
    /// What the longest finishing pause of an incremental cycle consisted of.
    pub longest_incremental_pause: PausePhases,
}

/// Where the time of one stop-the-world pause went, in nanoseconds (the phases add up to
/// `total_ns`, give or take the clock reads).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PausePhases {
    /// The whole pause.
    pub total_ns: u64,
    /// Stopping the world (signalling every thread and waiting until each is parked),
    /// after refreshing the static roots.
    pub stop_ns: u64,
    /// Taking the dirty set and pushing the marked objects on dirty pages (incremental
    /// finish), or clearing the mark bits (full collection).
    pub dirty_ns: u64,
    /// Marking from the roots: static data, added roots, every thread's stack and
    /// registers, uncollectable objects, claimed cache slots.
    pub roots_ns: u64,
    /// Draining the mark stacks on every marker (the transitive closure).
    pub drain_ns: u64,
    /// Finalization and disappearing links (including their marking).
    pub finalize_ns: u64,
    /// Sweeping (`alloc &= mark` and span release).
    pub sweep_ns: u64,
    /// Restarting the world.
    pub resume_ns: u64,
    /// The pause finished an incremental cycle.
    pub incremental: bool,
}

/// The tracker and how it was chosen.
pub(super) enum TrackerState {
    /// Incremental mode is off.
    Off,
    /// Not opened yet (it is opened outside the heap lock, on first need).
    Pending(BackendChoice),
    /// Open and usable.
    Open(Box<dyn DirtyTracker>),
}

/// An incremental cycle in progress.
pub(super) struct Cycle {
    /// Per space: pages armed (the used prefix when the cycle started), or None if the
    /// space was not armed.
    pub(super) armed: [Option<usize>; N_SPACES],
    /// bytes_since_gc when the last step ran.
    pub(super) bytes_at_last_step: isize,
    /// The mark stack ran empty; the next poll finishes the cycle.
    pub(super) marking_done: bool,
    /// The marker threads trace this cycle while the program runs (its roots went to
    /// them through [`crate::mark::pool::MarkerPool::seed`]); no mark steps are taken.
    pub(super) concurrent: bool,
    /// Pre-cleaning rounds done (see `Heap::preclean`).
    pub(super) precleans: u32,
    /// Finishing pauses of this cycle abandoned at the time limit.
    pub(super) abandoned: u32,
}

/// Everything the collector keeps between collections.
pub struct GcState {
    /// Counters.
    pub stats: Counters,
    /// Every stop-the-world pause, in nanoseconds.
    pub pauses: MmapVec<u64>,
    /// Explicitly added root ranges.
    pub added_roots: MmapVec<(usize, usize)>,
    /// Finalizer registrations and queue.
    pub finalizers: Finalizers,
    /// Allocation allowed between collections.
    pub budget_bytes: usize,
    /// Nested `disable()` calls.
    pub disabled: u32,
    /// Java-style finalization (bdwgc's `GC_java_finalization`): a queued
    /// [`crate::FinalizerOrder::BdwgcNoOrder`] object keeps what it references alive.
    pub java_finalization: bool,
    /// Where the C ABI keeps bdwgc's exported `GC_java_finalization` variable: when set,
    /// read at each collection instead of `java_finalization` (so a program that writes
    /// the variable directly is obeyed, as bdwgc reads it in `GC_finalize`).
    pub java_flag: Option<&'static std::sync::atomic::AtomicI32>,
    /// The backend in use, once known, and why (for reports).
    pub backend: Option<Backend>,
    /// Why the backend is what it is (auto's skipped backends, a fallback).
    pub backend_note: MmapVec<u8>,
    /// An arming failure is already in the note.
    pub(super) arm_failure_noted: bool,
    /// The finish left the tracker armed, to be disarmed once the world runs again
    /// ([`crate::dirty::DirtyTracker::collect_disarm_later`]).
    pub(super) disarm_after_resume: bool,
    pub(super) mark_stack: MarkStack,
    pub(crate) statics: MmapVec<(usize, usize)>,
    pub(super) tracker: TrackerState,
    pub(super) cycle: Option<Cycle>,
    pub(super) dirty: DirtySet,
    pub(super) thread_sp: MmapVec<(usize, usize)>,
    pub(super) thread_roots: MmapVec<ThreadRoots>,
    pub(super) candidates: MmapVec<Finalizer>,
}

// SAFETY: the tracker is Send; the rest is plain data and owned mappings.
unsafe impl Send for GcState {}

impl GcState {
    /// Incremental mode is on (its tracker pending or open), as `Heap::is_incremental`.
    pub(crate) fn incremental_mode(&self) -> bool {
        !matches!(self.tracker, TrackerState::Off)
    }

    /// Collector state for a heap built with `options`.
    pub(crate) fn new(options: &Options) -> Result<GcState, GcError> {
        let tracker = match (options.incremental, options.dirty) {
            (false, _) | (true, BackendChoice::Exactly(Backend::None)) => TrackerState::Off,
            (true, choice) => TrackerState::Pending(choice),
        };
        Ok(GcState {
            stats: Counters::default(),
            pauses: MmapVec::new(),
            added_roots: MmapVec::new(),
            finalizers: Finalizers::default(),
            budget_bytes: options.initial_heap_bytes,
            disabled: 0,
            java_finalization: true,
            java_flag: None,
            backend: matches!(tracker, TrackerState::Off).then_some(Backend::None),
            backend_note: MmapVec::new(),
            arm_failure_noted: false,
            disarm_after_resume: false,
            mark_stack: MarkStack::new(),
            statics: MmapVec::new(),
            tracker,
            cycle: None,
            dirty: DirtySet::new(),
            thread_sp: MmapVec::new(),
            thread_roots: MmapVec::new(),
            candidates: MmapVec::new(),
        })
    }

    /// True if a dirty tracker is open (incremental cycles can start).
    pub fn tracker_open(&self) -> bool {
        matches!(self.tracker, TrackerState::Open(_))
    }

    /// True while an incremental cycle is marking.
    pub fn cycle_active(&self) -> bool {
        self.cycle.is_some()
    }

    /// True while the marker threads mark an incremental cycle concurrently and have not
    /// been seen done yet.
    pub fn cycle_marking_concurrently(&self) -> bool {
        self.cycle
            .as_ref()
            .is_some_and(|c| c.concurrent && !c.marking_done)
    }

    /// True when an incremental cycle has marked everything it can reach and waits to be
    /// finished.
    pub fn cycle_marking_done(&self) -> bool {
        self.cycle.as_ref().is_some_and(|c| c.marking_done)
    }

    /// Use the opened tracker `t`; `skipped` are the reasons better backends were passed
    /// over (kept in the report). The backend `none` means no incremental marking; its
    /// tracker is handed back so the caller drops it after releasing the heap lock
    /// (freeing may take the lock).
    #[must_use = "drop the returned tracker outside the heap lock"]
    pub(super) fn install(
        &mut self,
        t: Box<dyn DirtyTracker>,
        skipped: &[dirty::DirtyError],
    ) -> Option<Box<dyn DirtyTracker>> {
        self.backend = Some(t.backend());
        for e in skipped {
            self.note(e);
        }
        if t.backend() == Backend::None {
            self.tracker = TrackerState::Off;
            Some(t)
        } else {
            self.tracker = TrackerState::Open(t);
            None
        }
    }

    /// Append to the backend note without allocating (this runs under the heap lock,
    /// where allocating could re-enter the heap).
    pub(super) fn note(&mut self, text: &dyn std::fmt::Display) {
        struct W<'a>(&'a mut MmapVec<u8>);
        impl std::fmt::Write for W<'_> {
            fn write_str(&mut self, s: &str) -> std::fmt::Result {
                for b in s.bytes() {
                    self.0.push(b).map_err(|_| std::fmt::Error)?;
                }
                Ok(())
            }
        }
        let mut w = W(&mut self.backend_note);
        if !w.0.is_empty() {
            // A failed mapping only truncates the note; reports are best effort.
            let _ = std::fmt::Write::write_str(&mut w, "; ");
        }
        let _ = std::fmt::write(&mut w, format_args!("{text}"));
    }
}
