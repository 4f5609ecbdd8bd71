//! Finalization: objects registered with a finalizer are, once unreachable, kept alive
//! (with everything they reference) and queued; the finalizer runs later, outside the
//! collector and outside the heap lock, on whichever thread calls
//! `Heap::run_finalizers` (the `Gc<T>` finalizer thread, or the C ABI's allocation path).
//!
//! Two orders, as in bdwgc: `NoOrder` finalizes every unreachable object in the same
//! cycle; `Ordered` (bdwgc's `GC_register_finalizer`) finalizes an object only when no
//! other unreachable finalizable object reaches it, so if A points to B, A is finalized
//! first and B one cycle later. Pointers from an object to itself are ignored; longer
//! cycles of ordered finalizable objects are never finalized (as in bdwgc).

use crate::util::mmap::MmapVec;

/// A finalizer: called with the object's address and the registered client data.
pub type FinalizerFn = unsafe fn(obj: usize, data: usize);

/// How a finalizer is ordered against others.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinalizerOrder {
    /// Run when the object is unreachable from roots, whatever else reaches it.
    NoOrder,
    /// Run only when no other unreachable finalizable object reaches it.
    Ordered,
}

/// One registration.
#[derive(Clone, Copy, Debug)]
pub struct Finalizer {
    /// The object.
    pub obj: usize,
    /// What to call.
    pub func: FinalizerFn,
    /// Client data passed along.
    pub data: usize,
    /// Ordering.
    pub order: FinalizerOrder,
}

/// Registered finalizers and the queue of those ready to run.
#[derive(Debug, Default)]
pub struct Finalizers {
    /// Registered, object not yet found unreachable.
    pub registered: MmapVec<Finalizer>,
    /// Found unreachable; the objects are kept alive until their finalizer has run.
    pub ready: MmapVec<Finalizer>,
}

impl Finalizers {
    /// Register (or replace, or with `func == None` remove) the finalizer of `obj`.
    /// Returns the previous registration, if any.
    pub fn register(&mut self, obj: usize, new: Option<Finalizer>) -> Option<Finalizer> {
        let pos = self.registered.as_slice().iter().position(|f| f.obj == obj);
        let old = pos.map(|i| self.registered.as_slice()[i]);
        match (pos, new) {
            (Some(i), Some(f)) => self.registered.as_mut_slice()[i] = f,
            (Some(i), None) => {
                let last = self.registered.len() - 1;
                self.registered.as_mut_slice().swap(i, last);
                self.registered.pop();
            }
            (None, Some(f)) => self
                .registered
                .push(f)
                .expect("mapping memory for finalizers failed"),
            (None, None) => {}
        }
        old
    }

    /// Append a registration known to be new (the `Gc<T>` fast path).
    pub fn push_new(&mut self, f: Finalizer) {
        self.registered
            .push(f)
            .expect("mapping memory for finalizers failed");
    }
}
