//! One vCPU per thread: creation with KVM's CPUID, register access, run.

use crate::error::{KmodError, Result};
use crate::exit::{self, Exit};
use crate::vm::Vm;
use kvm_bindings::{kvm_msr_entry, kvm_regs, kvm_segment, kvm_sregs, kvm_xcrs, Msrs};
use kvm_ioctls::{SyncReg, VcpuFd};

/// KVM_SYNC_X86_REGS | KVM_SYNC_X86_SREGS.
const SYNC_REGS_AND_SREGS: i32 = 0x3;

/// A vCPU. Owned by the thread that runs it.
///
/// With KVM_CAP_SYNC_REGS, registers travel in the shared `kvm_run` page: after the first
/// run, reading them after an exit and writing them before the next entry cost no ioctl.
pub struct Vcpu {
    fd: VcpuFd,
    sync: bool,
    synced: bool,
}

impl Vm {
    /// Creates a vCPU with KVM's supported CPUID.
    ///
    /// Defined here rather than in [`crate::vm`] so that the VM layer does not depend on
    /// the vCPU layer above it.
    pub fn create_vcpu(&self, id: u64) -> Result<Vcpu> {
        Vcpu::create(self, id)
    }
}

impl Vcpu {
    pub(crate) fn create(vm: &Vm, id: u64) -> Result<Vcpu> {
        let fd = vm
            .fd()
            .create_vcpu(id)
            .map_err(|e| KmodError::ioctl("KVM_CREATE_VCPU", e))?;
        fd.set_cpuid2(vm.system().supported_cpuid())
            .map_err(|e| KmodError::ioctl("KVM_SET_CPUID2", e))?;
        let caps = vm.fd().check_extension_int(kvm_ioctls::Cap::SyncRegs);
        let sync = caps & SYNC_REGS_AND_SREGS == SYNC_REGS_AND_SREGS
            && std::env::var("DUNEGC_KVM_NO_SYNC_REGS").is_err();
        let mut v = Vcpu {
            fd,
            sync,
            synced: false,
        };
        if sync {
            v.fd.set_sync_valid_reg(SyncReg::Register);
            v.fd.set_sync_valid_reg(SyncReg::SystemRegister);
        }
        Ok(v)
    }

    /// Whether registers travel through the shared page (KVM_CAP_SYNC_REGS).
    pub fn uses_sync_regs(&self) -> bool {
        self.sync
    }

    /// General-purpose registers (including writes pending for the next entry).
    pub fn regs(&self) -> Result<kvm_regs> {
        if self.synced {
            return Ok(self.fd.sync_regs().regs);
        }
        self.fd
            .get_regs()
            .map_err(|e| KmodError::ioctl("KVM_GET_REGS", e))
    }

    /// Sets general-purpose registers (applied at the next entry with sync regs).
    pub fn set_regs(&mut self, regs: &kvm_regs) -> Result<()> {
        if self.synced {
            self.fd.sync_regs_mut().regs = *regs;
            self.fd.set_sync_dirty_reg(SyncReg::Register);
            return Ok(());
        }
        self.fd
            .set_regs(regs)
            .map_err(|e| KmodError::ioctl("KVM_SET_REGS", e))
    }

    /// Segment and control registers (including writes pending for the next entry).
    pub fn sregs(&self) -> Result<kvm_sregs> {
        if self.synced {
            return Ok(self.fd.sync_regs().sregs);
        }
        self.fd
            .get_sregs()
            .map_err(|e| KmodError::ioctl("KVM_GET_SREGS", e))
    }

    /// Sets segment and control registers. A changed CR3 makes KVM drop its shadow roots,
    /// i.e. a full guest TLB flush.
    pub fn set_sregs(&mut self, sregs: &kvm_sregs) -> Result<()> {
        if self.synced {
            self.fd.sync_regs_mut().sregs = *sregs;
            self.fd.set_sync_dirty_reg(SyncReg::SystemRegister);
            return Ok(());
        }
        self.fd
            .set_sregs(sregs)
            .map_err(|e| KmodError::ioctl("KVM_SET_SREGS", e))
    }

    /// Forgets the shared-page copy: the next accesses use ioctls until the next run (a vCPU
    /// handed to a new thread is set up from scratch).
    pub fn reset_sync(&mut self) {
        self.synced = false;
        if self.sync {
            self.fd.clear_sync_dirty_reg(SyncReg::Register);
            self.fd.clear_sync_dirty_reg(SyncReg::SystemRegister);
        }
    }

