//! Stacks the program declared: per thread, a stack bottom (bdwgc's `GC_set_stackbottom`,
//! and `GC_stackbottom` for the primordial thread) and a normal stack with an alternate
//! signal stack (bdwgc's `GC_register_altstack`).
//!
//! Without a declaration a thread's stack is scanned from its stack pointer to the end of
//! the mapping that holds it ([`crate::world::thread_roots`], which serves the collecting
//! thread and every stopped thread alike). A declaration changes that, as in bdwgc:
//!
//! - a **declared bottom** `b` (the cold end: stacks grow down) bounds the scan to
//!   `[sp, b)`. It is used only if `b` lies above `sp` and the memory from `sp` up to it is
//!   readable; otherwise — the thread runs on some other stack, or the value is bogus — it
//!   is ignored and the stack is scanned as without one (more, never less, and never a
//!   fault in the collector);
//! - a thread whose stack pointer lies inside its **declared alternate signal stack**
//!   `[alt_lo, alt_hi]` (it was stopped in a signal handler running there) has the
//!   alternate stack scanned from `sp` to `alt_hi`, and its **whole declared normal
//!   stack** `[norm_lo, norm_hi)` as well (its frames there are live, but its stack
//!   pointer there is not known). This is what bdwgc does on Darwin
//!   (`darwin_stop_world.c`, `GC_stack_range_for`); its Linux code scans only the
//!   alternate stack ("FIXME: Need to scan the normal stack too"), which loses the
//!   objects only the interrupted frames hold. Each range is cut to its readable part.
//!
//! Entries are keyed by the thread pointer (glibc's `pthread_t`, the FS base: what
//! [`crate::world::StoppedThread::fs_base`] reports and bdwgc's `GC_get_my_stackbottom`
//! returns as the thread handle). A thread's entry must be [`forget`]-ten when it exits
//! (glibc reuses thread descriptors).
//!
//! Readers run with the world stopped and take no lock: the table is a mapping of
//! atomics, each entry guarded by a sequence count (odd while being written). A reader
//! that finds an entry being written — its writer was stopped half way — ignores it for
//! that collection, which only scans more (a stack to the end of its mapping). Writers
//! serialise on a mutex no reader takes.

use crate::util::mmap::{Mapping, MmapVec};
use std::sync::atomic::{fence, AtomicPtr, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Most threads with a declaration at once.
pub const MAX_DECLARED: usize = crate::world::MAX_THREADS;

/// What a thread declared (zero: not declared).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Declared {
    /// The cold end of its stack (0: none).
    pub bottom: usize,
    /// Its normal stack `[lo, hi)` (both 0: no alternate stack declared).
    pub normal: (usize, usize),
    /// Its alternate signal stack `[lo, hi)`.
    pub alt: (usize, usize),
}

/// One entry of the table.
#[repr(C)]
struct Entry {
    /// Even: stable; odd: being written.
    seq: AtomicUsize,
    /// The thread pointer (0: free).
    thread: AtomicUsize,
    bottom: AtomicUsize,
    norm_lo: AtomicUsize,
    norm_hi: AtomicUsize,
    alt_lo: AtomicUsize,
    alt_hi: AtomicUsize,
}

/// The table (a leaked mapping of `MAX_DECLARED` zeroed entries; null until first use).
static TABLE: AtomicPtr<Entry> = AtomicPtr::new(std::ptr::null_mut());
/// Entries `0..USED` may be in use (a high-water mark: readers look no further).
static USED: AtomicUsize = AtomicUsize::new(0);
/// Serialises writers.
static WRITERS: Mutex<()> = Mutex::new(());

fn table() -> Option<&'static [Entry]> {
    let p = TABLE.load(Ordering::Acquire);
    if p.is_null() {
        return None;
    }
    let n = USED.load(Ordering::Acquire).min(MAX_DECLARED);
    // SAFETY: TABLE points to a leaked mapping of MAX_DECLARED zeroed entries (atomics,
    // for which zero is valid), set once under WRITERS; n <= MAX_DECLARED.
    Some(unsafe { std::slice::from_raw_parts(p, n) })
}

/// The whole table for a writer (holding WRITERS), mapping it on first use.
fn table_for_writer() -> std::io::Result<&'static [Entry]> {
    let mut p = TABLE.load(Ordering::Acquire);
    if p.is_null() {
        let map = Mapping::new(MAX_DECLARED * std::mem::size_of::<Entry>())?;
        p = map.start() as *mut Entry;
        std::mem::forget(map);
        TABLE.store(p, Ordering::Release);
    }
    // SAFETY: as in `table`, the whole mapping.
    Ok(unsafe { std::slice::from_raw_parts(p, MAX_DECLARED) })
}

