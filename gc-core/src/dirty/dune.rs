//! Backend `dune`: the hardware page-table dirty bits of the process's Dune guest page
//! table, read and cleared through `dune-hw` (feature `dune`).
//!
//! - **arm**: clear the D bits of every armed page by walking the leaf tables that cover
//!   the ranges (no system call, no fault), then flush: this vCPU now, every other vCPU
//!   before it next enters the guest. Arming needs the world stopped
//!   ([`DirtyTracker::arm_needs_stopped_world`]) so that no vCPU keeps running on a
//!   translation whose D bit was just cleared; a stopped Dune thread waits on the host side
//!   of its exit loop and flushes when it resumes, so no write after the clear can be lost.
//! - **collect**: the same walk reads and clears D bits (a load and an atomic AND per
//!   present page), plus the writes the host made on the guest's behalf while running
//!   forwarded system calls (`read(2)` into a buffer sets no guest D bit), which
//!   `dune-hw` reports to a hook; a write the host cannot name (`Unknown`) makes every
//!   armed page dirty.
//! - **disarm**: nothing to restore (D bits are plain memory).
//! - **collect_and_disarm** (the end of a cycle): the collect's walk reads D bits without
//!   clearing them, then sets the D bit of every armed page still clean, and flushes once.
//!   A clear D bit costs the program a KVM page fault on its next write to the page (the
//!   shadow entry stays read-only until the MMU has set D): measured ~60-140 µs each on
//!   this loaded host (`bench-results/dune-tax.md`), and between cycles those faults buy
//!   nothing, since the next arm clears every bit again. The set bits are false positives
//!   only for a scan without an arm before it, which the collector never makes.
//!
//! TLB shootdown, measured (`cargo bench --bench dune -- tlb_strategy`, clear the D bits of
//! N pages, flush, write the N pages again; this PVM host, shadow paging):
//!
//! | N pages | ring-3: range / full | ring-0 (CPL0 emulated): invlpg range / CR3 reload |
//! |---|---|---|
//! | 1 | 34.2 / 34.3 µs | 308 / 280 µs |
//! | 16 | 76.0 / 76.1 µs | 756 / 693 µs |
//! | 256 | 687 / 683 µs | 6.39 / 6.39 ms (both CR3: above 32 pages) |
//!
//! The PVM modes (issue 11, `bench-results/pvm-modes.md`): `pvm` (ring-3 semantics, the flush
//! request answered by a hypercall in the native monitor stub) 1 page 10.4 / 10.7 µs, 256
//! pages 718 / 687 µs; `pvm-ring0` (`HC_FLUSH_TLB_ONE` per page / `HC_FLUSH_TLB`) 7.4 / 11.1
//! µs and 957 µs / 1.05 ms. The refill dominates there too, so the choice below holds.
//!
//! A CPL3 guest cannot flush its own TLB, so ring-3 has one mechanism (a request the
//! monitor serves by reloading CR3 through KVM's sync registers) and its cost is per
//! request; in ring-0 on this host a CR3 reload beats even a single emulated `invlpg`.
//! The refill after the flush (a shadow fault per page, ~2.6 µs) dominates both. Hence:
//! one flush per arm and per collect, for all ranges together, never one per range or
//! per page; on EPT/NPT hosts `dune_hw::flush` keeps `invlpg` for ranges of up to 32
//! pages, where it is the cheaper choice. No IPIs: the flush covers this vCPU now and
//! every other vCPU before it next enters the guest, and arm and collect run with every
//! other thread stopped, so none runs guest code on a stale translation in between —
//! no write after the clear can go unrecorded.
//!
//! Correctness needs every thread that writes the heap to run in Dune mode: a thread
//! outside Dune writes through the host's page tables and sets no guest D bit. `arm`
//! accepts either a process put into Dune by [`enter_process`] (every thread created
//! afterwards enters Dune on its own vCPU) or a single-threaded process whose thread is in
//! Dune, and otherwise fails with `Unsupported` (the collector then runs that cycle as a
//! full collection and says why in its statistics).

use super::{Backend, DirtyError, DirtySet, DirtyTracker, TrackerStats};
use crate::address::{Page, PageRange};
use crate::util::mmap::{MmapVec, BYTES_IN_PAGE};
use dune_hw::{DirtyView, HostWrite, TlbFlush};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// Capacity of the host-write log between two collections; past it, every armed page
/// counts as written.
const HOST_LOG_CAPACITY: usize = 4096;

/// Writes the host made into guest memory, as `(start, len)`; filled by the hook (no
/// allocation, no lock: an index claimed with one atomic add).
static HOST_LOG: [(AtomicU64, AtomicU64); HOST_LOG_CAPACITY] =
    [const { (AtomicU64::new(0), AtomicU64::new(0)) }; HOST_LOG_CAPACITY];
