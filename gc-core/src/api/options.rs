//! Heap options: a builder, and the `DUNEGC_*` environment variables.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `DUNEGC_INITIAL_HEAP_SIZE` | allocation allowed before the first collection (and the least between two) | 4M |
//! | `DUNEGC_MAX_HEAP_SIZE` | address space reserved per space (normal, atomic, malloc) | 16G |
//! | `DUNEGC_FREE_SPACE_DIVISOR` | budget between collections = 6 × live / divisor (bdwgc's knob) | 3 |
//! | `DUNEGC_INCREMENTAL` | `1`: incremental (mostly-parallel) marking | 0 |
//! | `DUNEGC_DIRTY` | `auto`, `none`, `mprotect`, `soft-dirty`, `uffd`, `dune`; setting it (other than `none`) implies incremental | auto |
//! | `DUNEGC_PRINT_STATS` | `1`: print the global heap's statistics to stderr at exit | 0 |
//! | `DUNEGC_MALLOC_COLLECTABLE` | `0`: global-allocator memory is never reclaimed by the collector, only by `dealloc` | 1 |
//!
//! Sizes take `K`, `M` or `G` suffixes. Reading them allocates nothing, so the global heap
//! can be configured from inside the first allocation of the program.

use crate::dirty::{Backend, BackendChoice};
use crate::error::GcError;
use crate::heap::Heap;
use std::ffi::CStr;

/// How a heap behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// Allocation before the first collection, and the least allowed between two.
    pub initial_heap_bytes: usize,
    /// Address space reserved for each of the three spaces.
    pub max_space_bytes: usize,
    /// bdwgc's free-space divisor: larger collects more often with a smaller heap.
    pub free_space_divisor: usize,
    /// Incremental marking driven by the dirty tracker.
    pub incremental: bool,
    /// Which dirty tracker drives incremental marking.
    pub dirty: BackendChoice,
    /// Print statistics (`Heap::print_stats`) when asked to by the program.
    pub print_stats: bool,
    /// Global-allocator memory that becomes unreachable is reclaimed (leaks are collected).
    pub malloc_collectable: bool,
    /// Least bytes an incremental mark step scans (it scans 4 bytes per byte allocated
    /// since the last step, at least this many).
    pub mark_step_bytes: usize,
    /// Bytes an incremental step scans per byte allocated since the previous step.
    pub mark_rate: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            initial_heap_bytes: 4 << 20,
            max_space_bytes: 16 << 30,
            free_space_divisor: 3,
            incremental: false,
            dirty: BackendChoice::Auto,
            print_stats: false,
            malloc_collectable: true,
            mark_step_bytes: 64 << 10,
            mark_rate: 4,
        }
    }
}

/// Parse a size with an optional K/M/G suffix.
pub fn parse_size(s: &str) -> Option<usize> {
    let s = s.trim();
    let (digits, mul) = match s.as_bytes().last()? {
        b'k' | b'K' => (&s[..s.len() - 1], 1usize << 10),
        b'm' | b'M' => (&s[..s.len() - 1], 1 << 20),
        b'g' | b'G' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    digits.parse::<usize>().ok()?.checked_mul(mul)
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.trim() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" | "" => Some(false),
        _ => None,
    }
}

