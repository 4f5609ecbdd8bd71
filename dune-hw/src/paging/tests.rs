//! Tests of the page table and the dirty view (paging layer).

use super::frames::PoolFrames;
use super::pte::{A, API, D, NX, P, PS, RW, US};
use super::*;

/// Clears the A/D bits of the 4 KiB leaves of `[start, end)`: the state of entries
/// nothing used since an arm.
fn clear_accessed_dirty(pt: &PageTable, start: u64, end: u64) {
    for va in (start..end).step_by(4096) {
        pt.leaf(va).unwrap().take_bits(A | D);
    }
}

#[test]
fn fresh_leaves_get_a_and_d_preset_and_present_ones_keep_theirs() {
    let frames = PoolFrames::reserve(1 << 20).unwrap();
    let mut pt = PageTable::new(frames).unwrap();
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    pt.map(0x40_0000, 0x40_1000, rw).unwrap();
    pt.map(0x40_1000, 0x40_2000, libc::PROT_READ).unwrap();
    assert_eq!(
        pt.leaf(0x40_0000).unwrap().get(),
        0x40_0000 | P | RW | US | NX | A | D | pte::PRESET_D,
        "writable: A and D (marked preset)"
    );
    assert_eq!(
        pt.leaf(0x40_1000).unwrap().get(),
        0x40_1000 | P | US | NX | A,
        "read-only: A only"
    );
    // the fault path presets too
    pt.fill_accessed(0x40_2000, 0x40_3000, rw).unwrap();
    assert_eq!(pt.leaf(0x40_2000).unwrap().get() & (A | D), A | D);
    // an arm clears them; a later change of a present entry does not set them again
    clear_accessed_dirty(&pt, 0x40_0000, 0x40_3000);
    pt.map(0x40_0000, 0x40_3000, rw).unwrap();
    pt.fill_accessed(0x40_0000, 0x40_3000, rw).unwrap();
    for va in [0x40_0000, 0x40_1000, 0x40_2000] {
        assert_eq!(pt.leaf(va).unwrap().get() & (A | D), 0, "{va:#x}");
    }
    // SAFETY: pt outlives the view.
    let view = unsafe { DirtyView::new(pt.root()) };
    let mut got = Vec::new();
    let _f = view.collect_and_clear(0x40_0000, 0x40_3000, &mut |p| got.push(p));
    assert!(got.is_empty(), "nothing reported after the clear: {got:x?}");
    // not present (PROT_NONE) then present again: a fresh entry, D preset
    let _f = pt.protect(0x40_1000, 0x40_2000, libc::PROT_NONE).unwrap();
    assert_eq!(pt.leaf(0x40_1000).unwrap().get(), 0);
    pt.map(0x40_1000, 0x40_2000, rw).unwrap();
    let _f = view.collect_and_clear(0x40_0000, 0x40_3000, &mut |p| got.push(p));
    assert_eq!(got, vec![0x40_1000], "a false positive, never a lost write");
}

#[test]
fn map_protect_unmap_and_dirty_scan() {
    let frames = PoolFrames::reserve(1 << 20).unwrap();
    let mut pt = PageTable::new(frames).unwrap();
    pt.map(0x40_0000, 0x40_4000, libc::PROT_READ | libc::PROT_WRITE)
        .unwrap();
    assert_eq!(
        pt.leaf(0x40_1000).unwrap().get(),
        0x40_1000 | P | RW | US | NX | A | D | pte::PRESET_D
    );
    clear_accessed_dirty(&pt, 0x40_0000, 0x40_4000);
    pt.leaf(0x40_2000).unwrap().set_bits(D);
    let _f = pt.protect(0x40_2000, 0x40_3000, libc::PROT_READ).unwrap();
    assert_eq!(
        pt.leaf(0x40_2000).unwrap().get(),
        0x40_2000 | P | US | NX | D,
        "D kept"
    );
    // SAFETY: pt outlives the view.
    let view = unsafe { DirtyView::new(pt.root()) };
    let mut got = Vec::new();
    let _f = view.collect_and_clear(0x40_0000, 0x40_4000, &mut |p| got.push(p));
    assert_eq!(got, vec![0x40_2000]);
    assert_eq!(view.entry(0x40_2000) & D, 0);
    view.restore_dirty(0x40_2000);
    assert_ne!(view.entry(0x40_2000) & D, 0);
    let _f = pt.unmap(0x40_0000, 0x40_4000);
    assert_eq!(view.entry(0x40_1000), 0);
    assert!(pt.n_frames_used() == 4, "root + 3 levels");
}