static HOST_LOG_LEN: AtomicUsize = AtomicUsize::new(0);
/// The log overflowed or the host wrote memory it could not name.
static HOST_LOG_ALL: AtomicBool = AtomicBool::new(false);
/// One Dune tracker per process: the hook and the log are process-wide.
static OPEN: AtomicBool = AtomicBool::new(false);
/// [`enter_process`] succeeded: every thread of the process runs in Dune mode (it was the
/// only thread then, and dune-hw puts every thread created afterwards into Dune).
static PROCESS_WIDE: AtomicBool = AtomicBool::new(false);

/// Put the whole process into Dune mode for the collector: the calling thread enters Dune
/// and every thread created afterwards does too (`dune_hw::enter_process`). Call it early
/// in `main`, before spawning threads: threads already running outside Dune would write
/// the heap without setting guest dirty bits, so it refuses then. The collector's
/// stop-the-world handler is then installed from inside Dune, as a guest signal action.
pub fn enter_process() -> Result<(), DirtyError> {
    let mut user_threads = 0;
    crate::world::for_each_tid(|tid| {
        // The collector's marker threads never write heap pages (see `crate::mark::pool`).
        user_threads +=
            usize::from(!crate::world::is_kernel_worker(tid) && !crate::world::is_exempt(tid))
    })
    .map_err(|source| DirtyError::Os {
        backend: Backend::Dune,
        op: "listing /proc/self/task",
        source,
    })?;
    if user_threads > 1 && !dune_hw::process_wide() {
        return Err(unsupported("enter Dune before the program starts threads: threads already running outside Dune would write the heap without setting guest dirty bits"));
    }
    let os = |source| DirtyError::Os {
        backend: Backend::Dune,
        op: "installing the stop-the-world handler",
        source,
    };
    crate::world::init().map_err(os)?;
    dune_hw::enter_process()
        .map_err(|e| unsupported(&format!("entering Dune mode failed: {e}")))?;
    // Now as a guest signal action: delivered inside the guest at a safe point (see
    // `world::install_handler`).
    crate::world::install_handler().map_err(os)?;
    PROCESS_WIDE.store(true, Ordering::Release);
    Ok(())
}

fn host_write_hook(w: HostWrite) {
    match w {
        HostWrite::Range { start, len_bytes } => {
            let i = HOST_LOG_LEN.fetch_add(1, Ordering::AcqRel);
            if i < HOST_LOG_CAPACITY {
                HOST_LOG[i].0.store(start.0, Ordering::Relaxed);
                HOST_LOG[i].1.store(len_bytes, Ordering::Release);
            } else {
                HOST_LOG_ALL.store(true, Ordering::Release);
            }
        }
        HostWrite::Unknown { .. } => HOST_LOG_ALL.store(true, Ordering::Release),
    }
}

fn reset_host_log() {
    HOST_LOG_LEN.store(0, Ordering::Release);
    HOST_LOG_ALL.store(false, Ordering::Release);
}

fn unsupported(reason: &str) -> DirtyError {
    DirtyError::Unsupported {
        backend: Backend::Dune,
        reason: reason.to_owned(),
    }
}

/// The Dune hardware dirty-bit tracker.
pub struct DuneTracker {
    view: DirtyView,
    armed: MmapVec<PageRange>,
    stats: TrackerStats,
}

impl std::fmt::Debug for DuneTracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DuneTracker")
            .field("armed", &self.armed.len())
            .finish()
    }
}

/// Why Dune dirty bits cannot see every write of this process right now, if so.
fn writers_outside_dune() -> Option<&'static str> {
    if PROCESS_WIDE.load(Ordering::Acquire) && dune_hw::process_wide() && dune_hw::in_dune() {
        return None;
    }
    if !dune_hw::in_dune() {
        return Some(
            "the collecting thread is not running in Dune mode (call dune_hw::enter() first)",
        );
    }
    let mut n = 0;
    // Marker threads (exempt from stop-the-world) only read heap pages: not writers.
    let writer = |tid| !crate::world::is_kernel_worker(tid) && !crate::world::is_exempt(tid);
    if crate::world::for_each_tid(|tid| n += usize::from(writer(tid))).is_err() {
        return Some("cannot list the process's threads in /proc/self/task");
    }
    (n > 1).then_some(
        "the process has threads outside Dune mode, whose writes set no guest dirty bit (threads in Dune arrive with process-wide Dune)",
    )
}

impl DuneTracker {
    /// Open the tracker: Dune must be initialised in this process (by `dune_hw::enter`).
    pub fn open() -> Result<DuneTracker, DirtyError> {
        let Some(view) = dune_hw::dirty_view() else {
            return Err(unsupported("Dune mode is not active in this process (dune_hw::enter() was not called, or /dev/kvm is unavailable)"));
        };
        if OPEN.swap(true, Ordering::AcqRel) {
            return Err(unsupported("a Dune tracker is already open in this process (its host-write hook is process-wide)"));
        }
        reset_host_log();
        if !dune_hw::set_host_write_hook(Some(host_write_hook)) {
            OPEN.store(false, Ordering::Release);
            return Err(unsupported("Dune is not initialised"));
        }
        Ok(DuneTracker {
            view,
            armed: MmapVec::new(),
            stats: TrackerStats::default(),
        })
    }

