//! What a compartment may do: tags with rights, file descriptors with rights, the syscalls
//! it may issue, the callgates it may call. Default deny: an empty [`SPolicy`] allows
//! nothing but running its own code on its own stack and ending.
//!
//! Children ([`SPolicy::check_subset_of`]) get at most their parent's rights. A child
//! asked for from *inside* an sthread arrives as a [`ChildRequest`] (plain words the host
//! copies out of the sthread's memory and never trusts) and is resolved against the
//! parent's own policy ([`SPolicy::resolve_child`]): a tag, fd, syscall or gate the parent
//! does not hold cannot even be named.

use crate::error::PrivsepError;
use crate::tag::{Tag, TagRef};
use dune_hw::sandbox::Sandbox;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Rights on a tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u64)]
pub enum Rights {
    /// Read only.
    Read = 1,
    /// Read and write.
    ReadWrite = 3,
}

impl Rights {
    fn from_word(w: u64) -> Option<Rights> {
        match w {
            1 => Some(Rights::Read),
            3 => Some(Rights::ReadWrite),
            _ => None,
        }
    }
}

/// Rights on a file descriptor: a bit set of [`FdRights::READ`] and [`FdRights::WRITE`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FdRights(pub u64);

impl FdRights {
    /// read, pread, readv.
    pub const READ: FdRights = FdRights(1);
    /// write, pwrite, writev.
    pub const WRITE: FdRights = FdRights(2);
    /// Both.
    pub const READ_WRITE: FdRights = FdRights(3);

    /// Whether every right of `other` is in `self`.
    pub fn covers(self, other: FdRights) -> bool {
        other.0 & !self.0 == 0
    }
}

/// Syscall numbers below this can be allowed (Linux x86-64 uses < 512).
pub const MAX_SYSCALL_NR: u64 = 512;

/// A set of syscall numbers (`exit`/`exit_group` are always allowed: they end the run).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyscallSet(pub [u64; 8]);

impl SyscallSet {
    /// Whether `nr` is in the set.
    pub fn contains(&self, nr: u64) -> bool {
        nr < MAX_SYSCALL_NR && self.0[(nr / 64) as usize] & (1 << (nr % 64)) != 0
    }

    /// Whether every member of `self` is in `other`.
    pub fn is_subset_of(&self, other: &SyscallSet) -> bool {
        self.0.iter().zip(other.0.iter()).all(|(a, b)| a & !b == 0)
    }
}

/// A callgate's definition (created by [`crate::callgate_create`]).
pub struct GateInner {
    /// Unique id in the process (what an sthread names in a call).
    pub id: u64,
    /// The entry point: `entry(trusted_arg, caller_arg)`.
    pub entry: fn(u64, u64) -> i32,
    /// The argument fixed at creation; callers cannot see or change it.
    pub trusted_arg: u64,
    /// The gate's own rights (its view).
    pub policy: SPolicy,
    /// Sandboxes built for this gate and idle (recycled between calls).
    pub idle: Mutex<Vec<Sandbox>>,
}

impl std::fmt::Debug for GateInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Callgate")
            .field("id", &self.id)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// A callgate handle (clones name the same gate).
#[derive(Clone, Debug)]
pub struct Callgate(pub Arc<GateInner>);

impl Callgate {
    /// The id an sthread passes to [`crate::inside::callgate_call`].
    pub fn id(&self) -> u64 {
        self.0.id
    }
}

/// The rights of one compartment (sthread or callgate).
#[derive(Clone, Debug, Default)]
pub struct SPolicy {
    /// Tags mapped in the view, with their rights.
    pub tags: Vec<(Tag, Rights)>,
    /// Host file descriptors it may use, with their rights.
    pub fds: Vec<(i32, FdRights)>,
    /// Syscalls it may issue.
    pub syscalls: SyscallSet,
    /// Callgates it may call.
    pub gates: Vec<Callgate>,
    /// End a run after this long (each run then starts a watchdog thread).
    pub timeout: Option<Duration>,
}

/// Most tags, fds and gates in one [`ChildRequest`].
pub const MAX_CHILD_ITEMS: usize = 8;

