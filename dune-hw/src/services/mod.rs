//! Layer 4, **services**: what the monitor does for a stopped thread. Guest exceptions
//! ([`trap`], [`fault`]), syscall forwarding ([`syscall`]), signals ([`signal`]), thread and
//! process creation ([`thread`]) and TLB flushes ([`tlb`]). They depend on the state and the
//! layers below; where one needs a layer above (the monitor's exit loop for a new thread,
//! the sandbox's run request) it calls an `extern` symbol that layer defines.

pub mod fault;
pub mod signal;
pub mod syscall;
pub mod thread;
pub mod tlb;
pub mod trap;
