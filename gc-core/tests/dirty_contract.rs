//! The `DirtyTracker` contract, checked for every backend this machine supports.
//!
//! One generic suite, [`check_tracker`], runs against each backend: a written page is never
//! reported clean; reported pages lie inside the armed ranges; a collection resets what it
//! reported; kernel writes are seen by backends that claim to see them; `disarm` restores
//! ordinary access. False positives are allowed, counted and printed (`--nocapture`).
//! A backend the kernel lacks prints `SKIPPED <test>: <reason>` after checking that the
//! `Unsupported` error is the expected one.
//!
//! The mprotect backend installs a process-wide SIGSEGV handler; its tests hold
//! `SIGNAL_LOCK` so they never overlap with each other here. Its chaining to an earlier
//! handler is tested in its own binary (`dirty_mprotect_chain.rs`).

use gc_core::dirty::{self, Backend, BackendChoice, DirtyError, DirtySet, DirtyTracker};
use gc_core::util::mmap::{Mapping, BYTES_IN_PAGE};
use gc_core::util::procmaps;
use gc_core::{Address, Page, PageRange};
use std::collections::BTreeSet;
use std::sync::{Mutex, MutexGuard};

static SIGNAL_LOCK: Mutex<()> = Mutex::new(());
/// Only one soft-dirty tracker may exist per process; tests that may open one take this.
static SOFT_DIRTY_LOCK: Mutex<()> = Mutex::new(());

fn signal_lock() -> MutexGuard<'static, ()> {
    SIGNAL_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn soft_dirty_lock() -> MutexGuard<'static, ()> {
    SOFT_DIRTY_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A fresh anonymous mapping of `n_pages` pages.
struct Region {
    map: Mapping,
    n_pages: usize,
}

impl Region {
    fn new(n_pages: usize) -> Region {
        Region {
            map: Mapping::new(n_pages * BYTES_IN_PAGE).expect("mmap test region"),
            n_pages,
        }
    }

    fn page(&self, i: usize) -> Page {
        assert!(i < self.n_pages);
        Page::from_aligned(self.map.start() + i * BYTES_IN_PAGE)
    }

    fn range(&self) -> PageRange {
        PageRange::new(self.page(0), self.n_pages)
    }

    fn sub_range(&self, first: usize, n_pages: usize) -> PageRange {
        PageRange::new(self.page(first), n_pages)
    }

    /// Store one byte into page `i` (at an offset that varies with `i`).
    fn write(&self, i: usize, value: u8) {
        let p: *mut u8 = self.page(i).start().plus((i * 8) % BYTES_IN_PAGE).to_ptr();
        // SAFETY: the byte lies inside our own mapping, which is read/write unless a tracker
        // write-protects it, in which case the tracker's fault handling makes the store work.
        unsafe { p.write_volatile(value) };
    }

    fn index_of(&self, page: Page) -> usize {
        page.start().diff(Address::from_usize(self.map.start())) / BYTES_IN_PAGE
    }
}

/// xorshift64*: reproducible page choices.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// About `count` distinct page indices below `n_pages`, sorted.
    fn pages(&mut self, n_pages: usize, count: usize) -> Vec<usize> {
        let set: BTreeSet<usize> = (0..count)
            .map(|_| (self.next() % n_pages as u64) as usize)
            .collect();
        set.into_iter().collect()
    }
}

fn collect(t: &mut dyn DirtyTracker) -> DirtySet {
    let mut set = DirtySet::new();
    t.collect_and_rearm(&mut set).expect("collect_and_rearm");
    set.normalize();
    set
}

/// Collect and check against `written` (indices into `region`): every written page is
/// reported and nothing outside `armed`. Returns the false-positive count.
fn check_round(
    t: &mut dyn DirtyTracker,
    region: &Region,
    armed: &[PageRange],
    written: &[usize],
    label: &str,
) -> usize {
    let set = collect(t);
    let backend = t.backend();
    for &i in written {
        assert!(
            set.contains(region.page(i)),
            "{backend}, {} pages, {label}: page {i} was written but not reported",
            region.n_pages
        );
    }
    for p in set.pages() {
        assert!(
            armed.iter().any(|r| r.contains(p)),
            "{backend}, {label}: reported {p:?}, outside the armed ranges"
        );
    }
    let reported = set.n_pages();
    let false_positives = reported - written.len();
    println!(
        "{backend:>10} {:>6} pages {label:<14}: written {:>5}, reported {:>6}, false positives {false_positives}",
        region.n_pages,
        written.len(),
        reported
    );
    if backend == Backend::Mprotect {
        // Bits are set only by write faults: mprotect is exact.
        assert_eq!(false_positives, 0, "mprotect reported pages nobody wrote");
    }
    false_positives
}

