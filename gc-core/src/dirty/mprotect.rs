//! Backend `mprotect`: write-protect the armed pages and learn about writes from SIGSEGV.
//!
//! `arm` makes every armed range `PROT_READ` and clears a side bitmap (one bit per page).
//! The first write to a page faults; the process-wide SIGSEGV handler finds the page in a
//! fixed, lock-free table of armed ranges, sets its bit (atomic OR), counts the fault and
//! makes the page `PROT_READ | PROT_WRITE` again, then returns so the write re-executes.
//! `collect_and_rearm` reports the pages whose bits are set, write-protects exactly those
//! pages again and clears their bits.
//!
//! The handler is installed once per process (`sigaction`, `SA_SIGINFO | SA_ONSTACK`) and
//! never removed. A fault outside every armed range is passed to the handler that was
//! installed before ours — typically Rust's stack-overflow handler — honouring its
//! `SA_SIGINFO` flag; if that was `SIG_DFL` or `SIG_IGN`, the default action is restored
//! and the instruction re-executes, so the process dies of the fault as it would have
//! without us.
//!
//! Several trackers may be armed at once (one per heap): each armed range holds one slot
//! of the table ([`MAX_ARMED_RANGES`] in the whole process). The handler neither allocates
//! nor locks; a tracker that frees a slot waits until no handler is still using it.
//!
//! Caveats:
//! - The kernel does not fault on its own writes: `read(2)` into a protected page fails
//!   with `EFAULT` instead, so [`DirtyTracker::sees_kernel_writes`] is false and the
//!   collector must not arm pages that can be syscall buffers.
//! - Every unprotected page may split a mapping in the kernel; many scattered dirty pages
//!   count against `vm.max_map_count`. If the handler's `mprotect` fails the process aborts
//!   with a fixed message (there is no way to report an error from a fault).
//! - Armed ranges must be ordinary `PROT_READ | PROT_WRITE` memory; `disarm` restores that.
//! - As the trait requires, `arm`, `collect_and_rearm` and `disarm` run while the threads
//!   that write the armed pages are stopped.

use super::{Backend, DirtyError, DirtySet, DirtyTracker, TrackerStats};
use crate::address::PageRange;
use crate::util::mmap::{heap_prot, Mapping, MmapVec, BYTES_IN_PAGE, LOG_BYTES_IN_PAGE};
use std::cell::UnsafeCell;
use std::io;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::Once;

/// The most ranges that can be armed at once in the whole process, over all trackers.
pub const MAX_ARMED_RANGES: usize = 4096;

/// `si_code` of a fault on a mapped page whose protection forbids the access.
const SEGV_ACCERR: libc::c_int = 2;

const BITS_PER_WORD: usize = 64;

// ---------------------------------------------------------------------------------------
// The process-wide table of armed ranges, read by the signal handler.

const SLOT_FREE: usize = 0;
const SLOT_CLAIMED: usize = 1;
const SLOT_ARMED: usize = 2;

/// One armed range as the handler sees it. Fields other than `state` are written only
/// while the slot is `SLOT_CLAIMED` by its tracker and read only after seeing `SLOT_ARMED`.
struct Slot {
    state: AtomicUsize,
    /// Handlers currently between "this slot matches" and "done with its bitmap".
    users: AtomicUsize,
    start: AtomicUsize,
    end: AtomicUsize,
    /// First word of the range's bitmap, in the owning tracker's mapping.
    bits: AtomicPtr<AtomicU64>,
    /// Write faults handled for this range since it was armed.
    faults: AtomicU64,
}

impl Slot {
    const fn new() -> Slot {
        Slot {
            state: AtomicUsize::new(SLOT_FREE),
            users: AtomicUsize::new(0),
            start: AtomicUsize::new(0),
            end: AtomicUsize::new(0),
            bits: AtomicPtr::new(std::ptr::null_mut()),
            faults: AtomicU64::new(0),
        }
    }
}

static SLOTS: [Slot; MAX_ARMED_RANGES] = [const { Slot::new() }; MAX_ARMED_RANGES];
/// One past the highest slot ever claimed; the handler scans only below it.
static SLOTS_HIGH_WATER: AtomicUsize = AtomicUsize::new(0);

/// The SIGSEGV action that was installed before ours, written once before ours goes in.
struct PreviousAction(UnsafeCell<MaybeUninit<libc::sigaction>>);

