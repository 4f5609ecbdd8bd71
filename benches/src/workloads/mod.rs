//! The comparison workloads written in Rust against gc-core's heap, mirroring the C
//! versions in `benches/c/` that run on bdwgc: same allocation pattern, same object sizes,
//! same checksums.
//!
//! Each workload is generic over an [`Allocator`]: [`GcHeap`] (gc-core, garbage is simply
//! dropped) or [`SystemMalloc`] (the no-GC baseline: glibc malloc, and the workload frees
//! explicitly what the GC version drops, walking the dropped structure to do so).
//!
//! - [`gcbench`] — Boehm's GCBench.
//! - [`linkedlist`] — long linked lists built, traversed and partly dropped.
//! - [`hashmap`] — a chained hash map with churn of keys and values.
//! - [`xml`] — generate an XML document, parse it into a DOM, query it, drop it.

pub mod gcbench;
pub mod hashmap;
pub mod linkedlist;
pub mod xml;

use gc_core::{Heap, ObjectKind};

/// Allocate a traced object of `len` bytes, or abort the workload with a message.
#[inline]
pub fn gc_malloc(heap: &'static Heap, len: usize) -> usize {
    match heap.alloc(ObjectKind::Normal, len, 8) {
        Ok(a) => a,
        Err(e) => panic!("workload allocation failed: {e}"),
    }
}

/// Allocate a pointer-free object of `len` bytes.
#[inline]
pub fn gc_malloc_atomic(heap: &'static Heap, len: usize) -> usize {
    match heap.alloc(ObjectKind::Atomic, len, 8) {
        Ok(a) => a,
        Err(e) => panic!("workload allocation failed: {e}"),
    }
}

/// Where a workload's objects come from.
pub trait Allocator: Copy {
    /// Whether the workload must free what it drops (no collector behind it).
    const FREES: bool;

    /// A zeroed object of `len` bytes that may hold pointers (`GC_MALLOC`).
    fn malloc(self, len: usize) -> usize;

    /// An object of `len` bytes that holds no pointers (`GC_MALLOC_ATOMIC`); its
    /// contents are unspecified.
    fn malloc_atomic(self, len: usize) -> usize;

    /// Grow pointer-free `old` (of `old_len` bytes) to `new_len` bytes, keeping its
    /// contents (`GC_REALLOC` on an atomic object).
    fn realloc_atomic(self, old: usize, old_len: usize, new_len: usize) -> usize;

    /// Free `addr` now. Called only when [`Allocator::FREES`] is set.
    fn free(self, addr: usize);
}

/// gc-core's heap: garbage is left to the collector.
#[derive(Clone, Copy, Debug)]
pub struct GcHeap(pub &'static Heap);

impl Allocator for GcHeap {
    const FREES: bool = false;

    #[inline]
    fn malloc(self, len: usize) -> usize {
        gc_malloc(self.0, len)
    }

    #[inline]
    fn malloc_atomic(self, len: usize) -> usize {
        gc_malloc_atomic(self.0, len)
    }

    /// As bdwgc's `GC_realloc` does when an object grows past its size: allocate,
    /// copy, and free the old object explicitly.
    fn realloc_atomic(self, old: usize, old_len: usize, new_len: usize) -> usize {
        let new = gc_malloc_atomic(self.0, new_len);
        // SAFETY: `old` is a live object of at least `old_len` bytes (the caller's
        // buffer), `new` a fresh one of `new_len >= old_len` bytes; distinct objects.
        unsafe {
            std::ptr::copy_nonoverlapping(old as *const u8, new as *mut u8, old_len.min(new_len))
        };
        if let Err(e) = self.0.free(old) {
            panic!("workload realloc: freeing the old buffer failed: {e}");
        }
        new
    }

    #[inline]
    fn free(self, addr: usize) {
        if let Err(e) = self.0.free(addr) {
            panic!("workload free failed: {e}");
        }
    }
}

/// The system allocator (glibc malloc), with explicit frees: the no-GC baseline.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemMalloc;

impl Allocator for SystemMalloc {
    const FREES: bool = true;

    #[inline]
    fn malloc(self, len: usize) -> usize {
        // SAFETY: calloc has no preconditions; the result is checked for null.
        let p = unsafe { libc::calloc(1, len.max(1)) };
        assert!(!p.is_null(), "calloc({len}) failed");
        p as usize
    }

    #[inline]
    fn malloc_atomic(self, len: usize) -> usize {
        // SAFETY: malloc has no preconditions; the result is checked for null.
        let p = unsafe { libc::malloc(len.max(1)) };
        assert!(!p.is_null(), "malloc({len}) failed");
        p as usize
    }

    fn realloc_atomic(self, old: usize, _old_len: usize, new_len: usize) -> usize {
        // SAFETY: `old` came from this allocator's malloc/realloc and is not used again.
        let p = unsafe { libc::realloc(old as *mut libc::c_void, new_len) };
        assert!(!p.is_null(), "realloc({new_len}) failed");
        p as usize
    }

    #[inline]
    fn free(self, addr: usize) {
        // SAFETY: `addr` came from this allocator and the workload drops it for good.
        unsafe { libc::free(addr as *mut libc::c_void) };
    }
}

/// Write `n` in decimal into `out`, returning the bytes written (at most 20).
#[inline]
pub(crate) fn write_decimal(out: &mut [u8], mut n: u64) -> usize {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let len = tmp.len() - i;
    out[..len].copy_from_slice(&tmp[i..]);
    len
}

/// The C runtime's PRNG (xorshift64*, `dunegc_rng_next` in `benches/c/runtime.h`).
#[inline]
pub(crate) fn rng_next(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    x.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

/// `p`, opaque to the optimiser but never stored: where a workload drops a structure
/// (C's `temp_tree = NULL`), this keeps the computation that built it from being
/// optimised away. `std::hint::black_box` would take the value's address and so leave
/// it in a stack slot, where a conservative collector finds it long after the program
/// let go of it (GCBench's 16 MiB stretch tree survived the next collection that way).
#[inline(always)]
pub fn opaque_ptr<T>(p: *mut T) -> *mut T {
    let mut v = p as usize;
    // SAFETY: an empty asm block that claims to read and rewrite one register; it touches
    // no memory and no stack, and leaves the flags alone.
    unsafe { std::arch::asm!("/* {0} */", inout(reg) v, options(nomem, nostack, preserves_flags)) };
    v as *mut T
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals() {
        let mut b = [0u8; 24];
        for n in [0u64, 7, 10, 12345, u64::MAX] {
            let len = write_decimal(&mut b, n);
            assert_eq!(
                std::str::from_utf8(&b[..len]).expect("ascii"),
                n.to_string()
            );
        }
    }
}
