//! Anonymous memory mappings owned by a value, and a growable vector on top of them.

use std::io;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Bytes of every [`Mapping`] made so far (never decreases; unmapping does not count).
static OBTAINED_FROM_OS: AtomicUsize = AtomicUsize::new(0);

/// Bytes of address space gc-core has mapped so far, all mappings together (the heap's
/// reservation, side tables, mark stacks, trackers' buffers), whether or not they are
/// still mapped or touched (bdwgc's `GC_get_obtained_from_os_bytes`; never decreases).
pub fn obtained_from_os_bytes() -> usize {
    OBTAINED_FROM_OS.load(Ordering::Relaxed)
}

/// Bytes in a hardware base page on x86_64 Linux.
pub const BYTES_IN_PAGE: usize = 4096;
/// log2 of [`BYTES_IN_PAGE`].
pub const LOG_BYTES_IN_PAGE: usize = 12;

/// Round `n` up to a multiple of the page size.
pub const fn round_up_to_page(n: usize) -> usize {
    (n + BYTES_IN_PAGE - 1) & !(BYTES_IN_PAGE - 1)
}

/// Some heap of the process has executable pages ([`make_executable`]).
static EXECUTABLE_HEAP: AtomicBool = AtomicBool::new(false);

/// Make `[start, start + len_bytes)` (page-aligned memory of this process that the caller
/// owns) readable, writable and executable, and from now on let [`heap_prot`] add
/// `PROT_EXEC`: the write-protection of the dirty tracker then keeps the pages executable
/// (bdwgc's `GC_set_pages_executable`). Process-wide: after one heap asked for it, every
/// heap's tracked pages get `PROT_EXEC` back when the tracker restores them.
pub fn make_executable(start: usize, len_bytes: usize) -> io::Result<()> {
    EXECUTABLE_HEAP.store(true, Ordering::Release);
    // SAFETY: the caller owns the range; adding PROT_EXEC changes no byte of it.
    let rc = unsafe {
        libc::mprotect(
            start as *mut libc::c_void,
            len_bytes,
            libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The protection for heap pages: `prot` plus `PROT_EXEC` once [`make_executable`] ran.
/// Async-signal-safe (one atomic load).
pub fn heap_prot(prot: libc::c_int) -> libc::c_int {
    if EXECUTABLE_HEAP.load(Ordering::Acquire) {
        prot | libc::PROT_EXEC
    } else {
        prot
    }
}

/// An anonymous private read/write mapping, unmapped on drop.
///
/// Made with `MAP_NORESERVE`: pages cost memory only once touched, so large reservations
/// (side tables, heap spaces) are cheap.
#[derive(Debug)]
pub struct Mapping {
    start: NonNull<u8>,
    len_bytes: usize,
}

// SAFETY: a Mapping is a plain owned range of process memory; the owner decides how the
// bytes are shared, exactly as with a Box<[u8]>.
unsafe impl Send for Mapping {}
// SAFETY: &Mapping only hands out the address and length; no interior mutation happens
// through it.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Map `len_bytes` (rounded up to whole pages) of zeroed, readable and writable memory.
    pub fn new(len_bytes: usize) -> io::Result<Mapping> {
        Self::with_alignment(len_bytes, BYTES_IN_PAGE)
    }

    /// Like [`Mapping::new`], but the start address is a multiple of `align_bytes`
    /// (a power of two, at least a page).
    pub fn with_alignment(len_bytes: usize, align_bytes: usize) -> io::Result<Mapping> {
        assert!(align_bytes.is_power_of_two() && align_bytes >= BYTES_IN_PAGE);
        let len_bytes = round_up_to_page(len_bytes.max(1));
        let over = len_bytes
            .checked_add(align_bytes - BYTES_IN_PAGE)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOMEM))?;
        // SAFETY: an anonymous mapping at a kernel-chosen address aliases no existing memory.
        let raw = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                over,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if raw == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let raw = raw as usize;
        let start = (raw + align_bytes - 1) & !(align_bytes - 1);
        let head = start - raw;
        let tail = over - head - len_bytes;
        if head > 0 {
            // SAFETY: [raw, raw+head) is part of the mapping just made and nothing uses it.
            unsafe { libc::munmap(raw as *mut libc::c_void, head) };
        }
        if tail > 0 {
            // SAFETY: the tail past start+len_bytes is ours and unused, as above.
            unsafe { libc::munmap((start + len_bytes) as *mut libc::c_void, tail) };
        }
        OBTAINED_FROM_OS.fetch_add(len_bytes, Ordering::Relaxed);
        Ok(Mapping {
            start: NonNull::new(start as *mut u8).expect("mmap never returns address 0 here"),
            len_bytes,
        })
    }

    /// First byte of the mapping.
    pub fn start(&self) -> usize {
        self.start.as_ptr() as usize
    }

    /// Length in bytes (a multiple of the page size).
    pub fn len_bytes(&self) -> usize {
        self.len_bytes
    }

    /// One past the last byte.
    pub fn end(&self) -> usize {
        self.start() + self.len_bytes
    }

    /// Give the physical pages of `[start, start+len_bytes)` back to the kernel; they read
    /// as zero afterwards. The range must lie inside the mapping and be page-aligned.
    pub fn discard(&self, start: usize, len_bytes: usize) {
        debug_assert!(start >= self.start() && start + len_bytes <= self.end());
        debug_assert!(
            start.is_multiple_of(BYTES_IN_PAGE) && len_bytes.is_multiple_of(BYTES_IN_PAGE)
        );
        // SAFETY: the range is inside our own anonymous mapping; MADV_DONTNEED on private
        // anonymous memory only zeroes it, which the caller asked for.
        unsafe { libc::madvise(start as *mut libc::c_void, len_bytes, libc::MADV_DONTNEED) };
    }
}

