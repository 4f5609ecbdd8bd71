//! Sthreads: a function run at CPL3 in a Dune sandbox whose view maps only the granted
//! tags (read-only or read-write), the host's code, and a fresh stack; every syscall goes
//! through the [`crate::guard`] of its policy.
//!
//! [`sthread_create`] builds the view on the calling thread (errors are immediate) and
//! runs it on a new host thread, as `pthread_create` would; [`Sthread::join`] waits for
//! its [`Report`]. [`sthread_run`] does both on the calling thread. The body gets no
//! heap, no thread-locals and no libc (see [`dune_hw::sandbox::Sandbox::run_closure`]):
//! it works on its tags through raw pointers and uses [`crate::inside`] and
//! [`dune_hw::sandbox::sys`] for calls.

use crate::error::PrivsepError;
use crate::guard::Guard;
use crate::policy::{Rights, SPolicy};
use crate::report::Report;
use dune_hw::sandbox::{sys, Access, Config, Entry, Sandbox};

/// Bytes of an sthread's stack.
pub const STACK_BYTES: u64 = 32 << 10;
/// Bytes of its arena (stack, guard pages, and what brk/mmap may use if allowed).
pub const ARENA_BYTES: u64 = 64 << 10;

/// The sandbox of one compartment: host code, the policy's tags and fds, a fresh stack.
pub(crate) fn build(policy: &SPolicy) -> Result<Sandbox, PrivsepError> {
    let mut sb = Sandbox::new(Config {
        arena_bytes: ARENA_BYTES,
        stack_bytes: STACK_BYTES,
        timeout: policy.timeout,
        ..Config::default()
    })?;
    sb.grant_host_code()?;
    for (tag, rights) in &policy.tags {
        let t = tag.handle();
        let access = match rights {
            Rights::Read => Access::Read,
            Rights::ReadWrite => Access::ReadWrite,
        };
        // SAFETY: the policy holds a clone of the tag, so its mapping lives as long as
        // any sandbox built from the policy does (the policy outlives each run, and
        // sthreads/gates/recyclers keep their policy with their sandboxes). Tag memory is
        // only ever reached through raw pointers on the host (see `smalloc`).
        unsafe { sb.grant(t.base, t.len, access)? };
    }
    for (fd, _) in &policy.fds {
        sb.allow_fd(*fd);
    }
    Ok(sb)
}

/// Zeroes the arena (stack included) so the next run of a recycled sandbox sees nothing
/// of the previous one.
pub(crate) fn scrub(sb: &mut Sandbox) {
    sb.arena_mut().fill(0);
}

/// Runs `f(arg)` in `sb` under `policy`.
pub(crate) fn run_fn(
    sb: &mut Sandbox,
    policy: &SPolicy,
    f: fn(u64) -> i32,
    arg: u64,
    depth: u32,
) -> Result<Report, PrivsepError> {
    let mut guard = Guard::new(policy, depth);
    let out = sb.run_closure(move || f(arg), &mut guard)?;
    Ok(guard.report(out.into()))
}

/// What a child asked for from inside an sthread starts with: calls the body at `f`.
extern "C" fn child_entry(f: u64, arg: u64) -> ! {
    if f == 0 {
        sys::exit(-22)
    }
    // SAFETY: runs only inside the child's sandbox, at CPL3 under its view: whatever
    // `f` names, executing it can reach only what the child was granted (a wrong address
    // is a fault outcome). It is non-zero (checked), as a fn pointer must be.
    let body = unsafe { core::mem::transmute::<u64, fn(u64) -> i32>(f) };
    sys::exit(body(arg))
}

/// Runs the body at address `f` (from an untrusted child request) in `sb`.
pub(crate) fn run_raw(
    sb: &mut Sandbox,
    policy: &SPolicy,
    f: u64,
    arg: u64,
    depth: u32,
) -> Result<Report, PrivsepError> {
    sb.grant_host_code()?;
    let entry = Entry {
        rip: child_entry as *const () as usize as u64,
        rsp: sb.stack_top() - 8,
        args: [f, arg, 0],
    };
    let mut guard = Guard::new(policy, depth);
    let out = sb.run(entry, &mut guard)?;
    Ok(guard.report(out.into()))
}

/// Runs `f(arg)` as an sthread on the calling thread and returns its report.
pub fn sthread_run(policy: &SPolicy, f: fn(u64) -> i32, arg: u64) -> Result<Report, PrivsepError> {
    let mut sb = build(policy)?;
    run_fn(&mut sb, policy, f, arg, 0)
}

/// A running sthread.
#[derive(Debug)]
pub struct Sthread {
    thread: std::thread::JoinHandle<Result<Report, PrivsepError>>,
}

/// Starts `f(arg)` as an sthread on a new host thread, with the rights of `policy`.
pub fn sthread_create(
    policy: &SPolicy,
    f: fn(u64) -> i32,
    arg: u64,
) -> Result<Sthread, PrivsepError> {
    let mut sb = build(policy)?;
    let policy = policy.clone();
    let thread = std::thread::Builder::new()
        .name("sthread".into())
        .spawn(move || run_fn(&mut sb, &policy, f, arg, 0))
        .map_err(|e| PrivsepError::Os {
            op: "spawn the sthread's host thread",
            source: e,
        })?;
    Ok(Sthread { thread })
}

impl Sthread {
    /// Waits for the sthread and returns its report.
    pub fn join(self) -> Result<Report, PrivsepError> {
        match self.thread.join() {
            Ok(r) => r,
            Err(_) => Err(PrivsepError::Os {
                op: "join the sthread's host thread (it panicked)",
                source: std::io::Error::other("host thread panicked"),
            }),
        }
    }
}
