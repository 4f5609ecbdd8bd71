//! Ordinary Rust inside Dune (ring-3 mode, the default here). Needs /dev/kvm.
//! Each test enters on its own libtest thread (one vCPU per thread, one VM per process).

use dune_hw::{DuneError, HostWrite, Mode, Options};
use std::collections::HashMap;
use std::io::{Read, Write};

/// Enters Dune on this thread, or prints SKIPPED and returns None.
fn enter_or_skip(test: &str, mode: Mode) -> Option<()> {
    // DUNEGC_DUNE_MODE runs this suite in another mode (scripts/test.sh: pvm and ring3)
    let mode = std::env::var("DUNEGC_DUNE_MODE")
        .ok()
        .and_then(|m| Mode::from_name(&m))
        .unwrap_or(mode);
    match dune_hw::enter_with(&Options {
        mode: Some(mode),
        ..Options::default()
    }) {
        Ok(()) => Some(()),
        Err(e @ (DuneError::Kmod(_) | DuneError::Unsupported { .. })) => {
            if std::env::var("DUNEGC_REQUIRE_KVM").as_deref() == Ok("1") {
                panic!("{test}: /dev/kvm required (DUNEGC_REQUIRE_KVM=1) but: {e}");
            }
            println!("SKIPPED {test}: {e}");
            None
        }
        Err(e) => panic!("{test}: enter failed: {e}"),
    }
}

#[test]
fn getpid_and_println_inside() {
    let host_pid = std::process::id();
    if enter_or_skip("getpid_and_println_inside", Mode::Ring3).is_none() {
        return;
    }
    let pid = std::process::id();
    println!("hello from inside Dune, pid {pid}");
    let stats = dune_hw::exit().expect("exit");
    assert_eq!(pid, host_pid);
    assert!(stats.syscalls >= 2, "{stats:?}");
    println!("mode {:?}", dune_hw::mode());
}

