//! Collections: the policy that triggers them, full stop-the-world collections, and
//! incremental (mostly-parallel) cycles driven by a `DirtyTracker`.
//!
//! Incremental cycle (Boehm–Demers–Shenker, mostly concurrent as in the Dune paper's
//! collector and bdwgc's parallel incremental mode):
//! 1. **Start** (no pause, except the short stop some trackers need to arm): arm the
//!    tracker over the traced spaces, clear mark bits, mark from static data, added roots
//!    and the allocating thread's stack.
//! 2. **Concurrent marking**: with helper markers (`markers > 1`, the default on a
//!    multi-core machine) the grey objects go to them ([`crate::mark::pool::MarkerPool::seed`])
//!    and they trace — atomic mark bits, work stealing — while every mutator runs; the
//!    allocation slow path joins them for a budgeted step as marker 0
//!    ([`crate::mark::pool::MarkerPool::help`]: on a loaded machine the helpers may get
//!    little CPU, and the program must not outrun them) and notices when they are done.
//!    Without helpers (or with
//!    [`crate::Options::concurrent_marking`] off) each allocation slow path takes a
//!    bounded **mark step** instead.
//!    Objects allocated meanwhile are **allocated black** (marked as their window is
//!    claimed), so the finish rescans them page by page instead of tracing them.
//! 3. **Pre-clean** (a short stop, `precleans` rounds, default 1): when the markers run
//!    out of work, take the pages dirtied so far (and those added since arming) and arm
//!    the current extent afresh; with the program running again, the marked objects on
//!    those pages go to the markers. The finish then rescans only what was written after
//!    the pre-clean.
//! 4. **Finish** (stop-the-world): take the dirty pages, rescan the marked objects on them
//!    plus every root, drain on every marker, finalize, sweep. Spaces the tracker did not
//!    arm (and pages added to a space after arming) count as dirty in full. Helpers still
//!    tracing from step 2 or 3 simply go on inside this drain (one busy count terminates both),
//!    so the pause never waits for them to stop; until the drain ends, this thread sets
//!    mark bits with atomic ORs too. A finish the allocation slow path started may be
//!    **abandoned** at the policy's time limit (bdwgc's `max_prior_attempts`, at most that
//!    many times per cycle): the dirty pages it took are queued as grey work, the tracker
//!    is armed afresh as in a pre-clean, and the cycle goes back to step 2 or 3 with
//!    whatever marking is left (`Heap::abandon_finish`).
//!
//! **Why concurrent marking misses no live object.** Let `O` be live at the finish (with
//! the world stopped). Follow a path to `O` from a root; every edge `A → B` on it is a
//! word in `A` (or in a root) at the finish. If the word is in a root, the finish scans
//! every root (all stacks, registers, TLS, static data, added roots, claimed cache slots)
//! and marks `B`. If it is in a heap object `A` that gets marked, then either the word
//! was last written *before* the arm — so it was there whenever `A` was scanned (every
//! scan of this cycle happens after the arm), and `B` was marked — or it was written
//! *after* the arm: every such store lands on a page the tracker reports (program stores
//! fault or set the hardware dirty bit; kernel writes are seen or the space is not armed
//! and counts as dirty in full; pages added after arming count as dirty), and the finish
//! rescans every marked object on a reported page with the world stopped, marking `B`.
//! A pre-clean splits "after the arm" in two: a word written between the arm and the
//! pre-clean is on a page the pre-clean takes, and the markers scan the marked objects
//! there *after* that pause, so they see the word; a word written after the pre-clean
//! lands on a page the re-armed tracker reports at the finish (pages added after the
//! re-arm count as dirty in full; if the re-arm fails, every page does). By induction
//! along the path, `O` is marked. Objects allocated during the cycle need no special
//! case either way: a pointer to one exists only in a root or in a word written after
//! the arm. Allocated white, they are reached by the argument above and traced; allocated
//! black, they are marked already, and any pointer they hold was written after the arm,
//! so their page is rescanned (a white object whose black bit was lost to a concurrent
//! plain store of a mark step is just white again: still sound). Mark bits are set by atomic OR whenever two
//! markers may run at once, so no concurrent marker loses another's bit. Concurrent
//! markers only read the heap, so a torn read (a word being written, span metadata being
//! set up under the heap lock) can only add marks or miss an edge that was written after
//! the arm — which the rescan covers.
//!
//! Sweeping is a bitmap operation (`alloc &= mark`) per span, split in two
//! (`Heap::start_sweep`, `Heap::finish_sweep`): in the pause, only the spans some
//! thread cache owns (their threads set alloc bits without the heap lock once they run);
//! the rest right after the world restarts, with the heap lock still held, so it adds GC
//! time but not pause. Every span is swept before the collection returns, so before the
//! next cycle's start clears mark bits; meanwhile `Heap::find_object` counts the dead
//! objects of unswept spans (per-span sweep epoch) as free already, and finalization,
//! disappearing links, disclaim procedures and the sweep-visit hook all ran before (in
//! the pause, as before). Statistics are published by `finish_sweep`, under the lock
//! every statistics query takes. Free slots are reused lazily by the allocation cursors. After the world restarts, free
//! page runs that stayed free for `RELEASE_AFTER_COLLECTIONS` (2) collections give their
//! host pages back to the kernel (`PageSpace::release_idle`); page runs are reused lowest
//! address first, so the heap packs down and its top goes idle.

use crate::address::{Page, PageRange};
use crate::dirty::{self, Backend, BackendChoice, DirtyError};
use crate::error::GcError;
use crate::finalize::{FinalizerOrder, Finalizers};
use crate::heap::kind::{ObjectKind, SpaceId, N_SPACES};
use crate::heap::span::SpanState;
use crate::heap::{Heap, HeapInner};
use crate::mark::{MarkStack, Parallel};
use crate::roots;
use crate::util::eprintln_raw;
use crate::util::mmap::{MmapVec, BYTES_IN_PAGE, LOG_BYTES_IN_PAGE};
use crate::world::{self, StoppedWorld, ThreadRoots};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

pub(crate) mod disclaim;
pub(crate) mod hooks;
pub(crate) mod state;
mod unreachable;
mod visit;

use hooks::CollectionEvent;
pub use state::{Counters, GcState, PausePhases, Reason};
use state::{Cycle, TrackerState};

type Guard = crate::heap::HeapGuard<'static>;

/// Set while some thread opens a tracker with the heap lock released, so that
/// allocations made while opening do not try to open it again.
static OPENING_TRACKER: AtomicBool = AtomicBool::new(false);

/// Collections a free run must stay free before its host pages are given back to the
/// kernel (`MADV_DONTNEED`, see `PageSpace::release_idle`): runs freed and reused from one
/// collection to the next keep their pages.
const RELEASE_AFTER_COLLECTIONS: u32 = 2;

/// A sweep split in two (see `Heap::start_sweep`): its epoch, the figures so far, and
/// the spans left for after the pause.
struct Sweep {
    epoch: u32,
    live_bytes: u64,
    swept: u64,
    deferred: MmapVec<usize>,
}

fn elapsed_ns(t: Instant) -> u64 {
    t.elapsed().as_nanos() as u64
}

