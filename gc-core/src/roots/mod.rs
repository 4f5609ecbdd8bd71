//! Where marking starts: static data of the program and its libraries, explicitly added
//! ranges, thread stacks, registers and TLS.
//!
//! - [`statics`] — writable segments of every loaded object (`dl_iterate_phdr`).
//! - [`stacks`] — the collecting thread's own stack and registers.
//! - [`declared`] — stacks the program declared (a stack bottom, an alternate signal
//!   stack), which bound or extend the stack ranges [`crate::world::thread_roots`] scans.

pub mod declared;
pub mod stacks;
pub mod statics;
