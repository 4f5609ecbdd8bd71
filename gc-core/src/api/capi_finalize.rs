//! Finalization calls of the C ABI beyond registration (`heap_api`): bdwgc's
//! `GC_finalize_all` (queue every registered finalizer now), its exported
//! `GC_java_finalization` variable, and the registrations for `GC_dump_finalization`.

use crate::heap::Heap;
use std::sync::atomic::{AtomicI32, Ordering};

impl Heap {
    /// Queue every registered finalizer whose object is still allocated, as if all
    /// those objects had become unreachable at once (bdwgc's `GC_enqueue_all_finalizers`,
    /// the step of `GC_finalize_all`); the registrations go away. Queued objects stay
    /// alive, with what they reference, until their finalizers have run. Returns how
    /// many were queued.
    pub fn enqueue_all_finalizers(&self) -> usize {
        let mut g = self.lock();
        let fin = &mut g.gc.finalizers;
        let mut n = 0;
        while let Some(f) = fin.registered.pop() {
            if self.allocs.get(f.obj) {
                fin.ready
                    .push(f)
                    .expect("mapping memory for finalizers failed");
                n += 1;
            }
        }
        fin.reindex();
        if n > 0 {
            self.finalizers_pending.store(true, Ordering::Release);
        }
        n
    }

    /// Read Java-style finalization from `flag` (nonzero: on) at every collection from
    /// now on, instead of [`Heap::set_java_finalization`]'s setting: the C ABI's exported
    /// `GC_java_finalization`, which bdwgc programs may write directly.
    pub fn link_java_finalization_flag(&self, flag: &'static AtomicI32) {
        self.lock().gc.java_flag = Some(flag);
    }

    /// The objects with a registered (not yet queued) finalizer, in no particular order.
    pub fn finalizable_objects(&self) -> Vec<usize> {
        let g = self.lock();
        g.gc.finalizers
            .registered
            .as_slice()
            .iter()
            .map(|f| f.obj)
            .collect()
    }
}
