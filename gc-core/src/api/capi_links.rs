//! Disappearing links (bdwgc's `GC_general_register_disappearing_link` family), for
//! the C ABI: a word at `link` is set to 0 by the first collection that finds `obj`
//! unreachable, before finalizers are looked for (bdwgc's "short" links); the
//! registration goes away then, or when the object holding `link` is collected (after
//! finalization marking, as in bdwgc: an object kept for its finalizer keeps its
//! links), or when it is unregistered.
//!
//! The table is sorted by link address (binary search) and lives in anonymous
//! mappings, never in the global allocator, so the collector can use it with the world
//! stopped. Every access happens with the heap lock held, so no stopped thread can hold
//! the table's own mutex.

use crate::error::GcError;
use crate::heap::kind::ObjectKind;
use crate::heap::Heap;
use crate::util::mmap::MmapVec;
use std::sync::Mutex;

/// One registration.
#[derive(Clone, Copy, Debug)]
struct Link {
    /// The heap it belongs to (`Heap::id`).
    heap: usize,
    /// A long link: cleared only once the object cannot be resurrected by a finalizer.
    long: bool,
    /// The word that is cleared.
    link: usize,
    /// The object whose death clears it; 0 once the collector decided to clear it.
    obj: usize,
}

/// The registrations of every heap, sorted by `(heap, long, link)`.
struct Table(MmapVec<Link>);

// SAFETY: the table's mappings belong to no thread; it is only used under LINKS.
unsafe impl Send for Table {}

static LINKS: Mutex<Table> = Mutex::new(Table(MmapVec::new()));

/// What a registration did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkRegistration {
    /// A new link.
    New,
    /// The link was registered already; it now refers to the new object.
    Duplicate,
}

/// What a move did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkMove {
    /// Moved (or, for equal addresses, found).
    Moved,
    /// Another link is registered at the new address; nothing changed.
    Duplicate,
    /// No link is registered at the old address.
    NotFound,
}

fn table() -> std::sync::MutexGuard<'static, Table> {
    LINKS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Position of `(heap, long, link)` in the sorted table: `Ok(found)` or
/// `Err(insert at)`.
fn search(t: &Table, heap: usize, long: bool, link: usize) -> Result<usize, usize> {
    t.0.as_slice()
        .binary_search_by(|e| (e.heap, e.long, e.link).cmp(&(heap, long, link)))
}

impl Heap {
    /// Register `link` to be cleared when `obj` becomes unreachable (a short link,
    /// cleared before finalizers are looked for) or, if `long`, when it cannot be
    /// resurrected by a finalizer any more (cleared after finalization marking). Short
    /// and long links are separate registrations. A link registered already keeps one
    /// registration, now for `obj` (bdwgc's `GC_DUPLICATE`). Fails only when the table
    /// cannot grow (out of memory).
    ///
    /// # Safety
    /// `link` is a word-aligned address, writable by the collector (from the thread that
    /// collects, while the world is stopped) until the registration goes away; `obj` is
    /// the start of an object of this heap.
    pub unsafe fn register_disappearing_link(
        &self,
        link: usize,
        obj: usize,
        long: bool,
    ) -> Result<LinkRegistration, GcError> {
        let _g = self.lock();
        let mut t = table();
        match search(&t, self.id, long, link) {
            Ok(i) => {
                t.0.as_mut_slice()[i].obj = obj;
                Ok(LinkRegistration::Duplicate)
            }
            Err(at) => {
                let entry = Link {
                    heap: self.id,
                    long,
                    link,
                    obj,
                };
                t.0.push(entry).map_err(|source| GcError::Os {
                    op: "growing the disappearing-link table",
                    source,
                })?;
                t.0.as_mut_slice()[at..].rotate_right(1);
                Ok(LinkRegistration::New)
            }
        }
    }

    /// Remove the (short, or if `long` long) registration of `link`; false if there
    /// was none.
    pub fn unregister_disappearing_link(&self, link: usize, long: bool) -> bool {
        let _g = self.lock();
        let mut t = table();
        match search(&t, self.id, long, link) {
            Ok(i) => {
                remove_at(&mut t, i);
                true
            }
            Err(_) => false,
        }
    }

