//! Layer 1, **arch**: what the CPU and the asm see. Address types, the GDT/TSS and IDT
//! descriptors, the asm entry stubs and the frame layouts they share with Rust, hypercall
//! numbers, and [`DuneError`](error::DuneError). Depends on nothing above it: the Rust
//! entry points the asm calls (`dune_guest_trap`) are `extern` symbols defined higher up.

pub mod addr;
pub mod entry;
pub mod error;
pub mod gdt;
pub mod host_counters;
pub mod idt;
pub mod ledger;
