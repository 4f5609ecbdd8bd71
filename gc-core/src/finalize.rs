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
//! `BdwgcNoOrder` is `NoOrder` for the C ABI, whose referents are kept only with the
//! heap's Java-style finalization on (bdwgc's `GC_java_finalization`).

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
    /// bdwgc's no-order finalization (`GC_register_finalizer_no_order`): as `NoOrder`
    /// while the heap's Java-style finalization is on (the default,
    /// [`crate::Heap::set_java_finalization`]); with it off, the queued object itself is
    /// kept until its finalizer has run but what it references is not, so objects reachable
    /// only from it are freed in the same collection (bdwgc's `GC_java_finalization = 0`).
    BdwgcNoOrder,
    /// bdwgc's `GC_register_finalizer_unreachable`: ordered as [`FinalizerOrder::Ordered`],
    /// and, while Java-style finalization is on, not finalized while an object queued for
    /// no-order finalization in the same collection still reaches it (it stays
    /// registered and is looked at again in a later collection).
    Unreachable,
}

impl FinalizerOrder {
    /// Orders that wait until no other unreachable finalizable object reaches them.
    pub fn is_ordered(self) -> bool {
        matches!(self, FinalizerOrder::Ordered | FinalizerOrder::Unreachable)
    }
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
    /// Registered, object not yet found unreachable. The collector may filter it in
    /// place; it then calls [`Finalizers::reindex`].
    pub registered: MmapVec<Finalizer>,
    /// Found unreachable; the objects are kept alive until their finalizer has run.
    pub ready: MmapVec<Finalizer>,
    /// Object address -> position in `registered` (so a registration is O(1), not a
    /// search: C programs register, replace and remove finalizers one object at a time).
    index: PosIndex,
    /// New registrations so far (replacements and removals not counted): the growth
    /// decision (`heap::growth`) weighs those made since it last collected.
    pub registrations: u64,
}

impl Finalizers {
    /// Register (or replace, or with `func == None` remove) the finalizer of `obj`.
    /// Returns the previous registration, if any.
    pub fn register(&mut self, obj: usize, new: Option<Finalizer>) -> Option<Finalizer> {
        let pos = self.index.get(obj, self.registered.as_slice());
        let old = pos.map(|i| self.registered.as_slice()[i]);
        match (pos, new) {
            (Some(i), Some(f)) => self.registered.as_mut_slice()[i] = f,
            (Some(i), None) => {
                self.index.remove(obj, self.registered.as_slice());
                let last = self.registered.len() - 1;
                if i != last {
                    // Re-point the last entry's slot while `registered` still holds it
                    // at `last` (lookups compare through the slice).
                    let moved = self.registered.as_slice()[last].obj;
                    self.index.set(moved, i, self.registered.as_slice());
                    self.registered.as_mut_slice().swap(i, last);
                }
                self.registered.pop();
            }
            (None, Some(f)) => self.push_new(f),
            (None, None) => {}
        }
        old
    }

    /// Append a registration known to be new (the `Gc<T>` fast path).
    pub fn push_new(&mut self, f: Finalizer) {
        self.registrations += 1;
        self.registered
            .push(f)
            .expect("mapping memory for finalizers failed");
        self.index
            .insert(f.obj, self.registered.len() - 1, self.registered.as_slice());
    }

    /// Rebuild the index after `registered` was changed other than through
    /// [`Finalizers::register`] / [`Finalizers::push_new`].
    pub fn reindex(&mut self) {
        self.index.rebuild(self.registered.as_slice());
    }
}

/// An open-addressing (linear probing) map from object address to its position in a
/// slice of registrations; slots hold `position + 1` (0 = empty). Kept at most half full.
#[derive(Debug, Default)]
struct PosIndex {
    slots: MmapVec<usize>,
}

impl PosIndex {
    fn home(&self, obj: usize) -> usize {
        // Fibonacci hashing; objects are 16-byte aligned, so the low bits carry nothing.
        ((obj >> 4).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 20) & (self.slots.len() - 1)
    }

