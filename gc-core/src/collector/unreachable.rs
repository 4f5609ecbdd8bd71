//! bdwgc's `GC_register_finalizer_unreachable` under Java-style finalization: an object
//! queued this collection with [`FinalizerOrder::Unreachable`] that an object queued
//! for no-order finalization still reaches is put back among the registrations (bdwgc's
//! "revive finalize-when-unreachable objects reachable from other finalizable
//! objects"); the others stay queued and are kept alive like any queued object.

use crate::finalize::{Finalizer, FinalizerOrder};
use crate::heap::Heap;
use crate::mark::MarkStack;
use crate::util::mmap::MmapVec;

impl Heap {
    /// Called after the queued objects of this collection (`ready[first_new..]`), all but
    /// the unreachable-order ones, were marked with what they reference.
    pub(super) fn revive_unreachable(
        &self,
        ready: &mut MmapVec<Finalizer>,
        first_new: usize,
        registered: &mut MmapVec<Finalizer>,
        stack: &mut MarkStack,
    ) {
        let mut w = first_new;
        for r in first_new..ready.len() {
            let f = ready.as_slice()[r];
            if f.order == FinalizerOrder::Unreachable && self.marks.get(f.obj) {
                // Reached from a no-order finalizable object: not finalized now. The
                // caller rebuilds the registration index afterwards.
                let _ = registered.push(f);
                continue;
            }
            if f.order == FinalizerOrder::Unreachable {
                self.mark_word(f.obj, stack);
            }
            ready.as_mut_slice()[w] = f;
            w += 1;
        }
        ready.truncate(w);
        self.drain_all(stack);
    }
}
