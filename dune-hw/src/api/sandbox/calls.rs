// Layer 6: public API (dune-hw/LAYERS).
//! The sandbox's syscalls, host side: locate the call, ask the policy, then emulate,
//! check-and-forward or refuse, and resume after the `syscall` instruction.
//!
//! Nothing the sandbox passes is trusted: every file descriptor must be one it owns, every
//! pointer must name memory its view maps user-readable (user-writable where the kernel
//! writes), otherwise EBADF / EFAULT — the host kernel never reads or writes host memory
//! for the sandbox. Calls not listed here fail with ENOSYS.

use super::cpu::flush_tlb;
use super::sys::syscall6;
use super::{Denial, Memory, Outcome, Policy, Sandbox, SandboxError, Syscall, Verdict};
use super::{Outcome::Exited, GUARD_BYTES};
use crate::arch::addr::{read_guest, Gva, BYTES_IN_PAGE};
use crate::arch::entry::{RING3_SYSCALL_RIP_SLOT, RING3_SYSCALL_RSP_OFFSET};
use kmod::Vcpu;

mod memory;
use memory::*;

/// What the exit loop does after a syscall.
#[derive(Debug)]
pub(crate) enum Step {
    /// Continue the sandbox (the result is in rax).
    Resume,
    /// End the run.
    Finish(Outcome),
}

/// At most this many denials are kept (a hostile loop must not grow memory without bound).
const MAX_DENIALS_KEPT: usize = 10_000;
/// RFLAGS bits the sandbox may set (CF PF AF ZF SF TF DF OF AC ID); IF is always set, IOPL
/// never (a forged r11 must not give it port I/O).
const USER_RFLAGS: u64 = 0x24_0dd5;

const EPERM: i64 = 1;
const EBADF: i64 = 9;
const EMFILE: i64 = 24;
const ENOMEM: i64 = 12;
const EFAULT: i64 = 14;
const ENODEV: i64 = 19;
const EINVAL: i64 = 22;
const ENOTTY: i64 = 25;
const ENOSYS: i64 = 38;

mod nr {
    pub const READ: u64 = 0;
    pub const WRITE: u64 = 1;
    pub const OPEN: u64 = 2;
    pub const CLOSE: u64 = 3;
    pub const FSTAT: u64 = 5;
    pub const LSEEK: u64 = 8;
    pub const MMAP: u64 = 9;
    pub const MPROTECT: u64 = 10;
    pub const MUNMAP: u64 = 11;
    pub const BRK: u64 = 12;
    pub const RT_SIGACTION: u64 = 13;
    pub const RT_SIGPROCMASK: u64 = 14;
    pub const IOCTL: u64 = 16;
    pub const PREAD64: u64 = 17;
    pub const PWRITE64: u64 = 18;
    pub const READV: u64 = 19;
    pub const WRITEV: u64 = 20;
    pub const SCHED_YIELD: u64 = 24;
    pub const NANOSLEEP: u64 = 35;
    pub const GETPID: u64 = 39;
    pub const EXIT: u64 = 60;
    pub const UNAME: u64 = 63;
    pub const FCNTL: u64 = 72;
    pub const CREAT: u64 = 85;
    pub const GETTIMEOFDAY: u64 = 96;
    pub const GETUID: u64 = 102;
    pub const GETGID: u64 = 104;
    pub const GETEUID: u64 = 107;
    pub const GETEGID: u64 = 108;
    pub const GETPPID: u64 = 110;
    pub const ARCH_PRCTL: u64 = 158;
    pub const GETTID: u64 = 186;
    pub const SET_TID_ADDRESS: u64 = 218;
    pub const CLOCK_GETTIME: u64 = 228;
    pub const CLOCK_NANOSLEEP: u64 = 230;
    pub const EXIT_GROUP: u64 = 231;
    pub const OPENAT: u64 = 257;
    pub const NEWFSTATAT: u64 = 262;
    pub const SET_ROBUST_LIST: u64 = 273;
    pub const PRLIMIT64: u64 = 302;
    pub const GETRANDOM: u64 = 318;
    pub const RSEQ: u64 = 334;
    pub const OPENAT2: u64 = 437;
}