    fn range_bounds(r: &PageRange) -> (u64, u64) {
        (r.start.start().as_usize() as u64, r.end().as_usize() as u64)
    }
}

impl Drop for DuneTracker {
    fn drop(&mut self) {
        dune_hw::set_host_write_hook(None);
        OPEN.store(false, Ordering::Release);
    }
}

impl DirtyTracker for DuneTracker {
    fn backend(&self) -> Backend {
        Backend::Dune
    }

    fn sees_kernel_writes(&self) -> bool {
        true
    }

    fn arm_needs_stopped_world(&self) -> bool {
        true
    }

    fn arm(&mut self, ranges: &[PageRange]) -> Result<(), DirtyError> {
        if let Some(why) = writers_outside_dune() {
            return Err(unsupported(why));
        }
        self.armed.clear();
        // Clear every range first, then one flush for all of them (see the module docs
        // for why one flush and not one per range).
        let mut flush: Option<TlbFlush> = None;
        for r in ranges {
            self.armed.push(*r).map_err(|source| DirtyError::Os {
                backend: Backend::Dune,
                op: "mapping the armed-range list",
                source,
            })?;
            let (start, end) = Self::range_bounds(r);
            let f = self.view.collect_and_clear(start, end, &mut |_| {});
            flush = Some(flush.map_or(f, |g| g.merge(f)));
        }
        if let Some(f) = flush {
            dune_hw::flush(f);
        }
        reset_host_log();
        self.stats.arms += 1;
        Ok(())
    }

    fn collect_and_rearm(&mut self, out: &mut DirtySet) -> Result<(), DirtyError> {
        self.collect(out, true);
        Ok(())
    }

    fn collect_and_disarm(&mut self, out: &mut DirtySet) -> Result<(), DirtyError> {
        // D bits read, not cleared; then set on every armed page still clean, and one
        // flush: under shadow paging the first write to a page whose D bit is clear is a
        // KVM page fault, which between cycles buys nothing (the next arm clears every D
        // bit again). After the flush KVM resyncs those entries writable.
        self.collect(out, false);
        let mut flush: Option<TlbFlush> = None;
        for r in self.armed.as_slice() {
            let (start, end) = Self::range_bounds(r);
            let (f, n) = self.view.set_dirty(start, end);
            if n > 0 {
                flush = Some(flush.map_or(f, |g| g.merge(f)));
            }
        }
        if let Some(f) = flush {
            dune_hw::flush(f);
        }
        self.disarm()
    }

    fn disarm(&mut self) -> Result<(), DirtyError> {
        self.armed.clear();
        Ok(())
    }

    fn stats(&self) -> TrackerStats {
        self.stats
    }
}

impl DuneTracker {
    /// Appends the armed pages whose D bit is set (clearing those bits and flushing when
    /// `clear`), and those the host wrote for the guest.
    fn collect(&mut self, out: &mut DirtySet, clear: bool) {
        let mut reported = 0u64;
        let mut flush: Option<TlbFlush> = None;
        for r in self.armed.as_slice() {
            let (start, end) = Self::range_bounds(r);
            let mut report = |page: u64| {
                out.push_page(Page::from_aligned(page as usize));
                reported += 1;
            };
            if clear {
                let f = self.view.collect_and_clear(start, end, &mut report);
                flush = Some(flush.map_or(f, |g| g.merge(f)));
            } else {
                self.view.for_each_dirty(start, end, &mut report);
            }
        }
        if let Some(f) = flush {
            dune_hw::flush(f);
        }
        // Writes the host made for the guest: merge those inside armed ranges.
        if HOST_LOG_ALL.load(Ordering::Acquire) {
            for r in self.armed.as_slice() {
                out.push_range(*r);
                reported += r.n_pages as u64;
            }
        } else {
            let n = HOST_LOG_LEN.load(Ordering::Acquire).min(HOST_LOG_CAPACITY);
            for (s, l) in &HOST_LOG[..n] {
                let (ws, wl) = (
                    s.load(Ordering::Relaxed) as usize,
                    l.load(Ordering::Acquire) as usize,
                );
                if wl == 0 {
                    continue;
                }
                let (first, last) = (
                    ws & !(BYTES_IN_PAGE - 1),
                    (ws + wl - 1) & !(BYTES_IN_PAGE - 1),
                );
                for r in self.armed.as_slice() {
                    let (rs, re) = (r.start.start().as_usize(), r.end().as_usize());
                    let (a, b) = (first.max(rs), last.min(re - BYTES_IN_PAGE));
                    if a <= b {
                        let n_pages = (b - a) / BYTES_IN_PAGE + 1;
                        out.push_range(PageRange::new(Page::from_aligned(a), n_pages));
                        reported += n_pages as u64;
                    }
                }
            }
        }
        reset_host_log();
        self.stats.collections += 1;
        self.stats.pages_reported += reported;
    }
}