    /// The slot holding `obj`, if any.
    fn find(&self, obj: usize, regs: &[Finalizer]) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let slots = self.slots.as_slice();
        let mut s = self.home(obj);
        loop {
            match slots[s] {
                0 => return None,
                p if regs[p - 1].obj == obj => return Some(s),
                _ => s = (s + 1) & mask,
            }
        }
    }

    fn get(&self, obj: usize, regs: &[Finalizer]) -> Option<usize> {
        self.find(obj, regs).map(|s| self.slots.as_slice()[s] - 1)
    }

    /// Point the entry of `obj` (present) at `pos`; `regs[pos].obj == obj`.
    fn set(&mut self, obj: usize, pos: usize, regs: &[Finalizer]) {
        let s = self.find(obj, regs).expect("indexed registration");
        self.slots.as_mut_slice()[s] = pos + 1;
    }

    /// Add `obj` (absent) at `pos`; `regs` already holds it there.
    fn insert(&mut self, obj: usize, pos: usize, regs: &[Finalizer]) {
        if 2 * regs.len() > self.slots.len() {
            self.rebuild(regs);
            return;
        }
        self.place(obj, pos);
    }

    fn place(&mut self, obj: usize, pos: usize) {
        let mask = self.slots.len() - 1;
        let mut s = self.home(obj);
        while self.slots.as_slice()[s] != 0 {
            s = (s + 1) & mask;
        }
        self.slots.as_mut_slice()[s] = pos + 1;
    }

    /// Remove `obj` (present; `regs` still holds it), shifting later entries of its
    /// probe run back so that no lookup stops early.
    fn remove(&mut self, obj: usize, regs: &[Finalizer]) {
        let Some(mut hole) = self.find(obj, regs) else {
            return;
        };
        let mask = self.slots.len() - 1;
        let mut s = hole;
        loop {
            s = (s + 1) & mask;
            let p = self.slots.as_slice()[s];
            if p == 0 {
                break;
            }
            let home = self.home(regs[p - 1].obj);
            // The entry at `s` may fill the hole unless its home lies cyclically in
            // (hole, s].
            let home_after_hole = if hole <= s {
                hole < home && home <= s
            } else {
                hole < home || home <= s
            };
            if !home_after_hole {
                self.slots.as_mut_slice()[hole] = p;
                hole = s;
            }
        }
        self.slots.as_mut_slice()[hole] = 0;
    }

    fn rebuild(&mut self, regs: &[Finalizer]) {
        if regs.is_empty() {
            self.slots = MmapVec::new();
            return;
        }
        let want = (regs.len() * 2).next_power_of_two().max(64);
        if self.slots.len() != want {
            let mut slots = MmapVec::new();
            slots
                .reserve(want)
                .expect("mapping memory for finalizers failed");
            for _ in 0..want {
                let _ = slots.push_within_capacity(0);
            }
            self.slots = slots;
        } else {
            self.slots.as_mut_slice().fill(0);
        }
        for (i, f) in regs.iter().enumerate() {
            self.place(f.obj, i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    unsafe fn nop(_: usize, _: usize) {}

    fn fin(obj: usize, data: usize) -> Finalizer {
        Finalizer {
            obj,
            func: nop,
            data,
            order: FinalizerOrder::NoOrder,
        }
    }

    proptest! {
        /// Register / replace / remove / collector-style filtering against a map model.
        #[test]
        fn index_matches_model(ops in prop::collection::vec((0u8..4, 0usize..300, 0usize..1000), 1..600)) {
            let mut f = Finalizers::default();
            let mut model: HashMap<usize, usize> = HashMap::new();
            for (op, o, data) in ops {
                let obj = 0x10_0000 + o * 16;
                match op {
                    0 | 1 => {
                        let old = f.register(obj, Some(fin(obj, data)));
                        prop_assert_eq!(old.map(|x| x.data), model.insert(obj, data));
                    }
                    2 => {
                        let old = f.register(obj, None);
                        prop_assert_eq!(old.map(|x| x.data), model.remove(&obj));
                    }
                    _ => {
                        // What the collector does: filter in place, then reindex.
                        let keep = |r: &Finalizer| !r.data.is_multiple_of(3);
                        let mut w = 0;
                        for r in 0..f.registered.len() {
                            let x = f.registered.as_slice()[r];
                            if keep(&x) {
                                f.registered.as_mut_slice()[w] = x;
                                w += 1;
                            }
                        }
                        f.registered.truncate(w);
                        f.reindex();
                        model.retain(|_, d| !d.is_multiple_of(3));
                    }
                }
                prop_assert_eq!(f.registered.len(), model.len());
            }
            for (&obj, &data) in &model {
                prop_assert_eq!(f.register(obj, None).map(|x| x.data), Some(data));
            }
            prop_assert!(f.registered.is_empty());
        }
    }
}
