//! The comparison workloads written in Rust against gc-core's heap, mirroring the C
//! versions in `benches/c/` that run on bdwgc: same allocation pattern, same object sizes,
//! same checksums.

pub mod gcbench;

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
