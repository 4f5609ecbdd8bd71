// Layer 1: arch (dune-hw/LAYERS).
//! The assembly: entering and leaving the guest on the same stack, the CPL0 stubs of the
//! monitor, and the syscall entry of each mode. Layouts shared with the asm are checked by
//! `offset_of!` constants.
//!
//! # The syscall path (why it looks like this)
//! On our PVM host a CPL3 `syscall` does not behave architecturally: it enters the
//! hypervisor's paravirtual supervisor mode natively at LSTAR, where `sysretq`, `out`,
//! privileged instructions, exceptions and even MMIO faults are fatal or loop (measured; see
//! the crate docs). What does work there is `iretq`. So the ring-3 LSTAR stub builds an iret
//! frame *below the red zone* of the user stack and irets to a CPL3 trampoline, which stores
//! to an MMIO doorbell page (a guest-mapped page with no memory slot): that exits to the
//! host, which executes the syscall and resumes the thread at the instruction after its
//! `syscall` with the original stack pointer, rax = result, rcx/r11 as Linux leaves them.
//! In ring-0 mode `syscall` is architectural (CPL0 -> CPL0) and the stub is one `out`.
//!
//! Alternatives tried on this host (C probe and this crate):
//! - an MMIO store or `out` right at LSTAR (PVM supervisor mode): the store's page fault is
//!   reflected into the guest and recurses until a triple fault (dmesg shows the #PF chain);
//!   `out`, `sysretq`, exceptions there are fatal;
//! - `int $n` from CPL3 raises #UD; `ud2`-style traps need the program's own syscall
//!   instructions rewritten, which libc's are not;
//! - KVM has no exit for `syscall`; PVM's own supervisor ABI (issue 11) would run the
//!   LSTAR code natively but a syscall still needs an exit to reach the host kernel;
//! - the trampoline doing `out` (allowed at CPL3 by a TSS I/O bitmap; IOPL 3 in the iret
//!   frame is not honoured) instead of the MMIO store: the same ~30 us per getpid, so the
//!   simpler MMIO doorbell stays.
//!
//! Measured: getpid round trip 27-30 us (native 0.14 us); the C probe of this exact path
//! took 99k cycles, of which ~27k were the host's GET/SET_REGS ioctls and the syscall —
//! removed here by KVM_CAP_SYNC_REGS.
//!
//! `pvm` mode (PVM hosts, [`kmod::pvm`]): the program runs in the paravirtual user mode and
//! LSTAR is `dune_lstar_pvm`, which runs natively in the supervisor mode on the user stack
//! without touching it: a TLB-flush request is answered there (`HC_FLUSH_TLB`, `sysretq`),
//! anything else is one `out` to the syscall port (rcx = return rip, as in ring-0). The host
//! resumes the program through `dune_pvm_iret` (`HC_IRET_FRAME`: a trapped `iretq` would stay
//! in supervisor mode). Exceptions use the same stubs as the other modes, on IST 1 (events
//! from PV user mode are delivered on the *current* stack otherwise, TSS.rsp0 is never used).
//! Measured: getpid 29-30 us (the exit dominates, as in ring-3), TLB-flush request 4.4 us
//! (ring-3: 28.5 us).
//!
//! Exceptions go through the guest IDT to CPL0 stubs (emulated on PVM hosts, so they are
//! kept to a few instructions): push error code and vector, `out` to the exception port.
//! The host-side monitor handles it and resumes the interrupted code itself (registers
//! from the frame, user CS/SS), so the stubs' `add; iretq` tail is only a fallback.

use std::sync::atomic::AtomicU64;

mod frames;
mod stubs;

pub use frames::*;

/// Dune-private syscall numbers (a real kernel answers ENOSYS to them).
pub mod hypercall {
    /// Leave Dune mode: the thread continues on the host.
    pub const LEAVE: u64 = 0x0D0E_0001;
    /// Flush this vCPU's TLB (full).
    pub const FLUSH_TLB: u64 = 0x0D0E_0002;
    /// Do nothing (measures the round trip).
    pub const NOP: u64 = 0x0D0E_0003;
    /// Run a sandbox (rdi: its request, see [`crate::api::sandbox`]) from the monitor.
    pub const SANDBOX_RUN: u64 = 0x0D0E_0004;
    /// Flush this vCPU's translation of the page holding rdi (pvm: `HC_FLUSH_TLB_ONE` in
    /// the supervisor-mode syscall stub, no exit; ring-3: a full flush by the monitor).
    pub const FLUSH_TLB_PAGE: u64 = 0x0D0E_0005;
}

