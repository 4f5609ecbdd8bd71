//! For code running inside an sthread or callgate: calls to the host-side guard. No libc,
//! no heap, no thread-locals (an sthread's FS base is 0). Outside an sthread these
//! syscall numbers are unknown to Linux and return `-ENOSYS`.

use crate::policy::{ChildRequest, SYS_CALLGATE, SYS_SPAWN};
use dune_hw::sandbox::sys::syscall6;

/// Calls the callgate with id `gate` with `arg`; returns its result, or `-EPERM` if this
/// sthread's policy does not hold the gate, `-EFAULT` if the gate faulted, `-EAGAIN` if
/// nesting is too deep or its sandbox could not be built.
pub fn callgate_call(gate: u64, arg: u64) -> i64 {
    syscall6(SYS_CALLGATE, [gate, arg, 0, 0, 0, 0])
}

/// Runs the child `req` describes and waits for it: its status (`>= 0` by convention),
/// `-EPERM` if it asks for rights this sthread lacks, `-EINVAL` for an invalid tag or
/// request, `-EFAULT` if the child faulted or was killed.
pub fn sthread_spawn(req: &ChildRequest) -> i64 {
    syscall6(
        SYS_SPAWN,
        [
            req as *const ChildRequest as u64,
            core::mem::size_of::<ChildRequest>() as u64,
            0,
            0,
            0,
            0,
        ],
    )
}
