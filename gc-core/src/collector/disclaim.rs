//! Disclaim procedures (bdwgc's `gc_disclaim.h`): a C function called, before the
//! sweep, on every allocated object of a given kind that the collection found
//! unreachable. It returns nonzero to keep the object for this cycle (it is marked, so
//! the sweep leaves it allocated; what it references is not traced for it), zero to
//! let it be freed. With "mark unconditionally" set for the kind, every allocated
//! object of it is scanned as a root in every collection, without being marked itself,
//! so what an unreachable one references is still there when its procedure runs.
//!
//! A kind here is a scan class (`mark::descr`), or, for scan class 0, the plain gc-core
//! [`ObjectKind`]. The tables are process-wide atomics, like the scan classes.

use crate::heap::described::MAX_SCAN_CLASSES;
use crate::heap::kind::{ObjectKind, SpaceId, N_KINDS};
use crate::heap::span::SpanState;
use crate::heap::{Heap, HeapInner};
use crate::util::mmap::MmapVec;
use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// A disclaim procedure, with bdwgc's signature: `int (*)(void *obj)`, called with the
/// object's start.
pub type DisclaimProc = unsafe extern "C" fn(*mut c_void) -> c_int;

const SLOTS: usize = MAX_SCAN_CLASSES + N_KINDS;

/// Per slot: the procedure's address (0: none).
static PROCS: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(0) }; SLOTS];
/// Per slot: scan every allocated object as a root.
static UNCONDITIONAL: [AtomicBool; SLOTS] = [const { AtomicBool::new(false) }; SLOTS];
/// Some slot has a procedure or is marked unconditionally (so plain collections skip
/// both passes).
static ANY: AtomicBool = AtomicBool::new(false);

fn slot(kind: ObjectKind, scan: u8) -> usize {
    if scan == 0 {
        MAX_SCAN_CLASSES + kind as usize
    } else {
        scan as usize
    }
}

/// Install (or, with `None`, remove) the disclaim procedure of objects of gc-core kind
/// `kind` and scan class `scan` (scan class 0: every object of `kind` without one), and
/// whether such objects are scanned unconditionally. The procedure runs with the heap
/// lock held and the world stopped: it must not allocate, free, take locks that another
/// thread may hold, or call anything that takes the heap lock.
pub fn set_disclaim_proc(
    kind: ObjectKind,
    scan: u8,
    proc_: Option<DisclaimProc>,
    mark_unconditionally: bool,
) {
    let s = slot(kind, scan);
    PROCS[s].store(proc_.map_or(0, |p| p as usize), Ordering::Release);
    UNCONDITIONAL[s].store(mark_unconditionally, Ordering::Release);
    ANY.store(true, Ordering::Release);
}

impl Heap {
    /// The slot of the span starting at page `start`, if its objects are collectable and
    /// could have a procedure.
    fn disclaim_slot(&self, start: usize) -> usize {
        let span = self.pages.span(start);
        let kind = ObjectKind::from_u8(span.kind.load(Ordering::Relaxed));
        slot(kind, span.scan.load(Ordering::Relaxed))
    }

    /// Spans of the collected spaces whose slot satisfies `want`.
    fn disclaim_spans(&self, inner: &HeapInner, want: impl Fn(usize) -> bool) -> MmapVec<usize> {
        let mut spans = MmapVec::new();
        for space in [SpaceId::Normal, SpaceId::Atomic] {
            self.for_each_span(inner, space as usize, |start| {
                if want(self.disclaim_slot(start)) {
                    let _ = spans.push(start);
                }
            });
        }
        spans
    }

    /// Call `f(addr, obj_bytes)` for every allocated object of the span at page `start`.
    fn each_allocated(&self, start: usize, mut f: impl FnMut(usize, usize)) {
        let span = self.pages.span(start);
        let base = self.pages.page_addr(start);
        let obj = span.obj_bytes.load(Ordering::Relaxed) as usize;
        let n = match span.state() {
            SpanState::Small => span.n_objects.load(Ordering::Relaxed) as usize,
            SpanState::Large => 1,
            SpanState::Free => 0,
        };
        for i in 0..n {
            let a = base + i * obj;
            if self.allocs.get(a) {
                f(a, obj);
            }
        }
    }

    /// Root marking: scan every allocated object of the unconditionally marked kinds
    /// (bdwgc's `GC_push_unconditionally`), without marking the objects themselves.
    pub(super) fn push_unconditionally(&self, inner: &mut HeapInner) {
        if !ANY.load(Ordering::Acquire) {
            return;
        }
        let spans = self.disclaim_spans(inner, |s| UNCONDITIONAL[s].load(Ordering::Acquire));
        let stack = &mut inner.gc.mark_stack;
        for &start in spans.as_slice() {
            if !ObjectKind::from_u8(self.pages.span(start).kind.load(Ordering::Relaxed)).is_traced()
            {
                continue;
            }
            self.each_allocated(start, |a, len| self.push_object(a, len, start, stack));
        }
    }

    /// Before the sweep: run the disclaim procedures on the unreachable objects of their
    /// kinds; mark those whose procedure returns nonzero.
    pub(super) fn disclaim_before_sweep(&self, inner: &HeapInner) {
        if !ANY.load(Ordering::Acquire) {
            return;
        }
        let spans = self.disclaim_spans(inner, |s| PROCS[s].load(Ordering::Acquire) != 0);
        for &start in spans.as_slice() {
            let p = PROCS[self.disclaim_slot(start)].load(Ordering::Acquire);
            // SAFETY: only set_disclaim_proc stores nonzero values: DisclaimProc addresses.
            let f = unsafe { std::mem::transmute::<usize, DisclaimProc>(p) };
            self.each_allocated(start, |a, _| {
                if self.marks.get(a) {
                    return;
                }
                // SAFETY: bdwgc's contract: the procedure gets an unreachable object of its
                // kind, still intact, before it is reclaimed.
                if unsafe { f(a as *mut c_void) } != 0 {
                    self.marks.set_atomic(a);
                }
            });
        }
    }
}
