// Layer 6: public API (dune-hw/LAYERS).
//! Sandboxes: code run at guest CPL3 under **its own page-table view**, with every syscall
//! going to a [`Policy`], returning to the caller on exit, denial, fault or timeout.
//!
//! A [`Sandbox`] owns an *arena* (one host mapping: the program's image, its brk heap,
//! its mmap area and its stack) and a [`view`] page table in which only the arena's
//! allocated pages and explicit grants are mapped user-accessible. The CPU's own pages
//! (IDT, GDT/TSS, monitor stack, exception stubs) are mapped supervisor-only; the syscall
//! stub page (this module's, alone on its page) is user-executable. Nothing else of the
//! host process is mapped: a load or store outside the grants is a guest #PF, reported as
//! [`Outcome::Fault`]; a privileged instruction is a #GP, reported likewise.
//!
//! The sandbox runs on a vCPU of its own in the process's VM (the same memory slots,
//! GPA == HVA), driven by a small exit loop on the calling thread ([`cpu`]):
//! - a thread **outside** Dune runs that loop directly;
//! - a Dune thread (ring-3 or ring-0) asks its monitor with a hypercall: the switch to the
//!   sandbox's view happens on the monitor's side and the caller resumes with the outcome.
//!   The API is the same in both cases and both modes.
//!
//! Syscalls ([`calls`]): `syscall` at CPL3 enters this module's LSTAR stub, which irets to
//! a CPL3 trampoline that rings the doorbell (an MMIO exit, as in [`crate::arch::entry`]). The
//! host reads the registers and asks the policy; `exit`/`exit_group` end the run. An
//! allowed call is then performed by the core, which never trusts an argument:
//! - address-space calls (`brk`, `mmap`, `munmap`, `mprotect`) are emulated inside the
//!   arena: a request beyond it fails with ENOMEM and is recorded as a denial;
//! - `arch_prctl(ARCH_SET_FS)` sets the vCPU's FS base;
//! - file descriptors must be ones the sandbox may use (0, 1, 2, [`Sandbox::allow_fd`],
//!   what it opened; closing one the host lent only drops it from the sandbox); `open`
//!   and `openat` use `openat2(RESOLVE_NO_SYMLINKS)` so a path the policy checked is the
//!   path opened;
//! - every pointer argument must lie in memory the view maps user-readable (or writable,
//!   for what the kernel writes), otherwise EFAULT: a call cannot make the host kernel
//!   read or write host memory for the sandbox;
//! - anything the core cannot check (clone, execve, kill, ioctl other than TCGETS, ...)
//!   fails with ENOSYS and is recorded.
//!
//! Timeout: a watchdog thread kicks the vCPU out of KVM_RUN with a signal
//! ([`cpu::kick_signal`], a no-op handler) at the deadline.
//!
//! ```no_run
//! use dune_hw::sandbox::{sys, Config, Memory, Outcome, Sandbox, Syscall, Verdict};
//!
//! let mut sb = Sandbox::new(Config::default())?;
//! let mut policy = |c: &Syscall, _m: &Memory<'_>| match c.name() {
//!     "write" => Verdict::Allow,
//!     _ => Verdict::Deny(libc::EPERM),
//! };
//! let out = sb.run_closure(|| (sys::write(1, b"hi\n") == 3) as i32, &mut policy)?;
//! assert_eq!(out, Outcome::Exited(1));
//! # Ok::<(), dune_hw::sandbox::SandboxError>(())
//! ```
//!
//! Known limits: no signal is delivered into a sandbox (sigaction/sigprocmask are accepted
//! and ignored); one thread per sandbox (clone fails); no file mmap (ENODEV); closures can
//! read the host's read-only file mappings (code, rodata) they need to run, but not libc's
//! writable data, so code that ends up in libc faults — including glibc's `memcpy`, which
//! Rust calls for moves of large values (it reads its tunables from libc's data): keep
//! closures small (capture addresses, not big arrays). The sandbox's memory slots are
//! registered again before each run (the VM evicts slots its process page table does not
//! use when its slot table is full); an eviction *during* a run (another Dune thread
//! mapping memory at that moment) ends the run with a fault outcome.
//!
//! Modules:
//! - [`names`]  syscall names
//! - [`policy`] [`Policy`], [`Verdict`], [`Syscall`], [`Memory`]
//! - [`view`]   the sandbox page table
//! - [`cpu`]    the sandbox vCPU, its stubs and exit loop
//! - [`calls`]  syscall emulation, checking and forwarding
//! - [`sys`]    raw syscalls for code running inside a sandbox (no libc, no TLS)

