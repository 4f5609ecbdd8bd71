//! # gc-core: a conservative, Boehm-style mark-sweep collector
//!
//! Rust programs use it as `#[global_allocator]` ([`GcAllocator`]) and through [`Gc<T>`];
//! C programs through the bdwgc-compatible ABI crate. Incremental (mostly-parallel)
//! marking learns which pages were written from a [`DirtyTracker`] backend: `none`,
//! `mprotect`, `soft-dirty`, `uffd`, and — with the `dune` feature, in a process running
//! in Dune mode — `dune`, the hardware page-table dirty bits (`dirty::dune`).
//!
//! Limits of conservative collection (as with bdwgc): pointers the collector cannot see —
//! kept only in the kernel (epoll data), in memory from `mmap` or libc's `malloc` not
//! registered with `Heap::add_roots`, or disguised (xor-ed, tagged in the high bits) — do
//! not keep objects alive; `SIGPWR` (or the signal `world::set_suspend_signal` chose) is
//! reserved for stopping threads.
//!
//! Tour:
//! - [`address`] — typed addresses (`Address`, `Page`, `PageRange`).
//! - [`heap`] — reservation, spaces, size classes, spans, side bitmaps, thread caches.
//! - [`mark`] — the mark stack, the conservative scan, parallel marking on marker threads.
//! - [`roots`] — static data, the collector's own stack.
//! - [`world`] — stop-the-world over every thread of the process.
//! - [`collector`] — policy, full collections, incremental cycles, sweeping.
//! - [`finalize`] — finalizer registration and queue.
//! - [`dirty`] — the `DirtyTracker` trait and its backends.
//! - [`api`] — `GcAllocator`, `Gc<T>`, options, statistics, the global heap.
//! - [`util`] — mappings and allocation-free helpers used while the world is stopped.
//! - [`error`] — `GcError`.

pub mod address;
pub mod api;
pub mod collector;
pub mod dirty;
pub mod error;
pub mod finalize;
pub mod heap;
pub mod mark;
mod options;
pub mod roots;
pub mod util;
pub mod world;

pub use address::{Address, Page, PageRange};
pub use api::gc::Gc;
pub use api::global_alloc::GcAllocator;
pub use api::global_heap;
pub use api::options::{HeapBuilder, Options};
pub use api::stats::GcStats;
pub use dirty::{Backend, BackendChoice, DirtyError, DirtySet, DirtyTracker, TrackerStats};
pub use error::GcError;
pub use finalize::{FinalizerFn, FinalizerOrder};
pub use heap::kind::ObjectKind;
pub use heap::Heap;
pub use util::ledger::{collector_ledger, CollectorLedger};
