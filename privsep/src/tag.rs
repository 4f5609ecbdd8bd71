//! Tags: memory regions of their own, each with its own allocator ([`smalloc`]).
//!
//! A tag is one private anonymous mapping. Its first 64 bytes are the allocator's header
//! (a bump pointer), so code holding the tag read-write allocates from it inside an
//! sthread without any call to the host ([`TagRef::smalloc`]). The header is never
//! trusted: an sthread with write rights may overwrite it, after which every allocation
//! is refused with [`PrivsepError::TagCorrupted`], but no allocation ever lies outside
//! the tag. Memory is never freed piecemeal: a tag is reset ([`Tag::reset`]) or dropped.
//!
//! The tag's memory is unmapped when the last [`Tag`] (the policies holding it keep
//! clones) goes away. Tags are registered process-wide so that a fault report can say
//! whose memory an sthread touched ([`tag_at`]).

use crate::error::PrivsepError;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Bytes of the allocator header at the start of every tag.
pub const HEADER_BYTES: u64 = 64;
/// Alignment of every allocation.
pub const ALIGN_BYTES: u64 = 16;
/// The largest tag.
pub const MAX_TAG_BYTES: u64 = 1 << 40;
const PAGE: u64 = 4096;

#[repr(C)]
struct Header {
    next: AtomicU64,
}

/// A copyable description of a tag (id, address, length) for code inside an sthread: it
/// names the memory, it grants nothing (the sthread's view does).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TagRef {
    /// The tag's id (unique in the process).
    pub id: u64,
    /// First byte of the tag (its header).
    pub base: u64,
    /// Bytes of the tag (page multiple).
    pub len: u64,
}

impl TagRef {
    /// Allocates `n` bytes (16-byte aligned) from the tag, or `None` if it is full, `n` is 0
    /// or the header is corrupt. Usable on the host and inside an sthread that holds the
    /// tag read-write (with read rights only, the header store faults and ends the
    /// sthread).
    pub fn smalloc(&self, n: u64) -> Option<NonNull<u8>> {
        self.try_alloc(n).ok()
    }

    fn try_alloc(&self, n: u64) -> Result<NonNull<u8>, PrivsepError> {
        if n == 0 || n > self.len {
            return Err(PrivsepError::BadArgument {
                what: "allocation size must be 1..=tag length",
            });
        }
        let size = n.next_multiple_of(ALIGN_BYTES);
        // SAFETY: `base` is the start of a live tag mapping (the `Tag` or the sthread's
        // view keeps it mapped), page-aligned, so the header is aligned and in bounds.
        let next = unsafe { &(*(self.base as *const Header)).next };
        let mut cur = next.load(Ordering::Relaxed);
        loop {
            if cur < HEADER_BYTES || cur > self.len || !cur.is_multiple_of(ALIGN_BYTES) {
                return Err(PrivsepError::TagCorrupted { tag: self.id });
            }
            let Some(new) = cur.checked_add(size).filter(|&e| e <= self.len) else {
                return Err(PrivsepError::OutOfTagMemory {
                    tag: self.id,
                    requested: n,
                    free: self.len - cur,
                });
            };
            match next.compare_exchange_weak(cur, new, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => {
                    // the offset was checked in bounds: never null, inside the tag
                    return NonNull::new((self.base + cur) as *mut u8)
                        .ok_or(PrivsepError::TagCorrupted { tag: self.id });
                }
                Err(seen) => cur = seen,
            }
        }
    }

    /// Whether `[addr, addr + len)` lies inside the tag.
    pub fn contains(&self, addr: u64, len: u64) -> bool {
        addr >= self.base
            && addr
                .checked_add(len)
                .is_some_and(|e| e <= self.base + self.len)
    }
}

#[derive(Debug)]
struct TagInner {
    r: TagRef,
}

impl Drop for TagInner {
    fn drop(&mut self) {
        let mut live = LIVE.lock().unwrap_or_else(|p| p.into_inner());
        live.retain(|t| t.id != self.r.id);
        drop(live);
        // SAFETY: the mapping made by `tag_new`; this is its last owner (every policy and
        // sandbox granting it holds a clone), so nothing maps or uses it any more.
        unsafe { libc::munmap(self.r.base as *mut libc::c_void, self.r.len as usize) };
    }
}

