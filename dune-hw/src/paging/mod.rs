// Layer 2: paging (dune-hw/LAYERS).
//! Guest page tables: 4-level, identity (va == pa), living in process memory. The monitor
//! maps 4 KiB leaves; [`crate::api::pagetable`] may add huge leaves (2 MiB, 1 GiB), which every
//! operation here handles (kept when a change covers all of one, split otherwise).
//!
//! - [`pte`]     atomic entries and flag bits
//! - [`walker`]  the one walk + `Visitor`
//! - [`frames`]  `FrameAllocator` for table pages
//!
//! Mutation (map/unmap/protect) happens host-side under the process lock; reading and
//! clearing A/D bits is lock-free (atomic per entry) and works from the host or the guest.

mod dirty_view;
pub mod frames;
pub mod maps;
pub mod pte;
mod table;
#[cfg(test)]
mod tests;
pub mod walker;

pub use dirty_view::DirtyView;
pub use table::PageTable;
