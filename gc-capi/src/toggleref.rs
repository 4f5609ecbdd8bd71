//! Toggle-refs (bdwgc's `GC_set_toggleref_func`, `GC_get_toggleref_func`,
//! `GC_toggleref_add`): external references to objects that are strong or weak as a
//! program callback decides before each collection.
//!
//! Each registration owns two words in memory mapped here (never in the heap or the
//! global allocator): a *strong* word in a range registered as a root, holding the
//! object while the reference is strong (0 otherwise), and a *weak* word holding the
//! object always, hidden (`~obj`, bdwgc's `GC_HIDE_POINTER`, as bdwgc stores weak
//! toggle-refs: a conservative scan that reaches the word must not keep the object) and registered as a long disappearing link, so the collector clears it
//! when the object is reclaimed (after finalization marking, as bdwgc's
//! `GC_clear_togglerefs`). At the start of every collection (full, or an incremental
//! cycle), with the allocation lock held and the world running, as in bdwgc, the
//! callback is called on every registered object still alive: `GC_TOGGLE_REF_STRONG`
//! sets the strong word, `GC_TOGGLE_REF_WEAK` clears it, `GC_TOGGLE_REF_DROP` ends the
//! registration. Any other value aborts with bdwgc's message. A registration whose
//! object was reclaimed ends too.
//!
//! Lock order: the collector's lock, then this module's mutex. Registration takes the
//! collector's lock (roots, links) only while not holding the mutex.

use crate::init::heap;
use crate::warn::warn_text;
use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// bdwgc's `GC_ToggleRefStatus`.
pub type GcToggleRefStatus = c_int;
/// bdwgc's `GC_TOGGLE_REF_DROP`.
pub const GC_TOGGLE_REF_DROP: GcToggleRefStatus = 0;
/// bdwgc's `GC_TOGGLE_REF_STRONG`.
pub const GC_TOGGLE_REF_STRONG: GcToggleRefStatus = 1;
/// bdwgc's `GC_TOGGLE_REF_WEAK`.
pub const GC_TOGGLE_REF_WEAK: GcToggleRefStatus = 2;

/// bdwgc's `GC_toggleref_func`.
pub type GcTogglerefFunc = Option<unsafe extern "C" fn(*mut c_void) -> GcToggleRefStatus>;

/// Registrations a chunk holds.
const CHUNK: usize = 512;

/// The callback, as an address (0: none).
static CALLBACK: AtomicUsize = AtomicUsize::new(0);

/// One chunk's words: `strong[i]`, `weak[i]` belong to registration slot `i`.
struct Chunk {
    strong: &'static [AtomicUsize],
    weak: &'static [AtomicUsize],
}

#[derive(Default)]
struct Table {
    chunks: Vec<Chunk>,
    /// Slots in use (chunk * CHUNK + index).
    live: Vec<usize>,
    /// Slots free for reuse.
    free: Vec<usize>,
}

static TABLE: Mutex<Table> = Mutex::new(Table {
    chunks: Vec::new(),
    live: Vec::new(),
    free: Vec::new(),
});

fn table() -> std::sync::MutexGuard<'static, Table> {
    TABLE.lock().unwrap_or_else(|e| e.into_inner())
}

impl Table {
    fn words(&self, slot: usize) -> (&'static AtomicUsize, &'static AtomicUsize) {
        let c = &self.chunks[slot / CHUNK];
        (&c.strong[slot % CHUNK], &c.weak[slot % CHUNK])
    }
}

/// Map `CHUNK` zeroed words; None if out of memory.
fn map_words() -> Option<&'static [AtomicUsize]> {
    let len = CHUNK * std::mem::size_of::<usize>();
    // SAFETY: a fresh private anonymous mapping; no existing memory is touched.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return None;
    }
    // SAFETY: the mapping is CHUNK zeroed, aligned words, never unmapped; AtomicUsize
    // has usize's layout.
    Some(unsafe { std::slice::from_raw_parts(p as *const AtomicUsize, CHUNK) })
}

/// A free slot, mapping a new chunk (a root range for its strong words) if needed.
fn take_slot() -> Option<usize> {
    if let Some(s) = table().free.pop() {
        return Some(s);
    }
    let strong = map_words()?;
    let weak = map_words()?;
    let start = strong.as_ptr() as usize;
    heap()
        .add_roots(start, start + CHUNK * std::mem::size_of::<usize>())
        .ok()?;
    let mut t = table();
    let first = t.chunks.len() * CHUNK;
    t.chunks.push(Chunk { strong, weak });
    t.free.extend((first + 1..first + CHUNK).rev());
    Some(first)
}

