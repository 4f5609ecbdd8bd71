//! Descriptor-driven scanning: bdwgc's mark descriptors (`gc_mark.h`) and mark
//! procedures, for objects of a registered scan class (custom kinds, typed objects).
//!
//! A descriptor is a word whose low two bits say how to scan an object:
//! - [`DS_LENGTH`]: the word is the number of bytes from the start to scan
//!   conservatively;
//! - [`DS_BITMAP`]: the high 62 bits say which words are pointers, the most
//!   significant bit for the first word;
//! - [`DS_PROC`]: bits 2..8 index a registered [`MarkProc`], the rest is its `env`
//!   argument;
//! - [`DS_PER_OBJECT`]: the real descriptor is in the object, at the offset the rest of
//!   the word gives (or, if the word is negative, in a type descriptor the object's first
//!   word points to; see `gc_mark.h`).
//!
//! A scan class is a descriptor template plus a flag saying whether the object's size is
//! added to it (bdwgc's `GC_new_kind`); spans record the class (`Span::scan`). Marking
//! an object of a class pushes `(start | DESCRIBED, descriptor)` on the mark stack, and
//! the marker's one dispatch point, [`Heap::scan_entry`], interprets it.
//!
//! A mark procedure gets a private buffer of [`MsEntry`] slots as its mark stack
//! (`mark_stack_ptr` is the top, `mark_stack_limit` one past the last usable slot);
//! what it pushes there is moved to the collector's stack when it returns.
//! [`mark_and_push`] (bdwgc's `GC_mark_and_push`) marks directly into the collector's
//! stack of the calling thread, so it never overflows the buffer. The registries are
//! atomics written once under a mutex and the current stack is thread-local, so marker
//! threads may run procedures concurrently.

pub use crate::heap::described::register_scan_class;
use crate::heap::described::scan_class_descr;
use crate::heap::Heap;
use crate::mark::{MarkStack, Parallel};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Descriptor tag: a length in bytes.
pub const DS_LENGTH: usize = 0;
/// Descriptor tag: a bitmap of pointer words, most significant bit first.
pub const DS_BITMAP: usize = 1;
/// Descriptor tag: a mark procedure and its environment.
pub const DS_PROC: usize = 2;
/// Descriptor tag: the descriptor is stored per object.
pub const DS_PER_OBJECT: usize = 3;
/// The tag bits.
pub const DS_TAGS: usize = 3;
/// `log2` of the number of mark procedures.
pub const LOG_MAX_MARK_PROCS: u32 = 6;
/// Mark procedures that can be registered, reserved ones included.
pub const MAX_MARK_PROCS: usize = 1 << LOG_MAX_MARK_PROCS;
/// Indices bdwgc reserves; the first registered procedure gets this one.
pub const RESERVED_MARK_PROCS: usize = 8;
/// bdwgc's `GC_INDIR_PER_OBJ_BIAS`.
pub const INDIR_PER_OBJ_BIAS: usize = 0x10;

/// Tag on a mark stack entry's start: `(start | DESCRIBED, descriptor)`.
pub(crate) const DESCRIBED: usize = 1 << 63;

/// Slots of a mark procedure's buffer (the first is a sentinel it never writes).
const PROC_BUFFER: usize = 512;

/// One mark stack entry as bdwgc lays it out (`struct GC_ms_entry`).
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub struct MsEntry {
    /// First byte to scan.
    pub start: usize,
    /// How to scan it.
    pub descr: usize,
}

/// A mark procedure: `(addr, mark_stack_ptr, mark_stack_limit, env) -> new top`.
pub type MarkProc =
    unsafe extern "C" fn(*mut usize, *mut MsEntry, *mut MsEntry, usize) -> *mut MsEntry;

/// Registered procedures (0: none).
static PROCS: [AtomicUsize; MAX_MARK_PROCS] = [const { AtomicUsize::new(0) }; MAX_MARK_PROCS];
/// Next free procedure index.
static NEXT_PROC: Mutex<usize> = Mutex::new(RESERVED_MARK_PROCS);

thread_local! {
    /// The heap and mark stack of the mark procedure running on this thread.
    static CURRENT: Cell<(usize, usize, bool)> = const { Cell::new((0, 0, false)) };
}

/// Register a mark procedure; its index for [`make_proc`], or None when all
/// [`MAX_MARK_PROCS`] are taken.
pub fn register_mark_proc(proc_: MarkProc) -> Option<usize> {
    let mut n = NEXT_PROC.lock().unwrap_or_else(|e| e.into_inner());
    if *n >= MAX_MARK_PROCS {
        return None;
    }
    let i = *n;
    PROCS[i].store(proc_ as usize, Ordering::Release);
    *n += 1;
    Some(i)
}

/// Install `proc_` at one of the indices bdwgc reserves (below
/// [`RESERVED_MARK_PROCS`]; bdwgc's `GC_init_gcj_malloc` takes one from its caller).
/// False, changing nothing, for an index outside them or one already taken.
pub fn set_reserved_mark_proc(index: usize, proc_: MarkProc) -> bool {
    let _n = NEXT_PROC.lock().unwrap_or_else(|e| e.into_inner());
    if index >= RESERVED_MARK_PROCS || PROCS[index].load(Ordering::Acquire) != 0 {
        return false;
    }
    PROCS[index].store(proc_ as usize, Ordering::Release);
    true
}

