//! Small building blocks the collector uses internally. None of them allocate from the
//! collector's own heap or from libc's `malloc`, so they are safe to use while the world
//! is stopped (a stopped thread may hold malloc's lock).

pub mod mmap;
pub mod procmaps;