/// Change the entry of `thread` with `f` (creating it if `create`), under the seqlock.
fn update(thread: usize, create: bool, f: impl FnOnce(&Entry)) -> std::io::Result<()> {
    let _w = WRITERS.lock().unwrap_or_else(|e| e.into_inner());
    let t = table_for_writer()?;
    let used = USED.load(Ordering::Acquire);
    let found = t[..used]
        .iter()
        .position(|e| e.thread.load(Ordering::Relaxed) == thread);
    let i = match found {
        Some(i) => i,
        None if !create => return Ok(()),
        None => match t[..used]
            .iter()
            .position(|e| e.thread.load(Ordering::Relaxed) == 0)
        {
            Some(i) => i,
            None if used < MAX_DECLARED => {
                USED.store(used + 1, Ordering::Release);
                used
            }
            None => {
                return Err(std::io::Error::other(
                    "more threads with declared stacks than the collector can record",
                ))
            }
        },
    };
    let e = &t[i];
    let s = e.seq.load(Ordering::Relaxed);
    e.seq.store(s + 1, Ordering::Relaxed);
    fence(Ordering::Release);
    e.thread.store(thread, Ordering::Relaxed);
    f(e);
    e.seq.store(s + 2, Ordering::Release);
    Ok(())
}

/// Declare the cold end of `thread`'s stack (0 removes it).
pub fn set_bottom(thread: usize, bottom: usize) -> std::io::Result<()> {
    update(thread, bottom != 0, |e| {
        e.bottom.store(bottom, Ordering::Relaxed)
    })?;
    forget_if_empty(thread);
    Ok(())
}

/// Declare `thread`'s normal stack `[normal.0, normal.1)` and alternate signal stack
/// `[alt.0, alt.1)` (an empty `alt` removes both).
pub fn set_altstack(
    thread: usize,
    normal: (usize, usize),
    alt: (usize, usize),
) -> std::io::Result<()> {
    let (normal, alt) = if alt.0 == 0 || alt.1 <= alt.0 {
        ((0, 0), (0, 0))
    } else {
        (normal, alt)
    };
    update(thread, alt != (0, 0), |e| {
        e.norm_lo.store(normal.0, Ordering::Relaxed);
        e.norm_hi.store(normal.1, Ordering::Relaxed);
        e.alt_lo.store(alt.0, Ordering::Relaxed);
        e.alt_hi.store(alt.1, Ordering::Relaxed);
    })?;
    forget_if_empty(thread);
    Ok(())
}

fn forget_if_empty(thread: usize) {
    if get_entry(thread).is_some_and(|d| d == Declared::default()) {
        forget(thread);
    }
}

/// Drop every declaration of `thread` (it exits, or unregisters).
pub fn forget(thread: usize) {
    let _ = update(thread, false, |e| {
        for w in [&e.bottom, &e.norm_lo, &e.norm_hi, &e.alt_lo, &e.alt_hi] {
            w.store(0, Ordering::Relaxed);
        }
        e.thread.store(0, Ordering::Relaxed);
    });
}

/// True if some declaration exists (then [`crate::world::thread_roots`] applies them).
pub fn any() -> bool {
    USED.load(Ordering::Acquire) > 0
}

/// The table entry of `thread`, or None if it has none or it is being written.
fn get_entry(thread: usize) -> Option<Declared> {
    for e in table()? {
        let s1 = e.seq.load(Ordering::Acquire);
        if e.thread.load(Ordering::Relaxed) != thread {
            continue;
        }
        if s1 & 1 == 1 {
            return None;
        }
        let d = Declared {
            bottom: e.bottom.load(Ordering::Relaxed),
            normal: (
                e.norm_lo.load(Ordering::Relaxed),
                e.norm_hi.load(Ordering::Relaxed),
            ),
            alt: (
                e.alt_lo.load(Ordering::Relaxed),
                e.alt_hi.load(Ordering::Relaxed),
            ),
        };
        fence(Ordering::Acquire);
        if e.seq.load(Ordering::Relaxed) != s1 || e.thread.load(Ordering::Relaxed) != thread {
            return None;
        }
        return Some(d);
    }
    None
}

/// What `thread` declared, or None if nothing (or its entry is being written).
/// Allocation-free and lock-free.
pub fn get(thread: usize) -> Option<Declared> {
    get_entry(thread)
}

/// Readable memory as maximal runs of adjacent readable mappings, in address order.
#[derive(Default)]
pub struct ReadableRuns {
    runs: MmapVec<(usize, usize)>,
}