#[test]
fn collections_files_clock_inside() {
    if enter_or_skip("collections_files_clock_inside", Mode::Ring3).is_none() {
        return;
    }
    let t0 = std::time::Instant::now();
    let now = std::time::SystemTime::now();
    let mut m = HashMap::new();
    for i in 0..20_000u64 {
        m.insert(format!("key{i}"), vec![i; (i % 7) as usize]);
    }
    let total: u64 = m.values().map(|v| v.iter().sum::<u64>()).sum();
    let big: Vec<u8> = vec![7; 8 << 20]; // mmap'ed by malloc: a new mapping inside Dune
    let dir = std::env::temp_dir().join(format!("dune-hw-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("f.txt");
    std::fs::File::create(&path)
        .unwrap()
        .write_all(b"written inside Dune")
        .unwrap();
    let mut s = String::new();
    std::fs::File::open(&path)
        .unwrap()
        .read_to_string(&mut s)
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let elapsed = t0.elapsed();
    drop(big);
    let in_dune = dune_hw::in_dune();
    let stats = dune_hw::exit().unwrap();
    assert!(in_dune);
    assert_eq!(s, "written inside Dune");
    let expect: u64 = (0..20_000u64).map(|i| i * (i % 7)).sum();
    assert_eq!(total, expect);
    assert!(now.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() > 1_600_000_000);
    assert!(elapsed.as_secs() < 60);
    println!("stats {stats:?}");
}

#[test]
fn checksum_of_100_mb_matches_the_host() {
    const LEN: usize = 100 << 20;
    fn checksum(d: &[u8]) -> u64 {
        d.chunks(8).fold(0xcbf2_9ce4_8422_2325u64, |h, c| {
            (h ^ u64::from_le_bytes(c.try_into().unwrap())).wrapping_mul(0x100_0000_01b3)
        })
    }
    let host = {
        let d: Vec<u8> = (0..LEN).map(|i| (i * 31 % 251) as u8).collect();
        checksum(&d)
    };
    if enter_or_skip("checksum_of_100_mb_matches_the_host", Mode::Ring3).is_none() {
        return;
    }
    let d: Vec<u8> = (0..LEN).map(|i| (i * 31 % 251) as u8).collect();
    let guest = checksum(&d);
    drop(d);
    dune_hw::exit().unwrap();
    assert_eq!(guest, host);
}

#[test]
fn dirty_bit_is_set_by_a_write_and_comes_back_after_a_flush() {
    if enter_or_skip(
        "dirty_bit_is_set_by_a_write_and_comes_back_after_a_flush",
        Mode::Ring3,
    )
    .is_none()
    {
        return;
    }
    let view = dune_hw::dirty_view().unwrap();
    let mut page = vec![0u8; 3 * 4096];
    let p = (page.as_mut_ptr() as u64).next_multiple_of(4096);
    // SAFETY: p is inside `page`.
    unsafe { core::ptr::write_volatile(p as *mut u8, 1) };
    let first = view.entry(p);
    let mut seen = Vec::new();
    dune_hw::flush(view.collect_and_clear(p, p + 4096, &mut |a| seen.push(a)));
    let cleared = view.entry(p);
    // SAFETY: as above.
    unsafe { core::ptr::write_volatile(p as *mut u8, 2) };
    let again = view.entry(p);
    dune_hw::exit().unwrap();
    assert_ne!(first & 0x40, 0, "D set by the first write: {first:#x}");
    assert_eq!(seen, vec![p]);
    assert_eq!(cleared & 0x40, 0);
    assert_ne!(again & 0x40, 0, "D set again after the flush: {again:#x}");
}

thread_local! {
    /// Last 4 KiB host write reported on this thread (the hook runs on the thread whose
    /// syscall the host executed, so tests running in parallel do not see each other's).
    static LAST_4K_HOST_WRITE: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}
/// The one hook of this test binary (the hook is process-wide).
fn hook(w: HostWrite) {
    if let HostWrite::Range { start, len_bytes } = w {
        if len_bytes == 4096 {
            LAST_4K_HOST_WRITE.with(|c| c.set(start.0));
        }
    }
}

#[test]
fn forwarded_read_reports_host_write() {
    if enter_or_skip("forwarded_read_reports_host_write", Mode::Ring3).is_none() {
        return;
    }
    assert!(dune_hw::set_host_write_hook(Some(hook)));
    let mut buf = vec![0u8; 4096];
    let mut f = std::fs::File::open("/dev/zero").unwrap();
    f.read_exact(&mut buf).unwrap();
    let at = LAST_4K_HOST_WRITE.with(|c| c.get());
    dune_hw::exit().unwrap();
    assert_eq!(at, buf.as_ptr() as u64);
}

#[test]
fn unsupported_syscall_is_a_clear_error() {
    if enter_or_skip("unsupported_syscall_is_a_clear_error", Mode::Ring3).is_none() {
        return;
    }
    // SAFETY: shmat is refused by the monitor (ENOSYS): nothing is attached.
    let r = unsafe { libc::shmat(12345, core::ptr::null(), 0) } as isize as i32;
    let err = std::io::Error::last_os_error().raw_os_error();
    dune_hw::exit().unwrap();
    assert_eq!(r, -1);
    assert_eq!(err, Some(libc::ENOSYS));
}

#[test]
fn munmap_and_mprotect_update_the_guest() {
    if enter_or_skip("munmap_and_mprotect_update_the_guest", Mode::Ring3).is_none() {
        return;
    }
    let view = dune_hw::dirty_view().unwrap();
    // SAFETY: a fresh anonymous mapping.
    let p = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            8192,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    } as u64;
    // SAFETY: p is mapped RW.
    unsafe { core::ptr::write_volatile(p as *mut u64, 5) };
    let mapped = view.entry(p);
    // SAFETY: our own mapping.
    unsafe { libc::mprotect(p as *mut libc::c_void, 4096, libc::PROT_READ) };
    let ro = view.entry(p);
    // SAFETY: our own mapping, no references into it.
    unsafe { libc::munmap(p as *mut libc::c_void, 8192) };
    let gone = view.entry(p + 4096);
    dune_hw::exit().unwrap();
    assert_eq!(mapped & 3, 3, "{mapped:#x}");
    assert_eq!(ro & 3, 1, "{ro:#x}");
    assert_eq!(gone & 1, 0);
}

#[test]
fn enter_twice_is_an_error_and_exit_outside_too() {
    assert!(matches!(dune_hw::exit(), Err(DuneError::NotEntered)));
    if enter_or_skip("enter_twice_is_an_error_and_exit_outside_too", Mode::Ring3).is_none() {
        return;
    }
    let again = dune_hw::enter();
    dune_hw::exit().unwrap();
    assert!(matches!(again, Err(DuneError::AlreadyEntered)));
}

#[test]
fn a_thread_may_end_inside_dune() {
    let h = std::thread::spawn(|| {
        enter_or_skip("a_thread_may_end_inside_dune", Mode::Ring3)?;
        let v: Vec<u64> = (0..1000).collect();
        Some(v.iter().sum::<u64>()) // the thread ends in Dune: SYS_exit goes through the monitor
    });
    let r = h.join().expect("thread ended cleanly");
    if let Some(sum) = r {
        assert_eq!(sum, 499_500);
    }
}

#[test]
fn large_mapping_is_mapped_lazily_and_keeps_dirty_bits() {
    if enter_or_skip(
        "large_mapping_is_mapped_lazily_and_keeps_dirty_bits",
        Mode::Ring3,
    )
    .is_none()
    {
        return;
    }
    let view = dune_hw::dirty_view().unwrap();
    const LEN: usize = 8 << 30; // 8 GiB NORESERVE: far too big to map eagerly
                                // SAFETY: fresh anonymous mapping, unmapped below.
    let p = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            LEN,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    } as u64;
    let untouched_before = view.entry(p + (4 << 30));
    let offsets = [0u64, 1 << 20, 3 << 30, LEN as u64 - 4096];
    for (i, off) in offsets.iter().enumerate() {
        // SAFETY: inside the RW mapping.
        unsafe { core::ptr::write_volatile((p + off) as *mut u64, i as u64 + 10) };
    }
    let mut back = Vec::new();
    for off in offsets {
        // SAFETY: as above.
        back.push(unsafe { core::ptr::read_volatile((p + off) as *const u64) });
    }
    let mut dirty = Vec::new();
    dune_hw::flush(view.collect_and_clear(p, p + LEN as u64, &mut |a| dirty.push(a - p)));
    // a page written, then PROT_NONE and back: its dirty bit survives
    // SAFETY: inside the mapping.
    unsafe { core::ptr::write_volatile((p + 8192) as *mut u64, 1) };
    // SAFETY: our mapping.
    unsafe { libc::mprotect(p as *mut libc::c_void, 1 << 20, libc::PROT_NONE) };
    // SAFETY: our mapping.
    unsafe {
        libc::mprotect(
            p as *mut libc::c_void,
            1 << 20,
            libc::PROT_READ | libc::PROT_WRITE,
        )
    };
    let mut dirty2 = Vec::new();
    dune_hw::flush(view.collect_and_clear(p, p + (1 << 20), &mut |a| dirty2.push(a - p)));
    let frames = dune_hw::Dune::get().unwrap().n_page_table_frames();
    // SAFETY: our mapping, no references into it.
    unsafe { libc::munmap(p as *mut libc::c_void, LEN) };
    let stats = dune_hw::exit().unwrap();
    assert_eq!(untouched_before, 0);
    assert_eq!(back, vec![10, 11, 12, 13]);
    // every written page is reported; the others reported are the fresh pages of the
    // 2 MiB fault windows the writes mapped (leaves are created with D preset)
    let window = dune_hw::dune::FAULT_WINDOW_BYTES;
    for off in offsets {
        assert!(dirty.contains(&off), "written {off:#x} reported clean");
    }
    assert!(
        dirty.iter().all(|&d| offsets
            .iter()
            .any(|&o| (p + d) / window == (p + o) / window)),
        "only pages of faulted windows are reported"
    );
    // the page written before the PROT_NONE is reported; the others came back as fresh
    // (not present) entries, so theirs are false positives, never lost writes
    assert!(dirty2.contains(&8192), "{dirty2:?}");
    assert!(dirty2.iter().all(|&d| d < 1 << 20));
    assert!(frames < 20_000, "lazy: {frames} page-table frames");
    println!("lazy mapping: {stats:?}");
}

