//! # gc-core: a conservative, Boehm-style mark-sweep collector
//!
//! Tour:
//! - [`address`]: typed addresses (`Address`, `Page`, `PageRange`).
//! - [`dirty`]: the `DirtyTracker` trait and its backends — where incremental marking
//!   learns which pages the program wrote.
//! - [`util`]: mappings and allocation-free helpers used while the world is stopped.
//! - [`error`]: `GcError`.

pub mod address;
pub mod dirty;
pub mod error;
pub mod util;

pub use address::{Address, Page, PageRange};
pub use dirty::{Backend, BackendChoice, DirtyError, DirtySet, DirtyTracker, TrackerStats};
pub use error::GcError;