    /// Writes MSRs (index, value).
    pub fn set_msrs(&self, entries: &[(u32, u64)]) -> Result<()> {
        let list: Vec<kvm_msr_entry> = entries
            .iter()
            .map(|&(index, data)| kvm_msr_entry {
                index,
                data,
                ..Default::default()
            })
            .collect();
        let msrs = Msrs::from_entries(&list).map_err(|_| KmodError::Unsupported {
            feature: "KVM_SET_MSRS",
            reason: format!("{} entries do not fit one call", entries.len()),
        })?;
        let n = self
            .fd
            .set_msrs(&msrs)
            .map_err(|e| KmodError::ioctl("KVM_SET_MSRS", e))?;
        if n != entries.len() {
            return Err(KmodError::Unsupported {
                feature: "KVM_SET_MSRS",
                reason: format!("MSR {:#x} was refused", entries[n].0),
            });
        }
        Ok(())
    }

    /// Sets XCR0 (which extended states — AVX etc. — the guest may use).
    pub fn set_xcr0(&self, xcr0: u64) -> Result<()> {
        let mut xcrs = kvm_xcrs {
            nr_xcrs: 1,
            ..Default::default()
        };
        xcrs.xcrs[0].xcr = 0;
        xcrs.xcrs[0].value = xcr0;
        self.fd
            .set_xcrs(&xcrs)
            .map_err(|e| KmodError::ioctl("KVM_SET_XCRS", e))
    }

    /// Where `kvm_run.immediate_exit` lives: a signal handler stores 1 there so that a
    /// KVM_RUN about to start returns EINTR at once (no lost wake-up between checking for
    /// pending signals and entering the guest). Valid as long as this vCPU.
    pub fn immediate_exit_ptr(&mut self) -> *mut u8 {
        &mut self.fd.get_kvm_run().immediate_exit
    }

    /// The guest's extended FPU state (XSAVE layout, 4 KiB).
    pub fn xsave(&self) -> Result<kvm_bindings::kvm_xsave> {
        self.fd
            .get_xsave()
            .map_err(|e| KmodError::ioctl("KVM_GET_XSAVE", e))
    }

    /// Sets the guest's extended FPU state (XSAVE layout, as returned by [`Vcpu::xsave`]).
    pub fn set_xsave(&self, xsave: &kvm_bindings::kvm_xsave) -> Result<()> {
        // SAFETY: `kvm_xsave` is the legacy 4 KiB KVM_SET_XSAVE buffer; KVM reads at most
        // 4 KiB for it (KVM_CAP_XSAVE2 larger states are never enabled on this VM).
        unsafe { self.fd.set_xsave(xsave) }.map_err(|e| KmodError::ioctl("KVM_SET_XSAVE", e))
    }

    /// Runs the guest until the next exit.
    pub fn run(&mut self) -> Result<Exit> {
        let r = self.fd.run();
        if self.sync && r.is_ok() {
            self.synced = true;
        }
        match r {
            Ok(e) => {
                let internal = matches!(e, kvm_ioctls::VcpuExit::InternalError);
                let decoded = exit::decode(&e, 0);
                if internal {
                    // SAFETY: reading a plain integer of the union member that KVM filled for
                    // an internal-error exit.
                    let sub = unsafe { self.fd.get_kvm_run().__bindgen_anon_1.internal.suberror };
                    return Ok(Exit::InternalError { suberror: sub });
                }
                Ok(decoded)
            }
            Err(e) if e.errno() == libc::EFAULT => Ok(Exit::HostMemoryGone),
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                self.fd.set_kvm_immediate_exit(0);
                Ok(Exit::Interrupted)
            }
            Err(e) => Err(KmodError::ioctl("KVM_RUN", e)),
        }
    }
}

impl std::fmt::Debug for Vcpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vcpu").finish_non_exhaustive()
    }
}

/// A flat 64-bit-mode segment register value (limit 4 GiB, present, granular): code when
/// `long` (type 11, L=1), data otherwise (type 3, D/B=1), at privilege `dpl`, with `base`
/// (only FS/GS bases matter in long mode).
pub fn flat_segment(selector: u16, type_: u8, dpl: u8, long: bool, base: u64) -> kvm_segment {
    kvm_segment {
        base,
        limit: 0xffff_ffff,
        selector,
        type_,
        present: 1,
        dpl,
        db: (!long) as u8,
        s: 1,
        l: long as u8,
        g: 1,
        avl: 0,
        unusable: 0,
        padding: 0,
    }
}
