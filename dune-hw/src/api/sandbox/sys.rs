// Layer 6: public API (dune-hw/LAYERS).
//! Raw syscalls for code running inside a sandbox: no libc, no errno, no thread-locals
//! (a sandbox's FS base is 0). Results are Linux's: `-errno` on failure.

/// Syscall `nr` with up to six arguments; returns rax.
#[inline(always)]
pub fn syscall6(nr: u64, a: [u64; 6]) -> i64 {
    let r: i64;
    // SAFETY: a syscall touches only memory its arguments name; inside a sandbox the
    // policy and the core check every argument, outside it Linux does. rcx and r11 are
    // clobbered by the instruction.
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") nr as i64 => r,
            in("rdi") a[0], in("rsi") a[1], in("rdx") a[2],
            in("r10") a[3], in("r8") a[4], in("r9") a[5],
            lateout("rcx") _, lateout("r11") _,
            options(nostack),
        );
    }
    r
}

/// `write(fd, buf)`.
#[inline(always)]
pub fn write(fd: i32, buf: &[u8]) -> i64 {
    syscall6(
        libc::SYS_write as u64,
        [fd as u64, buf.as_ptr() as u64, buf.len() as u64, 0, 0, 0],
    )
}

/// `getpid()`.
#[inline(always)]
pub fn getpid() -> i64 {
    syscall6(libc::SYS_getpid as u64, [0; 6])
}

/// `exit_group(status)`: ends the sandbox run with [`super::Outcome::Exited`].
#[inline(always)]
pub fn exit(status: i32) -> ! {
    syscall6(libc::SYS_exit_group as u64, [status as u64, 0, 0, 0, 0, 0]);
    // only reached if exit_group returned (it cannot, in a sandbox or on Linux)
    loop {
        core::hint::spin_loop()
    }
}