#[test]
fn prot_none_keeps_dirty_and_protect_present_skips_absent() {
    let frames = PoolFrames::reserve(1 << 20).unwrap();
    let mut pt = PageTable::new(frames).unwrap();
    pt.map(0x80_0000, 0x80_2000, libc::PROT_READ | libc::PROT_WRITE)
        .unwrap();
    clear_accessed_dirty(&pt, 0x80_0000, 0x80_2000);
    pt.leaf(0x80_0000).unwrap().set_bits(D);
    let _f = pt.protect(0x80_0000, 0x80_2000, libc::PROT_NONE).unwrap();
    assert_eq!(pt.leaf(0x80_0000).unwrap().get(), D, "not present, D kept");
    assert_eq!(pt.leaf(0x80_1000).unwrap().get(), 0);
    // lazily mapped range: only present entries change, none are created
    let _f = pt.protect_present(0x80_0000, 0x4000_0000, libc::PROT_READ);
    assert_eq!(pt.leaf(0x80_0000).unwrap().get(), D);
    assert!(pt.leaf(0x2000_0000).is_none());
    pt.map(0x80_0000, 0x80_1000, libc::PROT_READ).unwrap();
    assert_eq!(
        pt.leaf(0x80_0000).unwrap().get(),
        0x80_0000 | P | US | NX | A | D,
        "present again: A preset, D kept"
    );
    let _f = pt.protect_present(0x80_0000, 0x80_2000, libc::PROT_READ | libc::PROT_WRITE);
    assert_eq!(
        pt.leaf(0x80_0000).unwrap().get(),
        0x80_0000 | P | US | RW | NX | A | D
    );
    assert_eq!(pt.leaf(0x80_1000).unwrap().get(), 0, "absent stays absent");
}

#[test]
fn only_entries_used_for_a_translation_need_a_flush() {
    let frames = PoolFrames::reserve(1 << 20).unwrap();
    let mut pt = PageTable::new(frames).unwrap();
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    assert!(
        !pt.map_accessed(0xc0_0000, 0xc0_4000, rw).unwrap(),
        "new entries"
    );
    // new entries have A preset: a change needs a flush until it is cleared
    assert!(pt.map_accessed(0xc0_0000, 0xc0_4000, rw).unwrap());
    clear_accessed_dirty(&pt, 0xc0_0000, 0xc0_4000);
    assert!(!pt
        .map_accessed(0xc0_0000, 0xc0_4000, libc::PROT_READ)
        .unwrap());
    pt.leaf(0xc0_1000).unwrap().set_bits(A);
    let (_f, used) = pt.protect_present_accessed(0xc0_0000, 0xc0_2000, libc::PROT_NONE);
    assert!(used, "an accessed entry was restricted");
    let (_f, used) = pt.unmap_accessed(0xc0_2000, 0xc0_4000);
    assert!(!used, "never accessed");
    pt.map(0xc0_2000, 0xc0_3000, rw).unwrap();
    pt.leaf(0xc0_2000).unwrap().set_bits(A | D);
    assert!(pt
        .map_accessed(0xc0_2000, 0xc0_3000, libc::PROT_READ)
        .unwrap());
    assert_ne!(pt.leaf(0xc0_2000).unwrap().get() & D, 0, "D kept");
    let (_f, used) = pt.unmap_accessed(0xc0_2000, 0xc0_3000);
    assert!(used);
    assert_eq!(pt.leaf(0xc0_2000).unwrap().get(), 0);
}

