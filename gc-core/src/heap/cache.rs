//! Per-thread allocation caches: the lock-free fast path.
//!
//! Each thread that allocates from a heap owns, per object kind and size class, one span
//! and a cursor into it. Allocation claims slots a bitmap word at a time: one atomic OR
//! sets the alloc bits of every free slot whose start lies in the next 1 KiB window (64
//! granules) of the span, and the slots are then handed out from the cursor's `pending`
//! mask with no atomic operation at all. Slots claimed and not yet handed out are
//! published in the cache (`pending`, written before the OR) for the collector, which
//! marks them at every stop-the-world marking so that the sweep never takes them back.
//! Caches live in their own mappings (never in the collected heap), are found through a
//! `#[thread_local]`-backed pointer, and are released by a pthread key destructor when
//! the thread exits.

use super::kind::N_KINDS;
use super::size_class::N_CLASSES;
use super::Heap;
use crate::util::mmap::Mapping;
use std::cell::Cell;
use std::sync::Once;

/// Allocation state for one (kind, class) in one thread.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub struct ClassCursor {
    /// Next slot address to try.
    pub cursor: usize,
    /// One past the last slot of the owned span.
    pub end: usize,
    /// First page index of the owned span + 1 (0 = none).
    pub span: u32,
    /// The span's slots past `cursor` have never been used: they are already zero.
    pub fresh: bool,
    /// The cursor was rewound once already since the span was acquired.
    pub rewound: bool,
    /// Slots claimed (alloc bit set by this thread) and not handed out yet: bit `i` is the
    /// granule `window + 16 * i`. Read by the collector while the thread is stopped.
    pub pending: u64,
    /// The 1 KiB-aligned window `pending` refers to.
    pub window: usize,
}

/// One thread's caches for one heap.
#[repr(C)]
pub struct ThreadCache {
    /// The heap these caches belong to.
    pub heap: &'static Heap,
    /// Cursors per kind and class.
    pub classes: [[ClassCursor; N_CLASSES]; N_KINDS],
    /// Bytes allocated by this thread since the last flush.
    pub allocated_bytes: usize,
    /// Bytes freed explicitly by this thread since the last flush.
    pub freed_bytes: usize,
    /// Next cache of the same heap (list under the heap lock).
    pub next: *mut ThreadCache,
    /// Previous cache of the same heap.
    pub prev: *mut ThreadCache,
    /// The owning thread's id.
    pub tid: i32,
}

const MAX_HEAPS_PER_THREAD: usize = 32;

/// A thread's table of caches, one per heap it allocated from.
struct ThreadRecord {
    entries: [(*const Heap, *mut ThreadCache); MAX_HEAPS_PER_THREAD],
    len: usize,
}

thread_local! {
    static RECORD: Cell<*mut ThreadRecord> = const { Cell::new(std::ptr::null_mut()) };
}

static KEY_ONCE: Once = Once::new();
static mut KEY: libc::pthread_key_t = 0;

fn exit_key() -> libc::pthread_key_t {
    KEY_ONCE.call_once(|| {
        let mut key: libc::pthread_key_t = 0;
        // SAFETY: `key` is a valid out-pointer and the destructor is an extern "C" fn
        // that stays valid for the life of the process.
        let rc = unsafe { libc::pthread_key_create(&mut key, Some(thread_exit)) };
        assert_eq!(rc, 0, "pthread_key_create failed: out of thread keys");
        // SAFETY: written once, inside call_once, before any reader (readers go through
        // call_once, which synchronises with this write).
        unsafe { KEY = key };
    });
    // SAFETY: initialised by call_once above, never written again.
    unsafe { KEY }
}

fn map_zeroed<T>() -> *mut T {
    match Mapping::new(std::mem::size_of::<T>()) {
        Ok(m) => {
            let p = m.start() as *mut T;
            std::mem::forget(m);
            p
        }
        Err(_) => std::ptr::null_mut(),
    }
}

fn unmap<T>(p: *mut T) {
    let len = crate::util::mmap::round_up_to_page(std::mem::size_of::<T>());
    // SAFETY: p came from map_zeroed::<T> and is no longer referenced.
    unsafe { libc::munmap(p.cast(), len) };
}

/// This thread's cache for `heap`, creating and registering it on first use. Null only
/// if mapping memory for it failed.
#[inline]
pub fn current(heap: &'static Heap) -> *mut ThreadCache {
    let rec = RECORD.with(|r| r.get());
    if !rec.is_null() {
        // SAFETY: the record belongs to this thread and lives until its exit destructor.
        let r = unsafe { &*rec };
        if r.len > 0 && std::ptr::eq(r.entries[0].0, heap) {
            return r.entries[0].1;
        }
        for &(h, c) in &r.entries[1..r.len.max(1)] {
            if std::ptr::eq(h, heap) {
                return c;
            }
        }
    }
    register(heap)
}

#[cold]
fn register(heap: &'static Heap) -> *mut ThreadCache {
    if heap.lock_held_here() {
        // Registering takes the heap lock, which this thread already holds.
        return std::ptr::null_mut();
    }
    let mut rec = RECORD.with(|r| r.get());
    if rec.is_null() {
        rec = map_zeroed::<ThreadRecord>();
        if rec.is_null() {
            return std::ptr::null_mut();
        }
        RECORD.with(|r| r.set(rec));
        // SAFETY: the key exists; the value is this thread's record.
        unsafe { libc::pthread_setspecific(exit_key(), rec.cast()) };
    }
    // SAFETY: this thread's own record, not shared.
    let r = unsafe { &mut *rec };
    if r.len == MAX_HEAPS_PER_THREAD {
        return std::ptr::null_mut();
    }
    let cache = map_zeroed::<ThreadCache>();
    if cache.is_null() {
        return std::ptr::null_mut();
    }
    // SAFETY: fresh zeroed mapping of the right size; write a valid ThreadCache into it.
    unsafe {
        cache.write(ThreadCache {
            heap,
            classes: [[ClassCursor::default(); N_CLASSES]; N_KINDS],
            allocated_bytes: 0,
            freed_bytes: 0,
            next: std::ptr::null_mut(),
            prev: std::ptr::null_mut(),
            tid: libc::gettid(),
        })
    };
    heap.link_cache(cache);
    r.entries[r.len] = (heap, cache);
    r.len += 1;
    cache
}

/// Release every cache of a thread at its exit.
extern "C" fn thread_exit(rec: *mut libc::c_void) {
    let rec = rec as *mut ThreadRecord;
    if rec.is_null() {
        return;
    }
    RECORD.with(|r| r.set(std::ptr::null_mut()));
    // SAFETY: the record was set by this thread and is now detached from TLS.
    let r = unsafe { &mut *rec };
    for &(heap, cache) in &r.entries[..r.len] {
        // SAFETY: heaps are 'static; the cache is ours and unused from here on.
        unsafe { (*heap).unlink_cache(cache) };
        unmap(cache);
    }
    unmap(rec);
}
