//! The privileged-hardware API on the live process table, end to end in the guest:
//! `pagetable` (walk, map/unmap/protect, 2 MiB leaves, one-pass A/D read-and-clear,
//! copy-on-write), `fault` (closure handlers, decoded error codes, registers, resume/skip)
//! and `tlb` (invlpg, range, full flush, feature report against /proc/cpuinfo).
//!
//! Runs in the detected mode (ring-3 on PVM hosts) on the main thread, then re-runs itself
//! in ring-0 mode (a child process: the mode is per process) for the same checks on smaller
//! ranges. No libtest harness: fault handlers are process-wide.

use dune_hw::addr::Gva;
use dune_hw::fault::{self, FaultAction};
use dune_hw::pagetable::{self, PageSize, PageTableError};
use dune_hw::tlb::{self, CpuidSource, TlbMethod};
use dune_hw::{DuneError, Exception, Mode, Options};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

const CHILD_ENV: &str = "DUNE_HW_PRIVILEGED_RING0_CHILD";
const PAGE: u64 = 4096;
/// The guest's report, compared with the vCPU CPUID table after leaving Dune.
static GUEST_FEATURES: std::sync::OnceLock<tlb::TlbFeatures> = std::sync::OnceLock::new();
/// The host's report, read before entering.
static HOST_FEATURES: std::sync::OnceLock<tlb::TlbFeatures> = std::sync::OnceLock::new();