/// Give the host pages of `[start, start + len_bytes)` (page-aligned, inside a private
/// anonymous read/write mapping of the caller) back to the kernel with
/// `madvise(MADV_DONTNEED)`: they read as zero afterwards and are faulted in afresh on
/// the next touch. Returns whether the kernel did it.
pub fn discard_pages(start: usize, len_bytes: usize) -> bool {
    debug_assert!(start.is_multiple_of(BYTES_IN_PAGE) && len_bytes.is_multiple_of(BYTES_IN_PAGE));
    if len_bytes == 0 {
        return true;
    }
    // SAFETY: the caller passes a range of its own private anonymous mapping holding
    // nothing it still needs; MADV_DONTNEED there only replaces the pages by zero pages.
    unsafe { libc::madvise(start as *mut libc::c_void, len_bytes, libc::MADV_DONTNEED) == 0 }
}

/// Bytes the heap populates at once when it grows in Dune mode ([`populate_write`]): one
/// 2 MiB chunk, the size of dune-hw's on-demand fault window.
pub const BYTES_IN_POPULATE_CHUNK: usize = 2 << 20;

/// `madvise(MADV_POPULATE_WRITE)` failed with `EINVAL` once (a kernel before 5.14): not
/// tried again.
static POPULATE_UNSUPPORTED: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// Faults in host pages for `[start, start + len_bytes)` (page-aligned, inside a private
/// anonymous read/write mapping of the caller) with one `madvise(MADV_POPULATE_WRITE)`,
/// without changing their contents. Inside Dune the call is forwarded to the host, so the
/// guest's first writes there find the host pages already present (no host fault under
/// the shadow MMU for each). Best effort: returns whether the kernel did it.
pub fn populate_write(start: usize, len_bytes: usize) -> bool {
    use std::sync::atomic::Ordering;
    debug_assert!(start.is_multiple_of(BYTES_IN_PAGE) && len_bytes.is_multiple_of(BYTES_IN_PAGE));
    if len_bytes == 0 || POPULATE_UNSUPPORTED.load(Ordering::Relaxed) {
        return false;
    }
    let t0 = std::time::Instant::now();
    // SAFETY: the caller passes a range of its own private anonymous read/write mapping;
    // MADV_POPULATE_WRITE only faults its pages in (writable), keeping their contents.
    let rc = unsafe {
        libc::madvise(
            start as *mut libc::c_void,
            len_bytes,
            libc::MADV_POPULATE_WRITE,
        )
    };
    if rc != 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
        POPULATE_UNSUPPORTED.store(true, Ordering::Relaxed);
    }
    if rc == 0 {
        super::ledger::populate((len_bytes / BYTES_IN_PAGE) as u64, t0.elapsed());
    }
    rc == 0
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: we own this mapping and nothing borrows it past our lifetime.
        unsafe { libc::munmap(self.start.as_ptr().cast(), self.len_bytes) };
    }
}

/// A growable array of `Copy` values in its own mapping.
///
/// Used for the collector's internal lists (mark stack, dirty pages, thread tables) so that
/// they never allocate from the collected heap or from libc while the world is stopped.
pub struct MmapVec<T: Copy> {
    map: Option<Mapping>,
    /// The mapping's start (0 while there is none): the push and pop fast paths use it
    /// without unwrapping `map`.
    base: usize,
    len: usize,
    cap: usize,
    _marker: PhantomData<T>,
}