/// The descriptor `GC_MAKE_PROC(index, env)`.
pub const fn make_proc(index: usize, env: usize) -> usize {
    (((env << LOG_MAX_MARK_PROCS) | index) << 2) | DS_PROC
}

/// The push-other-roots hook as a `fn()` address (0: none); see
/// [`set_push_other_roots_hook`].
static PUSH_OTHER_ROOTS: AtomicUsize = AtomicUsize::new(0);

/// Install (or remove) a function the collector calls while it marks roots, in every
/// collection and at the start of every incremental cycle, with the heap lock held
/// (the world stopped for full collections). It may add roots with [`push_range`] and
/// [`scan_now`] and must not allocate or take the heap lock (the C ABI's
/// `GC_set_push_other_roots`).
pub fn set_push_other_roots_hook(hook: Option<fn()>) {
    PUSH_OTHER_ROOTS.store(hook.map_or(0, |f| f as usize), Ordering::Release);
}

/// Run `f` with `heap` and `stack` as this thread's current marking context (what
/// [`mark_and_push`], [`push_range`] and [`scan_now`] use), restoring the previous one
/// afterwards. `parallel`: other markers run at the same time, so mark bits are set with
/// an atomic OR.
fn with_current<R>(heap: &Heap, stack: &mut MarkStack, parallel: bool, f: impl FnOnce() -> R) -> R {
    let saved = CURRENT.with(|c| {
        c.replace((
            heap as *const Heap as usize,
            stack as *mut MarkStack as usize,
            parallel,
        ))
    });
    let r = f();
    CURRENT.with(|c| c.set(saved));
    r
}

/// The current marking context of this thread, if any, and whether other markers run.
fn current() -> Option<(&'static Heap, &'static mut MarkStack, bool)> {
    let (heap, stack, parallel) = CURRENT.with(|c| c.get());
    if heap == 0 {
        return None;
    }
    // SAFETY: set by `with_current` on this thread for the duration of a call, from a
    // live &Heap (heaps live for the rest of the process) and the &mut MarkStack its
    // caller does not touch until the call returns.
    Some(unsafe {
        (
            &*(heap as *const Heap),
            &mut *(stack as *mut MarkStack),
            parallel,
        )
    })
}

/// Queue `[start, end)` to be scanned conservatively, as a root range (bdwgc's
/// `GC_push_all`), from a mark procedure or the push-other-roots hook. False, doing
/// nothing, outside those.
pub fn push_range(start: usize, end: usize) -> bool {
    match current() {
        Some((_, stack, _)) => {
            stack.push((start + 7) & !7, end & !7);
            true
        }
        None => false,
    }
}

/// Scan `[start, end)` now (bdwgc's `GC_push_all_eager`); as [`push_range`] otherwise.
pub fn scan_now(start: usize, end: usize) -> bool {
    match current() {
        Some((heap, stack, true)) => {
            heap.scan_range_with::<true>(start, end, stack);
            true
        }
        Some((heap, stack, false)) => {
            heap.scan_range(start, end, stack);
            true
        }
        None => false,
    }
}

/// Mark the object `obj` points to (under the interior-pointer rule for heap words) and
/// queue it for scanning, on the collector's stack of the mark procedure running on
/// this thread (bdwgc's `GC_mark_and_push`). False, doing nothing, when no mark
/// procedure is running on this thread.
pub fn mark_and_push(obj: usize) -> bool {
    match current() {
        Some((heap, stack, true)) => {
            heap.mark_word_with::<true>(obj, stack);
            true
        }
        Some((heap, stack, false)) => {
            heap.mark_word(obj, stack);
            true
        }
        None => false,
    }
}

impl Heap {
    /// Run the push-other-roots hook, if any, with `stack` as its marking context.
    /// `parallel`: other markers may be setting mark bits meanwhile (atomic ORs).
    pub(crate) fn push_other_roots(&self, stack: &mut MarkStack, parallel: bool) {
        let f = PUSH_OTHER_ROOTS.load(Ordering::Acquire);
        if f != 0 {
            // SAFETY: only set_push_other_roots_hook stores nonzero values: `fn()`s.
            let f = unsafe { std::mem::transmute::<usize, fn()>(f) };
            with_current(self, stack, parallel, f);
        }
    }

    /// Queue a marked object of `len` bytes of the span starting at page `span` for
    /// scanning: whole, or by its scan class's descriptor.
    #[inline(always)]
    pub(crate) fn push_object(&self, base: usize, len: usize, span: usize, stack: &mut MarkStack) {
        match self.pages.span(span).scan.load(Ordering::Relaxed) {
            0 => stack.push(base, base + len),
            c => self.push_entry(base, scan_class_descr(c, len), stack),
        }
    }