impl Heap {
    /// Called from allocation slow paths with the lock held: run a mark step, finish a
    /// cycle, start one, or collect, as the policy says.
    pub(crate) fn poll_collector(&'static self, mut g: Guard) -> Result<Guard, GcError> {
        if g.gc.disabled > 0 {
            return Ok(g);
        }
        let policy = hooks::policy_hooks().map(|h| (h, (h.policy)()));
        if policy.is_some_and(|(_, p)| !p.automatic) {
            return Ok(g);
        }
        let budget = match policy {
            Some((_, p)) => self.budget_bytes(g.gc.stats.live_bytes, &p) as isize,
            None => g.gc.budget_bytes as isize,
        };
        let may_start = || policy.is_none_or(|(h, _)| (h.may_start)());
        let managed = policy.map_or(0, |(_, p)| p.explicitly_managed_bytes);
        let step_min = match policy.map_or(0, |(_, p)| p.mark_step_bytes) {
            0 => self.options.mark_step_bytes,
            n => n,
        };
        let time_limit = policy.and_then(|(_, p)| p.mark_step_time_limit);
        let counted = g.bytes_since_gc - managed;
        if g.gc.cycle.is_some() {
            if counted >= 2 * budget && may_start() {
                return self.collect_locked(g, Reason::Threshold);
            }
            if g.gc.cycle.as_ref().is_some_and(|c| c.marking_done) && may_start() {
                return self.collect_locked(g, Reason::Threshold);
            }
            if g.gc.cycle.as_ref().is_some_and(|c| c.concurrent) {
                // The marker threads trace while the mutators run: help them, and notice
                // when they are done (then pre-clean, or finish at the next poll).
                if !self.markers.idle() {
                    // Help: on a loaded machine the marker threads may get little CPU,
                    // and the allocating thread must not outrun them (the finish would
                    // then trace the rest in the pause). The same budget as a mark step.
                    let now = g.bytes_since_gc;
                    let cycle = g.gc.cycle.as_mut().expect("checked");
                    let allocated = (now - cycle.bytes_at_last_step).max(0) as usize;
                    cycle.bytes_at_last_step = now;
                    let step = (allocated * self.options.mark_rate).max(step_min);
                    let t0 = Instant::now();
                    if self.help_markers(step) {
                        let ns = elapsed_ns(t0);
                        let st = &mut g.gc.stats;
                        st.mark_steps += 1;
                        st.gc_time_ns += ns;
                        st.max_step_ns = st.max_step_ns.max(ns);
                    }
                }
                if self.markers.idle() {
                    let precleans = g.gc.cycle.as_ref().map_or(0, |c| c.precleans);
                    if precleans < self.options.precleans {
                        return self.preclean(g);
                    }
                    if let Some(c) = g.gc.cycle.as_mut() {
                        c.marking_done = true;
                    }
                }
                return Ok(g);
            }
            let now = g.bytes_since_gc;
            let cycle = g.gc.cycle.as_mut().expect("checked");
            let allocated = (now - cycle.bytes_at_last_step).max(0) as usize;
            cycle.bytes_at_last_step = now;
            // Scan mark_rate bytes for every byte allocated, at least mark_step_bytes.
            let step = (allocated * self.options.mark_rate).max(step_min);
            let t0 = Instant::now();
            let inner = &mut *g;
            let done = self.drain_timed(&mut inner.gc.mark_stack, step, t0, time_limit);
            let ns = elapsed_ns(t0);
            inner.gc.stats.mark_steps += 1;
            inner.gc.stats.gc_time_ns += ns;
            inner.gc.stats.max_step_ns = inner.gc.stats.max_step_ns.max(ns);
            if done {
                // Finish at the next poll: the mutators run a little longer with every
                // reachable object marked, which costs nothing and lets tests exercise
                // writes into fully-scanned objects.
                if let Some(c) = inner.gc.cycle.as_mut() {
                    c.marking_done = true;
                }
            }
            return Ok(g);
        }
        if counted < budget || !may_start() {
            return Ok(g);
        }
        g = self.ensure_tracker(g);
        if matches!(g.gc.tracker, TrackerState::Open(_)) && g.gc.cycle.is_none() {
            return self.start_cycle(g);
        }
        if g.bytes_since_gc - managed < budget || g.gc.cycle.is_some() {
            return Ok(g);
        }
        self.collect_locked(g, Reason::Threshold)
    }

    /// Open the tracker if it is still pending, releasing the lock while doing so (opening
    /// may allocate). On failure with `auto`-free selection the heap reports the reason and
    /// runs full collections.
    fn ensure_tracker(&'static self, g: Guard) -> Guard {
        let TrackerState::Pending(choice) = g.gc.tracker else {
            return g;
        };
        if OPENING_TRACKER.swap(true, Ordering::AcqRel) {
            return g;
        }
        drop(g);
        let mut opened = dirty::open_choice(choice);
        if let (Err(e), BackendChoice::Exactly(Backend::Dune)) = (&opened, choice) {
            // Dune mode unavailable (no /dev/kvm, or the program does not run in Dune):
            // say so and use the best other backend, as the environment asked for Dune
            // only because it is the best. (A builder asking for Dune gets the error.)
            eprintln_raw(&format!(
                "dunegc: {e}; using the best other dirty-tracking backend"
            ));
            let reason = match e {
                DirtyError::Unsupported { reason, .. } => reason.clone(),
                other => other.to_string(),
            };
            opened = dirty::open_choice(BackendChoice::Auto).map(|(t, mut skipped)| {
                skipped.insert(
                    0,
                    DirtyError::Unsupported {
                        backend: Backend::Dune,
                        reason,
                    },
                );
                (t, skipped)
            });
        }
        let mut g = self.lock();
        OPENING_TRACKER.store(false, Ordering::Release);
        if !matches!(g.gc.tracker, TrackerState::Pending(_)) {
            drop(g);
            drop(opened);
            return self.lock();
        }
        // Whatever heap memory the results own is dropped after the lock is released:
        // freeing can take the heap lock.
        let leftovers = match opened {
            Ok((t, skipped)) => {
                let unused = g.gc.install(t, &skipped);
                Some((skipped, unused))
            }
            Err(e) => {
                g.gc.note(&e);
                g.gc.note(&"falling back to full stop-the-world collections (backend none)");
                g.gc.backend = Some(Backend::None);
                g.gc.tracker = TrackerState::Off;
                drop(g);
                eprintln_raw(&format!(
                    "dunegc: {e}; falling back to full stop-the-world collections"
                ));
                return self.lock();
            }
        };
        drop(g);
        drop(leftovers);
        self.lock()
    }

    /// `DUNEGC_DIRTY=dune`: put the process into Dune mode process-wide, once, at the first
    /// allocation slow path of the global heap — early in the program's start-up, when it
    /// has no other thread yet — so that every thread runs in Dune and the Dune tracker
    /// can open. If that fails (no /dev/kvm, threads already running) the reason is
    /// printed and the tracker falls back to the best other backend when first needed.
    #[cold]
    pub(crate) fn enter_dune_for_env(&'static self) {
        if self.lock_held_here() || !self.enter_dune_pending.swap(false, Ordering::AcqRel) {
            return;
        }
        #[cfg(feature = "dune")]
        if let Err(e) = crate::dirty::dune::enter_process() {
            eprintln_raw(&format!("dunegc: DUNEGC_DIRTY=dune: {e}"));
        }
    }