impl<T: Copy> Default for MmapVec<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Copy> std::fmt::Debug for MmapVec<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MmapVec")
            .field("len", &self.len)
            .field("cap", &self.cap)
            .finish()
    }
}

impl<T: Copy> MmapVec<T> {
    /// An empty vector; maps nothing until the first push.
    pub const fn new() -> Self {
        MmapVec {
            map: None,
            base: 0,
            len: 0,
            cap: 0,
            _marker: PhantomData,
        }
    }

    /// An empty vector with room for at least `cap` elements.
    pub fn with_capacity(cap: usize) -> io::Result<Self> {
        let mut v = Self::new();
        v.reserve(cap)?;
        Ok(v)
    }

    /// Number of elements.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when there are no elements.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Make room for `additional` more elements without further mapping.
    pub fn reserve(&mut self, additional: usize) -> io::Result<()> {
        let need = self
            .len
            .checked_add(additional)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOMEM))?;
        if need <= self.cap {
            return Ok(());
        }
        let new_cap = need
            .max(self.cap * 2)
            .max(BYTES_IN_PAGE / std::mem::size_of::<T>().max(1));
        let bytes = new_cap
            .checked_mul(std::mem::size_of::<T>())
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOMEM))?;
        let map = Mapping::new(bytes)?;
        if let Some(old) = &self.map {
            // SAFETY: both regions are ours, do not overlap, and the old one holds `len`
            // initialised Ts.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    old.start() as *const T,
                    map.start() as *mut T,
                    self.len,
                )
            };
        }
        self.cap = map.len_bytes() / std::mem::size_of::<T>().max(1);
        self.base = map.start();
        self.map = Some(map);
        Ok(())
    }

    /// Append, mapping more memory if needed.
    #[inline]
    pub fn push(&mut self, value: T) -> io::Result<()> {
        if self.push_within_capacity(value).is_ok() {
            return Ok(());
        }
        self.push_growing(value)
    }

    /// [`MmapVec::push`] when the vector is full (out of line: the marker's hot loop
    /// pushes millions of times and maps rarely).
    #[cold]
    #[inline(never)]
    fn push_growing(&mut self, value: T) -> io::Result<()> {
        self.reserve(1)?;
        self.push_within_capacity(value)
            .map_err(|_| io::Error::from_raw_os_error(libc::ENOMEM))
    }

    /// Append without mapping; gives the value back when full.
    #[inline]
    pub fn push_within_capacity(&mut self, value: T) -> Result<(), T> {
        if self.len >= self.cap {
            return Err(value);
        }
        // SAFETY: len < cap, so the slot is inside the mapping (cap > 0 means `base` is
        // its start) and properly aligned.
        unsafe { (self.base as *mut T).add(self.len).write(value) };
        self.len += 1;
        Ok(())
    }

    /// Remove and return the last element.
    #[inline]
    pub fn pop(&mut self) -> Option<T> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        // SAFETY: the slot at the old `len - 1` is initialised and inside the mapping
        // (len > 0 means there is one, starting at `base`).
        Some(unsafe { (self.base as *const T).add(self.len).read() })
    }

    /// Drop all elements, keeping the mapping.
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Shorten to `len` elements.
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// The elements.
    pub fn as_slice(&self) -> &[T] {
        match &self.map {
            // SAFETY: the first `len` slots are initialised and the mapping outlives &self.
            Some(m) => unsafe { std::slice::from_raw_parts(m.start() as *const T, self.len) },
            None => &[],
        }
    }

    /// The elements, mutably.
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        match &self.map {
            // SAFETY: as in as_slice, and &mut self gives exclusive access.
            Some(m) => unsafe { std::slice::from_raw_parts_mut(m.start() as *mut T, self.len) },
            None => &mut [],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_mapping_is_aligned_and_zeroed() {
        let m = Mapping::with_alignment(3 * BYTES_IN_PAGE, 1 << 21).unwrap();
        assert_eq!(m.start() % (1 << 21), 0);
        assert_eq!(m.len_bytes(), 3 * BYTES_IN_PAGE);
        // SAFETY: the mapping is readable for its whole length.
        let first = unsafe { *(m.start() as *const u64) };
        assert_eq!(first, 0);
    }

    #[test]
    fn mmapvec_grows_and_keeps_contents() {
        let mut v = MmapVec::<u64>::new();
        for i in 0..100_000u64 {
            v.push(i).unwrap();
        }
        assert_eq!(v.len(), 100_000);
        assert!(v.as_slice().iter().enumerate().all(|(i, &x)| x == i as u64));
        assert_eq!(v.pop(), Some(99_999));
        v.clear();
        assert!(v.is_empty());
    }
}
