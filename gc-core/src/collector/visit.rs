//! The sweep-visit pass: before a collection's sweep, show every allocated object to the
//! installed [`SweepVisitHook`](super::hooks::SweepVisitHook) and keep the dead ones it
//! asks to keep. Runs only while a hook is installed (the C ABI's leak detection and
//! debug-allocator check), so plain collections pay nothing.

use super::hooks::SweepVisitHook;
use crate::heap::kind::{ObjectKind, N_SPACES};
use crate::heap::span::SpanState;
use crate::heap::{Heap, HeapInner};
use std::sync::atomic::Ordering;

impl Heap {
    /// Call `hook(base, len, live)` for every allocated object; mark the dead ones for
    /// which it returns true, so the sweep that follows keeps them.
    pub(crate) fn visit_before_sweep(&self, inner: &HeapInner, hook: SweepVisitHook) {
        let collect_malloc = self.options.malloc_collectable;
        for space in 0..N_SPACES {
            self.for_each_span(inner, space, |start| {
                let span = self.pages.span(start);
                let kind = ObjectKind::from_u8(span.kind.load(Ordering::Relaxed));
                let collectable = match kind {
                    ObjectKind::Uncollectable => false,
                    ObjectKind::Malloc => collect_malloc,
                    _ => true,
                };
                let base = self.pages.page_addr(start);
                let obj = span.obj_bytes.load(Ordering::Relaxed) as usize;
                let n = match span.state() {
                    SpanState::Small => span.n_objects.load(Ordering::Relaxed) as usize,
                    SpanState::Large => 1,
                    SpanState::Free => 0,
                };
                for i in 0..n {
                    let addr = base + i * obj;
                    if !self.allocs.get(addr) {
                        continue;
                    }
                    let live = !collectable || self.marks.get(addr);
                    if hook(addr, obj, live) && !live {
                        self.marks.set_atomic(addr);
                    }
                }
            });
        }
    }
}
