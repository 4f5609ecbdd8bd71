//! Backend `soft-dirty`: the kernel's soft-dirty page bits.
//!
//! - arm and collect end with writing `"4"` to `/proc/self/clear_refs`, which clears the
//!   soft-dirty bit of every page and write-protects it in the page tables; the kernel sets
//!   the bit again on the next write (a minor fault the kernel resolves itself).
//! - collect reads `/proc/self/pagemap` (one `u64` per page, bit 55 = soft-dirty) for the
//!   armed ranges in large batches (`pread` of [`PAGEMAP_BATCH`] entries at a time).
//!
//! **`clear_refs` acts on the whole process**, not on the armed ranges: every other user of
//! soft-dirty bits in the process loses its state at each arm and collect. Hence at most
//! one soft-dirty tracker may be open per process; opening a second one is `Unsupported`.
//! (It also makes every page of the process take one extra minor fault after each
//! collection — a cost outside the heap that the benchmarks do not see.)
//!
//! `open` checks that soft-dirty tracking works, as bdwgc does: write a page,
//! `clear_refs`, write it again, and expect bit 55. Kernels built without
//! `CONFIG_MEM_SOFT_DIRTY` accept `clear_refs` but never set the bit: `Unsupported`.
//!
//! Pages never touched since the mapping was made, or pages in a mapping the kernel
//! created after the last `clear_refs`, may read as soft-dirty: false positives only.
//! Kernel writes set the bit like user writes do, so they are seen. Write faults are
//! resolved inside the kernel and not counted.

use super::{Backend, DirtyError, DirtySet, DirtyTracker, TrackerStats};
use crate::address::PageRange;
use crate::util::mmap::{Mapping, MmapVec, BYTES_IN_PAGE};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};

/// Pagemap entries read per `pread` (8 bytes each: 32 KiB, i.e. 16 MiB of address space).
pub const PAGEMAP_BATCH: usize = 4096;

/// Bit 55 of a pagemap entry: the page was written since the last `clear_refs` "4".
pub const PM_SOFT_DIRTY: u64 = 1 << 55;

const BYTES_IN_PAGEMAP_ENTRY: usize = 8;

/// Call `f(first_index, n)` for every run of consecutive soft-dirty entries in `entries`,
/// in order. Pure: the pagemap decoding, unit-tested below.
pub fn for_each_soft_dirty_run(entries: &[u64], mut f: impl FnMut(usize, usize)) {
    let mut run: Option<(usize, usize)> = None;
    for (i, &e) in entries.iter().enumerate() {
        if e & PM_SOFT_DIRTY == 0 {
            continue;
        }
        match &mut run {
            Some((start, n)) if *start + *n == i => *n += 1,
            _ => {
                if let Some((start, n)) = run {
                    f(start, n);
                }
                run = Some((i, 1));
            }
        }
    }
    if let Some((start, n)) = run {
        f(start, n);
    }
}

/// Set while a soft-dirty tracker exists in this process (see the module docs).
static TRACKER_LIVE: AtomicBool = AtomicBool::new(false);

/// Holds [`TRACKER_LIVE`] for as long as it lives.
#[derive(Debug)]
struct LiveToken;

impl LiveToken {
    fn take() -> Option<LiveToken> {
        TRACKER_LIVE
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| LiveToken)
    }
}

impl Drop for LiveToken {
    fn drop(&mut self) {
        TRACKER_LIVE.store(false, Ordering::Release);
    }
}

fn unsupported(reason: String) -> DirtyError {
    DirtyError::Unsupported {
        backend: Backend::SoftDirty,
        reason,
    }
}

fn os_error(op: &'static str, source: io::Error) -> DirtyError {
    DirtyError::Os {
        backend: Backend::SoftDirty,
        op,
        source,
    }
}