    /// Move the (short, or if `long` long) registration of `link` to `new_link`,
    /// keeping its object.
    ///
    /// # Safety
    /// `new_link` meets `register_disappearing_link`'s requirements on `link`.
    pub unsafe fn move_disappearing_link(
        &self,
        link: usize,
        new_link: usize,
        long: bool,
    ) -> LinkMove {
        let _g = self.lock();
        let mut t = table();
        let Ok(i) = search(&t, self.id, long, link) else {
            return LinkMove::NotFound;
        };
        if link == new_link {
            return LinkMove::Moved;
        }
        let at = match search(&t, self.id, long, new_link) {
            Ok(_) => return LinkMove::Duplicate,
            Err(at) => at,
        };
        let s = t.0.as_mut_slice();
        s[i].link = new_link;
        // Keep the order: rotate the moved entry to its new place.
        if at > i {
            s[i..at].rotate_left(1);
        } else {
            s[at..=i].rotate_right(1);
        }
        LinkMove::Moved
    }

    /// The registered links of this heap as `(long, link, obj)`, short links first, each
    /// kind by link address (for `GC_dump_finalization`). Links the collector already
    /// decided to clear are left out.
    pub fn disappearing_link_list(&self) -> Vec<(bool, usize, usize)> {
        let _g = self.lock();
        let t = table();
        t.0.as_slice()
            .iter()
            .filter(|e| e.heap == self.id && e.obj != 0)
            .map(|e| (e.long, e.link, e.obj))
            .collect()
    }

    /// Registered links of this heap (for tests and statistics).
    pub fn disappearing_links(&self) -> usize {
        let _g = self.lock();
        let t = table();
        t.0.as_slice().iter().filter(|e| e.heap == self.id).count()
    }

    /// True if the object at `addr` is allocated but will be swept: collectable and
    /// unmarked. (Called after marking, before sweeping.)
    fn dies_now(&self, addr: usize) -> Option<bool> {
        let info = self.find_object(addr)?;
        let collectable = match info.kind {
            ObjectKind::Uncollectable => false,
            ObjectKind::Malloc => self.options.malloc_collectable,
            _ => true,
        };
        Some(collectable && !self.marks.get(info.base))
    }

    /// Mark the short (or, if `long`, the long) links whose object is unreachable (or
    /// was freed) for clearing: short ones after marking and before finalizers are
    /// looked for, long ones after finalization marking (heap lock held, world stopped).
    pub(crate) fn decide_dead_links(&self, long: bool) {
        let mut t = table();
        for e in t.0.as_mut_slice() {
            if e.heap == self.id
                && e.long == long
                && e.obj != 0
                && self.dies_now(e.obj) != Some(false)
            {
                e.obj = 0;
            }
        }
    }

    /// After sweeping and disarming the dirty tracker (world still stopped): drop the
    /// registrations whose link lay in an object that was just collected (or freed),
    /// then clear the links marked by `decide_dead_links` and drop them too.
    pub(crate) fn clear_dead_links(&self) {
        let mut t = table();
        let mut w = 0;
        let n = t.0.len();
        let s = t.0.as_mut_slice();
        for r in 0..n {
            let e = s[r];
            if e.heap == self.id {
                if self.contains(e.link) && self.find_object(e.link).is_none() {
                    continue;
                }
                if e.obj == 0 {
                    // SAFETY: the program registered `link` as a writable, aligned word
                    // that stays valid while registered (bdwgc's contract); if it lies
                    // in the heap, its object is still allocated (checked above).
                    unsafe { (e.link as *mut usize).write_volatile(0) };
                    continue;
                }
            }
            s[w] = e;
            w += 1;
        }
        t.0.truncate(w);
    }
}

/// Remove entry `i`, keeping the order.
fn remove_at(t: &mut Table, i: usize) {
    let n = t.0.len();
    t.0.as_mut_slice()[i..].rotate_left(1);
    t.0.truncate(n - 1);
}
