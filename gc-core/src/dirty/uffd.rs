//! Backend `uffd`: userfaultfd asynchronous write-protection, read and reset with the
//! `PAGEMAP_SCAN` ioctl of `/proc/self/pagemap` (Linux ≥ 6.7).
//!
//! - open: `userfaultfd(O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY)` (without
//!   `UFFD_USER_MODE_ONLY` on kernels that do not know it), then `UFFDIO_API` asking for
//!   `UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED`, and one probing `PAGEMAP_SCAN`.
//! - arm: `UFFDIO_REGISTER` (mode WP) the ranges when they change, then
//!   `UFFDIO_WRITEPROTECT` them. With `WP_ASYNC` a write to a protected page is resolved by
//!   the kernel itself (a minor fault, no message to read, no thread to wake); the page's
//!   uffd-wp bit is cleared, which `PAGEMAP_SCAN` reports as `PAGE_IS_WRITTEN`.
//!   `WP_UNPOPULATED` makes never-touched pages protected too.
//! - collect: `PAGEMAP_SCAN` with `PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC` returns the
//!   written runs and write-protects them again in the same walk, looping over a fixed
//!   output buffer until `walk_end` reaches the end of each range.
//! - disarm/drop: `UFFDIO_UNREGISTER`, which also clears the write-protection.
//!
//! Kernel writes (the buffer of `read(2)`) go through the same fault path, so they are
//! seen. Write faults are resolved inside the kernel and not counted
//! (`TrackerStats::write_faults` stays 0).

use super::{Backend, DirtyError, DirtySet, DirtyTracker, TrackerStats};
use crate::address::{Address, Page, PageRange};
use crate::util::mmap::{Mapping, MmapVec, BYTES_IN_PAGE};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

// ---------------------------------------------------------------------------------------
// Kernel ABI (include/uapi/linux/userfaultfd.h, include/uapi/linux/fs.h), not in libc.

const UFFD_API: u64 = 0xAA;
const UFFD_USER_MODE_ONLY: libc::c_int = 1;
const UFFD_FEATURE_WP_UNPOPULATED: u64 = 1 << 13;
const UFFD_FEATURE_WP_ASYNC: u64 = 1 << 15;
const UFFDIO_REGISTER_MODE_WP: u64 = 1 << 1;
const UFFDIO_WRITEPROTECT_MODE_WP: u64 = 1 << 0;
/// Bit number of `UFFDIO_WRITEPROTECT` in `uffdio_register.ioctls`.
const UFFDIO_WRITEPROTECT_NR: u64 = 0x06;

const PAGE_IS_WRITTEN: u64 = 1 << 1;
const PM_SCAN_WP_MATCHING: u64 = 1 << 0;
const PM_SCAN_CHECK_WPASYNC: u64 = 1 << 1;

const IOC_WRITE: u64 = 1;
const IOC_READ: u64 = 2;

/// `_IOC(dir, type, nr, size)` for x86_64 (and every architecture with the generic layout).
const fn ioc(dir: u64, ty: u8, nr: u8, size_bytes: usize) -> libc::Ioctl {
    ((dir << 30) | ((size_bytes as u64) << 16) | ((ty as u64) << 8) | nr as u64) as libc::Ioctl
}

const UFFDIO_API: libc::Ioctl = ioc(IOC_READ | IOC_WRITE, 0xAA, 0x3F, size_of::<UffdioApi>());
const UFFDIO_REGISTER: libc::Ioctl = ioc(
    IOC_READ | IOC_WRITE,
    0xAA,
    0x00,
    size_of::<UffdioRegister>(),
);
const UFFDIO_UNREGISTER: libc::Ioctl = ioc(IOC_READ, 0xAA, 0x01, size_of::<UffdioRange>());
const UFFDIO_WRITEPROTECT: libc::Ioctl = ioc(
    IOC_READ | IOC_WRITE,
    0xAA,
    0x06,
    size_of::<UffdioWriteprotect>(),
);
const PAGEMAP_SCAN: libc::Ioctl = ioc(IOC_READ | IOC_WRITE, b'f', 16, size_of::<PmScanArg>());

/// `struct uffdio_api`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct UffdioApi {
    api: u64,
    features: u64,
    ioctls: u64,
}

/// `struct uffdio_range`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct UffdioRange {
    start: u64,
    len: u64,
}