/// A tag (shared ownership: clones name the same memory).
#[derive(Clone, Debug)]
pub struct Tag(Arc<TagInner>);

static NEXT_ID: AtomicU64 = AtomicU64::new(1);
static LIVE: Mutex<Vec<TagRef>> = Mutex::new(Vec::new());

/// A new tag of at least `bytes` bytes (rounded up to pages, header included).
pub fn tag_new(bytes: u64) -> Result<Tag, PrivsepError> {
    if bytes == 0 || bytes > MAX_TAG_BYTES {
        return Err(PrivsepError::BadArgument {
            what: "tag size must be 1 byte ..= 1 TiB",
        });
    }
    let len = (bytes + HEADER_BYTES).next_multiple_of(PAGE);
    // SAFETY: a fresh private anonymous mapping aliases nothing.
    let p = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            len as usize,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(PrivsepError::Os {
            op: "mmap(tag)",
            source: std::io::Error::last_os_error(),
        });
    }
    let r = TagRef {
        id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        base: p as u64,
        len,
    };
    let t = Tag(Arc::new(TagInner { r }));
    t.reset();
    LIVE.lock().unwrap_or_else(|p| p.into_inner()).push(r);
    Ok(t)
}

/// Allocates `n` bytes (16-byte aligned) from `tag`. The memory is only reachable through
/// raw pointers: an sthread granted the tag read-write may change it at any time while it
/// runs, so the host must not hold Rust references into it then.
pub fn smalloc(tag: &Tag, n: u64) -> Result<NonNull<u8>, PrivsepError> {
    tag.0.r.try_alloc(n)
}

impl Tag {
    /// The tag's description (id, address, length).
    pub fn handle(&self) -> TagRef {
        self.0.r
    }

    /// The tag's id.
    pub fn id(&self) -> u64 {
        self.0.r.id
    }

    /// Forgets every allocation (the bytes stay as they are) and repairs the header.
    pub fn reset(&self) {
        // SAFETY: the header of this live tag (see `TagRef::try_alloc`).
        let next = unsafe { &(*(self.0.r.base as *const Header)).next };
        next.store(HEADER_BYTES, Ordering::Release);
    }

    /// Bytes still free (0 if the header is corrupt).
    pub fn free_bytes(&self) -> u64 {
        // SAFETY: as in `reset`.
        let cur = unsafe { &(*(self.0.r.base as *const Header)).next }.load(Ordering::Acquire);
        if (HEADER_BYTES..=self.0.r.len).contains(&cur) {
            self.0.r.len - cur
        } else {
            0
        }
    }
}

/// The live tag holding `addr`, if any (for fault reports).
pub fn tag_at(addr: u64) -> Option<TagRef> {
    let live = LIVE.lock().unwrap_or_else(|p| p.into_inner());
    live.iter().copied().find(|t| t.contains(addr, 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocations_stay_inside_and_a_corrupt_header_allocates_nothing() {
        let t = tag_new(100).unwrap();
        let r = t.handle();
        assert_eq!(r.len, 4096);
        let a = smalloc(&t, 10).unwrap().as_ptr() as u64;
        let b = smalloc(&t, 1).unwrap().as_ptr() as u64;
        assert_eq!(a, r.base + HEADER_BYTES);
        assert_eq!(b, a + 16);
        assert!(matches!(
            smalloc(&t, 5000),
            Err(PrivsepError::BadArgument { .. })
        ));
        assert!(matches!(
            smalloc(&t, 4010),
            Err(PrivsepError::OutOfTagMemory { .. })
        ));
        assert!(smalloc(&t, 0).is_err());
        assert_eq!(tag_at(a).map(|x| x.id), Some(t.id()));
        // an sthread with write rights scribbles over the header
        // SAFETY: the header word of this live tag.
        unsafe { *(r.base as *mut u64) = r.len + 4096 };
        assert!(matches!(
            smalloc(&t, 1),
            Err(PrivsepError::TagCorrupted { .. })
        ));
        assert_eq!(t.free_bytes(), 0);
        t.reset();
        assert_eq!(smalloc(&t, 1).unwrap().as_ptr() as u64, a);
        let id = t.id();
        drop(t);
        assert!(tag_at(a).is_none_or(|x| x.id != id));
    }
}