pub mod calls;
pub mod cpu;
pub mod inspect;
pub mod names;
pub mod policy;
pub mod sys;
pub mod view;

pub use policy::{AllowAll, Memory, Policy, Syscall, Verdict};

use crate::arch::addr::BYTES_IN_PAGE;
use crate::arch::error::DuneError;
use crate::state::dune::{Dune, Options};
use std::fmt;
use std::time::Duration;
use view::View;

mod types;
pub use types::*;

/// The arena's layout. Addresses grow: `[start, brk_start)` image, `[brk_start, brk)`
/// heap, a gap, `[mmap_low, stack_low - guard)` mmap area (allocated downwards),
/// `[stack_low, end)` stack.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Arena {
    pub(crate) start: u64,
    pub(crate) end: u64,
    pub(crate) stack_low: u64,
    pub(crate) brk_start: u64,
    pub(crate) brk: u64,
    pub(crate) mmap_low: u64,
}

/// A page left unmapped between heap/mmap area and below the stack.
pub(crate) const GUARD_BYTES: u64 = BYTES_IN_PAGE;

/// Code run at CPL3 under its own page-table view and a syscall policy.
#[derive(Debug)]
pub struct Sandbox {
    pub(crate) dune: &'static Dune,
    pub(crate) view: View,
    pub(crate) cpu: cpu::CpuPages,
    /// Every range this sandbox needs a memory slot for (registered again at each run).
    pub(crate) slots: Vec<(u64, u64)>,
    pub(crate) arena: Arena,
    pub(crate) cfg: Config,
    /// File descriptors the sandbox owns (host fds, used under the same numbers).
    pub(crate) fds: Vec<i32>,
    /// Descriptors it opened (closed when the sandbox is dropped).
    pub(crate) opened: Vec<i32>,
    pub(crate) denials: Vec<Denial>,
    pub(crate) stats: SandboxStats,
    pub(crate) host_code_granted: bool,
    pub(crate) fs_base: u64,
}

fn page_up(a: u64) -> u64 {
    a.next_multiple_of(BYTES_IN_PAGE)
}

