//! gc-core's `dune` dirty-tracking backend inside Dune: the tracker contract (a written
//! page is never reported clean, kernel writes through forwarded `read(2)` included), then
//! the collector in incremental mode on the Dune backend — churn with verified objects and
//! the lost-object race (a new object stored only into an already-scanned object).
//!
//! Runs on the main thread with no other thread: the backend needs every thread of the
//! process in Dune mode (it refuses to arm otherwise).

use gc_core::{Backend, BackendChoice, DirtySet, Heap, HeapBuilder, ObjectKind, Page, PageRange};
use std::hint::black_box;

const PAGE: usize = 4096;

fn mmap_pages(n: usize) -> usize {
    // SAFETY: a fresh anonymous mapping.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            n * PAGE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED);
    p as usize
}

fn write_page(base: usize, i: usize, v: u8) {
    // SAFETY: inside our own mapping.
    unsafe { ((base + i * PAGE + 8) as *mut u8).write_volatile(v) };
}

fn contract(n_pages: usize) {
    let mut t = gc_core::dirty::open(Backend::Dune).expect("the Dune tracker opens inside Dune");
    let base = mmap_pages(n_pages);
    for i in 0..n_pages {
        write_page(base, i, 1); // map every page in the guest table
    }
    let range = PageRange::new(Page::from_aligned(base), n_pages);
    t.arm(&[range]).expect("arm");
    let mut seed = 0x1234_5678_9abc_def1u64 ^ n_pages as u64;
    let mut written = std::collections::BTreeSet::new();
    for _ in 0..n_pages / 3 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let i = (seed % n_pages as u64) as usize;
        write_page(base, i, 2);
        written.insert(i);
    }
    // A kernel write: read(2) from a pipe into a page nobody wrote from the guest.
    let victim = (0..n_pages)
        .find(|i| !written.contains(i))
        .expect("some page unwritten");
    let mut fds = [0i32; 2];
    // SAFETY: fds is a valid out-array.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: writes 16 bytes from a static buffer, reads them into our mapping.
    unsafe {
        assert_eq!(
            libc::write(fds[1], b"0123456789abcdef".as_ptr().cast(), 16),
            16
        );
        assert_eq!(
            libc::read(
                fds[0],
                (base + victim * PAGE + 100) as *mut libc::c_void,
                16
            ),
            16
        );
        libc::close(fds[0]);
        libc::close(fds[1]);
    }
    written.insert(victim);
    let mut out = DirtySet::new();
    t.collect_and_rearm(&mut out).expect("collect");
    out.normalize();
    for &i in &written {
        assert!(
            out.contains(Page::from_aligned(base + i * PAGE)),
            "{n_pages} pages: written page {i} reported clean"
        );
    }
    let false_positives = out.n_pages() - written.len();
    // Second round: only new writes.
    write_page(base, 0, 3);
    let mut out2 = DirtySet::new();
    t.collect_and_rearm(&mut out2).expect("collect");
    out2.normalize();
    assert!(
        out2.contains(Page::from_aligned(base)),
        "second-round write reported clean"
    );
    println!(
        "test dune_tracker_contract_{n_pages}_pages ... ok ({} written incl. 1 by the kernel, {false_positives} false positives; round 2: {} reported for 1 written)",
        written.len(),
        out2.n_pages()
    );
    // SAFETY: our mapping, no longer used.
    unsafe { libc::munmap(base as *mut libc::c_void, n_pages * PAGE) };
}