    /// Push a bdwgc mark stack entry: a range for a length, a described entry otherwise.
    pub(crate) fn push_entry(&self, start: usize, descr: usize, stack: &mut MarkStack) {
        if descr & DS_TAGS == DS_LENGTH {
            stack.push(start, start.saturating_add(descr));
        } else {
            stack.push_described(start | DESCRIBED, descr);
        }
    }

    /// Scan one popped described entry (the marker's dispatch point for descriptors).
    pub(crate) fn scan_entry<const PAR: Parallel>(
        &self,
        start: usize,
        descr: usize,
        stack: &mut MarkStack,
    ) {
        let start = start & !DESCRIBED;
        let mut d = descr;
        // A per-object descriptor names the real one; that one is not per-object again
        // (bdwgc forbids it; a second level is ignored).
        if d & DS_TAGS == DS_PER_OBJECT {
            d = self.per_object_descr(start, d);
        }
        match d & DS_TAGS {
            DS_LENGTH => self.scan_range_with::<PAR>(
                start,
                start.saturating_add(d).min(self.end_of(start)),
                stack,
            ),
            DS_BITMAP => {
                let end = self.end_of(start);
                let mut bits = d & !DS_TAGS;
                let mut p = start;
                while bits != 0 && p + 8 <= end {
                    if bits & (1 << 63) != 0 {
                        // SAFETY: p lies inside the object (or, for a range a mark
                        // procedure pushed, where its descriptor says); read as in
                        // scan_range.
                        let w = unsafe { std::ptr::read_volatile(p as *const usize) };
                        self.mark_word_with::<PAR>(w, stack);
                    }
                    bits <<= 1;
                    p += 8;
                }
            }
            DS_PROC => self.call_mark_proc::<PAR>(start, d, stack),
            _ => {}
        }
    }

    /// One past the end of the object `start` lies in; unbounded for memory outside the
    /// heap's objects (a mark procedure's own ranges: its descriptor is trusted, as in
    /// bdwgc).
    fn end_of(&self, start: usize) -> usize {
        match self.object_at(start) {
            Some(o) => o.base + o.len_bytes,
            None if self.contains(start) => start,
            None => usize::MAX,
        }
    }

    /// The descriptor a `DS_PER_OBJECT` descriptor points to (0: scan nothing).
    fn per_object_descr(&self, start: usize, d: usize) -> usize {
        let end = self.end_of(start);
        if (d as isize) >= 0 {
            let at = start.saturating_add(d - DS_PER_OBJECT);
            if at.saturating_add(8) > end {
                return 0;
            }
            // SAFETY: `at` is a word inside the object (checked against its end).
            return unsafe { std::ptr::read_volatile(at as *const usize) };
        }
        if start + 8 > end {
            return 0;
        }
        // SAFETY: the first word of the object (inside it, checked above).
        let type_descr = unsafe { std::ptr::read_volatile(start as *const usize) };
        if type_descr == 0 {
            return 0;
        }
        let at = type_descr.wrapping_sub(
            (d as isize).wrapping_add((INDIR_PER_OBJ_BIAS - DS_PER_OBJECT) as isize) as usize,
        );
        // SAFETY: bdwgc's contract for negative per-object descriptors: an object of
        // such a kind holds in its first word (if not 0) a pointer to a type descriptor
        // with the real descriptor at that displacement.
        unsafe { std::ptr::read_volatile(at as *const usize) }
    }

    /// Run the mark procedure `d` names on `addr`, then move what it pushed to `stack`.
    fn call_mark_proc<const PAR: Parallel>(&self, addr: usize, d: usize, stack: &mut MarkStack) {
        let index = (d >> 2) & (MAX_MARK_PROCS - 1);
        let env = d >> (2 + LOG_MAX_MARK_PROCS);
        let p = PROCS[index].load(Ordering::Acquire);
        if p == 0 {
            // No such procedure: scan the object conservatively rather than lose what it
            // references.
            self.scan_range_with::<PAR>(
                addr,
                self.end_of(addr).min(addr.saturating_add(1 << 20)),
                stack,
            );
            return;
        }
        // SAFETY: only register_mark_proc stores non-zero values: MarkProc addresses.
        let f = unsafe { std::mem::transmute::<usize, MarkProc>(p) };
        let mut buf = [MsEntry::default(); PROC_BUFFER];
        let bottom = buf.as_mut_ptr();
        // SAFETY: bdwgc's mark procedure contract: `addr` is the object, the stack top
        // points at a valid entry (the sentinel) and the procedure writes only to slots
        // above it and below the limit (one past the buffer's end).
        let top = with_current(self, stack, PAR, || unsafe {
            f(addr as *mut usize, bottom, bottom.add(PROC_BUFFER), env)
        });
        let n = (top as usize).wrapping_sub(bottom as usize) / std::mem::size_of::<MsEntry>();
        if (top as usize) < (bottom as usize) || n >= PROC_BUFFER {
            eprintln!("dunegc: a mark procedure returned a mark stack pointer outside the stack it was given");
            std::process::abort();
        }
        for e in &buf[1..=n] {
            self.push_entry(e.start, e.descr, stack);
        }
    }
}
