//! [`KmodError`]: one variant per failed operation, the errno as `source()`.

use std::fmt;
use std::io;

/// Errors of the host side of the Dune module.
#[derive(Debug)]
pub enum KmodError {
    /// `/dev/kvm` does not exist: no KVM in this kernel, or not exposed to this container.
    DeviceMissing,
    /// `/dev/kvm` exists but this user may not open it.
    PermissionDenied,
    /// Opening `/dev/kvm` failed for another reason.
    Open(io::Error),
    /// Not an x86_64 host, or a KVM feature we need is missing.
    Unsupported {
        /// What is missing.
        feature: &'static str,
        /// Why, with the observed value.
        reason: String,
    },
    /// A KVM ioctl failed.
    Ioctl {
        /// The ioctl, e.g. "KVM_CREATE_VCPU".
        op: &'static str,
        /// The errno.
        source: io::Error,
    },
    /// All memory slots are in use.
    MemslotsExhausted {
        /// How many slots this VM may have.
        capacity: usize,
    },
}

impl KmodError {
    /// An ioctl failure from a `kvm_ioctls::Error` (an errno).
    pub fn ioctl(op: &'static str, e: kvm_ioctls::Error) -> Self {
        KmodError::Ioctl {
            op,
            source: io::Error::from_raw_os_error(e.errno()),
        }
    }
}

impl fmt::Display for KmodError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KmodError::DeviceMissing => write!(
                f,
                "/dev/kvm does not exist: this kernel has no KVM or the device is not exposed here"
            ),
            KmodError::PermissionDenied => write!(
                f,
                "permission denied opening /dev/kvm: add this user to the `kvm` group \
                 (or run as root) so it can read and write /dev/kvm"
            ),
            KmodError::Open(e) => write!(f, "opening /dev/kvm failed: {e}"),
            KmodError::Unsupported { feature, reason } => {
                write!(f, "unsupported: {feature}: {reason}")
            }
            KmodError::Ioctl { op, source } => write!(f, "{op} failed: {source}"),
            KmodError::MemslotsExhausted { capacity } => {
                write!(f, "all {capacity} KVM memory slots are in use")
            }
        }
    }
}

impl std::error::Error for KmodError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            KmodError::Open(e) => Some(e),
            KmodError::Ioctl { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, KmodError>;