/// Guest leaves created with A/D preset (dune-hw maps fresh entries with A, and D when
/// writable) never hide a write made after an arm, and the arm clears the preset bits:
/// 1. a fresh mapping, never touched, then armed: exactly the pages written after the arm
///    are reported (a preset D bit the arm left set would show as an unwritten page);
/// 2. armed, then part of the range replaced by a fresh mapping (new leaves, D preset),
///    then written: every written page is reported (the fresh pages may all be, falsely);
/// 3. a lazily mapped range (above `LAZY_MAP_BYTES`: leaves created on the first fault,
///    a 2 MiB window at a time) armed before any touch, then read and written: every
///    written page is reported.
fn preset_dirty_bits_hide_no_write() {
    let mut t = gc_core::dirty::open(Backend::Dune).expect("the Dune tracker opens inside Dune");
    let pages = |out: &DirtySet, base: usize, n: usize| -> Vec<usize> {
        (0..n)
            .filter(|&i| out.contains(Page::from_aligned(base + i * PAGE)))
            .collect()
    };
    // 1
    let n = 64;
    let base = mmap_pages(n);
    let range = PageRange::new(Page::from_aligned(base), n);
    t.arm(&[range]).expect("arm");
    for i in [3, 17, 40] {
        write_page(base, i, 1);
    }
    let mut out = DirtySet::new();
    t.collect_and_rearm(&mut out).expect("collect");
    out.normalize();
    assert_eq!(
        pages(&out, base, n),
        vec![3, 17, 40],
        "fresh, armed, written: exactly the written pages"
    );
    // 2: the rearm cleared D; replace pages 8..16 by a fresh mapping, write two of them
    // and one old page
    // SAFETY: MAP_FIXED over part of our own mapping.
    let p = unsafe {
        libc::mmap(
            (base + 8 * PAGE) as *mut libc::c_void,
            8 * PAGE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
            -1,
            0,
        )
    };
    assert_eq!(p as usize, base + 8 * PAGE);
    for i in [9, 12, 50] {
        write_page(base, i, 2);
    }
    let mut out = DirtySet::new();
    t.collect_and_rearm(&mut out).expect("collect");
    out.normalize();
    let got = pages(&out, base, n);
    for i in [9, 12, 50] {
        assert!(got.contains(&i), "written page {i} reported clean: {got:?}");
    }
    assert!(
        got.iter().all(|&i| i == 50 || (8..16).contains(&i)),
        "only the fresh pages may be false positives: {got:?}"
    );
    t.disarm().expect("disarm");
    // SAFETY: our mapping, no longer used.
    unsafe { libc::munmap(base as *mut libc::c_void, n * PAGE) };
    // 3
    let n = (dune_hw::dune::LAZY_MAP_BYTES as usize + (4 << 20)) / PAGE;
    let base = mmap_pages(n);
    let range = PageRange::new(Page::from_aligned(base), n);
    t.arm(&[range]).expect("arm");
    let window = (2 << 20) / PAGE;
    // SAFETY: a read inside our mapping (its first touch: the fault maps the window).
    let _ = unsafe { ((base + 5 * window * PAGE) as *const u8).read_volatile() };
    let written = [5 * window + 1, 5 * window, 7, n - 1];
    for &i in &written {
        write_page(base, i, 3);
    }
    let mut out = DirtySet::new();
    t.collect_and_rearm(&mut out).expect("collect");
    out.normalize();
    let got = pages(&out, base, n);
    for i in written {
        assert!(
            got.contains(&i),
            "lazy range: written page {i} reported clean"
        );
    }
    // after the rearm, one more write to a page first mapped with D preset
    write_page(base, 5 * window + 2, 4);
    let mut out = DirtySet::new();
    t.collect_and_rearm(&mut out).expect("collect");
    out.normalize();
    assert_eq!(
        pages(&out, base, n),
        vec![5 * window + 2],
        "rearmed: exactly the one write"
    );
    t.disarm().expect("disarm");
    println!(
        "test dune_tracker_preset_dirty_bits_hide_no_write ... ok ({} pages reported for 4 written in the lazy range)",
        got.len()
    );
    // SAFETY: our mapping, no longer used.
    unsafe { libc::munmap(base as *mut libc::c_void, n * PAGE) };
}

/// The end of a cycle (`collect_and_disarm`) reports exactly the writes since the arm and
/// leaves every clean page's D bit set (so the program writes between cycles without a
/// shadow-paging fault); the next arm clears them, so a write after it is reported — on a
/// page written between the cycles too — and nothing else is.
fn disarm_sets_dirty_bits_that_hide_no_later_write() {
    let mut t = gc_core::dirty::open(Backend::Dune).expect("the Dune tracker opens inside Dune");
    let n = 512;
    let base = mmap_pages(n);
    for i in 0..n {
        write_page(base, i, 1);
    }
    let range = PageRange::new(Page::from_aligned(base), n);
    let view = dune_hw::dirty_view().expect("inside Dune");
    let dirty_pages = || {
        let mut v = Vec::new();
        view.for_each_dirty(base as u64, (base + n * PAGE) as u64, &mut |p| {
            v.push((p as usize - base) / PAGE)
        });
        v
    };
    let pages = |out: &DirtySet| -> Vec<usize> {
        (0..n)
            .filter(|&i| out.contains(Page::from_aligned(base + i * PAGE)))
            .collect()
    };
    t.arm(&[range]).expect("arm");
    assert!(dirty_pages().is_empty(), "the arm clears every D bit");
    for i in [2, 100, 511] {
        write_page(base, i, 2);
    }
    let mut out = DirtySet::new();
    t.collect_and_disarm(&mut out).expect("collect_and_disarm");
    out.normalize();
    assert_eq!(pages(&out), vec![2, 100, 511], "exactly the written pages");
    assert_eq!(dirty_pages().len(), n, "the disarm leaves every D bit set");
    // between cycles: writes everywhere, then a new arm
    for i in 0..n {
        write_page(base, i, 3);
    }
    t.arm(&[range]).expect("re-arm");
    assert!(
        dirty_pages().is_empty(),
        "the re-arm clears the preset D bits"
    );
    for i in [2, 7, 300] {
        write_page(base, i, 4);
    }
    let mut out = DirtySet::new();
    t.collect_and_rearm(&mut out).expect("collect");
    out.normalize();
    assert_eq!(
        pages(&out),
        vec![2, 7, 300],
        "re-armed: exactly the writes after it"
    );
    t.disarm().expect("disarm");
    println!("test dune_tracker_disarm_sets_dirty_bits_that_hide_no_later_write ... ok");
    // SAFETY: our mapping, no longer used.
    unsafe { libc::munmap(base as *mut libc::c_void, n * PAGE) };
}