    /// Switch incremental marking on with `choice` (bdwgc's `GC_enable_incremental`). The
    /// tracker is opened now; an unsupported named backend is an error and changes nothing.
    /// Returns the backend in use. Turning it on twice keeps the first tracker.
    pub fn enable_incremental(&'static self, choice: BackendChoice) -> Result<Backend, GcError> {
        {
            let mut g = self.lock();
            match g.gc.tracker {
                TrackerState::Open(ref t) => return Ok(t.backend()),
                TrackerState::Pending(_) => {}
                TrackerState::Off => {
                    if choice == BackendChoice::Exactly(Backend::None) {
                        return Ok(Backend::None);
                    }
                    g.gc.tracker = TrackerState::Pending(choice);
                }
            }
        }
        if let Err(e) = self.open_tracker_now() {
            let mut g = self.lock();
            if matches!(g.gc.tracker, TrackerState::Pending(_)) {
                g.gc.tracker = TrackerState::Off;
            }
            return Err(e);
        }
        Ok(self.lock().gc.backend.unwrap_or(Backend::None))
    }

    /// True if incremental marking is on (a tracker is open or will be opened on need).
    pub fn is_incremental(&self) -> bool {
        !matches!(self.lock().gc.tracker, TrackerState::Off)
    }

    /// Open the dirty tracker now (outside any allocation), returning its error.
    pub(crate) fn open_tracker_now(&'static self) -> Result<(), GcError> {
        let g = self.lock();
        let TrackerState::Pending(choice) = g.gc.tracker else {
            return Ok(());
        };
        drop(g);
        let (t, skipped) = dirty::open_choice(choice)?;
        let mut g = self.lock();
        let unused = g.gc.install(t, &skipped);
        drop(g);
        drop(unused);
        drop(skipped);
        Ok(())
    }

    /// Run a whole collection now (finishing a cycle in progress).
    pub(crate) fn collect_locked(
        &'static self,
        mut g: Guard,
        reason: Reason,
    ) -> Result<Guard, GcError> {
        // Marker threads start at the first collection, before the world stops (creating
        // a thread takes glibc locks a stopped thread might hold), with the heap lock
        // released (in Dune, creating a thread allocates — dune-hw's thread start — which
        // under `GcAllocator` is this heap) and collections held off meanwhile (see
        // `MarkerPool::being_created_by_other`). The state is looked at afresh below:
        // another thread may have collected before this one got the lock back.
        loop {
            if self.markers.being_created_by_other() {
                drop(g);
                self.markers.wait_created();
                g = self.lock();
                continue;
            }
            if self.markers.begin_creation() {
                g.gc.disabled += 1;
                drop(g);
                let heap_addr = self as *const Heap as usize;
                let started = self.markers.create(Heap::marker_job, heap_addr);
                g = self.lock();
                g.gc.disabled -= 1;
                if let Err(e) = started {
                    g.gc.note(&e);
                }
                continue;
            }
            break;
        }
        let finish_limit = self.finish_time_limit(&g, reason);
        let t0 = Instant::now();
        if g.gc.cycle.is_none() {
            // A new collection (not the finish of an incremental cycle).
            hooks::run_collection_start_hook();
        }
        let markers = self.markers.n();
        let event = |e, c: &state::Counters| hooks::run_collection_event(e, c, markers);
        event(CollectionEvent::Start, &g.gc.stats);
        roots::statics::refresh(&mut g.gc.statics);
        event(CollectionEvent::PreStopWorld, &g.gc.stats);
        let world = world::stop().map_err(|source| GcError::Os {
            op: "stopping the world",
            source,
        })?;
        // Every mutator is stopped: objects allocated after this pause start white.
        self.allocate_black.store(false, Ordering::SeqCst);
        let inner = &mut *g;
        event(CollectionEvent::PostStopWorld, &inner.gc.stats);
        event(CollectionEvent::MarkStart, &inner.gc.stats);
        inner.gc.stats.threads_skipped += world.skipped as u64;
        let incremental = inner.gc.cycle.is_some();
        // Marker threads may still be tracing this cycle concurrently: until the drain
        // below returns, every mark bit this thread sets is set with an atomic OR.
        let concurrent = inner.gc.cycle.as_ref().is_some_and(|c| c.concurrent);
        let mut phases = PausePhases {
            stop_ns: elapsed_ns(t0),
            ..PausePhases::default()
        };
        let t_mark = Instant::now();
        if incremental {
            self.rescan_dirty(inner);
        } else {
            self.clear_marks(inner);
            inner.gc.mark_stack.clear();
        }
        phases.dirty_ns = elapsed_ns(t_mark);
        let t_roots = Instant::now();
        if concurrent {
            roots::stacks::with_spilled_registers(|sp| {
                self.mark_roots::<true>(inner, Some(&world), sp)
            });
        } else {
            roots::stacks::with_spilled_registers(|sp| {
                self.mark_roots::<false>(inner, Some(&world), sp)
            });
        }
        self.mark_pending_slots(inner);
        phases.roots_ns = elapsed_ns(t_roots);
        let t_drain = Instant::now();
        if let Some(limit) = finish_limit {
            if !self.mark_within(inner, concurrent, t0, limit) {
                inner.gc.stats.stw_mark_ns += elapsed_ns(t_mark);
                self.abandon_finish(inner, world, t0);
                return Ok(g);
            }
        }
        self.drain_all(&mut inner.gc.mark_stack);
        phases.drain_ns = elapsed_ns(t_drain);
        inner.gc.stats.stw_mark_ns += elapsed_ns(t_mark);
        event(CollectionEvent::MarkEnd, &inner.gc.stats);
        let t_final = Instant::now();
        self.decide_dead_links(false);
        self.find_finalizable(inner);
        self.decide_dead_links(true);
        inner.gc.finalizers.reindex();
        self.disclaim_before_sweep(inner);
        if let Some(hook) = hooks::sweep_visit_hook() {
            self.visit_before_sweep(inner, hook);
        }
        phases.finalize_ns = elapsed_ns(t_final);
        event(CollectionEvent::ReclaimStart, &inner.gc.stats);
        let t_sweep = Instant::now();
        let sweep = self.start_sweep(inner);
        // As bdwgc's (lazy) reclaim: the event marks the end of the pause's part.
        event(CollectionEvent::ReclaimEnd, &inner.gc.stats);
        // An incremental cycle's tracking stopped in `rescan_dirty` (collect_and_disarm):
        // between cycles nobody reads the dirty state, and pages left protected (or, for
        // Dune, D bits left cleared) would make the program take write faults for nothing.
        self.clear_dead_links();
        phases.sweep_ns = elapsed_ns(t_sweep);
        event(CollectionEvent::PreStartWorld, &inner.gc.stats);
        let t_resume = Instant::now();
        drop(world);
        phases.resume_ns = elapsed_ns(t_resume);
        event(CollectionEvent::PostStartWorld, &inner.gc.stats);
        let ns = elapsed_ns(t0);
        phases.total_ns = ns;
        phases.incremental = incremental;
        // The pause ends here; the tracker's deferred disarm is GC time.
        self.disarm_after_resume(inner);
        // The rest of the sweep, with the program running (the heap lock still held):
        // GC time, but not pause.
        let t_lazy = Instant::now();
        self.finish_sweep(inner, sweep);
        inner.gc.stats.gc_time_ns += elapsed_ns(t_lazy);
        // With the world running again (the heap lock still held): give back the pages of
        // runs free for a while. Not in the pause, but counted as GC time.
        let t_release = Instant::now();
        for s in inner.spaces.iter_mut() {
            s.release_idle(&self.pages, RELEASE_AFTER_COLLECTIONS);
        }
        hooks::report_heap_size(Self::heap_bytes(inner));
        inner.gc.stats.gc_time_ns += elapsed_ns(t_release);
        let s = &mut inner.gc.stats;
        if ns >= s.longest_pause.total_ns {
            s.longest_pause = phases;
        }
        if incremental && ns >= s.longest_incremental_pause.total_ns {
            s.longest_incremental_pause = phases;
        }
        if incremental {
            s.incremental_cycles += 1;
        } else {
            s.full_collections += 1;
        }
        s.gc_time_ns += ns;
        if inner.gc.pauses.push(ns).is_err() {
            // Out of memory for the pause log: keep the maximum in the counters instead.
            inner.gc.stats.max_step_ns = inner.gc.stats.max_step_ns.max(ns);
        }
        inner.gc.cycle = None;
        let policy = hooks::policy_hooks().map(|h| (h.policy)());
        let policy = policy.unwrap_or(hooks::Policy::DEFAULT);
        inner.gc.budget_bytes = self.budget_bytes(inner.gc.stats.live_bytes, &policy);
        inner.bytes_since_gc = 0;
        if !inner.gc.finalizers.ready.is_empty() {
            self.finalizers_pending.store(true, Ordering::Release);
            self.finalizer_wakeup.notify_all();
        }
        event(CollectionEvent::End, &inner.gc.stats);
        Ok(g)
    }