impl Sandbox {
    /// A sandbox with an empty arena (only its stack mapped) and stdin/stdout/stderr as its
    /// file descriptors. Initialises Dune in this process (the VM) if needed.
    pub fn new(cfg: Config) -> Result<Sandbox, SandboxError> {
        let dune = Dune::get_or_init(&cfg.dune)?;
        let arena_bytes = page_up(cfg.arena_bytes);
        let stack_bytes = page_up(cfg.stack_bytes.max(BYTES_IN_PAGE));
        if stack_bytes + 4 * GUARD_BYTES > arena_bytes {
            return Err(SandboxError::BadRange {
                what: "arena",
                start: cfg.arena_addr.unwrap_or(0),
                len_bytes: arena_bytes,
                reason: "smaller than the stack plus guard pages",
            });
        }
        let (hint, fixed) = match cfg.arena_addr {
            Some(a) if !a.is_multiple_of(BYTES_IN_PAGE) => {
                return Err(SandboxError::BadRange {
                    what: "arena",
                    start: a,
                    len_bytes: arena_bytes,
                    reason: "not page-aligned",
                })
            }
            Some(a) => (a, libc::MAP_FIXED_NOREPLACE),
            None => (0, 0),
        };
        // SAFETY: a new private anonymous mapping; with MAP_FIXED_NOREPLACE the kernel
        // refuses to replace an existing mapping, so nothing of the process is aliased.
        let p = unsafe {
            libc::mmap(
                hint as *mut libc::c_void,
                arena_bytes as usize,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | fixed,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            let source = std::io::Error::last_os_error();
            if source.raw_os_error() == Some(libc::EEXIST) {
                return Err(SandboxError::BadRange {
                    what: "arena",
                    start: hint,
                    len_bytes: arena_bytes,
                    reason: "this process already has a mapping there (a program linked at a \
                             fixed address runs in one sandbox per process at a time)",
                });
            }
            return Err(SandboxError::Os {
                op: "mmap(sandbox arena)",
                source,
            });
        }
        let start = p as u64;
        let end = start + arena_bytes;
        let stack_low = end - stack_bytes;
        let arena = Arena {
            start,
            end,
            stack_low,
            brk_start: start,
            brk: start,
            mmap_low: stack_low - GUARD_BYTES,
        };
        let unmap_arena = |e: SandboxError| {
            // SAFETY: the arena mapped above; nothing refers to it yet.
            unsafe { libc::munmap(p, arena_bytes as usize) };
            e
        };
        let mut view = View::new(dune).map_err(|e| unmap_arena(e.into()))?;
        let mut slots = vec![view.pool_range(), (start, end)];
        let cpu = cpu::CpuPages::new(dune, &mut view, &mut slots).map_err(unmap_arena)?;
        let mut sb = Sandbox {
            dune,
            view,
            cpu,
            slots,
            arena,
            cfg,
            fds: vec![0, 1, 2],
            opened: Vec::new(),
            denials: Vec::new(),
            stats: SandboxStats::default(),
            host_code_granted: false,
            fs_base: 0,
        };
        dune.register_slots(start, end)?;
        sb.view
            .map_user(stack_low, end, libc::PROT_READ | libc::PROT_WRITE)?;
        Ok(sb)
    }

    /// The arena `[start, end)`.
    pub fn arena(&self) -> (u64, u64) {
        (self.arena.start, self.arena.end)
    }

    /// Top of the sandbox's stack (16-byte aligned).
    pub fn stack_top(&self) -> u64 {
        self.arena.end
    }

    /// The arena as host memory, to load an image or arguments before a run and to read
    /// results after it (the sandbox runs only inside [`Sandbox::run`], which borrows
    /// `self` mutably, so nothing else writes it meanwhile).
    pub fn arena_mut(&mut self) -> &mut [u8] {
        // SAFETY: the arena is a private mapping owned by this sandbox for its lifetime,
        // readable and writable on the host; the sandboxed code only runs inside
        // `run(&mut self)`, so it cannot write while this borrow lives.
        unsafe {
            core::slice::from_raw_parts_mut(
                self.arena.start as *mut u8,
                (self.arena.end - self.arena.start) as usize,
            )
        }
    }

    /// Maps `[start, end)` of the arena (a program segment) into the view with `prot`; the
    /// heap (brk) starts after the highest image page.
    pub fn map_image(&mut self, start: u64, end: u64, prot: i32) -> Result<(), SandboxError> {
        let (s, e) = (start & !(BYTES_IN_PAGE - 1), page_up(end));
        if s < self.arena.start || e > self.arena.mmap_low - GUARD_BYTES || s >= e {
            return Err(SandboxError::BadRange {
                what: "program image",
                start,
                len_bytes: end.saturating_sub(start),
                reason: "not inside the arena below its mmap area",
            });
        }
        self.view.map_user(s, e, prot)?;
        self.arena.brk_start = self.arena.brk_start.max(e);
        self.arena.brk = self.arena.brk_start;
        Ok(())
    }

    /// Grants host memory `[start, start + len_bytes)` (rounded out to pages) to the
    /// sandbox with `access`.
    ///
    /// # Safety
    /// The range must stay mapped until the sandbox is dropped, and with
    /// [`Access::ReadWrite`] the caller accepts that the sandboxed code may write any byte
    /// of those pages while it runs (no Rust reference into them may be live during
    /// [`Sandbox::run`]).
    pub unsafe fn grant(
        &mut self,
        start: u64,
        len_bytes: u64,
        access: Access,
    ) -> Result<(), SandboxError> {
        let s = start & !(BYTES_IN_PAGE - 1);
        let Some(e) = start.checked_add(len_bytes).map(page_up) else {
            return Err(SandboxError::BadRange {
                what: "grant",
                start,
                len_bytes,
                reason: "wraps around",
            });
        };
        if e > crate::arch::addr::USER_END || s == 0 {
            return Err(SandboxError::BadRange {
                what: "grant",
                start,
                len_bytes,
                reason: "outside user space",
            });
        }
        self.dune.register_slots(s, e)?;
        self.slots.push((s, e));
        self.view.map_user(s, e, access.prot())?;
        Ok(())
    }

    /// Grants the host's read-only file-backed mappings (program text, rodata, shared
    /// libraries' code; never writable data, the heap or stacks) read-only, executable
    /// where they are: what a Rust closure needs to run its code. Done once.
    pub fn grant_host_code(&mut self) -> Result<(), SandboxError> {
        if self.host_code_granted {
            return Ok(());
        }
        let maps = std::fs::read_to_string("/proc/self/maps").map_err(|e| SandboxError::Os {
            op: "read /proc/self/maps",
            source: e,
        })?;
        for line in maps.lines() {
            let mut it = line.split_whitespace();
            let (Some(range), Some(perms)) = (it.next(), it.next()) else {
                continue;
            };
            let path = it.nth(3).unwrap_or("");
            if !path.starts_with('/') || !perms.starts_with('r') || perms.as_bytes()[1] == b'w' {
                continue;
            }
            let Some((a, b)) = range.split_once('-') else {
                continue;
            };
            let (Ok(a), Ok(b)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16)) else {
                continue;
            };
            let prot = if perms.as_bytes()[2] == b'x' {
                libc::PROT_READ | libc::PROT_EXEC
            } else {
                libc::PROT_READ
            };
            self.dune.register_slots(a, b)?;
            self.slots.push((a, b));
            self.view.map_user(a, b, prot)?;
        }
        self.host_code_granted = true;
        Ok(())
    }