fn open_proc(path: &'static [u8], flags: libc::c_int) -> io::Result<OwnedFd> {
    debug_assert_eq!(path.last(), Some(&0));
    // SAFETY: `path` is NUL-terminated (checked above); open has no other preconditions.
    let fd = unsafe { libc::open(path.as_ptr().cast(), flags | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this fd to us and nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Soft-dirty bit tracking through `/proc/self/clear_refs` and `/proc/self/pagemap`.
#[derive(Debug)]
pub struct SoftDirtyTracker {
    clear_refs: OwnedFd,
    pagemap: OwnedFd,
    armed: MmapVec<PageRange>,
    /// `PAGEMAP_BATCH` entries.
    buf: Mapping,
    stats: TrackerStats,
    _live: LiveToken,
}

impl SoftDirtyTracker {
    /// Open the proc files and check that the kernel really keeps soft-dirty bits.
    pub fn open() -> Result<SoftDirtyTracker, DirtyError> {
        // Taken first: the detection below runs clear_refs, which would wipe a live
        // tracker's state.
        let live = LiveToken::take().ok_or_else(|| {
            unsupported(
                "another soft-dirty tracker is open in this process; clear_refs resets soft-dirty bits \
                 process-wide, so two trackers would lose each other's writes"
                    .to_owned(),
            )
        })?;
        let clear_refs =
            open_proc(b"/proc/self/clear_refs\0", libc::O_WRONLY).map_err(|e| {
                match e.raw_os_error() {
                    Some(libc::ENOENT) | Some(libc::EACCES) | Some(libc::EPERM) => unsupported(
                        format!("/proc/self/clear_refs cannot be opened for writing: {e}"),
                    ),
                    _ => os_error("open(/proc/self/clear_refs)", e),
                }
            })?;
        let pagemap = open_proc(b"/proc/self/pagemap\0", libc::O_RDONLY).map_err(|e| {
            match e.raw_os_error() {
                Some(libc::ENOENT) | Some(libc::EACCES) | Some(libc::EPERM) => {
                    unsupported(format!("/proc/self/pagemap cannot be opened: {e}"))
                }
                _ => os_error("open(/proc/self/pagemap)", e),
            }
        })?;
        let buf = Mapping::new(PAGEMAP_BATCH * BYTES_IN_PAGEMAP_ENTRY)
            .map_err(|e| os_error("mmap(pagemap buffer)", e))?;
        let tracker = SoftDirtyTracker {
            clear_refs,
            pagemap,
            armed: MmapVec::new(),
            buf,
            stats: TrackerStats::default(),
            _live: live,
        };
        tracker.check_bits_work()?;
        Ok(tracker)
    }

    /// Write a page, clear, write again: bit 55 must be set.
    fn check_bits_work(&self) -> Result<(), DirtyError> {
        let probe = Mapping::new(BYTES_IN_PAGE).map_err(|e| os_error("mmap(probe page)", e))?;
        let p = probe.start() as *mut u8;
        // SAFETY: `p` is the first byte of our own fresh read/write mapping.
        unsafe { p.write_volatile(1) };
        self.clear_refs()?;
        // SAFETY: as above.
        unsafe { p.write_volatile(2) };
        let mut entry = [0u64; 1];
        read_entries(&self.pagemap, probe.start() / BYTES_IN_PAGE, &mut entry)?;
        if entry[0] & PM_SOFT_DIRTY == 0 {
            return Err(unsupported(format!(
                "pagemap bit 55 (soft-dirty) stayed clear after clear_refs \"4\" and a write: kernel {} \
                 was built without CONFIG_MEM_SOFT_DIRTY",
                super::uffd::kernel_release()
            )));
        }
        Ok(())
    }

    fn clear_refs(&self) -> Result<(), DirtyError> {
        // SAFETY: writes one byte from a static buffer to our own fd.
        let n = unsafe { libc::write(self.clear_refs.as_raw_fd(), b"4".as_ptr().cast(), 1) };
        if n == 1 {
            Ok(())
        } else {
            Err(os_error(
                "write(\"4\" to /proc/self/clear_refs)",
                io::Error::last_os_error(),
            ))
        }
    }
}

/// Fill `out` with the pagemap entries of `out.len()` pages from page number `first`.
fn read_entries(pagemap: &OwnedFd, first: usize, out: &mut [u64]) -> Result<(), DirtyError> {
    let mut done = 0usize;
    while done < out.len() {
        let offset = (first + done) * BYTES_IN_PAGEMAP_ENTRY;
        let offset = libc::off_t::try_from(offset).map_err(|_| {
            os_error(
                "pread(/proc/self/pagemap) offset",
                io::Error::from_raw_os_error(libc::EOVERFLOW),
            )
        })?;
        let want = (out.len() - done) * BYTES_IN_PAGEMAP_ENTRY;
        // SAFETY: the destination is the unfilled tail of `out`, `want` bytes long and
        // exclusively borrowed.
        let n = unsafe {
            libc::pread(
                pagemap.as_raw_fd(),
                out[done..].as_mut_ptr().cast(),
                want,
                offset,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(os_error("pread(/proc/self/pagemap)", e));
        }
        let entries = n as usize / BYTES_IN_PAGEMAP_ENTRY;
        if entries == 0 {
            return Err(os_error(
                "pread(/proc/self/pagemap) read nothing",
                io::Error::from_raw_os_error(libc::EIO),
            ));
        }
        done += entries;
    }
    Ok(())
}

/// The batch buffer as `PAGEMAP_BATCH` entries.
fn batch_of(buf: &mut Mapping) -> &mut [u64] {
    debug_assert!(buf.len_bytes() >= PAGEMAP_BATCH * BYTES_IN_PAGEMAP_ENTRY);
    // SAFETY: the mapping holds at least PAGEMAP_BATCH u64s (zero-initialised, page-aligned)
    // and the &mut borrow makes the slice the only view of it.
    unsafe { std::slice::from_raw_parts_mut(buf.start() as *mut u64, PAGEMAP_BATCH) }
}

impl DirtyTracker for SoftDirtyTracker {
    fn backend(&self) -> Backend {
        Backend::SoftDirty
    }

    fn sees_kernel_writes(&self) -> bool {
        true
    }

    fn arm(&mut self, ranges: &[PageRange]) -> Result<(), DirtyError> {
        self.armed.clear();
        self.armed
            .reserve(ranges.len())
            .map_err(|e| os_error("mmap(armed ranges)", e))?;
        for r in ranges {
            self.armed
                .push_within_capacity(*r)
                .expect("capacity reserved above");
        }
        self.clear_refs()?;
        self.stats.arms += 1;
        Ok(())
    }

    fn collect_and_rearm(&mut self, out: &mut DirtySet) -> Result<(), DirtyError> {
        let mut reported = 0u64;
        for i in 0..self.armed.len() {
            let range = self.armed.as_slice()[i];
            let mut done = 0usize;
            while done < range.n_pages {
                let n = (range.n_pages - done).min(PAGEMAP_BATCH);
                let first = range.start.plus_pages(done);
                let batch = &mut batch_of(&mut self.buf)[..n];
                read_entries(&self.pagemap, first.number(), batch)?;
                for_each_soft_dirty_run(batch, |start, len| {
                    out.push_range(PageRange::new(first.plus_pages(start), len));
                    reported += len as u64;
                });
                done += n;
            }
        }
        self.clear_refs()?;
        self.stats.pages_reported += reported;
        self.stats.collections += 1;
        Ok(())
    }

    fn disarm(&mut self) -> Result<(), DirtyError> {
        // Soft-dirty tracking never changes what the program may do: nothing to restore.
        self.armed.clear();
        Ok(())
    }

    fn stats(&self) -> TrackerStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs(entries: &[u64]) -> Vec<(usize, usize)> {
        let mut v = Vec::new();
        for_each_soft_dirty_run(entries, |s, n| v.push((s, n)));
        v
    }

    const PRESENT: u64 = 1 << 63;
    const SWAPPED: u64 = 1 << 62;
    const PFN: u64 = 0x1234;

    #[test]
    fn decodes_bit_55_only() {
        let sd = PM_SOFT_DIRTY;
        assert_eq!(runs(&[]), vec![]);
        assert_eq!(runs(&[PRESENT | PFN, 0, SWAPPED]), vec![]);
        assert_eq!(runs(&[PRESENT | sd | PFN]), vec![(0, 1)]);
        // A swapped-out page keeps its soft-dirty bit; holes in a new mapping report it too.
        assert_eq!(
            runs(&[
                sd,
                PRESENT | sd,
                SWAPPED | sd,
                PRESENT,
                0,
                sd,
                PRESENT | sd | PFN
            ]),
            vec![(0, 3), (5, 2)]
        );
        // Other flag bits (exclusive 56, uffd-wp 57, file 61) never count.
        assert_eq!(runs(&[PRESENT | (1 << 56) | (1 << 57) | (1 << 61)]), vec![]);
    }

    #[test]
    fn batch_covers_a_lot_of_address_space() {
        assert_eq!(PAGEMAP_BATCH * BYTES_IN_PAGE, 16 << 20);
    }
}