/// Read an environment variable without allocating.
pub fn getenv(key: &CStr) -> Option<&'static str> {
    // SAFETY: key is NUL-terminated; getenv returns a pointer into the environment,
    // which the program does not modify concurrently with heap set-up (documented).
    let p = unsafe { libc::getenv(key.as_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: getenv returned a NUL-terminated string that lives as long as the
    // environment entry (the process, unless the program unsets it).
    unsafe { CStr::from_ptr(p) }.to_str().ok()
}

impl Options {
    /// Apply `DUNEGC_*` environment variables over `self`.
    pub fn with_env(self) -> Result<Options, GcError> {
        self.with_env_raw()
            .map_err(|(key, value, expected)| GcError::Config {
                key,
                value: value.to_owned(),
                expected,
            })
    }

    /// Like `with_env`, but allocation-free: the error names the variable, its value and
    /// what was expected.
    pub(crate) fn with_env_raw(
        mut self,
    ) -> Result<Options, (&'static str, &'static str, &'static str)> {
        fn var<T>(
            key: &'static CStr,
            expected: &'static str,
            parse: impl Fn(&str) -> Option<T>,
        ) -> Result<Option<T>, (&'static str, &'static str, &'static str)> {
            let name = key.to_str().expect("variable names are ASCII");
            match getenv(key) {
                None => Ok(None),
                Some(v) => parse(v).map(Some).ok_or((name, v, expected)),
            }
        }
        if let Some(n) = var(c"DUNEGC_INITIAL_HEAP_SIZE", "a size like 64M", parse_size)? {
            self.initial_heap_bytes = n;
        }
        if let Some(n) = var(c"DUNEGC_MAX_HEAP_SIZE", "a size like 8G", parse_size)? {
            self.max_space_bytes = n;
        }
        if let Some(d) = var(c"DUNEGC_FREE_SPACE_DIVISOR", "a positive integer", |v| {
            v.trim().parse().ok().filter(|&d: &usize| d > 0)
        })? {
            self.free_space_divisor = d;
        }
        if let Some(b) = var(c"DUNEGC_INCREMENTAL", "0 or 1", parse_bool)? {
            self.incremental = b;
        }
        if let Some(c) = var(
            c"DUNEGC_DIRTY",
            "auto, none, mprotect, soft-dirty, uffd or dune",
            |v| v.trim().parse::<BackendChoice>().ok(),
        )? {
            self.dirty = c;
            self.incremental = c != BackendChoice::Exactly(Backend::None);
        }
        if let Some(b) = var(c"DUNEGC_PRINT_STATS", "0 or 1", parse_bool)? {
            self.print_stats = b;
        }
        if let Some(b) = var(c"DUNEGC_MALLOC_COLLECTABLE", "0 or 1", parse_bool)? {
            self.malloc_collectable = b;
        }
        Ok(self)
    }

    /// Check the values, without allocating.
    pub(crate) fn check_raw(&self) -> Result<(), (&'static str, &'static str)> {
        if self.max_space_bytes < (16 << 20) {
            return Err(("max_space_bytes", "at least 16 MiB"));
        }
        Ok(())
    }

    fn check(&self) -> Result<(), GcError> {
        self.check_raw().map_err(|(key, expected)| GcError::Config {
            key,
            value: self.max_space_bytes.to_string(),
            expected,
        })
    }
}

/// Builds a [`Heap`].
///
/// ```
/// let heap = gc_core::HeapBuilder::new().max_space_bytes(256 << 20).build().unwrap();
/// let p = heap.alloc(gc_core::ObjectKind::Normal, 64, 8).unwrap();
/// assert!(heap.find_object(p).is_some());
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct HeapBuilder {
    options: Options,
}

impl HeapBuilder {
    /// Defaults (no environment variables applied).
    pub fn new() -> HeapBuilder {
        HeapBuilder::default()
    }

    /// Start from these options.
    pub fn options_from(mut self, options: Options) -> Self {
        self.options = options;
        self
    }

    /// Apply the `DUNEGC_*` environment variables.
    pub fn from_env(mut self) -> Result<HeapBuilder, GcError> {
        self.options = self.options.with_env()?;
        Ok(self)
    }

    /// Allocation before the first collection.
    pub fn initial_heap_bytes(mut self, n: usize) -> Self {
        self.options.initial_heap_bytes = n;
        self
    }

    /// Address space reserved per space.
    pub fn max_space_bytes(mut self, n: usize) -> Self {
        self.options.max_space_bytes = n;
        self
    }

    /// bdwgc's free-space divisor.
    pub fn free_space_divisor(mut self, d: usize) -> Self {
        self.options.free_space_divisor = d.max(1);
        self
    }

    /// Incremental marking with the chosen dirty tracker (`Exactly(None)` turns it off).
    pub fn incremental(mut self, dirty: BackendChoice) -> Self {
        self.options.incremental = dirty != BackendChoice::Exactly(Backend::None);
        self.options.dirty = dirty;
        self
    }

    /// Reclaim unreachable global-allocator memory (default true).
    pub fn malloc_collectable(mut self, yes: bool) -> Self {
        self.options.malloc_collectable = yes;
        self
    }

    /// Least bytes scanned per incremental mark step (small values make cycles long,
    /// which tests use to interleave marking with mutation).
    pub fn mark_step_bytes(mut self, n: usize) -> Self {
        self.options.mark_step_bytes = n.max(8);
        self
    }

    /// Bytes scanned per byte allocated in incremental mark steps (0: only the minimum
    /// step, so cycles last as long as possible).
    pub fn mark_rate(mut self, r: usize) -> Self {
        self.options.mark_rate = r;
        self
    }

    /// Print statistics when the program asks for a report.
    pub fn print_stats(mut self, yes: bool) -> Self {
        self.options.print_stats = yes;
        self
    }

    /// The options so far.
    pub fn options(&self) -> Options {
        self.options
    }

    /// Build the heap. A named dirty backend that is unsupported here is an error (never
    /// a silent fallback); `Auto` picks the best supported one and says which in stats.
    pub fn build(self) -> Result<&'static Heap, GcError> {
        self.options.check()?;
        let heap = Heap::create(self.options)?;
        heap.open_tracker_now()?;
        Ok(heap)
    }

    /// Build without opening the tracker and without allocating from the global
    /// allocator (for the global heap, created inside the first allocation).
    pub(crate) fn build_for_global(self) -> Result<&'static Heap, GcError> {
        let heap = Heap::create(self.options)?;
        if cfg!(feature = "dune")
            && self.options.incremental
            && self.options.dirty == BackendChoice::Exactly(Backend::Dune)
        {
            heap.enter_dune_pending
                .store(true, std::sync::atomic::Ordering::Release);
        }
        Ok(heap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("64M"), Some(64 << 20));
        assert_eq!(parse_size("2g"), Some(2 << 30));
        assert_eq!(parse_size("12Q"), None);
        assert_eq!(parse_size(""), None);
    }
}
