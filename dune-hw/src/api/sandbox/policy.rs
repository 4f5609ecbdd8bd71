// Layer 6: public API (dune-hw/LAYERS).
//! The syscall policy: a callback that sees every syscall of the sandbox (except `exit`
//! and `exit_group`, which always end the run) and decides.

use super::names;
use super::view::View;

/// One syscall made by the sandboxed code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Syscall {
    /// Number (rax).
    pub nr: u64,
    /// Arguments (rdi, rsi, rdx, r10, r8, r9).
    pub args: [u64; 6],
}

impl Syscall {
    /// The Linux name of the call (`"unknown"` for undefined numbers).
    pub fn name(&self) -> &'static str {
        names::name(self.nr)
    }
}

/// A policy's decision on one syscall.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Perform the call: the sandbox core emulates address-space calls inside the arena,
    /// checks every pointer and file descriptor argument against what the sandbox owns, and
    /// executes the rest on the host. Calls the core does not know how to check fail with
    /// ENOSYS (recorded as a denial).
    Allow,
    /// Fail the call with this errno; the sandboxed code continues.
    Deny(i32),
    /// Return this value without executing anything.
    Emulate(i64),
    /// End the run with [`super::Outcome::Denied`] and this reason.
    Kill(String),
}

/// Decides on the sandbox's syscalls. Runs on the host side, with the sandbox stopped.
pub trait Policy {
    /// The verdict on `call`; `mem` reads the sandbox's memory (only what its view grants).
    fn decide(&mut self, call: &Syscall, mem: &Memory<'_>) -> Verdict;
}

impl<F: FnMut(&Syscall, &Memory<'_>) -> Verdict> Policy for F {
    fn decide(&mut self, call: &Syscall, mem: &Memory<'_>) -> Verdict {
        self(call, mem)
    }
}

/// A policy that allows every call (the core's own checks still apply).
#[derive(Clone, Copy, Debug, Default)]
pub struct AllowAll;

impl Policy for AllowAll {
    fn decide(&mut self, _call: &Syscall, _mem: &Memory<'_>) -> Verdict {
        Verdict::Allow
    }
}

/// Reads the sandbox's memory for a policy: only bytes its view maps user-readable.
#[derive(Clone, Copy, Debug)]
pub struct Memory<'a> {
    pub(crate) view: &'a View,
}

/// Longest C string [`Memory::read_cstr`] returns (PATH_MAX).
pub const MAX_CSTR_BYTES: usize = 4096;

impl Memory<'_> {
    /// Whether the sandbox may read (`write`: write) `[addr, addr + len)`.
    pub fn accessible(&self, addr: u64, len: u64, write: bool) -> bool {
        self.view.user_can(addr, len, write)
    }

    /// A copy of `len` bytes at `addr`, if the sandbox may read them.
    pub fn read(&self, addr: u64, len: usize) -> Option<Vec<u8>> {
        if !self.view.user_can(addr, len as u64, false) {
            return None;
        }
        let mut v = vec![0u8; len];
        // SAFETY: the view maps these bytes user-readable, so they are memory of the
        // sandbox (its arena or a grant, kept mapped by the host for the run); the sandbox
        // is stopped while its policy runs, so nothing writes them concurrently.
        unsafe { core::ptr::copy_nonoverlapping(addr as *const u8, v.as_mut_ptr(), len) };
        Some(v)
    }

    /// The NUL-terminated string at `addr` (without the NUL), if the sandbox may read all
    /// of it and it is shorter than [`MAX_CSTR_BYTES`].
    pub fn read_cstr(&self, addr: u64) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        let mut a = addr;
        while out.len() < MAX_CSTR_BYTES {
            if !self.view.user_can(a, 1, false) {
                return None;
            }
            // SAFETY: as in `read`, for one byte.
            let b = unsafe { core::ptr::read_volatile(a as *const u8) };
            if b == 0 {
                return Some(out);
            }
            out.push(b);
            a = a.checked_add(1)?;
        }
        None
    }
}