#[test]
fn api_entries_survive_the_fault_path_and_huge_leaves_are_handled() {
    let frames = PoolFrames::reserve(1 << 20).unwrap();
    let mut pt = PageTable::new(frames).unwrap();
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    let base = 0x4000_0000u64;
    pt.map(base, base + 0x4000, rw).unwrap();
    clear_accessed_dirty(&pt, base, base + 0x4000);
    pt.leaf(base).unwrap().set_bits(A | D);
    assert!(
        pt.api_set(base, base + 0x1000, libc::PROT_READ, true)
            .unwrap(),
        "A was set"
    );
    assert_eq!(
        pt.leaf(base).unwrap().get(),
        base | P | US | NX | API | pte::HOST_W | A | D
    );
    // the on-demand path keeps it; an mprotect-like map replaces it
    pt.fill_accessed(base, base + 0x4000, rw).unwrap();
    assert_eq!(pt.leaf(base).unwrap().get() & (RW | API), API);
    pt.map(base, base + 0x1000, rw).unwrap();
    assert_eq!(pt.leaf(base).unwrap().get() & (RW | API), RW);
    // unmap by the program: not present, D kept, marked
    assert!(!pt
        .api_set(base + 0x1000, base + 0x2000, libc::PROT_NONE, true)
        .unwrap());
    assert_eq!(pt.leaf(base + 0x1000).unwrap().get(), API | pte::HOST_W);
    // the lock-free update (guest fault handlers) changes only entries the program set
    // SAFETY: pt outlives the view.
    let v = unsafe { DirtyView::new(pt.root()) };
    assert_eq!(
        v.update_api_leaf(base + 0x2000, &mut |o| Some(o | RW)),
        None
    );
    assert_eq!(
        v.update_api_leaf(base + 0x1000, &mut |o| Some(o | (base + 0x1000) | P | RW)),
        Some(API | pte::HOST_W)
    );
    assert_eq!(
        v.entry(base + 0x1000),
        (base + 0x1000) | P | RW | API | pte::HOST_W
    );
    assert_eq!(v.update_api_leaf(base + 0x1000, &mut |_| None), None);

    // a huge leaf over the 4 KiB table folds its A/D bits
    let huge = base + (2 << 20);
    pt.map(huge, huge + 0x2000, rw).unwrap();
    clear_accessed_dirty(&pt, huge, huge + 0x2000);
    pt.leaf(huge + 0x1000).unwrap().set_bits(D);
    assert!(!pt.map_huge(huge, huge + (4 << 20), rw, 2).unwrap());
    // SAFETY: pt outlives the view.
    let view = unsafe { DirtyView::new(pt.root()) };
    assert_eq!(
        view.lookup(huge + 0x1234),
        Some((huge | P | RW | US | NX | PS | API | D, 2))
    );
    // a dirty scan covering part of it reports its pages there and does not clear it
    let mut got = Vec::new();
    let _f = view.collect_and_clear(huge + 0x1f_e000, huge + 0x20_2000, &mut |p| got.push(p));
    assert_eq!(got, vec![huge + 0x1f_e000, huge + 0x1f_f000]);
    assert_ne!(view.entry(huge) & D, 0, "partly covered: kept");
    let mut runs = Vec::new();
    let _f = view.read_clear_accessed_dirty(huge, huge + (2 << 20), &mut |va, n, b| {
        runs.push((va, n, b & (A | D)))
    });
    assert_eq!(runs, vec![(huge, 512, D)]);
    assert_eq!(view.entry(huge) & D, 0, "wholly covered: cleared");
    // protecting all of one keeps it huge; protecting part splits it
    assert!(!pt
        .api_set(huge, huge + (2 << 20), libc::PROT_READ, true)
        .unwrap());
    assert_eq!(view.lookup(huge).unwrap().1, 2);
    assert_eq!(view.lookup(huge).unwrap().0 & RW, 0);
    view.lookup(huge + (2 << 20)).unwrap();
    pt.leaf(huge + (2 << 20)).unwrap().set_bits(A);
    assert!(pt
        .api_set(
            huge + (2 << 20),
            huge + (2 << 20) + 0x1000,
            libc::PROT_NONE,
            true
        )
        .unwrap());
    assert_eq!(
        view.lookup(huge + (2 << 20)),
        Some((API | pte::HOST_W, 1)),
        "PROT_NONE keeps only D (and the program's marks)"
    );
    assert_eq!(
        view.lookup(huge + (2 << 20) + 0x1000),
        Some(((huge + (2 << 20) + 0x1000) | P | RW | US | NX | API | A, 1))
    );
    // a host munmap over part of the other one splits it and clears only that part
    let (_f, used) = pt.unmap_accessed(huge + 0x1000, huge + 0x2000);
    assert!(!used, "never accessed");
    assert_eq!(view.lookup(huge + 0x1000), Some((0, 1)));
    assert_eq!(view.lookup(huge).unwrap().1, 1);
    let mut n = 0;
    view.for_each_present(huge, huge + (4 << 20), &mut |_| n += 1);
    assert_eq!(n, 1024 - 2);
}

