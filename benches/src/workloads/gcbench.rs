//! GCBench (Ellis, Kovac; C version by Boehm) on gc-core, allocation for allocation the
//! same as `benches/c/gcbench.c`: a stretch tree, a long-lived tree and array, then for
//! each depth short-lived trees built top-down and bottom-up.
//!
//! With the system allocator ([`run_with`] and [`SystemMalloc`](super::SystemMalloc)) each
//! short-lived tree is freed node by node once built, and the long-lived data at the end.

use super::{Allocator, GcHeap};
use gc_core::Heap;

/// A tree node as in the C benchmark: two pointers and two ints (24 bytes).
#[repr(C)]
struct Node {
    left: *mut Node,
    right: *mut Node,
    i: i32,
    j: i32,
}

/// GCBench's parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    /// Depth of the stretch tree.
    pub stretch_tree_depth: u32,
    /// Depth of the long-lived tree.
    pub long_lived_tree_depth: u32,
    /// Doubles in the long-lived array.
    pub array_len: usize,
    /// First depth of short-lived trees.
    pub min_tree_depth: u32,
    /// Last depth of short-lived trees.
    pub max_tree_depth: u32,
}

impl Params {
    /// The parameters for `scale` (16 = the classic), exactly as the C side derives them.
    pub fn for_scale(scale: u32) -> Params {
        let shift = if scale < 16 { 2 * (16 - scale) } else { 0 };
        Params {
            stretch_tree_depth: scale + 2,
            long_lived_tree_depth: scale,
            array_len: (500_000usize >> shift).max(2048),
            min_tree_depth: 4,
            max_tree_depth: scale,
        }
    }
}

struct Bench<A: Allocator> {
    alloc: A,
    nodes: u64,
}

impl<A: Allocator> Bench<A> {
    #[inline]
    fn new_node(&mut self, left: *mut Node, right: *mut Node) -> *mut Node {
        let n = self.alloc.malloc(std::mem::size_of::<Node>()) as *mut Node;
        self.nodes += 1;
        // SAFETY: a fresh, zeroed, suitably aligned allocation of size_of::<Node>().
        unsafe {
            (*n).left = left;
            (*n).right = right;
        }
        n
    }

    fn populate(&mut self, depth: u32, this: *mut Node) {
        if depth == 0 {
            return;
        }
        let l = self.new_node(std::ptr::null_mut(), std::ptr::null_mut());
        // SAFETY: `this` is a live node (reachable from the caller's stack).
        unsafe { (*this).left = l };
        let r = self.new_node(std::ptr::null_mut(), std::ptr::null_mut());
        // SAFETY: as above.
        unsafe { (*this).right = r };
        self.populate(depth - 1, l);
        self.populate(depth - 1, r);
    }

    fn make_tree(&mut self, depth: u32) -> *mut Node {
        if depth == 0 {
            return self.new_node(std::ptr::null_mut(), std::ptr::null_mut());
        }
        let l = self.make_tree(depth - 1);
        let r = self.make_tree(depth - 1);
        self.new_node(l, r)
    }

    /// Free a tree built by this allocator (only when it needs explicit frees).
    fn free_tree(&self, n: *mut Node) {
        if n.is_null() {
            return;
        }
        // SAFETY: a node of a tree this workload built and no longer uses.
        let (l, r) = unsafe { ((*n).left, (*n).right) };
        self.free_tree(l);
        self.free_tree(r);
        self.alloc.free(n as usize);
    }

    /// Drop a tree: free it with an explicit-free allocator, leave it to the collector
    /// otherwise.
    #[inline]
    fn drop_tree(&self, n: *mut Node) {
        if A::FREES {
            self.free_tree(n);
        }
    }
}

fn tree_size(i: u32) -> u64 {
    (1u64 << (i + 1)) - 1
}

fn count_nodes(n: *const Node) -> u64 {
    if n.is_null() {
        return 0;
    }
    // SAFETY: nodes of a tree kept alive by the caller.
    let (l, r) = unsafe { ((*n).left, (*n).right) };
    1 + count_nodes(l) + count_nodes(r)
}

/// Run GCBench on `heap`. Returns the number of nodes allocated (the checksum the C side
/// reports), or an error if the long-lived structures did not survive intact.
pub fn run(heap: &'static Heap, p: Params) -> Result<u64, String> {
    run_with(GcHeap(heap), p)
}

/// Run GCBench on any [`Allocator`] (see [`run`]).
pub fn run_with<A: Allocator>(alloc: A, p: Params) -> Result<u64, String> {
    let mut b = Bench { alloc, nodes: 0 };
    let stretch = b.make_tree(p.stretch_tree_depth);
    b.drop_tree(super::opaque_ptr(stretch));
    let long_lived = b.new_node(std::ptr::null_mut(), std::ptr::null_mut());
    b.populate(p.long_lived_tree_depth, long_lived);
    let array = alloc.malloc_atomic(8 * p.array_len) as *mut f64;
    for i in 0..p.array_len / 2 {
        // SAFETY: i < array_len, inside the fresh array.
        unsafe { *array.add(i) = 1.0 / i as f64 };
    }
    let mut d = p.min_tree_depth;
    while d <= p.max_tree_depth {
        let iters = 2 * tree_size(p.stretch_tree_depth) / tree_size(d);
        for _ in 0..iters {
            let t = b.new_node(std::ptr::null_mut(), std::ptr::null_mut());
            b.populate(d, t);
            b.drop_tree(super::opaque_ptr(t));
        }
        for _ in 0..iters {
            let t = b.make_tree(d);
            b.drop_tree(super::opaque_ptr(t));
        }
        d += 2;
    }
    let counted = count_nodes(std::hint::black_box(long_lived));
    // SAFETY: array_len >= 2048, so index 1000 is inside the live array.
    let a1000 = unsafe { *std::hint::black_box(array).add(1000) };
    if counted != tree_size(p.long_lived_tree_depth) || a1000 != 1.0 / 1000.0 {
        return Err(format!(
            "long-lived data damaged: {counted} nodes, array[1000] = {a1000}"
        ));
    }
    if A::FREES {
        b.free_tree(long_lived);
        alloc.free(array as usize);
    }
    Ok(b.nodes)
}