    /// The time limit of this finishing pause if it may be abandoned (bdwgc's
    /// `max_prior_attempts`, see [`hooks::Policy::max_prior_attempts`]): a finish the
    /// allocation slow path started, with a time limit set, and fewer abandoned finishes
    /// in this cycle than the policy allows.
    fn finish_time_limit(&self, inner: &HeapInner, reason: Reason) -> Option<std::time::Duration> {
        let cycle = inner.gc.cycle.as_ref()?;
        if reason != Reason::Threshold {
            return None;
        }
        let policy = hooks::policy_hooks().map(|h| (h.policy)())?;
        if cycle.abandoned >= policy.max_prior_attempts {
            return None;
        }
        policy.mark_step_time_limit
    }

    /// Mark in a finishing pause until no work is left (true) or `limit` has passed since
    /// `t0` (false). What is left stays queued: in the mark stack, or, in a concurrent
    /// cycle, with the marker threads, which may still be tracing (so this thread's mark
    /// bits are set atomically, and it helps them in bounded drains).
    fn mark_within(
        &self,
        inner: &mut HeapInner,
        concurrent: bool,
        t0: Instant,
        limit: std::time::Duration,
    ) -> bool {
        if !concurrent {
            return self.drain_timed(&mut inner.gc.mark_stack, usize::MAX, t0, Some(limit));
        }
        self.markers.hand_over(&mut inner.gc.mark_stack);
        loop {
            if self.markers.idle() {
                return true;
            }
            if t0.elapsed() >= limit {
                return false;
            }
            if !self.help_markers(16 << 10) {
                // The helpers hold the work: let them run.
                std::thread::yield_now();
            }
        }
    }

    /// Join a concurrent job for one drain of about `step` bytes as marker 0
    /// ([`crate::mark::pool::MarkerPool::help`]; the heap lock is held), publishing work
    /// for hungry markers on the way. False if there was no work to take.
    fn help_markers(&self, step: usize) -> bool {
        let mut scanned = 0;
        let helped = self.markers.help(&mut |private| {
            scanned = self
                .drain_with::<true>(private, step, &mut |s| {
                    if self.markers.should_publish(0) {
                        self.markers.publish(0, s);
                    }
                })
                .1;
        });
        self.markers.markers()[0]
            .scanned_bytes
            .fetch_add(scanned as u64, Ordering::Relaxed);
        helped
    }

    /// Give up a finishing pause at its time limit, as bdwgc abandons world-stopped
    /// marking: every page written so far was taken and its objects are queued, so
    /// tracking starts afresh from here ([`Heap::rearm`]); objects allocated from now on
    /// are black again; later mark steps (or the marker threads) do the marking left,
    /// and a later finish tries again.
    fn abandon_finish(&self, inner: &mut HeapInner, world: StoppedWorld, t0: Instant) {
        // Tracking goes on: the finish's deferred disarm is replaced by this arm.
        inner.gc.disarm_after_resume = false;
        self.rearm(inner);
        if self.options.allocate_black {
            self.allocate_black.store(true, Ordering::SeqCst);
        }
        let now = inner.bytes_since_gc;
        let cycle = inner.gc.cycle.as_mut().expect("a finish has a cycle");
        cycle.abandoned += 1;
        cycle.marking_done = false;
        cycle.bytes_at_last_step = now;
        inner.gc.stats.abandoned_finishes += 1;
        let markers = self.markers.n();
        hooks::run_collection_event(CollectionEvent::PreStartWorld, &inner.gc.stats, markers);
        drop(world);
        hooks::run_collection_event(CollectionEvent::PostStartWorld, &inner.gc.stats, markers);
        let ns = elapsed_ns(t0);
        inner.gc.stats.gc_time_ns += ns;
        if inner.gc.pauses.push(ns).is_err() {
            inner.gc.stats.max_step_ns = inner.gc.stats.max_step_ns.max(ns);
        }
    }

    /// An allocation found its space exhausted: collect and retry `attempt`, once plus
    /// up to the policy's `max_retries` more times while it keeps failing (bdwgc's
    /// `GC_max_retries`: collections attempted before reporting out of memory).
    pub(crate) fn collect_and_retry<T>(
        &'static self,
        mut g: Guard,
        mut attempt: impl FnMut(&mut HeapInner) -> Option<T>,
    ) -> Result<(Guard, Option<T>), GcError> {
        let retries = hooks::policy_hooks().map_or(0, |h| (h.policy)().max_retries);
        for _ in 0..=retries {
            g = self.collect_locked(g, Reason::OutOfSpace)?;
            if let Some(v) = attempt(&mut g) {
                return Ok((g, Some(v)));
            }
        }
        Ok((g, None))
    }

    /// Scan up to `step` bytes from `stack`, stopping early once `limit` (if any) has
    /// passed since `t0` (checked every 16 KiB of scanning). True if the stack is empty.
    fn drain_timed(
        &self,
        stack: &mut MarkStack,
        step: usize,
        t0: Instant,
        limit: Option<std::time::Duration>,
    ) -> bool {
        let Some(limit) = limit else {
            return self.drain(stack, step);
        };
        const CHUNK: usize = 16 << 10;
        let mut left = step;
        loop {
            let n = left.min(CHUNK);
            if self.drain(stack, n) {
                return true;
            }
            left -= n;
            if left == 0 || t0.elapsed() >= limit {
                return false;
            }
        }
    }