fn main() {
    let ring0_child = std::env::var(CHILD_ENV).is_ok();
    HOST_FEATURES.set(tlb::host_features()).expect("once");
    let opts = Options {
        mode: ring0_child.then_some(Mode::Ring0),
        ..Options::default()
    };
    match dune_hw::enter_with(&opts) {
        Ok(()) => {}
        Err(e @ (DuneError::Kmod(_) | DuneError::Unsupported { .. })) => {
            if std::env::var("DUNEGC_REQUIRE_KVM").as_deref() == Ok("1") {
                panic!("kvm_privileged: /dev/kvm required (DUNEGC_REQUIRE_KVM=1) but: {e}");
            }
            println!("SKIPPED kvm_privileged: {e}");
            return;
        }
        Err(e) => panic!("enter failed: {e}"),
    }
    let mode = dune_hw::mode().expect("entered").mode;
    let small = mode == Mode::Ring0;
    println!("kvm_privileged: {mode:?} mode");
    type Test = (&'static str, fn(Mode, bool));
    let tests: [Test; 10] = [
        (
            "instructions_kvm_only_emulates_run",
            instructions_kvm_only_emulates_run,
        ),
        (
            "walk_reports_entry_level_and_page",
            walk_reports_entry_level_and_page,
        ),
        (
            "dirty_and_accessed_bits_round_trip",
            dirty_and_accessed_bits_round_trip,
        ),
        (
            "huge_2m_leaf_maps_tracks_and_splits",
            huge_2m_leaf_maps_tracks_and_splits,
        ),
        ("copy_on_write_end_to_end", copy_on_write_end_to_end),
        (
            "unmap_faults_not_present_then_skip_and_registers",
            unmap_faults_not_present_then_skip_and_registers,
        ),
        (
            "tlb_operations_and_feature_report",
            tlb_operations_and_feature_report,
        ),
        (
            "on_demand_mapping_keeps_program_protections",
            on_demand_mapping_keeps_program_protections,
        ),
        (
            "protection_reaches_another_vcpu",
            protection_reaches_another_vcpu,
        ),
        ("bad_ranges_are_clear_errors", bad_ranges_are_clear_errors),
    ];
    for (name, t) in tests {
        let start = std::time::Instant::now();
        t(mode, small);
        println!("test {name} ({mode:?}) ... ok ({:?})", start.elapsed());
    }
    dune_hw::exit().expect("leave Dune");
    // outside the guest the report still comes from the vCPU table
    let table = tlb::features();
    assert_eq!(Some(&table).map(|t| t.source), Some(CpuidSource::VcpuTable));
    assert_eq!(
        table.pcid,
        GUEST_FEATURES.get().expect("the TLB test ran").pcid
    );
    if !ring0_child {
        run_ring0_child();
    }
}

/// The same checks in ring-0 mode, in a child process.
fn run_ring0_child() {
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .env(CHILD_ENV, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    print!("{stdout}");
    if let Some(l) = stdout.lines().find(|l| l.starts_with("SKIPPED")) {
        println!("{l} (ring-0)");
        return;
    }
    assert!(
        out.status.success(),
        "ring-0 child failed: {stdout}\n{stderr}"
    );
    assert_eq!(
        stdout.matches("... ok").count(),
        10,
        "every test ran in ring-0: {stdout}"
    );
}

/// An anonymous RW mapping of `len` bytes aligned to `align` (the surplus is unmapped).
fn mmap_aligned(len: u64, align: u64) -> u64 {
    // SAFETY: a fresh anonymous mapping at a kernel-chosen address aliases nothing.
    let p = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            (len + align) as usize,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED);
    let p = p as u64;
    let a = p.next_multiple_of(align);
    // SAFETY: unmapping the parts of our own fresh mapping outside [a, a + len).
    unsafe {
        if a > p {
            libc::munmap(p as *mut libc::c_void, (a - p) as usize);
        }
        libc::munmap((a + len) as *mut libc::c_void, (p + align - a) as usize);
    }
    a
}

fn munmap(a: u64, len: u64) {
    // SAFETY: `a` is a mapping this test made and no longer uses.
    let r = unsafe { libc::munmap(a as *mut libc::c_void, len as usize) };
    assert_eq!(r, 0);
}

fn write(a: u64, v: u64) {
    // SAFETY: `a` is in a writable mapping this test owns.
    unsafe { core::ptr::write_volatile(a as *mut u64, v) }
}

fn read(a: u64) -> u64 {
    // SAFETY: `a` is in a readable mapping this test owns.
    unsafe { core::ptr::read_volatile(a as *const u64) }
}

/// The host's view of memory (a forwarded pread of /proc/self/mem): what the guest
/// translation really wrote.
fn host_read(a: u64) -> u64 {
    let f = std::fs::File::open("/proc/self/mem").unwrap();
    let mut b = [0u8; 8];
    f.read_exact_at(&mut b, a).unwrap();
    u64::from_ne_bytes(b)
}

fn walk_reports_entry_level_and_page(_mode: Mode, _small: bool) {
    let a = mmap_aligned(4 * PAGE, PAGE);
    write(a + PAGE + 8, 7);
    let w = pagetable::walk(Gva(a + PAGE + 8)).unwrap().expect("mapped");
    assert_eq!(w.size, PageSize::Size4K);
    assert_eq!(w.page, Gva(a + PAGE));
    assert_eq!(w.pa.0, a + PAGE + 8, "identity map");
    assert!(w.present() && w.writable() && w.user() && w.no_execute());
    assert!(w.accessed() && w.dirty(), "written: {:#x}", w.entry);
    assert!(!w.set_by_program());
    // code is executable
    let code = pagetable::walk(Gva(walk_reports_entry_level_and_page as *const () as u64))
        .unwrap()
        .expect("code mapped");
    assert!(code.present() && !code.no_execute() && !code.writable());
    // a hole: no entry (or not present)
    munmap(a + 3 * PAGE, PAGE);
    let hole = pagetable::walk(Gva(a + 3 * PAGE)).unwrap();
    assert!(hole.is_none_or(|w| !w.present()), "{hole:?}");
    munmap(a, 3 * PAGE);
}

fn dirty_and_accessed_bits_round_trip(_mode: Mode, small: bool) {
    let n = if small { 16 } else { 256 };
    let a = mmap_aligned(n * PAGE, PAGE);
    for i in 0..n {
        write(a + i * PAGE, i);
    }
    let (bits, f) = pagetable::read_clear_accessed_dirty(Gva(a), n * PAGE).unwrap();
    dune_hw::flush(f);
    assert_eq!(bits.n_dirty(), n, "every page was written");
    assert_eq!(bits.n_accessed(), n);
    // all clear now; write 3 and 7, read 5
    let (bits, f) = pagetable::read_clear_accessed_dirty(Gva(a), n * PAGE).unwrap();
    dune_hw::flush(f);
    assert_eq!(
        (bits.n_dirty(), bits.n_accessed()),
        (0, 0),
        "cleared and flushed"
    );
    write(a + 3 * PAGE, 1);
    write(a + 7 * PAGE + 104, 1);
    let _ = read(a + 5 * PAGE);
    let w = pagetable::walk(Gva(a + 3 * PAGE)).unwrap().unwrap();
    assert!(w.dirty() && w.accessed());
    let (bits, f) = pagetable::read_clear_accessed_dirty(Gva(a), n * PAGE).unwrap();
    dune_hw::flush(f);
    let dirty: Vec<u64> = bits.dirty_pages().map(|g| (g.0 - a) / PAGE).collect();
    assert_eq!(dirty, vec![3, 7]);
    assert!(bits.accessed(Gva(a + 5 * PAGE)), "read sets A");
    assert!(!bits.dirty(Gva(a + 5 * PAGE)), "read does not set D");
    assert!(!bits.accessed(Gva(a + 6 * PAGE)));
    let w = pagetable::walk(Gva(a + 3 * PAGE)).unwrap().unwrap();
    assert!(!w.dirty() && !w.accessed(), "cleared: {:#x}", w.entry);
    // after the flush a write sets D again
    write(a + 3 * PAGE, 2);
    assert!(pagetable::walk(Gva(a + 3 * PAGE)).unwrap().unwrap().dirty());
    // the allocation-free form sees the same
    let mut seen = Vec::new();
    let f = pagetable::read_clear_accessed_dirty_with(Gva(a), n * PAGE, &mut |va, np, b| {
        if b & dune_hw::paging::pte::D != 0 {
            seen.push((va, np))
        }
    })
    .unwrap();
    dune_hw::flush(f);
    assert_eq!(seen, vec![(a + 3 * PAGE, 1)]);
    munmap(a, n * PAGE);
}

fn huge_2m_leaf_maps_tracks_and_splits(_mode: Mode, _small: bool) {
    const M2: u64 = 2 << 20;
    let r = mmap_aligned(2 * M2, M2);
    write(r + 0x1234 * 8, 11);
    let c = pagetable::map_huge(
        Gva(r),
        2 * M2,
        libc::PROT_READ | libc::PROT_WRITE,
        PageSize::Size2M,
    )
    .unwrap();
    assert!(c.flushed, "the 4 KiB entries it replaced had been used");
    let w = pagetable::walk(Gva(r + M2 + 0x5678)).unwrap().unwrap();
    assert_eq!(w.size, PageSize::Size2M, "{:#x}", w.entry);
    assert_eq!((w.page, w.pa.0), (Gva(r + M2), r + M2 + 0x5678));
    assert!(w.present() && w.writable() && w.set_by_program());
    assert_eq!(read(r + 0x1234 * 8), 11, "contents kept");
    // clear both leaves, write into the second only: KVM sets D on the guest huge leaf
    let (_, f) = pagetable::read_clear_accessed_dirty(Gva(r), 2 * M2).unwrap();
    dune_hw::flush(f);
    write(r + M2 + 0x10_0008, 0xfeed);
    assert_eq!(
        host_read(r + M2 + 0x10_0008),
        0xfeed,
        "the guest leaf maps the right memory"
    );
    let w = pagetable::walk(Gva(r + M2)).unwrap().unwrap();
    assert!(w.dirty() && w.size == PageSize::Size2M, "{:#x}", w.entry);
    let (bits, f) = pagetable::read_clear_accessed_dirty(Gva(r), 2 * M2).unwrap();
    dune_hw::flush(f);
    assert_eq!(bits.n_dirty(), 512, "every page of the dirty 2 MiB leaf");
    assert!(bits.dirty(Gva(r + M2)) && !bits.dirty(Gva(r + M2 - PAGE)));
    // a part-range read does not clear the leaf (its other pages would lose D)
    write(r + 8, 1);
    let (bits, f) = pagetable::read_clear_accessed_dirty(Gva(r), PAGE).unwrap();
    dune_hw::flush(f);
    assert_eq!(bits.n_dirty(), 1);
    assert!(pagetable::walk(Gva(r)).unwrap().unwrap().dirty(), "kept");
    // write-protecting all of a leaf keeps it huge
    let _ = pagetable::protect(Gva(r + M2), M2, libc::PROT_READ).unwrap();
    let w = pagetable::walk(Gva(r + M2)).unwrap().unwrap();
    assert!(w.size == PageSize::Size2M && !w.writable());
    let _ = pagetable::protect(Gva(r + M2), M2, libc::PROT_READ | libc::PROT_WRITE).unwrap();
    // a host munmap of one page inside a leaf splits it; the rest stays usable
    munmap(r + 5 * PAGE, PAGE);
    let w = pagetable::walk(Gva(r + 6 * PAGE)).unwrap().unwrap();
    assert_eq!(w.size, PageSize::Size4K);
    assert!(w.present());
    let gone = pagetable::walk(Gva(r + 5 * PAGE)).unwrap().unwrap();
    assert!(!gone.present() && gone.size == PageSize::Size4K);
    write(r + 6 * PAGE, 3);
    assert_eq!(read(r + 6 * PAGE), 3);
    assert_eq!(read(r + 0x1234 * 8), 11);
    // unaligned ranges are refused
    let e = pagetable::map_huge(Gva(r + PAGE), M2, libc::PROT_READ, PageSize::Size2M).unwrap_err();
    assert!(
        matches!(
            e,
            PageTableError::Unaligned {
                align_bytes: M2,
                ..
            }
        ),
        "{e}"
    );
    let e = pagetable::map_huge(Gva(r), M2, libc::PROT_READ, PageSize::Size2M).unwrap_err();
    assert!(
        matches!(e, PageTableError::NotHostMapped { addr } if addr == r + 5 * PAGE),
        "{e}"
    );
    munmap(r, 5 * PAGE);
    munmap(r + 6 * PAGE, 2 * M2 - 6 * PAGE);
}

fn copy_on_write_end_to_end(mode: Mode, small: bool) {
    let n = if small { 2 } else { 8 };
    let shared = mmap_aligned(n * PAGE, PAGE);
    let snapshot = mmap_aligned(n * PAGE, PAGE);
    for i in 0..n {
        write(shared + i * PAGE, 100 + i);
    }
    let faults = Arc::new(AtomicU64::new(0));
    let last_code = Arc::new(AtomicU64::new(0));
    let last_addr = Arc::new(AtomicU64::new(0));
    let (f2, c2, a2) = (faults.clone(), last_code.clone(), last_addr.clone());
    fault::set_fault_handler(Exception::PageFault, move |f| {
        let (Some(addr), Some(code)) = (f.addr, f.page_fault()) else {
            return FaultAction::Unhandled;
        };
        if !(shared..shared + n * PAGE).contains(&addr.0) || !code.write() || !code.present() {
            return FaultAction::Unhandled;
        }
        f2.fetch_add(1, Ordering::SeqCst);
        c2.store(code.0, Ordering::SeqCst);
        a2.store(addr.0, Ordering::SeqCst);
        let page = addr.0 & !(PAGE - 1);
        let dst = snapshot + (page - shared);
        // SAFETY: both pages are mappings of this test; the guest is stopped.
        unsafe { core::ptr::copy_nonoverlapping(page as *const u8, dst as *mut u8, PAGE as usize) };
        match pagetable::protect(Gva(page), PAGE, libc::PROT_READ | libc::PROT_WRITE) {
            Ok(_) => FaultAction::Resume,
            Err(_) => FaultAction::Unhandled,
        }
    });
    let c = pagetable::write_protect(Gva(shared), n * PAGE).unwrap();
    assert!(c.flushed, "written pages were cached writable");
    assert!(!pagetable::walk(Gva(shared)).unwrap().unwrap().writable());
    // reads do not fault
    assert_eq!(read(shared + PAGE), 101);
    assert_eq!(faults.load(Ordering::SeqCst), 0);
    write(shared + PAGE + 16, 0xc0ffee);
    assert_eq!(faults.load(Ordering::SeqCst), 1, "the write faulted once");
    assert_eq!(
        last_addr.load(Ordering::SeqCst),
        shared + PAGE + 16,
        "exact address"
    );
    let code = fault::PageFaultCode(last_code.load(Ordering::SeqCst));
    assert!(code.present() && code.write() && !code.fetch() && !code.reserved_bit());
    assert_eq!(
        code.user(),
        mode.app_in_user_mode(),
        "U/S follows the guest CPL: {:#x}",
        code.0
    );
    assert_eq!(read(shared + PAGE + 16), 0xc0ffee, "the write was resumed");
    assert_eq!(
        read(snapshot + PAGE),
        101,
        "the copy holds the old contents"
    );
    write(shared + PAGE + 24, 1);
    assert_eq!(faults.load(Ordering::SeqCst), 1, "writable after the copy");
    for i in 0..n {
        write(shared + i * PAGE + 8, 7);
    }
    assert_eq!(faults.load(Ordering::SeqCst), n, "one fault per page");
    for i in 0..n {
        assert_eq!(read(snapshot + i * PAGE), 100 + i);
    }
    fault::clear_fault_handler(Exception::PageFault);
    // a host mprotect of the range ends the program's protection (host state wins)
    let _ = pagetable::write_protect(Gva(shared), PAGE).unwrap();
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    // SAFETY: mprotect of our own mapping to what it already is.
    let r = unsafe { libc::mprotect(shared as *mut libc::c_void, PAGE as usize, rw) };
    assert_eq!(r, 0);
    let w = pagetable::walk(Gva(shared)).unwrap().unwrap();
    assert!(w.writable() && !w.set_by_program(), "{:#x}", w.entry);
    write(shared, 1);
    munmap(shared, n * PAGE);
    munmap(snapshot, n * PAGE);
}

fn unmap_faults_not_present_then_skip_and_registers(_mode: Mode, _small: bool) {
    let a = mmap_aligned(2 * PAGE, PAGE);
    write(a + PAGE, 0x55);
    let c = pagetable::unmap(Gva(a + PAGE), PAGE).unwrap();
    assert!(c.flushed);
    let w = pagetable::walk(Gva(a + PAGE)).unwrap().unwrap();
    assert!(
        !w.present() && w.dirty() && w.set_by_program(),
        "D kept: {:#x}",
        w.entry
    );
    let code = Arc::new(AtomicU64::new(u64::MAX));
    let c2 = code.clone();
    fault::set_fault_handler(Exception::PageFault, move |f| {
        let Some(pf) = f.page_fault() else {
            return FaultAction::Unhandled;
        };
        c2.store(pf.0, Ordering::SeqCst);
        let page = f.addr.expect("#PF has an address").0 & !(PAGE - 1);
        match pagetable::map(Gva(page), PAGE, libc::PROT_READ | libc::PROT_WRITE) {
            Ok(_) => FaultAction::Resume,
            Err(_) => FaultAction::Unhandled,
        }
    });
    assert_eq!(read(a + PAGE), 0x55, "mapped again by the handler");
    let pf = fault::PageFaultCode(code.load(Ordering::SeqCst));
    assert!(!pf.present() && !pf.write() && !pf.fetch(), "{:#x}", pf.0);
    fault::clear_fault_handler(Exception::PageFault);
    // #UD: skip the 2-byte ud2 and hand a value back in rax
    let seen_rip = Arc::new(AtomicU64::new(0));
    let s2 = seen_rip.clone();
    fault::set_fault_handler(Exception::InvalidOpcode, move |f| {
        s2.store(f.regs.rip, Ordering::SeqCst);
        f.regs.rax = f.regs.rcx + 1;
        FaultAction::Skip { len_bytes: 2 }
    });
    let out: u64;
    let rip: u64;
    // SAFETY: the ud2 raises #UD, which the handler above skips; rax gets rcx + 1.
    unsafe {
        core::arch::asm!(
            "lea {rip}, [rip + 2f]",
            "2: ud2",
            rip = out(reg) rip,
            in("rcx") 41u64,
            out("rax") out,
        )
    };
    fault::clear_fault_handler(Exception::InvalidOpcode);
    assert_eq!(out, 42, "registers changed by the handler");
    assert_eq!(seen_rip.load(Ordering::SeqCst), rip, "rip of the ud2");
    munmap(a, 2 * PAGE);
}

/// In a mapping the monitor maps lazily (over 64 MiB: entries appear one 2 MiB window at a
/// time, on fault), a page the program write-protected before its window was mapped keeps
/// its protection when a fault elsewhere in the window maps the rest.
fn on_demand_mapping_keeps_program_protections(_mode: Mode, _small: bool) {
    const LEN: u64 = 128 << 20;
    let big = mmap_aligned(LEN, 2 << 20);
    let window = big + (6 << 20);
    let (protected, other) = (window + 3 * PAGE, window + 9 * PAGE);
    assert!(
        pagetable::walk(Gva(other))
            .unwrap()
            .is_none_or(|w| !w.present()),
        "not mapped yet"
    );
    let faults = Arc::new(AtomicU64::new(0));
    let f2 = faults.clone();
    fault::set_fault_handler(Exception::PageFault, move |f| {
        if f.addr.map(|a| a.0 & !(PAGE - 1)) != Some(protected) {
            return FaultAction::Unhandled;
        }
        f2.fetch_add(1, Ordering::SeqCst);
        match pagetable::protect(Gva(protected), PAGE, libc::PROT_READ | libc::PROT_WRITE) {
            Ok(_) => FaultAction::Resume,
            Err(_) => FaultAction::Unhandled,
        }
    });
    let _ = pagetable::write_protect(Gva(protected), PAGE).unwrap();
    // the monitor maps the window on this fault, the protected page excepted
    write(other, 5);
    let w = pagetable::walk(Gva(window + 20 * PAGE)).unwrap().unwrap();
    assert!(
        w.present() && w.writable(),
        "the window was mapped: {:#x}",
        w.entry
    );
    let w = pagetable::walk(Gva(protected)).unwrap().unwrap();
    assert!(
        w.present() && !w.writable() && w.set_by_program(),
        "{:#x}",
        w.entry
    );
    assert_eq!(read(protected), 0, "readable");
    write(protected, 6);
    assert_eq!(
        faults.load(Ordering::SeqCst),
        1,
        "the write reached the handler"
    );
    assert_eq!(read(protected), 6);
    fault::clear_fault_handler(Exception::PageFault);
    munmap(big, LEN);
}

/// Another Dune thread (its own vCPU) writing a page all along sees a write protection
/// made by this thread once it passes through the monitor (the shootdown of `pagetable`:
/// every other vCPU flushes before its next entry), and its fault reaches the handler.
fn protection_reaches_another_vcpu(_mode: Mode, _small: bool) {
    let page = mmap_aligned(PAGE, PAGE);
    static STOP: AtomicU64 = AtomicU64::new(0);
    STOP.store(0, Ordering::SeqCst);
    let faults = Arc::new(AtomicU64::new(0));
    let f2 = faults.clone();
    fault::set_fault_handler(Exception::PageFault, move |f| {
        if f.addr.map(|a| a.0 & !(PAGE - 1)) != Some(page) {
            return FaultAction::Unhandled;
        }
        f2.fetch_add(1, Ordering::SeqCst);
        match pagetable::protect(Gva(page), PAGE, libc::PROT_READ | libc::PROT_WRITE) {
            Ok(_) => FaultAction::Resume,
            Err(_) => FaultAction::Unhandled,
        }
    });
    let writer = std::thread::spawn(move || {
        assert!(dune_hw::in_dune(), "threads of a Dune thread enter Dune");
        let mut n = 0u64;
        while STOP.load(Ordering::SeqCst) == 0 {
            write(page, n);
            n += 1;
            // an exit to the monitor, where a pending shootdown is served
            // SAFETY: sched_yield has no arguments.
            unsafe { libc::sched_yield() };
        }
        n
    });
    while read(page) < 2 {
        std::hint::spin_loop();
    }
    let _ = pagetable::write_protect(Gva(page), PAGE).unwrap();
    let t0 = std::time::Instant::now();
    while faults.load(Ordering::SeqCst) == 0 && t0.elapsed() < std::time::Duration::from_secs(20) {
        // SAFETY: sched_yield has no arguments.
        unsafe { libc::sched_yield() };
    }
    STOP.store(1, Ordering::SeqCst);
    let n = writer.join().expect("writer");
    fault::clear_fault_handler(Exception::PageFault);
    assert_eq!(
        faults.load(Ordering::SeqCst),
        1,
        "the other vCPU faulted once after the protection ({n} writes)"
    );
    munmap(page, PAGE);
}

fn cpuinfo_flags() -> Vec<String> {
    let s = std::fs::read_to_string("/proc/cpuinfo").unwrap();
    let line = s
        .lines()
        .find(|l| l.starts_with("flags"))
        .expect("a flags line");
    line.split(':')
        .nth(1)
        .unwrap()
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// MOVBE (libc's memcmp uses it when the host CPU has it) loads and stores byte-swapped in
/// every mode, also at emulated CPL0 where KVM's emulator may refuse it with #UD.
fn instructions_kvm_only_emulates_run(_mode: Mode, _small: bool) {
    if !std::arch::is_x86_feature_detected!("movbe") {
        println!("  movbe: the host CPU lacks it, nothing to check");
        return;
    }
    let src: u64 = 0x0102_0304_0506_0708;
    let mut dst: u64 = 0;
    let loaded: u64;
    // SAFETY: both operands are valid, aligned u64s on this stack frame.
    unsafe {
        core::arch::asm!(
            "movbe {l}, [{s}]",
            "movbe [{d}], {l}",
            s = in(reg) &src,
            d = in(reg) &mut dst,
            l = out(reg) loaded,
        );
    }
    assert_eq!(loaded, src.swap_bytes());
    assert_eq!(dst, src, "swapped twice");
    // and through libc, as the program's own code would
    let a = b"flags\0x";
    let b = b"flags\0y";
    assert_eq!(a[..5], b[..5]);
    assert_ne!(a[..], b[..]);
}

fn tlb_operations_and_feature_report(mode: Mode, _small: bool) {
    let flags = cpuinfo_flags();
    let has = |f: &str| flags.iter().any(|x| x == f);
    let host = HOST_FEATURES.get().expect("read before entering");
    assert_eq!(host.source, CpuidSource::Host);
    assert_eq!(
        (host.pcid, host.invpcid, host.pge, host.huge_1g),
        (has("pcid"), has("invpcid"), has("pge"), has("pdpe1gb")),
        "host cpuid vs /proc/cpuinfo: {host:?}"
    );
    let guest = tlb::features();
    assert_eq!(guest.source, CpuidSource::VcpuTable);
    let insn = tlb::cpuid_instruction_features();
    println!(
        "  /proc/cpuinfo pcid={} invpcid={} pge={} pdpe1gb={}\n  vCPU table {guest:?}\n  cpuid in the guest {insn:?}",
        has("pcid"),
        has("invpcid"),
        has("pge"),
        has("pdpe1gb")
    );
    // the guest may get less than the host, never more
    assert!(!guest.pcid || has("pcid"));
    assert!(!guest.invpcid || has("invpcid"));
    assert!(!guest.pge || has("pge"));
    assert!(!guest.huge_1g || has("pdpe1gb"));
    assert!(!guest.pcid_enabled);
    assert_eq!(guest.invlpg_in_guest, mode == Mode::Ring0);
    let bits = |f: &tlb::TlbFeatures| (f.pcid, f.invpcid, f.pge, f.huge_1g, f.invlpgb);
    if mode == Mode::Ring0 {
        // KVM intercepts cpuid at guest CPL0 and answers from the table
        assert_eq!(
            bits(&insn),
            bits(&guest),
            "cpuid at CPL0 answers the vCPU table"
        );
    }
    GUEST_FEATURES.set(guest).expect("once per process");
    // TLB operations report what they did and keep D-bit tracking working
    let a = mmap_aligned(64 * PAGE, PAGE);
    for i in 0..64 {
        write(a + i * PAGE, i);
    }
    let before = dune_hw::thread_stats().tlb_flushes;
    let (_, f) = pagetable::read_clear_accessed_dirty(Gva(a), 64 * PAGE).unwrap();
    let _ = f; // flushed below by each method in turn
    let m = tlb::invlpg(Gva(a + 5 * PAGE + 9));
    write(a + 5 * PAGE, 1);
    let m_range = tlb::invlpg_range(Gva(a + 8 * PAGE), 4 * PAGE);
    for i in 8..12 {
        write(a + i * PAGE, 1);
    }
    let m_big = tlb::invlpg_range(Gva(a), (tlb::INVLPG_RANGE_MAX_PAGES + 1) * PAGE);
    let m_all = tlb::flush_all();
    write(a + 40 * PAGE, 1);
    let (bits, f) = pagetable::read_clear_accessed_dirty(Gva(a), 64 * PAGE).unwrap();
    dune_hw::flush(f);
    let dirty: Vec<u64> = bits.dirty_pages().map(|g| (g.0 - a) / PAGE).collect();
    assert_eq!(dirty, vec![5, 8, 9, 10, 11, 40]);
    let after = dune_hw::thread_stats().tlb_flushes;
    match mode {
        Mode::Ring0 => {
            assert_eq!(m, TlbMethod::Invlpg { n_pages: 1 });
            assert_eq!(m_range, TlbMethod::Invlpg { n_pages: 4 });
            assert_eq!(m_all, TlbMethod::Cr3Reload);
            assert_eq!(m_big, TlbMethod::Cr3Reload, "long ranges reload CR3");
        }
        Mode::Pvm => {
            // answered by the monitor's supervisor-mode stub with a hypercall, no exit:
            // one page with HC_FLUSH_TLB_ONE, anything larger with HC_FLUSH_TLB
            assert_eq!(m, TlbMethod::HypercallOne { n_pages: 1 });
            assert_eq!(
                (m_range, m_all, m_big),
                (
                    TlbMethod::Hypercall,
                    TlbMethod::Hypercall,
                    TlbMethod::Hypercall
                )
            );
        }
        Mode::PvmRing0 => {
            assert_eq!(m, TlbMethod::HypercallOne { n_pages: 1 });
            assert_eq!(m_range, TlbMethod::HypercallOne { n_pages: 4 });
            assert_eq!((m_all, m_big), (TlbMethod::Hypercall, TlbMethod::Hypercall));
        }
        Mode::Ring3 => {
            assert_eq!(
                (m, m_range, m_all, m_big),
                (
                    TlbMethod::MonitorCr3Reload,
                    TlbMethod::MonitorCr3Reload,
                    TlbMethod::MonitorCr3Reload,
                    TlbMethod::MonitorCr3Reload
                )
            );
            assert!(
                after >= before + 4,
                "the monitor flushed: {before} -> {after}"
            );
        }
    }
    munmap(a, 64 * PAGE);
}

fn bad_ranges_are_clear_errors(_mode: Mode, _small: bool) {
    let a = mmap_aligned(2 * PAGE, PAGE);
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    let e = pagetable::protect(Gva(a + 1), PAGE, libc::PROT_READ).unwrap_err();
    assert!(matches!(e, PageTableError::Unaligned { .. }), "{e}");
    let e = pagetable::protect(Gva(a), 0, libc::PROT_READ).unwrap_err();
    assert!(matches!(e, PageTableError::Unaligned { .. }), "{e}");
    let e = pagetable::map(Gva((1 << 47) - PAGE), 2 * PAGE, rw).unwrap_err();
    assert!(matches!(e, PageTableError::OutsideUserHalf { .. }), "{e}");
    let e = pagetable::map(Gva(!(PAGE - 1)), PAGE, rw).unwrap_err();
    assert!(matches!(e, PageTableError::OutsideUserHalf { .. }), "{e}");
    munmap(a + PAGE, PAGE);
    let e = pagetable::map(Gva(a), 2 * PAGE, rw).unwrap_err();
    assert!(
        matches!(e, PageTableError::NotHostMapped { addr } if addr == a + PAGE),
        "{e}"
    );
    // SAFETY: mprotect of our own mapping.
    let r = unsafe { libc::mprotect(a as *mut libc::c_void, PAGE as usize, libc::PROT_READ) };
    assert_eq!(r, 0);
    let e = pagetable::map(Gva(a), PAGE, rw).unwrap_err();
    assert!(
        matches!(
            e,
            PageTableError::ProtExceedsHost {
                host_prot: libc::PROT_READ,
                ..
            }
        ),
        "{e}"
    );
    pagetable::map(Gva(a), PAGE, libc::PROT_READ).unwrap();
    let e = pagetable::read_clear_accessed_dirty(Gva(a), PAGE + 1).unwrap_err();
    assert!(matches!(e, PageTableError::Unaligned { .. }), "{e}");
    // 1 GiB leaves: refused with a reason when the guest CPUID lacks them, else alignment
    let e = pagetable::map_huge(Gva(a), 1 << 30, libc::PROT_READ, PageSize::Size1G).unwrap_err();
    assert!(
        matches!(
            e,
            PageTableError::Unsupported { .. } | PageTableError::Unaligned { .. }
        ),
        "{e}"
    );
    println!("  e.g. {e}");
    munmap(a, PAGE);
}