/// Port of the exception exit (`out` from a CPL0 stub).
pub const EXCEPTION_PORT: u16 = 0xde;
/// Port of the ring-0 syscall exit.
pub const SYSCALL_PORT: u16 = 0xdf;
/// Value stored to the doorbell by the ring-3 syscall trampoline.
pub const SYSCALL_DOORBELL_VALUE: u64 = 0x5359_5343; // "CSYS"
/// Bytes between the trampoline's rsp and the user's rsp at `syscall` (ring-3 stub).
pub const RING3_SYSCALL_RSP_OFFSET: u64 = 144;
/// Offset from the trampoline's rsp of the saved user return rip (ring-3 stub).
pub const RING3_SYSCALL_RIP_SLOT: u64 = 8;
/// RFLAGS bits cleared on syscall entry (IF, TF, DF, AC, NT).
pub const SFMASK: u64 = 0x47700;

/// Address of the doorbell page, read by the ring-3 trampoline (set once at init).
pub static DOORBELL_ADDR: AtomicU64 = AtomicU64::new(0);

/// Bytes of each thread's monitor stack (IST 1): the exception stubs of [`exception_stub_guest`]
/// treat an exception whose interrupted rsp lies within this many bytes below the IST top as
/// raised inside a guest fault handler.
pub const MONITOR_STACK_BYTES: u64 = 64 << 10;
/// Where the in-guest path saves the interrupted registers: this many bytes below the IST top
/// (a nested exception's frame, 56 bytes + one saved register, stays above it).
pub const GUEST_FRAME_OFFSET: u64 = 256;
/// Bytes reserved below the [`GuestTrapFrame`] for the interrupted code's XSAVE area.
pub const GUEST_XSAVE_BYTES: u64 = 12 << 10;
/// The XSAVE area starts this far below the frame (64-aligned down from there); the
/// `HC_IRET_FRAME` frame takes the 64 bytes right under the [`GuestTrapFrame`].
const GUEST_XSAVE_OFFSET: u64 = 64 + GUEST_XSAVE_BYTES;
/// Bit or-ed into the vector word of an exception raised inside a guest fault handler.
pub const VECTOR_NESTED: u64 = 0x100;
/// Bit or-ed into the vector word when the guest fault handler ran and returned
/// `Unhandled` (the host path does not call it again).
pub const VECTOR_DECLINED: u64 = 0x200;

/// Per vector: non-zero when a guest fault handler is installed (read by the stubs of
/// [`exception_stub_guest`] with one `cmpb`).
pub static GUEST_VECTORS: [core::sync::atomic::AtomicU8; 32] =
    [const { core::sync::atomic::AtomicU8::new(0) }; 32];
/// Non-zero: the in-guest path saves the extended state with `xsave64` (every XCR0
/// component); zero: `fxsave64` (x87/SSE only; the guest has no XCR0).
pub static GUEST_XSAVE: AtomicU64 = AtomicU64::new(0);

// Defined by a higher layer: `crate::services::fault::dune_guest_trap`, exported unmangled under this
// name, so that the assembly here does not import from the services above it.
extern "C" {
    /// The in-guest exception dispatcher the stubs call on the monitor stack with the saved
    /// frame. Returns 1 to resume with the (updated) frame, 0 to continue on the host path.
    fn dune_guest_trap(f: &mut GuestTrapFrame) -> u64;
}

