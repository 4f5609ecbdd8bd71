//! Shared pieces of the collector's stress and property tests: checksummed objects,
//! roots in static memory (which the collector scans), and heap construction per backend.

#![allow(dead_code)]

pub mod churn;
pub mod concurrent;
pub mod ops;
pub mod race;

use gc_core::{Backend, BackendChoice, DirtyError, GcError, Heap, HeapBuilder, ObjectKind};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Pointer slots per object.
pub const SLOTS: usize = 4;
/// Header: id, checksum, then SLOTS pointer slots, then payload words.
pub const HEADER_WORDS: usize = 2 + SLOTS;

/// Roots live in static memory: the collector scans static data, so these keep objects
/// alive exactly like a program's globals do.
pub const N_ROOTS: usize = 64;
pub static ROOTS: [AtomicUsize; N_ROOTS] = [const { AtomicUsize::new(0) }; N_ROOTS];

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// xorshift64: reproducible random choices for the stress tests (seeded per thread).
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits (the seed must not be 0).
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A random index below `n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// The words of an object at `base`.
pub fn words(base: usize) -> *mut AtomicU64 {
    base as *mut AtomicU64
}

fn word(base: usize, i: usize) -> &'static AtomicU64 {
    // SAFETY: callers pass the base of a live test object of at least HEADER_WORDS words;
    // objects are only accessed through atomics.
    unsafe { &*words(base).add(i) }
}

fn payload_checksum(id: u64, n_payload: usize) -> u64 {
    let mut h = id.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    for i in 0..n_payload as u64 {
        h = h.rotate_left(7) ^ (id + i).wrapping_mul(0xA24B_AED4_963E_E407);
    }
    h
}

fn payload_word(id: u64, i: usize) -> u64 {
    (id + i as u64).wrapping_mul(0xA24B_AED4_963E_E407)
}

/// Allocate a checksummed object with `len_bytes` (at least the header) of `kind`.
pub fn new_object(heap: &'static Heap, len_bytes: usize) -> Result<usize, GcError> {
    let len = len_bytes.max(HEADER_WORDS * 8);
    let base = heap.alloc(ObjectKind::Normal, len, 8)?;
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let n_payload = len / 8 - HEADER_WORDS;
    word(base, 0).store(id, Ordering::Relaxed);
    for i in 0..n_payload {
        word(base, HEADER_WORDS + i).store(payload_word(id, i), Ordering::Relaxed);
    }
    word(base, 1).store(payload_checksum(id, n_payload), Ordering::Release);
    Ok(base)
}

/// Check an object's contents; returns its id. Panics with a precise message on damage.
pub fn verify(heap: &'static Heap, ptr: usize) -> u64 {
    let info = heap
        .find_object(ptr)
        .unwrap_or_else(|| panic!("live object at {ptr:#x} was freed"));
    let base = info.base;
    let id = word(base, 0).load(Ordering::Acquire);
    let n_payload = info.len_bytes / 8 - HEADER_WORDS;
    // The object may be larger than requested (size class rounding); payload was written
    // for the requested words only, so verify the checksum over what the header says.
    let stored = word(base, 1).load(Ordering::Acquire);
    let mut found = None;
    for n in (0..=n_payload).rev() {
        if payload_checksum(id, n) == stored {
            found = Some(n);
            break;
        }
    }
    let n = found.unwrap_or_else(|| panic!("object {id} at {base:#x}: checksum word overwritten"));
    for i in 0..n {
        assert_eq!(
            word(base, HEADER_WORDS + i).load(Ordering::Relaxed),
            payload_word(id, i),
            "object {id}: payload word {i} overwritten"
        );
    }
    id
}

/// Store `target` (any pointer into an object, or 0) in slot `slot` of the object `ptr`
/// points into.
pub fn set_slot(heap: &'static Heap, ptr: usize, slot: usize, target: usize) {
    let base = heap.find_object(ptr).expect("link source is live").base;
    word(base, 2 + slot).store(target as u64, Ordering::Release);
}

/// Slot `slot` of the object `ptr` points into.
pub fn get_slot(heap: &'static Heap, ptr: usize, slot: usize) -> usize {
    let base = heap.find_object(ptr).expect("object is live").base;
    word(base, 2 + slot).load(Ordering::Acquire) as usize
}

/// Visit every object reachable from `roots` through slots, verifying each; returns the
/// number visited.
pub fn verify_reachable(heap: &'static Heap, roots: &[usize]) -> usize {
    let mut seen = std::collections::HashSet::new();
    let mut stack: Vec<usize> = roots.iter().copied().filter(|&r| r != 0).collect();
    while let Some(p) = stack.pop() {
        verify(heap, p);
        let base = heap.find_object(p).expect("verified").base;
        if !seen.insert(base) {
            continue;
        }
        for s in 0..SLOTS {
            let t = get_slot(heap, base, s);
            if t != 0 {
                stack.push(t);
            }
        }
    }
    seen.len()
}

/// The heap for tests of one configuration (built once, then reused: heaps live for the
/// process): small reservation, small budget so collections happen often.
pub fn heap_for(choice: BackendChoice) -> Result<&'static Heap, GcError> {
    static HEAPS: std::sync::Mutex<Vec<(BackendChoice, &'static Heap)>> =
        std::sync::Mutex::new(Vec::new());
    let mut heaps = HEAPS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(&(_, h)) = heaps.iter().find(|(c, _)| *c == choice) {
        return Ok(h);
    }
    // Tiny mark steps: an incremental cycle then spans many mutations, so a pointer stored
    // into an already-scanned object between steps is exactly the race the dirty tracker
    // must catch.
    let h = HeapBuilder::new()
        .max_space_bytes(64 << 20)
        .initial_heap_bytes(256 << 10)
        .mark_step_bytes(64)
        .mark_rate(0)
        .incremental(choice)
        .build()?;
    heaps.push((choice, h));
    Ok(h)
}

/// Every backend choice to run the suites under: full collections, then each incremental
/// backend. Unsupported ones are reported and skipped (with the reason).
pub fn configurations() -> Vec<(String, BackendChoice)> {
    let mut v = vec![("full".to_owned(), BackendChoice::Exactly(Backend::None))];
    for b in [Backend::Mprotect, Backend::Uffd, Backend::SoftDirty] {
        match gc_core::dirty::open(b) {
            Ok(_) => v.push((format!("incremental-{b}"), BackendChoice::Exactly(b))),
            Err(DirtyError::Unsupported { reason, .. }) => {
                println!("SKIPPED incremental-{b}: {reason}");
            }
            Err(e) => panic!("backend {b} failed to open: {e}"),
        }
    }
    v
}

/// Overwrite a chunk of the stack so stale pointers from earlier calls do not keep
/// garbage alive (the collector is conservative).
#[inline(never)]
pub fn clobber_stack() {
    let buf = [0u8; 32 << 10];
    std::hint::black_box(&buf);
}

/// Run this thread, and the threads it creates (the markers included), on at most two
/// CPUs, as the stress tests ask.
pub fn pin_to_two_cpus() {
    // SAFETY: a zeroed cpu_set_t is valid; CPU_SET writes inside it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above; sched_setaffinity reads the set for this thread (inherited by the
    // threads it creates, the markers included).
    unsafe {
        libc::CPU_SET(0, &mut set);
        libc::CPU_SET(1, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set);
    }
}