pub(crate) fn handle(
    sb: &mut Sandbox,
    vcpu: &mut Vcpu,
    policy: &mut dyn Policy,
) -> Result<Step, SandboxError> {
    let mut regs = vcpu.regs()?;
    sb.stats.syscalls += 1;
    // the stub left the return rip at trampoline rsp + 8: on the sandbox's own stack,
    // unless the code jumped to the trampoline itself with another rsp
    let slot = regs.rsp.wrapping_add(RING3_SYSCALL_RIP_SLOT);
    if !sb.view.user_can(slot, 8, false) {
        return Ok(Step::Finish(Outcome::Fault {
            vector: 14,
            name: "#PF",
            error_code: 0,
            rip: regs.rip,
            addr: Some(slot),
            what: "syscall trampoline entered with a stack outside the sandbox",
        }));
    }
    // SAFETY: the view maps these 8 bytes user-readable: sandbox memory, stopped.
    let ret_rip: u64 = unsafe { read_guest(Gva(slot)) };
    let user_rsp = regs.rsp.wrapping_add(RING3_SYSCALL_RSP_OFFSET);
    let call = Syscall {
        nr: regs.rax,
        args: [regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9],
    };
    if call.nr == nr::EXIT || call.nr == nr::EXIT_GROUP {
        return Ok(Step::Finish(Exited(call.args[0] as i32)));
    }
    let verdict = policy.decide(&call, &Memory { view: &sb.view });
    let ret = match verdict {
        Verdict::Allow => perform(sb, vcpu, &call)?,
        Verdict::Deny(errno) => {
            record(sb, &call, errno, "denied by the policy".into());
            -(errno as i64)
        }
        Verdict::Emulate(v) => v,
        Verdict::Kill(reason) => {
            record(sb, &call, 0, reason.clone());
            return Ok(Step::Finish(Outcome::Denied {
                syscall: call.name(),
                nr: call.nr,
                reason,
            }));
        }
    };
    regs.rax = ret as u64;
    regs.rip = ret_rip;
    regs.rsp = user_rsp;
    regs.rcx = ret_rip;
    regs.rflags = (regs.r11 & USER_RFLAGS) | 0x202;
    vcpu.set_regs(&regs)?;
    Ok(Step::Resume)
}

fn record(sb: &mut Sandbox, call: &Syscall, errno: i32, reason: String) {
    if sb.denials.len() < MAX_DENIALS_KEPT {
        sb.denials.push(Denial {
            call: *call,
            syscall: call.name(),
            errno,
            reason,
        });
    }
}

/// Fails the call with `errno`, recording why.
fn refuse(sb: &mut Sandbox, call: &Syscall, errno: i64, reason: String) -> i64 {
    record(sb, call, errno as i32, reason);
    -errno
}

fn forward(call: &Syscall) -> i64 {
    syscall6(call.nr, call.args)
}

fn page_up(a: u64) -> Option<u64> {
    a.checked_next_multiple_of(BYTES_IN_PAGE)
}

/// Makes `[start, end)` of the arena fresh zero pages on the host.
fn zero_host(start: u64, end: u64) {
    if end > start {
        // SAFETY: an arena range (owned by the sandbox); MADV_DONTNEED on private
        // anonymous memory only makes the pages read as zero again.
        unsafe {
            libc::madvise(
                start as *mut libc::c_void,
                (end - start) as usize,
                libc::MADV_DONTNEED,
            )
        };
    }
}

