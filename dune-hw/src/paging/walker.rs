// Layer 2: paging (dune-hw/LAYERS).
//! The one page-table walker: visits the leaf entries covering a range, optionally
//! creating missing tables. Everything else (map, protect, dirty scan) is a small visitor.
//!
//! Leaves are 4 KiB entries (level 1) or huge entries (`PS`: 2 MiB at level 2, 1 GiB at
//! level 3). A huge leaf is offered to [`Visitor::huge`]; a visitor that declines it has it
//! split into a table of smaller entries with the same translation (walks that can
//! allocate) or skipped (walks that cannot).

use super::frames::FrameAllocator;
use super::pte::{self, Pte, ENTRIES, P, PS, TABLE_FLAGS};

/// Receives each leaf entry of a walk.
pub trait Visitor {
    /// A 4 KiB leaf; `va` is the page the entry maps.
    fn leaf(&mut self, va: u64, pte: &Pte);

    /// A present huge leaf at `level` (2: 2 MiB, 3: 1 GiB) mapping `[base, base + span)`,
    /// of which the walk covers `[lo, hi)`. Returns whether it was handled; `false` (the
    /// default) asks the walk to split it (see the module docs).
    fn huge(&mut self, base: u64, level: u32, pte: &Pte, lo: u64, hi: u64) -> bool {
        let _ = (base, level, pte, lo, hi);
        false
    }
}

impl<F: FnMut(u64, &Pte)> Visitor for F {
    fn leaf(&mut self, va: u64, pte: &Pte) {
        self(va, pte)
    }
}

/// A visitor made of one closure for every leaf, 4 KiB or huge:
/// `f(pte, level, base, lo, hi)` (level 1: `base == lo`, `hi == lo + 4 KiB`, the result is
/// ignored; huge: as [`Visitor::huge`]).
pub struct AnyLeaf<F>(pub F);

impl<F: FnMut(&Pte, u32, u64, u64, u64) -> bool> Visitor for AnyLeaf<F> {
    fn leaf(&mut self, va: u64, pte: &Pte) {
        (self.0)(pte, 1, va, va, va + 4096);
    }
    fn huge(&mut self, base: u64, level: u32, pte: &Pte, lo: u64, hi: u64) -> bool {
        (self.0)(pte, level, base, lo, hi)
    }
}

/// A walk failed because no frame was left for a missing table.
#[derive(Debug, PartialEq, Eq)]
pub struct OutOfFrames;

/// What a walk did besides visiting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WalkStats {
    /// Huge leaves split into tables.
    pub n_split: u64,
    /// Whether a split leaf had its A bit set (a vCPU may cache its huge translation: the
    /// caller should flush after the change, see `PageTable::map_accessed`).
    pub split_accessed: bool,
}

/// Bytes mapped by one entry at `level` (1: 4 KiB, 2: 2 MiB, 3: 1 GiB, 4: 512 GiB).
pub fn span_bytes(level: u32) -> u64 {
    1u64 << shift(level)
}

fn shift(level: u32) -> u32 {
    12 + 9 * (level - 1)
}

/// Whether a present entry at `level` is a huge leaf.
pub fn is_huge_leaf(level: u32, entry: u64) -> bool {
    (level == 2 || level == 3) && entry & (P | PS) == P | PS
}

/// The frame (or base) of a huge leaf: bits 12..log2(span) hold the PAT bit, not address.
pub fn huge_base(level: u32, entry: u64) -> u64 {
    entry & pte::ADDR_MASK & !(span_bytes(level) - 1)
}

/// Walks `[start, end)` (page aligned) under the level-4 table `root`. With `alloc`, missing
/// tables are created and declined huge leaves split; without, ranges under missing tables
/// and declined huge leaves are skipped.
///
/// # Safety
/// `root` and every table reachable from it must be frames of a live [`FrameAllocator`]
/// (see [`pte::table`]).
pub unsafe fn walk(
    root: u64,
    start: u64,
    end: u64,
    alloc: Option<&mut dyn FrameAllocator>,
    v: &mut dyn Visitor,
) -> Result<(), OutOfFrames> {
    let create = alloc.is_some();
    // SAFETY: forwarded caller duty.
    unsafe { walk_with(root, start, end, alloc, create, v) }.map(|_| ())
}

