//! Which pointers into an object keep it alive: any interior pointer (the default), or
//! only pointers to its start and to registered displacements from it (bdwgc's
//! `GC_set_all_interior_pointers(0)` and `GC_register_displacement`).
//!
//! The setting is process-wide, as in bdwgc. It applies to words found in heap objects
//! and static data (and by mark procedures); words on thread stacks and in registers
//! keep an object alive through any interior pointer whatever the setting (bdwgc does
//! the same: compilers keep interior pointers there). It applies to collectable C-style
//! objects (`Normal`, `Atomic` and their described variants); `Malloc` memory (Rust's
//! `Box`, `Vec`, which may be referenced by interior pointers) is exempt.

use crate::heap::kind::ObjectKind;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Displacements must be below this (bdwgc's `VALID_OFFSET_SZ`, one heap block).
pub const MAX_DISPLACEMENT: usize = 4096;

static ALL_INTERIOR: AtomicBool = AtomicBool::new(true);

/// Bit `n` set: displacement `n` is valid.
static VALID: [AtomicU64; MAX_DISPLACEMENT / 64] =
    [const { AtomicU64::new(0) }; MAX_DISPLACEMENT / 64];

/// Recognise every interior pointer (`true`, the default) or only registered
/// displacements (`false`). Takes effect from the next marking step.
pub fn set_all_interior_pointers(all: bool) {
    ALL_INTERIOR.store(all, Ordering::Release);
}

/// The current setting (see [`set_all_interior_pointers`]).
pub fn all_interior_pointers() -> bool {
    ALL_INTERIOR.load(Ordering::Acquire)
}

/// Make a pointer `offset` bytes past an object's start keep it alive when interior
/// pointers are off. Errors (changing nothing) for `offset >= MAX_DISPLACEMENT`.
pub fn register_displacement(offset: usize) -> Result<(), usize> {
    if offset >= MAX_DISPLACEMENT {
        return Err(offset);
    }
    VALID[offset / 64].fetch_or(1 << (offset % 64), Ordering::AcqRel);
    Ok(())
}

/// True if `offset` is 0 or a registered displacement.
pub fn is_valid_displacement(offset: usize) -> bool {
    offset == 0
        || (offset < MAX_DISPLACEMENT
            && VALID[offset / 64].load(Ordering::Relaxed) & (1 << (offset % 64)) != 0)
}

/// True if a heap or static word `offset` bytes into an object of `kind` keeps it alive.
#[inline]
pub(crate) fn accepts(offset: usize, kind: ObjectKind) -> bool {
    offset == 0
        || ALL_INTERIOR.load(Ordering::Relaxed)
        || matches!(kind, ObjectKind::Malloc | ObjectKind::Uncollectable)
        || is_valid_displacement(offset)
}