/// `read(2)` from a pipe into page `i` of `region`; returns read's result.
fn kernel_write(region: &Region, i: usize) -> std::io::Result<usize> {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid out-array of two ints.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0, "pipe");
    let data = [0x5au8; 100];
    // SAFETY: writes 100 bytes from a live array into the pipe we just made.
    let written = unsafe { libc::write(fds[1], data.as_ptr().cast(), data.len()) };
    assert_eq!(written, 100);
    let dst: *mut libc::c_void = region.page(i).start().plus(123).to_ptr();
    // SAFETY: the destination lies inside our own mapping (100 bytes from offset 123); the
    // kernel either fills it or fails with EFAULT.
    let n = unsafe { libc::read(fds[0], dst, data.len()) };
    let result = if n < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(n as usize)
    };
    for fd in fds {
        // SAFETY: both fds are ours and each is closed once.
        unsafe { libc::close(fd) };
    }
    result
}

/// The contract suite, for any backend.
fn check_tracker(t: &mut dyn DirtyTracker) {
    for n_pages in [256, 65_536] {
        check_tracker_on(t, n_pages);
    }
    check_several_ranges(t);
}

fn check_tracker_on(t: &mut dyn DirtyTracker, n_pages: usize) {
    let backend = t.backend();
    let region = Region::new(n_pages);
    let armed = [region.range()];
    // A quarter of the pages populated before arming; the rest never touched.
    for i in (0..n_pages).step_by(4) {
        region.write(i, 1);
    }
    let mut rng = Rng(0x1234_5678 ^ n_pages as u64);

    t.arm(&armed).expect("arm");
    let mut round1 = rng.pages(n_pages, n_pages / 8);
    round1.extend([0, n_pages - 1]);
    round1.sort_unstable();
    round1.dedup();
    for &i in &round1 {
        region.write(i, 2);
        region.write(i, 3); // a second write to the same page changes nothing
    }
    check_round(t, &region, &armed, &round1, "round 1");

    let round2 = rng.pages(n_pages, n_pages / 16);
    for &i in &round2 {
        region.write(i, 4);
    }
    check_round(t, &region, &armed, &round2, "round 2");

    let idle_fps = check_round(t, &region, &armed, &[], "idle round");
    if backend != Backend::None {
        assert!(
            idle_fps < n_pages,
            "{backend} reported every page with nothing written"
        );
    }

    // Kernel writes: one page populated before arming, one never touched.
    let touched = (1..n_pages)
        .step_by(4)
        .find(|i| !round1.contains(i) && !round2.contains(i))
        .map(|i| i - 1);
    let untouched =
        (1..n_pages).find(|&i| i % 4 != 0 && !round1.contains(&i) && !round2.contains(&i));
    let kernel_pages: Vec<usize> = [touched, untouched].into_iter().flatten().collect();
    assert_eq!(kernel_pages.len(), 2, "test set-up: no clean pages left");
    if t.sees_kernel_writes() {
        for &i in &kernel_pages {
            assert_eq!(
                kernel_write(&region, i).expect("read(2) into a tracked page"),
                100
            );
        }
        check_round(t, &region, &armed, &kernel_pages, "kernel writes");
    } else {
        // The documented reason the collector must not arm syscall buffers with this backend.
        for &i in &kernel_pages {
            let err = kernel_write(&region, i)
                .expect_err("read(2) into a write-protected page should fail");
            assert_eq!(
                err.raw_os_error(),
                Some(libc::EFAULT),
                "{backend}: read(2) into a protected page"
            );
        }
        check_round(t, &region, &armed, &[], "failed kernel writes");
    }

    // The end of a cycle: collect_and_disarm reports the writes since the last collect and
    // leaves every page writable.
    let last = [5, n_pages / 3, n_pages - 3];
    for &i in &last {
        region.write(i, 7);
    }
    let mut set = DirtySet::new();
    t.collect_and_disarm(&mut set).expect("collect_and_disarm");
    set.normalize();
    for &i in &last {
        assert!(
            set.contains(region.page(i)),
            "{backend}, {n_pages} pages: page {i} written before collect_and_disarm but not reported"
        );
    }
    assert!(
        set.pages().all(|p| region.range().contains(p)),
        "{backend}: collect_and_disarm reported pages outside the armed range"
    );
    if backend == Backend::Mprotect {
        assert_eq!(set.n_pages(), last.len(), "mprotect is exact");
    }
    t.disarm().expect("disarm when not armed is a no-op");
    check_writable(&region);
    for i in 0..n_pages {
        region.write(i, 5);
    }
    assert_eq!(kernel_write(&region, 7).expect("read(2) after disarm"), 100);

    // Arming again after a disarm works as the first time: pages written between the two
    // (every page, just above) are clean again, and a write after the arm to one of them
    // is reported (Dune: the D bit left set at the disarm must not hide it).
    t.arm(&armed).expect("re-arm");
    let round3 = [3, last[1], n_pages / 2, n_pages - 2];
    for &i in &round3 {
        region.write(i, 6);
    }
    let fps = check_round(t, &region, &armed, &round3, "after re-arm");
    if backend == Backend::Uffd {
        assert!(fps < n_pages / 2, "uffd: the re-arm left most pages dirty");
    }

    // The end of a cycle in two steps (the finish's collect_disarm_later, the disarm after
    // the world resumes): the same report as collect_and_disarm; meanwhile the pages are
    // writable (the kernel resolves a write to a protected one); an arm instead of the
    // disarm tracks exactly the writes after it.
    let later = [2, n_pages / 4, n_pages - 1];
    for &i in &later {
        region.write(i, 8);
    }
    let mut set = DirtySet::new();
    let two_steps = t
        .collect_disarm_later(&mut set)
        .expect("collect_disarm_later");
    assert_eq!(
        two_steps,
        backend == Backend::Uffd,
        "{backend}: two-step end"
    );
    if two_steps {
        set.normalize();
        for &i in &later {
            assert!(
                set.contains(region.page(i)),
                "{backend}: page {i} written before collect_disarm_later but not reported"
            );
        }
        assert!(set.pages().all(|p| region.range().contains(p)));
        for i in 0..n_pages {
            region.write(i, 4);
        }
        t.arm(&armed).expect("arm after collect_disarm_later");
        let round4 = [1, n_pages / 3, n_pages - 4];
        for &i in &round4 {
            region.write(i, 9);
        }
        let fps = check_round(
            t,
            &region,
            &armed,
            &round4,
            "arm after collect_disarm_later",
        );
        assert!(fps < n_pages / 2, "uffd: the arm left most pages dirty");
        let mut set = DirtySet::new();
        assert!(t
            .collect_disarm_later(&mut set)
            .expect("collect_disarm_later"));
    } else {
        assert_eq!(
            set.n_pages(),
            0,
            "{backend}: nothing done, nothing reported"
        );
    }
    t.disarm().expect("disarm");
    check_writable(&region);

    // A pre-clean's collect and re-arm in one step, the armed range grown at its end:
    // the writes before it are reported, then exactly the writes after it, in the old
    // pages and the added ones alike.
    let half = region.sub_range(0, n_pages / 2);
    t.arm(&[half]).expect("arm half");
    let before = [1, n_pages / 4, n_pages / 2 - 1];
    for &i in &before {
        region.write(i, 3);
    }
    let mut set = DirtySet::new();
    let grew = t
        .collect_and_grow(&mut set, &armed)
        .expect("collect_and_grow");
    assert_eq!(
        grew,
        backend == Backend::Uffd,
        "{backend}: collect_and_grow"
    );
    if grew {
        set.normalize();
        for &i in &before {
            assert!(
                set.contains(region.page(i)),
                "{backend}: page {i} written before collect_and_grow but not reported"
            );
        }
        let after = [2, n_pages / 2 - 2, n_pages / 2, n_pages - 2];
        for &i in &after {
            region.write(i, 2);
        }
        let fps = check_round(t, &region, &armed, &after, "after collect_and_grow");
        assert!(
            fps < n_pages / 2,
            "uffd: collect_and_grow left most pages dirty"
        );
        let mut set = DirtySet::new();
        assert!(
            !t.collect_and_grow(&mut set, &[region.sub_range(1, 2)])
                .expect("misfit"),
            "a range that is no growth of the armed one does not fit"
        );
        assert_eq!(set.n_pages(), 0, "a misfit reports nothing");
    }
    t.disarm().expect("disarm");
    check_writable(&region);
}