extern "C" {
    /// Saves the host frame, switches to `stack_top` and calls `entry(frame)`. Returns (in
    /// the guest, or on the host after a failure) the value the monitor chose.
    pub fn dune_enter_trampoline(
        frame: *mut EnterFrame,
        entry: extern "C" fn(*mut EnterFrame) -> !,
        stack_top: u64,
    ) -> u64;
    /// Restores `frame` on the host CPU and continues there with rax = `rax`.
    pub fn dune_resume_host(frame: *const EnterFrame, rax: u64) -> !;
    /// Runs `req.nr` (clone or clone3) with `req.args`; returns its result in the parent;
    /// the child calls `req.child_fn(req.child_arg)` on the stack the call gave it.
    pub fn dune_clone(req: *const CloneReq) -> i64;
    /// Continues on the host with every register of `regs` (rcx and r11 are taken from it
    /// too: use at a syscall return, where Linux defines them).
    pub fn dune_resume_host_regs(regs: *const kvm_bindings::kvm_regs) -> !;
    /// Stores 1 to `*exited` and calls exit(`code`) with no memory access in between.
    pub fn dune_exit_thread(exited: *mut u32, code: u64) -> !;
    /// `sa_restorer` of host signal actions: rt_sigreturn.
    pub fn dune_host_restorer();
    fn dune_stubs_start();
    fn dune_stubs_end();
    fn dune_lstar_ring3();
    fn dune_lstar_ring0();
    fn dune_lstar_pvm();
    fn dune_pvm_iret();
    fn dune_exc_stubs();
    fn dune_exc_stubs_guest();
    fn dune_irq_stub();
}

/// Whether `rip` is in the monitor's own code (stubs, trampolines): a signal is not
/// delivered to the guest while it executes there (it exits to the host shortly).
pub fn in_monitor_code(rip: u64) -> bool {
    let start = dune_stubs_start as *const () as usize as u64;
    let end = dune_stubs_end as *const () as usize as u64;
    (start..end).contains(&rip)
}

/// LSTAR for ring-3 mode.
pub fn lstar_ring3() -> u64 {
    dune_lstar_ring3 as *const () as usize as u64
}
/// LSTAR for `pvm` mode.
pub fn lstar_pvm() -> u64 {
    dune_lstar_pvm as *const () as usize as u64
}
/// The `HC_IRET_FRAME` hypercall through which the host returns a `pvm` vCPU from
/// supervisor to user mode (rax = the hypercall, rbx = a [`PvmIretFrame`]).
pub fn pvm_iret() -> u64 {
    dune_pvm_iret as *const () as usize as u64
}

/// LSTAR for ring-0 mode.
pub fn lstar_ring0() -> u64 {
    dune_lstar_ring0 as *const () as usize as u64
}
/// Handler address of exception `vector` (0..32) with in-guest delivery (see
/// [`crate::services::fault::set_guest_fault_handler`]), or the catch-all stub.
pub fn exception_stub_guest(vector: u8) -> u64 {
    if vector < 32 {
        dune_exc_stubs_guest as *const () as usize as u64 + 32 * vector as u64
    } else {
        dune_irq_stub as *const () as usize as u64
    }
}

/// Handler address of exception `vector` (0..32), or the catch-all stub.
pub fn exception_stub(vector: u8) -> u64 {
    if vector < 32 {
        dune_exc_stubs as *const () as usize as u64 + 16 * vector as u64
    } else {
        dune_irq_stub as *const () as usize as u64
    }
}

/// Issues a Dune hypercall (a syscall with a Dune-private number) and returns rax.
pub fn hypercall(nr: u64) -> u64 {
    let r: u64;
    // SAFETY: in Dune mode the monitor answers it; outside, Linux answers ENOSYS. The
    // syscall instruction clobbers rcx and r11; LEAVE may resume with only callee-saved
    // registers intact, hence clobber_abi("C").
    unsafe {
        core::arch::asm!("syscall", inlateout("rax") nr => r, clobber_abi("C"));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stubs_are_16_bytes_apart_and_push_the_vector() {
        // each stub: [push $0 | nop nop] push $v jmp -> fits in 16 bytes; check the code
        for v in [0u8, 6, 13, 14, 31] {
            let p = exception_stub(v) as *const u8;
            // SAFETY: reading our own .text bytes.
            let bytes = unsafe { core::slice::from_raw_parts(p, 4) };
            let push_at = 2;
            assert_eq!(bytes[push_at], 0x6a, "push imm8 at vector {v}");
            assert_eq!(bytes[push_at + 1], v);
            let p = exception_stub_guest(v) as *const u8;
            // SAFETY: reading our own .text bytes.
            let bytes = unsafe { core::slice::from_raw_parts(p, 6) };
            assert_eq!(bytes[push_at], 0x6a, "guest stub: push imm8 at vector {v}");
            assert_eq!(bytes[push_at + 1], v);
            assert_eq!(&bytes[4..6], &[0x80, 0x3d], "guest stub: cmpb rip-relative");
        }
    }
}