// SAFETY: the cell is written exactly once, inside `INSTALL.call_once`, before
// `PREVIOUS_READY` is set with Release ordering; every reader first loads `PREVIOUS_READY`
// with Acquire ordering and reads only if it is true. After that nobody writes it.
unsafe impl Sync for PreviousAction {}

static PREVIOUS: PreviousAction = PreviousAction(UnsafeCell::new(MaybeUninit::uninit()));
static PREVIOUS_READY: AtomicBool = AtomicBool::new(false);
static INSTALL: Once = Once::new();

/// Install the SIGSEGV handler once per process.
fn install_handler() -> Result<(), DirtyError> {
    let mut result = Ok(());
    INSTALL.call_once(|| result = try_install_handler());
    if result.is_ok() && !PREVIOUS_READY.load(Ordering::Acquire) {
        return Err(DirtyError::Os {
            backend: Backend::Mprotect,
            op: "sigaction(SIGSEGV) (an earlier attempt failed)",
            source: io::Error::from_raw_os_error(libc::EINVAL),
        });
    }
    result
}

fn try_install_handler() -> Result<(), DirtyError> {
    let os = |op, source| DirtyError::Os {
        backend: Backend::Mprotect,
        op,
        source,
    };
    // SAFETY: a zeroed sigaction is a valid value (SIG_DFL, empty mask, no flags).
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: a null new action only queries; `old` is a valid out-pointer.
    if unsafe { libc::sigaction(libc::SIGSEGV, std::ptr::null(), &mut old) } != 0 {
        return Err(os("sigaction(SIGSEGV, query)", io::Error::last_os_error()));
    }
    // SAFETY: we are inside INSTALL.call_once, the only writer, and PREVIOUS_READY is
    // still false, so no reader looks at the cell yet.
    unsafe { (*PREVIOUS.0.get()).write(old) };
    PREVIOUS_READY.store(true, Ordering::Release);

    // SAFETY: as above, zeroed is a valid starting value.
    let mut new: libc::sigaction = unsafe { std::mem::zeroed() };
    new.sa_sigaction = on_sigsegv as *const () as libc::sighandler_t;
    new.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_RESTART;
    // Block every signal while the handler runs, so a thread is never suspended (or
    // interrupted by another handler) while it holds a slot.
    // SAFETY: `new.sa_mask` is a valid sigset_t owned by us.
    unsafe { libc::sigfillset(&mut new.sa_mask) };
    // SAFETY: `new` is fully initialised and `on_sigsegv` has the SA_SIGINFO signature.
    if unsafe { libc::sigaction(libc::SIGSEGV, &new, std::ptr::null_mut()) } != 0 {
        PREVIOUS_READY.store(false, Ordering::Release);
        return Err(os(
            "sigaction(SIGSEGV, install)",
            io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// The SIGSEGV handler. Async-signal-safe: atomics, `mprotect`, `sigaction`, `write`.
extern "C" fn on_sigsegv(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: with SA_SIGINFO the kernel passes a valid siginfo_t for this delivery.
    let code = unsafe { (*info).si_code };
    // SAFETY: as above; for SIGSEGV the fault address is the union member that is set.
    let addr = unsafe { (*info).si_addr() } as usize;
    if code == SEGV_ACCERR {
        // SAFETY: __errno_location returns this thread's errno slot, valid for its lifetime.
        let errno_slot = unsafe { libc::__errno_location() };
        // SAFETY: as above; the handler must leave the interrupted code's errno intact.
        let saved_errno = unsafe { *errno_slot };
        let handled = record_write_fault(addr);
        // SAFETY: as above.
        unsafe { *errno_slot = saved_errno };
        if handled {
            return;
        }
    }
    chain_to_previous(sig, info, ctx);
}

/// If `addr` lies in an armed range: mark its page, unprotect it, and return true.
fn record_write_fault(addr: usize) -> bool {
    let page = addr & !(BYTES_IN_PAGE - 1);
    let high = SLOTS_HIGH_WATER
        .load(Ordering::Acquire)
        .min(MAX_ARMED_RANGES);
    for slot in &SLOTS[..high] {
        if slot.state.load(Ordering::Acquire) != SLOT_ARMED
            || page < slot.start.load(Ordering::Relaxed)
            || page >= slot.end.load(Ordering::Relaxed)
        {
            continue;
        }
        slot.users.fetch_add(1, Ordering::SeqCst);
        // Re-check now that the owner must wait for us before freeing the bitmap. State
        // first: once it reads ARMED, the fields below are the ones published with it and
        // cannot change until we leave.
        let armed = slot.state.load(Ordering::SeqCst) == SLOT_ARMED;
        let start = slot.start.load(Ordering::SeqCst);
        if armed && page >= start && page < slot.end.load(Ordering::SeqCst) {
            let (word, mask) = bit_position(page_index(start, page));
            let bits = slot.bits.load(Ordering::Acquire);
            // SAFETY: the slot is armed and we are counted in `users`, so its owner keeps
            // the bitmap mapped until we leave; `word` is below the range's word count
            // because `page` lies inside the range the bitmap was sized for.
            let w = unsafe { &*bits.add(word) };
            w.fetch_or(mask, Ordering::SeqCst);
            slot.faults.fetch_add(1, Ordering::Relaxed);
            // SAFETY: `page` is a page-aligned address inside a range the tracker armed and
            // keeps mapped; making it writable is exactly what disarm would do.
            let rc = unsafe {
                libc::mprotect(
                    page as *mut libc::c_void,
                    BYTES_IN_PAGE,
                    heap_prot(libc::PROT_READ | libc::PROT_WRITE),
                )
            };
            slot.users.fetch_sub(1, Ordering::SeqCst);
            if rc != 0 {
                fatal(b"dunegc: mprotect(PROT_READ|PROT_WRITE) failed in the write-fault handler (vm.max_map_count reached?)\n");
            }
            return true;
        }
        slot.users.fetch_sub(1, Ordering::SeqCst);
    }
    false
}

/// Hand a fault that is not ours to the handler installed before ours.
fn chain_to_previous(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    if PREVIOUS_READY.load(Ordering::Acquire) {
        // SAFETY: PREVIOUS_READY (Acquire) is true, so the cell was initialised and is
        // never written again.
        let previous = unsafe { (*PREVIOUS.0.get()).assume_init_ref() };
        let handler = previous.sa_sigaction;
        if handler != libc::SIG_DFL && handler != libc::SIG_IGN {
            if previous.sa_flags & libc::SA_SIGINFO != 0 {
                // SAFETY: the previous action was installed with SA_SIGINFO, so its handler
                // has the three-argument signature.
                let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                    unsafe { std::mem::transmute(handler) };
                f(sig, info, ctx);
            } else {
                // SAFETY: without SA_SIGINFO the previous handler takes the signal number.
                let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(handler) };
                f(sig);
            }
            return;
        }
    }
    // SIG_DFL (or SIG_IGN, which the kernel does not honour for a fault anyway): restore the
    // default action; the instruction re-executes, faults again and the process dies of it.
    // SAFETY: zeroed is SIG_DFL with an empty mask.
    let mut dfl: libc::sigaction = unsafe { std::mem::zeroed() };
    dfl.sa_sigaction = libc::SIG_DFL;
    // SAFETY: `dfl` is a valid action; sigaction is async-signal-safe.
    if unsafe { libc::sigaction(libc::SIGSEGV, &dfl, std::ptr::null_mut()) } != 0 {
        fatal(b"dunegc: segmentation fault outside any armed range\n");
    }
}

/// Write a fixed message to stderr and abort. For the signal path: no allocation.
fn fatal(msg: &[u8]) -> ! {
    // SAFETY: `msg` is a valid buffer of msg.len() bytes; write is async-signal-safe.
    unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
    std::process::abort()
}

// ---------------------------------------------------------------------------------------
// Bitmap arithmetic (pure).

/// Index of `page` in a range starting at `range_start` (both byte addresses).
const fn page_index(range_start: usize, page: usize) -> usize {
    (page - range_start) >> LOG_BYTES_IN_PAGE
}

/// The bitmap word and bit mask of page number `index`.
const fn bit_position(index: usize) -> (usize, u64) {
    (index / BITS_PER_WORD, 1u64 << (index % BITS_PER_WORD))
}

/// Words needed for `n_pages` bits.
const fn words_for(n_pages: usize) -> usize {
    n_pages.div_ceil(BITS_PER_WORD)
}

/// Call `f(first_index, n)` for every run of consecutive set bits in `words` (bit i of
/// word w is index 64*w + i), in increasing order, runs merged across word boundaries.
/// Stops at the first error `f` returns.
fn for_each_run<E>(
    words: impl Iterator<Item = u64>,
    mut f: impl FnMut(usize, usize) -> Result<(), E>,
) -> Result<(), E> {
    let mut run: Option<(usize, usize)> = None;
    for (w, mut bits) in words.enumerate() {
        while bits != 0 {
            let i = w * BITS_PER_WORD + bits.trailing_zeros() as usize;
            let ones = (bits >> (i % BITS_PER_WORD)).trailing_ones() as usize;
            match &mut run {
                Some((start, n)) if *start + *n == i => *n += ones,
                _ => {
                    if let Some((start, n)) = run {
                        f(start, n)?;
                    }
                    run = Some((i, ones));
                }
            }
            let shift = i % BITS_PER_WORD + ones;
            bits = if shift >= BITS_PER_WORD {
                0
            } else {
                bits & (!0u64 << shift)
            };
        }
    }
    if let Some((start, n)) = run {
        f(start, n)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The tracker.

/// One armed range: where it is, its slot in the table, its first bitmap word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Armed {
    range: PageRange,
    slot: usize,
    first_word: usize,
}

/// Write-protection + SIGSEGV tracking.
#[derive(Debug)]
pub struct MprotectTracker {
    armed: MmapVec<Armed>,
    /// The side bitmap of every armed range, each starting on a word boundary.
    bitmap: Option<Mapping>,
    stats: TrackerStats,
    /// Faults counted by slots this tracker has since given back.
    retired_faults: u64,
}

fn os_error(op: &'static str, source: io::Error) -> DirtyError {
    DirtyError::Os {
        backend: Backend::Mprotect,
        op,
        source,
    }
}

fn protect(range: PageRange, prot: libc::c_int) -> io::Result<()> {
    // SAFETY: the range was given to `arm` as memory of this process that the caller keeps
    // mapped while armed; changing its protection affects no Rust-visible object whose
    // validity depends on it (writes that fault are handled, reads still work).
    let rc = unsafe { libc::mprotect(range.start.start().to_ptr(), range.len_bytes(), prot) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

impl MprotectTracker {
    /// Appends the pages written since the last arm or collect and clears their bits;
    /// `rearm` protects them again (else they stay writable, for a disarm).
    fn collect(&mut self, out: &mut DirtySet, rearm: bool) -> Result<(), DirtyError> {
        let words = self.bitmap_words();
        let mut reported = 0u64;
        let mut result = Ok(());
        for a in self.armed.as_slice() {
            let range_words = &words[a.first_word..a.first_word + words_for(a.range.n_pages)];
            result = for_each_run(
                range_words.iter().map(|w| w.swap(0, Ordering::SeqCst)),
                |first, n| {
                    let run = PageRange::new(a.range.start.plus_pages(first), n);
                    out.push_range(run);
                    reported += n as u64;
                    if !rearm {
                        return Ok(());
                    }
                    protect(run, heap_prot(libc::PROT_READ))
                        .map_err(|e| os_error("mprotect(PROT_READ) of dirty pages", e))
                },
            );
            if result.is_err() {
                break;
            }
        }
        self.stats.pages_reported += reported;
        self.stats.collections += 1;
        result
    }

    /// Install the process-wide SIGSEGV handler (once) and make an unarmed tracker.
    pub fn new() -> Result<MprotectTracker, DirtyError> {
        install_handler()?;
        Ok(MprotectTracker {
            armed: MmapVec::new(),
            bitmap: None,
            stats: TrackerStats::default(),
            retired_faults: 0,
        })
    }

    fn bitmap_words(&self) -> &[AtomicU64] {
        match &self.bitmap {
            // SAFETY: the mapping is readable and writable, zero-initialised, 8-byte
            // aligned (page-aligned) and lives as long as &self; AtomicU64 has the layout
            // of u64 and every bit pattern is valid.
            Some(m) => unsafe {
                std::slice::from_raw_parts(m.start() as *const AtomicU64, m.len_bytes() / 8)
            },
            None => &[],
        }
    }

    fn same_ranges(&self, ranges: &[PageRange]) -> bool {
        let armed = self.armed.as_slice();
        armed.len() == ranges.len() && armed.iter().zip(ranges).all(|(a, r)| a.range == *r)
    }

    /// Claim slots, size the bitmap and publish `ranges`; nothing is protected yet.
    fn publish(&mut self, ranges: &[PageRange]) -> Result<(), DirtyError> {
        let invalid = |op| os_error(op, io::Error::from_raw_os_error(libc::EINVAL));
        for (i, r) in ranges.iter().enumerate() {
            if r.n_pages == 0 {
                return Err(invalid("arm: empty range"));
            }
            let overlaps = |o: &PageRange| r.start.start() < o.end() && o.start.start() < r.end();
            if ranges[..i].iter().any(overlaps) {
                return Err(invalid("arm: ranges overlap"));
            }
            let high = SLOTS_HIGH_WATER.load(Ordering::Acquire);
            let taken = SLOTS[..high].iter().any(|s| {
                s.state.load(Ordering::Acquire) == SLOT_ARMED
                    && r.start.start().as_usize() < s.end.load(Ordering::Relaxed)
                    && s.start.load(Ordering::Relaxed) < r.end().as_usize()
            });
            if taken {
                return Err(os_error(
                    "arm: range already armed by another mprotect tracker",
                    io::Error::from_raw_os_error(libc::EEXIST),
                ));
            }
        }
        let total_words: usize = ranges.iter().map(|r| words_for(r.n_pages)).sum();
        let have_words = self.bitmap.as_ref().map_or(0, |m| m.len_bytes() / 8);
        if have_words < total_words {
            self.bitmap =
                Some(Mapping::new(total_words * 8).map_err(|e| os_error("mmap(bitmap)", e))?);
        } else {
            for w in &self.bitmap_words()[..total_words] {
                w.store(0, Ordering::Relaxed);
            }
        }
        self.armed
            .reserve(ranges.len())
            .map_err(|e| os_error("mmap(armed ranges)", e))?;
        let base = self.bitmap.as_ref().map_or(0, |m| m.start()) as *mut AtomicU64;
        let mut first_word = 0usize;
        for r in ranges {
            let Some(slot) = claim_slot() else {
                self.unpublish();
                return Err(os_error(
                    "arm: the process-wide table of write-protected ranges is full",
                    io::Error::from_raw_os_error(libc::ENOSPC),
                ));
            };
            let s = &SLOTS[slot];
            s.start.store(r.start.start().as_usize(), Ordering::Relaxed);
            s.end.store(r.end().as_usize(), Ordering::Relaxed);
            // `wrapping_add` keeps this safe; the offset is inside the bitmap mapping.
            s.bits
                .store(base.wrapping_add(first_word), Ordering::Relaxed);
            s.faults.store(0, Ordering::Relaxed);
            s.state.store(SLOT_ARMED, Ordering::SeqCst);
            self.armed
                .push_within_capacity(Armed {
                    range: *r,
                    slot,
                    first_word,
                })
                .expect("capacity reserved above");
            first_word += words_for(r.n_pages);
        }
        Ok(())
    }

    /// Give back every slot, waiting until no handler still uses one. Pages are not touched.
    fn unpublish(&mut self) {
        for a in self.armed.as_slice() {
            let s = &SLOTS[a.slot];
            s.state.store(SLOT_CLAIMED, Ordering::SeqCst);
            while s.users.load(Ordering::SeqCst) != 0 {
                std::hint::spin_loop();
            }
            self.retired_faults += s.faults.swap(0, Ordering::Relaxed);
            s.state.store(SLOT_FREE, Ordering::Release);
        }
        self.armed.clear();
    }
}

/// Take a free slot (FREE -> CLAIMED); None if the table is full.
fn claim_slot() -> Option<usize> {
    for (i, s) in SLOTS.iter().enumerate() {
        if s.state
            .compare_exchange(SLOT_FREE, SLOT_CLAIMED, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            SLOTS_HIGH_WATER.fetch_max(i + 1, Ordering::AcqRel);
            return Some(i);
        }
    }
    None
}

impl DirtyTracker for MprotectTracker {
    fn backend(&self) -> Backend {
        Backend::Mprotect
    }

    fn sees_kernel_writes(&self) -> bool {
        false
    }

    fn arm(&mut self, ranges: &[PageRange]) -> Result<(), DirtyError> {
        if !self.same_ranges(ranges) {
            self.disarm()?;
            self.publish(ranges)?;
        }
        // Clear the bitmap before protecting: the collector may arm while other threads
        // run, and a write that faults after protection must find its bit kept. (A
        // write before protection happens before arming completes; marking has not
        // started then, so nothing is lost.)
        let words = self
            .armed
            .as_slice()
            .iter()
            .map(|a| words_for(a.range.n_pages))
            .sum();
        for w in &self.bitmap_words()[..words] {
            w.store(0, Ordering::SeqCst);
        }
        let failure = self
            .armed
            .as_slice()
            .iter()
            .find_map(|a| protect(a.range, heap_prot(libc::PROT_READ)).err());
        if let Some(e) = failure {
            // Undo: unprotect everything and give the slots back. A failure to undo is
            // secondary to the one being reported and leaves the same state disarm would.
            return Err(match self.disarm() {
                Ok(()) => os_error("mprotect(PROT_READ)", e),
                Err(_) => os_error("mprotect(PROT_READ), and undoing it failed too", e),
            });
        }
        self.stats.arms += 1;
        Ok(())
    }

    fn collect_and_rearm(&mut self, out: &mut DirtySet) -> Result<(), DirtyError> {
        self.collect(out, true)
    }

    fn collect_and_disarm(&mut self, out: &mut DirtySet) -> Result<(), DirtyError> {
        // The dirty pages are not protected again: disarm makes every page writable.
        let collected = self.collect(out, false);
        let disarmed = self.disarm();
        collected.and(disarmed)
    }

    fn disarm(&mut self) -> Result<(), DirtyError> {
        let mut result = Ok(());
        for a in self.armed.as_slice() {
            if let Err(e) = protect(a.range, heap_prot(libc::PROT_READ | libc::PROT_WRITE)) {
                if result.is_ok() {
                    result = Err(os_error("mprotect(PROT_READ|PROT_WRITE)", e));
                }
            }
        }
        self.unpublish();
        result
    }

    fn stats(&self) -> TrackerStats {
        let live: u64 = self
            .armed
            .as_slice()
            .iter()
            .map(|a| SLOTS[a.slot].faults.load(Ordering::Relaxed))
            .sum();
        TrackerStats {
            write_faults: self.retired_faults + live,
            ..self.stats
        }
    }
}

impl Drop for MprotectTracker {
    fn drop(&mut self) {
        // `disarm` always gives the slots back (the bitmap is freed next); a failure only
        // leaves pages read-only, which must not pass silently.
        if let Err(e) = self.disarm() {
            eprintln!("dunegc: dropping an mprotect dirty tracker: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs(words: &[u64]) -> Vec<(usize, usize)> {
        let mut v = Vec::new();
        for_each_run::<()>(words.iter().copied(), |s, n| {
            v.push((s, n));
            Ok(())
        })
        .unwrap();
        v
    }

    #[test]
    fn bit_positions() {
        assert_eq!(bit_position(0), (0, 1));
        assert_eq!(bit_position(63), (0, 1 << 63));
        assert_eq!(bit_position(64), (1, 1));
        assert_eq!(bit_position(130), (2, 4));
        assert_eq!(page_index(0x10000, 0x13000), 3);
        assert_eq!(words_for(0), 0);
        assert_eq!(words_for(1), 1);
        assert_eq!(words_for(64), 1);
        assert_eq!(words_for(65), 2);
        assert_eq!(words_for(65_536), 1024);
    }

    #[test]
    fn runs_within_and_across_words() {
        assert_eq!(runs(&[]), vec![]);
        assert_eq!(runs(&[0, 0]), vec![]);
        assert_eq!(runs(&[0b1011]), vec![(0, 2), (3, 1)]);
        assert_eq!(runs(&[1 << 63, 1]), vec![(63, 2)]);
        assert_eq!(runs(&[!0, !0, 1]), vec![(0, 129)]);
        assert_eq!(runs(&[!0, 0, 1 << 5]), vec![(0, 64), (133, 1)]);
        assert_eq!(runs(&[0x8000_0000_0000_0001]), vec![(0, 1), (63, 1)]);
    }

    #[test]
    fn runs_match_a_naive_scan() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..200 {
            let words: Vec<u64> = (0..5)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x & x.rotate_left(7)
                })
                .collect();
            let mut naive: Vec<(usize, usize)> = Vec::new();
            for i in 0..words.len() * 64 {
                if words[i / 64] >> (i % 64) & 1 == 1 {
                    match naive.last_mut() {
                        Some((s, n)) if *s + *n == i => *n += 1,
                        _ => naive.push((i, 1)),
                    }
                }
            }
            assert_eq!(runs(&words), naive);
        }
    }

    #[test]
    fn error_stops_the_walk() {
        let mut seen = 0;
        let r = for_each_run(std::iter::once(0b101u64), |_, _| {
            seen += 1;
            Err("stop")
        });
        assert_eq!(r, Err("stop"));
        assert_eq!(seen, 1);
    }
}