#[test]
fn gigabyte_leaves_map_scan_and_split() {
    let frames = PoolFrames::reserve(1 << 20).unwrap();
    let mut pt = PageTable::new(frames).unwrap();
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    let g = 1u64 << 30;
    let base = 8 * g;
    pt.map(base + 0x5000, base + 0x6000, rw).unwrap();
    pt.leaf(base + 0x5000).unwrap().set_bits(A | D);
    assert!(
        pt.map_huge(base, base + g, rw, 3).unwrap(),
        "an accessed entry replaced"
    );
    // SAFETY: pt outlives the view.
    let view = unsafe { DirtyView::new(pt.root()) };
    let (e, level) = view.lookup(base + 0x1234_5678).unwrap();
    assert_eq!(
        (e, level),
        (base | P | RW | US | NX | PS | API | A | D, 3),
        "A/D folded"
    );
    let mut runs = Vec::new();
    let _f = view.read_clear_accessed_dirty(base, base + g, &mut |va, n, b| {
        runs.push((va, n, b & (A | D)))
    });
    assert_eq!(runs, vec![(base, 262_144, A | D)]);
    // a host mprotect of one page splits 1 GiB -> 2 MiB -> 4 KiB on its path only
    let (_f, _used) =
        pt.protect_present_accessed(base + g / 2, base + g / 2 + 0x1000, libc::PROT_READ);
    assert_eq!(
        view.lookup(base + g / 2).unwrap(),
        ((base + g / 2) | P | US | NX, 1)
    );
    assert_eq!(view.lookup(base + g / 2 + 0x1000).unwrap().1, 1);
    assert_eq!(view.lookup(base + g / 2 + (2 << 20)).unwrap().1, 2);
    assert_eq!(view.lookup(base).unwrap().1, 2);
    let mut n = 0u64;
    view.for_each_present(base, base + g, &mut |_| n += 1);
    assert_eq!(n, 262_144, "still all mapped");
}

#[test]
fn set_dirty_marks_only_present_writable_clean_leaves() {
    let frames = PoolFrames::reserve(1 << 20).unwrap();
    let mut pt = PageTable::new(frames).unwrap();
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    pt.map(0x40_0000, 0x40_3000, rw).unwrap();
    pt.map(0x40_3000, 0x40_4000, libc::PROT_READ).unwrap();
    pt.map(0x40_4000, 0x40_5000, libc::PROT_NONE).unwrap();
    clear_accessed_dirty(&pt, 0x40_0000, 0x40_5000);
    pt.leaf(0x40_1000).unwrap().set_bits(D);
    // SAFETY: pt outlives the view.
    let view = unsafe { DirtyView::new(pt.root()) };
    let (_f, n) = view.set_dirty(0x40_0000, 0x40_6000);
    assert_eq!(n, 2, "the two clean writable pages");
    for (va, d) in [
        (0x40_0000, D),
        (0x40_1000, D),
        (0x40_2000, D),
        (0x40_3000, 0),
        (0x40_4000, 0),
    ] {
        assert_eq!(pt.leaf(va).unwrap().get() & D, d, "{va:#x}");
    }
    // a later scan reports them (false positives until the next clear), and a clear
    // after it leaves nothing set
    let mut got = Vec::new();
    let _f = view.collect_and_clear(0x40_0000, 0x40_6000, &mut |p| got.push(p));
    assert_eq!(got, vec![0x40_0000, 0x40_1000, 0x40_2000]);
    let mut again = Vec::new();
    view.for_each_dirty(0x40_0000, 0x40_6000, &mut |p| again.push(p));
    assert!(again.is_empty(), "{again:x?}");
}
