//! Small building blocks the collector uses internally. None of them allocate from the
//! collector's own heap or from libc's `malloc`, so they are safe to use while the world
//! is stopped (a stopped thread may hold malloc's lock).

pub mod ledger;
pub mod mmap;
pub mod procmaps;

/// Write a line to stderr without going through std's locked stderr (used from paths
/// that may run inside the allocator).
pub(crate) fn eprintln_raw(s: &str) {
    // SAFETY: writes our buffer to fd 2.
    unsafe {
        libc::write(2, s.as_ptr().cast(), s.len());
        libc::write(2, b"\n".as_ptr().cast(), 1);
    }
}
