//! kmod — the host side of the Dune module, built on the kernel's `/dev/kvm`.
//!
//! Our machines cannot load kernel modules, so the role of Dune's `dune.ko` is played by
//! ordinary KVM ioctls (through the rust-vmm `kvm-ioctls` crate):
//!
//! - one VM per process whose guest-physical address space equals the process's virtual
//!   address space (GPA == HVA), with memory slots registered per mapping, on demand;
//! - one vCPU per thread ([`Vcpu`]: setup, registers through KVM_CAP_SYNC_REGS, run,
//!   decoded [`Exit`]s). The exit loop itself lives in `dune-hw` (`monitor.rs`), on its own
//!   stack: its decisions need the guest page tables, and dependencies go dune-hw -> kmod;
//! - syscall forwarding: classify a guest syscall (forwarded, address-space change, thread
//!   or process creation, emulated signal state, thread/process exit, refused), execute it
//!   for the process, and say which guest memory the kernel wrote on the guest's behalf;
//! - signals: a signal handler kicks a vCPU out of KVM_RUN through `immediate_exit`
//!   ([`Vcpu::immediate_exit_ptr`]); the guest FPU state travels with KVM_GET/SET_XSAVE.
//!
//! Modules:
//! - [`system`]   open `/dev/kvm`, API version, capabilities, guest address width
//! - [`mode`]     Ring0 | Ring3 | Pvm: detection (PVM signature, probe) and forcing
//! - [`pvm`]      the PVM paravirtual supervisor ABI: features, self-test in a child process
//! - [`vm`]       one VM per process
//! - [`memslots`] GPA==HVA memory slots, registered and split per mapping
//! - [`vcpu`]     one vCPU per thread: setup, run, registers
//! - [`exit`]     `VcpuExit` -> [`exit::Exit`], pure (no fd)
//! - [`syscall`]  classification and forwarding of guest syscalls, host-write ranges
//! - [`error`]    [`KmodError`]

pub mod error;
pub mod exit;
pub mod memslots;
pub mod mode;
pub mod pvm;
pub mod syscall;
pub mod system;
pub mod vcpu;
pub mod vm;

pub use error::KmodError;
pub use exit::Exit;
pub use memslots::Memslots;
pub use mode::{Mode, ModeChoice};
pub use system::System;
pub use vcpu::Vcpu;
pub use vm::Vm;
