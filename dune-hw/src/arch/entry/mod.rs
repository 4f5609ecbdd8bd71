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

use core::mem::offset_of;
use std::sync::atomic::AtomicU64;

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

/// Host state saved when a thread enters the guest and restored when it leaves.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct EnterFrame {
    /// Callee-saved registers (SysV).
    pub rbx: u64,
    /// Frame pointer.
    pub rbp: u64,
    /// r12.
    pub r12: u64,
    /// r13.
    pub r13: u64,
    /// r14.
    pub r14: u64,
    /// r15.
    pub r15: u64,
    /// Where execution continues.
    pub rip: u64,
    /// Stack pointer there.
    pub rsp: u64,
}

const _: () = {
    assert!(offset_of!(EnterFrame, rbx) == 0);
    assert!(offset_of!(EnterFrame, rbp) == 8);
    assert!(offset_of!(EnterFrame, r12) == 16);
    assert!(offset_of!(EnterFrame, r15) == 40);
    assert!(offset_of!(EnterFrame, rip) == 48);
    assert!(offset_of!(EnterFrame, rsp) == 56);
};

/// What a CPL0 exception stub leaves on the monitor stack (rsp at the `out`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ExceptionFrame {
    /// Vector number.
    pub vector: u64,
    /// Error code (0 for vectors without one).
    pub error: u64,
    /// Faulting rip.
    pub rip: u64,
    /// Interrupted CS.
    pub cs: u64,
    /// Interrupted RFLAGS.
    pub rflags: u64,
    /// Interrupted rsp.
    pub rsp: u64,
    /// Interrupted SS.
    pub ss: u64,
}

const _: () = {
    assert!(offset_of!(ExceptionFrame, vector) == 0);
    assert!(offset_of!(ExceptionFrame, error) == 8);
    assert!(offset_of!(ExceptionFrame, rip) == 16);
    assert!(offset_of!(ExceptionFrame, rsp) == 40);
    assert!(core::mem::size_of::<ExceptionFrame>() == 56);
};

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

/// What the in-guest exception path saves on the monitor stack before it calls the Rust
/// dispatcher ([`crate::services::fault`]); written back on resume.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
#[allow(missing_docs)] // the register names are the docs
pub struct GuestTrapFrame {
    pub rax: u64,
    pub rbx: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub rbp: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
    /// Vector (with [`VECTOR_DECLINED`] set by the dispatcher when the handler declined).
    pub vector: u64,
    /// Error code (0 for vectors without one).
    pub error: u64,
    /// Interrupted rip.
    pub rip: u64,
    /// Interrupted CS (RPL 3: PV user mode, resumed through `HC_IRET_FRAME`).
    pub cs: u64,
    /// Interrupted RFLAGS.
    pub rflags: u64,
    /// Interrupted rsp.
    pub rsp: u64,
    /// Interrupted SS.
    pub ss: u64,
    /// Scratch (the dispatcher reads CR2 itself).
    pub cr2: u64,
    /// Padding to 16 bytes.
    pub pad: u64,
}

const _: () = {
    assert!(offset_of!(GuestTrapFrame, rax) == 0);
    assert!(offset_of!(GuestTrapFrame, rbx) == 8);
    assert!(offset_of!(GuestTrapFrame, rdi) == 40);
    assert!(offset_of!(GuestTrapFrame, rbp) == 48);
    assert!(offset_of!(GuestTrapFrame, r8) == 56);
    assert!(offset_of!(GuestTrapFrame, r15) == 112);
    assert!(offset_of!(GuestTrapFrame, vector) == 120);
    assert!(offset_of!(GuestTrapFrame, error) == 128);
    assert!(offset_of!(GuestTrapFrame, rip) == 136);
    assert!(offset_of!(GuestTrapFrame, cs) == 144);
    assert!(offset_of!(GuestTrapFrame, rflags) == 152);
    assert!(offset_of!(GuestTrapFrame, rsp) == 160);
    assert!(offset_of!(GuestTrapFrame, ss) == 168);
    assert!(offset_of!(GuestTrapFrame, cr2) == 176);
    assert!(core::mem::size_of::<GuestTrapFrame>() == 192);
    // the frame ends at IST top - 64, below a nested exception's push
    assert!(GUEST_FRAME_OFFSET - 192 == 64);
};

