//! One vCPU per thread: creation with KVM's CPUID, register access, run.

use crate::error::{KmodError, Result};
use crate::exit::{self, Exit};
use crate::vm::Vm;
use kvm_bindings::{kvm_msr_entry, kvm_regs, kvm_sregs, kvm_xcrs, Msrs};
use kvm_ioctls::VcpuFd;

/// A vCPU. Owned by the thread that runs it.
pub struct Vcpu {
    fd: VcpuFd,
}

impl Vcpu {
    pub(crate) fn create(vm: &Vm, id: u64) -> Result<Vcpu> {
        let fd = vm
            .fd()
            .create_vcpu(id)
            .map_err(|e| KmodError::ioctl("KVM_CREATE_VCPU", e))?;
        fd.set_cpuid2(vm.system().supported_cpuid())
            .map_err(|e| KmodError::ioctl("KVM_SET_CPUID2", e))?;
        Ok(Vcpu { fd })
    }

    /// General-purpose registers.
    pub fn regs(&self) -> Result<kvm_regs> {
        self.fd
            .get_regs()
            .map_err(|e| KmodError::ioctl("KVM_GET_REGS", e))
    }

    /// Sets general-purpose registers.
    pub fn set_regs(&self, regs: &kvm_regs) -> Result<()> {
        self.fd
            .set_regs(regs)
            .map_err(|e| KmodError::ioctl("KVM_SET_REGS", e))
    }

    /// Segment and control registers.
    pub fn sregs(&self) -> Result<kvm_sregs> {
        self.fd
            .get_sregs()
            .map_err(|e| KmodError::ioctl("KVM_GET_SREGS", e))
    }

    /// Sets segment and control registers. A changed CR3 makes KVM drop its shadow roots,
    /// i.e. a full guest TLB flush.
    pub fn set_sregs(&self, sregs: &kvm_sregs) -> Result<()> {
        self.fd
            .set_sregs(sregs)
            .map_err(|e| KmodError::ioctl("KVM_SET_SREGS", e))
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

    /// Runs the guest until the next exit.
    pub fn run(&mut self) -> Result<Exit> {
        match self.fd.run() {
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