/// `struct uffdio_register`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct UffdioRegister {
    range: UffdioRange,
    mode: u64,
    ioctls: u64,
}

/// `struct uffdio_writeprotect`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct UffdioWriteprotect {
    range: UffdioRange,
    mode: u64,
}

/// `struct page_region`: one run `[start, end)` of pages sharing `categories`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct PageRegion {
    start: u64,
    end: u64,
    categories: u64,
}

/// `struct pm_scan_arg`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct PmScanArg {
    size: u64,
    flags: u64,
    start: u64,
    end: u64,
    walk_end: u64,
    vec: u64,
    vec_len: u64,
    max_pages: u64,
    category_inverted: u64,
    category_mask: u64,
    category_anyof_mask: u64,
    return_mask: u64,
}

/// Regions the `PAGEMAP_SCAN` output buffer holds (one mapping, reused).
const SCAN_REGIONS: usize = 4096;

// ---------------------------------------------------------------------------------------
// Thin syscall wrappers.

/// Marker for the ioctl argument structs above.
///
/// # Safety
/// Implementors are `#[repr(C)]` plain-data structs matching a kernel ABI struct.
unsafe trait IoctlArg {}
// SAFETY: all are #[repr(C)] structs of u64 fields matching the kernel's definitions
// (checked by the layout tests below).
unsafe impl IoctlArg for UffdioApi {}
// SAFETY: as above.
unsafe impl IoctlArg for UffdioRange {}
// SAFETY: as above.
unsafe impl IoctlArg for UffdioRegister {}
// SAFETY: as above.
unsafe impl IoctlArg for UffdioWriteprotect {}
// SAFETY: as above.
unsafe impl IoctlArg for PmScanArg {}

/// `ioctl(fd, request, arg)`, retried on `EINTR` and `EAGAIN`; returns the result.
///
/// # Safety
/// `request` must be an ioctl of `fd` that takes a pointer to a `T`, and any pointers in
/// `arg` must satisfy that ioctl's contract (memory the kernel writes must be ours).
unsafe fn ioctl_with<T: IoctlArg>(
    fd: &OwnedFd,
    request: libc::Ioctl,
    arg: &mut T,
) -> io::Result<libc::c_int> {
    loop {
        // SAFETY: the caller guarantees `request` takes a `*mut T`; `arg` is a live,
        // exclusive T for the duration of the call.
        let rc = unsafe { libc::ioctl(fd.as_raw_fd(), request, arg as *mut T) };
        if rc >= 0 {
            return Ok(rc);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) | Some(libc::EAGAIN) => continue,
            _ => return Err(e),
        }
    }
}