/// Several ranges with gaps in one tracker; writes in the gaps are not the tracker's.
fn check_several_ranges(t: &mut dyn DirtyTracker) {
    let region = Region::new(64);
    let armed = [region.sub_range(0, 16), region.sub_range(32, 32)];
    t.arm(&armed).expect("arm two ranges");
    for i in [1, 15, 20, 31, 32, 40, 63] {
        region.write(i, 7);
    }
    let set = collect(t);
    for i in [1, 15, 32, 40, 63] {
        assert!(
            set.contains(region.page(i)),
            "{}: page {i} of a multi-range arm not reported",
            t.backend()
        );
    }
    for p in set.pages() {
        let i = region.index_of(p);
        assert!(
            !(16..32).contains(&i),
            "{}: reported page {i}, in the gap between armed ranges",
            t.backend()
        );
    }
    // Re-arming with a different set replaces the old one.
    let armed2 = [region.sub_range(16, 16)];
    t.arm(&armed2).expect("arm a different range");
    for i in [2, 17, 40] {
        region.write(i, 8);
    }
    let set = collect(t);
    assert!(set.contains(region.page(17)));
    assert!(
        set.pages().all(|p| armed2[0].contains(p)),
        "{}: pages of the old arm still reported",
        t.backend()
    );
    t.disarm().expect("disarm");
    check_writable(&region);
}

