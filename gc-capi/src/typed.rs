//! Typed allocation (bdwgc's `gc_typed.h`): `GC_make_descriptor`,
//! `GC_malloc_explicitly_typed`, `GC_malloc_explicitly_typed_ignore_off_page`,
//! `GC_calloc_explicitly_typed`.
//!
//! As in bdwgc, a typed object is an object of the typed kind with one extra word at
//! the end of its slot holding its descriptor; the kind's per-object descriptor points
//! there, so the marker scans only the words the bitmap marks as pointers. Bitmaps of
//! up to 62 words fit in a `GC_DS_BITMAP` descriptor; longer ones are kept in a table
//! (never freed, as bdwgc's) and scanned by a mark procedure. Arrays from
//! `GC_calloc_explicitly_typed` keep the element descriptor and count in two more
//! words at the end and are scanned element by element by another mark procedure.
//! Everything the marker reads is in atomics or in the object, so it never takes a
//! lock.

use crate::alloc::{alloc_kind, out_of_memory};
use crate::init::heap;
use crate::kinds::{alloc_scanned, lookup, new_kind};
use crate::types::GcWord;
use gc_core::mark::descr::{
    self, make_proc, MsEntry, DS_BITMAP, DS_LENGTH, DS_PER_OBJECT, DS_PROC, DS_TAGS,
    LOG_MAX_MARK_PROCS, MAX_MARK_PROCS,
};
use gc_core::{GcError, ObjectKind};
use std::ffi::c_void;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{Mutex, OnceLock};

/// Words a `GC_DS_BITMAP` descriptor describes.
const BITMAP_BITS: usize = 62;
/// Long bitmaps `GC_make_descriptor` can keep; past this it answers conservatively.
const MAX_EXT: usize = 4096;
const WORD: usize = std::mem::size_of::<usize>();

/// Long bitmaps: `[n_words, bits...]`, leaked, written once before publication.
static EXT: [AtomicPtr<usize>; MAX_EXT] = [const { AtomicPtr::new(std::ptr::null_mut()) }; MAX_EXT];
static N_EXT: Mutex<usize> = Mutex::new(0);

/// The typed kind's number and the two mark procedures' indices, made on first use.
struct Typed {
    kind: usize,
    ext_proc: usize,
    array_proc: usize,
}

fn typed() -> &'static Typed {
    static T: OnceLock<Typed> = OnceLock::new();
    T.get_or_init(|| {
        heap();
        let proc_index = |p: descr::MarkProc| {
            descr::register_mark_proc(p).unwrap_or_else(|| {
                eprintln!("Too many mark procedures");
                std::process::abort()
            })
        };
        Typed {
            // The descriptor lives in the last word: offset size - 8, per object.
            kind: new_kind(WORD.wrapping_neg() | DS_PER_OBJECT, true),
            ext_proc: proc_index(ext_mark),
            array_proc: proc_index(array_mark),
        }
    })
}

/// Bit `i` of the bitmap at `bm` (gc_typed.h's `GC_get_bit`).
///
/// # Safety
/// `bm` holds at least `i / 64 + 1` words.
unsafe fn get_bit(bm: *const GcWord, i: usize) -> bool {
    // SAFETY: in bounds by the caller's promise.
    unsafe { (*bm.add(i / 64) >> (i % 64)) & 1 != 0 }
}

