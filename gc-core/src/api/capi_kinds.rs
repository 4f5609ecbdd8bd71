//! Object queries and mark-bit access for the C ABI's `gc_mark.h` (`GC_is_marked`,
//! `GC_set_mark_bit`, `GC_clear_mark_bit`, `GC_get_kind_and_size`).

use crate::heap::kind::ObjectKind;
use crate::heap::Heap;
use std::sync::atomic::Ordering;

/// What [`Heap::object_class`] reports about an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjectClass {
    /// The object's start.
    pub base: usize,
    /// Its usable size in bytes.
    pub len_bytes: usize,
    /// Its kind.
    pub kind: ObjectKind,
    /// Its scan class (0: none; see `mark::descr`).
    pub scan: u8,
}

impl Heap {
    /// The allocated object `addr` points into, with its kind and scan class.
    pub fn object_class(&self, addr: usize) -> Option<ObjectClass> {
        let o = self.find_object(addr)?;
        Some(ObjectClass {
            base: o.base,
            len_bytes: o.len_bytes,
            kind: o.kind,
            scan: self.pages.span(o.span).scan.load(Ordering::Relaxed),
        })
    }

    /// The mark bit of the object `addr` points into (None: not an object). Between
    /// collections it says whether the object survived the last one.
    pub fn mark_bit(&self, addr: usize) -> Option<bool> {
        let o = self.find_object(addr)?;
        Some(self.marks.get(o.base))
    }

    /// Set (`true`) or clear the mark bit of the object `addr` points into; false if it
    /// is not an object. Meant for mark procedures and between collections: a bit
    /// changed during a collection changes what that collection frees.
    pub fn set_mark_bit(&self, addr: usize, marked: bool) -> bool {
        let Some(o) = self.find_object(addr) else {
            return false;
        };
        if marked {
            self.marks.set_atomic(o.base);
        } else {
            self.marks.clear_atomic(o.base);
        }
        true
    }

    /// True if `addr` lies in the static data of a loaded object as the collector found
    /// it at the last collection (bdwgc's "temporary roots", which it also re-finds each
    /// collection).
    pub fn in_static_roots(&self, addr: usize) -> bool {
        let g = self.lock();
        g.gc.statics
            .as_slice()
            .iter()
            .any(|&(s, e)| addr >= s && addr < e)
    }
}