/// Every page of `region` is mapped writable again.
fn check_writable(region: &Region) {
    let mut covered = region.map.start();
    let end = region.map.end();
    procmaps::for_each_mapping(|e| {
        if e.end > covered && e.start <= covered && covered < end {
            assert!(
                e.writable,
                "mapping {:#x}-{:#x} of the test region is not writable after disarm",
                e.start, e.end
            );
            covered = e.end;
        }
        true
    });
    assert!(
        covered >= end,
        "test region not fully found in /proc/self/maps"
    );
}

/// Two trackers of the same backend over two regions, written concurrently.
fn check_two_trackers(backend: Backend) {
    let (Some(mut a), Some(mut b)) = (
        open_or_skip(backend, "two_trackers"),
        open_or_skip(backend, "two_trackers"),
    ) else {
        return;
    };
    let ra = Region::new(256);
    let rb = Region::new(1024);
    a.arm(&[ra.range()]).expect("arm a");
    b.arm(&[rb.range()]).expect("arm b");
    let wa = Rng(1).pages(256, 40);
    let wb = Rng(2).pages(1024, 300);
    std::thread::scope(|s| {
        s.spawn(|| wa.iter().for_each(|&i| ra.write(i, 9)));
        s.spawn(|| wb.iter().for_each(|&i| rb.write(i, 9)));
    });
    check_round(&mut *b, &rb, &[rb.range()], &wb, "tracker b");
    check_round(&mut *a, &ra, &[ra.range()], &wa, "tracker a");
    // Disarming one leaves the other armed.
    a.disarm().expect("disarm a");
    rb.write(5, 10);
    ra.write(5, 10);
    check_round(&mut *b, &rb, &[rb.range()], &[5], "b after a's disarm");
    b.disarm().expect("disarm b");
    check_writable(&ra);
    check_writable(&rb);
}

