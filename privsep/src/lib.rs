//! privsep — privilege separation on Dune in the manner of Wedge (Bittau et al., NSDI
//! 2008), the Dune paper's second application, built on [`dune_hw::sandbox`]'s page-table
//! views and syscall policy (public API only).
//!
//! Wedge splits one program into compartments with **default-deny** rights:
//! - **tags** ([`tag_new`], [`smalloc`]): memory regions with their own allocator; a
//!   compartment is granted whole tags, read-only or read-write ([`Rights`]);
//! - **sthreads** ([`sthread_create`] / [`Sthread::join`], [`sthread_run`]): a function
//!   run at guest CPL3 under a page table that maps only its tags, the host's code and a
//!   fresh stack. Anything else is absent: touching another tag's memory is a page fault
//!   that ends the sthread with a [`Report`] naming the address and the tag; the parent
//!   carries on. Privileged instructions (`mov cr3`, `cli`) are #GP; the view's own
//!   page-table frames are not mapped in it, so it cannot edit them;
//! - **policies** ([`SPolicy`]): tags with rights, fds with rights ([`FdRights`]), the
//!   syscalls allowed, the callgates it may call. A child asked for from inside an
//!   sthread ([`inside::sthread_spawn`]) gets at most its parent's rights
//!   ([`SPolicy::resolve_child`]);
//! - **callgates** ([`callgate_create`], [`inside::callgate_call`]): a function with its
//!   own rights, entered only at its entry, with a trusted argument the caller cannot see
//!   or forge;
//! - **recycling** ([`Recycler`]): one view reused, scrubbed, run after run, so a server
//!   can afford one sthread per request.
//!
//! On Dune an sthread is a page table and a vCPU context: creating one is building a page
//! table (host code + tags), entering it a KVM_RUN; no process, no copy of the address
//! space, no TLB shootdown of the parent.
//!
//! # Measured (`bench-results/privsep.md`, `scripts/privsep-bench.sh`; loaded machine)
//! Ratios within one Dune mode, over pvm / ring3 / pvm-ring0 / ring0:
//! - a recycled sthread run: 0.85-1.0 ms, **0.54-0.82x** `fork` + `waitpid`;
//! - a new sthread (view build + run): 2.4-4.7 ms, 1.4-3.8x fork (building the view alone:
//!   0.6-0.8 ms, 4.8 ms in pvm); `pthread_create` + join: 26-42 us;
//! - a callgate call from an sthread: 1.4-1.8 ms, ~100-150x a pipe round trip to another
//!   process (a gate call is a whole sandbox run on another vCPU);
//! - the example server per request: recycled sthread 1.3-1.7x fork-per-request.
//!
//! Unlike the paper's VT-x figures, sthreads are not far cheaper than fork here: on this
//! nested PVM host every sandbox run pays ~7 vCPU set-up ioctls (~20 us each) and a
//! KVM_RUN under shadow paging.
//!
//! What an sthread does wrong is recorded, never an error of the host:
//!
//! | attempt | result |
//! |---|---|
//! | read / write / execute outside its tags | [`Ended::Fault`] (`Read` / `Write` / `Execute`), the tag named in `in_tag` |
//! | write a read-only tag | [`Ended::Fault`] (`Write`) |
//! | call a gate its policy lacks, or jump to a gate's entry itself | `-EPERM` + [`Violation::ForgedGate`] / a fault (the entry runs with the caller's rights) |
//! | a child with more rights than itself | `-EPERM` + [`Violation::ChildRefused`]; an unknown tag: `-EINVAL` |
//! | a syscall outside its set | [`Ended::Killed`] + [`Violation::Syscall`] |
//! | an fd outside its grant, or without the right | `-EBADF` + [`Violation::Fd`] |
//! | `mov cr3` / any privileged instruction, a store to its page table | [`Ended::Fault`] (`Privileged` / `Write`) |
//!
//! [`Report::check`] maps a report to the typed [`PrivsepError`]s.
//!
//! Known limits: the sthread body is a plain `fn(u64) -> i32` with the restrictions of
//! [`dune_hw::sandbox::Sandbox::run_closure`] (no heap, no TLS, no libc: raw syscalls via
//! [`dune_hw::sandbox::sys`]); children started from inside run to completion before the
//! call returns (Wedge's create + join); callgates are created by trusted code only; the
//! parent must run outside Dune (nested gates and children are served on the host side of
//! the calling thread; running privsep from a Dune thread is untested); descriptors an
//! sthread opens itself (if its policy allows `openat`) are outside its grant and unusable;
//! calls the sandbox core refuses on its own (ENOSYS, EFAULT) are in the sandbox's denials,
//! not in the [`Report`].
//!
//! Modules:
//! - [`error`]   typed errors
//! - [`tag`]     tags and their allocator
//! - [`policy`]  rights; the child-request wire format; subset checks
//! - [`report`]  outcomes and violations
//! - [`guard`]   the syscall guard of one run (callgates, children, syscalls, fds)
//! - [`gate`]    callgates
//! - [`sthread`] sthreads
//! - [`recycle`] recycled sthreads
//! - [`inside`]  the calls for code inside an sthread

pub mod error;
pub mod gate;
pub mod guard;
pub mod inside;
pub mod policy;
pub mod recycle;
pub mod report;
pub mod sthread;
pub mod tag;

pub use error::PrivsepError;
pub use gate::callgate_create;
pub use policy::{Callgate, ChildRequest, FdRights, Rights, SPolicy};
pub use recycle::Recycler;
pub use report::{Ended, FaultKind, Report, Violation};
pub use sthread::{sthread_create, sthread_run, Sthread};
pub use tag::{smalloc, tag_new, Tag, TagRef};