core::arch::global_asm!(
    ".pushsection .text.dune_entry, \"ax\"",
    ".p2align 4",
    ".globl dune_stubs_start",
    "dune_stubs_start:",
    ".globl dune_enter_trampoline",
    // (frame: *mut EnterFrame, entry: extern "C" fn(*mut EnterFrame) -> !, stack_top: u64) -> u64
    "dune_enter_trampoline:",
    "mov %rbx, 0(%rdi)",
    "mov %rbp, 8(%rdi)",
    "mov %r12, 16(%rdi)",
    "mov %r13, 24(%rdi)",
    "mov %r14, 32(%rdi)",
    "mov %r15, 40(%rdi)",
    "mov (%rsp), %rax",
    "mov %rax, 48(%rdi)",
    "lea 8(%rsp), %rax",
    "mov %rax, 56(%rdi)",
    "mov %rdx, %rsp",
    "call *%rsi",
    "ud2",
    ".p2align 4",
    ".globl dune_resume_host",
    // (frame: *const EnterFrame, rax: u64) -> !
    "dune_resume_host:",
    "mov 0(%rdi), %rbx",
    "mov 8(%rdi), %rbp",
    "mov 16(%rdi), %r12",
    "mov 24(%rdi), %r13",
    "mov 32(%rdi), %r14",
    "mov 40(%rdi), %r15",
    "mov 56(%rdi), %rsp",
    "mov %rsi, %rax",
    "jmp *48(%rdi)",
    // ---- clone on the host: the child calls child_fn(child_arg) on its own stack ----
    ".p2align 4",
    ".globl dune_clone",
    // (req: *const CloneReq) -> i64
    "dune_clone:",
    "push %rbx",
    "push %r12",
    "mov 0(%rdi), %rax",
    "mov 48(%rdi), %r12",
    "mov 56(%rdi), %rbx",
    "mov 16(%rdi), %rsi",
    "mov 24(%rdi), %rdx",
    "mov 32(%rdi), %r10",
    "mov 40(%rdi), %r8",
    "mov 8(%rdi), %rdi",
    "syscall",
    "test %rax, %rax",
    "jz 1f",
    "pop %r12",
    "pop %rbx",
    "ret",
    "1:",
    "xor %ebp, %ebp",
    "mov %rbx, %rdi",
    "and $-16, %rsp",
    "call *%r12",
    "ud2",
    // ---- continue on the host with every register of a kvm_regs (a syscall return) ----
    ".p2align 4",
    ".globl dune_resume_host_regs",
    "dune_resume_host_regs:",
    "pushq 136(%rdi)",
    "popfq",
    "mov 0(%rdi), %rax",
    "mov 8(%rdi), %rbx",
    "mov 24(%rdi), %rdx",
    "mov 32(%rdi), %rsi",
    "mov 56(%rdi), %rbp",
    "mov 64(%rdi), %r8",
    "mov 72(%rdi), %r9",
    "mov 80(%rdi), %r10",
    "mov 88(%rdi), %r11",
    "mov 96(%rdi), %r12",
    "mov 104(%rdi), %r13",
    "mov 112(%rdi), %r14",
    "mov 120(%rdi), %r15",
    "mov 128(%rdi), %rcx",
    "mov 48(%rdi), %rsp",
    "mov 40(%rdi), %rdi",
    "jmp *%rcx",
    // ---- a thread ending inside Dune: mark its stacks free, exit without touching them ----
    ".p2align 4",
    ".globl dune_exit_thread",
    "dune_exit_thread:",
    "movl $1, (%rdi)",
    "mov %rsi, %rdi",
    "mov $60, %eax",
    "syscall",
    "ud2",
    // ---- sa_restorer of the host actions the monitor installs ----
    ".p2align 4",
    ".globl dune_host_restorer",
    "dune_host_restorer:",
    "mov $15, %eax",
    "syscall",
    "ud2",
    // ---- ring-3 syscall entry: runs natively in PVM supervisor mode on the user stack ----
    ".p2align 6",
    ".globl dune_lstar_ring3",
    "dune_lstar_ring3:",
    "lea -128(%rsp), %rsp", // step over the red zone
    "push %rcx",            // user return rip (host reads it at trampoline rsp + 8)
    "pushq $0x2b",          // SS
    "pushq %rsp",           // RSP for the trampoline (= user rsp - 144)
    "pushq %r11",           // RFLAGS (user's)
    "pushq $0x33",          // CS
    "lea dune_syscall_tramp(%rip), %rcx",
    "push %rcx",
    "iretq",
    "dune_syscall_tramp:", // CPL3: ring the doorbell (MMIO exit)
    "mov {doorbell}(%rip), %rcx",
    "movl ${magic}, (%rcx)",
    "ud2", // not reached: the host resumes at the user's return rip
    // ---- pvm syscall entry: PV supervisor mode, native; the user stack is not touched ----
    ".p2align 6",
    ".globl dune_lstar_pvm",
    "dune_lstar_pvm:",
    "cmp ${flush}, %rax",
    "je 1f",
    "cmp ${flushpage}, %rax",
    "je 2f",
    "out %al, ${sysport}", // exit: the host runs the syscall and resumes the program
    "ud2",
    "1:", // TLB-flush request: the hypercall (preserves every register but rax), then
    // `sysretq` (trapped and emulated: back to user mode at rcx, rflags = r11)
    "mov ${hcflush}, %eax",
    "int ${hcvec}",
    "xor %eax, %eax",
    "sysretq",
    "2:", // one-page flush request (rdi: the address): HC_FLUSH_TLB_ONE takes it in rbx,
    // which the program expects preserved, hence the exchanges; a full flush if refused
    "xchg %rdi, %rbx",
    "mov ${hcflushone}, %eax",
    "int ${hcvec}",
    "xchg %rdi, %rbx",
    "test %rax, %rax",
    "jz 3f",
    "mov ${hcflush}, %eax",
    "int ${hcvec}",
    "3:",
    "xor %eax, %eax",
    "sysretq",
    // ---- pvm: the host resumes user code from supervisor mode through this stub, with
    // rax = HC_IRET_FRAME and rbx = a PvmIretFrame on the monitor stack ----
    ".p2align 4",
    ".globl dune_pvm_iret",
    "dune_pvm_iret:",
    "int ${hcvec}",
    "ud2",
    // ---- ring-0 syscall entry: architectural syscall at CPL0 ----
    ".p2align 6",
    ".globl dune_lstar_ring0",
    "dune_lstar_ring0:",
    "out %al, ${sysport}",
    "ud2",
    // ---- exception stubs (CPL0) ----
    ".p2align 4",
    ".globl dune_exc_stubs",
    "dune_exc_stubs:",
    ".set dune_v, 0",
    ".rept 32",
    ".p2align 4",
    ".if (dune_v == 8) || (dune_v >= 10 && dune_v <= 14) || (dune_v == 17) || (dune_v == 21) || (dune_v == 29) || (dune_v == 30)",
    "nop; nop",
    ".else",
    "pushq $0",
    ".endif",
    "pushq $dune_v",
    "jmp dune_exc_common",
    ".set dune_v, dune_v + 1",
    ".endr",
    ".p2align 4",
    ".globl dune_irq_stub",
    "dune_irq_stub:",
    "pushq $0",
    "pushq $255",
    "dune_exc_common:",
    "out %al, ${excport}",
    "add $16, %rsp",
    "iretq",
    // ---- exception stubs with in-guest delivery (ring0, pvm, pvm-ring0): a vector with a
    // guest handler ([`crate::services::fault::set_guest_fault_handler`]) goes to `dune_guest_entry`,
    // any other to the exit above. 32 bytes apart. ----
    ".p2align 5",
    ".globl dune_exc_stubs_guest",
    "dune_exc_stubs_guest:",
    ".set dune_g, 0",
    ".rept 32",
    ".p2align 5",
    ".if (dune_g == 8) || (dune_g >= 10 && dune_g <= 14) || (dune_g == 17) || (dune_g == 21) || (dune_g == 29) || (dune_g == 30)",
    "nop; nop",
    ".else",
    "pushq $0",
    ".endif",
    "pushq $dune_g",
    "cmpb $0, {gvec}+dune_g(%rip)",
    "jne dune_guest_entry",
    "jmp dune_exc_common",
    ".set dune_g, dune_g + 1",
    ".endr",
    // rsp = IST top - 56: vector, error, rip, cs, rflags, rsp, ss
    ".p2align 4",
    "dune_guest_entry:",
    // nested: the interrupted code ran on this monitor stack (a guest handler faulted)
    "push %rax",
    "lea 64(%rsp), %rax",
    "sub 48(%rsp), %rax",
    "cmp ${monstack}, %rax",
    "pop %rax",
    "jb 8f",
    // GuestTrapFrame at IST top - 256 (rsp - 200): a nested exception's frame (top - 64 ..
    // top) cannot reach it
    "mov %rax, -200(%rsp)",
    "lea -200(%rsp), %rax",
    "mov %rbx, 8(%rax)",
    "mov %rcx, 16(%rax)",
    "mov %rdx, 24(%rax)",
    "mov %rsi, 32(%rax)",
    "mov %rdi, 40(%rax)",
    "mov %rbp, 48(%rax)",
    "mov %r8, 56(%rax)",
    "mov %r9, 64(%rax)",
    "mov %r10, 72(%rax)",
    "mov %r11, 80(%rax)",
    "mov %r12, 88(%rax)",
    "mov %r13, 96(%rax)",
    "mov %r14, 104(%rax)",
    "mov %r15, 112(%rax)",
    "mov 0(%rsp), %rbx",
    "mov %rbx, 120(%rax)",
    "mov 8(%rsp), %rbx",
    "mov %rbx, 128(%rax)",
    "mov 16(%rsp), %rbx",
    "mov %rbx, 136(%rax)",
    "mov 24(%rsp), %rbx",
    "mov %rbx, 144(%rax)",
    "mov 32(%rsp), %rbx",
    "mov %rbx, 152(%rax)",
    "mov 40(%rsp), %rbx",
    "mov %rbx, 160(%rax)",
    "mov 48(%rsp), %rbx",
    "mov %rbx, 168(%rax)",
    "mov %rax, %rsp",
    "mov %rax, %r12", // F, callee-saved across the call
    "xor %eax, %eax",
    "mov %rax, 176(%rsp)", // cr2: read by the dispatcher for #PF
    // extended state (the handler is ordinary Rust/libc code): below F, 64-aligned
    "lea -{xsoff}(%rsp), %rbx",
    "and $-64, %rbx",
    "cmpq $0, {xsflag}(%rip)",
    "je 2f",
    "mov %rax, 520(%rbx)",
    "mov %rax, 528(%rbx)",
    "mov %rax, 536(%rbx)",
    "mov %rax, 544(%rbx)",
    "mov %rax, 552(%rbx)",
    "mov %rax, 560(%rbx)",
    "mov %rax, 568(%rbx)",
    "mov $-1, %eax",
    "mov $-1, %edx",
    "xsave64 (%rbx)",
    "jmp 3f",
    "2:",
    "fxsave64 (%rbx)",
    "3:",
    "mov %rbx, %rsp",
    "mov %r12, %rdi",
    "cld",
    "call {dispatch}",
    "mov %rax, %r13",
    "cmpq $0, {xsflag}(%rip)",
    "je 4f",
    "mov $-1, %eax",
    "mov $-1, %edx",
    "xrstor64 (%rbx)",
    "jmp 5f",
    "4:",
    "fxrstor64 (%rbx)",
    "5:",
    "mov %r12, %rsp",
    "test %r13, %r13",
    "jz 7f",
    "testb $3, 144(%rsp)",
    "jnz 6f",
    // resume at CPL0 / in PV supervisor mode (ring0, pvm-ring0): iretq
    "pushq 168(%rsp)",
    "pushq 168(%rsp)",
    "pushq 168(%rsp)",
    "pushq 168(%rsp)",
    "pushq 168(%rsp)",
    "mov 48(%rsp), %rbx",
    "mov 56(%rsp), %rcx",
    "mov 64(%rsp), %rdx",
    "mov 72(%rsp), %rsi",
    "mov 80(%rsp), %rdi",
    "mov 88(%rsp), %rbp",
    "mov 96(%rsp), %r8",
    "mov 104(%rsp), %r9",
    "mov 112(%rsp), %r10",
    "mov 120(%rsp), %r11",
    "mov 128(%rsp), %r12",
    "mov 136(%rsp), %r13",
    "mov 144(%rsp), %r14",
    "mov 152(%rsp), %r15",
    "mov 40(%rsp), %rax",
    "iretq",
    // resume in PV user mode (pvm): HC_IRET_FRAME with {rax, rbx, rdi, rip, cs, rflags,
    // rsp, ss} at F - 64; the hypercall keeps every other register
    "6:",
    "lea -64(%rsp), %rbx",
    "mov 0(%rsp), %rax",
    "mov %rax, 0(%rbx)",
    "mov 8(%rsp), %rax",
    "mov %rax, 8(%rbx)",
    "mov 40(%rsp), %rax",
    "mov %rax, 16(%rbx)",
    "mov 136(%rsp), %rax",
    "mov %rax, 24(%rbx)",
    "mov 144(%rsp), %rax",
    "mov %rax, 32(%rbx)",
    "mov 152(%rsp), %rax",
    "mov %rax, 40(%rbx)",
    "mov 160(%rsp), %rax",
    "mov %rax, 48(%rbx)",
    "mov 168(%rsp), %rax",
    "mov %rax, 56(%rbx)",
    "mov 16(%rsp), %rcx",
    "mov 24(%rsp), %rdx",
    "mov 32(%rsp), %rsi",
    "mov 48(%rsp), %rbp",
    "mov 56(%rsp), %r8",
    "mov 64(%rsp), %r9",
    "mov 72(%rsp), %r10",
    "mov 80(%rsp), %r11",
    "mov 88(%rsp), %r12",
    "mov 96(%rsp), %r13",
    "mov 104(%rsp), %r14",
    "mov 112(%rsp), %r15",
    "mov ${hciret}, %eax",
    "int ${hcvec}",
    "ud2",
    // not handled in the guest: the exit with the original frame back at IST top - 56
    // (a native step of the save or restore in ring0 mode may have overwritten it)
    "7:",
    "mov 120(%rsp), %rax",
    "mov %rax, 200(%rsp)",
    "mov 128(%rsp), %rax",
    "mov %rax, 208(%rsp)",
    "mov 136(%rsp), %rax",
    "mov %rax, 216(%rsp)",
    "mov 144(%rsp), %rax",
    "mov %rax, 224(%rsp)",
    "mov 152(%rsp), %rax",
    "mov %rax, 232(%rsp)",
    "mov 160(%rsp), %rax",
    "mov %rax, 240(%rsp)",
    "mov 168(%rsp), %rax",
    "mov %rax, 248(%rsp)",
    "mov 8(%rsp), %rbx",
    "mov 16(%rsp), %rcx",
    "mov 24(%rsp), %rdx",
    "mov 32(%rsp), %rsi",
    "mov 40(%rsp), %rdi",
    "mov 48(%rsp), %rbp",
    "mov 56(%rsp), %r8",
    "mov 64(%rsp), %r9",
    "mov 72(%rsp), %r10",
    "mov 80(%rsp), %r11",
    "mov 88(%rsp), %r12",
    "mov 96(%rsp), %r13",
    "mov 104(%rsp), %r14",
    "mov 112(%rsp), %r15",
    "mov 0(%rsp), %rax",
    "lea 200(%rsp), %rsp",
    "jmp dune_exc_common",
    "8:",
    "orq ${nested}, (%rsp)",
    "jmp dune_exc_common",
    ".globl dune_stubs_end",
    "dune_stubs_end:",
    ".popsection",
    doorbell = sym DOORBELL_ADDR,
    magic = const SYSCALL_DOORBELL_VALUE,
    sysport = const SYSCALL_PORT,
    excport = const EXCEPTION_PORT,
    flush = const hypercall::FLUSH_TLB,
    hcflush = const kmod::pvm::HC_FLUSH_TLB,
    flushpage = const hypercall::FLUSH_TLB_PAGE,
    hcflushone = const kmod::pvm::HC_FLUSH_TLB_ONE,
    hcvec = const kmod::pvm::HYPERCALL_VECTOR,
    gvec = sym GUEST_VECTORS,
    monstack = const MONITOR_STACK_BYTES,
    xsoff = const GUEST_XSAVE_OFFSET,
    xsflag = sym GUEST_XSAVE,
    dispatch = sym dune_guest_trap,
    hciret = const kmod::pvm::HC_IRET_FRAME,
    nested = const VECTOR_NESTED,
    options(att_syntax),
);

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