    /// Lets the sandbox use host file descriptor `fd` (beyond 0, 1, 2).
    pub fn allow_fd(&mut self, fd: i32) {
        if !self.fds.contains(&fd) {
            self.fds.push(fd);
        }
    }

    /// Syscalls refused so far (by the policy or the core), oldest first.
    pub fn denials(&self) -> &[Denial] {
        &self.denials
    }

    /// Counters.
    pub fn stats(&self) -> SandboxStats {
        self.stats
    }

    /// The current program break (heap end).
    pub fn brk(&self) -> u64 {
        self.arena.brk
    }

    /// Runs the sandbox from `entry` until it exits, is denied, faults or times out.
    /// Works on a thread outside Dune and on a Dune thread (through its monitor).
    pub fn run(&mut self, entry: Entry, policy: &mut dyn Policy) -> Result<Outcome, SandboxError> {
        if crate::in_dune() {
            let mut req = cpu::RunRequest {
                sandbox: self,
                entry,
                policy,
                result: None,
            };
            let p = &mut req as *mut cpu::RunRequest<'_> as u64;
            let r = cpu::hypercall_with_arg(crate::state::dune::hypercall::SANDBOX_RUN, p);
            return req.result.take().unwrap_or_else(|| {
                Err(SandboxError::Dune(DuneError::Unsupported {
                    feature: "sandbox from this Dune thread",
                    reason: format!("the monitor did not serve the request (returned {r:#x})"),
                }))
            });
        }
        cpu::run(self, entry, policy)
    }

    /// Runs the closure `f` in the sandbox: its code comes from the host's text (granted
    /// read/execute by [`Sandbox::grant_host_code`]), `f` itself is moved onto the
    /// sandbox's stack, and its return value is the exit status. The closure sees only
    /// the arena and grants: it must not allocate, use thread-locals (FS base is 0) or
    /// call libc (a large closure is moved with libc's `memcpy`: keep it to a few words);
    /// use [`sys`] for syscalls. If the run does not end by the closure
    /// returning, `f` is not dropped.
    pub fn run_closure<F: FnOnce() -> i32>(
        &mut self,
        f: F,
        policy: &mut dyn Policy,
    ) -> Result<Outcome, SandboxError> {
        self.grant_host_code()?;
        let top = self.stack_top();
        let size = core::mem::size_of::<F>() as u64;
        let align = core::mem::align_of::<F>().max(16) as u64;
        if size + align + 4096 > self.arena.end - self.arena.stack_low {
            return Err(SandboxError::BadRange {
                what: "closure",
                start: top,
                len_bytes: size,
                reason: "larger than the sandbox's stack",
            });
        }
        let at = (top - 256 - size) & !(align - 1);
        // SAFETY: [at, at + size) lies in the arena's stack (mapped RW on the host,
        // aligned for F); the sandbox is not running; ownership of `f` moves there and is
        // taken by `closure_entry` (or leaked if the run ends otherwise).
        unsafe { core::ptr::write(at as *mut F, f) };
        let entry = Entry {
            rip: cpu::closure_entry::<F> as *const () as usize as u64,
            // as after a `call`: rsp % 16 == 8 at the first instruction
            rsp: (at & !15) - 8,
            args: [at, 0, 0],
        };
        self.run(entry, policy)
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        for &fd in &self.opened {
            // SAFETY: fds the sandbox opened; nothing else uses them.
            unsafe { libc::close(fd) };
        }
        // The view's entries and slots stay registered (harmless: no view maps the arena
        // once this view is gone, and KVM follows host unmaps through MMU notifiers).
        // SAFETY: the arena is ours; no vCPU runs this sandbox any more.
        unsafe {
            libc::munmap(
                self.arena.start as *mut libc::c_void,
                (self.arena.end - self.arena.start) as usize,
            )
        };
    }
}
