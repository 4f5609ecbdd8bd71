//! The collector's marker threads and the work-stealing mark stacks they share (below the
//! heap, which owns one pool; the marking itself is in [`crate::mark`]).
//!
//! - **Threads.** `n - 1` helper threads, created with `pthread_create` on the first
//!   collection (before the world is stopped, with collections held off meanwhile), plus
//!   the collecting thread as marker 0. They exempt themselves from stop-the-world
//!   ([`crate::world::exempt_current_thread`]), allocate nothing while marking, and sleep
//!   on a futex between jobs. Their marking frames are not roots; what their runtime keeps
//!   above those frames and in their TLS is ([`MarkerPool::helper_roots`]: in Dune under
//!   `GcAllocator`, dune-hw's per-thread state comes from this heap). Heaps live for the
//!   whole process, so the helpers do too (a forked child has none and marks on its
//!   collecting thread alone).
//! - **Jobs.** There is one job function per pool, fixed when the helpers start, over
//!   `'static` data (the heap): a helper that wakes late joins whatever marking is running
//!   then, or finds none and sleeps again. So the collecting thread never waits for a
//!   helper to be scheduled — on a loaded machine (two CPUs shared by many programs) a
//!   runnable helper can wait many milliseconds for a CPU — only for the work itself.
//! - **Where they run under Dune.** A helper created by a thread in Dune mode runs in Dune
//!   too (dune-hw puts every `clone` of a Dune thread on its own vCPU); either way helpers
//!   never write heap pages — only the side mark bitmap (its own mapping, outside the heap
//!   reservation, never armed) and these stacks — so no dirty tracker needs to see them.
//!   That holds while they mark concurrently with the program too: tested under every
//!   backend, Dune's hardware dirty bits included (`tests/concurrent_marking.rs`,
//!   `dunegc-tests`' `kvm_dune_suites`), by a cycle during which only the markers run
//!   and the tracker reports no written page.
//! - **Stacks.** Each marker owns a private stack (no synchronisation) and a public one
//!   behind a `std` mutex (a futex; it allocates nothing). A marker publishes the older
//!   half of its private stack when some marker is hungry; a hungry marker takes back its
//!   own public work, else steals half of another's. `crossbeam-deque` is not used: its
//!   buffers come from the global allocator, which under `GcAllocator` is the very heap
//!   being collected (a push during the pause would re-enter it).
//! - **Concurrent jobs.** An incremental cycle seeds a job ([`MarkerPool::seed`]): the
//!   roots' work goes to marker 0's public stack, which holds one `busy` count until a
//!   marker takes its last entry, and only the helpers run — the collecting thread goes
//!   back to being a mutator. The finishing pause (the world stopped) runs an ordinary
//!   job over the same counters: marker 0 takes back what is left of the seed, and helpers
//!   still inside the concurrent job are simply part of it.
//! - **Termination.** `busy` counts markers that hold work. A marker increments it before
//!   stealing and decrements it only when its private and public stacks are both empty.
//!   Only a busy marker's own public stack can gain entries, so `busy == 0` means no work
//!   anywhere, and none can appear before the next job: every marker that sees it is done.

use super::stack::MarkStack;
use crate::world::{futex_wait, futex_wake};
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Most markers a heap runs (the collecting thread included).
pub const MAX_MARKERS: usize = 64;

/// Stack size of a helper thread (marking is iterative: little stack is needed).
const HELPER_STACK_BYTES: usize = 256 << 10;

/// Spins of a hungry marker before it sleeps until work is published or marking ends.
/// Sleeping, not yielding: the markers share their process's CPU share (autogroup), so a
/// marker spinning for work would take CPU from the one that has it.
const SPINS_BEFORE_SLEEP: u32 = 256;

/// Longest sleep of a hungry marker before it looks again (a safety net: every publish
/// and the end of marking wake sleepers).
const HUNGRY_SLEEP: std::time::Duration = std::time::Duration::from_millis(1);

