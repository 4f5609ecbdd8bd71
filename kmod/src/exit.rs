//! Decoding of `VcpuExit` into the few exits the Dune layer expects. Pure: no fd.

use kvm_ioctls::VcpuExit;

/// A decoded vCPU exit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// `out` to `port` with the (zero-extended) value of the access.
    IoOut {
        /// Port number.
        port: u16,
        /// Value written.
        value: u32,
    },
    /// `in` from `port` (not used by our guest code).
    IoIn {
        /// Port number.
        port: u16,
    },
    /// A store to guest-physical `gpa` that no memory slot backs. Under PVM, stores from
    /// CPL3 report only the page address.
    MmioWrite {
        /// Guest-physical address (possibly page-aligned only).
        gpa: u64,
        /// Value stored (zero-extended, up to 8 bytes).
        value: u64,
    },
    /// A load from an address no slot backs.
    MmioRead {
        /// Guest-physical address.
        gpa: u64,
    },
    /// `hlt`.
    Hlt,
    /// Triple fault.
    Shutdown,
    /// KVM could not emulate an instruction or deliver an event.
    InternalError {
        /// KVM_INTERNAL_ERROR_* sub-code.
        suberror: u32,
    },
    /// The hardware refused to enter the guest.
    FailEntry {
        /// Hardware failure reason.
        reason: u64,
    },
    /// KVM_RUN returned EINTR (a signal, or `immediate_exit`).
    Interrupted,
    /// KVM_RUN returned EFAULT: a guest access reached a memory slot whose host memory is
    /// gone (another thread unmapped it after the guest's page table was walked). The
    /// access did not happen; the guest can retry after its translations are refreshed.
    HostMemoryGone,
    /// Any other exit, by KVM name.
    Other(&'static str),
}

fn le_value(data: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = data.len().min(8);
    b[..n].copy_from_slice(&data[..n]);
    u64::from_le_bytes(b)
}

/// Decodes one exit. `suberror` is `kvm_run.internal.suberror`, read by the caller (it is not
/// part of `VcpuExit`).
pub fn decode(exit: &VcpuExit<'_>, suberror: u32) -> Exit {
    match exit {
        VcpuExit::IoOut(port, data) => Exit::IoOut {
            port: *port,
            value: le_value(data) as u32,
        },
        VcpuExit::IoIn(port, _) => Exit::IoIn { port: *port },
        VcpuExit::MmioWrite(gpa, data) => Exit::MmioWrite {
            gpa: *gpa,
            value: le_value(data),
        },
        VcpuExit::MmioRead(gpa, _) => Exit::MmioRead { gpa: *gpa },
        VcpuExit::Hlt => Exit::Hlt,
        VcpuExit::Shutdown => Exit::Shutdown,
        VcpuExit::InternalError => Exit::InternalError { suberror },
        VcpuExit::FailEntry(reason, _) => Exit::FailEntry { reason: *reason },
        VcpuExit::Intr => Exit::Interrupted,
        VcpuExit::Exception => Exit::Other("KVM_EXIT_EXCEPTION"),
        VcpuExit::Hypercall(_) => Exit::Other("KVM_EXIT_HYPERCALL"),
        VcpuExit::Debug(_) => Exit::Other("KVM_EXIT_DEBUG"),
        VcpuExit::SystemEvent(..) => Exit::Other("KVM_EXIT_SYSTEM_EVENT"),
        VcpuExit::MemoryFault { .. } => Exit::Other("KVM_EXIT_MEMORY_FAULT"),
        _ => Exit::Other("unexpected KVM exit"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_and_mmio_values_are_little_endian() {
        assert_eq!(
            decode(&VcpuExit::IoOut(0xde, &[0x0e]), 0),
            Exit::IoOut {
                port: 0xde,
                value: 14
            }
        );
        let d = 0x1234_5678u32.to_le_bytes();
        assert_eq!(
            decode(&VcpuExit::MmioWrite(0x7000_0000, &d), 0),
            Exit::MmioWrite {
                gpa: 0x7000_0000,
                value: 0x1234_5678
            }
        );
    }

    #[test]
    fn failures_keep_their_detail() {
        assert_eq!(
            decode(&VcpuExit::InternalError, 1),
            Exit::InternalError { suberror: 1 }
        );
        assert_eq!(decode(&VcpuExit::Shutdown, 0), Exit::Shutdown);
        assert_eq!(
            decode(&VcpuExit::FailEntry(7, 0), 0),
            Exit::FailEntry { reason: 7 }
        );
        assert_eq!(decode(&VcpuExit::Hlt, 0), Exit::Hlt);
    }
}
