//! The sweep after the pause (`Heap::finish_sweep`): with the world running again, threads
//! keep allocating from the spans their caches own and free objects explicitly while the
//! collecting thread sweeps the other spans. Each thread keeps a ring of checksummed
//! objects in static memory, replaces entries at random (freeing some replaced ones
//! explicitly), and verifies every live entry it touches; another thread collects in a
//! loop. A slot swept out from under a thread that had claimed it is handed out twice and
//! fails a checksum (or `find_object`), under full collections and every incremental
//! backend. At the end the rings are dropped and the heap must shrink back (no dead
//! object survives).

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use support::*;

const THREADS: usize = 4;
const RING: usize = 128;
/// Collections the collecting thread runs while the workers go on.
const COLLECTIONS: usize = 40;

static RINGS: [[AtomicUsize; RING]; THREADS] =
    [const { [const { AtomicUsize::new(0) }; RING] }; THREADS];

static STARTED: AtomicUsize = AtomicUsize::new(0);

fn worker(heap: &'static gc_core::Heap, t: usize, stop: &AtomicBool) {
    std::hint::black_box(new_object(heap, 64).expect("alloc"));
    STARTED.fetch_add(1, Ordering::AcqRel);
    let mut x = (t as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x as usize
    };
    let ring = &RINGS[t];
    while !stop.load(Ordering::Acquire) {
        let i = next() % RING;
        let o = new_object(heap, 48 + (next() % 5) * 16).expect("alloc");
        let old = ring[i].swap(o, Ordering::AcqRel);
        if old != 0 {
            verify(heap, old);
            if next() % 4 == 0 {
                heap.free(old).expect("free of a dropped object");
            }
        }
        let j = ring[next() % RING].load(Ordering::Acquire);
        if j != 0 {
            verify(heap, j);
        }
    }
    for e in ring {
        let p = e.load(Ordering::Acquire);
        if p != 0 {
            verify(heap, p);
        }
    }
}

#[test]
fn threads_allocate_and_free_while_the_sweep_finishes() {
    for (name, choice) in configurations() {
        let heap = heap_for(choice).expect("heap");
        let before = heap.stats().collections();
        let stop = AtomicBool::new(false);
        STARTED.store(0, Ordering::Release);
        std::thread::scope(|s| {
            let stop = &stop;
            let workers: Vec<_> = (0..THREADS)
                .map(|t| s.spawn(move || worker(heap, t, stop)))
                .collect();
            while STARTED.load(Ordering::Acquire) < THREADS {
                std::thread::yield_now();
            }
            // `collect` does nothing while collection is held off (a tracker or the
            // marker threads being set up with the lock released): count what happened.
            while heap.stats().collections() - before < COLLECTIONS as u64 {
                heap.collect().expect("collect");
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
            stop.store(true, Ordering::Release);
            for w in workers {
                w.join().expect("worker");
            }
        });
        let collections = heap.stats().collections() - before;
        // Every ring entry is live and intact after the last sweep too.
        for ring in &RINGS {
            for e in ring {
                let p = e.load(Ordering::Acquire);
                if p != 0 {
                    verify(heap, p);
                }
            }
        }
        for ring in &RINGS {
            for e in ring {
                e.store(0, Ordering::Release);
            }
        }
        clobber_stack();
        heap.collect().expect("collect");
        heap.collect().expect("collect");
        let st = heap.stats();
        let (live, heap_bytes, allocated) = (st.live_bytes, st.heap_bytes, st.bytes_allocated);
        println!(
            "{name}: {collections} collections, {live} live bytes, {heap_bytes} heap bytes \
             after dropping; {allocated} bytes allocated in all"
        );
        assert!(
            collections >= COLLECTIONS as u64,
            "{name}: too few collections"
        );
        // 4 threads x 128 objects of at most 112 bytes were live; once dropped, what is
        // left is conservative noise, far below that.
        assert!(
            live < 24 << 10,
            "{name}: {live} live bytes after dropping the rings"
        );
        // Spans the sweep never reached would keep their dead objects: the heap would
        // grow with everything allocated.
        assert!(
            heap_bytes < 2 << 20,
            "{name}: heap of {heap_bytes} bytes after dropping"
        );
    }
}