/// Make a descriptor for objects whose word `i` is a pointer when bit `i` of `bm` is
/// set, for `len` words (bdwgc's `GC_make_descriptor`): 0 without pointers, a length
/// when the pointers are a prefix, a bitmap up to 62 words, a table entry beyond (or,
/// once 4096 long bitmaps exist, a length covering all the pointers, bdwgc's own
/// fallback).
///
/// # Safety
/// `bm` holds at least `ceil(len / 64)` words.
#[no_mangle]
pub unsafe extern "C" fn GC_make_descriptor(bm: *const GcWord, len: usize) -> GcWord {
    let t = typed();
    let bit = |i: usize| {
        debug_assert!(i < len);
        // SAFETY: every caller below passes i < len, and bm holds ceil(len / 64) words.
        unsafe { get_bit(bm, i) }
    };
    let Some(last) = (0..len).rev().find(|&i| bit(i)) else {
        return 0;
    };
    if (0..=last).all(bit) {
        return ((last + 1) * WORD) | DS_LENGTH;
    }
    if last < BITMAP_BITS {
        let mut d = 0usize;
        for i in 0..=last {
            if bit(i) {
                d |= 1 << (63 - i);
            }
        }
        return d | DS_BITMAP;
    }
    let n_words = last + 1;
    let mut n = N_EXT.lock().unwrap_or_else(|e| e.into_inner());
    if *n >= MAX_EXT {
        return (n_words * WORD) | DS_LENGTH;
    }
    let mut v = vec![0usize; 1 + n_words.div_ceil(64)];
    v[0] = n_words;
    for i in 0..n_words {
        if bit(i) {
            v[1 + i / 64] |= 1 << (i % 64);
        }
    }
    let p = Box::leak(v.into_boxed_slice()).as_mut_ptr();
    EXT[*n].store(p, Ordering::Release);
    *n += 1;
    make_proc(t.ext_proc, *n - 1)
}

/// Allocate `lb` bytes (plus the descriptor word) of the typed kind and store `d` in
/// the slot's last word.
fn alloc_typed(what: &str, lb: usize, d: GcWord, extra_words: usize) -> *mut c_void {
    let t = typed();
    let Some(total) = lb.checked_add((1 + extra_words) * WORD) else {
        return out_of_memory(
            what,
            lb,
            &GcError::TooLarge {
                requested_bytes: lb,
                max_bytes: usize::MAX,
            },
        );
    };
    let (kind, scan) = lookup(t.kind).expect("the typed kind exists once made");
    let p = alloc_scanned(what, kind, scan, total);
    if p.is_null() {
        return p;
    }
    let size = heap()
        .size_of(p as usize)
        .expect("a fresh object has a size");
    // SAFETY: the slot is `size` bytes from p, fresh and ours; its last word is free.
    unsafe { ((p as usize + size - WORD) as *mut usize).write(d) };
    p
}

/// Allocate `lb` zeroed bytes whose pointer words are those descriptor `d` (from
/// `GC_make_descriptor`) names (bdwgc's `GC_malloc_explicitly_typed`): the other words
/// keep nothing alive.
#[no_mangle]
pub extern "C" fn GC_malloc_explicitly_typed(lb: usize, d: GcWord) -> *mut c_void {
    alloc_typed("GC_malloc_explicitly_typed", lb, d, 0)
}

/// As `GC_malloc_explicitly_typed` (bdwgc's `..._ignore_off_page`: every interior
/// pointer counts in dunegc anyway).
#[no_mangle]
pub extern "C" fn GC_malloc_explicitly_typed_ignore_off_page(lb: usize, d: GcWord) -> *mut c_void {
    GC_malloc_explicitly_typed(lb, d)
}

/// Allocate `n` zeroed elements of `lb` bytes, each laid out as descriptor `d` says
/// (bdwgc's `GC_calloc_explicitly_typed`). An element size that is not a multiple of
/// the word makes the array scanned conservatively (a superset of what bdwgc keeps).
#[no_mangle]
pub extern "C" fn GC_calloc_explicitly_typed(n: usize, lb: usize, d: GcWord) -> *mut c_void {
    let what = "GC_calloc_explicitly_typed";
    let Some(total) = n.checked_mul(lb) else {
        return out_of_memory(
            what,
            usize::MAX,
            &GcError::TooLarge {
                requested_bytes: usize::MAX,
                max_bytes: usize::MAX,
            },
        );
    };
    if d == 0 {
        return alloc_kind(what, ObjectKind::Atomic, total);
    }
    if !lb.is_multiple_of(WORD) || (d & DS_TAGS == DS_LENGTH && d >= lb) {
        return alloc_kind(what, ObjectKind::Normal, total);
    }
    if n <= 1 {
        return alloc_typed(what, lb, d, 0);
    }
    let t = typed();
    let p = alloc_typed(what, total, make_proc(t.array_proc, lb), 2);
    if !p.is_null() {
        let size = heap()
            .size_of(p as usize)
            .expect("a fresh object has a size");
        let tail = p as usize + size - 3 * WORD;
        // SAFETY: the two words before the descriptor word of a fresh slot of ours
        // (alloc_typed reserved them).
        unsafe {
            (tail as *mut usize).write(n);
            ((tail + WORD) as *mut usize).write(d);
        }
    }
    p
}

