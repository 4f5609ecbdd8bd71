//! Guest syscalls, executed for the process by the host: classification, execution, and the
//! guest memory the kernel writes on the guest's behalf (no guest dirty bit is set for it).
//! Nothing here allocates: it runs in the exit loop.

/// A syscall as the guest made it (x86_64 Linux ABI: nr in rax, args rdi rsi rdx r10 r8 r9).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyscallArgs {
    /// Syscall number.
    pub nr: u64,
    /// Arguments.
    pub args: [u64; 6],
}

/// How the exit loop must treat a syscall.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Execute for the process and return the result.
    Forward,
    /// Execute, then update guest page tables and memory slots.
    AddressSpace(AddressOp),
    /// `arch_prctl`: FS/GS bases belong to the guest's segment state, not the host thread's.
    ArchPrctl,
    /// `exit`: the thread ends; release its vCPU first.
    ThreadExit,
    /// `exit_group`: the process ends.
    ProcessExit,
    /// clone, clone3, fork, vfork: a new thread (which enters Dune on its own vCPU) or a
    /// new process (which runs outside Dune).
    Clone(CloneOp),
    /// Signal state of the guest: kept by the monitor, not the host thread.
    Signal(SignalOp),
    /// Not supported in Dune mode: returns `-ENOSYS`; the string says why.
    Unsupported(&'static str),
}

/// The thread/process creation calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloneOp {
    /// clone(flags, newsp, parent_tid, child_tid, tls)
    Clone,
    /// clone3(args, size)
    Clone3,
    /// fork()
    Fork,
    /// vfork()
    Vfork,
}

/// The signal calls the monitor emulates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignalOp {
    /// rt_sigaction(sig, act, oldact, sigsetsize)
    Action,
    /// rt_sigreturn()
    Return,
    /// sigaltstack(ss, old_ss)
    AltStack,
}

/// Address-space changing calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressOp {
    /// mmap(addr, len, prot, flags, fd, off)
    Mmap,
    /// munmap(addr, len)
    Munmap,
    /// mremap(old, old_len, new_len, flags, new)
    Mremap,
    /// mprotect(addr, len, prot) / pkey_mprotect
    Mprotect,
    /// brk(addr)
    Brk,
}

/// Syscall numbers used here (x86_64).
pub mod nr {
    #![allow(missing_docs)]
    pub const READ: u64 = 0;
    pub const MMAP: u64 = 9;
    pub const MPROTECT: u64 = 10;
    pub const MUNMAP: u64 = 11;
    pub const BRK: u64 = 12;
    pub const RT_SIGRETURN: u64 = 15;
    pub const MREMAP: u64 = 25;
    pub const GETPID: u64 = 39;
    pub const EXIT: u64 = 60;
    pub const ARCH_PRCTL: u64 = 158;
    pub const EXIT_GROUP: u64 = 231;
    pub const PKEY_MPROTECT: u64 = 329;
}

/// Classifies syscall `nr`.
pub fn classify(nr: u64) -> Class {
    match nr {
        nr::MMAP => Class::AddressSpace(AddressOp::Mmap),
        nr::MUNMAP => Class::AddressSpace(AddressOp::Munmap),
        nr::MREMAP => Class::AddressSpace(AddressOp::Mremap),
        nr::MPROTECT | nr::PKEY_MPROTECT => Class::AddressSpace(AddressOp::Mprotect),
        nr::BRK => Class::AddressSpace(AddressOp::Brk),
        nr::ARCH_PRCTL => Class::ArchPrctl,
        nr::EXIT => Class::ThreadExit,
        nr::EXIT_GROUP => Class::ProcessExit,
        56 => Class::Clone(CloneOp::Clone),
        435 => Class::Clone(CloneOp::Clone3),
        57 => Class::Clone(CloneOp::Fork),
        58 => Class::Clone(CloneOp::Vfork),
        13 => Class::Signal(SignalOp::Action),
        15 => Class::Signal(SignalOp::Return),
        131 => Class::Signal(SignalOp::AltStack),
        // execve/execveat are forwarded: on success the new program replaces the process
        // and runs outside Dune (the VM's fds are close-on-exec)
        30 | 31 | 67 => Class::Unsupported("System V shared memory is not supported in Dune mode"),
        216 => Class::Unsupported("remap_file_pages is not supported in Dune mode"),
        _ => Class::Forward,
    }
}

