//! The mprotect backend's SIGSEGV handler passes faults outside every armed range to the
//! handler that was installed before it. Its own test binary: it installs a process-wide
//! handler before the backend's, which must happen exactly once per process.

use gc_core::dirty::{self, Backend, DirtySet};
use gc_core::util::mmap::{Mapping, BYTES_IN_PAGE};
use gc_core::{Page, PageRange};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The page the earlier handler owns, and how many faults it handled there.
static FOREIGN_PAGE: AtomicUsize = AtomicUsize::new(0);
static FOREIGN_FAULTS: AtomicUsize = AtomicUsize::new(0);

extern "C" fn earlier_handler(
    _sig: libc::c_int,
    info: *mut libc::siginfo_t,
    _ctx: *mut libc::c_void,
) {
    // SAFETY: SA_SIGINFO delivery: `info` is valid and si_addr is set for SIGSEGV.
    let addr = unsafe { (*info).si_addr() } as usize;
    let page = FOREIGN_PAGE.load(Ordering::SeqCst);
    if addr & !(BYTES_IN_PAGE - 1) == page {
        FOREIGN_FAULTS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: `page` is the test's own mapping; making it writable lets the store retry.
        unsafe {
            libc::mprotect(
                page as *mut libc::c_void,
                BYTES_IN_PAGE,
                libc::PROT_READ | libc::PROT_WRITE,
            )
        };
    } else {
        // SAFETY: restoring the default action is always valid; the fault then kills us.
        unsafe { libc::signal(libc::SIGSEGV, libc::SIG_DFL) };
    }
}

#[test]
fn faults_outside_armed_ranges_reach_the_earlier_handler() {
    // SAFETY: zeroed sigaction is SIG_DFL with an empty mask; filled in below.
    let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
    sa.sa_sigaction = earlier_handler as *const () as libc::sighandler_t;
    sa.sa_flags = libc::SA_SIGINFO;
    // SAFETY: `sa` is a valid action whose handler has the SA_SIGINFO signature.
    let rc = unsafe { libc::sigaction(libc::SIGSEGV, &sa, std::ptr::null_mut()) };
    assert_eq!(rc, 0, "sigaction");

    let foreign = Mapping::new(BYTES_IN_PAGE).expect("mmap");
    FOREIGN_PAGE.store(foreign.start(), Ordering::SeqCst);
    let foreign_ptr = foreign.start() as *mut libc::c_void;
    // SAFETY: our own fresh mapping; nothing relies on it being writable.
    let rc = unsafe { libc::mprotect(foreign_ptr, BYTES_IN_PAGE, libc::PROT_READ) };
    assert_eq!(rc, 0, "mprotect");

    let region = Mapping::new(4 * BYTES_IN_PAGE).expect("mmap");
    let range = PageRange::new(Page::from_aligned(region.start()), 4);
    let mut t = dirty::open(Backend::Mprotect).expect("open mprotect");
    t.arm(&[range]).expect("arm");

    // A write in the armed range is ours: the earlier handler never sees it.
    // SAFETY: inside our mapping; the tracker handles the write fault.
    unsafe { ((region.start() + BYTES_IN_PAGE) as *mut u8).write_volatile(1) };
    assert_eq!(FOREIGN_FAULTS.load(Ordering::SeqCst), 0);

    // A write to the other protected page is not: it is chained to the earlier handler.
    // SAFETY: inside our mapping; the earlier handler makes it writable.
    unsafe { (foreign.start() as *mut u8).write_volatile(2) };
    assert_eq!(FOREIGN_FAULTS.load(Ordering::SeqCst), 1);
    // SAFETY: readable mapping.
    assert_eq!(unsafe { (foreign.start() as *const u8).read_volatile() }, 2);

    let mut set = DirtySet::new();
    t.collect_and_rearm(&mut set).expect("collect");
    set.normalize();
    assert_eq!(set.runs(), &[PageRange::new(range.start.plus_pages(1), 1)]);
    assert_eq!(t.stats().write_faults, 1);
    t.disarm().expect("disarm");
}
