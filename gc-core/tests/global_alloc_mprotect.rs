//! The mprotect hazard: the kernel writing into a write-protected page during a system
//! call fails with EFAULT instead of faulting. With `GcAllocator` as the global allocator
//! and incremental marking on the mprotect backend, `std::fs::read` and `read_to_end`
//! into fresh heap buffers must work while a cycle is in progress. (gc-core never
//! protects global-allocator memory under mprotect; it rescans it at the finish instead.)

use gc_core::{global_heap, Backend, BackendChoice, Gc, GcAllocator};
use std::io::{Read, Seek};

#[global_allocator]
static GLOBAL: GcAllocator = GcAllocator;

struct Cell(std::sync::Mutex<Vec<Gc<u64>>>);

#[test]
fn fs_reads_into_heap_buffers_during_an_mprotect_cycle() {
    let heap = global_heap();
    assert_eq!(
        heap.enable_incremental(BackendChoice::Exactly(Backend::Mprotect))
            .expect("mprotect works here"),
        Backend::Mprotect
    );
    let dir = std::env::temp_dir().join(format!("dunegc-mprotect-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("data.bin");
    let data: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&path, &data).unwrap();

    let keep = Cell(std::sync::Mutex::new(Vec::new()));
    // A buffer allocated before any cycle: during a cycle its pages were armed and not
    // written since, so a kernel write into it is exactly the hazard.
    let mut old_buf = vec![0u8; data.len()];
    let mut file = std::fs::File::open(&path).unwrap();
    let mut reads = 0;
    let mut during_cycle = 0;
    let mut round = 0u64;
    while during_cycle < 20 {
        round += 1;
        assert!(round < 5_000, "cycles too rare to test: {}", heap.stats());
        // Allocate Gc objects (normal space, write-protected during cycles) to drive cycles.
        for i in 0..5_000u64 {
            let g = Gc::new(round * 10_000 + i);
            if i % 100 == 0 {
                keep.0.lock().unwrap().push(g);
            }
        }
        if !heap.cycle_in_progress() {
            continue;
        }
        during_cycle += 1;
        // First, with no allocation in between that could finish the cycle: the kernel
        // writes into pages armed at the cycle's start.
        file.seek(std::io::SeekFrom::Start(0)).unwrap();
        file.read_exact(&mut old_buf).unwrap();
        assert!(old_buf == data);
        assert_eq!(std::fs::read(&path).unwrap(), data);
        let mut back = Vec::new();
        std::fs::File::open(&path)
            .unwrap()
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back.len(), data.len());
        assert!(back == data);
        reads += 3;
    }
    heap.collect().unwrap();
    let kept = keep.0.lock().unwrap();
    for (k, g) in kept.iter().enumerate() {
        assert_eq!(**g, (k as u64 / 50 + 1) * 10_000 + (k as u64 % 50) * 100);
    }
    let st = heap.stats();
    assert_eq!(st.backend, Some(Backend::Mprotect));
    assert!(st.incremental_cycles > 0, "no incremental cycle ran: {st}");
    assert!(
        during_cycle > 0,
        "no read happened while a cycle was in progress: {st}"
    );
    println!("{reads} reads, {during_cycle} rounds inside a cycle; {st}");
    std::fs::remove_dir_all(&dir).unwrap();
}
