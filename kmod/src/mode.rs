//! Where the application and the monitor's CPL0 part run inside the guest: detected once,
//! can be forced (`DUNEGC_DUNE_MODE=ring0|ring3|pvm|pvm-ring0|auto`), and always reported.
//!
//! Detection: no PVM signature -> [`Mode::Ring0`] (classic Dune on hardware virtualization).
//! A PVM signature -> the paravirtual supervisor ABI is probed ([`crate::pvm::probe`]:
//! features, then a self-test round trip in a scratch VM in a child process) and
//! [`Mode::Pvm`] is chosen if it passed; otherwise [`Mode::Ring3`], with a message on stderr
//! saying what differed. Forcing `pvm` or `pvm-ring0` where the probe fails falls back the
//! same way.

use crate::error::{KmodError, Result};
use crate::pvm::{self, PvmStatus};
use crate::system::System;

pub use crate::pvm::{is_pvm_host, MSR_PVM_SIGNATURE, PVM_SIGNATURE};

/// Where the application runs inside the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Classic Dune: the application runs at guest CPL0 and uses privileged instructions.
    /// Native speed on VT-x/AMD-V hosts; emulated instruction by instruction on PVM hosts.
    Ring0,
    /// The application runs at guest CPL3 (native everywhere); a few CPL0 stubs turn
    /// faults and syscalls into exits that the host-side monitor handles.
    Ring3,
    /// PVM hosts, ring-3 semantics with a native monitor: the application runs in the
    /// paravirtual *user* mode (CPL3, native) and the monitor's CPL0 stubs run natively in
    /// the paravirtual *supervisor* mode: syscalls and exceptions (on an IST stack) enter
    /// them without emulation, TLB-flush requests are answered there by a hypercall
    /// without an exit, and the host returns to user mode through a one-instruction
    /// `iretq` stub. See [`crate::pvm`].
    Pvm,
    /// PVM hosts, classic Dune ring-0 semantics: the application itself runs in the
    /// paravirtual supervisor mode (native, unlike emulated CPL0), with ring-0's layout; its
    /// TLB flushes are hypercalls.
    PvmRing0,
}

impl Mode {
    /// A short lower-case name ("ring0", "ring3", "pvm", "pvm-ring0").
    pub fn name(self) -> &'static str {
        match self {
            Mode::Ring0 => "ring0",
            Mode::Ring3 => "ring3",
            Mode::Pvm => "pvm",
            Mode::PvmRing0 => "pvm-ring0",
        }
    }

    /// Whether the mode needs the PVM paravirtual supervisor ABI.
    pub fn is_pvm(self) -> bool {
        matches!(self, Mode::Pvm | Mode::PvmRing0)
    }

    /// Whether the application itself runs in (PV) user mode, CPL3.
    pub fn app_in_user_mode(self) -> bool {
        matches!(self, Mode::Ring3 | Mode::Pvm)
    }

    /// Parses a [`Mode::name`].
    pub fn from_name(name: &str) -> Option<Mode> {
        match name {
            "ring0" => Some(Mode::Ring0),
            "ring3" => Some(Mode::Ring3),
            "pvm" => Some(Mode::Pvm),
            "pvm-ring0" => Some(Mode::PvmRing0),
            _ => None,
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
    /// What probing the paravirtual supervisor ABI found (`None`: not probed, because the
    /// host has no PVM signature or ring-0/ring-3 was forced).
    pub pvm: Option<PvmStatus>,
    /// One line saying how the mode was chosen.
    pub reason: String,
}

/// Chooses the mode: `forced` (or env `DUNEGC_DUNE_MODE`) wins; otherwise PVM on PVM hosts
/// whose supervisor ABI passes the probe, ring-3 on other PVM hosts (guest CPL0 is emulated
/// there) and ring-0 elsewhere. A PVM choice that cannot be honoured falls back to ring-3
/// and says why on stderr and in the reason.
pub fn choose(system: &System, forced: Option<Mode>) -> Result<ModeChoice> {
    let pvm_host = is_pvm_host(system)?;
    let env = std::env::var("DUNEGC_DUNE_MODE").ok();
    let env_mode = match env.as_deref() {
        None | Some("") | Some("auto") => None,
        Some(name) => match Mode::from_name(name) {
            Some(m) => Some(m),
            None => {
                return Err(KmodError::Unsupported {
                    feature: "DUNEGC_DUNE_MODE",
                    reason: format!(
                        "unknown value {name:?}; use ring0, ring3, pvm, pvm-ring0 or auto"
                    ),
                })
            }
        },
    };
    let host = if pvm_host {
        "PVM host (shadow paging; guest CPL0 emulated, PV supervisor mode native)"
    } else {
        "hardware-virtualized host"
    };
    let (wanted, how) = match (forced, env_mode) {
        (Some(m), _) => (Some(m), "forced by the caller"),
        (None, Some(m)) => (Some(m), "forced by DUNEGC_DUNE_MODE"),
        (None, None) => (None, "detected"),
    };
    let probe_pvm = pvm_host && wanted.is_none_or(Mode::is_pvm);
    let status = if probe_pvm {
        Some(pvm::probe(system)?)
    } else {
        None
    };
    let (mode, detail) = match (wanted, &status) {
        (Some(m), None) if m.is_pvm() => (
            Mode::Ring3,
            Some(format!(
                "{} requested, but this host has no PVM signature MSR",
                m.name()
            )),
        ),
        (Some(m), _) if !m.is_pvm() => (m, None),
        (Some(m), Some(PvmStatus::Usable { .. })) => (m, None),
        (_, Some(PvmStatus::Usable { .. })) => (Mode::Pvm, None),
        (_, Some(PvmStatus::Unusable { features, reason })) => (
            Mode::Ring3,
            Some(format!(
                "PVM supervisor mode not used (features {features:#x}): {reason}"
            )),
        ),
        (_, _) if pvm_host => (Mode::Ring3, None),
        (_, _) => (Mode::Ring0, None),
    };
    let mut reason = format!("{} ({how}; {host})", mode.name());
    if let Some(PvmStatus::Usable {
        features,
        self_test,
    }) = &status
    {
        reason.push_str(&format!(
            "; PVM features {features:#x}, self-test passed (syscall round trip {} cycles, \
             TLB-flush hypercall round trip {}, page fault {})",
            self_test.syscall_round_trip_cycles,
            self_test.flush_round_trip_cycles,
            self_test.page_fault_cycles
        ));
    }
    if let Some(d) = detail {
        eprintln!("dune: {d}; falling back to ring-3 mode");
        reason.push_str(&format!("; {d}: fell back to ring-3"));
    }
    Ok(ModeChoice {
        mode,
        pvm_host,
        pvm: status,
        reason,
    })
}
