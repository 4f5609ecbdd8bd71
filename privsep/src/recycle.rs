//! Recycled sthreads (as Wedge's): the view of a policy is built once and reused for one
//! run after another, scrubbed in between (arena and stack zeroed), so that a server can
//! give each request an sthread of its own for the price of a run, not of a new view.
//!
//! What is *not* reset: the contents of the granted tags (they are shared memory by
//! design) and, if the policy allows brk/mmap, the arena's allocation state.

use crate::error::PrivsepError;
use crate::policy::SPolicy;
use crate::report::Report;
use crate::sthread;
use dune_hw::sandbox::Sandbox;

/// A pool of sandboxes of one policy, for runs one after another.
pub struct Recycler {
    policy: SPolicy,
    sb: Sandbox,
    runs: u64,
}

impl std::fmt::Debug for Recycler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recycler")
            .field("policy", &self.policy)
            .field("runs", &self.runs)
            .finish_non_exhaustive()
    }
}

impl Recycler {
    /// Builds the view of `policy` once.
    pub fn new(policy: &SPolicy) -> Result<Recycler, PrivsepError> {
        Ok(Recycler {
            policy: policy.clone(),
            sb: sthread::build(policy)?,
            runs: 0,
        })
    }

    /// Runs `f(arg)` as a fresh sthread of the policy (same view, zeroed stack).
    pub fn run(&mut self, f: fn(u64) -> i32, arg: u64) -> Result<Report, PrivsepError> {
        if self.runs > 0 {
            sthread::scrub(&mut self.sb);
        }
        self.runs += 1;
        sthread::run_fn(&mut self.sb, &self.policy, f, arg, 0)
    }

    /// The CR3 value and the page-table frame range `[start, end)` of this recycler's
    /// view (never mapped in the view itself: what an escape attempt would aim at).
    pub fn view_table(&self) -> (u64, (u64, u64)) {
        (self.sb.view_root(), self.sb.view_frames())
    }

    /// Runs so far.
    pub fn runs(&self) -> u64 {
        self.runs
    }
}
