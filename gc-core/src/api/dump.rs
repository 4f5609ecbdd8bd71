//! A snapshot of a heap's layout for bdwgc's `GC_dump` (the C ABI prints it): the static
//! roots and added root ranges, the page spaces' used prefixes (bdwgc's "heap
//! sections"), and every span in use and free page run in them, with its object counts.
//!
//! The snapshot is taken under the heap lock into mmap-backed vectors (this heap may be
//! the process's global allocator, so nothing here allocates from it).

use crate::heap::kind::ObjectKind;
use crate::heap::span::SpanState;
use crate::heap::Heap;
use crate::roots::statics;
use crate::util::mmap::MmapVec;
use std::sync::atomic::Ordering;

/// One page space's used prefix: bdwgc's "heap section".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DumpSection {
    /// First byte.
    pub start: usize,
    /// One past the last page ever handed out in the space.
    pub end: usize,
    /// Bytes of the section in spans (the rest are free page runs).
    pub in_use_bytes: usize,
}

/// What a region of a section holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DumpRegionUse {
    /// A span of small objects of one size.
    Small {
        /// The objects' kind.
        kind: ObjectKind,
        /// Bytes per object.
        obj_bytes: usize,
        /// Object slots in the span.
        slots: usize,
        /// Slots holding an allocated object.
        allocated: usize,
        /// Allocated objects whose mark bit is set (from the last collection).
        marked: usize,
    },
    /// One large object.
    Large {
        /// The object's kind.
        kind: ObjectKind,
        /// Whether its mark bit is set.
        marked: bool,
    },
    /// A free page run.
    Free,
}

/// A span or free page run: `[start, end)` and what it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DumpRegion {
    /// First byte (page aligned).
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
    /// What it holds.
    pub what: DumpRegionUse,
}

/// A heap's layout at one moment ([`Heap::dump`]).
#[derive(Debug)]
pub struct HeapDump {
    /// Collections so far.
    pub gc_count: u64,
    statics: MmapVec<(usize, usize)>,
    added_roots: MmapVec<(usize, usize)>,
    sections: MmapVec<DumpSection>,
    regions: MmapVec<DumpRegion>,
}

impl HeapDump {
    /// The writable segments of every loaded object (found now, as before a collection).
    pub fn static_roots(&self) -> &[(usize, usize)] {
        self.statics.as_slice()
    }

    /// Root ranges added with [`Heap::add_roots`] (`GC_add_roots`).
    pub fn added_roots(&self) -> &[(usize, usize)] {
        self.added_roots.as_slice()
    }

    /// The sections (page spaces with pages handed out), in address order.
    pub fn sections(&self) -> &[DumpSection] {
        self.sections.as_slice()
    }

    /// Every span and free page run of every section, in address order.
    pub fn regions(&self) -> &[DumpRegion] {
        self.regions.as_slice()
    }
}

impl Heap {
    /// Snapshot the heap's roots and layout. Takes the heap lock (so it must not be called
    /// from inside [`Heap::with_lock_held`]). Fails only if mapping memory for the
    /// snapshot fails.
    pub fn dump(&self) -> std::io::Result<HeapDump> {
        let mut out = HeapDump {
            gc_count: 0,
            statics: MmapVec::new(),
            added_roots: MmapVec::new(),
            sections: MmapVec::new(),
            regions: MmapVec::new(),
        };
        statics::refresh(&mut out.statics);
        let g = self.lock();
        out.gc_count = g.gc.stats.full_collections + g.gc.stats.incremental_cycles;
        for &r in g.gc.added_roots.as_slice() {
            out.added_roots.push(r)?;
        }
        for space in &g.spaces {
            if space.high_water == 0 {
                continue;
            }
            let start = self.pages.page_addr(space.first);
            let end = self.pages.page_addr(space.first + space.high_water);
            out.sections.push(DumpSection {
                start,
                end,
                in_use_bytes: space.in_use_bytes(),
            })?;
            let mut i = space.first;
            while i < space.first + space.high_water {
                if self.pages.raw_entry(i) as usize != i + 1 {
                    i += 1;
                    continue;
                }
                let span = self.pages.span(i);
                let n = span.n_pages.load(Ordering::Relaxed).max(1) as usize;
                let base = self.pages.page_addr(i);
                let end = self.pages.page_addr(i + n);
                let kind = ObjectKind::from_u8(span.kind.load(Ordering::Relaxed));
                let what = match span.state() {
                    SpanState::Free => DumpRegionUse::Free,
                    SpanState::Large => DumpRegionUse::Large {
                        kind,
                        marked: self.marks.get(base),
                    },
                    SpanState::Small => {
                        let obj_bytes = span.obj_bytes.load(Ordering::Relaxed) as usize;
                        let slots = span.n_objects.load(Ordering::Relaxed) as usize;
                        let (mut allocated, mut marked) = (0, 0);
                        for (a, m) in self
                            .allocs
                            .words(base, end)
                            .iter()
                            .zip(self.marks.words(base, end))
                        {
                            let a = a.load(Ordering::Relaxed);
                            allocated += a.count_ones() as usize;
                            marked += (a & m.load(Ordering::Relaxed)).count_ones() as usize;
                        }
                        DumpRegionUse::Small {
                            kind,
                            obj_bytes,
                            slots,
                            allocated,
                            marked,
                        }
                    }
                };
                out.regions.push(DumpRegion {
                    start: base,
                    end,
                    what,
                })?;
                i += n;
            }
        }
        drop(g);
        Ok(out)
    }
}
