//! The heap's options and the `DUNEGC_*` environment parsing, below the heap that is
//! built from them. Public as `crate::api::options` (the variables are listed there).

use crate::dirty::{Backend, BackendChoice};
use crate::error::GcError;
use std::ffi::CStr;

/// How a heap behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// Allocation before the first collection, and the least allowed between two.
    pub initial_heap_bytes: usize,
    /// Address space reserved for each of the three spaces.
    pub max_space_bytes: usize,
    /// Hard limit on the bytes of pages in spans, all spaces together (0 = none): an
    /// allocation that would pass it after a collection fails with `OutOfMemory`.
    pub max_heap_bytes: usize,
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
    /// Marker threads for stop-the-world marking, the collecting thread included; 0 =
    /// auto: `DUNEGC_MARKERS` if set, else the number of CPUs (resolved when the heap is
    /// built, see [`Options::resolved_markers`]).
    pub markers: usize,
    /// Incremental cycles mark on the marker threads while the program runs
    /// (mostly-concurrent marking) when there are helper markers; off, or with one
    /// marker, the allocating thread takes mark steps instead.
    pub concurrent_marking: bool,
    /// Objects allocated while an incremental cycle marks are allocated black (marked);
    /// off, they start white and the finish traces the reachable ones.
    pub allocate_black: bool,
    /// Pre-cleaning rounds of a concurrent cycle before its finish (0: none).
    pub precleans: u32,
    /// Map the heap's pages executable as well as readable and writable (bdwgc's
    /// `GC_set_pages_executable`; env `DUNEGC_PAGES_EXECUTABLE`). Process-wide once set:
    /// see `util::mmap::make_executable`.
    pub pages_executable: bool,
    /// Collect rather than take fresh pages while anything was allocated since the last
    /// collection: the heap grows only when a collection could not make room (bdwgc's
    /// `GC_dont_expand`; env `DUNEGC_DONT_EXPAND`). Not in incremental mode, as bdwgc.
    pub dont_expand: bool,
    /// Put off the budget-triggered collection while the allocation fits in free pages
    /// the heap already has (bdwgc's `GC_use_entire_heap`; env `DUNEGC_USE_ENTIRE_HEAP`).
    /// Not in incremental mode, as bdwgc.
    pub use_entire_heap: bool,
    /// Lean growth: once `2 × live / divisor` bytes were allocated since the last
    /// collection, an allocation that needs fresh pages collects first (bdwgc's
    /// `GC_collect_or_expand` rule); the budget still lets the program use the pages the
    /// heap has. A smaller peak heap for more collections; env `DUNEGC_LEAN_GROWTH`.
    /// Not in incremental mode.
    pub lean_growth: bool,
    /// Collect rather than take fresh pages when finalizers registered since the last
    /// such decision × this many bytes exceed the bytes allocated since the last
    /// collection (bdwgc's `GC_allocd_bytes_per_finalizer`; 0 = off, the default here;
    /// bdwgc's default, which its C ABI sets, is 10000). Not in incremental mode.
    pub allocd_bytes_per_finalizer: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            initial_heap_bytes: 4 << 20,
            max_space_bytes: 16 << 30,
            max_heap_bytes: 0,
            free_space_divisor: 3,
            incremental: false,
            dirty: BackendChoice::Auto,
            print_stats: false,
            malloc_collectable: true,
            mark_step_bytes: 64 << 10,
            mark_rate: 4,
            markers: 0,
            concurrent_marking: true,
            allocate_black: true,
            precleans: 1,
            pages_executable: false,
            dont_expand: false,
            use_entire_heap: false,
            lean_growth: false,
            allocd_bytes_per_finalizer: 0,
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

const MARKERS_EXPECTED: &str = "a number of marker threads from 1 to 64";

fn parse_markers(v: &str) -> Option<usize> {
    v.trim()
        .parse::<usize>()
        .ok()
        .filter(|n| (1..=crate::mark::pool::MAX_MARKERS).contains(n))
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
            self.max_heap_bytes = n;
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
        if let Some(n) = var(c"DUNEGC_MARKERS", MARKERS_EXPECTED, parse_markers)? {
            self.markers = n;
        }
        if let Some(b) = var(c"DUNEGC_CONCURRENT_MARKING", "0 or 1", parse_bool)? {
            self.concurrent_marking = b;
        }
        if let Some(b) = var(c"DUNEGC_ALLOCATE_BLACK", "0 or 1", parse_bool)? {
            self.allocate_black = b;
        }
        if let Some(n) = var(c"DUNEGC_PRECLEANS", "a number of rounds from 0 to 8", |v| {
            v.trim().parse().ok().filter(|&n: &u32| n <= 8)
        })? {
            self.precleans = n;
        }
        if let Some(b) = var(c"DUNEGC_PRINT_STATS", "0 or 1", parse_bool)? {
            self.print_stats = b;
        }
        if let Some(b) = var(c"DUNEGC_PAGES_EXECUTABLE", "0 or 1", parse_bool)? {
            self.pages_executable = b;
        }
        if let Some(b) = var(c"DUNEGC_DONT_EXPAND", "0 or 1", parse_bool)? {
            self.dont_expand = b;
        }
        if let Some(b) = var(c"DUNEGC_USE_ENTIRE_HEAP", "0 or 1", parse_bool)? {
            self.use_entire_heap = b;
        }
        if let Some(b) = var(c"DUNEGC_LEAN_GROWTH", "0 or 1", parse_bool)? {
            self.lean_growth = b;
        }
        if let Some(b) = var(c"DUNEGC_MALLOC_COLLECTABLE", "0 or 1", parse_bool)? {
            self.malloc_collectable = b;
        }
        Ok(self)
    }

    /// The number of markers a heap built with these options runs: `markers` if set, else
    /// `DUNEGC_MARKERS`, else the CPUs this process may use. Allocation-free; the error
    /// names the variable, its value and what was expected.
    pub(crate) fn resolved_markers(
        &self,
    ) -> Result<usize, (&'static str, &'static str, &'static str)> {
        if self.markers > 0 {
            return Ok(self.markers.min(crate::mark::pool::MAX_MARKERS));
        }
        match getenv(c"DUNEGC_MARKERS") {
            Some(v) => parse_markers(v).ok_or(("DUNEGC_MARKERS", v, MARKERS_EXPECTED)),
            None => Ok(crate::mark::pool::cpus().min(crate::mark::pool::MAX_MARKERS)),
        }
    }

    /// Check the values, without allocating.
    pub(crate) fn check_raw(&self) -> Result<(), (&'static str, &'static str)> {
        if self.max_space_bytes < (16 << 20) {
            return Err(("max_space_bytes", "at least 16 MiB"));
        }
        Ok(())
    }

    pub(crate) fn check(&self) -> Result<(), GcError> {
        self.check_raw().map_err(|(key, expected)| GcError::Config {
            key,
            value: self.max_space_bytes.to_string(),
            expected,
        })
    }
}