/// A host clone for [`dune_clone`].
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct CloneReq {
    /// Syscall number (clone or clone3).
    pub nr: u64,
    /// Arguments in rdi, rsi, rdx, r10, r8.
    pub args: [u64; 5],
    /// What the child calls (never returns).
    pub child_fn: extern "C" fn(u64) -> !,
    /// Its argument.
    pub child_arg: u64,
}

const _: () = {
    assert!(offset_of!(CloneReq, args) == 8);
    assert!(offset_of!(CloneReq, child_fn) == 48);
    assert!(offset_of!(CloneReq, child_arg) == 56);
    use kvm_bindings::kvm_regs;
    assert!(offset_of!(kvm_regs, rax) == 0);
    assert!(offset_of!(kvm_regs, rbx) == 8);
    assert!(offset_of!(kvm_regs, rcx) == 16);
    assert!(offset_of!(kvm_regs, rdx) == 24);
    assert!(offset_of!(kvm_regs, rsi) == 32);
    assert!(offset_of!(kvm_regs, rdi) == 40);
    assert!(offset_of!(kvm_regs, rsp) == 48);
    assert!(offset_of!(kvm_regs, rbp) == 56);
    assert!(offset_of!(kvm_regs, r8) == 64);
    assert!(offset_of!(kvm_regs, r11) == 88);
    assert!(offset_of!(kvm_regs, r15) == 120);
    assert!(offset_of!(kvm_regs, rip) == 128);
    assert!(offset_of!(kvm_regs, rflags) == 136);
};

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

/// The frame of the `HC_IRET_FRAME` hypercall (see [`kmod::pvm::HC_IRET_FRAME`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PvmIretFrame {
    /// rax in user mode.
    pub rax: u64,
    /// rbx in user mode.
    pub rbx: u64,
    /// rdi in user mode.
    pub rdi: u64,
    /// Where user mode resumes.
    pub rip: u64,
    /// User CS.
    pub cs: u64,
    /// RFLAGS there.
    pub rflags: u64,
    /// Stack pointer there.
    pub rsp: u64,
    /// User SS.
    pub ss: u64,
}

const _: () = {
    assert!(offset_of!(PvmIretFrame, rax) == 0);
    assert!(offset_of!(PvmIretFrame, rbx) == 8);
    assert!(offset_of!(PvmIretFrame, rdi) == 16);
    assert!(offset_of!(PvmIretFrame, rip) == 24);
    assert!(offset_of!(PvmIretFrame, cs) == 32);
    assert!(offset_of!(PvmIretFrame, rflags) == 40);
    assert!(offset_of!(PvmIretFrame, rsp) == 48);
    assert!(offset_of!(PvmIretFrame, ss) == 56);
};

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
