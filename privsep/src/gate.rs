//! Callgates: a function that runs with its own rights (its own view), entered only at
//! its entry point, with a trusted argument fixed at creation.
//!
//! An sthread calls a gate by id ([`crate::inside::callgate_call`]); the guard checks
//! that its policy holds the gate, then runs `entry(trusted_arg, arg)` in a sandbox
//! built from the gate's policy and returns its value as the call's result. The caller
//! supplies only the id and one word: it cannot pick the entry, see or change the trusted
//! argument (it lives on the host), or see the gate's memory (not in its view). Gate
//! sandboxes are recycled between calls (scrubbed), one per concurrent call.

use crate::error::PrivsepError;
use crate::policy::{Callgate, GateInner, SPolicy};
use crate::report::Report;
use crate::sthread;
use dune_hw::sandbox::Sandbox;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

static NEXT_GATE: AtomicU64 = AtomicU64::new(1);

/// A callgate running `entry(trusted_arg, caller_arg)` with the rights of `policy`. One
/// sandbox is built now (so a bad policy fails here, not at the first call).
pub fn callgate_create(
    entry: fn(u64, u64) -> i32,
    policy: &SPolicy,
    trusted_arg: u64,
) -> Result<Callgate, PrivsepError> {
    let sb = sthread::build(policy)?;
    Ok(Callgate(Arc::new(GateInner {
        id: NEXT_GATE.fetch_add(1, Ordering::Relaxed),
        entry,
        trusted_arg,
        policy: policy.clone(),
        idle: Mutex::new(vec![sb]),
    })))
}

fn pop(g: &GateInner) -> Option<Sandbox> {
    g.idle.lock().unwrap_or_else(|p| p.into_inner()).pop()
}

/// Runs the gate's entry with `arg` (`depth`: how deeply nested the call is).
pub(crate) fn call_at_depth(g: &Callgate, arg: u64, depth: u32) -> Result<Report, PrivsepError> {
    let inner = &*g.0;
    let mut sb = match pop(inner) {
        Some(sb) => sb,
        None => sthread::build(&inner.policy)?,
    };
    let (entry, trusted) = (inner.entry, inner.trusted_arg);
    let r = {
        let mut guard = crate::guard::Guard::new(&inner.policy, depth);
        sb.run_closure(move || entry(trusted, arg), &mut guard)
            .map(|o| guard.report(o.into()))
    };
    sthread::scrub(&mut sb);
    inner
        .idle
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(sb);
    Ok(r?)
}

impl Callgate {
    /// Calls the gate from trusted (host) code, as an sthread would.
    pub fn call(&self, arg: u64) -> Result<Report, PrivsepError> {
        call_at_depth(self, arg, 0)
    }
}