fn callback() -> GcTogglerefFunc {
    let f = CALLBACK.load(Ordering::Acquire);
    // SAFETY: only GC_set_toggleref_func stores nonzero values: the address of a
    // `GC_toggleref_func`.
    (f != 0).then(|| unsafe {
        std::mem::transmute::<usize, unsafe extern "C" fn(*mut c_void) -> GcToggleRefStatus>(f)
    })
}

/// At the start of a collection (the heap lock held, the world running): ask the
/// callback about every registered object still alive (bdwgc's
/// `GC_process_togglerefs`).
pub(crate) fn process_at_collection_start() {
    process();
    // The objects just handled (weak ones included) are still in dead words of the
    // frames of `process` and of the callback; the collector scans this stack next.
    wipe_stack();
}

#[inline(never)]
fn process() {
    let Some(f) = callback() else { return };
    let mut t = table();
    if t.live.is_empty() {
        return;
    }
    let mut live = std::mem::take(&mut t.live);
    let mut freed = Vec::new();
    live.retain(|&slot| {
        let (strong, weak) = t.words(slot);
        let hidden = weak.load(Ordering::Acquire);
        let obj = !hidden;
        let keep = hidden != 0 && {
            // SAFETY: the program registered `f` to be called on each toggle-ref object
            // before collections, with the allocation lock held (bdwgc's contract).
            match unsafe { f(obj as *mut c_void) } {
                GC_TOGGLE_REF_DROP => false,
                GC_TOGGLE_REF_STRONG => {
                    strong.store(obj, Ordering::Release);
                    true
                }
                GC_TOGGLE_REF_WEAK => {
                    strong.store(0, Ordering::Release);
                    true
                }
                _ => {
                    eprintln!("Bad toggle-ref status returned by callback");
                    std::process::abort()
                }
            }
        };
        if !keep {
            strong.store(0, Ordering::Release);
            weak.store(0, Ordering::Release);
            freed.push(slot);
        }
        keep
    });
    t.free.extend(freed);
    t.live = live;
}

/// Zero 16 KiB of stack below the caller, where the frames of the processing and the
/// callback were.
#[inline(never)]
fn wipe_stack() {
    let mut buf = [0usize; 2048];
    for w in buf.iter_mut() {
        // SAFETY: a write to a local.
        unsafe { std::ptr::write_volatile(w, 0) };
    }
    std::hint::black_box(&mut buf);
}

/// Set the function that decides, before each collection, whether each toggle-ref is
/// strong or weak or is dropped; NULL: none (bdwgc's `GC_set_toggleref_func`; takes the
/// allocation lock).
#[no_mangle]
pub extern "C" fn GC_set_toggleref_func(f: GcTogglerefFunc) {
    let heap = heap();
    heap.with_lock_held(|_| CALLBACK.store(f.map_or(0, |f| f as usize), Ordering::Release));
}

/// The toggle-ref callback, or NULL (bdwgc's `GC_get_toggleref_func`).
#[no_mangle]
pub extern "C" fn GC_get_toggleref_func() -> GcTogglerefFunc {
    let heap = heap();
    heap.with_lock_held(|_| callback())
}

/// Register `obj` for toggle-ref processing, strong if `is_strong` is nonzero, weak
/// otherwise (bdwgc's `GC_toggleref_add`): the callback is called on it before each
/// collection until it returns `GC_TOGGLE_REF_DROP` or the object is reclaimed. As in
/// bdwgc, nothing is registered while no callback is set, and the answer is
/// `GC_SUCCESS` then; `GC_NO_MEMORY` if the registration could not be stored. A NULL
/// `obj` is ignored with a warning (bdwgc requires non-NULL).
#[no_mangle]
pub extern "C" fn GC_toggleref_add(obj: *mut c_void, is_strong: c_int) -> c_int {
    let heap = heap();
    if obj.is_null() {
        warn_text("GC_toggleref_add: NULL object; ignored");
        return crate::types::GC_SUCCESS;
    }
    if callback().is_none() {
        return crate::types::GC_SUCCESS;
    }
    let Some(slot) = take_slot() else {
        return crate::links::GC_NO_MEMORY;
    };
    let (strong, weak) = table().words(slot);
    let addr = obj as usize;
    if let Some(base) = heap.base_of(addr) {
        // Registering (or re-registering: the slot may have had a link before) comes
        // before the store, so an old registration cannot clear the new value.
        // SAFETY: `weak` is an aligned word of a mapping that is never unmapped; `base`
        // is the start of a heap object.
        if unsafe { heap.register_disappearing_link(weak.as_ptr() as usize, base, true) }.is_err() {
            table().free.push(slot);
            return crate::links::GC_NO_MEMORY;
        }
    }
    weak.store(!addr, Ordering::Release);
    strong.store(if is_strong != 0 { addr } else { 0 }, Ordering::Release);
    table().live.push(slot);
    crate::types::GC_SUCCESS
}