/// A child sthread asked for from inside an sthread ([`crate::inside::sthread_spawn`]):
/// plain words, so any bit pattern is a value; the host validates all of it.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub struct ChildRequest {
    /// The child's body, a `fn(u64) -> i32`.
    pub f: u64,
    /// Its argument.
    pub arg: u64,
    /// How many of `tags` are used.
    pub n_tags: u64,
    /// (tag id, [`Rights`] as a word).
    pub tags: [[u64; 2]; MAX_CHILD_ITEMS],
    /// How many of `fds` are used.
    pub n_fds: u64,
    /// (fd, [`FdRights`] bits).
    pub fds: [[u64; 2]; MAX_CHILD_ITEMS],
    /// Allowed syscalls.
    pub syscalls: [u64; 8],
    /// How many of `gates` are used.
    pub n_gates: u64,
    /// Gate ids.
    pub gates: [u64; MAX_CHILD_ITEMS],
}

impl ChildRequest {
    /// A request for a child running `f(arg)` with no rights at all.
    pub fn new(f: fn(u64) -> i32, arg: u64) -> ChildRequest {
        ChildRequest {
            f: f as usize as u64,
            arg,
            ..ChildRequest::default()
        }
    }

    /// Asks for `tag` with `rights` (ignored beyond [`MAX_CHILD_ITEMS`]).
    pub fn tag(&mut self, tag: TagRef, rights: Rights) -> &mut Self {
        if let Some(s) = self.tags.get_mut(self.n_tags as usize) {
            *s = [tag.id, rights as u64];
            self.n_tags += 1;
        }
        self
    }

    /// Asks for `fd` with `rights` (ignored beyond [`MAX_CHILD_ITEMS`]).
    pub fn fd(&mut self, fd: i32, rights: FdRights) -> &mut Self {
        if let Some(s) = self.fds.get_mut(self.n_fds as usize) {
            *s = [fd as u64, rights.0];
            self.n_fds += 1;
        }
        self
    }

    /// Asks for syscall `nr` (ignored if `nr >= MAX_SYSCALL_NR`).
    pub fn syscall(&mut self, nr: u64) -> &mut Self {
        if nr < MAX_SYSCALL_NR {
            self.syscalls[(nr / 64) as usize] |= 1 << (nr % 64);
        }
        self
    }

    /// Asks for the gate with id `gate` (ignored beyond [`MAX_CHILD_ITEMS`]).
    pub fn gate(&mut self, gate: u64) -> &mut Self {
        if let Some(s) = self.gates.get_mut(self.n_gates as usize) {
            *s = gate;
            self.n_gates += 1;
        }
        self
    }
}

fn escalation(what: String) -> PrivsepError {
    PrivsepError::RightsEscalation { what }
}

impl SPolicy {
    /// A policy that allows nothing.
    pub fn new() -> SPolicy {
        SPolicy::default()
    }

    /// Grants `tag` with `rights` (a tag granted twice keeps the larger rights).
    pub fn grant_tag(&mut self, tag: &Tag, rights: Rights) -> &mut Self {
        match self.tags.iter_mut().find(|(t, _)| t.id() == tag.id()) {
            Some((_, r)) => *r = (*r).max(rights),
            None => self.tags.push((tag.clone(), rights)),
        }
        self
    }

    /// Grants host file descriptor `fd` with `rights`.
    pub fn grant_fd(&mut self, fd: i32, rights: FdRights) -> &mut Self {
        match self.fds.iter_mut().find(|(f, _)| *f == fd) {
            Some((_, r)) => r.0 |= rights.0,
            None => self.fds.push((fd, rights)),
        }
        self
    }

    /// Allows syscall `nr`.
    pub fn allow_syscall(&mut self, nr: i64) -> Result<&mut Self, PrivsepError> {
        let Ok(n) = u64::try_from(nr) else {
            return Err(PrivsepError::BadArgument {
                what: "syscall number is negative",
            });
        };
        if n >= MAX_SYSCALL_NR {
            return Err(PrivsepError::BadArgument {
                what: "syscall number is not below 512",
            });
        }
        self.syscalls.0[(n / 64) as usize] |= 1 << (n % 64);
        Ok(self)
    }

    /// Allows calling `gate`.
    pub fn allow_gate(&mut self, gate: &Callgate) -> &mut Self {
        if self.gate(gate.id()).is_none() {
            self.gates.push(gate.clone());
        }
        self
    }

