//! GPA == HVA memory slots, registered per mapping on demand and split when part of a
//! mapping goes away. Never one slot over the whole address space (costly under shadow
//! paging). After construction no operation allocates (it runs inside the exit loop, possibly
//! while the guest holds the malloc lock).

use crate::error::{KmodError, Result};
use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::VmFd;

const PAGE: u64 = 4096;

/// One registered slot: guest-physical `[start, start+len)` backed by the same host range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    /// KVM slot id.
    pub id: u32,
    /// First byte (page aligned); both GPA and HVA.
    pub start: u64,
    /// Length in bytes (page multiple).
    pub len_bytes: u64,
}

impl Slot {
    fn end(&self) -> u64 {
        self.start + self.len_bytes
    }
}

/// Where slot changes go: KVM, or a recorder in unit tests.
pub trait SlotSink {
    /// Sets slot `id` to `[start, start+len_bytes)`; `len_bytes == 0` deletes it.
    fn set_slot(&mut self, id: u32, start: u64, len_bytes: u64) -> Result<()>;
}

impl SlotSink for &VmFd {
    fn set_slot(&mut self, id: u32, start: u64, len_bytes: u64) -> Result<()> {
        let region = kvm_userspace_memory_region {
            slot: id,
            flags: 0,
            guest_phys_addr: start,
            memory_size: len_bytes,
            userspace_addr: start,
        };
        // SAFETY: the slot aliases host memory [start, start+len) at the same address (GPA ==
        // HVA). KVM keeps no Rust-visible reference; it pins pages through MMU notifiers and
        // drops them when the host mapping changes. `Memslots` only registers ranges the
        // process has mapped and deletes a slot when its range is unmapped, so the guest never
        // reaches memory the process gave back.
        unsafe { self.set_user_memory_region(region) }
            .map_err(|e| KmodError::ioctl("KVM_SET_USER_MEMORY_REGION", e))
    }
}

/// The slot table: sorted, non-overlapping, fixed capacity.
#[derive(Debug)]
pub struct Memslots {
    slots: Vec<Slot>,
    free_ids: Vec<u32>,
    capacity: usize,
}

impl Memslots {
    /// An empty table for a VM with `capacity` slots (KVM_CAP_NR_MEMSLOTS).
    pub fn with_capacity(capacity: usize) -> Memslots {
        let capacity = capacity.clamp(1, 32_768);
        let free_ids = (0..capacity as u32).rev().collect();
        Memslots {
            slots: Vec::with_capacity(capacity),
            free_ids,
            capacity,
        }
    }

    /// Registered slots, sorted by address.
    pub fn slots(&self) -> &[Slot] {
        &self.slots
    }

    /// Whether every page of `[start, start+len)` is covered by some slot.
    pub fn covers(&self, start: u64, len_bytes: u64) -> bool {
        let (mut at, end) = (
            start & !(PAGE - 1),
            (start + len_bytes).next_multiple_of(PAGE),
        );
        for s in &self.slots {
            if s.end() <= at {
                continue;
            }
            if s.start > at {
                return false;
            }
            at = s.end();
            if at >= end {
                return true;
            }
        }
        at >= end
    }

    /// Registers the parts of `[start, start+len)` not yet covered (page-rounded).
    pub fn register(&mut self, sink: &mut impl SlotSink, start: u64, len_bytes: u64) -> Result<()> {
        let (mut at, end) = (
            start & !(PAGE - 1),
            (start + len_bytes).next_multiple_of(PAGE),
        );
        let mut i = self.slots.partition_point(|s| s.end() <= at);
        while at < end {
            let gap_end = match self.slots.get(i) {
                Some(s) if s.start <= at => {
                    at = s.end();
                    i += 1;
                    continue;
                }
                Some(s) => s.start.min(end),
                None => end,
            };
            self.insert(sink, i, at, gap_end - at)?;
            i += 1;
            at = gap_end;
        }
        Ok(())
    }

    /// Removes `[start, start+len)` from the slots, splitting slots that extend beyond it.
    pub fn unregister(
        &mut self,
        sink: &mut impl SlotSink,
        start: u64,
        len_bytes: u64,
    ) -> Result<()> {
        let (lo, hi) = (
            start & !(PAGE - 1),
            (start + len_bytes).next_multiple_of(PAGE),
        );
        let mut i = self.slots.partition_point(|s| s.end() <= lo);
        while let Some(&s) = self.slots.get(i) {
            if s.start >= hi {
                break;
            }
            sink.set_slot(s.id, s.start, 0)?;
            self.slots.remove(i);
            self.free_ids.push(s.id);
            if s.start < lo {
                self.insert(sink, i, s.start, lo - s.start)?;
                i += 1;
            }
            if s.end() > hi {
                self.insert(sink, i, hi, s.end() - hi)?;
                i += 1;
            }
        }
        Ok(())
    }

