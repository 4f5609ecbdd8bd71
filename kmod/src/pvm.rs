//! The paravirtual supervisor ABI of PVM-style hosts (`kvm_pvm`): detection, feature check and
//! a defensive self-test in a scratch VM, run in a child process so that no misbehaviour of an
//! undocumented ABI can crash or hang the caller.
//!
//! # The ABI as used here (see `dune-hw/PVM.md` for the experiments)
//! - MSR [`MSR_PVM_SIGNATURE`] reads "PVM" (0x4d5650); [`MSR_PVM_FEATURES`] the supported
//!   feature bits (0x1ff on our hosts); [`MSR_PVM_MODE`] takes `vif_gpa | flags`.
//! - We enable only [`FEATURE_PREFLIP`] (with KPTI, a supervisor `int $0x1b` after a `syscall`
//!   or exception entry is delivered as #BP without it; without KPTI it made no difference in
//!   any experiment, and all tests ran with it on). We leave [`FEATURE_KPTI`] off: then one page table
//!   serves both modes (CR3 bit 12 is an ordinary address bit) and IST stacks may live in the
//!   lower half; with KPTI the kernel PGD must be 8 KiB-aligned with the user PGD at +4 KiB and
//!   TSS stacks must be upper-half addresses.
//! - A host-initiated write of [`MSR_PVM_MODE`] needs bit 10 ([`MODE_HOST_ENABLED`]) and
//!   starts the vCPU in PV *supervisor* mode (hardware CPL3, native speed), whatever the CS
//!   selector the host set: hypercalls work there at once. The host resumes a vCPU stopped in
//!   supervisor mode by setting registers, and it stays in supervisor mode.
//! - Into PV *user* mode: the [`HC_IRET_FRAME`] hypercall (every register settable), or a
//!   trapped `sysretq` after a user `syscall`. A trapped `iretq` in supervisor mode returns
//!   to the target rip but *stays in supervisor mode* (a hypercall right after it still
//!   works). In user mode a hypercall raises #UD (#BP in the C experiment's IDT).
//! - User `syscall` enters LSTAR in supervisor mode, natively, on the *user* stack (rcx/r11 as
//!   usual).
//! - **Exception stacks**: an event from user mode is delivered on the *current* stack like a
//!   same-privilege interrupt (TSS.rsp0 is never used, with or without the preflip, kentry or
//!   eretu feature bits); only an IST index in the IDT gate switches stacks. So every gate the
//!   monitor relies on carries IST 1.
//! - `syscall` executed in supervisor mode enters LSTAR again, still in supervisor mode
//!   (hypercalls keep working there), rcx = next rip, r11 = rflags, rsp unchanged.
//! - Hypercalls: `int $0x1b`, rax = number ([`HC_FLUSH_TLB`], [`HC_FLUSH_TLB_ONE`] with rbx =
//!   address), result in rax; allowed only in supervisor mode.

use crate::error::{KmodError, Result};
use crate::system::System;
use kvm_bindings::{kvm_msr_entry, kvm_segment, kvm_userspace_memory_region, Msrs};
use std::time::{Duration, Instant};

/// MSR `vif_gpa | feature flags`: switches the vCPU into the paravirtual mode.
pub const MSR_PVM_MODE: u32 = 0x4b56_4d10;
/// MSR holding the signature of the PVM-style hypervisor ("PVM" = 0x4d5650).
pub const MSR_PVM_SIGNATURE: u32 = 0x4b56_4d11;
/// MSR holding the supported feature bits.
pub const MSR_PVM_FEATURES: u32 = 0x4b56_4d12;
/// MSR holding the TSC frequency in kHz.
pub const MSR_PVM_TSC_KHZ: u32 = 0x4b56_4d13;
/// The signature value.
pub const PVM_SIGNATURE: u64 = 0x4d_5650;
/// Feature bit: separate user page table selected by CR3 bit 12 (not used here).
pub const FEATURE_KPTI: u64 = 1 << 0;
/// Feature bit: supervisor hypercalls after a syscall/exception entry (needed with KPTI;
/// enabled, hence required, here).
pub const FEATURE_PREFLIP: u64 = 1 << 1;
/// The feature bits this crate enables (and therefore requires).
pub const MODE_FLAGS: u64 = FEATURE_PREFLIP;
/// Host-initiated [`MSR_PVM_MODE`] bit 10: set in every host read of an enabled vCPU; a host
/// write needs it to enable the mode (a write without it is refused) and then starts the vCPU
/// in *supervisor* mode, whatever CS says (measured: hypercalls work there).
pub const MODE_HOST_ENABLED: u64 = 1 << 10;
/// Hypercall: flush this vCPU's whole TLB.
pub const HC_FLUSH_TLB: u64 = 0x1007;
/// Hypercall: flush the translation of the address in rbx.
pub const HC_FLUSH_TLB_ONE: u64 = 0x1008;
/// Hypercall: return to PV user mode from a frame `{rax, rbx, rdi, rip, cs, rflags, rsp,
/// ss}` at rbx (cs/ss the STAR user selectors); restores rax, rbx and rdi from it and
/// preserves every other register (a trapped `iretq` stays in supervisor mode).
pub const HC_IRET_FRAME: u64 = 0x100d;
/// The hypercall vector (`int $0x1b`).
pub const HYPERCALL_VECTOR: u8 = 0x1b;

