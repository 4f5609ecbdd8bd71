//! Read-only facts about a sandbox's page-table view, for libraries that build on
//! sandboxes (privsep's escape tests aim at exactly these addresses): where its table
//! lives, which it can never reach, since the view does not map its own frames.

use super::Sandbox;

impl Sandbox {
    /// The view's CR3 value (its level-4 table).
    pub fn view_root(&self) -> u64 {
        self.view.root()
    }

    /// The host range `[start, end)` that holds every frame of the view's page table.
    pub fn view_frames(&self) -> (u64, u64) {
        self.view.pool_range()
    }
}