/// Open `backend`, or print why it is skipped. Only `Unsupported` may be skipped, and
/// only with the reason expected for that backend.
fn open_or_skip(backend: Backend, test: &str) -> Option<Box<dyn DirtyTracker>> {
    match dirty::open(backend) {
        Ok(t) => {
            assert_eq!(t.backend(), backend);
            Some(t)
        }
        Err(DirtyError::Unsupported { backend: b, reason }) => {
            assert_eq!(b, backend);
            let expected: &[&str] = match backend {
                Backend::SoftDirty => &["CONFIG_MEM_SOFT_DIRTY", "clear_refs", "pagemap"],
                Backend::Uffd => &["userfaultfd", "UFFD", "PAGEMAP_SCAN"],
                _ => {
                    panic!("{backend} must always be available on Linux, got Unsupported: {reason}")
                }
            };
            assert!(
                expected.iter().any(|w| reason.contains(w)),
                "unexpected reason for {backend}: {reason}"
            );
            println!("SKIPPED {test}: {reason}");
            None
        }
        Err(e) => panic!("opening {backend} failed: {e}"),
    }
}

#[test]
fn none_contract() {
    let mut t = open_or_skip(Backend::None, "none_contract").expect("none is always available");
    check_tracker(&mut *t);
}

#[test]
fn mprotect_contract() {
    let _guard = signal_lock();
    let mut t =
        open_or_skip(Backend::Mprotect, "mprotect_contract").expect("mprotect is always available");
    check_tracker(&mut *t);
    assert!(
        t.stats().write_faults > 0,
        "mprotect counted no write faults"
    );
    assert!(t.stats().collections > 0 && t.stats().arms > 0);
}

#[test]
fn uffd_contract() {
    if let Some(mut t) = open_or_skip(Backend::Uffd, "uffd_contract") {
        assert!(t.sees_kernel_writes());
        check_tracker(&mut *t);
    }
}

#[test]
fn soft_dirty_contract() {
    let _guard = soft_dirty_lock();
    if let Some(mut t) = open_or_skip(Backend::SoftDirty, "soft_dirty_contract") {
        check_tracker(&mut *t);
    }
}

#[test]
fn none_two_trackers() {
    check_two_trackers(Backend::None);
}

#[test]
fn mprotect_two_trackers() {
    let _guard = signal_lock();
    check_two_trackers(Backend::Mprotect);
}

#[test]
fn uffd_two_trackers() {
    check_two_trackers(Backend::Uffd);
}

#[test]
fn mprotect_refuses_a_range_armed_by_another_tracker() {
    let _guard = signal_lock();
    let region = Region::new(16);
    let mut a = dirty::open(Backend::Mprotect).expect("open");
    let mut b = dirty::open(Backend::Mprotect).expect("open");
    a.arm(&[region.range()]).expect("arm a");
    let err = b
        .arm(&[region.sub_range(8, 8)])
        .expect_err("overlapping arm must fail");
    assert!(err.to_string().contains("already armed"), "{err}");
    region.write(9, 1);
    let set = collect(&mut *a);
    assert!(set.contains(region.page(9)));
    a.disarm().expect("disarm");
}

#[test]
fn auto_choice_reports_what_it_skipped() {
    let _guard = soft_dirty_lock();
    let (t, skipped) =
        dirty::open_choice(BackendChoice::Auto).expect("auto always finds a backend");
    for e in &skipped {
        assert!(
            matches!(e, DirtyError::Unsupported { .. }),
            "auto skipped a backend for a non-Unsupported error: {e}"
        );
        println!("auto skipped: {e}");
    }
    println!("auto chose {}", t.backend());
    assert!(matches!(
        t.backend(),
        Backend::Uffd | Backend::SoftDirty | Backend::Mprotect
    ));
}

/// Outside Dune mode (or without the `dune` feature) the Dune backend is unsupported, with
/// the reason; it is tested inside Dune by `tests/tests/kvm_dune_backend.rs`.
#[test]
fn dune_is_unsupported_outside_dune_mode() {
    match dirty::open(Backend::Dune) {
        Err(DirtyError::Unsupported {
            backend: Backend::Dune,
            reason,
        }) => {
            assert!(
                reason.contains("`dune` feature") || reason.contains("Dune mode is not active"),
                "{reason}"
            )
        }
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("dune opened outside Dune mode"),
    }
}