const SLOTS: usize = 4;
static mut ROOT: usize = 0;

fn new_node(heap: &'static Heap, id: u64) -> usize {
    let p = heap
        .alloc(ObjectKind::Normal, 8 * (2 + SLOTS), 8)
        .expect("alloc");
    // SAFETY: fresh object of 6 words: [id, !id, slots...].
    unsafe {
        *(p as *mut u64) = id;
        *((p + 8) as *mut u64) = !id;
    }
    p
}

fn verify_node(heap: &'static Heap, p: usize) -> u64 {
    let info = heap
        .find_object(p)
        .unwrap_or_else(|| panic!("live node {p:#x} was freed"));
    // SAFETY: a live node.
    let (id, check) = unsafe { (*(info.base as *const u64), *((info.base + 8) as *const u64)) };
    assert_eq!(check, !id, "node {id} overwritten");
    id
}

fn slot(p: usize, i: usize) -> *mut usize {
    (p + 16 + 8 * i) as *mut usize
}

#[inline(never)]
fn hide_new_node_in(heap: &'static Heap, holder: usize, id: u64) {
    let d = new_node(heap, id);
    // SAFETY: holder is a live node.
    unsafe { *slot(holder, 1) = d };
}

#[inline(never)]
fn clobber_stack() {
    black_box([0u8; 16 << 10]);
}

fn collector_on_dune() {
    let heap = HeapBuilder::new()
        .max_space_bytes(64 << 20)
        .initial_heap_bytes(256 << 10)
        .mark_step_bytes(64)
        .mark_rate(0)
        .incremental(BackendChoice::Exactly(Backend::Dune))
        .build()
        .expect("heap with the Dune backend");
    let mut races = 0;
    for round in 0..8u64 {
        heap.collect().expect("collect");
        // A list rooted in a static, then garbage until a cycle starts.
        let head = new_node(heap, round * 1000);
        // SAFETY: single-threaded test; ROOT is a static the collector scans.
        unsafe { ROOT = head };
        let mut prev = head;
        for k in 1..200 {
            let n = new_node(heap, round * 1000 + k);
            // SAFETY: prev is live (reachable from ROOT).
            unsafe { *slot(prev, 0) = n };
            prev = n;
        }
        while !heap.cycle_in_progress() {
            black_box(new_node(heap, 0));
        }
        while !heap.cycle_marking_done() {
            heap.collect_a_little().expect("step");
        }
        // SAFETY: as above.
        hide_new_node_in(heap, unsafe { ROOT }, 777_000 + round);
        clobber_stack();
        heap.collect().expect("finish");
        // SAFETY: as above.
        let mut p = unsafe { ROOT };
        let mut count = 0;
        // SAFETY: the list and the hidden node are live.
        let hidden = unsafe { *slot(p, 1) };
        assert_eq!(
            verify_node(heap, hidden),
            777_000 + round,
            "object hidden in a scanned object during marking was lost"
        );
        races += 1;
        while p != 0 {
            assert_eq!(verify_node(heap, p), round * 1000 + count);
            count += 1;
            // SAFETY: live node.
            p = unsafe { *slot(p, 0) };
        }
        assert_eq!(count, 200);
    }
    let st = heap.stats();
    assert_eq!(st.backend, Some(Backend::Dune));
    assert!(st.incremental_cycles >= 8, "{st}");
    println!("test collector_incremental_on_dune_dirty_bits ... ok ({races} races survived; {} cycles, {} dirty pages reported)", st.incremental_cycles, st.dirty_pages);
}

fn main() {
    // SAFETY: gettid/getpid have no preconditions.
    let main_thread = unsafe { libc::gettid() == libc::getpid() };
    assert!(main_thread, "harness = false runs on the main thread");
    // Install the collector's stop-the-world handler before entering Dune (signal handlers
    // cannot be installed from inside Dune yet).
    gc_core::world::init().expect("stop-the-world handler");
    match dunegc_tests::enter_dune_or_skip("kvm_dune_backend") {
        Ok(true) => {}
        Ok(false) => return,
        Err(e) => panic!("{e}"),
    }
    println!("Dune mode: {:?}", dune_hw::mode().map(|m| m.reason));
    contract(256);
    contract(65_536);
    preset_dirty_bits_hide_no_write();
    disarm_sets_dirty_bits_that_hide_no_later_write();
    collector_on_dune();
    dune_hw::exit().expect("leave Dune");
    println!("5 passed, 0 failed");
}