    /// Allocation allowed before the next automatic collection, with `live` bytes live
    /// after the last one: 6 × live / divisor, at least the minimum (the heap's options
    /// unless `policy` overrides them).
    fn budget_bytes(&self, live: u64, policy: &hooks::Policy) -> usize {
        let (divisor, min) = self.divisor_and_min(policy);
        (live as usize * 6 / divisor).max(min)
    }

    /// Allocation since the last collection after which the heap collects rather than
    /// takes fresh pages, with `live` bytes live after the last one: 2 × live / divisor
    /// (bdwgc's `min_bytes_allocd`), at least the minimum. Under
    /// [`crate::options::Options::lean_growth`] the budget still lets the program allocate
    /// three times more in pages the heap already has (`heap::growth`).
    pub(crate) fn grow_after_bytes(&self, live: u64) -> usize {
        let policy = hooks::policy_hooks().map(|h| (h.policy)());
        let (divisor, min) = self.divisor_and_min(&policy.unwrap_or(hooks::Policy::DEFAULT));
        (live as usize * 2 / divisor).max(min)
    }

    /// The free-space divisor (at least 1) and the least budget in force.
    fn divisor_and_min(&self, policy: &hooks::Policy) -> (usize, usize) {
        let divisor = match policy.free_space_divisor {
            0 => self.options.free_space_divisor,
            d => d,
        };
        let min = match policy.min_bytes_allocd {
            0 => self.options.initial_heap_bytes,
            m => m,
        };
        (divisor.max(1), min)
    }

    /// Begin an incremental cycle (no pause).
    pub(crate) fn start_cycle(&'static self, mut g: Guard) -> Result<Guard, GcError> {
        let t0 = Instant::now();
        let inner = &mut *g;
        let (armed, ranges, n) = self.arm_ranges(inner);
        inner.gc.stats.last_dirty_pages = 0;
        let TrackerState::Open(tracker) = &mut inner.gc.tracker else {
            unreachable!("checked above")
        };
        // Trackers whose arming is only sound with every mutator stopped (Dune: vCPUs
        // flush their TLBs when they resume) get a short stop-the-world around it.
        let (t_stop, c_stop) = (Instant::now(), crate::util::ledger::thread_cpu());
        let world = if tracker.arm_needs_stopped_world() {
            Some(world::stop().map_err(|source| GcError::Os {
                op: "stopping the world",
                source,
            })?)
        } else {
            None
        };
        let (t_arm, c_arm) = (Instant::now(), crate::util::ledger::thread_cpu());
        let armed_result = tracker.arm(&ranges[..n]);
        let (arm_time, c_armed) = (t_arm.elapsed(), crate::util::ledger::thread_cpu());
        drop(world);
        let arm_cpu = c_armed.saturating_sub(c_arm);
        crate::util::ledger::arm(
            ranges[..n].iter().map(|r| r.n_pages as u64).sum(),
            crate::util::ledger::Span {
                wall: arm_time,
                cpu: arm_cpu,
            },
            crate::util::ledger::Span {
                wall: t_stop.elapsed().saturating_sub(arm_time),
                cpu: crate::util::ledger::thread_cpu()
                    .saturating_sub(c_stop)
                    .saturating_sub(arm_cpu),
            },
            tracker.stats().write_faults,
        );
        if let Err(e) = armed_result {
            // Arming failed (out of memory for protection changes; for Dune, threads
            // outside Dune mode): this cycle runs as a full collection instead. The first
            // such error is kept in the report; a failed disarm only leaves pages
            // write-protected, which the handler still resolves. The error may own heap
            // memory, so it is dropped only after the lock is released.
            let _ = tracker.disarm();
            if !inner.gc.arm_failure_noted {
                inner.gc.arm_failure_noted = true;
                inner.gc.note(&format_args!(
                    "arming failed, that cycle ran as a full collection: {e}"
                ));
            }
            let g = self.collect_locked(g, Reason::Threshold)?;
            drop(g);
            drop(e);
            return Ok(self.lock());
        }
        hooks::run_collection_start_hook();
        self.clear_marks(inner);
        // From here on new objects are black (before, they stay white: also sound).
        if self.options.allocate_black {
            self.allocate_black.store(true, Ordering::SeqCst);
        }
        inner.gc.mark_stack.clear();
        roots::statics::refresh(&mut inner.gc.statics);
        roots::stacks::with_spilled_registers(|sp| self.mark_roots::<false>(inner, None, sp));
        // Mostly-concurrent marking: the marker threads trace from these roots while the
        // program runs (see `concurrent` below); without helpers, or switched off, the
        // allocating thread takes mark steps.
        let concurrent =
            self.options.concurrent_marking && self.markers.seed(&mut inner.gc.mark_stack);
        inner.gc.stats.concurrent_cycles += concurrent as u64;
        inner.gc.cycle = Some(Cycle {
            armed,
            bytes_at_last_step: inner.bytes_since_gc,
            marking_done: false,
            concurrent,
            precleans: 0,
            abandoned: 0,
        });
        inner.gc.stats.gc_time_ns += elapsed_ns(t0);
        Ok(g)
    }

    /// What a cycle arms: the used prefix of each traced space the tracker may cover
    /// (the malloc space only if the tracker sees kernel writes: it holds syscall
    /// buffers). Returns the pages armed per space, the ranges, and how many there are.
    #[allow(clippy::type_complexity)]
    fn arm_ranges(
        &self,
        inner: &HeapInner,
    ) -> ([Option<usize>; N_SPACES], [PageRange; N_SPACES], usize) {
        let sees_kernel = match &inner.gc.tracker {
            TrackerState::Open(t) => t.sees_kernel_writes(),
            _ => unreachable!("arming needs an open tracker"),
        };
        let mut armed = [None; N_SPACES];
        let mut ranges = [PageRange::new(Page::from_aligned(self.base), 0); N_SPACES];
        let mut n = 0;
        for space in [SpaceId::Normal, SpaceId::Malloc] {
            if space == SpaceId::Malloc && !sees_kernel {
                continue;
            }
            let r = self.space_range(inner, space);
            armed[space as usize] = Some(r.n_pages);
            if r.n_pages > 0 {
                ranges[n] = r;
                n += 1;
            }
        }
        (armed, ranges, n)
    }

    /// Pre-clean a concurrent cycle (its markers are idle): in a short stop-the-world,
    /// take the pages dirtied so far (and those added since arming) and arm the spaces'
    /// current extent afresh; then, with the program running again, queue the marked
    /// objects on those pages and hand them to the markers. The finish then rescans only
    /// what is written after this pause, so its length no longer grows with everything
    /// the program wrote (and allocated) during the whole cycle.
    fn preclean(&'static self, mut g: Guard) -> Result<Guard, GcError> {
        let t0 = Instant::now();
        let world = world::stop().map_err(|source| GcError::Os {
            op: "stopping the world",
            source,
        })?;
        let inner = &mut *g;
        self.take_dirty(inner, true);
        drop(world);
        let ns = elapsed_ns(t0);
        inner.gc.stats.gc_time_ns += ns;
        inner.gc.stats.precleans += 1;
        if inner.gc.pauses.push(ns).is_err() {
            inner.gc.stats.max_step_ns = inner.gc.stats.max_step_ns.max(ns);
        }
        let t1 = Instant::now();
        self.push_dirty_pages(inner);
        let cycle = inner.gc.cycle.as_mut().expect("preclean needs a cycle");
        cycle.precleans += 1;
        if !self.markers.seed(&mut inner.gc.mark_stack) {
            // Nothing to hand over (or no helper any more): the finish drains the rest.
            cycle.marking_done = true;
        }
        inner.gc.stats.gc_time_ns += elapsed_ns(t1);
        Ok(g)
    }

