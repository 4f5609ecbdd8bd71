//! Object kinds: how the collector treats an object's contents and lifetime.

/// How an object is traced and freed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ObjectKind {
    /// Traced conservatively, freed when unreachable (`Gc<T>`, `GC_malloc`).
    Normal = 0,
    /// Never traced (no pointers inside), freed when unreachable (`GC_malloc_atomic`).
    Atomic = 1,
    /// Memory from the global allocator (`Box`, `Vec`): traced conservatively, freed
    /// explicitly by `dealloc`, and also reclaimed if it becomes unreachable (leaked).
    Malloc = 2,
    /// Traced and always live until freed explicitly (`GC_malloc_uncollectable`); a root.
    Uncollectable = 3,
}

/// Number of kinds.
pub const N_KINDS: usize = 4;

/// The heap reservation is split into spaces, so that each can be armed (or not) for
/// dirty tracking as one contiguous range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum SpaceId {
    /// Normal objects: armed by every tracker.
    Normal = 0,
    /// Pointer-free objects: never scanned, never armed.
    Atomic = 1,
    /// Global-allocator and uncollectable memory: may be syscall buffers, so armed only
    /// by trackers that see kernel writes; otherwise rescanned in full at finish.
    Malloc = 2,
}

/// Number of spaces.
pub const N_SPACES: usize = 3;

impl ObjectKind {
    /// All kinds.
    pub const ALL: [ObjectKind; N_KINDS] = [
        ObjectKind::Normal,
        ObjectKind::Atomic,
        ObjectKind::Malloc,
        ObjectKind::Uncollectable,
    ];

    /// From the u8 stored in span metadata.
    pub fn from_u8(v: u8) -> ObjectKind {
        match v {
            0 => ObjectKind::Normal,
            1 => ObjectKind::Atomic,
            2 => ObjectKind::Malloc,
            _ => ObjectKind::Uncollectable,
        }
    }

    /// True if the contents are scanned for pointers.
    #[inline]
    pub fn is_traced(self) -> bool {
        !matches!(self, ObjectKind::Atomic)
    }

    /// The space that holds this kind.
    pub fn space(self) -> SpaceId {
        match self {
            ObjectKind::Normal => SpaceId::Normal,
            ObjectKind::Atomic => SpaceId::Atomic,
            ObjectKind::Malloc | ObjectKind::Uncollectable => SpaceId::Malloc,
        }
    }
}