/// One marker's stacks and counters.
#[derive(Default)]
pub struct Marker {
    /// Touched only by the marker itself, during a job.
    private: UnsafeCell<MarkStack>,
    /// Work other markers may take.
    public: Mutex<MarkStack>,
    /// Entries in `public` (read without the lock to find victims).
    public_len: AtomicUsize,
    /// Bytes this marker scanned, over the heap's life.
    pub scanned_bytes: AtomicU64,
    /// Successful steals by this marker, over the heap's life.
    pub steals: AtomicU64,
    /// The helper thread runs in Dune mode (helpers only; set when it started).
    pub in_dune: AtomicBool,
    /// A stack address in the helper's start function (helpers only): the stack above it
    /// and the thread's TLS are scanned as roots (see [`MarkerPool::helper_roots`]).
    start_sp: AtomicUsize,
    /// The helper's FS base (its TLS).
    fs_base: AtomicUsize,
    /// Arguments of the helper thread (its index), pointed to by `pthread_create`.
    index: AtomicUsize,
    pool: std::sync::atomic::AtomicPtr<MarkerPool>,
}

// SAFETY: `private` is only accessed by the marker with this index during a job (the
// pool hands each index to exactly one thread); everything else is atomics or a mutex.
unsafe impl Sync for Marker {}

/// The job function: called with the context given to [`MarkerPool::ensure_started`] and
/// the marker's index.
pub type JobFn = fn(ctx: usize, index: usize);

/// The marker threads of one heap and their shared state.
pub struct MarkerPool {
    n: usize,
    markers: [Marker; MAX_MARKERS],
    started: AtomicBool,
    /// Thread id of the thread creating the helpers, while it does (0: none).
    creating: std::sync::atomic::AtomicI32,
    /// Helpers that have started and exempted themselves.
    ready: AtomicU32,
    /// Bumped to wake helpers for a new job (futex word).
    epoch: AtomicU32,
    /// The job function and its context, set once before the helpers start.
    job: Mutex<Option<(JobFn, usize)>>,
    /// Markers holding work (termination: 0 means done).
    busy: AtomicUsize,
    /// Markers looking for work (owners publish when this is non-zero).
    hungry: AtomicUsize,
    /// Bumped when work is published or marking ends (futex word of hungry sleepers).
    work_seq: AtomicU32,
    /// Hungry markers asleep on `work_seq`.
    sleepers: AtomicU32,
    /// A seeded (concurrent) job's work still sits in marker 0's public stack, and holds
    /// one count of `busy` for it (see [`MarkerPool::seed`]).
    seeded: AtomicBool,
    /// Concurrent jobs seeded, over the pool's life.
    pub seeded_jobs: AtomicU64,
}

impl std::fmt::Debug for MarkerPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MarkerPool").field("n", &self.n).finish()
    }
}

/// CPUs this process may run on (`sched_getaffinity`; allocation-free), at least 1.
pub fn cpus() -> usize {
    // SAFETY: a zeroed cpu_set_t is valid; sched_getaffinity fills it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: pid 0 = this thread; the size matches the set.
    let rc = unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) };
    if rc != 0 {
        return 1;
    }
    // SAFETY: the set was filled by the kernel.
    (unsafe { libc::CPU_COUNT(&set) } as usize).max(1)
}

impl MarkerPool {
    /// A pool of `n` markers (clamped to `1..=MAX_MARKERS`); no thread starts yet.
    pub fn new(n: usize) -> MarkerPool {
        MarkerPool {
            n: n.clamp(1, MAX_MARKERS),
            markers: std::array::from_fn(|_| Marker::default()),
            started: AtomicBool::new(false),
            creating: std::sync::atomic::AtomicI32::new(0),
            ready: AtomicU32::new(0),
            epoch: AtomicU32::new(0),
            job: Mutex::new(None),
            busy: AtomicUsize::new(0),
            hungry: AtomicUsize::new(0),
            work_seq: AtomicU32::new(0),
            sleepers: AtomicU32::new(0),
            seeded: AtomicBool::new(false),
            seeded_jobs: AtomicU64::new(0),
        }
    }

    /// Markers, the collecting thread included.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Helper threads running (0 before the first collection, or if creating them failed).
    pub fn helpers(&self) -> usize {
        self.ready.load(Ordering::Acquire) as usize
    }