fn perform(sb: &mut Sandbox, vcpu: &mut Vcpu, call: &Syscall) -> Result<i64, SandboxError> {
    let [a0, a1, a2, a3, _a4, _a5] = call.args;
    let can = |sb: &Sandbox, addr: u64, len: u64, write: bool| sb.view.user_can(addr, len, write);
    let fd_ok = |sb: &Sandbox, fd: u64| i32::try_from(fd).is_ok_and(|f| sb.fds.contains(&f));
    let r = match call.nr {
        nr::BRK => brk(sb, vcpu, call)?,
        nr::MMAP => mmap(sb, vcpu, call)?,
        nr::MUNMAP => munmap(sb, vcpu, call)?,
        nr::MPROTECT => mprotect(sb, vcpu, call)?,
        nr::ARCH_PRCTL => arch_prctl(sb, vcpu, call)?,
        nr::SET_TID_ADDRESS => 1,
        nr::SET_ROBUST_LIST => 0,
        nr::RSEQ => -ENOSYS,
        nr::RT_SIGACTION | nr::RT_SIGPROCMASK => {
            // no signal is ever delivered into a sandbox: actions and masks are accepted
            // and the old ones read as empty
            let (old, len) = if call.nr == nr::RT_SIGACTION {
                (a2, 32)
            } else {
                (a2, a3.min(128))
            };
            if old != 0 {
                if !can(sb, old, len, true) {
                    return Ok(-EFAULT);
                }
                // SAFETY: `len` bytes the view maps user-writable: sandbox memory.
                unsafe { core::ptr::write_bytes(old as *mut u8, 0, len as usize) };
            }
            0
        }
        nr::READ | nr::PREAD64 => {
            if !fd_ok(sb, a0) {
                -EBADF
            } else if !can(sb, a1, a2, true) {
                -EFAULT
            } else {
                forward(call)
            }
        }
        nr::WRITE | nr::PWRITE64 => {
            if !fd_ok(sb, a0) {
                -EBADF
            } else if !can(sb, a1, a2, false) {
                -EFAULT
            } else {
                forward(call)
            }
        }
        nr::READV | nr::WRITEV => {
            if !fd_ok(sb, a0) {
                -EBADF
            } else if a2 > 1024 || !can(sb, a1, a2 * 16, false) {
                -EFAULT
            } else {
                let write_mem = call.nr == nr::READV;
                let mut ok = true;
                for i in 0..a2 {
                    // SAFETY: the iovec array is sandbox memory (checked above).
                    let (base, len): (u64, u64) = unsafe {
                        (
                            read_guest(Gva(a1 + 16 * i)),
                            read_guest(Gva(a1 + 16 * i + 8)),
                        )
                    };
                    ok &= can(sb, base, len, write_mem);
                }
                if ok {
                    forward(call)
                } else {
                    -EFAULT
                }
            }
        }
        nr::CLOSE => {
            if !fd_ok(sb, a0) {
                -EBADF
            } else {
                // a descriptor the host lent (0, 1, 2, `allow_fd`) leaves the sandbox's
                // table only: the host's stays open
                let fd = a0 as i32;
                sb.fds.retain(|&f| f != fd);
                if sb.opened.contains(&fd) {
                    sb.opened.retain(|&f| f != fd);
                    forward(call)
                } else {
                    0
                }
            }
        }
        nr::LSEEK => {
            if fd_ok(sb, a0) {
                forward(call)
            } else {
                -EBADF
            }
        }
        nr::FSTAT => {
            if !fd_ok(sb, a0) {
                -EBADF
            } else if !can(sb, a1, 144, true) {
                -EFAULT
            } else {
                forward(call)
            }
        }
        nr::NEWFSTATAT => {
            // only the fstat form (empty path, AT_EMPTY_PATH) on an owned descriptor
            let empty = Memory { view: &sb.view }
                .read_cstr(a1)
                .is_some_and(|p| p.is_empty());
            if !empty || a3 & 0x1000 == 0 {
                refuse(sb, call, ENOSYS, "stat by path is not supported".into())
            } else if !fd_ok(sb, a0) {
                -EBADF
            } else if !can(sb, a2, 144, true) {
                -EFAULT
            } else {
                forward(call)
            }
        }
        nr::IOCTL => {
            if !fd_ok(sb, a0) {
                -EBADF
            } else if a1 != libc::TCGETS {
                -ENOTTY
            } else if !can(sb, a2, 60, true) {
                -EFAULT
            } else {
                forward(call)
            }
        }
        nr::FCNTL => {
            if !fd_ok(sb, a0) {
                -EBADF
            } else if matches!(a1 as i32, libc::F_GETFD | libc::F_GETFL) {
                forward(call)
            } else {
                -EINVAL
            }
        }
        nr::OPEN | nr::OPENAT | nr::CREAT => open(sb, call),
        nr::GETPID
        | nr::GETPPID
        | nr::GETUID
        | nr::GETEUID
        | nr::GETGID
        | nr::GETEGID
        | nr::GETTID
        | nr::SCHED_YIELD => forward(call),
        nr::CLOCK_GETTIME => {
            if can(sb, a1, 16, true) {
                forward(call)
            } else {
                -EFAULT
            }
        }
        nr::GETTIMEOFDAY => {
            if (a0 == 0 || can(sb, a0, 16, true)) && (a1 == 0 || can(sb, a1, 8, true)) {
                forward(call)
            } else {
                -EFAULT
            }
        }
        nr::NANOSLEEP => {
            if can(sb, a0, 16, false) && (a1 == 0 || can(sb, a1, 16, true)) {
                forward(call)
            } else {
                -EFAULT
            }
        }
        nr::CLOCK_NANOSLEEP => {
            if can(sb, a2, 16, false) && (a3 == 0 || can(sb, a3, 16, true)) {
                forward(call)
            } else {
                -EFAULT
            }
        }
        nr::GETRANDOM => {
            if can(sb, a0, a1, true) {
                forward(call)
            } else {
                -EFAULT
            }
        }
        nr::UNAME => {
            if can(sb, a0, 390, true) {
                forward(call)
            } else {
                -EFAULT
            }
        }
        nr::PRLIMIT64 => {
            if a0 != 0 || a2 != 0 {
                -EPERM
            } else if a3 != 0 && !can(sb, a3, 16, true) {
                -EFAULT
            } else {
                forward(call)
            }
        }
        _ => refuse(
            sb,
            call,
            ENOSYS,
            "not supported in a sandbox (its arguments cannot be checked)".into(),
        ),
    };
    Ok(r)
}

