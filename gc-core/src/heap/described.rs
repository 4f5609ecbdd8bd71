//! Allocation of objects of a registered scan class: objects the marker scans by a
//! descriptor (`crate::mark::descr`) instead of whole (bdwgc's custom kinds and typed
//! objects).
//!
//! Such objects live in spans of their own, tagged with the scan class (`Span::scan`),
//! so the marker finds the descriptor with the span it already loads. These spans are
//! never owned by a thread cache: every allocation takes the heap lock and claims the
//! first free slot of a partial span of its (scan class, size class). That is slower
//! than the cache fast path, and meant for the few objects programs allocate this way
//! (guile's weak tables and thread objects, typed objects).

use super::alloc::{reentrant, zero};
use super::kind::ObjectKind;
use super::size_class::{SizeClass, GRANULE_BYTES, MAX_SMALL_BYTES};
use super::span::SpanState;
use super::{Heap, HeapInner};
use crate::error::GcError;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Scan classes a heap can hold spans of (class 0 is "no descriptor").
pub const MAX_SCAN_CLASSES: usize = 32;

/// Scan class descriptors and their add-size flags (class 0 unused), process-wide.
static SCAN_DESCR: [AtomicUsize; MAX_SCAN_CLASSES] =
    [const { AtomicUsize::new(0) }; MAX_SCAN_CLASSES];
static SCAN_ADD_SIZE: [AtomicBool; MAX_SCAN_CLASSES] =
    [const { AtomicBool::new(false) }; MAX_SCAN_CLASSES];
/// Scan classes registered so far, plus one (class 0 is reserved).
static N_SCAN: AtomicUsize = AtomicUsize::new(1);
static REGISTER: Mutex<()> = Mutex::new(());

/// Register a scan class: objects of it are scanned by bdwgc mark descriptor `descr`
/// (see `mark::descr`), plus their size in bytes first if `add_size`. None when all
/// classes are taken.
pub fn register_scan_class(descr: usize, add_size: bool) -> Option<u8> {
    let _g = REGISTER.lock().unwrap_or_else(|e| e.into_inner());
    let c = N_SCAN.load(Ordering::Acquire);
    if c >= MAX_SCAN_CLASSES {
        return None;
    }
    SCAN_DESCR[c].store(descr, Ordering::Release);
    SCAN_ADD_SIZE[c].store(add_size, Ordering::Release);
    N_SCAN.store(c + 1, Ordering::Release);
    Some(c as u8)
}

/// The descriptor for an object of `len` bytes of scan class `scan`.
#[inline]
pub(crate) fn scan_class_descr(scan: u8, len: usize) -> usize {
    let c = scan as usize;
    let d = SCAN_DESCR[c].load(Ordering::Acquire);
    if SCAN_ADD_SIZE[c].load(Ordering::Relaxed) {
        d.wrapping_add(len)
    } else {
        d
    }
}

impl Heap {
    /// Allocate `len_bytes`, zeroed and 16-byte aligned, of `kind`, scanned by scan class
    /// `scan` (a value from [`register_scan_class`]; 0 is a plain [`Heap::alloc`]).
    /// A scan class that was never registered is an error
    /// ([`GcError::BadScanClass`]) that changes nothing.
    pub fn alloc_described(
        &'static self,
        kind: ObjectKind,
        scan: u8,
        len_bytes: usize,
    ) -> Result<usize, GcError> {
        if scan == 0 {
            return self.alloc(kind, len_bytes, GRANULE_BYTES);
        }
        if scan as usize >= N_SCAN.load(Ordering::Acquire) {
            return Err(GcError::BadScanClass { scan });
        }
        let len = len_bytes.max(1);
        let class = match SizeClass::for_request(len, GRANULE_BYTES) {
            Some(c) if len <= MAX_SMALL_BYTES => c,
            _ => return self.alloc_large(kind, len, GRANULE_BYTES, scan),
        };
        if self.lock_held_here() {
            return Err(reentrant());
        }
        let size = class.object_bytes();
        let g = self.lock();
        let room = g.scan_partial[scan as usize][class.index()] != 0;
        let mut g = self.poll_unless_room(g, kind.space() as usize, class.span_pages(), 1, room)?;
        let addr = match self.claim_described(&mut g, kind, scan, class) {
            Some(a) => a,
            None => {
                let a;
                (g, a) =
                    self.collect_and_retry(g, |g| self.claim_described(g, kind, scan, class))?;
                match a {
                    Some(a) => a,
                    None => return Err(self.no_pages_error(&g, size)),
                }
            }
        };
        g.bytes_since_gc += size as isize;
        g.gc.stats.bytes_allocated += size as u64;
        drop(g);
        Ok(addr)
    }

    /// Claim a free slot of (scan, class), from a partial span or a new one (heap lock
    /// held). The slot is zeroed.
    fn claim_described(
        &self,
        g: &mut HeapInner,
        kind: ObjectKind,
        scan: u8,
        class: SizeClass,
    ) -> Option<usize> {
        loop {
            let mut head = g.scan_partial[scan as usize][class.index()];
            if head == 0 {
                let run = self.alloc_pages(g, kind.space() as usize, class.span_pages(), 1)?;
                self.init_span(
                    run,
                    SpanState::Small,
                    kind,
                    class.0,
                    class.object_bytes(),
                    class.objects_per_span(),
                    scan,
                );
                self.link_partial(g, run.start, kind, class);
                head = run.start as u32 + 1;
            }
            let start = head as usize - 1;
            let base = self.pages.page_addr(start);
            let size = class.object_bytes();
            let found = (0..class.objects_per_span())
                .map(|i| base + i * size)
                .find(|&a| !self.allocs.get(a) && self.allocs.set_atomic(a));
            if self.free_slots(start) == 0 {
                self.unlink_partial(g, start, kind, class);
            }
            if let Some(a) = found {
                if self.allocate_black.load(Ordering::Relaxed) {
                    self.marks.set_parallel(a);
                }
                zero(a, size);
                return Some(a);
            }
        }
    }
}
