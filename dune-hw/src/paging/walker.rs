//! The one page-table walker: visits the level-1 entries covering a range, optionally
//! creating missing tables. Everything else (map, protect, dirty scan) is a small visitor.

use super::frames::FrameAllocator;
use super::pte::{self, Pte, ENTRIES, TABLE_FLAGS};

/// Receives each leaf entry of a walk.
pub trait Visitor {
    /// `va` is the page the entry maps.
    fn leaf(&mut self, va: u64, pte: &Pte);
}

impl<F: FnMut(u64, &Pte)> Visitor for F {
    fn leaf(&mut self, va: u64, pte: &Pte) {
        self(va, pte)
    }
}

/// A walk failed because no frame was left for a missing table.
#[derive(Debug, PartialEq, Eq)]
pub struct OutOfFrames;

fn shift(level: u32) -> u32 {
    12 + 9 * (level - 1)
}

/// Walks `[start, end)` (page aligned) under the level-4 table `root`. With `alloc`, missing
/// tables are created; without, ranges under missing tables are skipped.
///
/// # Safety
/// `root` and every table reachable from it must be frames of a live [`FrameAllocator`]
/// (see [`pte::table`]).
pub unsafe fn walk(
    root: u64,
    start: u64,
    end: u64,
    mut alloc: Option<&mut dyn FrameAllocator>,
    v: &mut dyn Visitor,
) -> Result<(), OutOfFrames> {
    // SAFETY: forwarded caller duty.
    unsafe { walk_level(root, 4, start, end, &mut alloc, v) }
}

unsafe fn walk_level(
    table: u64,
    level: u32,
    start: u64,
    end: u64,
    alloc: &mut Option<&mut dyn FrameAllocator>,
    v: &mut dyn Visitor,
) -> Result<(), OutOfFrames> {
    // SAFETY: `table` is a live page-table frame (caller duty, inductively for children).
    let entries = unsafe { pte::table(table) };
    let span = 1u64 << shift(level);
    let mut va = start;
    while va < end {
        let idx = ((va >> shift(level)) as usize) & (ENTRIES - 1);
        let next = ((va / span) + 1) * span;
        let stop = next.min(end);
        let e = &entries[idx];
        if level == 1 {
            v.leaf(va, e);
        } else {
            if !e.is_present() {
                match alloc.as_deref_mut() {
                    Some(a) => {
                        let f = a.alloc_zeroed().ok_or(OutOfFrames)?;
                        e.set(f | TABLE_FLAGS);
                    }
                    None => {
                        va = stop;
                        continue;
                    }
                }
            }
            // SAFETY: a present non-leaf entry points at a table frame we allocated.
            unsafe { walk_level(e.addr(), level - 1, va, stop, alloc, v)? };
        }
        va = stop;
    }
    Ok(())
}

/// Visits the existing leaf entries of `[start, end)`; ranges under missing tables are
/// skipped. Never allocates, so it cannot fail.
///
/// # Safety
/// As for [`walk`].
pub unsafe fn visit(root: u64, start: u64, end: u64, v: &mut dyn Visitor) {
    // SAFETY: forwarded caller duty; without an allocator `walk` has no failure.
    if unsafe { walk(root, start, end, None, v) }.is_err() {
        unreachable!("a walk without an allocator creates no table")
    }
}

/// The leaf entry for `va`, if all its tables exist.
///
/// # Safety
/// As for [`walk`].
pub unsafe fn leaf<'a>(root: u64, va: u64) -> Option<&'a Pte> {
    let mut table = root;
    for level in (1..=4).rev() {
        // SAFETY: `table` is a live page-table frame.
        let entries = unsafe { pte::table(table) };
        let e = &entries[((va >> shift(level)) as usize) & (ENTRIES - 1)];
        if level == 1 {
            return Some(e);
        }
        if !e.is_present() {
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
}