/// How long the self-test child may take before it is killed and PVM is declared unusable.
pub const SELF_TEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What the self-test measured (TSC cycles, averages per operation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct SelfTest {
    /// `syscall` in supervisor mode -> LSTAR (supervisor) -> `jmp *%rcx`.
    pub syscall_round_trip_cycles: u64,
    /// One `HC_FLUSH_TLB` hypercall.
    pub flush_round_trip_cycles: u64,
    /// Page fault -> IST handler -> PTE write + `HC_FLUSH_TLB_ONE` -> `iretq` -> retry.
    pub page_fault_cycles: u64,
    /// `syscall` -> LSTAR -> `out` (exit to the host, which resumes at rcx).
    pub exit_round_trip_cycles: u64,
    /// 1e5 iterations of `dec; jnz` in supervisor mode (the fastest of 8 runs).
    pub loop_1e5_cycles: u64,
    /// TSC frequency the hypervisor reports (kHz; 0 if unknown).
    pub tsc_khz: u64,
}

/// What probing found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PvmStatus {
    /// No PVM signature: an ordinary hardware-virtualized host.
    NotPvm,
    /// A PVM host whose paravirtual supervisor mode passed the self-test.
    Usable {
        /// Supported feature bits.
        features: u64,
        /// The measurements of the self-test.
        self_test: SelfTest,
    },
    /// A PVM host whose supervisor mode may not be used: why (features, self-test step).
    Unusable {
        /// Supported feature bits (0 if unreadable).
        features: u64,
        /// What differed from the ABI this crate knows.
        reason: String,
    },
}

impl PvmStatus {
    /// Whether the host is PVM-style at all (guest CPL0 emulated).
    pub fn is_pvm_host(&self) -> bool {
        !matches!(self, PvmStatus::NotPvm)
    }
}

/// Reads MSRs of a fresh vCPU of a scratch VM; `None` for an MSR KVM refused.
fn read_msrs(system: &System, indices: &[u32]) -> Result<Vec<Option<u64>>> {
    let vm = system
        .kvm()
        .create_vm()
        .map_err(|e| KmodError::ioctl("KVM_CREATE_VM", e))?;
    let vcpu = vm
        .create_vcpu(0)
        .map_err(|e| KmodError::ioctl("KVM_CREATE_VCPU", e))?;
    let mut out = Vec::with_capacity(indices.len());
    for &index in indices {
        let mut msrs = Msrs::from_entries(&[kvm_msr_entry {
            index,
            ..Default::default()
        }])
        .map_err(|_| KmodError::Unsupported {
            feature: "MSR list",
            reason: "could not build one entry".into(),
        })?;
        // An unknown MSR makes KVM_GET_MSRS read 0 entries, or fail.
        out.push(match vcpu.get_msrs(&mut msrs) {
            Ok(1) => Some(msrs.as_slice()[0].data),
            _ => None,
        });
    }
    Ok(out)
}

/// Whether the host is PVM-style (signature MSR), using a scratch VM.
pub fn is_pvm_host(system: &System) -> Result<bool> {
    Ok(read_msrs(system, &[MSR_PVM_SIGNATURE])?[0] == Some(PVM_SIGNATURE))
}

/// Detects the PVM signature and features and, on a PVM host, runs the self-test of the
/// paravirtual supervisor mode in a child process (bounded by [`SELF_TEST_TIMEOUT`]).
/// Never panics or hangs on a misbehaving hypervisor: anything unexpected is `Unusable`.
pub fn probe(system: &System) -> Result<PvmStatus> {
    let v = read_msrs(
        system,
        &[MSR_PVM_SIGNATURE, MSR_PVM_FEATURES, MSR_PVM_TSC_KHZ],
    )?;
    if v[0] != Some(PVM_SIGNATURE) {
        return Ok(PvmStatus::NotPvm);
    }
    let Some(features) = v[1] else {
        return Ok(PvmStatus::Unusable {
            features: 0,
            reason: format!("feature MSR {MSR_PVM_FEATURES:#x} is not readable"),
        });
    };
    if features & MODE_FLAGS != MODE_FLAGS {
        return Ok(PvmStatus::Unusable {
            features,
            reason: format!(
                "features {features:#x} lack the preflip bit ({FEATURE_PREFLIP:#x}) this \
                 runtime needs"
            ),
        });
    }
    if std::env::var("DUNEGC_PVM_SELF_TEST_FAIL").is_ok_and(|v| v == "1") {
        return Ok(PvmStatus::Unusable {
            features,
            reason: "self-test failure injected by DUNEGC_PVM_SELF_TEST_FAIL=1".into(),
        });
    }
    match self_test_in_child(system) {
        Ok(mut t) => {
            t.tsc_khz = v[2].unwrap_or(0);
            Ok(PvmStatus::Usable {
                features,
                self_test: t,
            })
        }
        Err(reason) => Ok(PvmStatus::Unusable { features, reason }),
    }
}

/// The result page shared with the child.
#[repr(C)]
struct ChildReport {
    /// 1 = ok, 2 = failed (message in `msg`).
    state: u64,
    test: SelfTest,
    msg_len: u64,
    msg: [u8; 512],
}