    fn clear_marks(&self, inner: &HeapInner) {
        for s in &inner.spaces {
            let start = self.pages.page_addr(s.first);
            self.marks
                .clear_range(start, start + (s.high_water << LOG_BYTES_IN_PAGE));
        }
    }

    /// Call `f(first_page, span)` for every live span of a space.
    pub(crate) fn for_each_span(&self, inner: &HeapInner, space: usize, mut f: impl FnMut(usize)) {
        let s = &inner.spaces[space];
        let mut i = s.first;
        let end = s.first + s.high_water;
        while i < end {
            let span = self.pages.span(i);
            let is_head = self.pages.raw_entry(i) as usize == i + 1;
            let n = span.n_pages.load(Ordering::Relaxed).max(1) as usize;
            if is_head {
                if span.state() != SpanState::Free {
                    f(i);
                }
                i += n;
            } else {
                i += 1;
            }
        }
    }

    /// Mark from every root. `world` is None at the start of an incremental cycle (only
    /// the calling thread's stack is scanned then; the finish scans all threads).
    /// Mark bits are set as `PAR` says: `true` while marker threads may still be marking
    /// concurrently (the finish of a concurrent cycle).
    fn mark_roots<const PAR: Parallel>(
        &self,
        inner: &mut HeapInner,
        world: Option<&StoppedWorld>,
        own_sp: usize,
    ) {
        let gc = &mut inner.gc;
        for &(s, e) in gc.statics.as_slice() {
            self.scan_range_with::<PAR>(s, e, &mut gc.mark_stack);
        }
        for &(s, e) in gc.added_roots.as_slice() {
            self.scan_range_with::<PAR>(s, e, &mut gc.mark_stack);
        }
        for f in gc.finalizers.ready.as_slice() {
            self.mark_word_with::<PAR>(f.obj, &mut gc.mark_stack);
            self.mark_word_with::<PAR>(f.data, &mut gc.mark_stack);
        }
        // A finalizer's client data stays reachable until the finalizer has run (bdwgc).
        for f in gc.finalizers.registered.as_slice() {
            self.mark_word_with::<PAR>(f.data, &mut gc.mark_stack);
        }
        // Uncollectable objects are roots.
        let mut uncollectable: MmapVec<usize> = MmapVec::new();
        self.for_each_span(inner, SpaceId::Malloc as usize, |start| {
            let span = self.pages.span(start);
            if ObjectKind::from_u8(span.kind.load(Ordering::Relaxed)) == ObjectKind::Uncollectable {
                let _ = uncollectable.push(start);
            }
        });
        // Kinds with a disclaim procedure that asked for it (gc_disclaim.h).
        self.push_unconditionally(inner);
        let gc = &mut inner.gc;
        for &start in uncollectable.as_slice() {
            let span = self.pages.span(start);
            let base = self.pages.page_addr(start);
            let obj = span.obj_bytes.load(Ordering::Relaxed) as usize;
            for i in 0..span.n_objects.load(Ordering::Relaxed) as usize {
                let a = base + i * obj;
                if self.allocs.get(a) {
                    self.mark_word_with::<PAR>(a, &mut gc.mark_stack);
                }
            }
        }
        // Threads: the caller's own stack and, when stopped, everyone else's.
        gc.thread_sp.clear();
        let _ = gc.thread_sp.push((own_sp, world::current_fs_base()));
        if let Some(w) = world {
            for t in w.threads.as_slice() {
                let _ = gc.thread_sp.push((t.sp, t.fs_base));
                for r in w.saved_regs(t) {
                    self.mark_stack_word_with::<PAR>(r, &mut gc.mark_stack);
                }
            }
            // The marker threads are not stopped (they are idle now): their TLS and the
            // stack above their marking loop are roots all the same.
            for root in self.markers.helper_roots() {
                let _ = gc.thread_sp.push(root);
            }
        }
        if world::thread_roots(gc.thread_sp.as_slice(), &mut gc.thread_roots).is_err() {
            // Without /proc/self/maps, scan a conservative window above each stack pointer.
            gc.thread_roots.clear();
            for &(sp, _) in gc.thread_sp.as_slice() {
                let _ = gc.thread_roots.push(ThreadRoots {
                    stack: (sp, sp + (64 << 10)),
                    tls: (0, 0),
                    extra: (0, 0),
                });
            }
        }
        for r in gc.thread_roots.as_slice() {
            self.scan_stack_range_with::<PAR>(r.stack.0, r.stack.1, &mut gc.mark_stack);
            self.scan_stack_range_with::<PAR>(r.tls.0, r.tls.1, &mut gc.mark_stack);
            self.scan_stack_range_with::<PAR>(r.extra.0, r.extra.1, &mut gc.mark_stack);
        }
        // Roots the program adds while the collector marks (GC_set_push_other_roots).
        self.push_other_roots(&mut gc.mark_stack, PAR);
    }

    /// Finish of an incremental cycle: take the dirty set and rescan the marked objects
    /// on dirty pages (and on pages the tracker did not cover).
    fn rescan_dirty(&self, inner: &mut HeapInner) {
        self.take_dirty(inner, false);
        self.push_dirty_pages(inner);
    }

