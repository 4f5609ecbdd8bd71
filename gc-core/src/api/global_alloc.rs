//! `GcAllocator`: the collector as Rust's global allocator.
//!
//! ```no_run
//! #[global_allocator]
//! static GLOBAL: gc_core::GcAllocator = gc_core::GcAllocator;
//! ```
//!
//! Every allocation of the program (`Box`, `Vec`, `String`, ...) comes from the global
//! heap's malloc space and is traced conservatively, so `Gc<T>` pointers stored in
//! ordinary collections keep their objects alive. `dealloc` frees at once, so `Box` and
//! `Vec` behave as usual; memory that is leaked and becomes unreachable is reclaimed too
//! (set `DUNEGC_MALLOC_COLLECTABLE=0` to turn that off, e.g. for programs that hide
//! pointers where the collector cannot see them: in the kernel (epoll data), in memory
//! from `mmap` or libc's `malloc`, or xor-ed).
//!
//! Errors follow `GlobalAlloc`: a request that cannot be met returns null (Rust then calls
//! `handle_alloc_error`). Freeing something that is not a live allocation of the heap is
//! undefined behaviour in Rust; here it is detected and ignored (counted nowhere, never
//! corrupting the heap), which makes double frees harmless rather than fatal.

use crate::api::global_heap;
use crate::heap::kind::ObjectKind;
use std::alloc::{GlobalAlloc, Layout};

/// The global allocator backed by the process's default heap.
#[derive(Clone, Copy, Debug, Default)]
pub struct GcAllocator;

// SAFETY: alloc returns either null or a block of at least layout.size() bytes aligned
// to layout.align() that no other live allocation overlaps (slots are claimed with an
// atomic bit); dealloc only releases blocks this allocator returned; realloc preserves
// the contents up to min(old, new) size.
unsafe impl GlobalAlloc for GcAllocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match global_heap().alloc(ObjectKind::Malloc, layout.size(), layout.align()) {
            Ok(a) => a as *mut u8,
            Err(_) => std::ptr::null_mut(),
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract; the heap always returns zeroed memory.
        unsafe { self.alloc(layout) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // An invalid free is rejected by the heap without changing anything.
        let _ = global_heap().free(ptr as usize);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let heap = global_heap();
        if let Some(usable) = heap.size_of(ptr as usize) {
            if new_size <= usable && new_size >= usable / 2 {
                return ptr;
            }
        }
        // SAFETY: new_size is non-zero and the alignment is the caller's valid one.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: the GlobalAlloc contract for alloc holds for new_layout.
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are live and distinct; we copy the smaller size.
            unsafe { std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size)) };
            // SAFETY: ptr was returned by this allocator with `layout`.
            unsafe { self.dealloc(ptr, layout) };
        }
        new
    }
}