/// [`walk`] with the table creation chosen separately: with `alloc` and `create == false`,
/// missing tables are skipped but declined huge leaves are still split. Returns what it
/// split.
///
/// # Safety
/// As for [`walk`].
pub unsafe fn walk_with(
    root: u64,
    start: u64,
    end: u64,
    mut alloc: Option<&mut dyn FrameAllocator>,
    create: bool,
    v: &mut dyn Visitor,
) -> Result<WalkStats, OutOfFrames> {
    let mut stats = WalkStats::default();
    // SAFETY: forwarded caller duty.
    unsafe { walk_level(root, 4, start, end, &mut alloc, create, v, &mut stats)? };
    Ok(stats)
}

#[allow(clippy::too_many_arguments)]
unsafe fn walk_level(
    table: u64,
    level: u32,
    start: u64,
    end: u64,
    alloc: &mut Option<&mut dyn FrameAllocator>,
    create: bool,
    v: &mut dyn Visitor,
    stats: &mut WalkStats,
) -> Result<(), OutOfFrames> {
    // SAFETY: `table` is a live page-table frame (caller duty, inductively for children).
    let entries = unsafe { pte::table(table) };
    let span = span_bytes(level);
    let mut va = start;
    while va < end {
        let idx = ((va >> shift(level)) as usize) & (ENTRIES - 1);
        let next = ((va / span) + 1) * span;
        let stop = next.min(end);
        let e = &entries[idx];
        if level == 1 {
            v.leaf(va, e);
            va = stop;
            continue;
        }
        let cur = e.get();
        if is_huge_leaf(level, cur) {
            if v.huge(va & !(span - 1), level, e, va, stop) {
                va = stop;
                continue;
            }
            match alloc.as_deref_mut() {
                Some(a) => {
                    let old = split(e, level, a)?;
                    stats.n_split += 1;
                    stats.split_accessed |= old & pte::A != 0;
                }
                None => {
                    va = stop;
                    continue;
                }
            }
        } else if cur & P == 0 {
            match alloc.as_deref_mut() {
                Some(a) if create => {
                    let f = a.alloc_zeroed().ok_or(OutOfFrames)?;
                    e.set(f | TABLE_FLAGS);
                }
                _ => {
                    va = stop;
                    continue;
                }
            }
        }
        // SAFETY: a present non-leaf entry points at a table frame we allocated.
        unsafe { walk_level(e.addr(), level - 1, va, stop, alloc, create, v, stats)? };
        va = stop;
    }
    Ok(())
}

/// PAT bit of a huge leaf (bit 7 of a 4 KiB leaf).
const PAT_HUGE: u64 = 1 << 12;
/// PAT bit of a 4 KiB leaf.
const PAT_4K: u64 = 1 << 7;

/// Replaces the huge leaf `e` at `level` by a table of 512 entries with the same
/// translation, flags, A and D bits (huge leaves again one level down for a 1 GiB leaf).
/// The replacement is atomic: an A/D update the MMU makes meanwhile is copied. Returns the
/// huge entry as it was replaced.
fn split(e: &Pte, level: u32, a: &mut dyn FrameAllocator) -> Result<u64, OutOfFrames> {
    let frame = a.alloc_zeroed().ok_or(OutOfFrames)?;
    // SAFETY: a fresh zeroed frame of the allocator, alive as long as the table.
    let child = unsafe { pte::table(frame) };
    let child_span = span_bytes(level - 1);
    let old = e.update(&mut |old| {
        let base = huge_base(level, old);
        let pat = old & PAT_HUGE != 0;
        let mut flags = old & !pte::ADDR_MASK & !PS;
        if level - 1 == 1 {
            if pat {
                flags |= PAT_4K;
            }
        } else {
            flags |= PS | if pat { PAT_HUGE } else { 0 };
        }
        for (i, c) in child.iter().enumerate() {
            c.set((base + i as u64 * child_span) | flags);
        }
        frame | TABLE_FLAGS
    });
    Ok(old)
}