    /// Take the cycle's dirty pages into `inner.gc.dirty` (the world is stopped): what
    /// the tracker reports, plus every page it did not arm. `rearm` (a pre-clean): arm
    /// the spaces' current extent afresh, so tracking goes on from a clean state;
    /// otherwise (the finish) tracking stops. If re-arming fails, every page counts as
    /// dirty at the finish.
    fn take_dirty(&self, inner: &mut HeapInner, rearm: bool) {
        let cycle = inner.gc.cycle.as_ref().expect("take_dirty needs a cycle");
        let armed = cycle.armed;
        inner.gc.dirty.clear();
        let mut failed = false;
        let mut error = None;
        // A pre-clean's re-arm, done with the collect where the tracker can (see below).
        let planned = match (&inner.gc.tracker, rearm) {
            (TrackerState::Open(_), true) => Some(self.arm_ranges(inner)),
            _ => None,
        };
        let mut grown = None;
        if let TrackerState::Open(t) = &mut inner.gc.tracker {
            let (t0, c0, before) = (
                Instant::now(),
                crate::util::ledger::thread_cpu(),
                t.stats().pages_reported,
            );
            // Collect and stop tracking (at the finish a re-arm would cost the program
            // write faults until the next cycle arms anyway). Where the backend allows,
            // the costly disarm waits: until the world resumes at the finish, and for
            // good before a pre-clean's re-arm (which then only protects the pages again).
            let grow = planned.as_ref().map(|(now, ranges, n)| {
                (now, t.collect_and_grow(&mut inner.gc.dirty, &ranges[..*n]))
            });
            let collected = match grow {
                Some((now, Ok(true))) => {
                    grown = Some(*now);
                    Ok(())
                }
                Some((_, Err(e))) => {
                    let _ = t.disarm();
                    grown = Some([None; N_SPACES]);
                    Err(e)
                }
                _ => match t.collect_disarm_later(&mut inner.gc.dirty) {
                    Ok(true) => {
                        inner.gc.disarm_after_resume = !rearm;
                        Ok(())
                    }
                    Ok(false) => t.collect_and_disarm(&mut inner.gc.dirty),
                    Err(e) => {
                        let _ = t.disarm();
                        Err(e)
                    }
                },
            };
            if let Err(e) = collected {
                failed = true;
                error = Some(e);
            }
            let reported = t.stats().pages_reported.saturating_sub(before);
            let span = crate::util::ledger::Span {
                wall: t0.elapsed(),
                cpu: crate::util::ledger::thread_cpu().saturating_sub(c0),
            };
            crate::util::ledger::collect(reported, span, t.stats().write_faults);
        }
        if let Some(e) = error {
            inner.gc.note(&e);
        }
        match grown {
            // Collected and re-armed in one step (or that failed: nothing is tracked any
            // more, so the finish counts every page).
            Some(now_armed) => {
                let cycle = inner.gc.cycle.as_mut().expect("checked");
                cycle.armed = now_armed;
            }
            None if rearm => self.rearm(inner),
            None => {}
        }
        let mut unarmed = 0u64;
        for space in [SpaceId::Normal, SpaceId::Malloc] {
            let r = self.space_range(inner, space);
            let from = match armed[space as usize] {
                Some(n) if !failed => n,
                _ => 0,
            };
            if r.n_pages > from {
                let extra = PageRange::new(r.start.plus_pages(from), r.n_pages - from);
                unarmed += extra.n_pages as u64;
                inner.gc.dirty.push_range(extra);
            }
        }
        inner.gc.dirty.normalize();
        let reported = inner.gc.dirty.n_pages() as u64 - unarmed;
        inner.gc.stats.dirty_pages += reported;
        inner.gc.stats.last_dirty_pages += reported;
        inner.gc.stats.unarmed_pages += unarmed;
    }

    /// Arm the spaces' current extent afresh (the world is stopped and every page
    /// written so far has been taken): tracking goes on from a clean state. If arming
    /// fails nothing is tracked any more, so the finish counts every page as dirty.
    fn rearm(&self, inner: &mut HeapInner) {
        let (now_armed, ranges, n) = self.arm_ranges(inner);
        let ok = match &mut inner.gc.tracker {
            TrackerState::Open(t) => {
                let (t0, c0) = (Instant::now(), crate::util::ledger::thread_cpu());
                let r = t.arm(&ranges[..n]);
                let span = crate::util::ledger::Span {
                    wall: t0.elapsed(),
                    cpu: crate::util::ledger::thread_cpu().saturating_sub(c0),
                };
                crate::util::ledger::arm(
                    ranges[..n].iter().map(|r| r.n_pages as u64).sum(),
                    span,
                    crate::util::ledger::Span::default(),
                    t.stats().write_faults,
                );
                if r.is_err() {
                    let _ = t.disarm();
                }
                r.is_ok()
            }
            _ => false,
        };
        let cycle = inner.gc.cycle.as_mut().expect("re-arming needs a cycle");
        // Not re-armed: nothing is tracked any more, so the finish counts every page.
        cycle.armed = if ok { now_armed } else { [None; N_SPACES] };
    }

    /// The finish's deferred disarm ([`dirty::DirtyTracker::collect_disarm_later`]), with
    /// the world running again: GC time, not pause.
    fn disarm_after_resume(&self, inner: &mut HeapInner) {
        if !std::mem::take(&mut inner.gc.disarm_after_resume) {
            return;
        }
        let t0 = Instant::now();
        if let TrackerState::Open(t) = &mut inner.gc.tracker {
            if let Err(e) = t.disarm() {
                inner.gc.note(&e);
            }
        }
        inner.gc.stats.gc_time_ns += elapsed_ns(t0);
    }

    /// Queue the marked objects on the pages of `inner.gc.dirty` for rescanning.
    fn push_dirty_pages(&self, inner: &mut HeapInner) {
        let gc = &mut inner.gc;
        for r in gc.dirty.runs() {
            for page in r.pages() {
                self.rescan_page(page.start().as_usize(), &mut gc.mark_stack);
            }
        }
    }

    /// Rescan the parts of marked objects that lie on one page.
    fn rescan_page(&self, page: usize, stack: &mut MarkStack) {
        if !self.contains(page) {
            return;
        }
        let Some(start) = self.pages.span_start_of(self.pages.page_index(page)) else {
            return;
        };
        let span = self.pages.span(start);
        if !ObjectKind::from_u8(span.kind.load(Ordering::Relaxed)).is_traced() {
            return;
        }
        let base = self.pages.page_addr(start);
        let obj = span.obj_bytes.load(Ordering::Relaxed) as usize;
        let page_end = page + BYTES_IN_PAGE;
        let (first, last) = match span.state() {
            SpanState::Small => {
                let n = span.n_objects.load(Ordering::Relaxed) as usize;
                let first = (page - base) / obj;
                if first >= n {
                    return;
                }
                (first, ((page_end - 1 - base) / obj).min(n - 1))
            }
            SpanState::Large => (0, 0),
            SpanState::Free => return,
        };
        let described = span.scan.load(Ordering::Relaxed) != 0;
        // Adjacent marked objects (untyped) go in as one range: with allocation black, a
        // dirty page is often full of them.
        let (mut run_start, mut run_end) = (0usize, 0usize);
        for i in first..=last {
            let a = base + i * obj;
            if self.allocs.get(a) && self.marks.get(a) {
                if described {
                    // Scanned by its descriptor, whole (see `mark::descr`).
                    self.push_object(a, obj, start, stack);
                } else if run_end == a && run_end != 0 {
                    run_end = (a + obj).min(page_end);
                } else {
                    stack.push(run_start, run_end);
                    run_start = a.max(page);
                    run_end = (a + obj).min(page_end);
                }
            }
        }
        stack.push(run_start, run_end);
    }

