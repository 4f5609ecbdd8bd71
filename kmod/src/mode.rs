//! Which privilege level the application runs at inside the guest: detected once, can be
//! forced (`DUNEGC_DUNE_MODE=ring0|ring3`), and always reported.

use crate::error::{KmodError, Result};
use crate::system::System;
use kvm_bindings::{kvm_msr_entry, Msrs};

/// MSR holding the signature of the PVM-style hypervisor ("PVM" = 0x4d5650).
pub const MSR_PVM_SIGNATURE: u32 = 0x4b56_4d11;
/// The signature value.
pub const PVM_SIGNATURE: u64 = 0x4d_5650;

/// Where the application runs inside the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Classic Dune: the application runs at guest CPL0 and uses privileged instructions.
    /// Native speed on VT-x/AMD-V hosts; emulated instruction by instruction on PVM hosts.
    Ring0,
    /// The application runs at guest CPL3 (native everywhere); a few CPL0 stubs turn
    /// faults and syscalls into exits that the host-side monitor handles.
    Ring3,
}

impl Mode {
    /// A short lower-case name ("ring0", "ring3").
    pub fn name(self) -> &'static str {
        match self {
            Mode::Ring0 => "ring0",
            Mode::Ring3 => "ring3",
        }
    }
}

/// The chosen mode and why.
#[derive(Clone, Debug)]
pub struct ModeChoice {
    /// The mode.
    pub mode: Mode,
    /// Whether the host is a PVM-style hypervisor (guest CPL0 emulated).
    pub pvm_host: bool,
    /// One line saying how the mode was chosen.
    pub reason: String,
}

/// Detects whether guest CPL0 is emulated here (PVM signature MSR), using a scratch VM.
pub fn is_pvm_host(system: &System) -> Result<bool> {
    let vm = system
        .kvm()
        .create_vm()
        .map_err(|e| KmodError::ioctl("KVM_CREATE_VM", e))?;
    let vcpu = vm
        .create_vcpu(0)
        .map_err(|e| KmodError::ioctl("KVM_CREATE_VCPU", e))?;
    let mut msrs = Msrs::from_entries(&[kvm_msr_entry {
        index: MSR_PVM_SIGNATURE,
        ..Default::default()
    }])
    .map_err(|_| KmodError::Unsupported {
        feature: "MSR list",
        reason: "could not build one entry".into(),
    })?;
    // An unknown MSR makes KVM_GET_MSRS return 0 entries read, or an error: both mean "not PVM".
    match vcpu.get_msrs(&mut msrs) {
        Ok(1) => Ok(msrs.as_slice()[0].data == PVM_SIGNATURE),
        _ => Ok(false),
    }
}

/// Chooses the mode: `forced` (or env `DUNEGC_DUNE_MODE`) wins; otherwise ring-3 on PVM
/// hosts (guest CPL0 is emulated there) and ring-0 elsewhere.
pub fn choose(system: &System, forced: Option<Mode>) -> Result<ModeChoice> {
    let pvm_host = is_pvm_host(system)?;
    let env = std::env::var("DUNEGC_DUNE_MODE").ok();
    let env_mode = match env.as_deref() {
        None | Some("") | Some("auto") => None,
        Some("ring0") => Some(Mode::Ring0),
        Some("ring3") => Some(Mode::Ring3),
        Some(other) => {
            return Err(KmodError::Unsupported {
                feature: "DUNEGC_DUNE_MODE",
                reason: format!("unknown value {other:?}; use ring0, ring3 or auto"),
            })
        }
    };
    let host = if pvm_host {
        "PVM host (guest CPL0 emulated, shadow paging)"
    } else {
        "hardware-virtualized host"
    };
    let (mode, how) = match (forced, env_mode) {
        (Some(m), _) => (m, "forced by the caller"),
        (None, Some(m)) => (m, "forced by DUNEGC_DUNE_MODE"),
        (None, None) if pvm_host => (Mode::Ring3, "detected"),
        (None, None) => (Mode::Ring0, "detected"),
    };
    Ok(ModeChoice {
        mode,
        pvm_host,
        reason: format!("{} ({how}; {host})", mode.name()),
    })
}
