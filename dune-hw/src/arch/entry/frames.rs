//! The frame layouts the asm stubs share with Rust (arch layer), each checked field by field
//! with `offset_of!`. [`super`] re-exports every item.

use super::*;
use core::mem::offset_of;

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