    /// Queue the finalizers of unreachable registered objects, keeping those objects (and
    /// what they reference) alive until the finalizers have run.
    fn find_finalizable(&self, inner: &mut HeapInner) {
        let gc = &mut inner.gc;
        if gc.finalizers.registered.is_empty() {
            return;
        }
        let Finalizers {
            registered, ready, ..
        } = &mut gc.finalizers;
        // Drop registrations of objects freed explicitly; collect the unreachable ones.
        gc.candidates.clear();
        let mut w = 0;
        for r in 0..registered.len() {
            let f = registered.as_slice()[r];
            if !self.allocs.get(f.obj) {
                continue;
            }
            if !self.marks.get(f.obj) {
                let _ = gc.candidates.push(f);
            }
            registered.as_mut_slice()[w] = f;
            w += 1;
        }
        registered.truncate(w);
        if gc.candidates.is_empty() {
            return;
        }
        // Ordered ones: mark what they reference (ignoring self-pointers).
        for f in gc.candidates.as_slice() {
            if f.order.is_ordered() {
                if let Some(info) = self.find_object(f.obj) {
                    let mut p = info.base;
                    while p + 8 <= info.base + info.len_bytes {
                        // SAFETY: inside an allocated heap object.
                        let v = unsafe { std::ptr::read_volatile(p as *const usize) };
                        if v < info.base || v >= info.base + info.len_bytes {
                            self.mark_word(v, &mut gc.mark_stack);
                        }
                        p += 8;
                    }
                }
            }
        }
        self.drain_all(&mut gc.mark_stack);
        // Ready: every no-order candidate, and ordered ones nothing else reached. The
        // candidates are a subsequence of `registered` in the same order, so one pass
        // over both finds them (no search per registration).
        let first_new = ready.len();
        let mut w = 0;
        let mut next_candidate = 0;
        for r in 0..registered.len() {
            let f = registered.as_slice()[r];
            let candidate = gc
                .candidates
                .as_slice()
                .get(next_candidate)
                .is_some_and(|c| c.obj == f.obj);
            if candidate {
                next_candidate += 1;
            }
            let ready_now = candidate && (!f.order.is_ordered() || !self.marks.get(f.obj));
            if ready_now {
                let _ = ready.push(f);
                gc.stats.finalizers_queued += 1;
            } else {
                registered.as_mut_slice()[w] = f;
                w += 1;
            }
        }
        registered.truncate(w);
        let java = gc
            .java_flag
            .map_or(gc.java_finalization, |f| f.load(Ordering::Relaxed) != 0);
        for f in ready.as_slice() {
            if f.order == FinalizerOrder::Unreachable && java {
                // Decided below, once the no-order objects' referents are marked.
            } else if f.order == FinalizerOrder::BdwgcNoOrder && !java {
                // Java-style finalization off: keep the object, not what it references.
                if let Some(info) = self.find_object(f.obj) {
                    self.marks.set_single_writer(info.base);
                }
            } else {
                self.mark_word(f.obj, &mut gc.mark_stack);
            }
        }
        self.drain_all(&mut gc.mark_stack);
        if java {
            self.revive_unreachable(ready, first_new, registered, &mut gc.mark_stack);
        }
        if let Some(hook) = hooks::finalization_queued_hook() {
            for f in &ready.as_slice()[first_new..] {
                hook(f.obj);
            }
        }
    }

    /// The part of the sweep done in the pause: start sweep epoch N, sweep the spans some
    /// thread cache owns (their threads claim slots without the heap lock once the world
    /// runs again, which `alloc &= mark` must not race with), and list the others for
    /// [`Heap::finish_sweep`]. From here until that ends, [`Heap::find_object`] treats
    /// unswept dead objects as free, so what the program sees is the swept heap.
    fn start_sweep(&self, inner: &mut HeapInner) -> Sweep {
        let epoch = self.sweep_epoch.load(Ordering::Relaxed).wrapping_add(1);
        self.sweep_epoch.store(epoch, Ordering::Relaxed);
        let mut sweep = Sweep {
            epoch,
            live_bytes: 0,
            swept: 0,
            deferred: MmapVec::new(),
        };
        let mut spans: MmapVec<usize> = MmapVec::new();
        for space in 0..N_SPACES {
            self.for_each_span(inner, space, |start| {
                let _ = spans.push(start);
            });
        }
        for &start in spans.as_slice() {
            let span = self.pages.span(start);
            // Ownership changes only under the heap lock, which this thread holds until
            // `finish_sweep` is done: an unowned span stays unowned until then, and no
            // thread sets alloc bits in it (only `Heap::free` clears them, atomically).
            if span.owned.load(Ordering::Acquire) || sweep.deferred.push(start).is_err() {
                self.sweep_span(inner, start, &mut sweep);
            }
        }
        self.sweep_pending.store(true, Ordering::Release);
        sweep
    }

    /// The rest of the sweep, with the world running again and the heap lock still held
    /// (so no allocation slow path, cycle start or statistics query runs meanwhile):
    /// sweep the listed spans, then publish live bytes.
    fn finish_sweep(&self, inner: &mut HeapInner, mut sweep: Sweep) {
        let deferred = std::mem::take(&mut sweep.deferred);
        for &start in deferred.as_slice() {
            self.sweep_span(inner, start, &mut sweep);
        }
        self.sweep_pending.store(false, Ordering::Release);
        inner.gc.stats.live_bytes = sweep.live_bytes;
        inner.gc.stats.bytes_swept += sweep.swept;
    }

    /// `alloc &= mark` over one span (collectable kinds); free it if empty, or the dead
    /// large object; put a small unowned span with free slots on its partial list.
    fn sweep_span(&self, inner: &mut HeapInner, start: usize, sweep: &mut Sweep) {
        let span = self.pages.span(start);
        let kind = ObjectKind::from_u8(span.kind.load(Ordering::Relaxed));
        let collectable = self.sweeps_kind(kind);
        let base = self.pages.page_addr(start);
        let obj = span.obj_bytes.load(Ordering::Relaxed) as u64;
        match span.state() {
            SpanState::Small => {
                let n_pages = span.n_pages.load(Ordering::Relaxed) as usize;
                let end = base + (n_pages << LOG_BYTES_IN_PAGE);
                let mut live = 0u64;
                let mut before = 0u64;
                for (a, m) in self
                    .allocs
                    .words(base, end)
                    .iter()
                    .zip(self.marks.words(base, end))
                {
                    let av = a.load(Ordering::Relaxed);
                    let mv = m.load(Ordering::Relaxed);
                    // fetch_and, not a store: `Heap::free` may clear a bit of this word
                    // meanwhile (the world runs), and a store could set it again.
                    let av = if collectable && av & !mv != 0 {
                        a.fetch_and(mv, Ordering::Relaxed)
                    } else {
                        av
                    };
                    let nv = if collectable { av & mv } else { av };
                    before += av.count_ones() as u64;
                    live += nv.count_ones() as u64;
                }
                sweep.swept += (before - live) * obj;
                sweep.live_bytes += live * obj;
                span.swept.store(sweep.epoch, Ordering::Release);
                let owned = span.owned.load(Ordering::Acquire);
                if live == 0 && !owned {
                    self.release_small(inner, start);
                } else if live < span.n_objects.load(Ordering::Relaxed) as u64 && !owned {
                    self.link_partial(inner, start, kind, self.span_class(start));
                }
            }
            SpanState::Large => {
                span.swept.store(sweep.epoch, Ordering::Release);
                if !self.allocs.get(base) {
                    // Freed explicitly by a thread that held the heap lock at the time
                    // (see `Heap::free`): release the pages now.
                    self.release_large(inner, start);
                } else if collectable && !self.marks.get(base) {
                    self.allocs.clear_atomic(base);
                    sweep.swept += obj;
                    self.release_large(inner, start);
                } else if self.allocs.get(base) {
                    sweep.live_bytes += obj;
                }
            }
            SpanState::Free => {}
        }
    }
}
