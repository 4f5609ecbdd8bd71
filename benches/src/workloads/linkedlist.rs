//! LinkedList on gc-core, allocation for allocation the same as `benches/c/linkedlist.c`:
//! eight list slots in a GC-allocated array; each of 32 rounds builds a list of
//! `scale * 1000` nodes into slot `r % 8` (dropping the list that was there), traverses
//! it, then cuts the list in slot `(r + 3) % 8` after its first half, dropping the tail.
//! Checksum: nodes live at the end, verified by a final traversal.

use super::Allocator;

const N_SLOTS: usize = 8;
const N_ROUNDS: usize = 32;

/// A list node as in the C workload (16 bytes).
#[repr(C)]
struct ListNode {
    next: *mut ListNode,
    value: u64,
}

/// The scales the C code accepts.
pub const SCALES: std::ops::RangeInclusive<u32> = 1..=100_000;

/// The next node of `n`.
#[inline]
fn next(n: *mut ListNode) -> *mut ListNode {
    // SAFETY: `n` is a non-null node of a list the workload keeps reachable.
    unsafe { (*n).next }
}

fn list_len(mut n: *mut ListNode) -> u64 {
    let mut len = 0;
    while !n.is_null() {
        len += 1;
        n = next(n);
    }
    len
}

/// Free every node from `n` on (explicit-free allocators only).
fn free_list<A: Allocator>(alloc: A, mut n: *mut ListNode) {
    while !n.is_null() {
        let following = next(n);
        alloc.free(n as usize);
        n = following;
    }
}

/// Read slot `i` of the slot array.
#[inline]
fn slot(slots: *mut *mut ListNode, i: usize) -> *mut ListNode {
    debug_assert!(i < N_SLOTS);
    // SAFETY: `slots` is the live N_SLOTS-entry array and i < N_SLOTS.
    unsafe { *slots.add(i) }
}

/// Write slot `i` of the slot array.
#[inline]
fn set_slot(slots: *mut *mut ListNode, i: usize, n: *mut ListNode) {
    debug_assert!(i < N_SLOTS);
    // SAFETY: as in `slot`.
    unsafe { *slots.add(i) = n };
}

/// Run LinkedList at `scale` (thousands of nodes per list). Returns the nodes live at
/// the end, or an error if a list was damaged.
pub fn run<A: Allocator>(alloc: A, scale: u32) -> Result<u64, String> {
    if !SCALES.contains(&scale) {
        return Err(format!("linkedlist scale {scale} outside {SCALES:?}"));
    }
    let len = u64::from(scale) * 1000;
    let mut lens = [0u64; N_SLOTS];
    let slots = alloc.malloc(N_SLOTS * std::mem::size_of::<*mut ListNode>()) as *mut *mut ListNode;

    for r in 0..N_ROUNDS {
        let cut = (r + 3) % N_SLOTS;
        // Build by prepending: values len-1 .. 0 from the head.
        let mut head: *mut ListNode = std::ptr::null_mut();
        for i in 0..len {
            let n = alloc.malloc(std::mem::size_of::<ListNode>()) as *mut ListNode;
            // SAFETY: a fresh, zeroed, aligned allocation of size_of::<ListNode>().
            unsafe {
                (*n).value = i;
                (*n).next = head;
            }
            head = n;
        }
        if A::FREES {
            free_list(alloc, slot(slots, r % N_SLOTS));
        }
        set_slot(slots, r % N_SLOTS, head);
        lens[r % N_SLOTS] = len;

        // Traverse.
        let (mut count, mut sum) = (0u64, 0u64);
        let mut n = slot(slots, r % N_SLOTS);
        while !n.is_null() {
            count += 1;
            // SAFETY: a node of the list just stored in the live slot array.
            sum += unsafe { (*n).value };
            n = next(n);
        }
        if count != len || sum != len * (len - 1) / 2 {
            return Err(format!(
                "linkedlist round {r}: traversal found {count} nodes summing to {sum}"
            ));
        }

        // Partly drop another list: keep its first half.
        let keep = lens[cut] / 2;
        if keep == 0 {
            if A::FREES {
                free_list(alloc, slot(slots, cut));
            }
            set_slot(slots, cut, std::ptr::null_mut());
        } else {
            let mut n = slot(slots, cut);
            for _ in 1..keep {
                n = next(n);
            }
            let tail = next(n);
            // SAFETY: `n` is the keep-th node of the list in slot `cut` (it has
            // lens[cut] >= keep nodes).
            unsafe { (*n).next = std::ptr::null_mut() };
            if A::FREES {
                free_list(alloc, tail);
            }
        }
        lens[cut] = keep;
    }

    let mut live = 0;
    for (r, &want) in lens.iter().enumerate() {
        let got = list_len(slot(slots, r));
        if got != want {
            return Err(format!("linkedlist slot {r}: {got} nodes, expected {want}"));
        }
        live += want;
    }
    if A::FREES {
        for r in 0..N_SLOTS {
            free_list(alloc, slot(slots, r));
        }
        alloc.free(slots as usize);
    }
    Ok(live)
}