fn self_test_in_child(system: &System) -> std::result::Result<SelfTest, String> {
    // SAFETY: a fresh shared anonymous page at a kernel-chosen address aliases nothing.
    let page = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if page == libc::MAP_FAILED {
        return Err(format!(
            "mmap for the self-test report failed: {}",
            std::io::Error::last_os_error()
        ));
    }
    let report = page.cast::<ChildReport>();
    // Everything the child's success path needs is allocated here: the child of a
    // multi-threaded process must not depend on locks (malloc, a collector's heap) that
    // another thread may have held at the fork. (A failing child may allocate for its
    // message; if that blocks, the timeout below ends it.)
    let msrs = SelfTestMsrs::build()?;
    // test hooks: a guest that never finishes, a shorter timeout
    let hang = std::env::var("DUNEGC_PVM_SELF_TEST_HANG").is_ok_and(|v| v == "1");
    let timeout = std::env::var("DUNEGC_PVM_SELF_TEST_TIMEOUT_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(SELF_TEST_TIMEOUT, Duration::from_millis);
    // SAFETY: a fork-like clone (no CLONE_VM: the child gets a copy of the address space)
    // whose exit signal is 0, so no SIGCHLD reaches the program's own handlers; the child
    // only runs the self-test (its own VM), writes the shared page and calls _exit.
    let pid = unsafe { libc::syscall(libc::SYS_clone, 0usize, 0usize, 0usize, 0usize, 0usize) }
        as libc::pid_t;
    if pid < 0 {
        let e = std::io::Error::last_os_error();
        // SAFETY: the page mapped above; nothing else uses it.
        unsafe { libc::munmap(page, 4096) };
        return Err(format!("fork for the self-test failed: {e}"));
    }
    if pid == 0 {
        let r = run_self_test(system, &msrs, hang);
        // SAFETY: the shared page is mapped and only this child writes it now.
        let rep = unsafe { &mut *report };
        match r {
            Ok(t) => {
                rep.test = t;
                rep.state = 1;
            }
            Err(m) => {
                let n = m.len().min(rep.msg.len());
                rep.msg[..n].copy_from_slice(&m.as_bytes()[..n]);
                rep.msg_len = n as u64;
                rep.state = 2;
            }
        }
        // SAFETY: _exit ends the child without running the parent's atexit handlers.
        unsafe { libc::_exit(0) }
    }
    let start = Instant::now();
    let mut status = 0;
    let finished = loop {
        // SAFETY: waiting for our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG | libc::__WALL) };
        if r == pid {
            break true;
        }
        if r < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            break true;
        }
        if start.elapsed() > timeout {
            // SAFETY: killing and reaping the child we forked above.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
            // SAFETY: as above.
            unsafe { libc::waitpid(pid, &mut status, libc::__WALL) };
            break false;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    // SAFETY: the child has exited; the page is ours alone.
    let rep = unsafe { &*report };
    let out = if !finished {
        Err(format!(
            "the self-test did not finish within {} ms (killed)",
            timeout.as_millis()
        ))
    } else {
        match rep.state {
            1 => Ok(rep.test),
            2 => Err(String::from_utf8_lossy(&rep.msg[..rep.msg_len as usize]).into_owned()),
            _ => Err(format!(
                "the self-test child ended without a report (wait status {status:#x})"
            )),
        }
    };
    // SAFETY: the page mapped above; nothing refers to it any more.
    unsafe { libc::munmap(page, 4096) };
    out
}

// ---- the self-test guest: physical layout of the scratch VM (identity-mapped) ----
const MEM_BYTES: usize = 4 << 20;
const PML4: u64 = 0x1000;
const PDPT: u64 = 0x2000;
const PD: u64 = 0x3000;
const PT_LOW: u64 = 0x4000;
const PT_FAULT: u64 = 0x5000;
const GDT: u64 = 0x6000;
const TSS: u64 = 0x6800;
const IDT: u64 = 0x7000;
const VIF: u64 = 0x8000;
const CODE: u64 = 0x10000;
const DATA: u64 = 0x20000;
const IST_TOP: u64 = 0x40000;
const USER_STACK_TOP: u64 = 0x50000;
/// Port of the supervisor's "done" `out`.
const PORT_DONE: u16 = 0xd0;
/// Port of the exit round trip.
const PORT_ECHO: u16 = 0xd1;
/// Port of an unexpected event.
const PORT_BAD: u16 = 0xd2;
const KERNEL_CS: u16 = 0x10;
const USER_CS: u16 = 0x33;
const USER_SS: u16 = 0x2b;
const KERNEL_SS: u16 = 0x18;
/// STAR: syscall CS 0x10, sysret base 0x20 (CS 0x33, SS 0x2b).
const STAR: u64 = (0x20 << 48) | (0x10 << 32);

/// Results written by the guest (index i at DATA + 8 i).
mod slot {
    pub const STAGE: u64 = 0;
    pub const CLOBBERED: u64 = 1;
    pub const HC_RET: u64 = 2;
    pub const SUP_SYSCALL: u64 = 3;
    pub const SYSCALL_CYC: u64 = 5;
    pub const FLUSH_CYC: u64 = 6;
    pub const PF_CYC: u64 = 7;
    pub const ECHO_CYC: u64 = 8;
    pub const LOOP_CYC: u64 = 9;
    pub const NPF: u64 = 10;
    pub const PF_RSP: u64 = 11;
    pub const PF_CS: u64 = 12;
    pub const BAD_VEC: u64 = 13;
    pub const BAD_RIP: u64 = 14;
    pub const PF_READBACK: u64 = 15;
    pub const SAVED_RSP: u64 = 16;
    pub const USER_CLOBBERED: u64 = 17;
    pub const USER_TRAP: u64 = 18;
    pub const USER_HC_OK: u64 = 19;
    /// 8 words: the HC_IRET_FRAME frame.
    pub const IRET_FRAME: u64 = 24;
}
const N_SYSCALLS: u64 = 200;
const N_FAULTS: u64 = 16;
const N_ECHO: u64 = 20;
/// rax the host sets when it resumes an exit round trip.
const ECHO_RET: u64 = 0x5eed;

core::arch::global_asm!(
    ".pushsection .text.pvm_self_test, \"ax\"",
    ".p2align 4",
    ".globl pvm_st_start",
    "pvm_st_start:",
    // ---------- the "application", in supervisor mode as the host started it ----------
    "movq $1, {data}+8*{s_stage}",
    // 1. one flush hypercall with every other register holding a sentinel
    "mov $0x1111, %rbx", "mov $0x2222, %rdx", "mov $0x3333, %rsi", "mov $0x4444, %rdi",
    "mov $0x5555, %rbp", "mov $0x6666, %r8", "mov $0x7777, %r9", "mov $0x8888, %r10",
    "mov $0x9999, %r12", "mov $0xaaaa, %r13", "mov $0xbbbb, %r14", "mov $0xcccc, %r15",
    "mov $0xdddd, %rcx", "mov $0xeeee, %r11",
    "mov ${hcflush}, %eax",
    "int ${hcvec}",
    "mov %rax, {data}+8*{s_hcret}",
    "xor %eax, %eax",
    "cmp $0x1111, %rbx", "setne %al", "or %rax, {data}+8*{s_clob}",
    "cmp $0x2222, %rdx", "setne %al", "shl $1, %eax", "or %rax, {data}+8*{s_clob}", "xor %eax, %eax",
    "cmp $0x3333, %rsi", "setne %al", "shl $2, %eax", "or %rax, {data}+8*{s_clob}", "xor %eax, %eax",
    "cmp $0x4444, %rdi", "setne %al", "shl $3, %eax", "or %rax, {data}+8*{s_clob}", "xor %eax, %eax",
    "cmp $0x5555, %rbp", "setne %al", "shl $4, %eax", "or %rax, {data}+8*{s_clob}", "xor %eax, %eax",
    "cmp $0x6666, %r8", "setne %al", "shl $5, %eax", "or %rax, {data}+8*{s_clob}", "xor %eax, %eax",
    "cmp $0x7777, %r9", "setne %al", "shl $6, %eax", "or %rax, {data}+8*{s_clob}", "xor %eax, %eax",
    "cmp $0x8888, %r10", "setne %al", "shl $7, %eax", "or %rax, {data}+8*{s_clob}", "xor %eax, %eax",
    "cmp $0x9999, %r12", "setne %al", "shl $8, %eax", "or %rax, {data}+8*{s_clob}", "xor %eax, %eax",
    "cmp $0xaaaa, %r13", "setne %al", "shl $9, %eax", "or %rax, {data}+8*{s_clob}", "xor %eax, %eax",
    "cmp $0xbbbb, %r14", "setne %al", "shl $10, %eax", "or %rax, {data}+8*{s_clob}", "xor %eax, %eax",
    "cmp $0xcccc, %r15", "setne %al", "shl $11, %eax", "or %rax, {data}+8*{s_clob}", "xor %eax, %eax",
    "cmp $0xdddd, %rcx", "setne %al", "shl $12, %eax", "or %rax, {data}+8*{s_clob}", "xor %eax, %eax",
    "cmp $0xeeee, %r11", "setne %al", "shl $13, %eax", "or %rax, {data}+8*{s_clob}",
    // 1b. into PV user mode with HC_IRET_FRAME (rax, rbx, rdi from the frame, every other
    // register kept); there a hypercall must be refused (an exception), then back here
    "movq $8, {data}+8*{s_stage}",
    "mov %rsp, {data}+8*{s_savedrsp}",
    "movq $0xa1, {data}+8*{s_frame}",
    "movq $0xb1, {data}+8*{s_frame}+8",
    "movq $0xd1, {data}+8*{s_frame}+16",
    "lea 70f(%rip), %rax", "mov %rax, {data}+8*{s_frame}+24",
    "movq ${ucs}, {data}+8*{s_frame}+32",
    "movq $0x202, {data}+8*{s_frame}+40",
    "mov %rsp, {data}+8*{s_frame}+48",
    "movq ${uss}, {data}+8*{s_frame}+56",
    "mov $0x1111, %rcx", "mov $0x2222, %rdx", "mov $0x3333, %rsi", "mov $0x5555, %rbp",
    "mov $0x6666, %r8", "mov $0x7777, %r9", "mov $0x8888, %r10", "mov $0x9999, %r11",
    "mov $0xaaaa, %r12", "mov $0xbbbb, %r13", "mov $0xcccc, %r14", "mov $0xdddd, %r15",
    "mov ${hciret}, %eax",
    "mov ${data}+8*{s_frame}, %ebx",
    "int ${hcvec}",
    "movq $0x102, {data}+8*{s_badvec}",
    "out %al, ${pbad}",
    "ud2",
    "70:", // user mode
    "mov %rax, %r9", // (r9 checked: set below)
    "xor %eax, %eax",
    "cmp $0xa1, %r9", "setne %al", "or %rax, {data}+8*{s_uclob}", "xor %eax, %eax",
    "cmp $0xb1, %rbx", "setne %al", "shl $1, %eax", "or %rax, {data}+8*{s_uclob}", "xor %eax, %eax",
    "cmp $0xd1, %rdi", "setne %al", "shl $2, %eax", "or %rax, {data}+8*{s_uclob}", "xor %eax, %eax",
    "cmp $0x1111, %rcx", "setne %al", "shl $3, %eax", "or %rax, {data}+8*{s_uclob}", "xor %eax, %eax",
    "cmp $0x2222, %rdx", "setne %al", "shl $4, %eax", "or %rax, {data}+8*{s_uclob}", "xor %eax, %eax",
    "cmp $0x3333, %rsi", "setne %al", "shl $5, %eax", "or %rax, {data}+8*{s_uclob}", "xor %eax, %eax",
    "cmp $0x5555, %rbp", "setne %al", "shl $6, %eax", "or %rax, {data}+8*{s_uclob}", "xor %eax, %eax",
    "cmp $0x6666, %r8", "setne %al", "shl $7, %eax", "or %rax, {data}+8*{s_uclob}", "xor %eax, %eax",
    "cmp $0x8888, %r10", "setne %al", "shl $8, %eax", "or %rax, {data}+8*{s_uclob}", "xor %eax, %eax",
    "cmp $0x9999, %r11", "setne %al", "shl $9, %eax", "or %rax, {data}+8*{s_uclob}", "xor %eax, %eax",
    "cmp $0xaaaa, %r12", "setne %al", "shl $10, %eax", "or %rax, {data}+8*{s_uclob}", "xor %eax, %eax",
    "cmp $0xbbbb, %r13", "setne %al", "shl $11, %eax", "or %rax, {data}+8*{s_uclob}", "xor %eax, %eax",
    "cmp $0xcccc, %r14", "setne %al", "shl $12, %eax", "or %rax, {data}+8*{s_uclob}", "xor %eax, %eax",
    "cmp $0xdddd, %r15", "setne %al", "shl $13, %eax", "or %rax, {data}+8*{s_uclob}",
    "mov ${hcflush}, %eax",
    "int ${hcvec}", // refused in user mode: the #UD/#GP/#BP gate continues at 71
    "movq $1, {data}+8*{s_uhcok}",
    "mov $7, %eax",
    "syscall", // back to supervisor mode (LSTAR: 7 continues at 71)
    "ud2",
    "71:", // supervisor mode again
    "mov {data}+8*{s_savedrsp}, %rsp",
    "movq $2, {data}+8*{s_stage}",
    // 2. `syscall` round trips from supervisor mode (LSTAR returns with jmp *%rcx)
    "rdtsc", "shl $32, %rdx", "or %rdx, %rax", "mov %rax, %r14",
    "mov ${nsys}, %r12d",
    "1:", "mov $2, %eax", "mov %rsp, %rbx", "syscall", "cmp %rsp, %rbx", "jne 90f", "dec %r12d", "jnz 1b",
    "rdtsc", "shl $32, %rdx", "or %rdx, %rax", "sub %r14, %rax", "mov %rax, {data}+8*{s_sys}",
    "movq $3, {data}+8*{s_stage}",
    // 3. flush hypercalls
    "rdtsc", "shl $32, %rdx", "or %rdx, %rax", "mov %rax, %r14",
    "mov ${nsys}, %r12d",
    "1:", "mov ${hcflush}, %eax", "int ${hcvec}", "dec %r12d", "jnz 1b",
    "rdtsc", "shl $32, %rdx", "or %rdx, %rax", "sub %r14, %rax", "mov %rax, {data}+8*{s_flush}",
    "movq $4, {data}+8*{s_stage}",
    // 4. page faults on 0x300000 + i * 4096, resolved in the guest
    "rdtsc", "shl $32, %rdx", "or %rdx, %rax", "mov %rax, %r14",
    "mov $0x300000, %r13d",
    "mov ${npf}, %r12d",
    "1:", "movq $0x55, (%r13)", "add $4096, %r13", "dec %r12d", "jnz 1b",
    "rdtsc", "shl $32, %rdx", "or %rdx, %rax", "sub %r14, %rax", "mov %rax, {data}+8*{s_pf}",
    "mov 0x300000 + 4096 * ({npf} - 1), %rax", "mov %rax, {data}+8*{s_pfrb}",
    "movq $5, {data}+8*{s_stage}",
    // 5. exit round trips: syscall -> LSTAR -> `out`; the host resumes at rcx itself
    "rdtsc", "shl $32, %rdx", "or %rdx, %rax", "mov %rax, %r14",
    "mov ${necho}, %r12d",
    "1:", "mov $5, %eax", "syscall", "cmp ${echoret}, %rax", "jne 90f", "dec %r12d", "jnz 1b",
    "rdtsc", "shl $32, %rdx", "or %rdx, %rax", "sub %r14, %rax", "mov %rax, {data}+8*{s_echo}",
    "movq $6, {data}+8*{s_stage}",
    // 6. compute loop: the fastest of 8 runs (a run the host preempted does not count)
    "movq $-1, {data}+8*{s_loop}",
    "mov $8, %r12d",
    "2:",
    "rdtsc", "shl $32, %rdx", "or %rdx, %rax", "mov %rax, %r14",
    "mov $100000, %ecx",
    "1:", "dec %ecx", "jnz 1b",
    "rdtsc", "shl $32, %rdx", "or %rdx, %rax", "sub %r14, %rax",
    "cmp {data}+8*{s_loop}, %rax", "jae 3f", "mov %rax, {data}+8*{s_loop}", "3:",
    "dec %r12d", "jnz 2b",
    "movq $7, {data}+8*{s_stage}",
    "mov $3, %eax",
    "syscall",
    "ud2",
    "90:",
    "movq $0x101, {data}+8*{s_badvec}",
    "out %al, ${pbad}",
    "ud2",
    // ---------- syscall entry (supervisor) ----------
    ".p2align 4",
    ".globl pvm_st_lstar",
    "pvm_st_lstar:",
    "cmp $2, %eax", "je 20f",
    "cmp $5, %eax", "je 30f",
    "cmp $3, %eax", "je 50f",
    "cmp $7, %eax", "je 71b",
    "movq $0x100, {data}+8*{s_badvec}",
    "mov %rcx, {data}+8*{s_badrip}",
    "out %al, ${pbad}",
    "ud2",
    "20:",
    "incq {data}+8*{s_supsys}",
    "jmp *%rcx",
    "30:",
    "out %al, ${pecho}",
    "ud2", // the host resumes at rcx
    "50:",
    "out %al, ${pdone}",
    "ud2",
    // ---------- #PF on IST 1 ----------
    ".p2align 4",
    ".globl pvm_st_pf",
    "pvm_st_pf:",
    "mov %rsp, {data}+8*{s_pfrsp}",
    "push %rax", "push %rbx", "push %rcx",
    "mov 40(%rsp), %rax", "mov %rax, {data}+8*{s_pfcs}",
    "incq {data}+8*{s_npf}",
    "mov %cr2, %rax",
    "and $-4096, %rax",
    "mov %rax, %rbx",
    "mov %rax, %rcx", "sub $0x200000, %rcx", "shr $12, %rcx",
    "or $7, %rax",
    "mov %rax, {ptf}(,%rcx,8)",
    "mov ${hcone}, %eax",
    "int ${hcvec}",
    "pop %rcx", "pop %rbx", "pop %rax",
    "add $8, %rsp",
    "iretq",
    // ---------- #UD, #GP, #BP: the hypercall refused in user mode ----------
    ".p2align 4",
    ".globl pvm_st_user_trap",
    "pvm_st_user_trap:",
    "movq $1, {data}+8*{s_utrap}",
    "jmp 71b",
    // ---------- any other vector ----------
    ".p2align 4",
    ".globl pvm_st_bad",
    "pvm_st_bad:",
    ".set pvm_st_v, 0",
    ".rept 32",
    ".p2align 4",
    "movq $pvm_st_v, {data}+8*{s_badvec}",
    "jmp 60f",
    ".set pvm_st_v, pvm_st_v + 1",
    ".endr",
    "60:",
    "mov (%rsp), %rax", "mov %rax, {data}+8*{s_badrip}",
    "out %al, ${pbad}",
    "ud2",
    // ---------- a guest that never exits (test hook of the timeout) ----------
    ".globl pvm_st_spin",
    "pvm_st_spin:",
    "jmp pvm_st_spin",
    ".globl pvm_st_end",
    "pvm_st_end:",
    ".popsection",
    data = const DATA,
    s_stage = const slot::STAGE,
    s_clob = const slot::CLOBBERED,
    s_hcret = const slot::HC_RET,
    s_supsys = const slot::SUP_SYSCALL,
    s_sys = const slot::SYSCALL_CYC,
    s_flush = const slot::FLUSH_CYC,
    s_pf = const slot::PF_CYC,
    s_echo = const slot::ECHO_CYC,
    s_loop = const slot::LOOP_CYC,
    s_npf = const slot::NPF,
    s_pfrsp = const slot::PF_RSP,
    s_pfcs = const slot::PF_CS,
    s_badvec = const slot::BAD_VEC,
    s_badrip = const slot::BAD_RIP,
    s_pfrb = const slot::PF_READBACK,
    s_savedrsp = const slot::SAVED_RSP,
    s_uclob = const slot::USER_CLOBBERED,
    s_utrap = const slot::USER_TRAP,
    s_uhcok = const slot::USER_HC_OK,
    s_frame = const slot::IRET_FRAME,
    hciret = const HC_IRET_FRAME,
    ucs = const USER_CS,
    uss = const USER_SS,
    nsys = const N_SYSCALLS,
    npf = const N_FAULTS,
    necho = const N_ECHO,
    echoret = const ECHO_RET,
    hcflush = const HC_FLUSH_TLB,
    hcone = const HC_FLUSH_TLB_ONE,
    hcvec = const HYPERCALL_VECTOR,
    ptf = const PT_FAULT,
    pbad = const PORT_BAD,
    pecho = const PORT_ECHO,
    pdone = const PORT_DONE,
    options(att_syntax),
);

extern "C" {
    fn pvm_st_start();
    fn pvm_st_lstar();
    fn pvm_st_pf();
    fn pvm_st_user_trap();
    fn pvm_st_spin();
    fn pvm_st_bad();
    fn pvm_st_end();
}

fn fn_addr(f: unsafe extern "C" fn()) -> u64 {
    f as *const () as usize as u64
}

/// Guest address of a symbol of the self-test code once copied to [`CODE`].
fn guest_addr(f: unsafe extern "C" fn()) -> u64 {
    CODE + fn_addr(f) - fn_addr(pvm_st_start)
}

fn seg(selector: u16, type_: u8, dpl: u8, long: bool) -> kvm_segment {
    crate::vcpu::flat_segment(selector, type_, dpl, long, 0)
}

/// Runs the self-test in this process (the child): builds the scratch VM, runs it to the
/// `done` port, checks every result.
/// The MSR lists of the self-test, built before the fork.
struct SelfTestMsrs {
    syscall: Msrs,
    mode: Msrs,
}

impl SelfTestMsrs {
    fn build() -> std::result::Result<SelfTestMsrs, String> {
        let list = |l: &[(u32, u64)]| {
            let entries: Vec<kvm_msr_entry> = l
                .iter()
                .map(|&(index, data)| kvm_msr_entry {
                    index,
                    data,
                    ..Default::default()
                })
                .collect();
            Msrs::from_entries(&entries).map_err(|_| "building an MSR list failed".to_string())
        };
        Ok(SelfTestMsrs {
            syscall: list(&[
                (0xc000_0081, STAR),
                (0xc000_0082, guest_addr(pvm_st_lstar)),
                (0xc000_0084, 0x47700),
            ])?,
            // into PV supervisor mode, as the Dune runtime starts its threads
            mode: list(&[(MSR_PVM_MODE, VIF | MODE_FLAGS | MODE_HOST_ENABLED)])?,
        })
    }
}

fn run_self_test(
    system: &System,
    msrs: &SelfTestMsrs,
    hang: bool,
) -> std::result::Result<SelfTest, String> {
    let e = |op: &str, err: kvm_ioctls::Error| format!("{op} failed: {err}");
    let vm = system
        .kvm()
        .create_vm()
        .map_err(|x| e("KVM_CREATE_VM", x))?;
    // SAFETY: a fresh anonymous mapping at a kernel-chosen address aliases nothing.
    let mem = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            MEM_BYTES,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if mem == libc::MAP_FAILED {
        return Err(format!("mmap: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: `mem` is a fresh, exclusively owned mapping of MEM_BYTES bytes, never unmapped
    // in this (short-lived) child.
    let m: &mut [u8] = unsafe { core::slice::from_raw_parts_mut(mem.cast(), MEM_BYTES) };
    let put = |m: &mut [u8], gpa: u64, v: u64| {
        m[gpa as usize..gpa as usize + 8].copy_from_slice(&v.to_le_bytes())
    };
    let get = |m: &[u8], gpa: u64| {
        u64::from_le_bytes(
            m[gpa as usize..gpa as usize + 8]
                .try_into()
                .expect("8 bytes"),
        )
    };
    // page tables: every entry P|W|U
    let f = 7u64;
    put(m, PML4, PDPT | f);
    put(m, PDPT, PD | f);
    put(m, PD, PT_LOW | f);
    put(m, PD + 8, PT_FAULT | f);
    for i in 1..512u64 {
        put(m, PT_LOW + 8 * i, (i << 12) | f);
    }
    // PT_FAULT (2..4 MiB) maps the first half; 0x300000.. is left for the fault test
    for i in 0..256u64 {
        put(m, PT_FAULT + 8 * i, (0x20_0000 + (i << 12)) | f);
    }
    // GDT: null, -, kernel CS (0x10), kernel SS (0x18), user SS32 (0x20 -> 0x23), user SS
    // (0x28 -> 0x2b), user CS (0x30 -> 0x33), -, TSS (0x40)
    let gdt = [
        0,
        0,
        0x00af_9b00_0000_ffffu64,
        0x00cf_9300_0000_ffff,
        0x00cf_fb00_0000_ffff,
        0x00cf_f300_0000_ffff,
        0x00af_fb00_0000_ffff,
        0,
        0x67 | ((TSS & 0xff_ffff) << 16) | (0x89 << 40) | (((TSS >> 24) & 0xff) << 56),
        TSS >> 32,
    ];
    for (i, d) in gdt.iter().enumerate() {
        put(m, GDT + 8 * i as u64, *d);
    }
    // TSS: rsp0 and IST1 (lower half is fine without KPTI)
    m[TSS as usize + 4..TSS as usize + 12].copy_from_slice(&IST_TOP.to_le_bytes());
    m[TSS as usize + 36..TSS as usize + 44].copy_from_slice(&IST_TOP.to_le_bytes());
    m[TSS as usize + 102..TSS as usize + 104].copy_from_slice(&0x68u16.to_le_bytes());
    // IDT: every gate on IST 1
    for v in 0..256u64 {
        let h = match v {
            14 => guest_addr(pvm_st_pf),
            3 | 6 | 13 => guest_addr(pvm_st_user_trap),
            0..=31 => guest_addr(pvm_st_bad) + 16 * v,
            _ => guest_addr(pvm_st_bad) + 16 * 31,
        };
        let lo =
            (h & 0xffff) | (0x10 << 16) | (1 << 32) | (0x8e << 40) | (((h >> 16) & 0xffff) << 48);
        put(m, IDT + 16 * v, lo);
        put(m, IDT + 16 * v + 8, h >> 32);
    }
    // code
    let len = (fn_addr(pvm_st_end) - fn_addr(pvm_st_start)) as usize;
    if len > (DATA - CODE) as usize {
        return Err(format!("self-test code is {len} bytes, too long"));
    }
    // SAFETY: reading our own .text bytes between two symbols of the same section.
    let code = unsafe { core::slice::from_raw_parts(fn_addr(pvm_st_start) as *const u8, len) };
    m[CODE as usize..CODE as usize + len].copy_from_slice(code);

    let region = kvm_userspace_memory_region {
        slot: 0,
        flags: 0,
        guest_phys_addr: 0,
        memory_size: MEM_BYTES as u64,
        userspace_addr: mem as u64,
    };
    // SAFETY: the region is backed by `mem`, which stays mapped for the VM's life.
    unsafe { vm.set_user_memory_region(region) }.map_err(|x| e("KVM_SET_USER_MEMORY_REGION", x))?;
    let mut vcpu = vm.create_vcpu(0).map_err(|x| e("KVM_CREATE_VCPU", x))?;
    vcpu.set_cpuid2(system.supported_cpuid())
        .map_err(|x| e("KVM_SET_CPUID2", x))?;
    let set_msrs = |vcpu: &kvm_ioctls::VcpuFd, list: &Msrs| match vcpu.set_msrs(list) {
        Ok(n) if n == list.as_slice().len() => Ok(()),
        Ok(n) => Err(format!(
            "KVM_SET_MSRS refused MSR {:#x}",
            list.as_slice()[n].index
        )),
        Err(x) => Err(e("KVM_SET_MSRS", x)),
    };
    set_msrs(&vcpu, &msrs.syscall)?;
    let mut s = vcpu.get_sregs().map_err(|x| e("KVM_GET_SREGS", x))?;
    s.cr0 = 0x8005_0033;
    s.cr3 = PML4;
    s.cr4 = 0x20 | 0x200 | 0x400;
    s.efer = 0xd01;
    s.cs = seg(KERNEL_CS, 11, 0, true);
    s.ss = seg(KERNEL_SS, 3, 0, false);
    s.ds = s.ss;
    s.es = s.ss;
    s.fs = seg(0, 3, 0, false);
    s.gs = s.fs;
    s.ldt = kvm_segment {
        unusable: 1,
        ..Default::default()
    };
    s.tr = kvm_segment {
        base: TSS,
        limit: 0x67,
        selector: 0x40,
        type_: 11,
        present: 1,
        ..Default::default()
    };
    s.gdt.base = GDT;
    s.gdt.limit = (gdt.len() * 8 - 1) as u16;
    s.idt.base = IDT;
    s.idt.limit = 256 * 16 - 1;
    vcpu.set_sregs(&s).map_err(|x| e("KVM_SET_SREGS", x))?;
    set_msrs(&vcpu, &msrs.mode)?;
    let mut r = vcpu.get_regs().map_err(|x| e("KVM_GET_REGS", x))?;
    r.rip = if hang {
        guest_addr(pvm_st_spin)
    } else {
        guest_addr(pvm_st_start)
    };
    r.rsp = USER_STACK_TOP;
    r.rflags = 0x202;
    vcpu.set_regs(&r).map_err(|x| e("KVM_SET_REGS", x))?;

    let mut n_echo = 0;
    for _ in 0..(N_ECHO + 64) {
        let exit = vcpu.run().map_err(|x| e("KVM_RUN", x))?;
        let port = match exit {
            kvm_ioctls::VcpuExit::IoOut(port, _) => port,
            other => {
                let stage = get(m, DATA + 8 * slot::STAGE);
                return Err(format!(
                    "unexpected exit {other:?} at self-test stage {stage}"
                ));
            }
        };
        match port {
            PORT_ECHO => {
                // resume after the `syscall` as the monitor does: rip = rcx, rax = result
                n_echo += 1;
                let mut r = vcpu.get_regs().map_err(|x| e("KVM_GET_REGS", x))?;
                r.rip = r.rcx;
                r.rflags = r.r11;
                r.rax = ECHO_RET;
                vcpu.set_regs(&r).map_err(|x| e("KVM_SET_REGS", x))?;
            }
            PORT_DONE => {
                return check_results(m, n_echo, &get);
            }
            PORT_BAD => {
                return Err(format!(
                    "unexpected event {:#x} (0x100 = unknown syscall) at rip {:#x}, stage {}",
                    get(m, DATA + 8 * slot::BAD_VEC),
                    get(m, DATA + 8 * slot::BAD_RIP),
                    get(m, DATA + 8 * slot::STAGE)
                ))
            }
            p => return Err(format!("unexpected port {p:#x}")),
        }
    }
    Err("the self-test guest did not finish in its exit budget".into())
}

fn check_results(
    m: &[u8],
    n_echo: u64,
    get: &dyn Fn(&[u8], u64) -> u64,
) -> std::result::Result<SelfTest, String> {
    let s = |i: u64| get(m, DATA + 8 * i);
    let checks: [(bool, String); 10] = [
        (
            s(slot::STAGE) == 7,
            format!("ended at stage {}", s(slot::STAGE)),
        ),
        (
            s(slot::CLOBBERED) == 0,
            format!(
                "registers changed across a hypercall (mask {:#x}: rbx rdx rsi rdi rbp r8 r9 \
                 r10 r12 r13 r14 r15 rcx r11)",
                s(slot::CLOBBERED)
            ),
        ),
        (
            s(slot::HC_RET) == 0,
            format!("HC_FLUSH_TLB returned {:#x}", s(slot::HC_RET)),
        ),
        (
            s(slot::USER_CLOBBERED) == 0,
            format!(
                "HC_IRET_FRAME did not restore rax rbx rdi / keep rcx rdx rsi rbp r8 r10..r15 \
                 (mask {:#x})",
                s(slot::USER_CLOBBERED)
            ),
        ),
        (
            s(slot::USER_TRAP) == 1 && s(slot::USER_HC_OK) == 0,
            format!(
                "after HC_IRET_FRAME a hypercall was {} (user mode must refuse it)",
                if s(slot::USER_HC_OK) == 1 {
                    "accepted"
                } else {
                    "neither accepted nor refused"
                }
            ),
        ),
        (
            s(slot::SUP_SYSCALL) == N_SYSCALLS,
            format!(
                "{} of {N_SYSCALLS} syscalls from supervisor mode reached LSTAR",
                s(slot::SUP_SYSCALL)
            ),
        ),
        (
            s(slot::NPF) == N_FAULTS && s(slot::PF_READBACK) == 0x55,
            format!(
                "{} of {N_FAULTS} page faults handled, value read back {:#x}",
                s(slot::NPF),
                s(slot::PF_READBACK)
            ),
        ),
        (
            s(slot::PF_RSP) == IST_TOP - 48,
            format!(
                "page-fault frame at {:#x}, not on the IST stack ({:#x})",
                s(slot::PF_RSP),
                IST_TOP - 48
            ),
        ),
        (
            n_echo == N_ECHO,
            format!("{n_echo} of {N_ECHO} exit round trips"),
        ),
        (
            // native: ~0.7 cycles per iteration; emulated CPL0: ~1,700
            s(slot::LOOP_CYC) > 0 && s(slot::LOOP_CYC) < 100_000 * 50,
            format!(
                "the compute loop took {} cycles for 1e5 iterations at best of 8 (not native)",
                s(slot::LOOP_CYC)
            ),
        ),
    ];
    if let Some((_, why)) = checks.iter().find(|(ok, _)| !ok) {
        return Err(why.clone());
    }
    Ok(SelfTest {
        syscall_round_trip_cycles: s(slot::SYSCALL_CYC) / N_SYSCALLS,
        flush_round_trip_cycles: s(slot::FLUSH_CYC) / N_SYSCALLS,
        page_fault_cycles: s(slot::PF_CYC) / N_FAULTS,
        exit_round_trip_cycles: s(slot::ECHO_CYC) / N_ECHO,
        loop_1e5_cycles: s(slot::LOOP_CYC),
        tsc_khz: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_test_code_fits_and_entries_are_inside() {
        let len = fn_addr(pvm_st_end) - fn_addr(pvm_st_start);
        assert!(len < DATA - CODE);
        for f in [
            pvm_st_lstar as unsafe extern "C" fn(),
            pvm_st_pf,
            pvm_st_bad,
        ] {
            let a = guest_addr(f);
            assert!(a > CODE && a < CODE + len);
        }
    }

    #[test]
    fn flags_are_the_documented_bits() {
        assert_eq!(MODE_FLAGS, 0x2);
        assert_eq!(MODE_HOST_ENABLED, 0x400);
        assert_eq!(VIF & 0xfff, 0);
    }
}