/// Whether [`host_writes`] knew every byte the kernel may have written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coverage {
    /// Every written range was reported (possibly none).
    Exact,
    /// The call may have written guest memory we cannot name: treat all as written.
    Unknown,
}

/// Reports `(start, len_bytes)` for each guest range the kernel may have written while
/// executing `call` with result `ret` (negative = -errno: nothing written).
///
/// Reads `struct iovec` arrays and length cells through the `read_u64`/`read_u32` callbacks
/// so that this stays pure.
pub fn host_writes(
    call: &SyscallArgs,
    ret: i64,
    read_u64: &dyn Fn(u64) -> u64,
    read_u32: &dyn Fn(u64) -> u32,
    report: &mut dyn FnMut(u64, u64),
) -> Coverage {
    let a = call.args;
    let mut put = |p: u64, n: u64| {
        if p != 0 && n != 0 {
            report(p, n)
        }
    };
    let r = if ret > 0 { ret as u64 } else { 0 };
    if ret < 0 && ret > -4096 {
        return Coverage::Exact;
    }
    match call.nr {
        // read, pread64, getrandom, getdents64, getcwd, sched_getaffinity
        0 | 17 => put(a[1], r),
        318 => put(a[0], r),
        217 => put(a[1], r),
        79 => put(a[0], r),
        204 => put(a[2], r),
        89 => put(a[1], r),
        267 => put(a[2], r),
        // readv, preadv, preadv2: up to `ret` bytes through the iovec array
        19 | 295 | 327 => {
            let (iov, cnt) = (a[1], a[2].min(1024));
            let mut left = r;
            for i in 0..cnt {
                if left == 0 {
                    break;
                }
                let base = read_u64(iov + 16 * i);
                let len = read_u64(iov + 16 * i + 8).min(left);
                put(base, len);
                left -= len;
            }
        }
        // recvfrom(fd, buf, len, flags, addr, addrlen)
        45 => {
            put(a[1], r);
            if a[4] != 0 && a[5] != 0 {
                put(a[4], read_u32(a[5]) as u64);
                put(a[5], 4);
            }
        }
        // stat, fstat, lstat, newfstatat, statx
        4..=6 => put(a[1], 144),
        262 => put(a[2], 144),
        332 => put(a[4], 256),
        // clock_gettime, clock_getres, gettimeofday, time
        228 | 229 => put(a[1], 16),
        96 => {
            put(a[0], 16);
            put(a[1], 8)
        }
        201 => put(a[0], 8),
        // nanosleep, clock_nanosleep: remaining time
        35 => put(a[1], 16),
        230 => put(a[3], 16),
        // pipe, pipe2, socketpair
        22 | 293 => put(a[0], 8),
        53 => put(a[3], 8),
        // wait4(pid, status, options, rusage)
        61 => {
            put(a[1], 4);
            put(a[3], 144)
        }
        63 => put(a[0], 390),
        99 => put(a[0], 112),
        97 => put(a[1], 16),
        302 => put(a[3], 16),
        100 => put(a[0], 32),
        118 | 120 => {
            put(a[0], 4);
            put(a[1], 4);
            put(a[2], 4)
        }
        // poll, ppoll: revents of each pollfd; epoll_wait, epoll_pwait: events
        7 | 271 => put(a[0], a[1].min(1 << 20) * 8),
        232 | 281 => put(a[1], r * 12),
        // rt_sigprocmask(how, set, oldset, size)
        14 => put(a[2], a[3]),
        // accept, accept4, getsockname, getpeername (addr, *addrlen)
        43 | 288 | 51 | 52 => {
            if a[1] != 0 && a[2] != 0 {
                put(a[1], read_u32(a[2]) as u64);
                put(a[2], 4);
            }
        }
        // getsockopt(fd, level, name, val, *len)
        55 => {
            if a[4] != 0 {
                put(a[3], read_u32(a[4]) as u64);
                put(a[4], 4);
            }
        }
        // futex: only FUTEX_WAKE_OP (5) writes *uaddr2
        202 => {
            if a[1] & 0x7f == 5 {
                put(a[4], 4)
            }
        }
        // fcntl: F_GETLK writes struct flock
        72 => {
            if a[1] == 5 {
                put(a[2], 32)
            }
        }
        // timerfd_settime / timer_settime old value
        286 => put(a[3], 32),
        // sendfile offset, copy_file_range offsets
        40 => put(a[2], 8),
        326 => {
            put(a[1], 8);
            put(a[3], 8)
        }
        // calls that write no user memory
        1
        | 2
        | 3
        | 8
        | 18
        | 20
        | 21
        | 23
        | 24
        | 28
        | 32
        | 33
        | 34
        | 39
        | 41
        | 42
        | 44
        | 46
        | 48
        | 49
        | 50
        | 62
        | 74..=88
        | 90..=95
        | 102
        | 104
        | 107
        | 108
        | 110
        | 186
        | 200
        | 218
        | 221
        | 233
        | 234
        | 257
        | 258
        | 263
        | 264
        | 266
        | 268
        | 269
        | 273
        | 280
        | 284
        | 290
        | 291
        | 292
        | 316
        | 334 => {}
        // address-space calls: new memory is fresh (zero or file content), not a store
        9..=12 | 25 | 329 => {}
        _ => return Coverage::Unknown,
    }
    Coverage::Exact
}