/// Calls `f(va, entry)` for the entries at `level` (2: 2 MiB, 3: 1 GiB) covering
/// `[start, end)` (aligned to that level's span), creating the tables above them; whatever
/// each entry holds (absent, a table pointer, a huge leaf) is passed as is.
///
/// # Safety
/// As for [`walk`].
pub unsafe fn for_each_entry_at(
    root: u64,
    start: u64,
    end: u64,
    level: u32,
    alloc: &mut dyn FrameAllocator,
    f: &mut dyn FnMut(u64, &Pte),
) -> Result<(), OutOfFrames> {
    let mut table_va = start;
    while table_va < end {
        let mut table = root;
        for l in ((level + 1)..=4).rev() {
            // SAFETY: `table` is a live page-table frame.
            let entries = unsafe { pte::table(table) };
            let e = &entries[((table_va >> shift(l)) as usize) & (ENTRIES - 1)];
            let cur = e.get();
            if is_huge_leaf(l, cur) {
                split(e, l, alloc)?;
            } else if cur & P == 0 {
                let fr = alloc.alloc_zeroed().ok_or(OutOfFrames)?;
                e.set(fr | TABLE_FLAGS);
            }
            table = e.addr();
        }
        // SAFETY: as above.
        let entries = unsafe { pte::table(table) };
        let stop = ((table_va / span_bytes(level + 1)) + 1) * span_bytes(level + 1);
        let mut va = table_va;
        while va < stop.min(end) {
            f(
                va,
                &entries[((va >> shift(level)) as usize) & (ENTRIES - 1)],
            );
            va += span_bytes(level);
        }
        table_va = stop;
    }
    Ok(())
}

/// Visits the existing leaf entries of `[start, end)`; ranges under missing tables and
/// declined huge leaves are skipped. Never allocates, so it cannot fail.
///
/// # Safety
/// As for [`walk`].
pub unsafe fn visit(root: u64, start: u64, end: u64, v: &mut dyn Visitor) {
    // SAFETY: forwarded caller duty; without an allocator `walk` has no failure.
    if unsafe { walk(root, start, end, None, v) }.is_err() {
        unreachable!("a walk without an allocator creates no table")
    }
}

/// The leaf entry for `va` (a 4 KiB entry, or the huge leaf covering it), if all its
/// tables exist.
///
/// # Safety
/// As for [`walk`].
pub unsafe fn leaf<'a>(root: u64, va: u64) -> Option<&'a Pte> {
    // SAFETY: forwarded caller duty.
    unsafe { lookup(root, va) }.map(|(e, _)| e)
}

