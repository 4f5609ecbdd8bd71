//! Layer 3, **state**: the per-process VM ([`dune::Dune`]: one VM, one guest page table,
//! memory slots) and the per-thread vCPU context (its GDT/TSS/monitor stack, exit-loop stack,
//! signal state, counters), and fatal dumps. Depends on arch and paging only.

pub mod dune;
pub(crate) mod fatal;
pub(crate) mod main_stack;
pub(crate) mod sigstate;
pub mod thread_ctx;