/// Executes a syscall on the host thread; returns the raw kernel result (-errno on failure).
///
/// # Safety
/// The call runs with the guest's arguments in this process. The caller must have excluded
/// the calls that would break the host side ([`classify`] returns something other than
/// `Forward` for them); pointers in `call` are the guest program's own, valid in this process
/// because guest-physical == host-virtual.
pub unsafe fn execute(call: &SyscallArgs) -> i64 {
    let ret: i64;
    // SAFETY: the caller guarantees the call is one the program itself asked for, with its
    // own pointers; the syscall instruction clobbers only rcx and r11 (declared).
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") call.nr as i64 => ret,
            in("rdi") call.args[0],
            in("rsi") call.args[1],
            in("rdx") call.args[2],
            in("r10") call.args[3],
            in("r8") call.args[4],
            in("r9") call.args[5],
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writes(call: SyscallArgs, ret: i64) -> (Vec<(u64, u64)>, Coverage) {
        let mut v = Vec::new();
        let iov = |p: u64| match p {
            0x1000 => 0xa000,
            0x1008 => 10,
            0x1010 => 0xb000,
            0x1018 => 100,
            _ => 0,
        };
        let c = host_writes(&call, ret, &iov, &|_| 16, &mut |p, n| v.push((p, n)));
        (v, c)
    }

    #[test]
    fn read_reports_only_bytes_read() {
        let call = SyscallArgs {
            nr: nr::READ,
            args: [3, 0x5000, 4096, 0, 0, 0],
        };
        assert_eq!(writes(call, 100), (vec![(0x5000, 100)], Coverage::Exact));
        assert_eq!(writes(call, -11), (vec![], Coverage::Exact));
        assert_eq!(writes(call, 0), (vec![], Coverage::Exact));
    }

    #[test]
    fn readv_walks_the_iovec() {
        let call = SyscallArgs {
            nr: 19,
            args: [3, 0x1000, 2, 0, 0, 0],
        };
        assert_eq!(
            writes(call, 50),
            (vec![(0xa000, 10), (0xb000, 40)], Coverage::Exact)
        );
    }

    #[test]
    fn unknown_calls_say_so() {
        let call = SyscallArgs {
            nr: 16,
            args: [1, 0x5401, 0x7000, 0, 0, 0],
        }; // ioctl
        assert_eq!(writes(call, 0).1, Coverage::Unknown);
        let w = SyscallArgs {
            nr: 1,
            args: [1, 0x7000, 5, 0, 0, 0],
        }; // write
        assert_eq!(writes(w, 5), (vec![], Coverage::Exact));
    }

    #[test]
    fn classification() {
        assert_eq!(classify(nr::MMAP), Class::AddressSpace(AddressOp::Mmap));
        assert_eq!(classify(nr::GETPID), Class::Forward);
        assert_eq!(classify(56), Class::Clone(CloneOp::Clone));
        assert_eq!(classify(15), Class::Signal(SignalOp::Return));
        assert!(matches!(classify(31), Class::Unsupported(_)));
        assert_eq!(classify(59), Class::Forward);
        assert_eq!(classify(nr::EXIT), Class::ThreadExit);
    }

    #[test]
    fn execute_getpid_on_the_host() {
        // SAFETY: getpid has no arguments and no side effects.
        let pid = unsafe {
            execute(&SyscallArgs {
                nr: nr::GETPID,
                args: [0; 6],
            })
        };
        assert_eq!(pid, std::process::id() as i64);
    }
}
