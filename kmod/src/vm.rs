//! One VM per process: its fd, its memory slots and the CPUID every vCPU gets.
//! (`Vm::create_vcpu` is defined in [`crate::vcpu`], the layer above.)

use crate::error::{KmodError, Result};
use crate::memslots::Memslots;
use crate::system::System;
use kvm_ioctls::VmFd;
use std::sync::Mutex;

/// The process's VM. Shared by all vCPU threads; slots are behind a mutex.
pub struct Vm {
    fd: VmFd,
    memslots: Mutex<Memslots>,
    system: System,
}

impl Vm {
    /// Creates the VM (no memory slots yet).
    pub fn create(system: System) -> Result<Vm> {
        Vm::create_with_slot_limit(system, usize::MAX)
    }

    /// Creates the VM using at most `max_slots` memory slots (tests of slot eviction).
    pub fn create_with_slot_limit(system: System, max_slots: usize) -> Result<Vm> {
        let fd = system
            .kvm()
            .create_vm()
            .map_err(|e| KmodError::ioctl("KVM_CREATE_VM", e))?;
        let memslots = Memslots::with_capacity(system.nr_memslots().min(max_slots));
        Ok(Vm {
            fd,
            memslots: Mutex::new(memslots),
            system,
        })
    }

    /// The `kvm-ioctls` VM handle.
    pub fn fd(&self) -> &VmFd {
        &self.fd
    }

    /// The open system this VM belongs to.
    pub fn system(&self) -> &System {
        &self.system
    }

    /// Runs `f` with the memory-slot table locked.
    pub fn with_memslots<R>(&self, f: impl FnOnce(&mut Memslots, &VmFd) -> R) -> R {
        let mut slots = self.memslots.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut slots, &self.fd)
    }
}

impl std::fmt::Debug for Vm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vm").field("system", &self.system).finish()
    }
}