impl ReadableRuns {
    /// Start empty.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a mapping (mappings come in address order, as `/proc/self/maps` lists them).
    pub fn add(&mut self, start: usize, end: usize, readable: bool) {
        if !readable || end <= start {
            return;
        }
        if let Some(last) = self.runs.as_mut_slice().last_mut() {
            if last.1 == start {
                last.1 = end;
                return;
            }
        }
        // Out of memory for the list: the run is left out, so declarations reaching into
        // it are cut short there or ignored (more scanning, never less).
        let _ = self.runs.push((start, end));
    }

    /// The run holding `addr`.
    pub fn containing(&self, addr: usize) -> Option<(usize, usize)> {
        let runs = self.runs.as_slice();
        let i = runs.partition_point(|r| r.1 <= addr);
        runs.get(i).copied().filter(|r| r.0 <= addr)
    }
}

/// The ranges to scan for a thread with stack pointer `sp` and declaration `d`: the
/// stack (replacing the default one) and, on the alternate stack, the normal stack.
/// None: the declaration does not apply (scan as without one).
pub fn ranges(
    sp: usize,
    d: &Declared,
    runs: &ReadableRuns,
) -> Option<((usize, usize), (usize, usize))> {
    let here = runs.containing(sp)?;
    if d.alt.1 > d.alt.0 && d.alt.0 <= sp && sp <= d.alt.1 {
        let stack = (sp & !7, d.alt.1.min(here.1));
        let normal = if d.normal.1 > d.normal.0 {
            // The readable part of the normal stack that reaches its top (a guard page
            // at its low end is skipped).
            match runs.containing(d.normal.1 - 1) {
                Some(r) => (d.normal.0.max(r.0), d.normal.1),
                None => (0, 0),
            }
        } else {
            (0, 0)
        };
        return Some((stack, normal));
    }
    if d.bottom > sp {
        return Some(((sp & !7, d.bottom.min(here.1)), (0, 0)));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs(list: &[(usize, usize, bool)]) -> ReadableRuns {
        let mut r = ReadableRuns::new();
        for &(s, e, ok) in list {
            r.add(s, e, ok);
        }
        r
    }

    #[test]
    fn a_bottom_bounds_the_stack_only_above_sp_and_within_readable_memory() {
        let r = runs(&[
            (0x1000, 0x3000, true),
            (0x3000, 0x5000, true),
            (0x5000, 0x6000, false),
        ]);
        let d = Declared {
            bottom: 0x2800,
            ..Declared::default()
        };
        assert_eq!(ranges(0x1808, &d, &r), Some(((0x1808, 0x2800), (0, 0))));
        // below sp: the thread runs elsewhere, the declaration does not apply
        assert_eq!(ranges(0x2900, &d, &r), None);
        // beyond the readable run: cut at its end (adjacent mappings count)
        let far = Declared {
            bottom: 0x9000,
            ..Declared::default()
        };
        assert_eq!(ranges(0x1808, &far, &r), Some(((0x1808, 0x5000), (0, 0))));
        // sp in no readable mapping
        assert_eq!(ranges(0x5800, &far, &r), None);
    }

    #[test]
    fn on_the_altstack_both_stacks_are_scanned() {
        let r = runs(&[
            (0x1000, 0x2000, false), // guard page below the normal stack
            (0x2000, 0x8000, true),
            (0x10000, 0x14000, true),
        ]);
        let d = Declared {
            bottom: 0,
            normal: (0x1000, 0x8000),
            alt: (0x10000, 0x14000),
        };
        assert_eq!(
            ranges(0x13000, &d, &r),
            Some(((0x13000, 0x14000), (0x2000, 0x8000)))
        );
        // on the normal stack: the default scan
        assert_eq!(ranges(0x7000, &d, &r), None);
        // on the normal stack with a bottom too: the bottom
        let b = Declared {
            bottom: 0x7800,
            ..d
        };
        assert_eq!(ranges(0x7000, &b, &r), Some(((0x7000, 0x7800), (0, 0))));
    }

    #[test]
    fn entries_are_set_read_and_forgotten() {
        let me = crate::world::current_fs_base();
        let other = me ^ 0x10;
        set_bottom(other, 0x1234_5678).unwrap();
        set_altstack(other, (0x1000, 0x2000), (0x3000, 0x4000)).unwrap();
        assert_eq!(
            get(other),
            Some(Declared {
                bottom: 0x1234_5678,
                normal: (0x1000, 0x2000),
                alt: (0x3000, 0x4000)
            })
        );
        assert!(any());
        set_bottom(other, 0).unwrap();
        assert_eq!(get(other).map(|d| d.bottom), Some(0), "the altstack stays");
        set_altstack(other, (0, 0), (0, 0)).unwrap();
        assert_eq!(get(other), None, "an empty entry is dropped");
        set_bottom(other, 0x99).unwrap();
        forget(other);
        assert_eq!(get(other), None);
    }
}