    /// The rights on tag `id`, if granted.
    pub fn tag_rights(&self, id: u64) -> Option<Rights> {
        self.tags
            .iter()
            .find(|(t, _)| t.id() == id)
            .map(|(_, r)| *r)
    }

    /// The rights on `fd`, if granted.
    pub fn fd_rights(&self, fd: i32) -> Option<FdRights> {
        self.fds.iter().find(|(f, _)| *f == fd).map(|(_, r)| *r)
    }

    /// The gate with id `id`, if it may be called.
    pub fn gate(&self, id: u64) -> Option<&Callgate> {
        self.gates.iter().find(|g| g.id() == id)
    }

    /// `Ok` if `self` holds no right `parent` lacks; otherwise the first excess.
    pub fn check_subset_of(&self, parent: &SPolicy) -> Result<(), PrivsepError> {
        for (t, r) in &self.tags {
            match parent.tag_rights(t.id()) {
                Some(p) if p >= *r => {}
                Some(p) => {
                    return Err(escalation(format!(
                        "tag {} asked {r:?}, parent holds {p:?}",
                        t.id()
                    )))
                }
                None => return Err(escalation(format!("tag {} not held by parent", t.id()))),
            }
        }
        for (fd, r) in &self.fds {
            match parent.fd_rights(*fd) {
                Some(p) if p.covers(*r) => {}
                _ => {
                    return Err(escalation(format!(
                        "fd {fd} rights {:#x} beyond the parent's",
                        r.0
                    )))
                }
            }
        }
        if !self.syscalls.is_subset_of(&parent.syscalls) {
            let extra = (0..MAX_SYSCALL_NR)
                .find(|&n| self.syscalls.contains(n) && !parent.syscalls.contains(n))
                .unwrap_or(0);
            return Err(escalation(format!(
                "syscall {extra} not allowed to the parent"
            )));
        }
        for g in &self.gates {
            if parent.gate(g.id()).is_none() {
                return Err(escalation(format!(
                    "callgate {} not held by parent",
                    g.id()
                )));
            }
        }
        Ok(())
    }

    /// The policy a [`ChildRequest`] names, resolved against `self` (the parent): only
    /// what the parent holds can be named, and with at most its rights.
    pub fn resolve_child(&self, req: &ChildRequest) -> Result<SPolicy, PrivsepError> {
        let mut child = SPolicy {
            timeout: self.timeout,
            syscalls: SyscallSet(req.syscalls),
            ..SPolicy::default()
        };
        let count = |n: u64| -> Result<usize, PrivsepError> {
            usize::try_from(n)
                .ok()
                .filter(|&n| n <= MAX_CHILD_ITEMS)
                .ok_or(PrivsepError::BadArgument {
                    what: "child request lists more than 8 items",
                })
        };
        for &[id, r] in &req.tags[..count(req.n_tags)?] {
            let Some(rights) = Rights::from_word(r) else {
                return Err(PrivsepError::BadArgument {
                    what: "child request: tag rights are neither Read nor ReadWrite",
                });
            };
            let Some((tag, _)) = self.tags.iter().find(|(t, _)| t.id() == id) else {
                return Err(PrivsepError::InvalidTag {
                    id,
                    reason: "not held by the parent sthread",
                });
            };
            child.grant_tag(tag, rights);
        }
        for &[fd, r] in &req.fds[..count(req.n_fds)?] {
            let Ok(fd) = i32::try_from(fd) else {
                return Err(escalation(format!("fd {fd} is not a descriptor")));
            };
            child.grant_fd(fd, FdRights(r));
        }
        for &id in &req.gates[..count(req.n_gates)?] {
            let Some(g) = self.gate(id) else {
                return Err(escalation(format!("callgate {id} not held by parent")));
            };
            child.allow_gate(&g.clone());
        }
        child.check_subset_of(self)?;
        Ok(child)
    }
}

/// The syscall number (outside Linux's range) with which an sthread calls a callgate:
/// rdi = gate id, rsi = argument; the result is the gate's return value.
pub const SYS_CALLGATE: u64 = 0x5053_0001;
/// The syscall number with which an sthread starts a child and waits for it: rdi = a
/// [`ChildRequest`] in its memory, rsi = its size.
pub const SYS_SPAWN: u64 = 0x5053_0002;
