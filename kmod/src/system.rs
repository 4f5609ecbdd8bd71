//! Open `/dev/kvm`, check the API version, the capabilities we need and the guest's
//! physical-address width (GPA == HVA needs 47 bits).

use crate::error::{KmodError, Result};
use kvm_bindings::CpuId;
use kvm_ioctls::{Cap, Kvm};
use std::os::fd::FromRawFd;

/// Guest physical address bits needed for GPA == HVA over the 47-bit user address space.
pub const NEEDED_PHYS_BITS: u32 = 47;

/// An open `/dev/kvm` with its checked capabilities.
pub struct System {
    kvm: Kvm,
    cpuid: CpuId,
    nr_memslots: usize,
    phys_bits: u32,
}

impl System {
    /// Opens `/dev/kvm` and checks everything the Dune layer needs.
    ///
    /// Errors name what is missing: the device, the permission, the API version, a capability,
    /// or the guest physical-address width.
    pub fn open() -> Result<System> {
        System::open_at(c"/dev/kvm")
    }

    /// Opens the KVM device at `path` (tests use it to check the error for a missing device).
    pub fn open_at(path: &std::ffi::CStr) -> Result<System> {
        if !cfg!(target_arch = "x86_64") {
            return Err(KmodError::Unsupported {
                feature: "x86_64",
                reason: format!(
                    "the Dune layer needs an x86_64 host, this is {}",
                    std::env::consts::ARCH
                ),
            });
        }
        let fd = match Kvm::open_with_cloexec_at(path, true) {
            Ok(fd) => fd,
            Err(e)
                if e.errno() == libc::ENOENT
                    || e.errno() == libc::ENXIO
                    || e.errno() == libc::ENODEV =>
            {
                return Err(KmodError::DeviceMissing)
            }
            Err(e) if e.errno() == libc::EACCES || e.errno() == libc::EPERM => {
                return Err(KmodError::PermissionDenied)
            }
            Err(e) => {
                return Err(KmodError::Open(std::io::Error::from_raw_os_error(
                    e.errno(),
                )))
            }
        };
        // SAFETY: `fd` was just returned by open(2) and is owned by nobody else; `Kvm` takes
        // ownership and closes it on drop.
        let kvm = unsafe { Kvm::from_raw_fd(fd) };
        let api = kvm.get_api_version();
        if api != 12 {
            return Err(KmodError::Unsupported {
                feature: "KVM API version 12",
                reason: format!("KVM_GET_API_VERSION returned {api}"),
            });
        }
        for (cap, name) in [
            (Cap::UserMemory, "KVM_CAP_USER_MEMORY"),
            (Cap::ExtCpuid, "KVM_CAP_EXT_CPUID"),
            (Cap::SetTssAddr, "KVM_CAP_SET_TSS_ADDR"),
        ] {
            if !kvm.check_extension(cap) {
                return Err(KmodError::Unsupported {
                    feature: name,
                    reason: "KVM_CHECK_EXTENSION returned 0".into(),
                });
            }
        }
        let nr_memslots = kvm.get_nr_memslots();
        let cpuid = kvm
            .get_supported_cpuid(kvm_bindings::KVM_MAX_CPUID_ENTRIES)
            .map_err(|e| KmodError::ioctl("KVM_GET_SUPPORTED_CPUID", e))?;
        let phys_bits = cpuid
            .as_slice()
            .iter()
            .find(|e| e.function == 0x8000_0008)
            .map(|e| e.eax & 0xff)
            .unwrap_or(36);
        if phys_bits < NEEDED_PHYS_BITS {
            return Err(KmodError::Unsupported {
                feature: "guest physical-address width >= 47 bits (GPA == HVA)",
                reason: format!("CPUID 0x80000008 reports MAXPHYADDR {phys_bits}"),
            });
        }
        Ok(System {
            kvm,
            cpuid,
            nr_memslots,
            phys_bits,
        })
    }

    /// The `kvm-ioctls` handle.
    pub fn kvm(&self) -> &Kvm {
        &self.kvm
    }

    /// CPUID entries KVM supports (given to every vCPU).
    pub fn supported_cpuid(&self) -> &CpuId {
        &self.cpuid
    }

    /// How many memory slots one VM may have.
    pub fn nr_memslots(&self) -> usize {
        self.nr_memslots
    }

    /// The guest's MAXPHYADDR.
    pub fn phys_bits(&self) -> u32 {
        self.phys_bits
    }
}

impl std::fmt::Debug for System {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("System")
            .field("nr_memslots", &self.nr_memslots)
            .field("phys_bits", &self.phys_bits)
            .finish()
    }
}