/// Read word `i` of `base` and mark what it points to.
///
/// # Safety
/// The word lies inside a live object.
unsafe fn push_word(base: usize, i: usize) {
    // SAFETY: the caller's promise; read as the marker reads (volatile, plain word).
    let w = unsafe { std::ptr::read_volatile((base + i * WORD) as *const usize) };
    descr::mark_and_push(w);
}

/// Mark the pointer words of one element at `base` of `words` words described by `d`.
///
/// # Safety
/// `[base, base + words * 8)` lies inside a live object.
unsafe fn mark_element(base: usize, words: usize, d: usize) {
    let t = typed();
    let is_ptr = |i: usize| match d & DS_TAGS {
        DS_LENGTH => i < d / WORD,
        DS_BITMAP => i < BITMAP_BITS && d & (1 << (63 - i)) != 0,
        // Not a descriptor GC_make_descriptor makes: every word may be a pointer.
        _ => true,
    };
    if d & DS_TAGS == DS_PROC && (d >> 2) & (MAX_MARK_PROCS - 1) == t.ext_proc {
        // SAFETY: forwarded from the caller.
        unsafe { mark_ext(base, words, d >> (2 + LOG_MAX_MARK_PROCS)) };
        return;
    }
    for i in (0..words).filter(|&i| is_ptr(i)) {
        // SAFETY: i < words, inside the element by the caller's promise.
        unsafe { push_word(base, i) };
    }
}

/// Mark the words long bitmap `index` names in `words` words at `base`.
///
/// # Safety
/// As [`mark_element`].
unsafe fn mark_ext(base: usize, words: usize, index: usize) {
    let p = EXT
        .get(index)
        .map_or(std::ptr::null_mut(), |e| e.load(Ordering::Acquire));
    if p.is_null() {
        for i in 0..words {
            // SAFETY: i < words, inside the element by the caller's promise.
            unsafe { push_word(base, i) };
        }
        return;
    }
    // SAFETY: published entries are leaked `[n_words, bits...]` arrays, never changed.
    let n_words = unsafe { *p };
    for i in 0..n_words.min(words) {
        // SAFETY: i < n_words, so word 1 + i / 64 is inside the array.
        if unsafe { *p.add(1 + i / 64) } >> (i % 64) & 1 != 0 {
            // SAFETY: i < words.
            unsafe { push_word(base, i) };
        }
    }
}

/// The words of the typed object at `addr` that precede its `tail_words` trailer.
fn payload_words(addr: usize, tail_words: usize) -> usize {
    heap()
        .size_of(addr)
        .map_or(0, |s| (s / WORD).saturating_sub(tail_words))
}

/// Mark procedure for descriptors of long bitmaps (env: the table index).
unsafe extern "C" fn ext_mark(
    addr: *mut usize,
    msp: *mut MsEntry,
    _msl: *mut MsEntry,
    env: usize,
) -> *mut MsEntry {
    let words = payload_words(addr as usize, 1);
    // SAFETY: the marker calls this for a live typed object; `words` stops before its
    // descriptor word.
    unsafe { mark_ext(addr as usize, words, env) };
    msp
}

/// Mark procedure for typed arrays (env: the element size in bytes); the count and
/// element descriptor are the two words before the descriptor word.
unsafe extern "C" fn array_mark(
    addr: *mut usize,
    msp: *mut MsEntry,
    _msl: *mut MsEntry,
    lb: usize,
) -> *mut MsEntry {
    let base = addr as usize;
    let words = payload_words(base, 3);
    if words == 0 || lb < WORD {
        return msp;
    }
    // SAFETY: the trailer words of a live typed array written by
    // GC_calloc_explicitly_typed (words > 0 so they lie inside the object).
    let (n, d) = unsafe { (*addr.add(words), *addr.add(words + 1)) };
    let per = lb / WORD;
    let n = n.min(words / per);
    for e in 0..n {
        // SAFETY: element e lies within the payload (n * per <= words).
        unsafe { mark_element(base + e * lb, per, d) };
    }
    msp
}