/// The leaf entry for `va` and its level (1: 4 KiB, 2: 2 MiB, 3: 1 GiB), if all its tables
/// exist (a 4 KiB entry is returned even when not present).
///
/// # Safety
/// As for [`walk`].
pub unsafe fn lookup<'a>(root: u64, va: u64) -> Option<(&'a Pte, u32)> {
    let mut table = root;
    for level in (1..=4).rev() {
        // SAFETY: `table` is a live page-table frame.
        let entries = unsafe { pte::table(table) };
        let e = &entries[((va >> shift(level)) as usize) & (ENTRIES - 1)];
        if level == 1 {
            return Some((e, 1));
        }
        let cur = e.get();
        if is_huge_leaf(level, cur) {
            return Some((e, level));
        }
        if cur & P == 0 {
            return None;
        }
        table = e.addr();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::frames::HeapFrames;
    use super::super::pte::{D, P, RW, US};
    use super::*;

    #[test]
    fn creates_tables_and_visits_every_leaf_once() {
        let mut frames = HeapFrames::default();
        let root = frames.alloc_zeroed().unwrap();
        // crosses a 2 MiB and a 1 GiB boundary
        let (s, e) = (0x3fff_e000u64, 0x4000_3000u64);
        let mut seen = Vec::new();
        // SAFETY: root and all tables come from `frames`, alive for the test.
        unsafe {
            walk(root, s, e, Some(&mut frames), &mut |va: u64, p: &Pte| {
                p.set(va | P | RW | US);
                seen.push(va)
            })
            .unwrap()
        };
        assert_eq!(seen, (s..e).step_by(4096).collect::<Vec<_>>());
        // SAFETY: as above.
        let l = unsafe { leaf(root, 0x4000_1000) }.unwrap();
        assert_eq!(l.addr(), 0x4000_1000);
        // SAFETY: as above.
        assert!(unsafe { leaf(root, 0x8000_0000) }.is_none());
    }

    #[test]
    fn walk_without_alloc_skips_holes() {
        let mut frames = HeapFrames::default();
        let root = frames.alloc_zeroed().unwrap();
        // SAFETY: frames alive for the test.
        unsafe {
            walk(
                root,
                0x1000,
                0x3000,
                Some(&mut frames),
                &mut |va: u64, p: &Pte| p.set(va | P | D),
            )
            .unwrap()
        };
        let mut dirty = 0;
        // SAFETY: as above.
        unsafe {
            walk(root, 0, 1 << 40, None, &mut |_va: u64, p: &Pte| {
                if p.take_dirty() {
                    dirty += 1
                }
            })
            .unwrap()
        };
        assert_eq!(dirty, 2);
    }

    #[test]
    fn huge_leaves_are_offered_split_and_found() {
        use super::super::pte::{A, D, PS};
        let mut frames = HeapFrames::default();
        let root = frames.alloc_zeroed().unwrap();
        let base = 0x4000_0000u64; // 1 GiB aligned
                                   // SAFETY: frames alive for the test.
        unsafe {
            for_each_entry_at(
                root,
                base,
                base + (4 << 20),
                2,
                &mut frames,
                &mut |va, p| p.set(va | P | RW | US | PS | D),
            )
            .unwrap()
        };
        // SAFETY: as above.
        let (e, level) = unsafe { lookup(root, base + 0x20_1234) }.unwrap();
        assert_eq!(
            (e.get(), level),
            ((base + 0x20_0000) | P | RW | US | PS | D, 2)
        );
        // a visitor handling huge leaves sees each once, with the walked part
        let mut seen = Vec::new();
        let mut v = AnyLeaf(|_p: &Pte, l: u32, b: u64, lo: u64, hi: u64| {
            assert!(l > 1, "no 4 KiB leaf");
            seen.push((b, l, lo, hi));
            true
        });
        // SAFETY: as above.
        unsafe { visit(root, base + 0x1000, base + 0x30_0000, &mut v) };
        assert_eq!(
            seen,
            vec![
                (base, 2, base + 0x1000, base + 0x20_0000),
                (base + 0x20_0000, 2, base + 0x20_0000, base + 0x30_0000)
            ]
        );
        // a declining visitor without an allocator skips it
        let mut n = 0;
        // SAFETY: as above.
        unsafe { visit(root, base, base + 0x1000, &mut |_va: u64, _p: &Pte| n += 1) };
        assert_eq!(n, 0);
        // with an allocator (not creating) it is split: same translation, D copied
        e.set_bits(A);
        let mut leaves = Vec::new();
        // SAFETY: as above.
        let st = unsafe {
            walk_with(
                root,
                base + 0x20_2000,
                base + 0x20_4000,
                Some(&mut frames),
                false,
                &mut |va: u64, p: &Pte| leaves.push((va, p.get())),
            )
        }
        .unwrap();
        assert_eq!(st.n_split, 1);
        assert!(st.split_accessed);
        assert_eq!(
            leaves,
            vec![
                (base + 0x20_2000, (base + 0x20_2000) | P | RW | US | A | D),
                (base + 0x20_3000, (base + 0x20_3000) | P | RW | US | A | D)
            ]
        );
        // SAFETY: as above.
        let (e, level) = unsafe { lookup(root, base + 0x3f_f000) }.unwrap();
        assert_eq!((e.addr(), level), (base + 0x3f_f000, 1));
        // SAFETY: as above.
        let (_, level) = unsafe { lookup(root, base) }.unwrap();
        assert_eq!(level, 2, "the other huge leaf is untouched");
    }

    #[test]
    fn splitting_a_1g_leaf_gives_2m_leaves() {
        use super::super::pte::PS;
        let mut frames = HeapFrames::default();
        let root = frames.alloc_zeroed().unwrap();
        let base = 0x80_0000_0000u64;
        // SAFETY: frames alive for the test.
        unsafe {
            for_each_entry_at(
                root,
                base,
                base + (1 << 30),
                3,
                &mut frames,
                &mut |va, p| p.set(va | P | RW | US | PS),
            )
            .unwrap()
        };
        // SAFETY: as above.
        assert_eq!(unsafe { lookup(root, base + 0x1234_5678) }.unwrap().1, 3);
        // SAFETY: as above.
        unsafe {
            walk_with(
                root,
                base + 0x1000,
                base + 0x2000,
                Some(&mut frames),
                false,
                &mut |_va: u64, _p: &Pte| {},
            )
        }
        .unwrap();
        // SAFETY: as above.
        let (e, l) = unsafe { lookup(root, base + 0x1234_5678) }.unwrap();
        assert_eq!((l, e.get()), (2, (base + 0x1220_0000) | P | RW | US | PS));
        // SAFETY: as above.
        let (e, l) = unsafe { lookup(root, base + 0x1000) }.unwrap();
        assert_eq!((l, e.get()), (1, (base + 0x1000) | P | RW | US));
    }
}