#[test]
fn thread_locals_and_fs_base_are_the_same_inside() {
    thread_local! {
        static TL: std::cell::Cell<u64> = const { std::cell::Cell::new(7) };
    }
    fn get_fs() -> u64 {
        let mut v = 0u64;
        // SAFETY: ARCH_GET_FS writes one u64.
        unsafe { libc::syscall(libc::SYS_arch_prctl, 0x1003, &mut v as *mut u64) };
        v
    }
    let host_fs = get_fs();
    TL.with(|t| t.set(41));
    if enter_or_skip("thread_locals_and_fs_base_are_the_same_inside", Mode::Ring3).is_none() {
        return;
    }
    let guest_fs = get_fs(); // answered from the guest's segment state
    let seen = TL.with(|t| t.get());
    TL.with(|t| t.set(42));
    dune_hw::exit().unwrap();
    assert_eq!(guest_fs, host_fs);
    assert_eq!(seen, 41);
    assert_eq!(TL.with(|t| t.get()), 42);
}

#[test]
fn a_kernel_write_sets_no_dirty_bit_and_is_reported() {
    if enter_or_skip(
        "a_kernel_write_sets_no_dirty_bit_and_is_reported",
        Mode::Ring3,
    )
    .is_none()
    {
        return;
    }
    let view = dune_hw::dirty_view().unwrap();
    let mut buf = vec![0u8; 3 * 4096];
    let p = (buf.as_mut_ptr() as u64).next_multiple_of(4096);
    // SAFETY: p is inside `buf`.
    unsafe { core::ptr::write_volatile(p as *mut u8, 1) }; // map it and make it dirty
    dune_hw::flush(view.collect_and_clear(p, p + 4096, &mut |_| {}));
    assert!(dune_hw::set_host_write_hook(Some(hook)));
    let f = std::fs::File::open("/dev/urandom").unwrap();
    // SAFETY: reading 4 KiB into the page at p, inside `buf`.
    let n = unsafe {
        libc::read(
            std::os::fd::AsRawFd::as_raw_fd(&f),
            p as *mut libc::c_void,
            4096,
        )
    };
    let d_after_kernel_write = view.entry(p) & 0x40;
    let reported = LAST_4K_HOST_WRITE.with(|c| c.get());
    dune_hw::exit().unwrap();
    assert_eq!(n, 4096);
    assert_eq!(
        d_after_kernel_write, 0,
        "the host kernel's write bypasses the guest MMU"
    );
    assert_eq!(reported, p, "so the hook must report it");
    drop(buf);
}

#[test]
fn realloc_of_a_large_buffer_moves_it_with_mremap() {
    if enter_or_skip(
        "realloc_of_a_large_buffer_moves_it_with_mremap",
        Mode::Ring3,
    )
    .is_none()
    {
        return;
    }
    // glibc serves these from mmap and grows them with mremap
    let mut v = vec![1u8; 1 << 20];
    for step in 2..6u8 {
        v.resize(v.len() * 2, step);
    }
    let sum: u64 = v.iter().map(|&b| b as u64).sum();
    let len = v.len();
    drop(v);
    let stats = dune_hw::exit().unwrap();
    assert_eq!(len, 16 << 20);
    let expect = (1u64 << 20) + 2 * (1 << 20) + 3 * (2 << 20) + 4 * (4 << 20) + 5 * (8 << 20);
    assert_eq!(sum, expect);
    println!("mremap: {stats:?}");
}
