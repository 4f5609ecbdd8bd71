// Layer 2: paging (dune-hw/LAYERS).
//! Frames for page-table pages. Page tables live in ordinary process memory (so the guest
//! reads its own A/D bits with plain loads); allocation never calls malloc (the exit loop may
//! run while the guest holds the malloc lock).

use crate::arch::error::DuneError;

/// Hands out zeroed, 4 KiB-aligned frames that stay mapped for the allocator's lifetime.
pub trait FrameAllocator {
    /// A zeroed frame, or `None` when exhausted.
    fn alloc_zeroed(&mut self) -> Option<u64>;
}

/// A bump allocator over one reserved anonymous mapping (MAP_NORESERVE: untouched frames
/// cost nothing). Frames are never returned: empty tables are kept for reuse.
#[derive(Debug)]
pub struct PoolFrames {
    base: u64,
    next: u64,
    end: u64,
}

impl PoolFrames {
    /// Reserves `len_bytes` (page multiple) for page-table frames.
    pub fn reserve(len_bytes: u64) -> Result<PoolFrames, DuneError> {
        // SAFETY: a fresh anonymous private mapping at a kernel-chosen address aliases nothing.
        let p = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                len_bytes as usize,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(DuneError::Os {
                op: "mmap(page-table pool)",
                source: std::io::Error::last_os_error(),
            });
        }
        let base = p as u64;
        Ok(PoolFrames {
            base,
            next: base,
            end: base + len_bytes,
        })
    }

    /// The reserved range `[start, end)`.
    pub fn range(&self) -> (u64, u64) {
        (self.base, self.end)
    }

    /// Frames handed out so far.
    pub fn n_frames_used(&self) -> u64 {
        (self.next - self.base) / 4096
    }
}

impl FrameAllocator for PoolFrames {
    fn alloc_zeroed(&mut self) -> Option<u64> {
        if self.next >= self.end {
            return None;
        }
        let f = self.next;
        self.next += 4096;
        Some(f) // fresh anonymous memory is zero
    }
}

/// Frames from the global allocator, for unit tests of the walker (no /dev/kvm).
#[cfg(test)]
#[derive(Debug, Default)]
pub struct HeapFrames {
    frames: Vec<Box<Frame>>,
}

#[cfg(test)]
#[repr(C, align(4096))]
#[derive(Debug)]
struct Frame([u64; 512]);

#[cfg(test)]
impl FrameAllocator for HeapFrames {
    fn alloc_zeroed(&mut self) -> Option<u64> {
        let b = Box::new(Frame([0; 512]));
        let a = &*b as *const Frame as u64;
        self.frames.push(b);
        Some(a)
    }
}