    /// `(stack pointer, FS base)` of every running helper, for the collector to scan like
    /// a stopped thread's: not the marking loop's frames (those hold no pointer the
    /// program needs), but what the thread's runtime keeps above them and in its TLS
    /// (in Dune, dune-hw's per-thread state, allocated from this very heap under
    /// `GcAllocator`).
    pub fn helper_roots(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.markers()[1..]
            .iter()
            .map(|m| {
                (
                    m.start_sp.load(Ordering::Acquire),
                    m.fs_base.load(Ordering::Acquire),
                )
            })
            .filter(|&(sp, _)| sp != 0)
    }

    /// The per-marker stacks and counters.
    pub fn markers(&self) -> &[Marker] {
        &self.markers[..self.n]
    }

    /// Start the helper threads once (claim and create; the collector does the two steps
    /// itself, see `Heap::collect_locked`). Call with no thread of the process stopped (thread
    /// creation takes glibc locks a stopped thread may hold). `self` must not move
    /// afterwards (the heap lives in its own mapping for the rest of the process). Returns
    /// an error text if a thread could not be created (marking then uses fewer markers).
    /// Helpers call `job(ctx, index)` for every marking job; `ctx` must stay valid for
    /// the rest of the process (the heap's address).
    #[cfg(test)]
    pub fn ensure_started(&'static self, job: JobFn, ctx: usize) -> Result<(), &'static str> {
        if !self.begin_creation() {
            return Ok(());
        }
        self.create(job, ctx)
    }

    /// Claim the creation of the helpers for the calling thread: false if they exist or
    /// another thread claimed it. The collector claims under the heap lock, so that a
    /// collection in another thread sees [`MarkerPool::being_created_by_other`] from then.
    pub fn begin_creation(&self) -> bool {
        if self.n <= 1 || self.started.swap(true, Ordering::AcqRel) {
            return false;
        }
        // SAFETY: gettid has no preconditions.
        self.creating
            .store(unsafe { libc::gettid() }, Ordering::Release);
        true
    }

    /// Create the helpers (after [`MarkerPool::begin_creation`] returned true) and wait
    /// until they are ready; see [`MarkerPool::ensure_started`].
    pub fn create(&'static self, job: JobFn, ctx: usize) -> Result<(), &'static str> {
        *self.job.lock().unwrap_or_else(|e| e.into_inner()) = Some((job, ctx));
        let mut made = 0u32;
        let mut err = Ok(());
        for i in 1..self.n {
            let m = &self.markers[i];
            m.index.store(i, Ordering::Relaxed);
            m.pool.store(
                self as *const MarkerPool as *mut MarkerPool,
                Ordering::Release,
            );
            // SAFETY: a zeroed pthread_attr_t is initialised by pthread_attr_init before use.
            let mut attr: libc::pthread_attr_t = unsafe { std::mem::zeroed() };
            let mut tid: libc::pthread_t = 0;
            // SAFETY: attr is initialised, then used, then destroyed; the argument points
            // at a `Marker` inside this 'static pool, valid for the thread's whole life.
            let rc = unsafe {
                libc::pthread_attr_init(&mut attr);
                libc::pthread_attr_setstacksize(&mut attr, HELPER_STACK_BYTES);
                libc::pthread_attr_setdetachstate(&mut attr, libc::PTHREAD_CREATE_DETACHED);
                let rc = libc::pthread_create(
                    &mut tid,
                    &attr,
                    helper_main,
                    m as *const Marker as *mut libc::c_void,
                );
                libc::pthread_attr_destroy(&mut attr);
                rc
            };
            if rc != 0 {
                err = Err("creating a marker thread failed; marking with fewer threads");
                break;
            }
            made += 1;
        }
        // Wait until every created helper has exempted itself from stop-the-world: the
        // caller stops the world next, and must not stop a marker.
        loop {
            let r = self.ready.load(Ordering::Acquire);
            if r >= made {
                break;
            }
            futex_wait(&self.ready, r, Some(std::time::Duration::from_millis(10)));
        }
        self.creating.store(0, Ordering::Release);
        futex_wake(&self.ready, i32::MAX);
        err
    }

    /// True while another thread is creating the helpers. No collection may stop the
    /// world then: a thread being created blocks signals (glibc; in Dune, dune-hw's
    /// thread start), and its creator may wait for it with signals blocked too, so a stop
    /// would give up on the creator after two seconds and collect without its stack.
    pub fn being_created_by_other(&self) -> bool {
        let c = self.creating.load(Ordering::Acquire);
        // SAFETY: gettid has no preconditions.
        c != 0 && c != unsafe { libc::gettid() }
    }

    /// Wait (holding no lock) until no thread is creating helpers.
    pub fn wait_created(&self) {
        while self.creating.load(Ordering::Acquire) != 0 {
            let r = self.ready.load(Ordering::Acquire);
            if self.creating.load(Ordering::Acquire) == 0 {
                break;
            }
            futex_wait(&self.ready, r, Some(std::time::Duration::from_millis(1)));
        }
    }

    /// Run a marking job: wake the helpers, then do marker 0's part (`own`, which calls
    /// [`MarkerPool::work`] as marker 0). Returns when `own` does — when no marker holds
    /// work — without waiting for helpers to be scheduled.
    pub fn run(&self, own: &mut dyn FnMut()) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        futex_wake(&self.epoch, i32::MAX);
        own();
    }

    fn helper_loop(&self, index: usize) -> ! {
        let (job, ctx) = self
            .job
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .expect("the job is set before helpers start");
        let mut seen = self.epoch.load(Ordering::SeqCst);
        loop {
            let e = self.epoch.load(Ordering::SeqCst);
            if e == seen {
                futex_wait(&self.epoch, e, None);
                continue;
            }
            seen = e;
            // Late (marking already over) is fine: the job finds no work and returns.
            job(ctx, index);
        }
    }

    /// Start a marking job: marker 0 holds the initial work in its private stack.
    ///
    /// `busy` and `hungry` are only ever changed in balanced pairs (a late helper from an
    /// earlier job may still be inside `work`), never reset.
    pub fn begin_marking(&self) {
        self.busy.fetch_add(1, Ordering::SeqCst);
    }

    /// Start a job that the helpers alone run while the caller goes on (concurrent
    /// marking): `stack`'s entries move to marker 0's public stack, which holds one count
    /// of `busy` until some marker takes the last of them (marker 0 itself does not run:
    /// its thread is a mutator again). Helpers steal from it as from any public stack.
    /// Returns false (and leaves `stack` alone) when no helper runs. Call with no job
    /// running and no other seeded work left (the collector holds the heap lock).
    pub fn seed(&self, stack: &mut MarkStack) -> bool {
        if self.helpers() == 0 || stack.is_empty() {
            return false;
        }
        debug_assert!(!self.seeded.load(Ordering::SeqCst));
        self.hand_over(stack);
        self.seeded_jobs.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// Give `stack`'s entries to the helpers, whether or not a job runs: they join marker
    /// 0's public stack, held by the seed's count of `busy` (taken unless the seed holds
    /// it already), and sleeping helpers wake. Returns false (and leaves `stack` alone)
    /// when no helper runs. The caller holds the heap lock (marker 0's stacks are its).
    pub fn hand_over(&self, stack: &mut MarkStack) -> bool {
        if self.helpers() == 0 {
            return false;
        }
        if stack.is_empty() {
            return true;
        }
        let m = &self.markers[0];
        let mut public = m.public.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(e) = stack.items.pop() {
            public.push_raw(e);
        }
        // The seed's count first, then the work becomes visible: a helper that sees it
        // steals with `busy` above 0.
        if !self.seeded.swap(true, Ordering::SeqCst) {
            self.busy.fetch_add(1, Ordering::SeqCst);
        }
        m.public_len.store(public.items.len(), Ordering::Release);
        drop(public);
        self.epoch.fetch_add(1, Ordering::SeqCst);
        futex_wake(&self.epoch, i32::MAX);
        self.wake_hungry(i32::MAX);
        true
    }

    /// True when no marker holds work: a seeded job is over (or none runs). Racy only in
    /// the safe direction: work can appear again only through a new job.
    pub fn idle(&self) -> bool {
        self.busy.load(Ordering::SeqCst) == 0
    }

    /// Marker 0's public stack was just emptied by a marker that holds `busy` itself: drop
    /// the seed's count, if it still holds one. Call with marker 0's public lock held.
    fn release_seed(&self) {
        if self.seeded.swap(false, Ordering::SeqCst) {
            // The caller is busy, so this never takes `busy` to 0.
            self.busy.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// The collecting thread's mark step during a concurrent job (heap lock held, so it
    /// is the only user of marker 0's private stack): join the job as marker 0 for one
    /// `drain` (which scans a budget and may leave work), taking work from the public
    /// stacks, then put whatever is left back into marker 0's public stack — held by the
    /// seed's busy count again — and leave. Termination stays exact: this thread is busy
    /// whenever it holds work. Returns false if there was no work to take.
    pub fn help(&self, drain: &mut dyn FnMut(&mut MarkStack)) -> bool {
        // SAFETY: marker 0's private stack is used only under the heap lock (here, and by
        // stop-the-world marking), which the caller holds; it is empty between uses.
        let private = unsafe { self.private(0) };
        self.busy.fetch_add(1, Ordering::SeqCst);
        if !self.take_own(0, private) && !self.steal(0, private) {
            self.leave_busy();
            return false;
        }
        drain(private);
        if !private.is_empty() {
            let m = &self.markers[0];
            let mut public = m.public.lock().unwrap_or_else(|e| e.into_inner());
            while let Some(e) = private.items.pop() {
                public.push_raw(e);
            }
            if !self.seeded.swap(true, Ordering::SeqCst) {
                self.busy.fetch_add(1, Ordering::SeqCst);
            }
            m.public_len.store(public.items.len(), Ordering::Release);
            drop(public);
            self.wake_hungry(i32::MAX);
        }
        self.leave_busy();
        true
    }

    /// The private stack of marker `i`.
    ///
    /// # Safety
    /// Only the thread running as marker `i` in the current job may call this, and it must
    /// not hold two of the returned references at once.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn private(&self, i: usize) -> &mut MarkStack {
        // SAFETY: the caller is marker i, the only user of this cell during the job.
        unsafe { &mut *self.markers[i].private.get() }
    }

    /// True when marker `i` should hand work to others: someone is hungry and its public
    /// stack is empty.
    #[inline]
    pub fn should_publish(&self, i: usize) -> bool {
        self.hungry.load(Ordering::Relaxed) > 0
            && self.markers[i].public_len.load(Ordering::Relaxed) == 0
    }

    /// Move the older half of `private` (the bottom: ranges nearer the roots, with more
    /// work behind them) to marker `i`'s public stack.
    pub fn publish(&self, i: usize, private: &mut MarkStack) {
        let len = private.items.len();
        if len < 2 {
            return;
        }
        let k = len / 2;
        let m = &self.markers[i];
        let mut public = m.public.lock().unwrap_or_else(|e| e.into_inner());
        for &(s, e) in &private.items.as_slice()[..k] {
            public.push_raw((s, e));
        }
        m.public_len.store(public.items.len(), Ordering::Release);
        drop(public);
        private.items.as_mut_slice().copy_within(k.., 0);
        private.items.truncate(len - k);
        self.wake_hungry(1);
    }

    /// Tell sleeping hungry markers that something changed (work published, or marking
    /// ended).
    fn wake_hungry(&self, n: i32) {
        self.work_seq.fetch_add(1, Ordering::SeqCst);
        if self.sleepers.load(Ordering::SeqCst) > 0 {
            futex_wake(&self.work_seq, n);
        }
    }

    /// Marker `i` holds no work any more: leave the busy count (waking everyone when it
    /// was the last: marking is over).
    fn leave_busy(&self) {
        if self.busy.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.wake_hungry(i32::MAX);
        }
    }

    /// Move marker `i`'s own public work back to `private`; true if there was any.
    fn take_own(&self, i: usize, private: &mut MarkStack) -> bool {
        let m = &self.markers[i];
        if m.public_len.load(Ordering::Acquire) == 0 {
            return false;
        }
        let mut public = m.public.lock().unwrap_or_else(|e| e.into_inner());
        let any = !public.is_empty();
        while let Some((s, e)) = public.items.pop() {
            private.push_raw((s, e));
        }
        m.public_len.store(0, Ordering::Release);
        if i == 0 {
            self.release_seed();
        }
        any
    }

    /// Take half of some other marker's public work into `private`; true on success.
    fn steal(&self, i: usize, private: &mut MarkStack) -> bool {
        let n = self.n;
        for d in 1..n {
            let v = (i + d) % n;
            let m = &self.markers[v];
            if m.public_len.load(Ordering::Acquire) == 0 {
                continue;
            }
            let mut public = m.public.lock().unwrap_or_else(|e| e.into_inner());
            let len = public.items.len();
            if len == 0 {
                continue;
            }
            let take = len.div_ceil(2);
            for _ in 0..take {
                let (s, e) = public.items.pop().expect("len checked");
                private.push_raw((s, e));
            }
            m.public_len.store(len - take, Ordering::Release);
            if v == 0 && len == take {
                self.release_seed();
            }
            self.markers[i].steals.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        false
    }

    fn any_public(&self) -> bool {
        self.markers()
            .iter()
            .any(|m| m.public_len.load(Ordering::Acquire) > 0)
    }

    /// Marker `i`'s part of a marking job: `drain(private)` scans until the private stack
    /// is empty (publishing on the way through [`MarkerPool::should_publish`]); between
    /// drains the marker takes back its own public work, steals, or — when no marker holds
    /// work — returns.
    pub fn work(&self, i: usize, drain: &mut dyn FnMut(&mut MarkStack)) {
        // SAFETY: this thread is marker i for this job.
        let private = unsafe { self.private(i) };
        // Marker 0 starts busy with the initial work (begin_marking); helpers start idle.
        if i != 0 && !self.find_work(i, private) {
            return;
        }
        loop {
            drain(private);
            if self.take_own(i, private) {
                continue;
            }
            self.leave_busy();
            if !self.find_work(i, private) {
                return;
            }
        }
    }

    /// A marker without work (not counted in `busy`) looks for some: true with work stolen
    /// into `private` (counted busy again), false when no marker holds work any more.
    fn find_work(&self, i: usize, private: &mut MarkStack) -> bool {
        self.hungry.fetch_add(1, Ordering::SeqCst);
        let mut spins = 0u32;
        let found = loop {
            if self.busy.load(Ordering::SeqCst) == 0 {
                break false;
            }
            if self.any_public() {
                // Busy before taking: while we hold stolen work, `busy` is never 0.
                self.busy.fetch_add(1, Ordering::SeqCst);
                if self.steal(i, private) {
                    break true;
                }
                self.leave_busy();
            }
            spins += 1;
            if spins < SPINS_BEFORE_SLEEP {
                std::hint::spin_loop();
                continue;
            }
            // Sleep until the next publish or the end of marking: read the sequence
            // first, check again, then wait only if nothing changed since (no lost wake-up).
            let seq = self.work_seq.load(Ordering::SeqCst);
            if self.busy.load(Ordering::SeqCst) == 0 || self.any_public() {
                continue;
            }
            self.sleepers.fetch_add(1, Ordering::SeqCst);
            futex_wait(&self.work_seq, seq, Some(HUNGRY_SLEEP));
            self.sleepers.fetch_sub(1, Ordering::SeqCst);
            spins = 0;
        };
        self.hungry.fetch_sub(1, Ordering::SeqCst);
        found
    }
}

extern "C" fn helper_main(arg: *mut libc::c_void) -> *mut libc::c_void {
    // SAFETY: `ensure_started` passes a pointer to a Marker inside a 'static pool.
    let m = unsafe { &*(arg as *const Marker) };
    // SAFETY: set before the thread was created, to the pool that owns `m` ('static).
    let pool = unsafe { &*m.pool.load(Ordering::Acquire) };
    let index = m.index.load(Ordering::Relaxed);
    if !crate::world::exempt_current_thread() {
        crate::util::eprintln_raw("dunegc: too many collector threads to exempt from stop-the-world; a marker thread exits");
        pool.ready.fetch_add(1, Ordering::AcqRel);
        futex_wake(&pool.ready, i32::MAX);
        return std::ptr::null_mut();
    }
    #[cfg(feature = "dune")]
    m.in_dune.store(dune_hw::in_dune(), Ordering::Release);
    let here = 0usize;
    m.fs_base
        .store(crate::world::current_fs_base(), Ordering::Release);
    m.start_sp.store(
        std::hint::black_box(&here) as *const usize as usize,
        Ordering::Release,
    );
    // A stop signal sent before the exemption was visible (another heap's collection)
    // is taken normally: the handler parks this thread until that world resumes.
    pool.ready.fetch_add(1, Ordering::AcqRel);
    futex_wake(&pool.ready, i32::MAX);
    pool.helper_loop(index)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEPTH: usize = 9;
    /// Items of the synthetic job: a 4-ary tree of depth DEPTH.
    const EXPECTED: usize = (4usize.pow(DEPTH as u32 + 1) - 1) / 3;

    struct Ctx {
        pool: std::sync::atomic::AtomicPtr<MarkerPool>,
        round: AtomicUsize,
        done: AtomicUsize,
        early_exits: AtomicUsize,
    }

    static CTX: Ctx = Ctx {
        pool: std::sync::atomic::AtomicPtr::new(std::ptr::null_mut()),
        round: AtomicUsize::new(0),
        done: AtomicUsize::new(0),
        early_exits: AtomicUsize::new(0),
    };

    /// A synthetic marking job: item `(d + 1, d + 2)` at depth `d < DEPTH` "scans" into
    /// four children of depth `d + 1`.
    fn job(ctx: usize, i: usize) {
        // SAFETY: ctx is &CTX (a static).
        let t = unsafe { &*(ctx as *const Ctx) };
        // SAFETY: set to a leaked pool before the helpers started.
        let pool = unsafe { &*t.pool.load(Ordering::Acquire) };
        let round = t.round.load(Ordering::SeqCst);
        pool.work(i, &mut |stack| {
            let mut n = 0u32;
            while let Some((d, _)) = stack.items.pop() {
                let d = d - 1;
                t.done.fetch_add(1, Ordering::SeqCst);
                if d < DEPTH {
                    for _ in 0..4 {
                        stack.push(d + 2, d + 3);
                    }
                }
                n += 1;
                if n.is_multiple_of(16) && pool.should_publish(i) {
                    pool.publish(i, stack);
                }
            }
        });
        // Leaving the round it joined with items of that round unprocessed is quitting
        // early. A helper that woke late may leave during a later round, or between two
        // rounds: not counted. The main thread publishes a round's number only once that
        // round's marking has begun, and resets `done` after it, so `done` is read first:
        // a reset seen here comes with the next round's number.
        let done = t.done.load(Ordering::SeqCst);
        if t.round.load(Ordering::SeqCst) == round && done < EXPECTED {
            t.early_exits.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Every item is processed exactly once, and no marker leaves the job while another
    /// still holds work (the termination property).
    #[test]
    fn every_item_once_and_no_marker_leaves_while_work_remains() {
        let pool: &'static MarkerPool = Box::leak(Box::new(MarkerPool::new(4)));
        CTX.pool.store(
            pool as *const MarkerPool as *mut MarkerPool,
            Ordering::Release,
        );
        let ctx = &CTX as *const Ctx as usize;
        pool.ensure_started(job, ctx).expect("marker threads");
        assert_eq!(pool.helpers(), 3);
        for round in 1..=20 {
            // Marking begins (busy) before the round's number is visible: a helper that
            // reads this number finds the round's work, or leaves only once it is done.
            pool.begin_marking();
            CTX.round.store(round, Ordering::SeqCst);
            CTX.done.store(0, Ordering::SeqCst);
            // SAFETY: this thread is marker 0.
            unsafe { pool.private(0) }.push(1, 2);
            pool.run(&mut || job(ctx, 0));
            assert_eq!(CTX.done.load(Ordering::SeqCst), EXPECTED, "round {round}");
            assert_eq!(
                CTX.early_exits.load(Ordering::SeqCst),
                0,
                "round {round}: a marker left while work remained"
            );
            assert!(pool
                .markers()
                .iter()
                .all(|m| m.public_len.load(Ordering::SeqCst) == 0));
        }
    }
}