    /// Deletes every slot for which `in_use(start, len_bytes)` is false (used when the table
    /// is full: slots of unmapped ranges are kept until then, because deleting a slot makes
    /// KVM drop every shadow page of the VM). Returns how many were deleted.
    pub fn evict_unused(
        &mut self,
        sink: &mut impl SlotSink,
        in_use: &mut dyn FnMut(u64, u64) -> bool,
    ) -> Result<usize> {
        let mut i = 0;
        let mut n = 0;
        while let Some(&s) = self.slots.get(i) {
            if in_use(s.start, s.len_bytes) {
                i += 1;
                continue;
            }
            sink.set_slot(s.id, s.start, 0)?;
            self.slots.remove(i);
            self.free_ids.push(s.id);
            n += 1;
        }
        Ok(n)
    }

    fn insert(
        &mut self,
        sink: &mut impl SlotSink,
        at: usize,
        start: u64,
        len_bytes: u64,
    ) -> Result<()> {
        let id = self.free_ids.pop().ok_or(KmodError::MemslotsExhausted {
            capacity: self.capacity,
        })?;
        if let Err(e) = sink.set_slot(id, start, len_bytes) {
            self.free_ids.push(id);
            return Err(e);
        }
        self.slots.insert(
            at,
            Slot {
                id,
                start,
                len_bytes,
            },
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Recorder(Vec<(u32, u64, u64)>);
    impl SlotSink for Recorder {
        fn set_slot(&mut self, id: u32, start: u64, len_bytes: u64) -> Result<()> {
            self.0.push((id, start, len_bytes));
            Ok(())
        }
    }

    fn ranges(m: &Memslots) -> Vec<(u64, u64)> {
        m.slots().iter().map(|s| (s.start, s.end())).collect()
    }

    #[test]
    fn register_fills_only_gaps() {
        let mut m = Memslots::with_capacity(16);
        let mut r = Recorder::default();
        m.register(&mut r, 0x10000, 0x2000).unwrap();
        m.register(&mut r, 0x8000, 0x10000).unwrap();
        assert_eq!(
            ranges(&m),
            vec![(0x8000, 0x10000), (0x10000, 0x12000), (0x12000, 0x18000)]
        );
        assert!(m.covers(0x8000, 0x10000));
        assert!(!m.covers(0x7000, 0x2000));
        let n = r.0.len();
        m.register(&mut r, 0x9000, 0x1000).unwrap();
        assert_eq!(r.0.len(), n, "already covered: no ioctl");
    }

    #[test]
    fn unregister_splits() {
        let mut m = Memslots::with_capacity(16);
        let mut r = Recorder::default();
        m.register(&mut r, 0x100000, 0x10000).unwrap();
        m.unregister(&mut r, 0x104000, 0x1000).unwrap();
        assert_eq!(ranges(&m), vec![(0x100000, 0x104000), (0x105000, 0x110000)]);
        assert!(!m.covers(0x104000, 1));
        m.unregister(&mut r, 0, 0x200000).unwrap();
        assert!(m.slots().is_empty());
        assert_eq!(m.free_ids.len(), 16, "ids are recycled");
    }

    #[test]
    fn eviction_frees_unused_slots() {
        let mut m = Memslots::with_capacity(2);
        let mut r = Recorder::default();
        m.register(&mut r, 0x1000, 0x1000).unwrap();
        m.register(&mut r, 0x5000, 0x1000).unwrap();
        let n = m
            .evict_unused(&mut r, &mut |start, _| start == 0x5000)
            .unwrap();
        assert_eq!(n, 1);
        assert_eq!(ranges(&m), vec![(0x5000, 0x6000)]);
        m.register(&mut r, 0x9000, 0x1000).unwrap();
    }

    #[test]
    fn exhaustion_is_an_error() {
        let mut m = Memslots::with_capacity(1);
        let mut r = Recorder::default();
        m.register(&mut r, 0x1000, 0x1000).unwrap();
        assert!(matches!(
            m.register(&mut r, 0x5000, 0x1000),
            Err(KmodError::MemslotsExhausted { capacity: 1 })
        ));
    }
}
