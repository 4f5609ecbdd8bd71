//! # gc-core: a conservative, Boehm-style mark-sweep collector
//!
//! Rust programs use it as `#[global_allocator]` ([`GcAllocator`]) and through [`Gc<T>`];
//! C programs through the bdwgc-compatible ABI crate. Incremental (mostly-parallel)
//! marking learns which pages were written from a [`DirtyTracker`] backend.
//!
//! Tour:
//! - [`address`] — typed addresses (`Address`, `Page`, `PageRange`).
//! - [`heap`] — reservation, spaces, size classes, spans, side bitmaps, thread caches.
//! - [`mark`] — the mark stack and the conservative scan.
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