fn userfaultfd(flags: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: userfaultfd takes an int of flags and returns a new fd or -1; no memory is
    // passed.
    let fd = unsafe { libc::syscall(libc::SYS_userfaultfd, flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = libc::c_int::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: the kernel just returned this fd to us and nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn open_pagemap() -> io::Result<OwnedFd> {
    let path = b"/proc/self/pagemap\0";
    // SAFETY: `path` is NUL-terminated; open has no other memory preconditions.
    let fd = unsafe { libc::open(path.as_ptr().cast(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this fd to us and nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The running kernel's release ("6.18.44-..."), for error messages.
pub(crate) fn kernel_release() -> String {
    // SAFETY: zeroed utsname is valid (arrays of c_char).
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a valid out-pointer.
    if unsafe { libc::uname(&mut u) } != 0 {
        return "unknown".to_owned();
    }
    let bytes: Vec<u8> = u
        .release
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn unsupported(reason: String) -> DirtyError {
    DirtyError::Unsupported {
        backend: Backend::Uffd,
        reason,
    }
}

fn os_error(op: &'static str, source: io::Error) -> DirtyError {
    DirtyError::Os {
        backend: Backend::Uffd,
        op,
        source,
    }
}

fn uffd_range(r: PageRange) -> UffdioRange {
    UffdioRange {
        start: r.start.start().as_usize() as u64,
        len: r.len_bytes() as u64,
    }
}

// ---------------------------------------------------------------------------------------
// The tracker.

/// userfaultfd async write-protect + `PAGEMAP_SCAN` tracking.
#[derive(Debug)]
pub struct UffdTracker {
    uffd: OwnedFd,
    pagemap: OwnedFd,
    /// The ranges registered with (and armed through) `uffd`.
    registered: MmapVec<PageRange>,
    /// `PAGEMAP_SCAN` output: `SCAN_REGIONS` `PageRegion`s.
    scan_buf: Mapping,
    stats: TrackerStats,
}

impl UffdTracker {
    /// Open a userfaultfd with asynchronous write-protection and check `PAGEMAP_SCAN`;
    /// `Unsupported` says precisely what this kernel lacks.
    pub fn open() -> Result<UffdTracker, DirtyError> {
        let release = kernel_release();
        let uffd = open_uffd(&release)?;

        let wanted = UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED;
        let mut api = UffdioApi {
            api: UFFD_API,
            features: wanted,
            ioctls: 0,
        };
        // SAFETY: UFFDIO_API takes a struct uffdio_api, which UffdioApi mirrors.
        if let Err(e) = unsafe { ioctl_with(&uffd, UFFDIO_API, &mut api) } {
            if e.raw_os_error() != Some(libc::EINVAL) {
                return Err(os_error("UFFDIO_API", e));
            }
            return Err(unsupported(missing_features_reason(wanted, &release)));
        }
        if api.features & wanted != wanted {
            return Err(unsupported(format!(
                "UFFDIO_API accepted but did not grant {} (features 0x{:x}; kernel {release})",
                feature_names(wanted & !api.features),
                api.features
            )));
        }

        let pagemap = match open_pagemap() {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                return Err(unsupported(
                    "/proc/self/pagemap does not exist (is /proc mounted?)".to_owned(),
                ))
            }
            Err(e) => return Err(os_error("open(/proc/self/pagemap)", e)),
        };
        let scan_buf = Mapping::new(SCAN_REGIONS * size_of::<PageRegion>())
            .map_err(|e| os_error("mmap(PAGEMAP_SCAN buffer)", e))?;

        let tracker = UffdTracker {
            uffd,
            pagemap,
            registered: MmapVec::new(),
            scan_buf,
            stats: TrackerStats::default(),
        };
        // Probe PAGEMAP_SCAN on our own buffer (plain reporting, no write-protection).
        let probe = PageRange::new(
            Page::containing(Address::from_usize(tracker.scan_buf.start())),
            1,
        );
        if let Err(e) = tracker.scan(probe, 0, |_| ()) {
            return Err(match e.raw_os_error() {
                Some(libc::ENOTTY) | Some(libc::EINVAL) => unsupported(format!(
                    "the PAGEMAP_SCAN ioctl on /proc/self/pagemap is missing ({e}); it needs Linux ≥ 6.7, this is {release}"
                )),
                _ => os_error("PAGEMAP_SCAN (probe)", e),
            });
        }
        Ok(tracker)
    }

    /// Walk `range` with `PAGEMAP_SCAN` (`flags` added to the written-pages query), calling
    /// `f` on every written run; loops until the kernel has walked the whole range.
    fn scan(&self, range: PageRange, flags: u64, mut f: impl FnMut(PageRange)) -> io::Result<()> {
        let end = range.end().as_usize() as u64;
        let mut start = range.start.start().as_usize() as u64;
        let buf = self.scan_buf.start() as *const PageRegion;
        while start < end {
            let mut arg = PmScanArg {
                size: size_of::<PmScanArg>() as u64,
                flags,
                start,
                end,
                vec: buf as u64,
                vec_len: SCAN_REGIONS as u64,
                category_mask: PAGE_IS_WRITTEN,
                return_mask: PAGE_IS_WRITTEN,
                ..PmScanArg::default()
            };
            // SAFETY: PAGEMAP_SCAN takes a struct pm_scan_arg; `vec` points at our own
            // mapping of SCAN_REGIONS page_regions, which the kernel may fill, and nothing
            // else reads or writes it during the call (&self is not Sync-shared: the
            // tracker is used by one thread at a time).
            let n = unsafe { ioctl_with(&self.pagemap, PAGEMAP_SCAN, &mut arg) }?;
            let n = usize::try_from(n)
                .expect("ioctl_with returns only non-negative counts")
                .min(SCAN_REGIONS);
            // SAFETY: the kernel wrote `n` initialised page_regions at the start of our
            // buffer; PageRegion mirrors struct page_region and has no invalid bit patterns.
            let regions = unsafe { std::slice::from_raw_parts(buf, n) };
            for r in regions {
                let first = Page::containing(Address::from_usize(r.start as usize));
                let n_pages = ((r.end - r.start) as usize).div_ceil(BYTES_IN_PAGE);
                f(PageRange::new(first, n_pages));
            }
            if arg.walk_end <= start || arg.walk_end > end {
                // No progress (or nonsense) would loop forever: report it as a failure.
                return Err(io::Error::from_raw_os_error(libc::EIO));
            }
            start = arg.walk_end;
        }
        Ok(())
    }

    fn unregister_all(&mut self) -> Result<(), DirtyError> {
        let mut result = Ok(());
        for r in self.registered.as_slice() {
            let mut range = uffd_range(*r);
            // SAFETY: UFFDIO_UNREGISTER takes a struct uffdio_range, which UffdioRange mirrors.
            if let Err(e) = unsafe { ioctl_with(&self.uffd, UFFDIO_UNREGISTER, &mut range) } {
                if result.is_ok() {
                    result = Err(os_error("UFFDIO_UNREGISTER", e));
                }
            }
        }
        self.registered.clear();
        result
    }

    /// Register `r` and write-protect it.
    fn register_protected(&mut self, r: PageRange) -> Result<(), DirtyError> {
        let mut reg = UffdioRegister {
            range: uffd_range(r),
            mode: UFFDIO_REGISTER_MODE_WP,
            ioctls: 0,
        };
        // SAFETY: UFFDIO_REGISTER takes a struct uffdio_register, which UffdioRegister
        // mirrors.
        unsafe { ioctl_with(&self.uffd, UFFDIO_REGISTER, &mut reg) }
            .map_err(|e| os_error("UFFDIO_REGISTER(MODE_WP)", e))?;
        if let Err(e) = self.write_protect(r) {
            let mut range = uffd_range(r);
            // SAFETY: UFFDIO_UNREGISTER takes a struct uffdio_range, which UffdioRange
            // mirrors. Should it fail, closing the fd unregisters the range.
            let _ = unsafe { ioctl_with(&self.uffd, UFFDIO_UNREGISTER, &mut range) };
            return Err(e);
        }
        Ok(())
    }

    /// Write-protect the registered range `r`.
    fn write_protect(&self, r: PageRange) -> Result<(), DirtyError> {
        let mut wp = UffdioWriteprotect {
            range: uffd_range(r),
            mode: UFFDIO_WRITEPROTECT_MODE_WP,
        };
        // SAFETY: UFFDIO_WRITEPROTECT takes a struct uffdio_writeprotect, which
        // UffdioWriteprotect mirrors.
        unsafe { ioctl_with(&self.uffd, UFFDIO_WRITEPROTECT, &mut wp) }
            .map(|_| ())
            .map_err(|e| os_error("UFFDIO_WRITEPROTECT(MODE_WP)", e))
    }

    fn register_all(&mut self, ranges: &[PageRange]) -> Result<(), DirtyError> {
        self.registered
            .reserve(ranges.len())
            .map_err(|e| os_error("mmap(registered ranges)", e))?;
        for r in ranges {
            let mut reg = UffdioRegister {
                range: uffd_range(*r),
                mode: UFFDIO_REGISTER_MODE_WP,
                ioctls: 0,
            };
            // SAFETY: UFFDIO_REGISTER takes a struct uffdio_register, which UffdioRegister
            // mirrors.
            let registered = unsafe { ioctl_with(&self.uffd, UFFDIO_REGISTER, &mut reg) };
            let was_registered = registered.is_ok();
            let error = match registered {
                Err(e) => Some(os_error("UFFDIO_REGISTER(MODE_WP)", e)),
                Ok(_) if reg.ioctls & (1 << UFFDIO_WRITEPROTECT_NR) == 0 => Some(unsupported(format!(
                    "UFFDIO_REGISTER(MODE_WP) of {:?}+{} pages does not offer UFFDIO_WRITEPROTECT (ioctls 0x{:x})",
                    r.start, r.n_pages, reg.ioctls
                ))),
                Ok(_) => None,
            };
            if was_registered {
                self.registered
                    .push_within_capacity(*r)
                    .expect("capacity reserved above");
            }
            if let Some(e) = error {
                // Undo what was registered. Should that fail too, the registration error is
                // still the one to report: closing the fd (on drop) unregisters the rest.
                return match self.unregister_all() {
                    Ok(()) | Err(_) => Err(e),
                };
            }
        }
        Ok(())
    }
}

fn open_uffd(release: &str) -> Result<OwnedFd, DirtyError> {
    let base = libc::O_CLOEXEC | libc::O_NONBLOCK;
    let first = userfaultfd(base | UFFD_USER_MODE_ONLY);
    let result = match first {
        // Kernels before 5.11 reject the unknown UFFD_USER_MODE_ONLY flag.
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => userfaultfd(base),
        other => other,
    };
    result.map_err(|e| match e.raw_os_error() {
        Some(libc::ENOSYS) => unsupported(format!(
            "the userfaultfd system call is missing (kernel {release} built without CONFIG_USERFAULTFD)"
        )),
        Some(libc::EPERM) => unsupported(
            "userfaultfd is denied: vm.unprivileged_userfaultfd is 0 and the process lacks CAP_SYS_PTRACE"
                .to_owned(),
        ),
        _ => os_error("userfaultfd(O_CLOEXEC|O_NONBLOCK|UFFD_USER_MODE_ONLY)", e),
    })
}

fn feature_names(features: u64) -> String {
    let mut names = Vec::new();
    if features & UFFD_FEATURE_WP_ASYNC != 0 {
        names.push("UFFD_FEATURE_WP_ASYNC (Linux ≥ 6.7)");
    }
    if features & UFFD_FEATURE_WP_UNPOPULATED != 0 {
        names.push("UFFD_FEATURE_WP_UNPOPULATED (Linux ≥ 6.4)");
    }
    names.join(" and ")
}

/// UFFDIO_API refused the features: ask a fresh fd what the kernel does offer.
fn missing_features_reason(wanted: u64, release: &str) -> String {
    let offered = open_uffd(release).ok().and_then(|fd| {
        let mut api = UffdioApi {
            api: UFFD_API,
            features: 0,
            ioctls: 0,
        };
        // SAFETY: UFFDIO_API takes a struct uffdio_api, which UffdioApi mirrors.
        unsafe { ioctl_with(&fd, UFFDIO_API, &mut api) }
            .ok()
            .map(|_| api.features)
    });
    match offered {
        Some(features) => format!(
            "UFFDIO_API refused {}: kernel {release} offers features 0x{features:x}",
            feature_names(wanted & !features)
        ),
        None => format!(
            "UFFDIO_API refused {} (kernel {release})",
            feature_names(wanted)
        ),
    }
}

impl DirtyTracker for UffdTracker {
    fn backend(&self) -> Backend {
        Backend::Uffd
    }

    fn sees_kernel_writes(&self) -> bool {
        true
    }

    fn arm(&mut self, ranges: &[PageRange]) -> Result<(), DirtyError> {
        let same = self.registered.as_slice() == ranges;
        if !same {
            self.unregister_all()?;
            self.register_all(ranges)?;
        }
        for r in ranges {
            self.write_protect(*r)?;
        }
        self.stats.arms += 1;
        Ok(())
    }

    fn collect_and_rearm(&mut self, out: &mut DirtySet) -> Result<(), DirtyError> {
        let mut reported = 0u64;
        let mut result = Ok(());
        for i in 0..self.registered.len() {
            let range = self.registered.as_slice()[i];
            result = self
                .scan(range, PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC, |run| {
                    out.push_range(run);
                    reported += run.n_pages as u64;
                })
                .map_err(|e| os_error("PAGEMAP_SCAN(PM_SCAN_WP_MATCHING)", e));
            if result.is_err() {
                break;
            }
        }
        self.stats.pages_reported += reported;
        self.stats.collections += 1;
        result
    }

    fn collect_and_disarm(&mut self, out: &mut DirtySet) -> Result<(), DirtyError> {
        let collected = self.collect_disarm_later(out).map(|_| ());
        let disarmed = self.unregister_all();
        collected.and(disarmed)
    }

    /// Measured on GCBench (scale 16): the read-only PAGEMAP_SCAN takes ~50 µs, the
    /// UFFDIO_UNREGISTER that follows 0.8–2 ms (it walks the page tables under the mmap
    /// lock to drop the write protection), so the finish leaves it for after the pause.
    /// Pages stay write-protected until then; with `UFFD_FEATURE_WP_ASYNC` the kernel
    /// resolves a write to one by itself.
    fn collect_disarm_later(&mut self, out: &mut DirtySet) -> Result<bool, DirtyError> {
        // Read the written state without write-protecting again (no PM_SCAN_WP_MATCHING):
        // the unregister makes every page writable anyway.
        let mut reported = 0u64;
        let mut result = Ok(());
        for i in 0..self.registered.len() {
            let range = self.registered.as_slice()[i];
            result = self
                .scan(range, 0, |run| {
                    out.push_range(run);
                    reported += run.n_pages as u64;
                })
                .map_err(|e| os_error("PAGEMAP_SCAN", e));
            if result.is_err() {
                break;
            }
        }
        self.stats.pages_reported += reported;
        self.stats.collections += 1;
        result.map(|()| true)
    }

    fn disarm(&mut self) -> Result<(), DirtyError> {
        self.unregister_all()
    }

    /// `PAGEMAP_SCAN` with `PM_SCAN_WP_MATCHING` reports and re-protects only the pages
    /// written, and a grown range only registers and protects its new tail: far less
    /// page-table work than unregistering, registering and protecting the whole heap
    /// (measured on GCBench 16: pre-clean stops of up to 6 ms, nearly all of it that).
    fn collect_and_grow(
        &mut self,
        out: &mut DirtySet,
        ranges: &[PageRange],
    ) -> Result<bool, DirtyError> {
        let fits = self.registered.len() == ranges.len()
            && self
                .registered
                .as_slice()
                .iter()
                .zip(ranges)
                .all(|(old, new)| old.start == new.start && new.n_pages >= old.n_pages);
        if !fits {
            return Ok(false);
        }
        self.collect_and_rearm(out)?;
        for (i, &new) in ranges.iter().enumerate() {
            let old = self.registered.as_slice()[i];
            if new.n_pages == old.n_pages {
                continue;
            }
            let tail = PageRange::new(old.start.plus_pages(old.n_pages), new.n_pages - old.n_pages);
            self.register_protected(tail)?;
            self.registered.as_mut_slice()[i] = new;
        }
        self.stats.arms += 1;
        Ok(true)
    }

    fn stats(&self) -> TrackerStats {
        self.stats
    }
}

impl Drop for UffdTracker {
    fn drop(&mut self) {
        // Closing the userfaultfd (next) unregisters everything anyway; a failed explicit
        // unregister is still worth a line on stderr.
        if let Err(e) = self.unregister_all() {
            eprintln!("dunegc: dropping a uffd dirty tracker: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::offset_of;

    #[test]
    fn struct_layouts_match_the_kernel() {
        assert_eq!(size_of::<UffdioApi>(), 24);
        assert_eq!(size_of::<UffdioRange>(), 16);
        assert_eq!(size_of::<UffdioRegister>(), 32);
        assert_eq!(offset_of!(UffdioRegister, mode), 16);
        assert_eq!(offset_of!(UffdioRegister, ioctls), 24);
        assert_eq!(size_of::<UffdioWriteprotect>(), 24);
        assert_eq!(offset_of!(UffdioWriteprotect, mode), 16);
        assert_eq!(size_of::<PageRegion>(), 24);
        assert_eq!(offset_of!(PageRegion, categories), 16);
        assert_eq!(size_of::<PmScanArg>(), 96);
        assert_eq!(offset_of!(PmScanArg, walk_end), 32);
        assert_eq!(offset_of!(PmScanArg, vec), 40);
        assert_eq!(offset_of!(PmScanArg, max_pages), 56);
        assert_eq!(offset_of!(PmScanArg, category_mask), 72);
        assert_eq!(offset_of!(PmScanArg, return_mask), 88);
    }

    #[test]
    fn ioctl_numbers_match_the_c_headers() {
        // Values printed by a C program using <linux/userfaultfd.h> and _IOWR('f', 16,
        // struct pm_scan_arg) on x86_64.
        assert_eq!(UFFDIO_API, 0xc018_aa3f);
        assert_eq!(UFFDIO_REGISTER, 0xc020_aa00);
        assert_eq!(UFFDIO_UNREGISTER, 0x8010_aa01);
        assert_eq!(UFFDIO_WRITEPROTECT, 0xc018_aa06);
        assert_eq!(PAGEMAP_SCAN, 0xc060_6610);
    }

    #[test]
    fn feature_names_say_what_is_missing() {
        assert_eq!(
            feature_names(UFFD_FEATURE_WP_ASYNC),
            "UFFD_FEATURE_WP_ASYNC (Linux ≥ 6.7)"
        );
        assert!(
            feature_names(UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED).contains(" and ")
        );
    }
}