fn open(sb: &mut Sandbox, call: &Syscall) -> i64 {
    let [a0, a1, a2, a3, ..] = call.args;
    let (dirfd, path, flags, mode) = match call.nr {
        nr::OPEN => (libc::AT_FDCWD as u64, a0, a1, a2),
        nr::CREAT => (
            libc::AT_FDCWD as u64,
            a0,
            (libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC) as u64,
            a1,
        ),
        _ => (a0, a1, a2, a3),
    };
    // an `int` argument: the kernel reads the low 32 bits
    let dirfd = dirfd as i32;
    let dir_ok = dirfd == libc::AT_FDCWD || sb.fds.contains(&dirfd);
    if !dir_ok {
        return -EBADF;
    }
    let Some(mut p) = (Memory { view: &sb.view }).read_cstr(path) else {
        return -EFAULT;
    };
    if sb.opened.len() >= sb.cfg.max_open_files {
        return refuse(
            sb,
            call,
            EMFILE,
            format!("open-file limit: {} files open", sb.opened.len()),
        );
    }
    p.push(0);
    let creating = flags & (libc::O_CREAT | libc::O_TMPFILE) as u64 != 0;
    // struct open_how: the path the policy checked is the one opened (no symlinks)
    let how: [u64; 3] = [
        flags | libc::O_CLOEXEC as u64,
        if creating { mode & 0o7777 } else { 0 },
        0x04 | 0x02, // RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS
    ];
    let fd = syscall6(
        nr::OPENAT2,
        [
            dirfd as i64 as u64,
            p.as_ptr() as u64,
            how.as_ptr() as u64,
            core::mem::size_of_val(&how) as u64,
            0,
            0,
        ],
    );
    if fd >= 0 {
        sb.fds.push(fd as i32);
        sb.opened.push(fd as i32);
    }
    fd
}
