//! Layer 6, **public API**: the live page table as a library ([`pagetable`]) and sandboxes
//! ([`sandbox`]). Everything here may use every layer below.

pub mod pagetable;
pub mod process;
pub mod regs;
pub mod sandbox;
