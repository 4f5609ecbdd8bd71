//! The syscall guard of one run: the [`dune_hw::sandbox::Policy`] that applies an
//! [`SPolicy`] to every syscall of an sthread or callgate.
//!
//! - [`SYS_CALLGATE`]: runs the named gate if the policy holds it (else EPERM, recorded
//!   as [`Violation::ForgedGate`]); the caller names only the gate, never its entry or its
//!   trusted argument, which the host takes from the gate itself.
//! - [`SYS_SPAWN`]: copies the [`ChildRequest`] out of the sthread's memory, resolves it
//!   against the policy (EPERM on any right beyond the parent's, EINVAL on an invalid
//!   tag; both recorded) and runs the child to completion.
//! - any other call outside the allowed set ends the run ([`Ended::Killed`]);
//! - a call on a file descriptor outside the grant, or without the right it needs, fails
//!   with EBADF (recorded). The sandbox core then checks descriptors and pointers again.

use crate::gate;
use crate::policy::{ChildRequest, FdRights, SPolicy, SYS_CALLGATE, SYS_SPAWN};
use crate::report::{Ended, Report, Violation};
use crate::sthread;
use dune_hw::sandbox::{Memory, Policy, Syscall, Verdict};

/// Callgates and children nest at most this deep (then EAGAIN).
pub const MAX_DEPTH: u32 = 8;
/// Violations kept per run (a hostile loop must not grow memory without bound).
const MAX_VIOLATIONS: usize = 1000;

const EPERM: i64 = 1;
const EBADF: i64 = 9;
const EAGAIN: i64 = 11;
const EFAULT: i64 = 14;
const EINVAL: i64 = 22;
const AT_FDCWD: u64 = -100i64 as u64;

/// Applies a policy to one run; collects what it refused.
pub(crate) struct Guard<'a> {
    policy: &'a SPolicy,
    depth: u32,
    pub(crate) violations: Vec<Violation>,
}

impl<'a> Guard<'a> {
    pub(crate) fn new(policy: &'a SPolicy, depth: u32) -> Guard<'a> {
        Guard {
            policy,
            depth,
            violations: Vec::new(),
        }
    }

    /// The run's report.
    pub(crate) fn report(self, ended: Ended) -> Report {
        Report {
            ended,
            violations: self.violations,
        }
    }

    fn record(&mut self, v: Violation) {
        if self.violations.len() < MAX_VIOLATIONS {
            self.violations.push(v);
        }
    }

    fn callgate(&mut self, id: u64, arg: u64) -> i64 {
        let Some(g) = self.policy.gate(id).cloned() else {
            self.record(Violation::ForgedGate { id });
            return -EPERM;
        };
        if self.depth >= MAX_DEPTH {
            return -EAGAIN;
        }
        match gate::call_at_depth(&g, arg, self.depth + 1) {
            Ok(Report {
                ended: Ended::Exited(v),
                ..
            }) => v as i64,
            Ok(r) => {
                self.record(Violation::Nested {
                    what: "callgate",
                    ended: r.ended,
                });
                -EFAULT
            }
            Err(_) => -EAGAIN,
        }
    }

    fn spawn(&mut self, at: u64, len: u64, mem: &Memory<'_>) -> i64 {
        if len != core::mem::size_of::<ChildRequest>() as u64 {
            return -EINVAL;
        }
        let Some(bytes) = mem.read(at, len as usize) else {
            return -EFAULT;
        };
        // SAFETY: `bytes` holds exactly size_of::<ChildRequest>() bytes, and ChildRequest
        // is plain u64 words (repr(C)): every bit pattern is a value.
        let req: ChildRequest = unsafe { core::ptr::read_unaligned(bytes.as_ptr().cast()) };
        let child = match self.policy.resolve_child(&req) {
            Ok(c) => c,
            Err(e) => {
                let errno = match e {
                    crate::PrivsepError::RightsEscalation { .. } => EPERM,
                    _ => EINVAL,
                };
                self.record(Violation::ChildRefused {
                    what: e.to_string(),
                });
                return -errno;
            }
        };
        if req.f == 0 {
            return -EINVAL;
        }
        if self.depth >= MAX_DEPTH {
            return -EAGAIN;
        }
        let report = sthread::build(&child)
            .and_then(|mut sb| sthread::run_raw(&mut sb, &child, req.f, req.arg, self.depth + 1));
        match report {
            Ok(Report {
                ended: Ended::Exited(v),
                ..
            }) => v as i64,
            Ok(r) => {
                self.record(Violation::Nested {
                    what: "child",
                    ended: r.ended,
                });
                -EFAULT
            }
            Err(_) => -EAGAIN,
        }
    }
}

/// The descriptor a call uses and the right it needs, for the calls the sandbox core
/// performs on descriptors.
fn fd_use(call: &Syscall) -> Option<(u64, FdRights)> {
    let fd = call.args[0];
    match call.name() {
        "read" | "pread64" | "readv" => Some((fd, FdRights::READ)),
        "write" | "pwrite64" | "writev" => Some((fd, FdRights::WRITE)),
        "close" | "fstat" | "lseek" | "fcntl" | "ioctl" => Some((fd, FdRights(0))),
        "openat" | "newfstatat" | "openat2" if fd != AT_FDCWD => Some((fd, FdRights(0))),
        _ => None,
    }
}

impl Policy for Guard<'_> {
    fn decide(&mut self, call: &Syscall, mem: &Memory<'_>) -> Verdict {
        match call.nr {
            SYS_CALLGATE => return Verdict::Emulate(self.callgate(call.args[0], call.args[1])),
            SYS_SPAWN => return Verdict::Emulate(self.spawn(call.args[0], call.args[1], mem)),
            nr if !self.policy.syscalls.contains(nr) => {
                self.record(Violation::Syscall {
                    name: call.name(),
                    nr,
                });
                return Verdict::Kill(format!(
                    "syscall {} ({nr}) is not in the sthread's policy",
                    call.name()
                ));
            }
            _ => {}
        }
        if let Some((fd, need)) = fd_use(call) {
            let granted = i32::try_from(fd)
                .ok()
                .and_then(|f| self.policy.fd_rights(f))
                .is_some_and(|r| r.covers(need));
            if !granted {
                self.record(Violation::Fd {
                    fd,
                    syscall: call.name(),
                });
                return Verdict::Emulate(-EBADF);
            }
        }
        Verdict::Allow
    }
}
